"""sagemaker-composer: one pipeline.yaml to a SageMaker multi-container endpoint.

The public API is what this module exports; everything else may change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ComposerError, SpecError, SpecIssue, UsageError
from .spec import Pipeline, load_pipeline

if TYPE_CHECKING:
    from .client import EndpointClient, InvocationError, InvokeResult

__all__ = [
    "ComposerError",
    "EndpointClient",
    "InvocationError",
    "InvokeResult",
    "Pipeline",
    "SpecError",
    "SpecIssue",
    "UsageError",
    "load_pipeline",
]

_LAZY = {"EndpointClient", "InvocationError", "InvokeResult"}


def __getattr__(name: str) -> Any:
    # The client imports boto3; loading it only when asked keeps `sm-compose --help` fast.
    if name in _LAZY:
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'composer' has no attribute {name!r}")
