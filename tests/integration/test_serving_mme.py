"""Multi-model `serve` (SAGEMAKER_MULTI_MODEL=true), run from a build context: real nginx, gunicorn
and falcon, driven through SageMaker's multi-model container API (/models...)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from composer.render.context import write_build_context
from composer.runners.envs import ensure_env, python_of
from composer.spec import load_pipeline
from tests.integration.test_serving import Context, Served

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "integration" / "fixtures" / "mme"
MME = {"SAGEMAKER_MULTI_MODEL": "true"}


def call(
    served: Served,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One request; returns the status and the JSON answer (every answer here is JSON)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        served.url + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    return status, json.loads(raw) if raw else None


class Models:
    """Model folders as the platform leaves them: /opt/ml/models/<name>/model, extracted."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def make(self, name: str, **spec: Any) -> str:
        folder = self.root / name / "model"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.json").write_text(json.dumps({"name": name, **spec}))
        return str(folder)


def load(served: Served, name: str, url: str) -> tuple[int, Any]:
    return call(served, "POST", "/models", {"model_name": name, "url": url})


def invoke(served: Served, name: str, doc: Any = None, **headers: str) -> tuple[int, Any]:
    return call(served, "POST", f"/models/{name}/invoke", doc or {"x": 1}, headers)


def names(served: Served) -> list[str]:
    status, answer = call(served, "GET", "/models")
    assert status == 200 and "nextPageToken" not in answer, answer
    return [m["modelName"] for m in answer["models"]]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Context:
    tmp = tmp_path_factory.mktemp("mme")
    spec = tmp / "mme.yaml"
    spec.write_text(
        f"name: mme-test\ncontainers:\n  - hostname: models\n    build: {FIXTURE}\n"
        f"    multi_model: true\n    model_data: {tmp}\n"
    )
    pipeline = load_pipeline(spec)
    built = write_build_context(pipeline, pipeline.container("models"), tmp / "build")
    template = (built.path / "nginx.conf.template").read_text()
    assert "models" in template, (
        "the rendered nginx.conf.template of a multi_model container does not pass /models to "
        "gunicorn (composer/render/nginx.py)"
    )
    env = ensure_env(built.path / "requirements.txt", label="mme")
    single = Models(tmp / "single").make("default", mb=1)
    return Context(built.path, python_of(env), Path(single))


@pytest.fixture
def models(tmp_path: Path) -> Models:
    return Models(tmp_path / "opt-ml-models")


def start(ctx: Context, tmp: Path, port: int, **env: str) -> Served:
    served = ctx.serve(tmp, port, **env)
    served.wait_ready(60)
    return served


@pytest.fixture(scope="module")
def mme(
    ctx: Context, tmp_path_factory: pytest.TempPathFactory, free_port: Callable[[], int]
) -> Iterator[Served]:
    served = start(ctx, tmp_path_factory.mktemp("logs"), free_port(), **MME)
    yield served
    assert served.stop() == 0


def test_load_describe_invoke_unload(mme: Served, models: Models) -> None:
    url = models.make("alpha", mb=1)
    status, answer = load(mme, "alpha", url)
    assert status == 200, answer
    assert (answer["modelName"], answer["modelUrl"], answer["evicted"]) == ("alpha", url, [])
    assert call(mme, "GET", "/models/alpha") == (200, {"modelName": "alpha", "modelUrl": url})
    pids = set()
    for n in range(3):
        status, answer = invoke(
            mme, "alpha", {"n": n}, **{"X-Amzn-SageMaker-Target-Model": "alpha.tar.gz"}
        )
        assert status == 200, answer
        assert (answer["model"], answer["input"], answer["loads"]) == ("alpha", {"n": n}, 1)
        pids.add(answer["pid"])
    assert len(pids) == 1, "one worker holds every model"
    assert "gunicorn with 1 worker(s) x 8 thread(s)" in mme.log.read_text()
    assert "TargetModel 'alpha.tar.gz'" in mme.log.read_text()
    status, answer = load(mme, "alpha", url)
    assert status == 409 and answer["type"] == "ModelAlreadyLoaded", answer
    assert invoke(mme, "alpha")[1]["loads"] == 1, "model_fn ran once, not per request or reload"
    assert call(mme, "DELETE", "/models/alpha")[0] == 200
    for method, path in [
        ("GET", "/models/alpha"),
        ("DELETE", "/models/alpha"),
        ("POST", "/models/alpha/invoke"),
    ]:
        status, answer = call(mme, method, path, {} if method == "POST" else None)
        assert (status, answer["type"]) == (404, "ModelNotFound"), (method, path, answer)
        assert "'alpha' is not loaded" in answer["error"]
    assert load(mme, "alpha", url)[0] == 200, "an unloaded model loads again"
    _, answer = invoke(mme, "alpha")
    assert (answer["loads"], answer["unloads"]) == (2, ["alpha"]), "unload_fn was called"
    assert call(mme, "DELETE", "/models/alpha")[0] == 200


