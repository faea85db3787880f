"""Faults under `sm-compose up`, each answered as SageMaker would and none leaving a request hung.

kill -9 of a container under load, nginx or gunicorn dying inside one, a container that hangs, a
container that never becomes healthy (at its first start, or after a crash), and SIGTERM to `up`
under load. Measured figures (recovery
time, failures) are printed and merged into $COMPOSER_LOAD_REPORT when it is set.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from botocore.exceptions import ClientError

from .conftest import READY_TIMEOUT, Up, faulty_pipeline, processes_under, running_up, start_up
from .loadgen import Load, Outcome, error_name, report

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RECOVERY_BOUND = 10.0  # issue 8: traffic recovers within 10 s of a kill -9
VICTIM_TIMEOUT = 5.0
HANG_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """One container per fault, so each is restarted once (with the first, 1 s backoff)."""
    containers = {
        "victim": {"invocation_timeout": VICTIM_TIMEOUT},
        "steady": {},
        "hangs": {"invocation_timeout": HANG_TIMEOUT},
        "nginx-dies": {},
        "gunicorn-dies": {},
    }
    folder = tmp_path_factory.mktemp("faults")
    with running_up(faulty_pipeline(folder, "faults", containers, mode="Direct")) as up:
        yield up


def invoke(client: Any, up: Up, target: str | None, body: Any) -> dict[str, Any]:
    extra = {"TargetContainerHostname": target} if target else {}
    r = client.invoke_endpoint(
        EndpointName=up.name,
        Body=json.dumps(body).encode(),
        ContentType="application/json",
        **extra,
    )
    answer: dict[str, Any] = json.loads(r["Body"].read())
    return answer


def serve_pid(up: Up, hostname: str) -> int:
    """The container's `serve` (what a container's entrypoint is in its image)."""
    serve = up.state / up.name / "build" / hostname / "serve"
    (pid,) = [p for p, cmd in processes_under(serve) if cmd.split()[1:2] == [str(serve)]]
    return pid


_MASTERS = {"nginx": "nginx: master", "gunicorn": " -m gunicorn "}


def master_of(serve: int, program: str) -> int:
    """nginx's or gunicorn's master: the child of `serve` running `program`."""
    needle = _MASTERS[program]
    for child in psutil.Process(serve).children():
        with contextlib.suppress(psutil.NoSuchProcess):
            if needle in " ".join(child.cmdline()):
                return child.pid
    raise AssertionError(f"no {program} under serve {serve}")


def original_status(o: Outcome) -> object:
    return (o.detail or {}).get("OriginalStatusCode")


def test_kill_9_under_load_is_answered_then_recovers(faults: Up) -> None:
    """In-flight requests get ModelError within the timeout, and traffic is back within 10 s."""
    up = faults
    targets = {0: "victim", 1: "steady"}

    def call(client: Any, i: int) -> None:
        assert invoke(client, up, targets[i % 2], {"sleep": 0.05, "i": i}) == {
            "sleep": 0.05,
            "i": i,
        }

    pid = serve_pid(up, "victim")
    load = Load(up.client, call, 32).start()
    time.sleep(1.0)  # under way
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)

    deadline = killed + RECOVERY_BOUND
    recovered: float | None = None
    while recovered is None and time.monotonic() < deadline:
        time.sleep(0.05)
        ok = [o.ended for o in load.since(killed) if o.client % 2 == 0 and o.error is None]
        recovered = min(ok) if ok else None
    if recovered is None:
        load.stop()
        raise AssertionError(f"victim did not answer within {RECOVERY_BOUND}s of its kill -9")
    time.sleep(2.0)  # traffic after recovery
    result = load.stop()

    victim = [o for o in result.outcomes if o.client % 2 == 0]
    steady = [o for o in result.outcomes if o.client % 2 == 1]
    in_flight = [o for o in victim if o.started < killed < o.ended]
    failed = [o for o in victim if o.error is not None]
    after = [o for o in victim if o.started > recovered]
    report(
        "fault-kill-9",
        {
            "recovery_seconds": round(recovered - killed, 2),
            "requests": len(result.outcomes),
            "victim_failures": len(failed),
            "in_flight_at_kill": len(in_flight),
            "in_flight_failed": len([o for o in in_flight if o.error]),
            "slowest_failure_seconds": round(max((o.seconds for o in failed), default=0), 2),
            "requests_after_recovery": len(after),
            "steady_requests": len(steady),
            "steady_failures": len([o for o in steady if o.error]),
        },
    )
    assert in_flight, "no request was in flight at the kill"
    assert failed, "the kill went unnoticed"
    for o in failed:  # SageMaker's error for a container that is gone, never a hang
        assert o.error == "ModelError", (o.error, o.detail)
        assert original_status(o) == 0, o.detail
        assert o.seconds < VICTIM_TIMEOUT, o.seconds
        assert o.started < recovered
    assert after and not [o for o in after if o.error], [o.detail for o in after if o.error][:3]
    assert not [o for o in steady if o.error], [o.detail for o in steady if o.error][:3]
    up.wait_for("victim is up again", 10)
    assert serve_pid(up, "victim") != pid


@pytest.mark.parametrize("program", ["nginx", "gunicorn"])
def test_dead_nginx_or_gunicorn_ends_serve_and_the_container_comes_back(
    faults: Up, program: str
) -> None:
    up = faults
    hostname = f"{program}-dies"
    serve = serve_pid(up, hostname)
    os.kill(master_of(serve, program), signal.SIGKILL)
    up.wait_for(f"serve: {program} was killed by signal 9; stopping", 30)
    up.wait_for(f"sm-compose: {hostname} exited with status 1; restarting", 30)
    up.wait_for(f"sm-compose: {hostname} is up again", 60)
    assert invoke(up.client(), up, hostname, {"back": 1}) == {"back": 1}
    assert serve_pid(up, hostname) != serve


def test_a_hung_container_times_out_and_the_others_keep_serving(faults: Up) -> None:
    up = faults
    hung: list[tuple[float, BaseException | None]] = []

    def hang() -> None:
        started = time.monotonic()
        try:
            invoke(up.client(), up, "hangs", {"sleep": 6})
            hung.append((time.monotonic() - started, None))
        except ClientError as exc:
            hung.append((time.monotonic() - started, exc))

    def steady(client: Any, i: int) -> None:
        assert invoke(client, up, "steady", {"i": i}) == {"i": i}

    load = Load(up.client, steady, 16).start()
    # more hung requests than the container has workers: it is stuck through and through
    threads = [threading.Thread(target=hang) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG_TIMEOUT + 30)
    result = load.stop()
    report(
        "fault-hang",
        {
            "timeout_seconds": HANG_TIMEOUT,
            "answered_after_seconds": sorted(round(s, 2) for s, _ in hung),
            "others_requests": len(result.outcomes),
            "others_failures": len(result.failures),
        },
    )
    assert len(hung) == 4, "a hung request was never answered"
    for seconds, exc in hung:
        assert isinstance(exc, ClientError), "a hung request was answered with success"
        assert error_name(exc) == "ModelError"
        assert exc.response["OriginalStatusCode"] == 0
        assert "timed out while waiting for a response from container hangs" in str(exc)
        assert HANG_TIMEOUT <= seconds < HANG_TIMEOUT + 10
    assert result.outcomes and not result.failures, [o.detail for o in result.failures[:3]]


def test_a_container_that_never_becomes_healthy_fails_up_naming_it(tmp_path: Path) -> None:
    """/ping never answers 200 (its model loads forever): `up` names it, with its last lines."""
    containers = {"stuck": {"environment": {"FAULTY_HANG_ON_LOAD": "1"}}, "fine": {}}
    pipeline = faulty_pipeline(tmp_path, "stuck", containers, mode="Direct")
    up = start_up(pipeline, "--startup-timeout", "5")
    code = up.proc.wait(timeout=READY_TIMEOUT)
    assert code != 0
    errors = [i for i, line in enumerate(up.lines) if line.startswith("error:")]
    assert errors, "\n".join(up.lines[-30:])
    message = up.lines[errors[0] :]
    assert message[0].startswith(
        "error: container stuck did not pass the ping health check in 5s while starting"
    ), message
    assert "about /ping left out" in message[0], message
    # its own last lines, not the echoes of the health check's pings
    assert "  faulty: loading the model forever" in message, message
    assert not [line for line in message if "GET /ping" in line], message
    output = "\n".join(up.lines)
    assert "internal error" not in output and "Traceback" not in output
    time.sleep(0.5)
    assert not processes_under(tmp_path / ".composer")


def test_a_restart_that_never_becomes_healthy_fails_within_the_startup_window(
    tmp_path: Path,
) -> None:
    """A crashed container's restart has the same window as its first start (not 480 s)."""
    env = {"FAULTY_HANG_AFTER_FIRST_LOAD": str(tmp_path / "loaded-once")}
    pipeline = faulty_pipeline(tmp_path, "relapse", {"relapse": {"environment": env}})
    with running_up(pipeline, "--startup-timeout", "5") as up:
        os.kill(serve_pid(up, "relapse"), signal.SIGKILL)
        up.wait_for("sm-compose: relapse exited with status -9; restarting in 1s", 10)
        restarted = time.monotonic()
        failed = up.wait_for("did not pass the ping health check", 60)
        assert failed.startswith(
            "sm-compose: container relapse did not pass the ping health check in 5s"
        ), failed
        assert time.monotonic() - restarted < 30
        # judged failed, it is stopped and started again (after the next backoff)
        up.wait_for("sm-compose: relapse exited with status", 60)
        up.wait_for("restarting in 2s", 60)
        assert up.stop() == 0
    time.sleep(0.5)
    assert not processes_under(tmp_path / ".composer")


