"""A transform's input objects: a file, every file below a folder, or every object below an S3
prefix, each named by its path below the input location (the name of its output).

Reading and writing them is `composer.storage`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..storage import is_s3, list_keys, parse_s3


@dataclass(frozen=True)
class InputObject:
    """One input object; `name` is its path below the input location (the output's name)."""

    name: str
    location: str


def list_inputs(location: str) -> list[InputObject]:
    """A file, every file below a folder, or every object below an S3 prefix, sorted."""
    if is_s3(location):
        return _list_s3(location)
    path = Path(location)
    if path.is_file():
        return [InputObject(path.name, str(path))]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise UsageError(f"--input: the folder {path} holds no files")
        return [InputObject(p.relative_to(path).as_posix(), str(p)) for p in files]
    raise UsageError(f"--input: got {location!r}, which is neither a file, a folder nor s3://")


def _list_s3(location: str) -> list[InputObject]:
    bucket, prefix = parse_s3(location)
    base = prefix[: prefix.rfind("/") + 1]  # names are relative to the prefix's "folder"
    found = [InputObject(key[len(base) :], f"s3://{bucket}/{key}") for key in list_keys(location)]
    if not found:
        raise UsageError(f"--input: no objects under {location}")
    return sorted(found, key=lambda o: o.name)
