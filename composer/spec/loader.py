"""Reading pipeline.yaml into a validated Pipeline, with every error located by file and line.

ruamel.yaml keeps the line of every key and item; pydantic reports where each error is, the
rules of rules.py included (the models run them). Joining the two gives
`FILE:LINE: dotted.path: message` for all errors at once, not only the first.
"""

from __future__ import annotations

import datetime
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, NodeEvent

from ..errors import SpecError, SpecIssue
from .models import RULE_ERROR, Pipeline
from .rules import Loc

_KEY = "[key]"  # pydantic's location of a mapping's key (rather than its value)
_UNION_TAGS = {"str", "int", "float", "bool", _KEY}

#: Far deeper and larger than any pipeline; beyond them YAML is hostile, not a pipeline
#: (deep nesting exhausts Python's stack, aliases of aliases expand exponentially).
MAX_DEPTH = 32
MAX_VALUES = 100_000
_MAX_PLAIN_KEY = 1024  # YAML's own limit on an implicit (key: value) key


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and fully validate a pipeline file; raise SpecError listing every problem."""
    file = Path(path)
    shown = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([SpecIssue(shown, 0, "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecIssue(shown, 0, "", f"cannot read it: {exc}")]) from None
    return parse_pipeline(text, shown, source=file)


def parse_pipeline(text: str, shown: str, *, source: Path | None = None) -> Pipeline:
    """Validate YAML text; `shown` is the file name used in messages."""
    tree = _read_yaml(text, shown)
    if not isinstance(tree, CommentedMap):
        got = "an empty file" if tree is None else f"a {_kind(tree)}"
        line = tree.lc.line + 1 if isinstance(tree, CommentedSeq) else 1
        raise SpecError([SpecIssue(shown, line, "", f"got {got}; a pipeline file is a mapping")])

    lines: dict[Loc, int] = {}
    budget = [MAX_VALUES]
    try:
        data = _plain(tree, (), lines, budget)
    except _TooLarge:
        raise SpecError(
            [
                SpecIssue(
                    shown,
                    tree.lc.line + 1,
                    "",
                    f"got more than {MAX_VALUES} values once aliases are expanded; a pipeline "
                    "holds far fewer (refusing what looks like an alias bomb)",
                )
            ]
        ) from None
    try:
        return Pipeline.model_validate(data, context={"source": source})
    except ValidationError as exc:
        raise SpecError(_issues_from(exc, shown, lines)) from None


def _read_yaml(text: str, shown: str) -> Any:
    """The YAML tree, or a SpecError; hostile shapes are refused before they are built.

    A first pass over the parser's events (flat, no recursion) refuses tags and deep nesting;
    only then does ruamel build the tree, whose construction recurses.
    """
    yaml = YAML(typ="rt")
    try:
        depth = 0
        for event in yaml.parse(text):
            line = event.start_mark.line + 1
            if isinstance(event, NodeEvent) and not isinstance(event, AliasEvent):
                tag = getattr(event, "tag", None)
                if tag is not None:
                    raise SpecError([SpecIssue(shown, line, "", _tag_message(str(tag)))])
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise SpecError(
                        [
                            SpecIssue(
                                shown,
                                line,
                                "",
                                f"got lists or mappings nested more than {MAX_DEPTH} deep; "
                                "a pipeline nests a few levels",
                            )
                        ]
                    )
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
        return yaml.load(text)
    except SpecError:
        raise
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        message = _yaml_message(exc, text, line)
        raise SpecError([SpecIssue(shown, line, "", message)]) from None
    except Exception as exc:  # ruamel raises plain errors too; each is the file's fault
        raise SpecError([SpecIssue(shown, 1, "", f"YAML error: {exc}")]) from None


def _tag_message(tag: str) -> str:
    shown = tag.replace("tag:yaml.org,2002:", "!!")
    return (
        f"got the YAML tag {shown!r}; a pipeline file holds plain values (mappings, lists, "
        "strings, numbers, booleans): drop the tag, and quote a value to make it a string"
    )


def _yaml_message(exc: MarkedYAMLError, text: str, line: int) -> str:
    """ruamel's problem, with its context ("while scanning a quoted scalar") and a hint."""
    problem = exc.problem or exc.context or "invalid YAML"
    message = f"YAML syntax error: {problem}"
    if exc.context and exc.problem:
        where = exc.context_mark
        started = ""
        if where is not None and where.line + 1 != line:
            started = f", from line {where.line + 1}"
        message += f" ({exc.context}{started})"
    if "another document" in problem:
        message += "; a pipeline file holds one YAML document (no second `---`)"
    elif "'\\t'" in problem:
        message += "; YAML indents with spaces, never tabs"
    elif problem == "mapping values are not allowed here":
        source = text.splitlines()[line - 1] if 0 < line <= len(text.splitlines()) else ""
        key = source.split(":", 1)[0].strip()
        if len(key) > _MAX_PLAIN_KEY:
            message += (
                f"; this key is {len(key)} characters and YAML allows at most "
                f"{_MAX_PLAIN_KEY} in a plain `key: value` (environment keys are limited to "
                f"{_MAX_PLAIN_KEY} too)"
            )
        else:
            message += "; is a line indented more than its siblings, or a `: ` left unquoted?"
    return message


