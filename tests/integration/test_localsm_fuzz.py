"""The control plane fuzzed with inputs drawn from botocore's own input shapes, valid and not.

Each emulated operation gets documents built from its input shape (members present or not, values
of the right type, of a wrong type, too long, off their enums and patterns), sent raw so that
botocore's client-side checks do not filter them. Every answer must be a 2xx, or a 4xx in AWS's
error shape: never a 5xx, and the control plane still answers afterwards.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import botocore.session
import pytest
from botocore.model import ListShape, MapShape, Shape, StructureShape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from composer.gateway import ThreadedGateway
from composer.localsm import Lifecycle, LocalSageMaker

pytestmark = pytest.mark.slow

MODEL = botocore.session.get_session().get_service_model("sagemaker")
OPERATIONS = sorted(LocalSageMaker(Lifecycle(Path("."))).operations)
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _for(shape: Shape, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of `shape`, mostly well-typed, sometimes anything at all."""
    return st.one_of(_typed(shape, depth), ANY_JSON) if depth else _typed(shape, depth)


def _typed(shape: Shape, depth: int) -> st.SearchStrategy[Any]:
    if depth > 4:
        return ANY_JSON
    if isinstance(shape, StructureShape):
        members = {name: _for(member, depth + 1) for name, member in shape.members.items()}
        required = {name: members[name] for name in shape.required_members}
        optional = {name: s for name, s in members.items() if name not in required}
        return st.fixed_dictionaries(required, optional=optional)
    if isinstance(shape, ListShape):
        return st.lists(_for(shape.member, depth + 1), max_size=3)
    if isinstance(shape, MapShape):
        return st.dictionaries(st.text(max_size=12), _for(shape.value, depth + 1), max_size=3)
    kind = shape.type_name
    if kind == "string":
        enum = getattr(shape, "enum", None) or []
        words = st.text(max_size=int(shape.metadata.get("max", 64)) + 2)
        return st.sampled_from(enum) | words if enum else words
    if kind in ("integer", "long"):
        return st.integers(min_value=-(2**40), max_value=2**40)
    if kind in ("float", "double", "timestamp"):
        return st.floats(allow_nan=False, allow_infinity=False, width=32)
    if kind == "boolean":
        return st.booleans()
    return ANY_JSON


def _document(operation: str) -> st.SearchStrategy[Any]:
    shape = MODEL.operation_model(operation).input_shape
    return _typed(shape, 0) if shape is not None else st.just({})


@pytest.fixture(scope="module")
def control_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    lifecycle = Lifecycle(tmp_path_factory.mktemp("fuzz"), out=lambda _line: None)
    gateway = ThreadedGateway(None, control=LocalSageMaker(lifecycle, create_wait=0.5)).start()
    lifecycle.registry = gateway.gateway.endpoints
    try:
        yield gateway.url
    finally:
        gateway.stop(grace=1)


def _post(url: str, operation: str, body: bytes) -> tuple[int, dict[str, str], Any]:
    parsed = urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=30)
    try:
        connection.request(
            "POST",
            "/",
            body=body,
            headers={
                "X-Amz-Target": f"SageMaker.{operation}",
                "Content-Type": "application/x-amz-json-1.1",
            },
        )
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.parametrize("operation", OPERATIONS)
def test_no_input_gets_a_5xx(control_url: str, operation: str) -> None:
    @settings(
        max_examples=100,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(document=_document(operation))
    def fuzz(document: Any) -> None:
        status, headers, answer = _post(control_url, operation, json.dumps(document).encode())
        assert status < 500, (status, answer)
        if status >= 400:
            assert answer["__type"] == headers["x-amzn-ErrorType"]
            assert isinstance(answer["message"], str) and answer["message"]

    fuzz()
    status, _, answer = _post(control_url, "ListModels", b"{}")
    assert status == 200 and "Models" in answer
