"""Where transform input comes from and output goes: local files and folders, or S3.

S3 goes through an unmodified boto3 client from the standard chain, so AWS_ENDPOINT_URL_S3
points it elsewhere (moto's server in the tests).
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import ComposerError, UsageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_S3 = re.compile(r"^s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(.*))?$")


class StorageError(ComposerError):
    """Reading input or writing output failed."""


def parse_s3(uri: str) -> tuple[str, str]:
    """s3://bucket/key -> (bucket, key); the key may be empty."""
    match = _S3.match(uri)
    if match is None:
        raise UsageError(f"got {uri!r}; an S3 location is s3://BUCKET[/PREFIX]")
    return match.group(1), match.group(2) or ""


def is_s3(location: str) -> bool:
    return location.startswith("s3://")


_clients: dict[tuple[str | None, ...], Any] = {}
_lock = threading.Lock()


def s3_client() -> S3Client:
    """A client per endpoint setting; created on first use so local-only runs never need AWS."""
    key = tuple(os.environ.get(k) for k in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"))
    with _lock:
        if key not in _clients:
            import boto3

            _clients[key] = boto3.session.Session().client("s3")
        client: S3Client = _clients[key]
    return client


def _fail(what: str, exc: Exception) -> StorageError:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return StorageError(f"{what}: {err.get('Code', '')}: {err.get('Message', exc)}")
    return StorageError(f"{what}: {exc}")


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
    found: list[InputObject] = []
    try:
        for page in (
            s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        ):
            for item in page.get("Contents", []):
                key = item["Key"]
                if key.endswith("/"):
                    continue
                found.append(InputObject(key[len(base) :], f"s3://{bucket}/{key}"))
    except (ClientError, BotoCoreError) as exc:
        raise _fail(f"listing {location}", exc) from None
    if not found:
        raise UsageError(f"--input: no objects under {location}")
    return sorted(found, key=lambda o: o.name)


def read_location(location: str) -> bytes:
    """The bytes of a local file (path or file://) or an S3 object."""
    if is_s3(location):
        bucket, key = parse_s3(location)
        try:
            return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise _fail(f"reading {location}", exc) from None
    path = Path(location.removeprefix("file://"))
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StorageError(f"reading {path}: {exc.strerror}") from None


def exists(location: str) -> bool:
    if is_s3(location):
        bucket, key = parse_s3(location)
        try:
            s3_client().head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise _fail(f"looking for {location}", exc) from None
        return True
    return Path(location.removeprefix("file://")).is_file()


def join(location: str, name: str) -> str:
    return location.rstrip("/") + "/" + name


def write_location(location: str, data: bytes, content_type: str | None = None) -> None:
    """Write a whole object at once, so a reader never sees half of it."""
    if is_s3(location):
        bucket, key = parse_s3(location)
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        try:
            s3_client().put_object(Bucket=bucket, Key=key, Body=data, **extra)
        except (ClientError, BotoCoreError) as exc:
            raise _fail(f"writing {location}", exc) from None
        return
    path = Path(location.removeprefix("file://"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(data)
        partial.replace(path)
    except OSError as exc:
        raise StorageError(f"writing {path}: {exc.strerror}") from None
