"""spaCy: entities, sentences, tokens and noun chunks of each text.

Reads application/json ({"text": ...} or {"texts": [...]}), text/plain, and
application/jsonlines (one {"text": ...} per line). Many texts go through one `nlp.pipe` call.
A JSON Lines answer streams: each text's line is sent as `nlp.pipe` yields it, so the first
analysis of a long document reaches the caller long before the last
(InvokeEndpointWithResponseStream; InvokeEndpoint still gets the whole answer).

Concurrent single-text requests are batched: `batch_predict_fn` runs their texts through one
`nlp.pipe` call (about twice as fast per text as `nlp(text)` one at a time). A request of many
texts is already its own batch and keeps streaming as it is analysed.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import spacy
from composer_serving import BadRequest, NotAcceptable, UnsupportedMediaType, media_type

JSON = "application/json"
JSONLINES = ("application/jsonlines", "application/x-jsonlines", "application/jsonl")
READS = (JSON, "text/plain", *JSONLINES)
#: Texts per nlp.pipe batch when streaming: small, so the first line goes out early.
STREAM_BATCH = 8
#: One nlp.pipe at a time: the batcher's thread and streaming answers share the one model.
_NLP = threading.Lock()


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


@dataclass
class Analyses:
    """The texts to analyse, analysed as output_fn reads them (so it picks the batch size),
    or already analysed by a batch (`docs`)."""

    shape: str
    texts: list[str]
    nlp: Any
    docs: list[Any] | None = None

    def each(self, batch_size: int | None = None) -> Iterator[dict[str, Any]]:
        if self.docs is not None:
            yield from (_analyse(doc) for doc in self.docs)
            return
        size = batch_size or self.nlp.batch_size
        for start in range(0, len(self.texts), size):
            with _NLP:
                docs = list(self.nlp.pipe(self.texts[start : start + size], batch_size=size))
            yield from (_analyse(doc) for doc in docs)


def predict_fn(data: tuple[str, list[str]], nlp: Any) -> Analyses:
    shape, texts = data
    return Analyses(shape, texts, nlp)


def batch_predict_fn(inputs: list[tuple[str, list[str]]], nlp: Any) -> list[Analyses]:
    """The single texts of concurrent requests through one nlp.pipe call, in order; a request
    of many texts stays lazy, so its answer still streams."""
    singles = [texts[0] for shape, texts in inputs if shape == "one"]
    with _NLP:
        docs = iter(list(nlp.pipe(singles)))
    return [
        Analyses(shape, texts, nlp, [next(docs)] if shape == "one" else None)
        for shape, texts in inputs
    ]


def output_fn(prediction: Analyses, accept: str) -> tuple[str | Iterator[str], str]:
    shape = prediction.shape
    media = media_type(accept)
    if media in JSONLINES or (shape == "lines" and media in (JSON, "*/*")):
        # a generator: the runtime sends each line as soon as it is yielded
        lines = (json.dumps(r) + "\n" for r in prediction.each(STREAM_BATCH))
        return lines, "application/jsonlines"
    if media in (JSON, "*/*"):
        results = list(prediction.each())
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
