"""The pipeline.yaml spec: pydantic models and a loader that locates every error."""

from .loader import load_pipeline, parse_pipeline
from .models import Autoscaling, Aws, Batching, Container, Endpoint, Pipeline, json_schema

__all__ = [
    "Autoscaling",
    "Aws",
    "Batching",
    "Container",
    "Endpoint",
    "Pipeline",
    "json_schema",
    "load_pipeline",
    "parse_pipeline",
]
