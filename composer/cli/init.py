"""`sm-compose init DIR --template NAME`: a new project to start from, never over existing files.

The templates are plain folders shipped as package data (composer/templates/NAME/): each holds
pipeline.yaml, one folder per container, tests/test_pipeline.py (using the composer.testing
fixture) and a README. `__NAME__` in them becomes the pipeline's name. Besides their files,
`init` writes pipeline.schema.json (what `sm-compose schema` prints, for the editor comment on
pipeline.yaml's first line) and, for each folder under `model-sources/`, its model archive
`models/FOLDER.tar.gz`, packed as deploy packs model data.

Each template is a whole project on its own, to be read and changed by its user, so code that
two templates share is repeated in both on purpose.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import click

from ..aws.packing import pack_folder
from ..errors import UsageError
from ..spec import json_schema
from ._common import friendly

#: The templates, in the order `--help` lists them: the folder names under composer/templates/.
TEMPLATES = ("minimal", "direct", "serial", "multi-model", "async")
PLACEHOLDER = "__NAME__"
SCHEMA = "pipeline.schema.json"
MODEL_SOURCES = "model-sources"
#: A project name: SageMaker's name rule, lower-case (it also names the async template's S3
#: bucket) and short enough for the 8-character hash deploy adds.
NAME_RULE = re.compile(r"[a-z0-9](-*[a-z0-9]){0,53}")
NAME_HELP = "lower-case letters, digits and inner hyphens, at most 54 characters"
_SKIP = ("__pycache__", ".pyc")


def template_root(name: str) -> Traversable:
    return resources.files("composer") / "templates" / name


def _template_files(folder: Traversable, prefix: str = "") -> dict[str, str]:
    """Relative path -> text of every file under `folder` (byte-compiled leftovers skipped)."""
    found: dict[str, str] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(_SKIP):
            continue
        rel = f"{prefix}{entry.name}"
        if entry.is_dir():
            found |= _template_files(entry, rel + "/")
        else:
            found[rel] = entry.read_text(encoding="utf-8")
    return found


def default_name(directory: Path) -> str:
    """The folder's name as a pipeline name: lower-cased, other characters made hyphens."""
    name = re.sub(r"[^a-z0-9]+", "-", directory.resolve().name.lower()).strip("-")
    return name[:54].rstrip("-")


def project_files(template: str, name: str) -> dict[str, str]:
    """What `init` writes, relative path -> text (model archives are packed after)."""
    files = {
        rel: text.replace(PLACEHOLDER, name)
        for rel, text in _template_files(template_root(template)).items()
    }
    files[SCHEMA] = json.dumps(json_schema(), indent=2) + "\n"
    return files


def model_archives(files: dict[str, str]) -> dict[str, str]:
    """models/M.tar.gz -> model-sources/M, for each folder under model-sources/."""
    sources = {rel.split("/")[1] for rel in files if rel.startswith(f"{MODEL_SOURCES}/")}
    return {f"models/{m}.tar.gz": f"{MODEL_SOURCES}/{m}" for m in sorted(sources)}


def in_the_way(directory: Path, targets: list[str]) -> list[str]:
    """Those of `targets` (paths under `directory`) that exist, or under a file that does."""
    blocked = []
    for rel in targets:
        path = directory / rel
        parents = [p for p in path.parents if p.is_relative_to(directory) and p != directory]
        if path.exists() or path.is_symlink() or any(p.is_file() for p in parents):
            blocked.append(rel)
    return blocked


def write_project(directory: Path, template: str, name: str) -> list[str]:
    """Write the project, refusing (UsageError, nothing written) if any file is in the way."""
    if template not in TEMPLATES:
        raise UsageError(f"got template {template!r}; the templates are {', '.join(TEMPLATES)}")
    if not NAME_RULE.fullmatch(name):
        raise UsageError(f"got name {name!r}; a project name has {NAME_HELP} (give --name)")
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory}: got a file; init writes into a folder, new or existing")
    files = project_files(template, name)
    archives = model_archives(files)
    targets = sorted([*files, *archives])
    blocked = in_the_way(directory, targets)
    if blocked:
        listed = "\n".join(f"  {directory / rel}" for rel in blocked)
        raise UsageError(
            f"{directory}: refusing to overwrite {len(blocked)} existing file(s); nothing was "
            f"written. Move them away or choose another folder:\n{listed}"
        )
    for rel, text in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as out:  # "x": never over a file made meanwhile
            out.write(text)
    for archive, source in archives.items():
        (directory / archive).parent.mkdir(parents=True, exist_ok=True)
        pack_folder(directory / source, directory / archive)
    return targets


@click.command()
@click.argument("directory", type=click.Path(file_okay=True, path_type=Path))
@click.option(
    "--template",
    type=click.Choice(TEMPLATES),
    default="minimal",
    show_default=True,
    help="minimal: one container; direct: two invoked by hostname; serial: preprocessing into "
    "a model; multi-model: one container, many models; async: asynchronous inference.",
)
@click.option(
    "--name",
    default=None,
    help=f"The pipeline's (and endpoint's) name; {NAME_HELP}. Default: from DIRECTORY.",
)
@friendly
def init(directory: Path, template: str, name: str | None) -> None:
    """Start a project in DIRECTORY from a template: pipeline.yaml, its containers, tests."""
    chosen = name if name is not None else default_name(directory)
    written = write_project(directory, template, chosen)
    click.echo(f"{directory}: {template} project {chosen!r}, {len(written)} files")
    for rel in written:
        click.echo(f"  {rel}")
    click.echo(f"next: cd {directory} && sm-compose up pipeline.yaml (and pytest tests)")


COMMANDS = [init]
