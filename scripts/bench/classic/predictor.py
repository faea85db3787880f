"""The classic SageMaker bring-your-own stack, for comparison: Flask under gunicorn behind nginx.

Same TextBlob handler as containers/textblob, served the way the widely copied example does it.
"""

from __future__ import annotations

import json

import flask
from textblob import TextBlob

app = flask.Flask(__name__)


@app.route("/ping", methods=["GET"])
def ping() -> flask.Response:
    return flask.Response(response="\n", status=200, mimetype="application/json")


@app.route("/invocations", methods=["POST"])
def invocations() -> flask.Response:
    if flask.request.content_type != "application/json":
        return flask.Response(response="This predictor only supports JSON", status=415)
    text = json.loads(flask.request.data.decode("utf-8"))["text"]
    sentiment = TextBlob(text).sentiment
    body = {"polarity": sentiment.polarity, "subjectivity": sentiment.subjectivity}
    return flask.Response(response=json.dumps(body), status=200, mimetype="application/json")
