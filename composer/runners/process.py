"""The process runner, `up`'s default: each container's `serve` as a process on this machine.

Each container runs its generated `serve` from its build context (the files the image gets), in
its own cached Python environment (runners/envs.py: all built at once, with uv), on its own
loopback port, with its model data extracted as SageMaker would. No OCI engine is needed; nginx
is.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ComposerError, UsageError
from ..render.context import write_build_context
from ..spec.models import Pipeline
from .contract import Prepared, container_env, free_port, model_dir_for, state_dir
from .envs import ensure_envs, python_of

_BASE_ENV_KEYS = ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE")


@dataclass
class ProcessRunner:
    """Runs `serve` from each build context in a cached environment: no engine needed."""

    listen_host: str = "127.0.0.1"

    def prepare(
        self, pipeline: Pipeline, host: str, progress: Callable[[str], None]
    ) -> list[Prepared]:
        images = [c.hostname for c in pipeline.containers if c.image is not None]
        if images:
            raise UsageError(
                f"container {', '.join(images)} uses image:; the process runner runs build: "
                "containers only. Run it with an OCI engine: sm-compose up PIPELINE --engine "
                "podman (or docker)"
            )
        if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
            raise ComposerError(
                "nginx is not installed; every container serves through nginx as in its image "
                "(run scripts/setup.sh, or apt-get install nginx-light)"
            )
        work = state_dir(pipeline)
        contexts = [
            write_build_context(pipeline, c, work / "build" / c.hostname)
            for c in pipeline.containers
        ]
        # Every container's environment at once (most of a first `up`), one progress line.
        envs = ensure_envs(
            [
                (ctx.path / "requirements.txt", c.hostname)
                for c, ctx in zip(pipeline.containers, contexts, strict=True)
            ],
            on_progress=progress,
        )
        out: list[Prepared] = []
        for c, ctx, env_dir in zip(pipeline.containers, contexts, envs, strict=True):
            model_dir = model_dir_for(pipeline, c, progress)
            port = free_port(self.listen_host)
            env = _base_env()
            env.update(container_env(c, pipeline.position(c.hostname), port))
            env["COMPOSER_LISTEN_HOST"] = self.listen_host
            env["SM_MODEL_DIR"] = str(model_dir)
            argv = [str(python_of(env_dir)), str(ctx.path / "serve"), "serve"]
            models = (model_dir, str(model_dir)) if c.multi_model else None
            out.append(Prepared(c, argv, env, ctx.path, port, models=models, on_host=True))
        return out


def _base_env() -> dict[str, str]:
    """The little of this machine's environment a process needs (not its AWS credentials)."""
    env = {k: os.environ[k] for k in _BASE_ENV_KEYS if k in os.environ}
    path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    if "/usr/sbin" not in path.split(":"):
        path += ":/usr/sbin:/sbin"
    env["PATH"] = path
    return env
