"""Fixtures every tier shares: AWS as moto gives it, and transform options for JSON Lines.

moto runs two ways. `moto` is its standalone server, started once per session (with the
UpdateEndpoint moto lacks, see tests/integration/aws_fixtures.py), emptied for each module that
uses it, and reached by unmodified clients through AWS_ENDPOINT_URL_*, which the fixture sets
for that module. `aws` is moto inside this process (mock_aws), fresh for each test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from composer.batch import TransformOptions
    from tests.integration.aws_fixtures import MotoServer


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    from tests.integration.aws_fixtures import start_moto_server

    yield from start_moto_server()


@pytest.fixture(scope="module")
def moto(moto_server: MotoServer) -> Iterator[MotoServer]:
    """moto's server, empty when the module starts, with boto3's environment pointing at it."""
    moto_server.reset()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in moto_server.env().items():
            mp.setenv(key, value)
        yield moto_server


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in this process, fresh for the test; no endpoint URL leads elsewhere."""
    from moto import mock_aws

    from tests.aws_pipelines import REGION
    from tests.integration.aws_fixtures import teach_moto_update_endpoint

    for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    teach_moto_update_endpoint()
    with mock_aws():
        yield


@pytest.fixture
def jsonl() -> Callable[..., TransformOptions]:
    """TransformOptions for JSON Lines, a record a line and an answer a line; keywords add or
    override options."""
    from composer.batch import TransformOptions

    def options(**given: Any) -> TransformOptions:
        base: dict[str, Any] = {
            "content_type": "application/jsonlines",
            "accept": "application/jsonlines",
            "split_type": "Line",
            "assemble_with": "Line",
        }
        return TransformOptions(**{**base, **given})

    return options
