"""EndpointClient's own behaviour that needs no server."""

from __future__ import annotations

import pytest

from composer.client import EndpointClient, InvocationError, InvokeResult
from composer.errors import ComposerError


def test_missing_region_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    with pytest.raises(InvocationError, match="set AWS_REGION or pass region_name") as info:
        EndpointClient("ep")
    assert isinstance(info.value, ComposerError)  # the CLI prints it without a traceback


def test_invoke_result_decodes_its_body() -> None:
    r = InvokeResult(b'{"a": [1]}', "application/json", None, "AllTraffic")
    assert r.json() == {"a": [1]}
    assert r.text() == '{"a": [1]}'
