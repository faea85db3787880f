"""Model data, made ready as SageMaker makes it: a .tar.gz extracted into a model folder.

Archives are untrusted input: members must be plain files or folders under the destination;
absolute names, `..`, links and devices are refused before anything is written.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from ..errors import ComposerError

_CHUNK = 1 << 20


class ModelDataError(ComposerError):
    """Model data that cannot be used safely or cannot be fetched."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def check_members(archive: tarfile.TarFile, shown: str) -> list[tarfile.TarInfo]:
    """Every member, or a ModelDataError naming the first unsafe one."""
    members = archive.getmembers()
    for m in members:
        name = PurePosixPath(m.name)
        if name.is_absolute() or m.name.startswith("/"):
            raise ModelDataError(f"{shown}: member {m.name!r} has an absolute path; refused")
        if ".." in name.parts:
            raise ModelDataError(f"{shown}: member {m.name!r} climbs out with '..'; refused")
        if not (m.isfile() or m.isdir()):
            kind = "link" if (m.issym() or m.islnk()) else "device or special file"
            raise ModelDataError(
                f"{shown}: member {m.name!r} is a {kind}; model archives hold only files and "
                "folders (SageMaker refuses links too)"
            )
    return members


def extract_archive(archive_path: Path, dest: Path) -> None:
    """Extract into a fresh `dest` after checking every member."""
    shown = str(archive_path)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(archive_path, "r:*") as archive:
            members = check_members(archive, shown)
            archive.extractall(tmp, members=members, filter="data")
    except tarfile.TarError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelDataError(f"{shown}: not a readable tar archive ({exc})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def download_s3(uri: str, dest: Path) -> None:
    """Fetch an s3:// object with boto3 (so AWS_ENDPOINT_URL_S3 and the AWS chain apply)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    parsed = urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        boto3.client("s3").download_file(bucket, key, str(dest))
    except (BotoCoreError, ClientError) as exc:
        raise ModelDataError(f"{uri}: download failed: {exc}") from None


def prepare_model_dir(model_data: str | None, source: Path | None, work: Path) -> Path:
    """A model folder for one container under `work`; empty when there is no model data.

    `source` is the resolved local path (None for s3://). Extractions are reused while the
    archive's content is unchanged.
    """
    work.mkdir(parents=True, exist_ok=True)
    if model_data is None:
        empty = work / "empty"
        empty.mkdir(exist_ok=True)
        return empty
    if source is not None and source.is_dir():
        return source
    if source is None:
        archive = work / "download" / "model.tar.gz"
        download_s3(model_data, archive)
    else:
        archive = source
    digest = file_sha256(archive)[:16]
    dest = work / f"model-{digest}"
    done = work / f"model-{digest}.done"
    if not done.exists() or not dest.is_dir():
        extract_archive(archive, dest)
        done.write_text(f"{model_data}\n", encoding="utf-8")
    return dest
