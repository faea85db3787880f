"""What `up` exposes: every socket it listens on is loopback unless --host says otherwise (and then
it warns), and planted AWS credentials appear in none of its output or log files.

Sockets are found as `ss -ltnp` finds them (psutil's net_connections): the listening TCP sockets
held open by the run's processes, `up` and all its descendants.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from pathlib import Path

import psutil
import pytest
from botocore.exceptions import ClientError

from tests.integration.test_secrets import PLANTED, PLANTED_ENV, PLANTED_SPEC

from .conftest import Up, faulty_pipeline, running_up
from .loadgen import tree

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def descendants(roots: Iterable[int]) -> set[int]:
    """`roots` and every live process below them."""
    found: set[int] = set()
    for pid in roots:
        with contextlib.suppress(psutil.NoSuchProcess):
            found |= {p.pid for p in tree(pid)}
    return found


def listening(pids: Iterable[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state held by one of `pids`."""
    found = set()
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            found |= {
                (c.laddr.ip, c.laddr.port)
                for c in psutil.Process(pid).net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN
            }
    return found


def container_ports(up: Up) -> set[int]:
    """The ports `up` printed for its containers (`hostname  http://127.0.0.1:PORT  (log ...)`)."""
    ports = set()
    for line in up.lines:
        if "http://127.0.0.1:" in line and "(log " in line:
            ports.add(int(line.split("http://127.0.0.1:")[1].split()[0]))
    return ports


def assert_only_loopback(found: set[tuple[str, int]], *, besides: set[tuple[str, int]]) -> None:
    others = {s for s in found - besides if s[0] not in ("127.0.0.1", "::1")}
    assert not others, f"listening beyond loopback: {sorted(others)}"


def pipeline(folder: Path) -> Path:
    containers = {"first": {"environment": PLANTED_SPEC}, "second": {}}
    return faulty_pipeline(folder, "exposure", containers, mode="Serial")


def test_up_listens_on_loopback_only_and_prints_no_secret(tmp_path: Path) -> None:
    with running_up(pipeline(tmp_path), env=PLANTED_ENV) as up:
        found = listening(descendants([up.proc.pid]))
        ports = container_ports(up)
        assert len(ports) == 2
        assert {("127.0.0.1", up.port)} | {("127.0.0.1", p) for p in ports} <= found
        assert_only_loopback(found, besides=set())

        # signed with the planted credentials: the Authorization header carries the key id
        client = up.client(
            timeout=30,
            access_key=PLANTED_ENV["AWS_ACCESS_KEY_ID"],
            secret_key=PLANTED_ENV["AWS_SECRET_ACCESS_KEY"],
            session_token=PLANTED_ENV["AWS_SESSION_TOKEN"],
        )
        answer = client.invoke_endpoint(
            EndpointName="exposure", Body=json.dumps({"a": 1}), ContentType="application/json"
        )
        assert json.loads(answer["Body"].read()) == {"a": 1}
        with pytest.raises(ClientError, match="ModelError"):
            client.invoke_endpoint(
                EndpointName="exposure", Body=b'{"status": 500}', ContentType="application/json"
            )
        with pytest.raises(ClientError, match="ValidationError"):
            client.invoke_endpoint(EndpointName="other", Body=b"{}")
        assert up.stop() == 0
    texts = {"up output": "\n".join(up.lines)}
    for path in up.state.rglob("*"):
        if path.is_file() and path.suffix not in (".pyc",):
            texts[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    assert any(name.endswith("first.log") for name in texts), sorted(texts)
    for name, text in texts.items():
        for value in PLANTED:
            assert value not in text, f"{value!r} in {name}"


def test_host_beyond_loopback_warns_and_containers_stay_on_loopback(tmp_path: Path) -> None:
    with running_up(pipeline(tmp_path), "--host", "0.0.0.0") as up:
        warning = up.wait_for("warning: the gateway listens on 0.0.0.0", 5)
        assert "reachable from other machines" in warning
        assert "no authentication" in warning
        found = listening(descendants([up.proc.pid]))
        assert ("0.0.0.0", up.port) in found
        assert {("127.0.0.1", p) for p in container_ports(up)} <= found
        assert_only_loopback(found, besides={("0.0.0.0", up.port)})
        assert up.stop() == 0
