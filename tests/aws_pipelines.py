"""Pipelines the AWS tests deploy: two containers on image: URIs of a made-up account.

Plain files, no AWS: unit tests (deploy's checks, dry runs) and integration tests (moto) use
the same ones.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from composer.aws.plan import Plan, preflight
from composer.spec import load_pipeline

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerExecution"
SPACY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/spacy:1"
TEXTBLOB = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/textblob:1"


def tiny_model(path: Path, text: str = "weights v1") -> Path:
    """A model .tar.gz with one file, as a container would find it in /opt/ml/model."""
    data = text.encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("model.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def plan_for(path: Path) -> Plan:
    """deploy's plan of a pipeline file (no AWS call)."""
    return preflight(load_pipeline(path), str(path), REGION)


def write_pipeline(
    folder: Path,
    *,
    mode: str = "Direct",
    name: str | None = None,
    extra_env: str = "v1",
    autoscaling: bool = False,
    role: str | None = ROLE,
    bucket: str | None = None,
    model_data: str = "model.tar.gz",
    textblob_build: bool = False,
    images: tuple[str, str] = (SPACY, TEXTBLOB),
) -> Path:
    """A two-container pipeline file using image: URIs (or a build: folder for textblob).

    `images`: spacy's and textblob's URIs, e.g. references `sm-compose build` recorded, which
    the local SageMaker runs as processes."""
    folder.mkdir(parents=True, exist_ok=True)
    if model_data == "model.tar.gz" and not (folder / "model.tar.gz").exists():
        tiny_model(folder / "model.tar.gz")
    name = name or f"nlp-{mode.lower()}"
    if textblob_build:
        (folder / "textblob").mkdir(exist_ok=True)
        (folder / "textblob" / "inference.py").write_text("def predict(x):\n    return x\n")
        second = "    build: textblob\n"
    else:
        second = f"    image: {images[1]}\n"
    lines = [
        f"name: {name}",
        f"mode: {mode}",
        "containers:",
        "  - hostname: spacy",
        f"    image: {images[0]}",
        f"    model_data: {model_data}",
        "    environment:",
        f"      STAGE: {extra_env}",
        "  - hostname: textblob",
        second.rstrip("\n"),
        "endpoint:",
        "  instance_type: ml.m5.large",
        "  instance_count: 1",
    ]
    if autoscaling:
        lines += [
            "  autoscaling:",
            "    min_instances: 1",
            "    max_instances: 4",
            "    target_invocations_per_instance: 100",
        ]
    lines += ["aws:", f"  region: {REGION}", "  tags:", "    project: composer-tests"]
    if role is not None:
        lines.append(f"  role_arn: {role}")
    if bucket is not None:
        lines.append(f"  s3_bucket: {bucket}")
    path = folder / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
