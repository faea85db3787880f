"""Model data, made ready as SageMaker makes it: a .tar.gz extracted into a model folder.

Archives are untrusted input: members must be plain files or folders under the destination;
absolute names, `..`, links and devices are refused before anything is written. What they
expand to is capped (COMPOSER_MAX_MODEL_BYTES), counted from the headers as they are read and
again from the bytes actually written, so a gzip bomb stops at the cap, not at a full disk.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import tarfile
import zlib
from pathlib import Path, PurePosixPath

from ..errors import ComposerError, UsageError
from ..storage import StorageError, atomic_dir, download

_CHUNK = 1 << 20

#: The environment variable that sets the cap on what one model archive expands to.
MAX_BYTES_ENV = "COMPOSER_MAX_MODEL_BYTES"
#: 20 GiB: above most models served from CPU instances (SageMaker's default ML storage volume is
#: 30 GB), far below what a bomb expands to.
DEFAULT_MAX_BYTES = 20 * 1024**3
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
#: Entries per archive: models hold dozens to thousands; millions of empty files are an inode bomb.
MAX_MEMBERS = 100_000


class ModelDataError(ComposerError):
    """Model data that cannot be used safely or cannot be fetched."""


def max_model_bytes() -> int:
    """The cap from COMPOSER_MAX_MODEL_BYTES (bytes, or with a K, M, G or T suffix)."""
    raw = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_BYTES
    match = re.fullmatch(r"(\d+)\s*([KMGT]?)(?:i?B)?", raw, re.IGNORECASE)
    if match is None or int(match.group(1)) == 0:
        raise UsageError(
            f"{MAX_BYTES_ENV}: got {raw!r}; give a positive number of bytes, optionally with "
            "K, M, G or T (powers of 1024), such as 20G"
        )
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def _size(n: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} bytes"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _over_cap(shown: str, member: str, total: int, cap: int) -> ModelDataError:
    return ModelDataError(
        f"{shown}: member {member!r} takes the archive past {total} bytes ({_size(total)}) "
        f"expanded; the cap is {cap} bytes ({_size(cap)}). A real model this large needs "
        f"{MAX_BYTES_ENV} raised; a small archive expanding this far is a gzip bomb"
    )


def check_members(
    archive: tarfile.TarFile, shown: str, cap: int | None = None
) -> list[tarfile.TarInfo]:
    """Every member, or a ModelDataError naming the first unsafe one.

    Members are checked as their headers are read, so a bomb is refused at its first header
    past the cap rather than after decompressing the whole stream.
    """
    limit = max_model_bytes() if cap is None else cap
    members: list[tarfile.TarInfo] = []
    declared = 0
    for m in archive:
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
        if len(members) >= MAX_MEMBERS:
            raise ModelDataError(
                f"{shown}: more than {MAX_MEMBERS} members (at {m.name!r}); a model archive "
                "holds far fewer"
            )
        if m.isfile():
            declared += m.size
            if declared > limit:
                raise _over_cap(shown, m.name, declared, limit)
        members.append(m)
    return members


def extract_archive(archive_path: Path, dest: Path, *, cap: int | None = None) -> None:
    """Extract into a fresh `dest` after checking every member; nothing is left on failure.

    Files are written by this loop, not by tarfile, so every byte is counted against the cap
    as it lands (headers are counted first, in check_members; this is the second count).
    """
    shown = str(archive_path)
    limit = max_model_bytes() if cap is None else cap
    try:
        with atomic_dir(dest) as tmp, tarfile.open(archive_path, "r:*") as archive:
            members = check_members(archive, shown, limit)
            _write_members(archive, members, tmp, shown, limit)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ModelDataError(f"{shown}: not a readable tar archive ({exc})") from None
    except OSError as exc:  # a full disk, a file and a folder of one name
        raise ModelDataError(f"{shown}: cannot extract it: {exc}") from None


def _write_members(
    archive: tarfile.TarFile, members: list[tarfile.TarInfo], root: Path, shown: str, cap: int
) -> None:
    written = 0
    for m in members:
        # tarfile's own "data" filter as a second opinion on the name, and for a safe mode
        try:
            safe = tarfile.data_filter(m, str(root))
        except tarfile.FilterError as exc:
            raise ModelDataError(f"{shown}: member {m.name!r} refused: {exc}") from None
        target = root / safe.name
        if m.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        source = archive.extractfile(m)
        if source is None:  # not a regular file after all
            raise ModelDataError(f"{shown}: member {m.name!r} has no data; refused")
        with source, target.open("wb") as out:
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                if written > cap:
                    raise _over_cap(shown, m.name, written, cap)
                out.write(chunk)
        target.chmod((safe.mode if safe.mode is not None else 0o644) & 0o755 | 0o600)


def download_s3(uri: str, dest: Path) -> None:
    """Fetch an s3:// object (composer.storage: AWS_ENDPOINT_URL_S3 and the AWS chain apply)."""
    try:
        download(uri, dest)
    except StorageError as exc:
        raise ModelDataError(f"{uri}: download failed: {exc.reason}") from None


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
