"""The runner contract: what a runner hands the endpoint lifecycle, and what it gives a container.

A runner (`ProcessRunner` in runners/process.py, `EngineRunner` in runners/oci.py) turns each
container of a pipeline into a `Prepared` command line; runners/endpoint.py starts, supervises and
stops them behind the gateway. Every runner gives a container what SageMaker's platform gives it:
its own port and safe port range, the spec's environment, and its /opt/ml/model.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..spec.models import Container, Pipeline
from .modeldata import prepare_model_dir

SAFE_PORT_BASE = 21000


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the kernel's pick), for a container or a gateway."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def state_dir(pipeline: Pipeline) -> Path:
    """Per-pipeline working files (build contexts, logs, model folders) beside the spec."""
    return pipeline.state_dir


def container_env(container: Container, index: int, port: int) -> dict[str, str]:
    """What the platform gives a container, plus the spec's Environment."""
    low = SAFE_PORT_BASE + 1000 * index
    env = {
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_SAFE_PORT_RANGE": f"{low}-{low + 999}",
    }
    env.update(container.model_env)  # the spec's Environment, plus SAGEMAKER_MULTI_MODEL
    return env


def model_dir_for(
    pipeline: Pipeline, container: Container, progress: Callable[[str], None]
) -> Path:
    """The container's /opt/ml/model: its model data extracted (or downloaded) as SageMaker does.

    A multi-model container gets an empty folder instead: its models are extracted into it one
    by one, on first use (runners/multimodel.py).
    """
    data = container.model_data
    if container.multi_model:
        folder = state_dir(pipeline) / "models" / container.hostname / "multi-model"
        shutil.rmtree(folder, ignore_errors=True)  # what a previous run loaded is gone
        folder.mkdir(parents=True)
        return folder
    source = pipeline.resolve(data) if data is not None and not data.startswith("s3://") else None
    if data is not None:
        progress(f"{container.hostname}: preparing model data")
    work = state_dir(pipeline) / "models" / container.hostname
    return prepare_model_dir(data, source, work)


@dataclass
class Prepared:
    """A container ready to start: how to run it and where."""

    container: Container
    argv: list[str]
    env: dict[str, str]
    cwd: Path | None
    port: int
    stop_argv: list[str] | None = None
    #: Multi-model: (folder on this machine, the same folder as the container sees it).
    models: tuple[Path, str] | None = None
    #: Runs on this machine (not in an engine): its `serve` keeps its run files (nginx.conf,
    #: pid, gunicorn socket) in a folder `up` owns, so a kill -9 leaves nothing behind.
    on_host: bool = False


class Runner(Protocol):
    """Turns each container of a pipeline into a command line (processes or an OCI engine)."""

    def prepare(
        self, pipeline: Pipeline, host: str, progress: Callable[[str], None]
    ) -> list[Prepared]: ...
