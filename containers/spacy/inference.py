"""spaCy: entities, sentences, tokens and noun chunks of each text.

Reads application/json ({"text": ...} or {"texts": [...]}), text/plain, and
application/jsonlines (one {"text": ...} per line). Many texts go through one `nlp.pipe` call.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import spacy
from composer_serving import BadRequest, NotAcceptable, UnsupportedMediaType, media_type

JSON = "application/json"
JSONLINES = ("application/jsonlines", "application/x-jsonlines", "application/jsonl")
READS = (JSON, "text/plain", *JSONLINES)


def _pipeline_dir(model_dir: Path) -> Path | None:
    """The folder holding config.cfg: the archive's root, or one level down."""
    if (model_dir / "config.cfg").is_file():
        return model_dir
    if model_dir.is_dir():
        for child in sorted(model_dir.iterdir()):
            if (child / "config.cfg").is_file():
                return child
    return None


def model_fn(model_dir: str) -> Any:
    found = _pipeline_dir(Path(model_dir))
    if found is not None:
        return spacy.load(found)
    package = os.environ.get("SPACY_MODEL")
    if package:
        return spacy.load(package)
    raise RuntimeError(
        f"no trained spaCy pipeline in {model_dir} (no config.cfg there or one level down) "
        "and SPACY_MODEL names no package; give model_data or set SPACY_MODEL"
    )


def _text_of(item: Any, where: str) -> str:
    if isinstance(item, dict) and isinstance(item.get("text"), str):
        return str(item["text"])
    raise BadRequest(f'{where}: got {json.dumps(item)[:80]}; expected {{"text": "..."}}')


def input_fn(body: bytes, content_type: str) -> tuple[str, list[str]]:
    """(shape, texts): shape says how to answer: one, many or lines."""
    media = media_type(content_type)
    text = body.decode("utf-8")
    if media == "text/plain":
        return "one", [text]
    if media == JSON:
        doc = json.loads(text)
        if isinstance(doc, dict) and isinstance(doc.get("texts"), list):
            texts = doc["texts"]
            if not all(isinstance(t, str) for t in texts):
                raise BadRequest('"texts" must be a list of strings')
            return "many", texts
        return "one", [_text_of(doc, "body")]
    if media in JSONLINES:
        lines = [line for line in text.splitlines() if line.strip()]
        return "lines", [_text_of(json.loads(line), f"line {i}") for i, line in enumerate(lines, 1)]
    raise UnsupportedMediaType(content_type, READS)


def _analyse(doc: Any) -> dict[str, Any]:
    return {
        "text": doc.text,
        "entities": [
            {"text": e.text, "label": e.label_, "start": e.start_char, "end": e.end_char}
            for e in doc.ents
        ],
        "sentences": [s.text for s in doc.sents],
        "tokens": [{"text": t.text, "lemma": t.lemma_, "pos": t.pos_} for t in doc],
        "noun_chunks": [c.text for c in doc.noun_chunks],
    }


def predict_fn(data: tuple[str, list[str]], nlp: Any) -> tuple[str, list[dict[str, Any]]]:
    shape, texts = data
    return shape, [_analyse(doc) for doc in nlp.pipe(texts)]


def output_fn(prediction: tuple[str, list[dict[str, Any]]], accept: str) -> tuple[str, str]:
    shape, results = prediction
    media = media_type(accept)
    if media in JSONLINES or (shape == "lines" and media in (JSON, "*/*")):
        return "".join(json.dumps(r) + "\n" for r in results), "application/jsonlines"
    if media in (JSON, "*/*"):
        document = results[0] if shape == "one" else {"results": results}
        return json.dumps(document), JSON
    raise NotAcceptable(accept, (JSON, "application/jsonlines"))


#: Batch transform: mini-batches of lines go through one nlp.pipe call. The analysis of a text is
#: about ten times its size, so 1 MB of input keeps the answer within the next container's 6 MB.
execution_parameters = {
    "MaxConcurrentTransforms": 2,
    "BatchStrategy": "MULTI_RECORD",
    "MaxPayloadInMB": 1,
}
