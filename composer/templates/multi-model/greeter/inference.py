"""A multi-model container: one model per archive, each a model.json with a greeting,
{"name": ...} in, that model's greeting out. model_fn runs once per model load (the archive the
request's TargetModel names, extracted); the other functions serve every model, on threads."""

import json
from pathlib import Path
from typing import Any

from composer_serving import BadRequest, UnsupportedMediaType, media_type


def model_fn(model_dir: str) -> dict[str, str]:
    model: Any = json.loads((Path(model_dir) / "model.json").read_text(encoding="utf-8"))
    if not isinstance(model, dict) or not isinstance(model.get("greeting"), str):
        raise ValueError('model.json must be {"greeting": "...", "language": "..."}')
    return {"greeting": model["greeting"], "language": str(model.get("language", ""))}


def input_fn(body: bytes, content_type: str) -> str:
    if media_type(content_type) != "application/json":
        raise UnsupportedMediaType(content_type, ["application/json"])
    doc: Any = json.loads(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        raise BadRequest('expected {"name": "..."}')
    return str(doc["name"])


def predict_fn(name: str, model: dict[str, str]) -> dict[str, str]:
    return {"message": f"{model['greeting']}, {name}", "language": model["language"]}
