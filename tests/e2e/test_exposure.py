"""What `up` exposes: every socket it listens on is loopback unless --host says otherwise (and then
it warns), and planted AWS credentials appear in none of its output or log files.

Sockets are found as `ss -ltnp` finds them: the socket inodes held open by the run's processes
(`up` and all its descendants), looked up in /proc/net/tcp and /proc/net/tcp6.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.integration.test_secrets import PLANTED, PLANTED_ENV, PLANTED_SPEC

from .conftest import READY_TIMEOUT, Up, start_up, write_pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FAULTY = Path(__file__).parent / "containers" / "faulty"
LISTEN = "0A"


def descendants(roots: Iterable[int]) -> set[int]:
    """`roots` and every process below them."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def _address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def listening(pids: Iterable[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state held by one of `pids`."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = fd.readlink()
            except OSError:
                continue
            if str(target).startswith("socket:["):
                inodes.add(str(target)[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == LISTEN and inode in inodes:
                address, _, port = local.partition(":")
                found.add((_address(address), int(port, 16)))
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
    env = "".join(f"      {k}: {v}\n" for k, v in PLANTED_SPEC.items())
    text = f"""
name: exposure
mode: Serial
containers:
  - hostname: first
    build: {FAULTY}
    environment:
{env}  - hostname: second
    build: {FAULTY}
"""
    return write_pipeline(folder, text)


def planted_client(up: Up) -> Any:
    """boto3 signing with the planted credentials: the Authorization header carries the key id."""
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=up.url,
        region_name="us-east-1",
        aws_access_key_id=PLANTED_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=PLANTED_ENV["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=PLANTED_ENV["AWS_SESSION_TOKEN"],
        config=Config(retries={"max_attempts": 1}, read_timeout=30),
    )


def test_up_listens_on_loopback_only_and_prints_no_secret(tmp_path: Path) -> None:
    up = start_up(pipeline(tmp_path), env=PLANTED_ENV)
    try:
        up.wait_for("ready at", READY_TIMEOUT)
        found = listening(descendants([up.proc.pid]))
        ports = container_ports(up)
        assert len(ports) == 2
        assert {("127.0.0.1", up.port)} | {("127.0.0.1", p) for p in ports} <= found
        assert_only_loopback(found, besides=set())

        client = planted_client(up)
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
    finally:
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
    up = start_up(pipeline(tmp_path), "--host", "0.0.0.0")
    try:
        up.wait_for("ready at", READY_TIMEOUT)
        warning = up.wait_for("warning: the gateway listens on 0.0.0.0", 5)
        assert "reachable from other machines" in warning
        assert "no authentication" in warning
        found = listening(descendants([up.proc.pid]))
        assert ("0.0.0.0", up.port) in found
        assert {("127.0.0.1", p) for p in container_ports(up)} <= found
        assert_only_loopback(found, besides={("0.0.0.0", up.port)})
    finally:
        assert up.stop() == 0
