"""Every answer of the local SageMaker checked against botocore's output shapes, as sent.

`ShapeRecorder(client)` hooks a boto3 `sagemaker` client: each successful answer's raw JSON is
walked against its operation's output shape in botocore's service model (every required member,
no member the shape lacks, types, enums; timestamps as numbers). Tests of the control plane use
it, then assert `recorder.problems == []` and which operations it saw.
"""

from __future__ import annotations

import json
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, Shape, StructureShape

_MODEL = botocore.session.get_session().get_service_model("sagemaker")


def output_problems(operation: str, document: Any) -> list[str]:
    """What in `document` does not fit the operation's output shape."""
    shape = _MODEL.operation_model(operation).output_shape
    if shape is None:
        return [] if document in ({}, None) else [f"{operation}: has no output, got {document!r}"]
    found: list[str] = []
    _walk(shape, document, operation, found)
    return found


def _walk(shape: Shape, value: Any, at: str, found: list[str]) -> None:
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            found.append(f"{at}: a structure, got {value!r}")
            return
        for member in shape.required_members:
            if member not in value:
                found.append(f"{at}.{member}: required, missing")
        for key, item in value.items():
            if key not in shape.members:
                found.append(f"{at}.{key}: not a member of {shape.name}")
            else:
                _walk(shape.members[key], item, f"{at}.{key}", found)
    elif isinstance(shape, ListShape):
        if not isinstance(value, list):
            found.append(f"{at}: a list, got {value!r}")
            return
        for index, item in enumerate(value):
            _walk(shape.member, item, f"{at}[{index}]", found)
    elif isinstance(shape, MapShape):
        if not isinstance(value, dict):
            found.append(f"{at}: a map, got {value!r}")
            return
        for key, item in value.items():
            _walk(shape.value, item, f"{at}.{key}", found)
    else:
        _scalar(shape, value, at, found)


def _scalar(shape: Shape, value: Any, at: str, found: list[str]) -> None:
    kind = shape.type_name
    number = isinstance(value, int | float) and not isinstance(value, bool)
    ok = {
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "long": isinstance(value, int) and not isinstance(value, bool),
        "float": number,
        "double": number,
        "timestamp": number,
    }.get(kind, True)
    if not ok:
        found.append(f"{at}: a {kind}, got {value!r}")
        return
    enum = getattr(shape, "enum", None)
    if enum and value not in enum:
        found.append(f"{at}: got {value!r}, not one of {enum}")
    if kind == "string" and "max" in shape.metadata and len(value) > shape.metadata["max"]:
        found.append(f"{at}: {len(value)} characters, at most {shape.metadata['max']}")


class ShapeRecorder:
    """Checks every successful answer a client receives; remembers which operations it saw."""

    def __init__(self, client: Any) -> None:
        self.seen: set[str] = set()
        self.problems: list[str] = []
        client.meta.events.register("before-parse.sagemaker.*", self._check)

    def _check(self, operation_model: Any, response_dict: dict[str, Any], **_: Any) -> None:
        if response_dict["status_code"] != 200:
            return
        name = operation_model.name
        self.seen.add(name)
        body = response_dict["body"]
        self.problems += output_problems(name, json.loads(body) if body else {})
