"""The serving runtime's small rules, checked without starting anything: the `type` each error
puts on the wire, how the environment is parsed, and what handlers import."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import composer.serving
from composer.serving import environment, errors, multimodel


def _subclasses(cls: type[errors.ServingError]) -> list[type[errors.ServingError]]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


def test_each_error_is_named_after_the_type_it_answers() -> None:
    found = {c.__name__: c.kind for c in _subclasses(errors.ServingError)}
    assert found == {name: name for name in found}
    assert {"ModelNotFound", "ModelLoadError", "MultiModelContainer", "NotFound"} <= set(found)
    assert errors.ServingError("x").kind == "InternalError"


def test_a_handlers_own_error_keeps_the_kind_it_names_or_inherits() -> None:
    class Teapot(errors.ServingError):
        status = 418
        kind = "ImATeapot"

    class TooLong(errors.BadRequest):
        pass

    assert (Teapot("x").kind, TooLong("x").kind) == ("ImATeapot", "BadRequest")


def test_handlers_import_the_errors_and_media_type_from_the_package() -> None:
    assert composer.serving.UnsupportedMediaType is errors.UnsupportedMediaType
    assert composer.serving.UnsupportedContentType is errors.UnsupportedMediaType
    assert composer.serving.media_type("Application/JSON; charset=utf-8") == "application/json"
    assert composer.serving.media_type(None) == ""
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = composer.serving.nope


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", None), ("  ", None), ("true", True), ("YES", True), ("1", True), ("No", False)],
)
def test_flags(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool | None) -> None:
    monkeypatch.setenv("COMPOSER_PRELOAD_MODEL", value)
    assert environment.preload() is expected


@pytest.mark.parametrize(
    ("name", "value", "read", "message"),
    [
        (
            "SAGEMAKER_MULTI_MODEL",
            "Maybe",
            environment.multi_model,
            "got 'Maybe'; allowed is true or false",
        ),
        (
            "COMPOSER_MME_MEMORY_MB",
            "0",
            multimodel.Limits.from_environment,
            "got 0; allowed is 1 to 16777216",
        ),
        (
            "COMPOSER_MME_MAX_MODELS",
            "two",
            multimodel.Limits.from_environment,
            "got 'two'; allowed is a whole number",
        ),
    ],
)
def test_the_app_reads_the_variables_as_serve_checks_them(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, read: Callable[[], object], message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(environment.ConfigError) as caught:
        read()
    assert str(caught.value) == f"{name}: {message}"


def test_multi_model_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPOSER_MME_MAX_MODELS", raising=False)
    monkeypatch.setenv("COMPOSER_MME_MEMORY_MB", " 2 ")
    assert multimodel.Limits.from_environment() == multimodel.Limits(2 * multimodel.MB, None)


def test_the_handler_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPOSER_CODE_DIR", raising=False)
    monkeypatch.delenv("SAGEMAKER_PROGRAM", raising=False)
    assert environment.handler_path() == environment.BASE / "code" / "inference.py"
    monkeypatch.setenv("COMPOSER_CODE_DIR", "/opt/program/code")
    monkeypatch.setenv("SAGEMAKER_PROGRAM", " other.py ")
    assert str(environment.handler_path()) == "/opt/program/code/other.py"
