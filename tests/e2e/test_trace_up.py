"""The per-hop trace as a user meets it: `up --trace` prints one line per hop, and the pytest
plugin's `Endpoint.trace` reads each container's request and answer from the gateway."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from composer.testing import serving

from .conftest import init_project

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_up_trace_prints_hops_and_the_plugin_reads_them(tmp_path: Path) -> None:
    project = init_project(tmp_path / "proj", "serial")
    body = json.dumps({"text": "What a lovely day"})
    with serving(
        project / "pipeline.yaml", args=("--trace", "--trace-bodies"), log_dir=tmp_path
    ) as endpoint:
        answer = endpoint.client.invoke_endpoint(
            EndpointName=endpoint.name, ContentType="application/json", Body=body
        )
        assert answer["ContentType"] == "application/json"
        request_id = answer["ResponseMetadata"]["RequestId"]
        hops = endpoint.trace(request_id)
        assert [h["hostname"] for h in hops] == ["preprocess", "model"]
        first, second = hops
        assert (first["content_type"], first["request_size"]) == ("application/json", len(body))
        assert first["request_body"] == body  # --trace-bodies: kept (within the cut)
        assert first["status"] == 200 and second["status"] == 200
        assert second["content_type"] == first["response_content_type"]
        assert second["request_size"] == first["response_size"]
        assert endpoint.log is not None
        printed = endpoint.log.read_text()
        for hop in hops:
            assert f"trace {request_id[:8]} {endpoint.name}/{hop['hostname']}:" in printed
        assert "What a lovely day" in printed


def test_no_body_is_recorded_or_printed_without_trace_bodies(tmp_path: Path) -> None:
    project = init_project(tmp_path / "proj", "minimal")
    secret = "planted-secret-4K7WQ"
    with serving(project / "pipeline.yaml", args=("--trace",), log_dir=tmp_path) as endpoint:
        endpoint.client.invoke_endpoint(
            EndpointName=endpoint.name,
            ContentType="application/json",
            Body=json.dumps({"name": secret}),
        )
        hops = endpoint.trace()
        assert hops and all("request_body" not in h and "response_body" not in h for h in hops)
        assert secret not in json.dumps(hops)
        assert endpoint.log is not None
        printed = endpoint.log.read_text()
        assert f"{endpoint.name}/" in printed and secret not in printed
