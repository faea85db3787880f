#!/usr/bin/env python3
"""Make the models of the multi-model spaCy example: one .tar.gz per spaCy pipeline, in a folder.

  en-sm.tar.gz     en_core_web_sm, re-packed from artifacts/spacy-model.tar.gz (made first by
                   scripts/make-spacy-model.py when missing) into an en_core_web_sm/ folder, so
                   the container finds it one level down;
  en-rules.tar.gz  a blank English pipeline: a sentencizer and an EntityRuler with a few
                   patterns, saved with nlp.to_disk;
  de-rules.tar.gz  the same in German.

Archives are deterministic (sorted members, mtime 0, owner 0, no links), so the same inputs give
the same bytes and deploy uploads an unchanged model only once. The blank pipelines need spaCy
and a fixed hash seed: the script runs itself again with PYTHONHASHSEED=0, in the environment
the container runs in when this interpreter has no spaCy (containers/spacy-multi/requirements.txt:
the same pin as containers/spacy), building it once (with uv, as `sm-compose up` does) in the
cache `sm-compose up` uses.
Usage: scripts/make-spacy-models.py OUT_FOLDER   (does nothing when every archive is valid)
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CONTAINER = REPO / "containers" / "spacy-multi"
SOURCE = REPO / "artifacts" / "spacy-model.tar.gz"
INNER = "--with-spacy"

#: Each blank pipeline: its language, name, and EntityRuler patterns.
RULES: dict[str, dict[str, object]] = {
    "en-rules.tar.gz": {
        "lang": "en",
        "name": "rules",
        "patterns": [
            {"label": "ORG", "pattern": "Apple"},
            {"label": "ORG", "pattern": "Amazon Web Services"},
            {"label": "PRODUCT", "pattern": "SageMaker"},
            {"label": "GPE", "pattern": [{"LOWER": "u.k."}]},
            {"label": "GPE", "pattern": "London"},
        ],
    },
    "de-rules.tar.gz": {
        "lang": "de",
        "name": "regeln",
        "patterns": [
            {"label": "ORG", "pattern": "Deutsche Bahn"},
            {"label": "PRODUCT", "pattern": "SageMaker"},
            {"label": "GPE", "pattern": "Berlin"},
            {"label": "GPE", "pattern": "München"},
        ],
    },
}
ARCHIVES = ["en-sm.tar.gz", *RULES]


def valid(archive: Path) -> bool:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            names = tar.getnames()
    except (OSError, tarfile.TarError):
        return False
    return any(n == "config.cfg" or n.endswith("/config.cfg") for n in names)


def _write(members: list[tuple[str, bytes | None]], out: Path) -> None:
    """A .tar.gz of (name, bytes) members, None for a folder: sorted, dated 0, owned by 0."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(members, key=lambda m: m[0]):
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid = 0, 0, 0
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    tmp = out.with_name(out.name + ".partial")
    with tmp.open("wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
        gz.write(raw.getvalue())
    tmp.rename(out)


def _folder_members(folder: Path, under: str = "") -> list[tuple[str, bytes | None]]:
    members: list[tuple[str, bytes | None]] = [(under.rstrip("/"), None)] if under else []
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            raise SystemExit(f"{path}: a link; SageMaker refuses links in model archives")
        name = under + path.relative_to(folder).as_posix()
        members.append((name, None if path.is_dir() else path.read_bytes()))
    return members


def repack_en_sm(out: Path) -> None:
    if not valid(SOURCE):
        subprocess.run([sys.executable, str(HERE / "make-spacy-model.py"), str(SOURCE)], check=True)
    members: list[tuple[str, bytes | None]] = [("en_core_web_sm", None)]
    with tarfile.open(SOURCE, "r:gz") as tar:
        for info in tar.getmembers():
            if not (info.isfile() or info.isdir()):
                raise SystemExit(f"{SOURCE}: {info.name} is neither file nor folder")
            reader = tar.extractfile(info) if info.isfile() else None
            data = reader.read() if reader is not None else None
            members.append((f"en_core_web_sm/{info.name}", data))
    _write(members, out)


def save_rules(spec: dict[str, object], out: Path) -> None:
    import spacy  # only here: the re-packing above needs no spaCy

    nlp = spacy.blank(str(spec["lang"]))
    nlp.add_pipe("sentencizer")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns(list(spec["patterns"]))  # type: ignore[call-overload]
    nlp.meta["name"] = str(spec["name"])
    nlp.meta["version"] = "1.0.0"
    with tempfile.TemporaryDirectory() as tmp:
        nlp.to_disk(tmp)
        _write(_folder_members(Path(tmp)), out)


def _spacy_python() -> Path:
    """The container's environment (built once, cached), as `sm-compose up` builds it."""
    sys.path.insert(0, str(REPO))
    from composer.render.context import requirements_text
    from composer.runners.envs import ensure_env, python_of

    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(requirements_text(CONTAINER), encoding="utf-8")
        env = ensure_env(
            requirements,
            label="spacy-multi",
            on_progress=lambda line: print(f"make-spacy-models: {line}", file=sys.stderr),
        )
    return python_of(env)


def main() -> int:
    args = [a for a in sys.argv[1:] if a != INNER]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(args[0])
    missing = [name for name in ARCHIVES if not valid(out / name)]
    if not missing:
        return 0
    out.mkdir(parents=True, exist_ok=True)
    if "en-sm.tar.gz" in missing:
        repack_en_sm(out / "en-sm.tar.gz")
        missing.remove("en-sm.tar.gz")
    if not missing:
        return 0
    if INNER not in sys.argv:
        # spaCy writes some sets (the sentencizer's characters) in hash order: a fixed seed
        # makes the saved files, and so the archives, the same bytes every time.
        try:
            import spacy  # noqa: F401

            python = Path(sys.executable)
        except ImportError:
            python = _spacy_python()
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        return subprocess.run([str(python), __file__, str(out), INNER], env=env).returncode
    for name in missing:
        save_rules(RULES[name], out / name)
    for name in ARCHIVES:
        size = (out / name).stat().st_size // 1024
        print(f"make-spacy-models: {out / name} ({size} KiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