def test_invoke_uses_the_same_content_negotiation(mme: Served, models: Models) -> None:
    assert load(mme, "neg", models.make("neg"))[0] == 200
    status, answer = call(mme, "POST", "/models/neg/invoke", b"a,b", {"Content-Type": "text/csv"})
    assert (status, answer["type"]) == (415, "UnsupportedMediaType")
    status, answer = call(mme, "POST", "/models/neg/invoke", {"x": 1}, {"Accept": "text/csv"})
    assert (status, answer["type"]) == (406, "NotAcceptable")
    req = urllib.request.Request(
        mme.url + "/models/neg/invoke",
        data=b'{"x": 2}',
        headers={
            "Content-Type": "application/json",
            "Accept": "text/csv;q=0.1, application/json",
            "X-Amzn-SageMaker-Custom-Attributes": "trace=1",
        },
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.headers["Content-Type"] == "application/json"
        assert r.headers["X-Amzn-SageMaker-Custom-Attributes"] == "trace=1"
        assert json.loads(r.read())["input"] == {"x": 2}
    assert call(mme, "DELETE", "/models/neg")[0] == 200


def test_list_is_paginated(mme: Served, models: Models) -> None:
    wanted = [f"page-{i}" for i in range(5)]
    for name in reversed(wanted):
        assert load(mme, name, models.make(name))[0] == 200
    seen: list[dict[str, str]] = []
    query = "?limit=2"
    pages = 0
    while True:
        status, answer = call(mme, "GET", "/models" + query)
        assert status == 200, answer
        assert len(answer["models"]) <= 2
        seen += answer["models"]
        pages += 1
        if "nextPageToken" not in answer:
            break
        query = f"?limit=2&next_page_token={answer['nextPageToken']}"
    assert pages == 3
    assert [m["modelName"] for m in seen] == wanted, "each model once, by name"
    assert seen[0] == {"modelName": "page-0", "modelUrl": str(models.root / "page-0" / "model")}
    assert names(mme) == wanted, "the default page holds them all"
    for query, fragment in [
        ("?limit=0", "limit: got '0'; allowed is a whole number 1 to 1000"),
        ("?next_page_token=%21%21", "next_page_token: got '!!'"),
        ("?page=2", "got query parameters ['page']; allowed are next_page_token, limit"),
    ]:
        status, answer = call(mme, "GET", "/models" + query)
        assert status == 400 and fragment in answer["error"], answer
    for name in wanted:
        assert call(mme, "DELETE", f"/models/{name}")[0] == 200
    assert call(mme, "GET", "/models") == (200, {"models": []})


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{", 400, "the body is not JSON"),
        ([1], 400, "got a JSON list"),
        ({"model_name": "m"}, 400, "missing url"),
        ({"model_name": 3, "url": "/x"}, 400, "model_name: got int 3"),
        ({"model_name": "a/b", "url": "/x"}, 400, "model_name: got 'a/b'; allowed is"),
        ({"model_name": "m", "url": "relative/dir"}, 400, "allowed is the absolute path"),
        ({"model_name": "m", "url": "/no/such/folder"}, 404, "does not exist"),
    ],
)
def test_bad_load_requests_say_what_is_allowed(
    mme: Served, body: Any, status: int, fragment: str
) -> None:
    got, answer = call(mme, "POST", "/models", body)
    assert got == status and fragment in answer["error"], answer
    assert call(mme, "GET", "/ping")[0] == 200


def test_model_fn_failure_is_an_error_and_the_container_stays_healthy(
    mme: Served, models: Models
) -> None:
    status, answer = load(mme, "broken", models.make("broken", fail="weights are corrupt"))
    assert (status, answer["type"]) == (500, "ModelLoadError"), answer
    assert "'broken'" in answer["error"] and "weights are corrupt" in answer["error"]
    status, answer = load(mme, "greedy", models.make("greedy", memory_error=True))
    assert (status, answer["type"]) == (507, "InsufficientMemory"), answer
    assert call(mme, "GET", "/ping")[0] == 200
    assert "broken" not in names(mme) and "greedy" not in names(mme)
    assert load(mme, "fine", models.make("fine"))[0] == 200
    assert invoke(mme, "fine")[0] == 200
    assert call(mme, "DELETE", "/models/fine")[0] == 200


