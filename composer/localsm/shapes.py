"""SageMaker's wire shapes, from botocore's service model loaded at run time (never copied).

botocore's client checks only required members, types and minimum lengths before it sends; the
rest of each input shape (enums, patterns, maximum lengths and values) is checked here, and
refused as SageMaker refuses it: ValidationException, "N validation errors detected: Value ...
at 'member' failed to satisfy constraint: ...".
"""

from __future__ import annotations

import functools
import re
from typing import Any

from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

_MAX_REPORTED = 10
#: Members whose pattern the local SageMaker widens: ModelDataUrl, and a transform job's input
#: and output, also take file:// URIs and absolute paths here, as the SDK's local mode does
#: (docs/local-sagemaker.md).
_WIDENED = frozenset({"modelDataUrl", "s3Uri", "s3OutputPath"})


@functools.cache
def service_model() -> ServiceModel:
    import botocore.session

    return botocore.session.get_session().get_service_model("sagemaker")


def operation(name: str) -> OperationModel:
    return service_model().operation_model(name)


@functools.cache
def _pattern(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:  # a Java-only construct: botocore's model is not ours to fix; skip it
        return None


def input_errors(operation_name: str, document: dict[str, Any]) -> list[str]:
    """What in `document` breaks the operation's input shape, in SageMaker's words."""
    shape = operation(operation_name).input_shape
    found: list[str] = []
    if shape is not None:
        _check(shape, document, "", found)
    return found


def validation_message(errors: list[str]) -> str:
    shown = errors[:_MAX_REPORTED]
    noun = "error" if len(errors) == 1 else "errors"
    return f"{len(errors)} validation {noun} detected: " + "; ".join(shown)


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _check(shape: Shape, value: Any, where: str, found: list[str]) -> None:
    at = where or "input"
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            found.append(f"Value at '{at}' failed to satisfy constraint: Member must be an object")
            return
        for member in shape.required_members:
            if value.get(member) is None:
                found.append(
                    f"Value null at '{_join(where, member)}' failed to satisfy constraint: "
                    "Member must not be null"
                )
        for key, item in value.items():
            member_shape = shape.members.get(key)
            if member_shape is None:
                found.append(f"Unknown member '{_join(where, key)}': it is not in the input shape")
            elif item is not None:
                _check(member_shape, item, _join(where, key), found)
        return
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            found.append(f"Value at '{at}' failed to satisfy constraint: Member must be a list")
            return
        _length(shape, value, len(value), at, found)
        for index, item in enumerate(value):
            _check(shape.member, item, f"{where}.{index + 1}.member", found)
        return
    if isinstance(shape, MapShape):
        if not isinstance(value, dict):
            found.append(f"Value at '{at}' failed to satisfy constraint: Member must be a map")
            return
        _length(shape, value, len(value), at, found)
        for key, item in value.items():
            _check(shape.key, key, f"{where}.key", found)
            _check(shape.value, item, f"{where}.{key}", found)
        return
    _scalar(shape, value, at, found)


def _join(where: str, member: str) -> str:
    return f"{where}.{_lower_first(member)}" if where else _lower_first(member)


def _length(shape: Shape, value: Any, size: int, at: str, found: list[str]) -> None:
    _bounds(shape, size, _shown(value), at, "length", found)


def _bounds(
    shape: Shape, measured: float, shown: str, at: str, what: str, found: list[str]
) -> None:
    """The shape's min and max, on a length or a value, in SageMaker's words."""
    for bound, words in (("max", "less"), ("min", "greater")):
        limit = shape.metadata.get(bound)
        if limit is not None and (measured > limit if bound == "max" else measured < limit):
            found.append(
                f"Value {shown} at '{at}' failed to satisfy constraint: Member must have {what} "
                f"{words} than or equal to {limit}"
            )


def _shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 80 else text[:77] + "..."


def _scalar(shape: Shape, value: Any, at: str, found: list[str]) -> None:
    kind = shape.type_name
    if kind == "string":
        if not isinstance(value, str):
            found.append(f"Value at '{at}' failed to satisfy constraint: Member must be a string")
            return
        enum: list[str] = getattr(shape, "enum", None) or []
        if enum and value not in enum:
            found.append(
                f"Value '{value}' at '{at}' failed to satisfy constraint: Member must satisfy "
                f"enum value set: [{', '.join(enum)}]"
            )
            return
        _length(shape, value, len(value), at, found)
        pattern = None if at.rpartition(".")[2] in _WIDENED else shape.metadata.get("pattern")
        compiled = _pattern(pattern) if pattern else None
        if compiled is not None and compiled.fullmatch(value) is None:
            found.append(
                f"Value {_shown(value)} at '{at}' failed to satisfy constraint: Member must "
                f"satisfy regular expression pattern: {pattern}"
            )
    elif kind in ("integer", "long", "float", "double"):
        numeric = int if kind in ("integer", "long") else (int, float)
        if isinstance(value, bool) or not isinstance(value, numeric):
            found.append(f"Value at '{at}' failed to satisfy constraint: Member must be a number")
            return
        _bounds(shape, value, f"'{value}'", at, "value", found)
    elif kind == "boolean" and not isinstance(value, bool):
        found.append(f"Value at '{at}' failed to satisfy constraint: Member must be a boolean")
    elif kind == "timestamp" and (isinstance(value, bool) or not isinstance(value, int | float)):
        found.append(f"Value at '{at}' failed to satisfy constraint: Member must be a timestamp")
