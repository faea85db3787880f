"""TextBlob sentiment: polarity (-1..1) and subjectivity (0..1).

Reads {"text": ...}, {"texts": [...]}, text/plain, and, as the second step of a Serial pipeline,
the spaCy container's documents: a document carrying "sentences" comes back as the same document
with a "sentiment" per sentence and for the whole text. application/jsonlines works line by line.
TextBlob's PatternAnalyzer ships its lexicon, so nothing is downloaded at run time (its sentence
splitting would need NLTK corpora, which is why sentences come from spaCy).
"""

from __future__ import annotations

import json
from typing import Any

from composer_serving import BadRequest, NotAcceptable, UnsupportedMediaType, media_type
from textblob import TextBlob

JSON = "application/json"
JSONLINES = ("application/jsonlines", "application/x-jsonlines", "application/jsonl")
READS = (JSON, "text/plain", *JSONLINES)


def model_fn(model_dir: str) -> None:
    TextBlob("warm up the lexicon").sentiment  # noqa: B018  (loads it once, before forking)


def _score(text: str) -> dict[str, Any]:
    sentiment = TextBlob(text).sentiment
    return {
        "polarity": round(float(sentiment.polarity), 6),
        "subjectivity": round(float(sentiment.subjectivity), 6),
    }


def _enrich(doc: Any, where: str) -> Any:
    """One request document, answered or enriched according to its shape."""
    if isinstance(doc, dict) and isinstance(doc.get("results"), list):
        return {**doc, "results": [_enrich(d, f"{where}.results") for d in doc["results"]]}
    if isinstance(doc, dict) and isinstance(doc.get("texts"), list):
        return {"results": [{"text": t, **_score(str(t))} for t in doc["texts"]]}
    if isinstance(doc, dict) and isinstance(doc.get("sentences"), list):
        sentences = [str(s) for s in doc["sentences"]]
        whole = str(doc.get("text") or " ".join(sentences))
        per = [{"text": s, **_score(s)} for s in sentences]
        return {**doc, "sentiment": {**_score(whole), "sentences": per}}
    if isinstance(doc, dict) and isinstance(doc.get("text"), str):
        return _score(doc["text"])
    raise BadRequest(
        f'{where}: got {json.dumps(doc)[:80]}; expected {{"text": ...}}, {{"texts": [...]}} '
        'or a document with "sentences"'
    )


def input_fn(body: bytes, content_type: str) -> tuple[str, list[Any]]:
    media = media_type(content_type)
    text = body.decode("utf-8")
    if media == "text/plain":
        return "one", [{"text": text}]
    if media == JSON:
        return "one", [json.loads(text)]
    if media in JSONLINES:
        return "lines", [json.loads(line) for line in text.splitlines() if line.strip()]
    raise UnsupportedMediaType(content_type, READS)


def predict_fn(data: tuple[str, list[Any]], model: None) -> tuple[str, list[Any]]:
    shape, docs = data
    return shape, [
        _enrich(doc, "body" if shape == "one" else f"line {i}") for i, doc in enumerate(docs, 1)
    ]


def output_fn(prediction: tuple[str, list[Any]], accept: str) -> tuple[str, str]:
    shape, results = prediction
    media = media_type(accept)
    if media in JSONLINES or (shape == "lines" and media in (JSON, "*/*")):
        return "".join(json.dumps(r) + "\n" for r in results), "application/jsonlines"
    if media in (JSON, "*/*"):
        return json.dumps(results[0] if shape == "one" else results), JSON
    raise NotAcceptable(accept, (JSON, "application/jsonlines"))
