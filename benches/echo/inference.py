"""Echo: the answer is the request, byte for byte.

The benchmarks' trivial model, so that what they measure is the serving path, not a model.
"""

from __future__ import annotations


def model_fn(model_dir: str) -> None:
    return None


def input_fn(body: bytes, content_type: str) -> bytes:
    return body


def predict_fn(data: bytes, model: None) -> bytes:
    return data


def output_fn(prediction: bytes, accept: str) -> tuple[bytes, str]:
    return prediction, "application/json"
