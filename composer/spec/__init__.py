"""The pipeline.yaml spec: pydantic models and a loader that locates every error."""

from .loader import load_pipeline, parse_pipeline
from .models import Autoscaling, Aws, Container, Endpoint, Pipeline

__all__ = [
    "Autoscaling",
    "Aws",
    "Container",
    "Endpoint",
    "Pipeline",
    "load_pipeline",
    "parse_pipeline",
]
