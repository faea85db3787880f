"""spaCy, multi-model: one container, many spaCy pipelines, each loaded on first use.

Run with `multi_model: true`: SageMaker (or the local gateway) extracts the archive named by
TargetModel and asks the runtime to load it; `model_fn` then gets that folder. A model folder
holds either a saved pipeline (`config.cfg`, at the root or one level down: a trained pipeline
such as en_core_web_sm, or a blank one saved with `nlp.to_disk`), or a `rules.json` describing a
blank pipeline with rules: {"lang": "de", "patterns": [{"label": "GPE", "pattern": "Berlin"}]}.

Requests and answers are the spacy container's: {"text": ...}, {"texts": [...]}, text/plain or
application/jsonlines in; per text its entities, sentences, tokens and (when the pipeline parses)
noun chunks out, plus which model answered, so the document chains into containers/textblob.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import spacy
from composer_serving import BadRequest, NotAcceptable, UnsupportedMediaType, media_type

JSON = "application/json"
JSONLINES = ("application/jsonlines", "application/x-jsonlines", "application/jsonl")
READS = (JSON, "text/plain", *JSONLINES)
RULES = "rules.json"


@dataclass
class Model:
    """A loaded pipeline. The runtime serves requests on threads; one lock per model keeps a
    pipeline to one caller at a time while other models answer in parallel."""

    nlp: Any
    source: str
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def description(self) -> dict[str, Any]:
        meta = self.nlp.meta
        return {
            "name": f"{meta.get('lang', self.nlp.lang)}_{meta.get('name', 'pipeline')}",
            "version": meta.get("version", ""),
            "lang": self.nlp.lang,
            "pipes": list(self.nlp.pipe_names),
            "from": self.source,
        }


def _find(model_dir: Path, name: str) -> Path | None:
    """The folder holding `name`: the model folder itself, or one level down."""
    if (model_dir / name).is_file():
        return model_dir
    if model_dir.is_dir():
        for child in sorted(model_dir.iterdir()):
            if (child / name).is_file():
                return child
    return None


def _from_rules(path: Path) -> Any:
    spec = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(spec, dict) or not isinstance(spec.get("lang"), str):
        raise ValueError(f'{path}: expected {{"lang": "en", "patterns": [...]}}')
    nlp = spacy.blank(spec["lang"])
    nlp.add_pipe("sentencizer")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns(list(spec.get("patterns", [])))
    nlp.meta["name"] = str(spec.get("name", "rules"))
    nlp.meta["version"] = str(spec.get("version", "0.0.0"))
    return nlp


def model_fn(model_dir: str) -> Model:
    root = Path(model_dir)
    found = _find(root, "config.cfg")
    if found is not None:
        return Model(spacy.load(found), "config.cfg")
    found = _find(root, RULES)
    if found is not None:
        return Model(_from_rules(found / RULES), RULES)
    raise RuntimeError(
        f"no spaCy pipeline in {model_dir}: expected config.cfg (a pipeline saved with "
        f"nlp.to_disk) or {RULES}, at the archive's root or one folder down"
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


def _analyse(doc: Any, model: dict[str, Any]) -> dict[str, Any]:
    parsed = doc.has_annotation("DEP")
    return {
        "text": doc.text,
        "model": model,
        "entities": [
            {"text": e.text, "label": e.label_, "start": e.start_char, "end": e.end_char}
            for e in doc.ents
        ],
        # a pipeline with neither parser nor sentencizer has no sentence boundaries: one sentence
        "sentences": [s.text for s in doc.sents]
        if doc.has_annotation("SENT_START")
        else [doc.text],
        "tokens": [{"text": t.text, "lemma": t.lemma_, "pos": t.pos_} for t in doc],
        "noun_chunks": [c.text for c in doc.noun_chunks] if parsed else [],
    }


def predict_fn(data: tuple[str, list[str]], model: Model) -> tuple[str, list[dict[str, Any]]]:
    shape, texts = data
    described = model.description
    with model.lock:
        docs = list(model.nlp.pipe(texts))
    return shape, [_analyse(doc, described) for doc in docs]


def output_fn(prediction: tuple[str, list[dict[str, Any]]], accept: str) -> tuple[str, str]:
    shape, results = prediction
    media = media_type(accept)
    if media in JSONLINES or (shape == "lines" and media in (JSON, "*/*")):
        return "".join(json.dumps(r) + "\n" for r in results), "application/jsonlines"
    if media in (JSON, "*/*"):
        document = results[0] if shape == "one" else {"results": results}
        return json.dumps(document), JSON
    raise NotAcceptable(accept, (JSON, "application/jsonlines"))
