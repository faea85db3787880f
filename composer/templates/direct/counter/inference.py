"""{"text": ...} in, its word and character counts out: the second container of the Direct
pipeline, invoked by its hostname."""

import json
from typing import Any

from composer_serving import BadRequest, UnsupportedMediaType, media_type


def model_fn(model_dir: str) -> None:
    return None  # nothing to load: the counting is the model


def input_fn(body: bytes, content_type: str) -> str:
    kind = media_type(content_type)
    if kind == "text/plain":
        return body.decode("utf-8")
    if kind != "application/json":
        raise UnsupportedMediaType(content_type, ["application/json", "text/plain"])
    doc: Any = json.loads(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
        raise BadRequest('expected {"text": "..."}')
    return str(doc["text"])


def predict_fn(text: str, model: None) -> dict[str, int]:
    return {"words": len(text.split()), "characters": len(text)}
