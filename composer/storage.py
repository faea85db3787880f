"""Where bytes are kept: local files and S3 objects, read, written and looked for the same way.

S3 goes through unmodified boto3 clients from the standard chain (so AWS_ENDPOINT_URL_S3 points
them elsewhere, at moto's server in the tests), one per endpoint setting, created on first use:
a run that touches no S3 location never needs AWS. Local files and folders are written beside
their place and renamed into it, so a reader sees them whole or not at all.

A leaf: the gateway, batch, the runners, the AWS layer, render and the public client all use it.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .errors import ComposerError, UsageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_S3 = re.compile(r"^s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(.*))?$")
#: What S3 answers (HeadObject, GetObject) for a key that is not there.
MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
#: The variables that decide where a client from the standard chain sends its requests.
_CHAIN = (
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
)


class StorageError(ComposerError):
    """Reading, writing, listing or looking for a location failed; `reason` says why."""

    def __init__(self, action: str, location: str, reason: str) -> None:
        super().__init__(f"{action} {location}: {reason}")
        self.action = action
        self.location = location
        self.reason = reason


class TooLarge(StorageError):
    """An object larger than the reader's limit; nothing of it was read."""

    def __init__(self, location: str, size: int, limit: int) -> None:
        super().__init__("reading", location, f"{size} bytes; the limit is {limit}")
        self.size = size
        self.limit = limit


@dataclass(frozen=True)
class Blob:
    """An object's bytes and its content type ("" when none is stored, as for local files)."""

    data: bytes
    content_type: str = ""


# --- locations --------------------------------------------------------------------------------


def is_s3(location: str) -> bool:
    return location.startswith("s3://")


def parse_s3(uri: str) -> tuple[str, str]:
    """s3://bucket/key -> (bucket, key); the key may be empty."""
    match = _S3.match(uri)
    if match is None:
        raise UsageError(f"got {uri!r}; an S3 location is s3://BUCKET[/PREFIX]")
    return match.group(1), match.group(2) or ""


def join(location: str, name: str) -> str:
    return location.rstrip("/") + "/" + name


def _local(location: str) -> Path:
    return Path(location.removeprefix("file://"))


def _object(action: str, location: str) -> tuple[str, str]:
    try:
        return parse_s3(location)
    except UsageError:
        raise StorageError(action, location, "not an S3 location (s3://BUCKET/KEY)") from None


# --- S3 ---------------------------------------------------------------------------------------

_clients: dict[tuple[str | None, ...], Any] = {}
_lock = threading.Lock()


def s3_client() -> S3Client:
    """The S3 client of the current endpoint and region settings, created once (thread-safe)."""
    key = tuple(os.environ.get(k) for k in _CHAIN)
    with _lock:
        client = _clients.get(key)
        if client is None:
            import boto3

            client = _clients[key] = boto3.session.Session().client("s3")
    return client


def _errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return ClientError, BotoCoreError


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _reason(exc: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        return f"{_code(exc)}: {exc.response.get('Error', {}).get('Message', exc)}"
    return str(exc)


def _missing(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    return (
        isinstance(exc, ClientError) and str(exc.response.get("Error", {}).get("Code")) in MISSING
    )


# --- reading and writing ----------------------------------------------------------------------


def read_object(location: str, *, limit: int | None = None) -> Blob:
    """An S3 object or a local file (a path or file://), whole; TooLarge past `limit` bytes."""
    if is_s3(location):
        bucket, key = _object("reading", location)
        try:
            obj = s3_client().get_object(Bucket=bucket, Key=key)
            size = int(obj.get("ContentLength", 0))
            if limit is not None and size > limit:
                obj["Body"].close()
                raise TooLarge(location, size, limit)
            return Blob(bytes(obj["Body"].read()), str(obj.get("ContentType", "")))
        except _errors() as exc:
            raise StorageError("reading", location, _reason(exc)) from None
    path = _local(location)
    try:
        size = path.stat().st_size
        if limit is not None and size > limit:
            raise TooLarge(str(path), size, limit)
        return Blob(path.read_bytes())
    except OSError as exc:
        raise StorageError("reading", str(path), str(exc.strerror)) from None


def read(location: str, *, limit: int | None = None) -> bytes:
    return read_object(location, limit=limit).data


def write(location: str, data: bytes, content_type: str | None = None) -> None:
    """Write a whole object at once, so a reader never sees half of it."""
    if is_s3(location):
        bucket, key = _object("writing", location)
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        try:
            s3_client().put_object(Bucket=bucket, Key=key, Body=data, **extra)
        except _errors() as exc:
            raise StorageError("writing", location, _reason(exc)) from None
        return
    path = _local(location)
    try:
        atomic_write(path, data)
    except OSError as exc:
        raise StorageError("writing", str(path), str(exc.strerror)) from None


def exists(location: str) -> bool:
    if is_s3(location):
        bucket, key = _object("looking for", location)
        try:
            s3_client().head_object(Bucket=bucket, Key=key)
        except _errors() as exc:
            if _missing(exc):
                return False
            raise StorageError("looking for", location, _reason(exc)) from None
        return True
    return _local(location).is_file()


def list_keys(location: str) -> list[str]:
    """The keys of every object under an S3 prefix (folder markers left out), in S3's order."""
    bucket, prefix = _object("listing", location)
    keys: list[str] = []
    try:
        for page in (
            s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        ):
            keys += [
                item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/")
            ]
    except _errors() as exc:
        raise StorageError("listing", location, _reason(exc)) from None
    return keys


def download(uri: str, dest: Path) -> None:
    """An S3 object to a local file (boto3's managed transfer: large objects in parts)."""
    bucket, key = _object("downloading", uri)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        s3_client().download_file(bucket, key, str(dest))
    except _errors() as exc:
        raise StorageError("downloading", uri, _reason(exc)) from None


# --- atomic local writes ----------------------------------------------------------------------


def _beside(path: Path) -> Path:
    """A fresh name next to `path`: two writers of one path never share it."""
    return path.with_name(f"{path.name}.{secrets.token_hex(4)}.partial")


@contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """A file opened for writing that appears at `path` once closed without error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _beside(path)
    try:
        with tmp.open("xb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: Path, data: bytes | str) -> None:
    """Replace `path` with `data` (str as UTF-8) whole, or leave it as it was."""
    with atomic_file(path) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """A folder to fill beside `path`; it replaces `path` once the block ends without error and
    is removed if the block fails, so `path` is never half made."""
    tmp = _beside(path)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
