"""The benchmark suite still runs end to end (its smoke mode); no timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.e2e
def test_benchmark_suite_smoke(tmp_path: Path) -> None:
    out = tmp_path / "performance.md"
    done = subprocess.run(
        [sys.executable, str(REPO / "benches" / "run.py"), "--smoke", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    text = out.read_text()
    for title in ("1. Gateway", "2. Serial", "3. Container stack", "4. Batch", "5. Startup",
                  "6. Memory", "7. Load", "8. Streaming", "9. A first up",
                  "10. Adaptive batching", "11. Local SageMaker"):  # fmt: skip
        assert f"### {title}" in text
    figures = json.loads(out.with_suffix(".json").read_text())
    sections = {"gateway", "serial", "stack", "batch", "startup", "memory", "load", "streaming",
                "firstup", "batching", "localsm"}  # fmt: skip
    assert sections <= set(figures)
    for row in figures["gateway"]:
        assert min(row["throughput_ratio"], row["python_floor_ratio"], row["nginx_floor_ratio"]) > 0
    assert figures["batch"]["in_process_docs_per_s"] > 0
    assert 0 < figures["streaming"]["first_part_s"] <= figures["streaming"]["whole_stream_s"]
    assert min(figures["firstup"]["up_s"].values()) > 0  # uv and pip, each from an empty cache
    assert figures["firstup"]["fresh_clone_s"]["uv"] > 0
    batching = figures["batching"]
    assert batching["speedup_16"] > 0 and batching["of_in_process_pipe"] > 0
    assert batching["gevent_over_gthread_16_median_of_rounds"] > 0  # the gevent variant answered
    local = figures["localsm"]
    assert min(local["create_to_inservice_s"]) > 0 and min(local["up_ready_s"]) > 0
    assert all(call["p50_us"] > 0 for call in local["calls"].values())
    assert len(local["calls"]) == 4  # DescribeEndpoint and ListEndpoints, boto3 and raw
    assert all(row["rps_ratio"] > 0 for row in local["runtime"])
