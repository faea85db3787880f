"""A container that misbehaves on request, to test how failures reach the caller.

The body is JSON: {"status": N} answers with that HTTP status (via an exception),
{"sleep": S} sleeps S seconds first, {"grow": N} answers N bytes, {"stream": N, "every": S}
streams N JSON lines, one each S seconds; anything else is echoed.
FAULTY_FAIL_ON_LOAD=reason makes the model fail to load; FAULTY_HANG_ON_LOAD=1 makes loading
never end (so /ping never answers 200); FAULTY_HANG_AFTER_FIRST_LOAD=path loads once (and
creates that file), then hangs like FAULTY_HANG_ON_LOAD at every later start: a container that
crashes and never becomes healthy again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any


def model_fn(model_dir: str) -> dict[str, str]:
    reason = os.environ.get("FAULTY_FAIL_ON_LOAD")
    if reason:
        raise RuntimeError(reason)
    once = os.environ.get("FAULTY_HANG_AFTER_FIRST_LOAD")
    if once and not os.path.exists(once):
        open(once, "w").close()
    elif once or os.environ.get("FAULTY_HANG_ON_LOAD"):
        print("faulty: loading the model forever", flush=True)
        while True:
            time.sleep(3600)
    return {"model_dir": model_dir}


def input_fn(body: bytes, content_type: str) -> Any:
    return json.loads(body) if body else {}


def predict_fn(data: Any, model: dict[str, str]) -> Any:
    if isinstance(data, dict):
        if "sleep" in data:
            time.sleep(float(data["sleep"]))
        if data.get("status") == 500:
            raise RuntimeError("the faulty container failed on purpose")
        if "grow" in data:
            return {"blob": "x" * int(data["grow"])}
        if "stream" in data:
            return _lines(int(data["stream"]), float(data.get("every", 0)))
        if "whoami" in data:  # which copy answered: an instance's folder is its own
            return {"cwd": os.getcwd(), "model_dir": model["model_dir"]}
    return data


def _lines(count: int, every: float) -> Iterator[dict[str, int]]:
    for i in range(count):
        if i:
            time.sleep(every)
        yield {"line": i}
