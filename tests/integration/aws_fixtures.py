"""Shared pieces of the AWS tests: a call recorder and moto's server (pipelines to deploy are
in tests/aws_pipelines.py).

moto runs nothing and has no UpdateEndpoint: a test that needs either takes the local SageMaker
as its SageMaker (tests/e2e/conftest.py's `sagemaker_on_local`), moto staying for S3, ECR and
Application Auto Scaling. Run this module to start moto's server:
`python -m tests.integration.aws_fixtures -p PORT -H 127.0.0.1`. Tests do not start it
themselves: they take tests/conftest.py's `moto` fixture (one server per session, emptied for
each module) or `aws` (moto in process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from composer.aws.clients import Clients
from composer.runners.contract import free_port
from tests.aws_pipelines import REGION

# botocore names them after service ids: "Application Auto Scaling" -> APPLICATION_AUTO_SCALING.
SERVICES = ("SAGEMAKER", "S3", "APPLICATION_AUTO_SCALING", "STS", "ECR")
ROOT = Path(__file__).resolve().parents[2]


# --- recording what clients send --------------------------------------------------------------


@dataclass
class Call:
    service: str
    operation: str
    params: dict[str, Any]


@dataclass
class Recorder:
    """Every request the clients put on the wire (JSON bodies decoded), via before-call hooks."""

    calls: list[Call] = field(default_factory=list)

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-call", self._record)
        return client

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        body = params.get("body")
        decoded: dict[str, Any] = {}
        if (
            isinstance(body, bytes | str)
            and body
            and params.get("headers", {})
            .get("Content-Type", "")
            .startswith("application/x-amz-json")
        ):
            decoded = json.loads(body)
        self.calls.append(Call(model.service_model.service_name, model.name, decoded))

    def ops(self, service: str | None = None) -> list[str]:
        return [c.operation for c in self.calls if service is None or c.service == service]

    def sent(self, operation: str) -> list[dict[str, Any]]:
        return [c.params for c in self.calls if c.operation == operation]

    def clear(self) -> None:
        self.calls.clear()


def recorded_clients(recorder: Recorder) -> Clients:
    """Unmodified boto3 clients from the standard chain, each with the recorder attached."""
    session = boto3.Session(region_name=REGION)
    clients = Clients.from_session(session)
    for client in (clients.sagemaker, clients.s3, clients.autoscaling, clients.sts):
        recorder.attach(client)
    return clients


# --- moto's standalone server -----------------------------------------------------------------


@dataclass
class MotoServer:
    url: str
    process: subprocess.Popen[bytes]

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def env(self) -> dict[str, str]:
        """Variables that point unmodified boto3 clients at this server."""
        env = {f"AWS_ENDPOINT_URL_{s}": self.url for s in SERVICES}
        env |= {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "SM_COMPOSE_POLL_INTERVAL": "0.05",
        }
        return env


def start_moto_server() -> Iterator[MotoServer]:
    port = free_port()
    log = open(os.devnull, "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.aws_fixtures",
            "-p",
            str(port),
            "-H",
            "127.0.0.1",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start on {url}") from None
                time.sleep(0.1)
        yield MotoServer(url, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


if __name__ == "__main__":
    from moto.server import main

    main(sys.argv[1:])
