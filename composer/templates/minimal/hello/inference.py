"""{"name": ...} in, a greeting out: the handler convention of sagemaker-composer's
docs/containers.md (model_fn once, then input_fn, predict_fn and output_fn per request)."""

import json
from typing import Any

from composer_serving import BadRequest, UnsupportedMediaType, media_type


def model_fn(model_dir: str) -> dict[str, str]:
    return {"greeting": "hello"}


def input_fn(body: bytes, content_type: str) -> str:
    if media_type(content_type) != "application/json":
        raise UnsupportedMediaType(content_type, ["application/json"])
    doc: Any = json.loads(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        raise BadRequest('expected {"name": "..."}')
    return str(doc["name"])


def predict_fn(name: str, model: dict[str, str]) -> dict[str, str]:
    return {"message": f"{model['greeting']}, {name}"}