class _TooLarge(Exception):
    """More values than MAX_VALUES once aliases are expanded."""


def _plain(node: Any, loc: Loc, lines: dict[Loc, int], budget: list[int]) -> Any:
    """Plain Python values (ruamel's scalar subclasses confuse validation) plus a line map."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge
    if isinstance(node, CommentedMap):
        lines.setdefault(loc, node.lc.line + 1)
        out: dict[Any, Any] = {}
        for key, value in node.items():
            where = _key_line(node, key)
            lines[(*loc, str(key))] = where
            lines[(*loc, str(key), _KEY)] = where  # where a bad key itself is reported
            out[str(key) if not isinstance(key, str) else key] = _plain(
                value, (*loc, str(key)), lines, budget
            )
            if value is not None and not isinstance(value, CommentedMap | CommentedSeq):
                # a null has no token of its own; ruamel then gives the next line
                lines[(*loc, str(key))] = _value_line(node, key, where)
        return out
    if isinstance(node, CommentedSeq):
        lines.setdefault(loc, node.lc.line + 1)
        items = []
        for index, value in enumerate(node):
            lines[(*loc, index)] = node.lc.item(index)[0] + 1
            items.append(_plain(value, (*loc, index), lines, budget))
        return items
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, datetime.date):  # `name: 2024-01-01` meant the text
        return node.isoformat()
    return node


def _key_line(node: CommentedMap, key: Any) -> int:
    """A key's line; keys merged in with `<<: *anchor` have none here, so the map's own."""
    try:
        return int(node.lc.key(key)[0]) + 1
    except (KeyError, TypeError):
        return int(node.lc.line) + 1


def _value_line(node: CommentedMap, key: Any, default: int) -> int:
    try:
        return int(node.lc.value(key)[0]) + 1
    except (KeyError, TypeError):
        return default


def _line_of(loc: Loc, lines: dict[Loc, int]) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _issues_from(exc: ValidationError, shown: str, lines: dict[Loc, int]) -> list[SpecIssue]:
    """One issue per location (a union's members each fail at one), one per rule; file order."""
    grouped: dict[Loc, list[dict[str, Any]]] = {}
    about_key: set[Loc] = set()
    issues = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in _UNION_TAGS))
        if err["type"] == RULE_ERROR:
            issues.append(SpecIssue(shown, _line_of(loc, lines), _dotted(loc), err["msg"]))
            continue
        grouped.setdefault(loc, []).append(dict(err))
        if err["loc"][-1:] == (_KEY,):
            about_key.add(loc)
    for loc, errs in grouped.items():
        message = _message(loc, errs)
        line = _line_of((*loc, _KEY) if loc in about_key else loc, lines)
        issues.append(SpecIssue(shown, line, _dotted(loc), message))
    issues.sort(key=lambda i: i.line)
    return issues


def _message(loc: Loc, errs: list[dict[str, Any]]) -> str:
    err = errs[0]
    kind = err["type"]
    got = err.get("input")
    ctx = err.get("ctx") or {}
    if len(errs) > 1 and all(e["type"].endswith("_type") for e in errs):
        return f"got {_show(got)}; should be a string, number or boolean"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    if kind == "missing":
        return "missing; this field is required"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"got unknown key {loc[-1]!r}{hint}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"got {_show(got)}; should be a mapping (key: value lines)"
    if kind == "list_type":
        return f"got {_show(got)}; should be a list (- item lines, or [a, b])"
    if kind in ("too_long", "too_short") and isinstance(got, list):
        what = "containers" if loc == ("containers",) else "items"
        bound = "at most" if kind == "too_long" else "at least"
        limit = ctx.get("max_length" if kind == "too_long" else "min_length")
        rule = f"{bound} {limit}"
        if what == "containers" and kind == "too_long":
            rule += " (SageMaker's limit per model)"
        return f"got {len(got)} {what}; should have {rule}"
    if kind == "string_pattern_mismatch":
        described = _description(loc)
        example = f" ({described.rstrip('.')})" if described else ""
        return f"got {_show(got)}; should match {ctx.get('pattern')}{example}"
    if kind == "string_type" and isinstance(got, int | float):
        text = str(got).lower() if isinstance(got, bool) else str(got)
        return f"got {text}, a {_kind(got)}; should be a string (quote it: '{text}')"
    msg = str(err["msg"])
    msg = msg.replace("Input should be", "should be").replace("String should", "should")
    msg = msg.replace("List should", "should").replace("Value should", "should")
    return f"got {_show(got)}; {msg[0].lower() + msg[1:]}"


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _description(loc: Loc) -> str:
    model = _model_at(Pipeline, loc[:-1])
    if model is None or not isinstance(loc[-1], str):
        return ""
    for name, field in model.model_fields.items():
        if loc[-1] in (name, field.alias):
            return field.description or ""
    return ""


def _allowed_keys(loc: Loc) -> list[str]:
    model = _model_at(Pipeline, loc)
    if model is None:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            field = next((f for f in current.model_fields.values() if f.alias == part), None)
        if field is None:
            return None
        current = _unwrap(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else annotation
    if origin is list:
        return _unwrap(typing.get_args(annotation)[0])
    return annotation
