"""The nginx template, serve's settings and the Accept choice, checked without starting anything."""

from __future__ import annotations

import re
from pathlib import Path

import crossplane
import pytest

from composer.render.nginx import MAX_BODY, render_nginx_template
from composer.serving.app import preferred
from composer.serving.environment import DEFAULT_PORT, ConfigError
from composer.serving.serve import PLACEHOLDERS, handler_preload, main, render_config, settings

SAGEMAKER_MAX_PAYLOAD = 6291456


def _parse(conf: str, tmp_path: Path) -> dict[str, list[list[str]]]:
    path = tmp_path / "nginx.conf"
    path.write_text(conf)
    result = crossplane.parse(str(path), single=True, check_ctx=True, check_args=True)
    assert result["status"] == "ok", result["errors"]
    found: dict[str, list[list[str]]] = {}

    def walk(block: list[dict[str, object]]) -> None:
        for d in block:
            found.setdefault(str(d["directive"]), []).append([str(a) for a in d["args"]])  # type: ignore[attr-defined]
            if "block" in d:
                walk(d["block"])  # type: ignore[arg-type]

    walk(result["config"][0]["parsed"])
    return found


def test_template_uses_exactly_the_placeholders_serve_fills() -> None:
    text = render_nginx_template()
    assert set(re.findall(r"__[A-Z_]+__", text)) == set(PLACEHOLDERS)


def test_filled_template_parses_with_what_sagemaker_needs(tmp_path: Path) -> None:
    conf = render_config(
        render_nginx_template(), host="127.0.0.1", port=9123, run_dir=tmp_path, timeout=60
    )
    d = _parse(conf, tmp_path)
    assert d["listen"] == [["127.0.0.1:9123"]]
    assert d["client_max_body_size"] == [[MAX_BODY]]
    assert d["keepalive"] == [["32"]]
    assert d["proxy_http_version"] == [["1.1"]]
    assert ["Connection", ""] in d["proxy_set_header"]
    assert d["daemon"] == [["off"]]
    assert ["502", "=503", "@unavailable"] in d["error_page"]


def test_body_limit_admits_the_full_sagemaker_payload() -> None:
    number, unit = int(MAX_BODY[:-1]), MAX_BODY[-1]
    assert number * {"k": 1024, "m": 1024 * 1024}[unit] >= SAGEMAKER_MAX_PAYLOAD


@pytest.mark.parametrize("timeout", [1, 60, 3600])
def test_proxy_timeouts_outlast_gunicorn(tmp_path: Path, timeout: int) -> None:
    conf = render_config(
        render_nginx_template(), host="0.0.0.0", port=8080, run_dir=tmp_path, timeout=timeout
    )
    d = _parse(conf, tmp_path)
    for name in ("proxy_read_timeout", "proxy_send_timeout"):
        ((value,),) = d[name]
        assert int(value.removesuffix("s")) > timeout
    # and a slow client (slowloris) is cut off after as long as the model may take
    for name in ("client_header_timeout", "client_body_timeout"):
        ((value,),) = d[name]
        assert int(value.removesuffix("s")) == timeout + 5


def test_response_headers_as_long_as_admitted_request_headers(tmp_path: Path) -> None:
    conf = render_config(
        render_nginx_template(), host="0.0.0.0", port=8080, run_dir=tmp_path, timeout=60
    )
    d = _parse(conf, tmp_path)
    assert d["proxy_buffer_size"] == [["16k"]]  # > nginx's 8k request header line


