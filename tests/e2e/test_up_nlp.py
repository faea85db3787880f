"""The shipped NLP examples served by `sm-compose up`, called with an unmodified boto3 client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import Up

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

APPLE = "Apple is looking at buying U.K. startup for $1 billion"


def invoke(up: Up, body: Any, **kwargs: Any) -> dict[str, Any]:
    client: Any = up.client()
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    kwargs.setdefault("ContentType", "application/json")
    return dict(client.invoke_endpoint(EndpointName=up.name, Body=data, **kwargs))


def test_up_prints_each_container_and_ready(nlp_direct: Up) -> None:
    text = "\n".join(nlp_direct.lines)
    assert any(
        line.startswith("spacy ") and "http://127.0.0.1:" in line for line in nlp_direct.lines
    )
    assert any(line.startswith("textblob ") for line in nlp_direct.lines)
    assert f"ready at {nlp_direct.url}" in text


def test_direct_spacy_returns_real_entities(nlp_direct: Up) -> None:
    r = invoke(nlp_direct, {"text": APPLE}, TargetContainerHostname="spacy")
    assert r["ContentType"].startswith("application/json")
    assert r["InvokedProductionVariant"] == "AllTraffic"
    assert r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    doc = json.loads(r["Body"].read())
    entities = {(e["text"], e["label"]) for e in doc["entities"]}
    assert {("Apple", "ORG"), ("U.K.", "GPE"), ("$1 billion", "MONEY")} <= entities


def test_direct_textblob_returns_sentiment(nlp_direct: Up) -> None:
    r = invoke(
        nlp_direct, {"text": "What a wonderful, lovely day"}, TargetContainerHostname="textblob"
    )
    doc = json.loads(r["Body"].read())
    assert doc["polarity"] > 0.5
    assert 0 <= doc["subjectivity"] <= 1


def test_direct_many_texts_and_plain_text(nlp_direct: Up) -> None:
    r = invoke(
        nlp_direct, {"texts": [APPLE, "Berlin is in Germany."]}, TargetContainerHostname="spacy"
    )
    results = json.loads(r["Body"].read())["results"]
    assert [len(x["entities"]) > 0 for x in results] == [True, True]
    r = invoke(
        nlp_direct, APPLE.encode(), ContentType="text/plain", TargetContainerHostname="spacy"
    )
    assert json.loads(r["Body"].read())["text"] == APPLE


def test_custom_attributes_round_trip(nlp_direct: Up) -> None:
    r = invoke(
        nlp_direct,
        {"text": "fine"},
        TargetContainerHostname="textblob",
        CustomAttributes="trace=abc123",
    )
    assert r["CustomAttributes"] == "trace=abc123"


def test_serial_scores_spacy_sentences_with_textblob(nlp_serial: Up) -> None:
    text = "I love this phone. The battery is terrible."
    r = invoke(nlp_serial, {"text": text})
    doc = json.loads(r["Body"].read())
    # spaCy's analysis survives, enriched by TextBlob per sentence
    assert doc["sentences"] == ["I love this phone.", "The battery is terrible."]
    assert "entities" in doc and "tokens" in doc
    scored = doc["sentiment"]["sentences"]
    assert [s["text"] for s in scored] == doc["sentences"]
    assert scored[0]["polarity"] > 0 > scored[1]["polarity"]
    assert "polarity" in doc["sentiment"] and "subjectivity" in doc["sentiment"]


def test_invoke_command_needs_no_aws_account(nlp_serial: Up, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "HOME"} | {
        "HOME": str(tmp_path)
    }
    base = [sys.executable, "-m", "composer", "invoke", nlp_serial.name]
    ok = subprocess.run(
        [*base, "--endpoint-url", nlp_serial.url, "--data", '{"text": "I love it. It broke."}'],
        capture_output=True,
        text=True,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["sentences"] == ["I love it.", "It broke."]
    bad = subprocess.run(
        [*base, "--target", "spacy", "--data", "{}"],
        capture_output=True,
        text=True,
        env=env | {"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": nlp_serial.url},
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: ValidationError: ")
    assert "Traceback" not in bad.stderr
