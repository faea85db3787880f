"""The catalogue of malformed pipelines in bad_specs/: every one is refused, located, explained.

Each bad_specs/*.yaml starts with comments saying what `sm-compose validate` must print:

    # Bad spec: what is wrong.
    # expect: LINE: dotted.path: fragment of what was got | fragment of what is allowed

one `expect` per problem (the path is empty for YAML-level problems). The file names a folder
beside it (containers/a, containers/b, containers/no-handler, notes.txt) where a case needs one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from composer.errors import SpecError
from composer.spec import load_pipeline

HERE = Path(__file__).resolve().parent / "bad_specs"
REPO = HERE.parents[2]


@dataclass(frozen=True)
class Expected:
    line: int
    path: str
    fragments: tuple[str, ...]


def expectations(spec: Path) -> list[Expected]:
    found = []
    for text in spec.read_text(encoding="utf-8").splitlines():
        if not text.startswith("#"):
            break
        if text.startswith("# expect: "):
            line, path, rest = text.removeprefix("# expect: ").split(": ", 2)
            found.append(Expected(int(line), path, tuple(f.strip() for f in rest.split(" | "))))
    return found


CASES = sorted(HERE.glob("*.yaml"))
TOPICS = {
    "yaml": "YAML syntax errors",
    "type": "wrong types",
    "unknown": "unknown keys",
    "hostname": "duplicate or invalid hostnames",
    "sixteen": "16 containers",
    "name": "bad names",
    "build": "missing build folders",
    "model": "missing model data",
    "env": "environment maps over the limits",
    "mode": "mode values that do not exist",
    "direct": "a Direct pipeline with one container",
    "async": "an async block on a multi-container pipeline",
    "multi": "multi-model containers: two in a pipeline, Direct, async, transform, bad prefixes",
    "batching": "batching out of its limits, beside its own variables, or multi-model",
    "containers-17": "a list over its limit whose items have errors of their own",
    "rules": "several rules broken at once, reported in file order",
}


def test_the_catalogue_covers_every_topic_of_the_issue() -> None:
    assert len(CASES) >= 30
    for prefix, topic in TOPICS.items():
        assert any(c.name.startswith(prefix) for c in CASES), f"no case for {topic}"
    for case in CASES:
        expected = expectations(case)
        assert expected, f"{case.name} has no `# expect:` line"
        for e in expected:
            # one fragment for what was got, at least one for what is allowed
            assert len(e.fragments) >= 2, f"{case.name}: {e}"


@pytest.mark.parametrize("spec", CASES, ids=[c.stem for c in CASES])
def test_bad_spec_is_refused_at_its_line_and_path(spec: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_pipeline(spec)
    lines = [i.line for i in caught.value.issues]
    assert lines == sorted(lines), f"not in file order: {caught.value.issues}"
    got = sorted((i.line, i.path, i.message) for i in caught.value.issues)
    expected = sorted(expectations(spec), key=lambda e: (e.line, e.path))
    assert [(line, path) for line, path, _ in got] == [(e.line, e.path) for e in expected], got
    for (_, _, message), e in zip(got, expected, strict=True):
        for fragment in e.fragments:
            assert fragment in message, f"{fragment!r} not in {message!r}"


#: One case per topic through the real command line (each process costs about 0.3 s).
THROUGH_CLI = [
    "yaml-tab-indent",
    "yaml-tag",
    "yaml-deep-nesting",
    "yaml-alias-bomb",
    "type-environment-value",
    "unknown-top-key",
    "hostname-duplicate",
    "sixteen-containers",
    "containers-17-with-bad-items",
    "name-leading-hyphen",
    "build-missing-folder",
    "model-data-missing",
    "env-key-1025-plain",
    "env-total-32k",
    "mode-unknown",
    "direct-one-container",
    "async-multi-container",
    "multi-direct",
]


@pytest.mark.parametrize("name", THROUGH_CLI)
def test_validate_command_exits_2_with_located_lines(name: str) -> None:
    """The real command line: exit 2, exactly the located lines, nothing else, no traceback."""
    spec = HERE / f"{name}.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "composer", "validate", str(spec)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    with pytest.raises(SpecError) as caught:
        load_pipeline(spec)
    assert proc.stderr.splitlines() == [str(i) for i in caught.value.issues]
    for line, e in zip(proc.stderr.splitlines(), expectations(spec), strict=True):
        assert line.startswith(f"{spec}:{e.line}: "), line
