"""A local SageMaker: the control plane that lets existing SageMaker code run on this machine.

Sits beside composer/aws/, above the runners. Where each behaviour lives:

- operations.py: `LocalSageMaker`, the emulated operations and their in-memory state (models,
  endpoint configs, endpoints, tags): ARNs, timestamps, statuses, List* paging;
- shapes.py: botocore's service model, loaded at run time: each input checked as SageMaker
  checks it;
- pipelines.py: CreateModel and a production variant as a pipeline (the spec's rule book, one
  set of rules), and where each image runs (local processes or an engine);
- transforms.py: transform jobs, run by the local batch transform (composer/batch/);
- lifecycle.py: starting a set of containers, switching the gateway to it, stopping the old;
- watch.py: `up --watch` and `local --watch`, each saved change reloaded through lifecycle.py's
  swap;
- errors.py: `ApiError`, SageMaker's error codes and messages;
- server.py: `serve_local`, what `sm-compose local` runs; `pipeline_with_control_plane`, `up`'s.
"""

from .lifecycle import Lifecycle
from .operations import LocalSageMaker
from .server import pipeline_with_control_plane, serve_local

__all__ = ["Lifecycle", "LocalSageMaker", "pipeline_with_control_plane", "serve_local"]
