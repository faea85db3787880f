"""`sm-compose push`: every built image to ECR (or any registry), pinned by digest in the lock file.

Deploy reads the lock file, so what SageMaker pulls is exactly what was built and tested.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ComposerError, UsageError
from ..render.builds import record_builds
from ..render.context import built_from_spec
from ..render.sagemaker import image_repository
from ..runners.engine import Engine
from ..runners.oci import build_images
from ..spec.models import Pipeline
from .lockfile import lock_path, update_lock


@dataclass(frozen=True)
class RegistryLogin:
    """Where to push and how to log in; the password is never printed or logged."""

    registry: str
    username: str
    password: str

    def __repr__(self) -> str:
        return f"RegistryLogin(registry={self.registry!r}, username={self.username!r}, ...)"


def ecr_login(ecr: Any, repositories: list[str]) -> RegistryLogin:
    """Create the repositories that are missing and get a push token from ECR."""
    for name in repositories:
        with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
            ecr.create_repository(repositoryName=name)
    data = ecr.get_authorization_token()["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    registry = str(data["proxyEndpoint"]).removeprefix("https://").removeprefix("http://")
    return RegistryLogin(registry.rstrip("/"), username, password)


def push_images(
    pipeline: Pipeline,
    engine_name: str,
    *,
    registry: str | None = None,
    tls_verify: bool = True,
    region: str | None = None,
    base_image: str | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
    ecr: Any = None,
) -> tuple[Path, dict[str, str]]:
    """Build (if needed) and push; returns the lock file and hostname -> `repo@sha256:...`."""
    if pipeline.source is None:
        raise UsageError("push needs a pipeline read from a file: the lock file goes beside it")
    engine = Engine(engine_name)
    images = build_images(engine, pipeline, base_image=base_image, progress=progress)
    if not images:
        raise UsageError(f"{pipeline.name}: no build: containers, so there is nothing to push")
    if registry is not None:
        prefix = registry.rstrip("/")
    else:
        if ecr is None:
            import boto3

            ecr = boto3.client("ecr", region_name=region or pipeline.aws.region)
        login = ecr_login(ecr, [image_repository(pipeline, i.hostname) for i in images])
        progress(f"ecr: logging in to {login.registry}")
        engine.login(login.registry, login.username, login.password, tls_verify=tls_verify)
        prefix = login.registry
    pushed: dict[str, str] = {}
    for image in images:
        repository, _, tag = image.ref.rpartition(":")
        destination = f"{prefix}/{repository}:{tag}"
        progress(f"{image.hostname}: pushing {destination}")
        digest = engine.push(image.ref, destination, tls_verify=tls_verify)
        if not digest.startswith("sha256:"):
            raise ComposerError(f"{destination}: the engine reported no digest (got {digest!r})")
        pushed[image.hostname] = f"{prefix}/{repository}@{digest}"
        progress(f"{image.hostname}: pushed {pushed[image.hostname]}")
    lock = lock_path(pipeline.source)
    update_lock(lock, pushed)
    record_builds({uri: built_from_spec(pipeline, host) for host, uri in pushed.items()})
    return lock, pushed
