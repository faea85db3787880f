"""Which build context made which image reference: the record the local SageMaker reads.

`sm-compose build` (the placeholder ECR references of its request documents), `build --engine`
and `up --engine` (the local image references) and `push` (the pushed references, pinned by
digest, as the lock file has them) each record, per reference, the container folder it was
built from. `sm-compose local` runs an image found here as local processes from that folder, as
`up` does, with no OCI engine; any other image needs `--engine`. A lock file made elsewhere (no
record here) maps its pinned references back to their `build:` folders too, once it is named to
the local SageMaker (composer/aws/lockfile.py's `locked_builds`): `built_from`'s `known`.

The record is one JSON file in the cache folder (composer/cache.py), replaced atomically:
`{"images": {REF: {"source": FOLDER, "pipeline": FILE, "hostname": NAME}}}`. Losing it only
means building (or passing `--engine`) again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from ..cache import cache_dir
from ..storage import atomic_write

RECORD_NAME = "builds.json"


@dataclass(frozen=True)
class BuiltFrom:
    """Where one image reference came from."""

    source: str  # the container folder (inference.py, requirements.txt), absolute
    pipeline: str  # the pipeline file that named it ("" for a pipeline built in code)
    hostname: str


def record_path() -> Path:
    return cache_dir() / RECORD_NAME


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One writer at a time: two builds recording at once must not lose each other's entries."""
    path = record_path().with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _read() -> dict[str, BuiltFrom]:
    try:
        document = json.loads(record_path().read_text(encoding="utf-8"))
        images = document["images"]
        return {str(ref): BuiltFrom(**entry) for ref, entry in images.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}  # none yet, or not ours to trust: built again, it is written anew


def record_builds(entries: Mapping[str, BuiltFrom]) -> None:
    """Add (or replace) these references in the record."""
    if not entries:
        return
    with _locked():
        merged = {**_read(), **entries}
        document = {"images": {ref: asdict(b) for ref, b in sorted(merged.items())}}
        atomic_write(record_path(), json.dumps(document, indent=2) + "\n")


def built_from(ref: str, known: Mapping[str, BuiltFrom] | None = None) -> BuiltFrom | None:
    """The container folder that made `ref` (`known` first: what lock files say; then the
    record), if it still holds an inference.py."""
    found = (known or {}).get(ref) or _read().get(ref)
    if found is None or not (Path(found.source) / "inference.py").is_file():
        return None
    return found
