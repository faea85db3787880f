"""sagemaker-composer: one pipeline.yaml to a SageMaker multi-container endpoint."""

from .errors import ComposerError, SpecError, SpecIssue, UsageError
from .spec import Pipeline, load_pipeline

__all__ = [
    "ComposerError",
    "Pipeline",
    "SpecError",
    "SpecIssue",
    "UsageError",
    "load_pipeline",
]
