"""The handler convention of AWS's inference toolkits: model_fn, input_fn, predict_fn, output_fn.

A container's `inference.py` defines `model_fn(model_dir)` and, when the JSON defaults do not
fit, `input_fn(body, content_type)`, `predict_fn(data, model)` and
`output_fn(prediction, accept)`. A `predict_fn` or `output_fn` that returns an iterator (a
generator, say) streams: each item is sent as it is produced. An optional
`batch_predict_fn(inputs, model) -> list` (one output per input, in order) takes the place of
`predict_fn` for requests that arrive together (batching.py). See docs/containers.md.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from . import environment
from .errors import BadRequest, NotAcceptable, UnsupportedMediaType

JSON = "application/json"
JSONLINES = "application/jsonlines"
#: What `transform` gives: the whole body, or its parts as they are produced.
Payload = bytes | Iterator[bytes]
DEFAULT_EXECUTION_PARAMETERS: dict[str, Any] = {
    "MaxConcurrentTransforms": 1,
    "BatchStrategy": "MULTI_RECORD",
    "MaxPayloadInMB": 6,
}


def media_type(value: str | None) -> str:
    """`application/json; charset=utf-8` -> `application/json`."""
    return (value or "").split(";", 1)[0].strip().lower()


def default_input_fn(body: bytes, content_type: str) -> Any:
    if media_type(content_type) != JSON:
        raise UnsupportedMediaType(content_type, [JSON])
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


def default_predict_fn(data: Any, model: Any) -> Any:
    if not callable(model):
        raise TypeError(
            "model_fn returned a model that is not callable; define predict_fn(data, model) "
            "in inference.py"
        )
    return model(data)


def default_output_fn(prediction: Any, accept: str) -> tuple[Payload, str]:
    """JSON; an iterator (a streaming predict_fn) is streamed: bytes and str items as they
    are, any other item as one JSON line, in the Accept type (application/jsonlines for
    application/json or a wildcard)."""
    if isinstance(prediction, Iterator):
        concrete = media_type(accept)
        streamed = accept if concrete and "*" not in concrete and concrete != JSON else JSONLINES
        return (_encoded(item) for item in prediction), streamed
    if media_type(accept) not in (JSON, "*/*"):
        raise NotAcceptable(accept, [JSON])
    return json.dumps(prediction).encode(), JSON


def _encoded(item: Any) -> bytes:
    if isinstance(item, bytes | bytearray | memoryview):
        return bytes(item)
    if isinstance(item, str):
        return item.encode("utf-8")
    return json.dumps(item).encode() + b"\n"


def load_module(path: Path) -> ModuleType:
    """Import the handler file by path, with its folder importable for its own helpers."""
    if not path.is_file():
        raise FileNotFoundError(f"no handler module at {path} (set SAGEMAKER_PROGRAM?)")
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


class Handler:
    """One loaded inference.py, with the JSON defaults filling what it leaves out."""

    def __init__(self, module: ModuleType) -> None:
        model_fn = getattr(module, "model_fn", None)
        if not callable(model_fn):
            raise AttributeError(f"{module.__file__} defines no model_fn(model_dir)")
        self.module = module
        self.model_fn: Callable[[str], Any] = model_fn
        self.input_fn: Callable[[bytes, str], Any] = getattr(module, "input_fn", default_input_fn)
        self.predict_fn: Callable[[Any, Any], Any] = getattr(
            module, "predict_fn", default_predict_fn
        )
        self.output_fn: Callable[[Any, str], Any] = getattr(module, "output_fn", default_output_fn)
        # concurrent requests' inputs together, one output each (batching.py)
        self.batch_predict_fn: Callable[[list[Any], Any], Any] | None = getattr(
            module, "batch_predict_fn", None
        )
        batch_fn = self.batch_predict_fn
        if batch_fn is not None and not hasattr(module, "predict_fn"):
            # batching off (COMPOSER_MAX_BATCH_SIZE=1): each request is a batch of one
            self.predict_fn = lambda data, model: batch_fn([data], model)[0]
        # multi-model containers call it when a model is unloaded or evicted (close files, ...)
        self.unload_fn: Callable[[Any], Any] | None = getattr(module, "unload_fn", None)

    @classmethod
    def from_environment(cls) -> Handler:
        return cls(load_module(environment.handler_path()))

    def execution_parameters(self) -> dict[str, Any]:
        """The handler's `execution_parameters` (a dict or a function returning one)."""
        value = getattr(self.module, "execution_parameters", None)
        if callable(value):
            value = value()
        if value is None:
            return dict(DEFAULT_EXECUTION_PARAMETERS)
        return {**DEFAULT_EXECUTION_PARAMETERS, **dict(value)}

    def transform(
        self,
        model: Any,
        body: bytes,
        content_type: str,
        accept: str,
        predict: Callable[[Any, Any], Any] | None = None,
    ) -> tuple[Payload, str]:
        """input_fn -> predict_fn (or `predict`: the batcher's) -> output_fn, normalising what
        output_fn returns.

        An iterator stays one (its str items encoded as UTF-8): the runtime streams it.
        """
        try:
            data = self.input_fn(body, content_type)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest(f"the body cannot be read as {content_type}: {exc}") from None
        prediction = (predict or self.predict_fn)(data, model)
        result = self.output_fn(prediction, accept)
        if isinstance(result, tuple):
            payload, content = result
        else:
            payload = result
            concrete = media_type(accept)
            content = accept if concrete and "*" not in concrete else JSON
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        elif isinstance(payload, Iterator):
            return (_encoded(item) for item in payload), str(content)
        return bytes(payload), str(content)