def test_everything_written_goes_to_the_run_dir_or_the_std_streams(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    conf = render_config(
        render_nginx_template(), host="0.0.0.0", port=8080, run_dir=run_dir, timeout=60
    )
    d = _parse(conf, tmp_path)
    assert d["pid"] == [[f"{run_dir}/nginx.pid"]]
    for name in ("client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path"):
        assert d[name][0][0].startswith(f"{run_dir}/")
    assert d["server"][0][0] == f"unix:{run_dir}/gunicorn.sock"
    assert d["error_log"] == [["stderr", "warn"]]
    assert d["access_log"] == [["/dev/stdout", "combined", "buffer=16k", "flush=1s"]]


def test_template_is_deterministic() -> None:
    assert render_nginx_template() == render_nginx_template()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "SAGEMAKER_BIND_TO_PORT",
        "COMPOSER_LISTEN_HOST",
        "SAGEMAKER_MODEL_SERVER_WORKERS",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT",
        "COMPOSER_PRELOAD_MODEL",
        "COMPOSER_WORKER_THREADS",
        "COMPOSER_WORKER_CLASS",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("value", [None, "", "  "])
def test_port_defaults_to_8080_when_unset_or_empty(
    clean_env: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is not None:
        clean_env.setenv("SAGEMAKER_BIND_TO_PORT", value)
    conf = settings()
    assert conf["port"] == DEFAULT_PORT == 8080
    assert conf["host"] == "0.0.0.0"
    assert conf["timeout"] == 60
    assert conf["preload"] is True


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SAGEMAKER_BIND_TO_PORT", "eighty", "got 'eighty'; allowed is a whole number"),
        ("SAGEMAKER_BIND_TO_PORT", "0", "got 0; allowed is 1 to 65535"),
        ("SAGEMAKER_BIND_TO_PORT", "70000", "got 70000; allowed is 1 to 65535"),
        ("SAGEMAKER_MODEL_SERVER_WORKERS", "0", "got 0; allowed is 1 to 1024"),
        ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "1.5", "got '1.5'; allowed is a whole number"),
        ("COMPOSER_PRELOAD_MODEL", "maybe", "got 'maybe'; allowed is true or false"),
    ],
)
def test_bad_settings_name_the_variable_what_was_got_and_what_is_allowed(
    clean_env: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        settings()
    assert str(caught.value) == f"{name}: {message}"


def test_main_exits_2_on_a_bad_port_before_starting_anything(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("SAGEMAKER_BIND_TO_PORT", "-1")
    assert main([]) == 2
    assert "SAGEMAKER_BIND_TO_PORT: got -1; allowed is 1 to 65535" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["train"], ["serve", "extra"], ["--help"]])
def test_main_accepts_only_serve(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "this image only serves" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def model_fn(d):\n    return d\n", None),
        ("PRELOAD = False\n", False),
        ("PRELOAD: bool = True\n", True),
        ("PRELOAD = True\nPRELOAD = False\n", False),
        ("def f():\n    PRELOAD = False\n", None),
    ],
)
def test_handler_preload_is_read_without_importing(
    tmp_path: Path, source: str, expected: bool | None
) -> None:
    handler = tmp_path / "inference.py"
    handler.write_text("import a_package_that_is_not_installed\n" + source)
    assert handler_preload(handler) is expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("PRELOAD = 0\n", "line 1: PRELOAD must be the literal True or False"),
        ("def model_fn(:\n", "line 1: invalid syntax"),
    ],
)
def test_handler_preload_errors(tmp_path: Path, source: str, message: str) -> None:
    handler = tmp_path / "inference.py"
    handler.write_text(source)
    with pytest.raises(ConfigError, match=re.escape(message)):
        handler_preload(handler)


def test_preload_env_wins_over_the_handler(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    handler = tmp_path / "inference.py"
    handler.write_text("PRELOAD = False\n")
    assert settings(handler)["preload"] is False
    clean_env.setenv("COMPOSER_PRELOAD_MODEL", "true")
    assert settings(handler)["preload"] is True


def test_a_missing_handler_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no handler module at .*nope\.py"):
        handler_preload(tmp_path / "nope.py")


@pytest.mark.parametrize(
    ("header", "chosen"),
    [
        ("", "application/json"),
        ("*/*", "application/json"),
        ("application/jsonlines", "application/jsonlines"),
        ("application/json; charset=utf-8", "application/json; charset=utf-8"),
        ("text/csv;q=0.1, application/jsonlines", "application/jsonlines"),
        ("text/csv, application/json", "text/csv"),
        ("*/*;q=0.5, text/plain;q=0", "application/json"),
        ("text/csv;q=abc", "application/json"),
    ],
)
def test_handlers_get_the_callers_first_choice(header: str, chosen: str) -> None:
    assert preferred(header, "application/json") == chosen


def test_the_worker_class_follows_the_threads_unless_set(clean_env: pytest.MonkeyPatch) -> None:
    assert settings()["worker_class"] == "sync"
    clean_env.setenv("COMPOSER_WORKER_THREADS", "4")
    assert settings()["worker_class"] == "gthread"
    clean_env.setenv("COMPOSER_WORKER_CLASS", "gevent")  # gevent is in the dev environment
    assert settings()["worker_class"] == "gevent"
    for value, message in (
        ("sync", "got 'sync' with 4 threads per worker"),
        ("eventlet", "got 'eventlet'; allowed is sync, gthread, gevent"),
    ):
        clean_env.setenv("COMPOSER_WORKER_CLASS", value)
        with pytest.raises(ConfigError, match=message):
            settings()
