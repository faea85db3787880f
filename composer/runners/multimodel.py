"""A multi-model container's models, fetched as SageMaker fetches them: on first use.

The container's model data is a prefix: a local folder or an `s3://` prefix of `.tar.gz`
archives. TargetModel names one archive relative to it. Each is extracted (with the same checks
as any model archive) into its own folder, which the container is then asked to load.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path, PurePosixPath

from ..gateway.multimodel import ModelSourceError
from .modeldata import ModelDataError, download_s3, extract_archive


class LocalModelSource:
    """Models of one multi-model container.

    `folder` is where archives are extracted on this machine; `visible` is that same folder as
    the container sees it (the process runner: the same path; an engine: its mount point).
    """

    def __init__(self, prefix: str, folder: Path, visible: str) -> None:
        self.prefix = prefix
        self.folder = folder
        self.visible = visible.rstrip("/")

    async def prepare(self, target_model: str, name: str) -> str:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._fetch, target_model, name)
        return f"{self.visible}/{name}/model"

    def release(self, name: str) -> None:
        shutil.rmtree(self.folder / name, ignore_errors=True)

    def _fetch(self, target_model: str, name: str) -> None:
        relative = PurePosixPath(target_model)
        if relative.is_absolute() or ".." in relative.parts:
            raise ModelSourceError(
                f"TargetModel {target_model!r} must be a path relative to the model data "
                f"prefix {self.prefix}, without '..'",
                missing=False,
            )
        dest = self.folder / name / "model"
        if self.prefix.startswith("s3://"):
            uri = self.prefix.rstrip("/") + "/" + target_model
            archive = self.folder / name / "download" / "model.tar.gz"
            try:
                download_s3(uri, archive)
            except ModelDataError:
                raise ModelSourceError(_missing(uri), missing=True) from None
        else:
            root = Path(self.prefix).resolve()
            archive = (root / target_model).resolve()
            if not archive.is_relative_to(root):
                raise ModelSourceError(
                    f"TargetModel {target_model!r} leads outside the model data folder {root}",
                    missing=False,
                )
            if not archive.is_file():
                raise ModelSourceError(_missing(str(archive)), missing=True)
        try:
            extract_archive(archive, dest)
        except ModelDataError as e:
            raise ModelSourceError(f"Failed to extract model data: {e}", missing=False) from None
        finally:
            if self.prefix.startswith("s3://"):
                shutil.rmtree(self.folder / name / "download", ignore_errors=True)


def _missing(where: str) -> str:
    return (
        f"Failed to download model data ({where}). Please ensure that there is an object "
        "located at the URL and that the role passed to CreateModel has permissions to "
        "download the model."
    )
