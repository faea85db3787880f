"""Reading pipeline.yaml into a validated Pipeline, with every error located by file and line.

ruamel.yaml keeps the line of every key and item; pydantic reports where each error is. Joining
the two gives `FILE:LINE: dotted.path: message` for all errors at once, not only the first.
"""

from __future__ import annotations

import datetime
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, NodeEvent

from ..errors import SpecError, SpecIssue
from .models import ARCHIVE_SUFFIXES, MAX_ENV_TOTAL_BYTES, MULTI_MODEL_ENV, Pipeline

Loc = tuple[str | int, ...]

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
        pipeline = Pipeline.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_issues_from(exc, shown, lines)) from None
    pipeline._source = source.resolve() if source is not None else None
    issues = [
        SpecIssue(shown, _line_of(loc, lines), _dotted(loc), message)
        for loc, message in _cross_checks(pipeline)
    ]
    if issues:
        raise SpecError(sorted(issues, key=lambda i: i.line))
    return pipeline


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
    grouped: dict[Loc, list[dict[str, Any]]] = {}
    about_key: set[Loc] = set()
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in _UNION_TAGS))
        grouped.setdefault(loc, []).append(dict(err))
        if err["loc"][-1:] == (_KEY,):
            about_key.add(loc)
    issues = []
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


def _cross_checks(pipeline: Pipeline) -> Iterator[tuple[Loc, str]]:
    """Rules that span fields or touch the file system; each is reported where it applies."""
    seen: dict[str, int] = {}
    for index, container in enumerate(pipeline.containers):
        first = seen.setdefault(container.hostname, index)
        if first != index:
            yield (
                ("containers", index, "hostname"),
                f"got {container.hostname!r} again (also containers[{first}]); "
                "hostnames must be unique",
            )
    if pipeline.mode == "Direct" and len(pipeline.containers) < 2:
        yield (
            ("mode",),
            "got Direct with 1 container; Direct needs 2 to 15 containers "
            "(a single container is invoked without a hostname)",
        )
    if pipeline.async_inference is not None and pipeline.is_multi_container:
        yield (
            ("async",),
            f"got async with {len(pipeline.containers)} containers ({pipeline.mode}); "
            "asynchronous inference needs a single-container pipeline (SageMaker supports "
            "neither Direct nor Serial multi-container endpoints for async)",
        )
    if pipeline.transform is not None and pipeline.mode == "Direct":
        yield (
            ("transform",),
            "got transform with a Direct pipeline; batch transform needs a Serial or "
            "single-container pipeline (SageMaker's Direct multi-container endpoints are "
            "real-time only)",
        )
    yield from _multi_model_checks(pipeline)
    total = sum(len(k) + len(v) for c in pipeline.containers for k, v in c.model_env.items())
    if total > MAX_ENV_TOTAL_BYTES:
        yield (
            ("containers",),
            f"got {total} bytes of environment keys and values in all; SageMaker allows at "
            f"most {MAX_ENV_TOTAL_BYTES} per model",
        )
    for index, container in enumerate(pipeline.containers):
        if container.build is not None:
            folder = pipeline.resolve(container.build)
            if not folder.is_dir():
                yield (
                    ("containers", index, "build"),
                    f"got {container.build!r}, which is not a folder (looked at {folder})",
                )
            elif not (folder / "inference.py").is_file():
                yield (
                    ("containers", index, "build"),
                    f"got {container.build!r}, which has no inference.py; a container folder "
                    "holds inference.py and requirements.txt",
                )
        data = container.model_data
        if container.multi_model:
            continue  # a prefix, not one model: _multi_model_checks
        if data is not None and not data.startswith("s3://"):
            path = pipeline.resolve(data)
            if path.is_dir():
                continue
            if not path.is_file():
                yield (
                    ("containers", index, "model_data"),
                    f"got {data!r}, which does not exist (looked at {path}); give a .tar.gz, "
                    "a folder or an s3:// URI",
                )
            elif not path.name.endswith((".tar.gz", ".tgz")):
                yield (
                    ("containers", index, "model_data"),
                    f"got {data!r}; a model_data file is a .tar.gz archive",
                )


#: Where SageMaker lists what each hosting option supports: multi-model endpoints are real-time
#: only, and combine with serial inference pipelines but not with multi-container (Direct) ones.
FEATURES = "see SageMaker's supported-features table"


def _multi_model_checks(pipeline: Pipeline) -> Iterator[tuple[Loc, str]]:
    """SageMaker's rules for multi-model containers, and their model data as a prefix."""
    multi = [i for i, c in enumerate(pipeline.containers) if c.multi_model]
    if len(multi) > 1:
        yield (
            ("containers", multi[1], "multi_model"),
            f"got {len(multi)} multi-model containers "
            f"({', '.join(f'containers[{i}]' for i in multi)}); SageMaker allows at most one "
            "multi-model container in a pipeline",
        )
    for index, container in enumerate(pipeline.containers):
        flag = container.env.get(MULTI_MODEL_ENV)
        if flag is None or (flag == "true") == container.multi_model:
            continue
        yield (
            ("containers", index, "environment", MULTI_MODEL_ENV),
            f"got {MULTI_MODEL_ENV}={flag!r} with multi_model: "
            f"{str(container.multi_model).lower()}; set "
            "multi_model instead (it sets this variable, the image label and Mode: "
            "MultiModel together)",
        )
    if not multi:
        return
    first = multi[0]
    where = ("containers", first, "multi_model")
    if pipeline.mode == "Direct" and pipeline.is_multi_container:
        yield (
            where,
            "got multi_model: true in a Direct pipeline; SageMaker does not support "
            "multi-model containers in multi-container endpoints with direct invocation "
            f"({FEATURES}); use a Serial pipeline or a single-container one",
        )
    if pipeline.async_inference is not None and not pipeline.is_multi_container:
        yield (
            ("async",),
            f"got async with a multi-model container (containers[{first}]); SageMaker's "
            f"asynchronous inference does not support multi-model endpoints ({FEATURES}); "
            "drop async or multi_model",
        )
    if pipeline.transform is not None and pipeline.mode != "Direct":
        yield (
            ("transform",),
            f"got transform with a multi-model container (containers[{first}]); SageMaker's "
            f"batch transform does not support multi-model endpoints ({FEATURES}); drop "
            "transform or multi_model",
        )
    for index in multi:
        container = pipeline.containers[index]
        data = container.model_data
        if data is None:
            yield (
                ("containers", index, "multi_model"),
                "got multi_model: true without model_data; a multi-model container needs "
                "model_data: the folder or s3:// prefix its .tar.gz models are loaded from",
            )
            continue
        if data.startswith("s3://"):
            continue
        path = pipeline.resolve(data)
        loc: Loc = ("containers", index, "model_data")
        if path.is_dir():
            continue
        if not path.exists():
            yield (
                loc,
                f"got {data!r}, which does not exist (looked at {path}); a multi-model "
                "container's model_data is a folder of .tar.gz archives or an s3:// prefix",
            )
        elif path.name.endswith(ARCHIVE_SUFFIXES):
            yield (
                loc,
                f"got {data!r}, one archive; a multi-model container takes a folder (or an "
                "s3:// prefix) of .tar.gz archives, one per model: put the archive in a "
                "folder and give the folder",
            )
        else:
            yield (
                loc,
                f"got {data!r}, which is not a folder; a multi-model container's model_data "
                "is a folder of .tar.gz archives or an s3:// prefix",
            )