def test_concurrent_loads_of_one_model_run_model_fn_once(mme: Served, models: Models) -> None:
    url = models.make("slow", sleep=1.0)
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: load(mme, "slow", url), range(3)))
        # while a model loads, other requests keep being served
        invokes = list(pool.map(lambda _: call(mme, "GET", "/ping")[0], range(4)))
    assert sorted(status for status, _ in results) == [200, 409, 409], results
    assert invokes == [200] * 4
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: invoke(mme, "slow"), range(16)))
    assert {(s, a["model"], a["loads"]) for s, a in answers} == {(200, "slow", 1)}
    assert call(mme, "DELETE", "/models/slow")[0] == 200


def test_invocations_is_refused_in_multi_model_mode(mme: Served) -> None:
    status, answer = call(mme, "POST", "/invocations", {"x": 1})
    assert (status, answer["type"]) == (400, "MultiModelContainer")
    assert "POST /models/{name}/invoke" in answer["error"]
    assert call(mme, "GET", "/ping")[0] == 200


def test_count_cap_evicts_the_least_recently_used(
    ctx: Context, models: Models, tmp_path: Path, free_port: Callable[[], int]
) -> None:
    served = start(ctx, tmp_path, free_port(), **MME, COMPOSER_MME_MAX_MODELS="2")
    try:
        for name in ("a", "b"):
            assert load(served, name, models.make(name))[0] == 200
        assert invoke(served, "a")[0] == 200  # a is now used more recently than b
        status, answer = load(served, "c", models.make("c"))
        assert (status, answer["evicted"]) == (200, ["b"]), answer
        assert names(served) == ["a", "c"]
        assert invoke(served, "b")[0] == 404
        assert invoke(served, "a")[1]["unloads"] == ["b"]
    finally:
        assert served.stop() == 0


def test_memory_budget_evicts_lru_and_507_when_a_model_alone_is_too_big(
    ctx: Context, models: Models, tmp_path: Path, free_port: Callable[[], int]
) -> None:
    served = start(ctx, tmp_path, free_port(), **MME, COMPOSER_MME_MEMORY_MB="100")
    try:
        for name in ("m1", "m2"):
            status, answer = load(served, name, models.make(name, mb=40))
            assert status == 200 and 39 <= answer["memoryMB"] <= 45, answer
        assert invoke(served, "m1")[0] == 200  # m2 is now the least recently used
        status, answer = load(served, "m3", models.make("m3", mb=40))
        assert (status, answer["evicted"]) == (200, ["m2"]), answer
        assert names(served) == ["m1", "m3"]
        status, answer = load(served, "huge", models.make("huge", mb=120))
        assert (status, answer["type"]) == (507, "InsufficientMemory"), answer
        assert "'huge' needs 12" in answer["error"] and "100.0 MB" in answer["error"]
        assert names(served) == ["m1", "m3"], "nothing was evicted for a model that cannot fit"
        assert invoke(served, "m3")[1]["unloads"] == ["m2", "huge"]
        assert call(served, "GET", "/ping")[0] == 200
    finally:
        assert served.stop() == 0


def test_single_model_mode_has_no_models_routes(
    ctx: Context, tmp_path: Path, free_port: Callable[[], int]
) -> None:
    served = start(ctx, tmp_path, free_port())
    try:
        status, answer = call(served, "POST", "/invocations", {"x": 1})
        assert (status, answer["model"]) == (200, "default")
        for method, path in [("GET", "/models"), ("POST", "/models"), ("GET", "/models/default")]:
            status, answer = call(served, method, path, {} if method == "POST" else None)
            assert (status, answer["type"]) == (404, "NotFound"), (method, path, answer)
    finally:
        assert served.stop() == 0


def test_bad_multi_model_settings_exit_2(
    ctx: Context, tmp_path: Path, free_port: Callable[[], int]
) -> None:
    for env, message in [
        ({"COMPOSER_MME_MEMORY_MB": "lots"}, "COMPOSER_MME_MEMORY_MB: got 'lots'"),
        ({"COMPOSER_MME_MAX_MODELS": "0"}, "COMPOSER_MME_MAX_MODELS: got 0; allowed is 1 to"),
        ({"COMPOSER_WORKER_THREADS": "1"}, "allowed is 2 to 1024 in multi-model mode"),
        ({"SAGEMAKER_MULTI_MODEL": "sure"}, "SAGEMAKER_MULTI_MODEL: got 'sure'"),
    ]:
        served = ctx.serve(tmp_path, free_port(), **{**MME, **env})
        assert served.proc.wait(timeout=30) == 2, served.log.read_text()
        assert message in served.log.read_text()
