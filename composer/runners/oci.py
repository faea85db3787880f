"""Real images: built per container, run as SageMaker runs them, pushed where deploy finds them.

`EngineRunner` plugs into the same supervisor and gateway as the process runner: each container
is an attached `ENGINE run --rm --network host ... IMAGE serve`, with its own
SAGEMAKER_BIND_TO_PORT (all containers share the host's network, as on one SageMaker instance)
and its model data mounted read-only at /opt/ml/model.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..render.builds import record_builds
from ..render.context import built_from_spec, write_build_context
from ..render.dockerfile import BIND_TO_PORT_LABEL, MULTI_MODEL_LABEL
from ..render.sagemaker import image_repository
from ..spec.models import Pipeline
from .contract import Prepared, container_env, free_port, model_dir_for, state_dir
from .engine import MODEL_DIR, Engine, EngineError
from .supervisor import pid_alive

#: Base image used when --base-image is not given; machines without Docker Hub set it.
BASE_IMAGE_ENV = "COMPOSER_BASE_IMAGE"
ENDPOINT_LABEL = "sm-compose.endpoint"
HOSTNAME_LABEL = "sm-compose.hostname"
#: Which working folder (hence which `up`) a container belongs to, and the pid that started it:
#: a container whose starter is gone is a leftover of a crash and is removed at the next start.
STATE_LABEL = "sm-compose.state"
OWNER_LABEL = "sm-compose.owner-pid"


def default_base_image(pipeline: Pipeline, explicit: str | None = None) -> str:
    return explicit or os.environ.get(BASE_IMAGE_ENV) or pipeline.base_image


@dataclass(frozen=True)
class BuiltImage:
    hostname: str
    ref: str
    built: bool  # False when an image with this content hash already existed


def build_images(
    engine: Engine,
    pipeline: Pipeline,
    *,
    base_image: str | None = None,
    tag: str | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
) -> list[BuiltImage]:
    """Build every `build:` container as `<ecr prefix>-<hostname>:<tag>`; check its labels.

    The default tag is the build context's content hash (the base image is part of the
    Dockerfile), so an unchanged context is not built again.
    """
    base = default_base_image(pipeline, base_image)
    out: list[BuiltImage] = []
    for c in pipeline.containers:
        if c.build is None:
            continue
        ctx = write_build_context(
            pipeline, c, state_dir(pipeline) / "build" / c.hostname, base_image=base
        )
        ref = f"{image_repository(pipeline, c.hostname)}:{tag or ctx.tag}"
        built = False
        if tag is not None or not engine.image_exists(ref):
            progress(f"{c.hostname}: building {ref}")
            try:
                engine.build(ctx.path, ref, on_line=_prefixed(progress, c.hostname))
            except EngineError as exc:
                if engine.image_exists(base):
                    raise
                raise EngineError(
                    f"{c.hostname}: the base image {base!r} is not in the engine's store and "
                    f"could not be pulled. Give one that is with --base-image or ${BASE_IMAGE_ENV} "
                    "(on machines without Docker Hub, scripts/setup-podman.sh and "
                    "scripts/setup-docker.sh make localhost/composer-base:bookworm)."
                    f"\n{exc}"
                ) from exc
            built = True
        check_labels(engine, ref, multi_model=c.multi_model)
        out.append(BuiltImage(c.hostname, ref, built))
    record_builds({b.ref: built_from_spec(pipeline, b.hostname) for b in out})
    return out


def check_labels(engine: Engine, ref: str, *, multi_model: bool) -> None:
    """Refuse an image without the labels SageMaker (and the host-network local run) rely on."""
    labels = engine.inspect_labels(ref)
    wanted = [BIND_TO_PORT_LABEL] + ([MULTI_MODEL_LABEL] if multi_model else [])
    missing = [label for label in wanted if labels.get(label) != "true"]
    if missing:
        needed = ", ".join(f"{m}=true" for m in missing)
        raise EngineError(f"{ref}: got labels {labels}; SageMaker needs {needed}")


def _prefixed(progress: Callable[[str], None], hostname: str) -> Callable[[str], None]:
    return lambda line: progress(f"{hostname}: {line}")


def state_id(pipeline: Pipeline) -> str:
    """Short and stable per working folder, so two checkouts of one pipeline never collide."""
    return hashlib.sha256(str(state_dir(pipeline)).encode()).hexdigest()[:12]


def container_name(pipeline: Pipeline, hostname: str, port: int) -> str:
    return f"sm-compose-{pipeline.name}-{hostname}-{state_id(pipeline)[:6]}-{port}"


def remove_leftovers(
    engine: Engine, pipeline: Pipeline, progress: Callable[[str], None] = lambda _msg: None
) -> list[str]:
    """Remove this pipeline's containers whose `sm-compose` is gone (killed before its clean-up).

    Containers of a live run (another `up` or `transform` of the same folder) are left alone.
    """
    return _remove_unowned(
        engine, engine.containers_labelled(STATE_LABEL, state_id(pipeline)), progress
    )


def remove_orphans(
    engine: Engine, progress: Callable[[str], None] = lambda _msg: None
) -> list[str]:
    """Remove every sm-compose container whose `sm-compose` is gone, whatever its folder.

    `sm-compose local` runs endpoints from folders of its own that a killed `local` never
    cleans, so at its start it removes what any killed run left (a live run's are left alone).
    """
    return _remove_unowned(engine, engine.containers_labelled(OWNER_LABEL), progress)


def _remove_unowned(engine: Engine, names: list[str], progress: Callable[[str], None]) -> list[str]:
    removed: list[str] = []
    for name in names:
        labels = engine.container_labels(name)
        if labels is None:
            continue  # removed meanwhile (--rm)
        owner = labels.get(OWNER_LABEL, "")
        if owner.isdigit() and (int(owner) == os.getpid() or pid_alive(int(owner))):
            continue
        progress(f"removing leftover container {name}")
        engine.rm(name, force=True)
        removed.append(name)
    return removed


@dataclass
class EngineRunner:
    """Runs each container's image with Podman or Docker, as SageMaker runs it."""

    engine_name: str
    base_image: str | None = None
    listen_host: str = "127.0.0.1"
    #: Made at once, so a missing engine or a daemon that does not answer is the first thing said.
    engine: Engine = field(init=False)

    def __post_init__(self) -> None:
        self.engine = Engine(self.engine_name)

    def prepare(
        self, pipeline: Pipeline, host: str, progress: Callable[[str], None]
    ) -> list[Prepared]:
        engine = self.engine
        remove_leftovers(engine, pipeline, progress)
        refs = {
            b.hostname: b.ref
            for b in build_images(engine, pipeline, base_image=self.base_image, progress=progress)
        }
        out: list[Prepared] = []
        for c in pipeline.containers:
            if c.image is not None:
                refs[c.hostname] = c.image
                if not engine.image_exists(c.image):
                    progress(f"{c.hostname}: pulling {c.image}")
                    engine.pull(c.image)
                check_labels(engine, c.image, multi_model=c.multi_model)
            model_dir = model_dir_for(pipeline, c, progress)
            port = free_port(self.listen_host)
            env = container_env(c, pipeline.position(c.hostname), port)
            env["COMPOSER_LISTEN_HOST"] = self.listen_host  # host network: stay on loopback
            name = container_name(pipeline, c.hostname, port)
            argv, child_env = engine.run_argv(
                name,
                refs[c.hostname],
                env=env,
                model_dir=Path(model_dir),
                labels={
                    ENDPOINT_LABEL: pipeline.name,
                    HOSTNAME_LABEL: c.hostname,
                    STATE_LABEL: state_id(pipeline),
                    OWNER_LABEL: str(os.getpid()),
                },
            )
            models = (Path(model_dir), MODEL_DIR) if c.multi_model else None
            out.append(
                Prepared(c, argv, child_env, None, port, engine.stop_argv(name), models=models)
            )
        return out
