"""The second step: {"tokens": [...]} in (what preprocess answers), a sentiment out, scored with
a small word list. Replace the list with your model: load it in model_fn from model_dir."""

import json
from typing import Any

from composer_serving import BadRequest, UnsupportedMediaType, media_type

POSITIVE = {"good", "great", "love", "lovely", "nice", "happy", "excellent"}
NEGATIVE = {"bad", "awful", "hate", "broke", "broken", "sad", "terrible"}


def model_fn(model_dir: str) -> dict[str, set[str]]:
    return {"positive": POSITIVE, "negative": NEGATIVE}


def input_fn(body: bytes, content_type: str) -> list[str]:
    if media_type(content_type) != "application/json":
        raise UnsupportedMediaType(content_type, ["application/json"])
    doc: Any = json.loads(body)
    tokens = doc.get("tokens") if isinstance(doc, dict) else None
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise BadRequest('expected {"tokens": ["...", ...]} (what preprocess answers)')
    return tokens


def predict_fn(tokens: list[str], model: dict[str, set[str]]) -> dict[str, Any]:
    score = sum(t in model["positive"] for t in tokens) - sum(
        t in model["negative"] for t in tokens
    )
    label = "positive" if score > 0 else "negative" if score < 0 else "neutral"
    return {"tokens": tokens, "score": score, "label": label}
