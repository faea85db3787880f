"""Deterministic model archives: the same folder always packs to the same bytes.

Content-addressed S3 keys and model names depend on it: a repack of an unchanged folder must not
look like new model data. Members are sorted, owned by 0:0, dated 0, and only plain files and
folders are allowed (SageMaker refuses links).
"""

from __future__ import annotations

import gzip
import os
import stat
import tarfile
from pathlib import Path

from ..errors import UsageError
from ..storage import atomic_file


def _info(name: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE or st.st_mode & stat.S_IXUSR else 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _members(folder: Path) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        base = Path(root)
        for name in [*dirs, *files]:
            path = base / name
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink():
                raise UsageError(
                    f"{path}: a symbolic link in model data; SageMaker refuses links in "
                    "model archives, so copy the file in instead"
                )
            mode = path.lstat().st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise UsageError(f"{path}: not a file or folder; model data holds only those")
            found.append((rel, path))
    return sorted(found)


def pack_folder(folder: Path, out: Path) -> Path:
    """Write `folder`'s content (at the archive root) to `out` as .tar.gz; returns `out`."""
    members = _members(folder)
    with (
        atomic_file(out) as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for rel, path in members:
            st = path.lstat()
            if stat.S_ISDIR(st.st_mode):
                tar.addfile(_info(rel, st, tarfile.DIRTYPE))
            else:
                info = _info(rel, st, tarfile.REGTYPE)
                info.size = st.st_size
                with path.open("rb") as f:
                    tar.addfile(info, f)
    return out
