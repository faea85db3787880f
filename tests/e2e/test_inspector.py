"""The inspector in a real browser: Debian's Chromium, headless, driven by Playwright, on the page
a real `up` serves. It sees the endpoint and its containers, sends a request with the form, sees
the answer and the request's hops appear, and opens one to see its headers and bodies. A
screenshot is left in the test's temporary folder (CI keeps it as an artifact)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO, running_up, write_pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
#: How Chromium runs on this project's machines: as root, no GPU, and nothing fetched on its own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright (never a browser Playwright downloads), headless, with
    a fresh profile of its own."""
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is not installed (scripts/setup-browser.sh installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]'")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


def test_the_inspector_shows_the_endpoint_sends_a_request_and_its_hops(
    tmp_path: Path, browser: Any
) -> None:
    from playwright.sync_api import expect

    started = time.monotonic()
    minimal = REPO / "containers" / "minimal"
    spec = {
        "name": "inspected",
        "mode": "Direct",
        "containers": [
            {"hostname": "greeter", "build": str(minimal)},
            {"hostname": "second", "build": str(minimal)},
        ],
    }
    pipeline = write_pipeline(tmp_path, spec)
    with running_up(pipeline, "--trace-bodies") as up:
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        problems: list[str] = []
        elsewhere: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("request", lambda r: None if r.url.startswith(up.url) else elsewhere.append(r.url))
        page.goto(f"{up.url}/_composer/")

        # the endpoint, its mode, its containers and their health
        endpoint = page.locator('[data-testid=endpoint][data-name="inspected"]')
        expect(endpoint).to_be_visible(timeout=WAIT_MS)
        expect(endpoint.get_by_test_id("mode")).to_contain_text("Direct")
        rows = endpoint.get_by_test_id("container")
        expect(rows).to_have_count(2)
        for hostname in ("greeter", "second"):
            row = endpoint.locator(f'[data-testid=container][data-hostname="{hostname}"]')
            expect(row).to_contain_text("up")
        expect(endpoint.get_by_test_id("chart")).to_have_count(6)  # 3 per container

        # a request sent with the form, to one container by hostname
        page.select_option("#send-endpoint", "inspected")
        page.select_option("#send-hostname", "second")
        page.fill("#send-body", '{"name": "browser"}')
        page.click("#send-button")
        expect(page.get_by_test_id("answer-status")).to_contain_text("200", timeout=WAIT_MS)
        expect(page.get_by_test_id("answer-body")).to_contain_text("hello, browser")
        headers = page.get_by_test_id("answer-headers")
        expect(headers).to_contain_text("x-amzn-requestid")
        request_id = headers.locator("tr", has_text="x-amzn-requestid").locator("td").inner_text()

        # its hop appears in the list; clicked, its headers and bodies show
        request = page.locator(f'[data-testid=request][data-request-id="{request_id}"]')
        expect(request).to_be_visible(timeout=WAIT_MS)
        expect(request.get_by_test_id("hop")).to_have_text(["second 200"])
        request.click()
        hop = page.locator('[data-testid=detail] [data-testid=hop-detail][data-hostname="second"]')
        expect(hop).to_be_visible()
        expect(hop).to_contain_text("Content-Type")
        expect(hop).to_contain_text("application/json")
        expect(hop).to_contain_text(request_id)
        expect(hop.get_by_test_id("request-body")).to_have_text('{"name": "browser"}')
        expect(hop.get_by_test_id("response-body")).to_contain_text("hello, browser")

        # the metrics count it, read live
        second = endpoint.locator('[data-testid=container][data-hostname="second"]')
        expect(second.get_by_test_id("invocations")).to_have_text("1", timeout=WAIT_MS)
        charts = endpoint.locator('[data-testid=charts][data-hostname="second"]')
        expect(charts.get_by_test_id("chart").first.locator("circle")).to_have_count(1)

        shot = tmp_path / "inspector.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        page.close()
        assert not problems, problems
        assert not elsewhere, f"the page fetched from elsewhere: {elsewhere}"
    print(f"\n[browser] inspector test took {time.monotonic() - started:.1f} s; screenshot {shot}")
