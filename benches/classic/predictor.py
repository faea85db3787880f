"""The classic SageMaker bring-your-own app, for comparison: Flask under gunicorn's sync workers.

Same TextBlob sentiment as containers/textblob, shaped the way the widely copied example is: a
lazily loaded "model" held by a class, /ping answering when it loads, /invocations taking JSON.
With CLASSIC_MODEL=echo, /invocations answers the request body itself (benches/echo's twin).
"""

from __future__ import annotations

import json
import os
from typing import Any

import flask
from textblob import TextBlob  # type: ignore[import-not-found]  # its own venv

app = flask.Flask(__name__)


class _Scorer:
    """The example keeps its model on a class and loads it on first use."""

    ready = False

    @classmethod
    def load(cls) -> bool:
        if not cls.ready:
            TextBlob("warm up the lexicon").sentiment  # noqa: B018
            cls.ready = True
        return cls.ready

    @classmethod
    def score(cls, text: str) -> dict[str, Any]:
        cls.load()
        sentiment = TextBlob(text).sentiment
        return {
            "polarity": round(float(sentiment.polarity), 6),
            "subjectivity": round(float(sentiment.subjectivity), 6),
        }


@app.route("/ping", methods=["GET"])
def ping() -> flask.Response:
    status = 200 if _Scorer.load() else 404
    return flask.Response(response="\n", status=status, mimetype="application/json")


ECHO = os.environ.get("CLASSIC_MODEL") == "echo"


@app.route("/invocations", methods=["POST"])
def invocations() -> flask.Response:
    if ECHO:
        return flask.Response(response=flask.request.data, status=200, mimetype="application/json")
    if flask.request.content_type != "application/json":
        return flask.Response(response="This predictor only supports JSON", status=415)
    doc = json.loads(flask.request.data.decode("utf-8"))
    body = json.dumps(_Scorer.score(str(doc["text"])))
    return flask.Response(response=body, status=200, mimetype="application/json")
