"""The first step: text (JSON {"text": ...} or text/plain) in, lower-cased word tokens out, as
{"tokens": [...]} for the model container."""

import json
import re
from typing import Any

from composer_serving import BadRequest, UnsupportedMediaType, media_type

WORD = re.compile(r"[a-z']+")


def model_fn(model_dir: str) -> None:
    return None


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


def predict_fn(text: str, model: None) -> dict[str, list[str]]:
    return {"tokens": WORD.findall(text.lower())}


def output_fn(prediction: dict[str, list[str]], accept: str) -> tuple[str, str]:
    # The next container reads this Content-Type: say it, whatever the caller's Accept was.
    return json.dumps(prediction), "application/json"
