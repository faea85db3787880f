"""Batch transform: the same pipeline over files, locally or as a SageMaker transform job."""

from .local import (
    ObjectResult,
    TransformFailed,
    TransformResult,
    check_batch_supported,
    transform_local,
)
from .params import Settled, TransformOptions, settle

__all__ = [
    "ObjectResult",
    "Settled",
    "TransformFailed",
    "TransformOptions",
    "TransformResult",
    "check_batch_supported",
    "settle",
    "transform_local",
]
