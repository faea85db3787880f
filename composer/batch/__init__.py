"""Batch transform: the same pipeline over files, locally or as a SageMaker transform job."""

from .local import (
    ObjectResult,
    TransformFailed,
    TransformResult,
    transform_local,
)
from .params import Settled, TransformOptions, settle

__all__ = [
    "ObjectResult",
    "Settled",
    "TransformFailed",
    "TransformOptions",
    "TransformResult",
    "settle",
    "transform_local",
]
