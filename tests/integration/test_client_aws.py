"""EndpointClient and `sm-compose invoke` against AWS's API (moto's server): TargetModel is sent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from composer.client import EndpointClient
from tests.integration.aws_fixtures import MotoServer

pytestmark = pytest.mark.aws


def test_target_model_and_hostname_reach_the_wire(
    moto: MotoServer, runtime_client: Callable[..., Any]
) -> None:
    env = moto.env()
    client = runtime_client(moto.url, region=env["AWS_DEFAULT_REGION"])
    sent: list[dict[str, Any]] = []
    client.meta.events.register(
        "before-send.sagemaker-runtime.InvokeEndpoint",
        lambda request, **_: sent.append(dict(request.headers)),
    )
    result = EndpointClient("mme-ep", client=client).invoke(
        {"text": "hi"}, target_model="v2/en-rules.tar.gz"
    )
    assert result.body  # moto answers a canned body
    headers = {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in sent[0].items()}
    assert headers["x-amzn-sagemaker-target-model"] == "v2/en-rules.tar.gz"
    assert "x-amzn-sagemaker-target-container-hostname" not in headers
