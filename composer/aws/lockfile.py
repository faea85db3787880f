"""The image lock file: which pushed image each `build:` container runs.

`sm-compose push PIPELINE` writes `<pipeline file stem>.lock.json` beside the pipeline file;
`deploy` and `export` read it. Images are pinned by digest, so a redeploy runs exactly the bytes
that were pushed, and a new push changes the model's content hash (hence a new model)::

    {"images": {"<hostname>": "<registry>/<repository>@sha256:<64 hex digits>"}}

Hostnames not in the pipeline are ignored; `image:` containers never need an entry.

Read the other way (`locked_builds`), a lock file tells the local SageMaker which `build:`
folder each pinned reference was pushed from, so that image runs as local processes on a
machine that never built or pushed it (composer/localsm/).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from ..errors import UsageError
from ..render.builds import BuiltFrom
from ..render.context import built_from_spec
from ..spec.models import Pipeline
from ..storage import atomic_write

SUFFIX = ".lock.json"
DIGEST_REFERENCE = re.compile(r"[^\s@]+@sha256:[0-9a-f]{64}")


def lock_path(pipeline_file: Path) -> Path:
    """`pipelines/nlp.yaml` -> `pipelines/nlp.lock.json`."""
    name = pipeline_file.name
    for ext in (".yaml", ".yml"):
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    else:
        name = pipeline_file.stem
    return pipeline_file.with_name(name + SUFFIX)


def read_lock(path: Path) -> dict[str, str]:
    """Hostname -> pinned image URI; empty when there is no lock file yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the lock file: {exc}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{path}: not JSON ({exc.msg} at line {exc.lineno}); delete it and run "
            "`sm-compose push` again"
        ) from None
    images = document.get("images") if isinstance(document, dict) else None
    if not isinstance(images, dict):
        raise UsageError(f'{path}: got no "images" mapping; expected {{"images": {{HOST: URI}}}}')
    out: dict[str, str] = {}
    for host, uri in images.items():
        if not isinstance(uri, str) or not DIGEST_REFERENCE.fullmatch(uri):
            raise UsageError(
                f"{path}: images.{host}: got {uri!r}; expected REGISTRY/REPOSITORY@sha256:DIGEST"
            )
        out[str(host)] = uri
    return out


def write_lock(path: Path, images: Mapping[str, str]) -> None:
    """Replace the lock file atomically (sorted, so diffs stay small)."""
    for host, uri in images.items():
        if not DIGEST_REFERENCE.fullmatch(uri):
            raise UsageError(
                f"lock file: images.{host}: got {uri!r}; expected REGISTRY/REPOSITORY@sha256:DIGEST"
            )
    text = json.dumps({"images": dict(sorted(images.items()))}, indent=2) + "\n"
    atomic_write(path, text)


def update_lock(path: Path, images: Mapping[str, str]) -> dict[str, str]:
    """Merge new entries into the lock file; returns the whole mapping written."""
    merged = {**read_lock(path), **images}
    write_lock(path, merged)
    return merged


def locked_builds(pipeline: Pipeline) -> dict[str, BuiltFrom]:
    """Each pinned reference of the pipeline's lock file -> the `build:` folder it came from
    (empty without a lock file)."""
    if pipeline.source is None:
        return {}
    locked = read_lock(lock_path(pipeline.source))
    return {
        locked[c.hostname]: built_from_spec(pipeline, c.hostname)
        for c in pipeline.containers
        if c.build is not None and c.hostname in locked
    }
