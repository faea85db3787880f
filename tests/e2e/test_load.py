"""64 concurrent boto3 clients against the shipped NLP examples under `sm-compose up`.

Runs COMPOSER_LOAD_SECONDS (5 by default, for CI); the benchmark command runs it for 30:
    COMPOSER_LOAD_SECONDS=30 COMPOSER_LOAD_REPORT=load.json .venv/bin/pytest tests/e2e/test_load.py
Every request must succeed, and the `up` process tree must hold no more processes, threads or
file descriptors after the run than before it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from .conftest import Up
from .loadgen import CLIENTS, LOAD_SECONDS, Load, report, usage

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TEXTS = [
    "Apple is looking at buying U.K. startup for $1 billion.",
    "What a wonderful, lovely day in Berlin.",
    "The battery is terrible. I love the screen.",
]
WARM_UP_SECONDS = 2.0
# Allowed growth over the run, measured after a warm-up at the same concurrency. Processes:
# none; every process here has a fixed count once warm. File descriptors: the gateway's
# keep-alive pools hold as many connections as were ever busy at once (2 descriptors each: the
# gateway's end and nginx's), and the warm-up does not always reach the run's peak (one CI run
# added 7 connections, 14 descriptors). The pools can never hold more connections than there are
# clients, so that is the bound; a leak of one descriptor per request (thousands) exceeds it.
FD_MARGIN = 2 * CLIENTS
# Threads: a batching container (spaCy here) runs gunicorn's threaded workers, whose pools start a
# thread only when a request finds none idle, up to COMPOSER_WORKER_THREADS: the count follows the
# most requests ever in flight at once, which the warm-up does not always reach. No more threads
# can be busy than there are clients, so that is the bound; a leak of one per request exceeds it.
THREAD_MARGIN = CLIENTS


def _direct_call(client: Any, index: int, up: Up) -> None:
    target = "spacy" if index % 2 == 0 else "textblob"
    text = TEXTS[index % len(TEXTS)]
    r = client.invoke_endpoint(
        EndpointName=up.name,
        Body=json.dumps({"text": text}).encode(),
        ContentType="application/json",
        TargetContainerHostname=target,
    )
    doc = json.loads(r["Body"].read())
    assert ("entities" in doc) if target == "spacy" else ("polarity" in doc), doc


def _serial_call(client: Any, index: int, up: Up) -> None:
    text = TEXTS[index % len(TEXTS)]
    r = client.invoke_endpoint(
        EndpointName=up.name,
        Body=json.dumps({"text": text}).encode(),
        ContentType="application/json",
    )
    doc = json.loads(r["Body"].read())
    assert "entities" in doc and "sentiment" in doc, doc


@pytest.mark.parametrize("mode", ["direct", "serial"])
def test_load_has_no_failures_and_no_growth(mode: str, request: pytest.FixtureRequest) -> None:
    up: Up = request.getfixturevalue(f"nlp_{mode}")
    call = _direct_call if mode == "direct" else _serial_call
    load = Load(up.client, lambda client, i: call(client, i, up), CLIENTS)

    warm = load.run(WARM_UP_SECONDS)
    assert not warm.failures, warm.failures[:3]
    time.sleep(0.5)
    before = usage(up.proc.pid)

    load.outcomes.clear()
    result = load.run(LOAD_SECONDS)
    time.sleep(0.5)
    after = usage(up.proc.pid)

    figures = {
        **result.summary(),
        "before": before.as_dict(),
        "after": after.as_dict(),
    }
    if mode == "direct":  # spaCy (even clients) is the slow one; each half on its own
        for parity, target in enumerate(("spacy", "textblob")):
            times = sorted(o.seconds for o in result.outcomes if o.client % 2 == parity)
            if times:
                figures[f"p99_ms_{target}"] = round(times[int(0.99 * (len(times) - 1))] * 1000, 1)
    report(f"load-{mode}", figures)
    assert result.outcomes, "no request completed"
    assert not result.failures, [(o.error, o.detail) for o in result.failures[:3]]
    assert after.processes == before.processes, (before.by_process, after.by_process)
    assert after.threads <= before.threads + THREAD_MARGIN, (before.by_process, after.by_process)
    assert after.fds <= before.fds + FD_MARGIN, (before.by_process, after.by_process)