def test_sigterm_under_load_finishes_in_flight_requests_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    containers = {"echo": {}, "other": {}, "slow": {"invocation_timeout": 3}}
    with running_up(faulty_pipeline(tmp_path, "draining", containers, mode="Direct")) as up:
        targets = {0: "echo", 1: "other"}

        def call(client: Any, i: int) -> None:
            assert invoke(client, up, targets[i % 2], {"sleep": 0.1, "i": i}) == {
                "sleep": 0.1,
                "i": i,
            }

        overlong: list[BaseException | None] = []

        def past_its_timeout() -> None:
            try:
                invoke(up.client(), up, "slow", {"sleep": 6})
                overlong.append(None)
            except (ClientError, OSError) as exc:
                overlong.append(exc)

        load = Load(up.client, call, 32).start()
        slow = threading.Thread(target=past_its_timeout)
        slow.start()
        time.sleep(1.5)
        termed = time.monotonic()
        up.proc.send_signal(signal.SIGTERM)
        try:
            code = up.proc.wait(timeout=150)
        finally:
            result = load.stop()
            slow.join(30)
        stopped = time.monotonic()

    in_flight = [o for o in result.outcomes if o.started < termed < o.ended]
    later = [o for o in result.outcomes if o.started >= termed]
    report(
        "fault-sigterm",
        {
            "in_flight_at_sigterm": len(in_flight),
            "in_flight_failed": len([o for o in in_flight if o.error]),
            "later_requests": len(later),
            "later_errors": sorted({o.error for o in later if o.error}),
            "stop_seconds": round(stopped - termed, 2),
        },
    )
    assert code == 0
    assert "sm-compose: stopping" in up.lines
    assert in_flight and not [o for o in in_flight if o.error], [
        (o.error, o.detail) for o in in_flight if o.error
    ][:3]
    # the one past its container's timeout still gets its answer: SageMaker's timeout error
    assert len(overlong) == 1 and isinstance(overlong[0], ClientError), overlong
    assert overlong[0].response["OriginalStatusCode"] == 0
    # requests sent after SIGTERM are served or refused at once (the gateway stopped listening)
    assert {o.error for o in later} <= {None, "EndpointConnectionError"}, [
        (o.error, o.detail) for o in later if o.error not in (None, "EndpointConnectionError")
    ][:3]
    time.sleep(0.5)
    assert not processes_under(tmp_path / ".composer")


def _run_dir(pid: int) -> Path:
    return Path(psutil.Process(pid).environ()["COMPOSER_RUN_DIR"])


def test_a_killed_container_leaves_no_run_files_once_up_ends(tmp_path: Path) -> None:
    """serve cannot clean up after a SIGKILL; `up` owns the folder and removes it."""
    with running_up(faulty_pipeline(tmp_path, "litter", {"one": {}})) as up:
        pid = serve_pid(up, "one")
        folder = _run_dir(pid)
        left = list(folder.glob("serve-*"))
        assert [p.name for p in left[0].iterdir()], "serve wrote no run files there"
        os.kill(pid, signal.SIGKILL)
        up.wait_for("one is up again", 30)
        assert left[0].exists(), "the killed serve's folder is what this test is about"
        assert up.stop() == 0
    assert not folder.parent.exists()
