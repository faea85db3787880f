"""Local batch transforms through the shipped Serial NLP example (spaCy into TextBlob).

Both strategies with a payload limit small enough to force many mini-batches; order and
completeness of the output; a gzip input; an oversized record failing its object cleanly.
Records per second are printed (run with -s to see them); nothing asserts on time.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path

import pytest

from composer.batch import TransformOptions, TransformResult, transform_local
from composer.spec import load_pipeline
from tests.e2e.conftest import REPO, nlp_pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SENTENCES = [
    "Apple is looking at buying U.K. startup for $1 billion.",
    "The weather in Paris was wonderful and the food was great.",
    "I really hate waiting in long queues at the airport.",
    "Berlin hosted a terrible conference about boring spreadsheets.",
]
JSONL = {
    "content_type": "application/jsonlines",
    "accept": "application/jsonlines",
    "split_type": "Line",
    "assemble_with": "Line",
}


def _texts(count: int, pad: int = 0) -> bytes:
    """Records of short texts; `pad` bytes of an ignored field make the mini-batches fill up
    (MaxPayloadInMB counts whole MB, and spaCy's documents are far larger than its input, so
    padding is how a 1 MB limit gives many mini-batches without 6 MB answers)."""
    extra = {"pad": "x" * pad} if pad else {}
    lines = [
        json.dumps({"text": f"{SENTENCES[i % len(SENTENCES)]} (record {i})", **extra})
        for i in range(count)
    ]
    return ("\n".join(lines) + "\n").encode()


def _run(folder: Path, options: TransformOptions, src: Path) -> TransformResult:
    if not (REPO / "artifacts" / "spacy-model.tar.gz").is_file():
        pytest.skip("artifacts/spacy-model.tar.gz missing: run scripts/setup.sh")
    pipeline = load_pipeline(nlp_pipeline(folder, "Serial"))
    result = asyncio.run(transform_local(pipeline, options, str(src), str(folder / "out")))
    print(f"\n{src.name}: {result.summary()}")
    return result


def _check(out: Path, count: int) -> None:
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == count
    assert [line["text"].rsplit("(record ", 1)[1] for line in lines] == [
        f"{i})" for i in range(count)
    ]
    first = lines[0]
    assert {"text": "Apple", "label": "ORG", "start": 0, "end": 5} in first["entities"]
    assert first["sentiment"]["polarity"] == pytest.approx(0.0, abs=1)
    assert lines[1]["sentiment"]["polarity"] > 0 > lines[2]["sentiment"]["polarity"]


@pytest.mark.parametrize("strategy", ["MultiRecord", "SingleRecord"])
def test_serial_nlp_both_strategies(tmp_path: Path, strategy: str) -> None:
    count = 1000 if strategy == "MultiRecord" else 150
    src = tmp_path / "texts.jsonl"
    src.write_bytes(_texts(count, pad=5000))  # about 5 MB: 5 or more mini-batches of 1 MB
    options = TransformOptions(
        **JSONL,
        strategy=strategy,  # type: ignore[arg-type]
        max_payload_mb=1,
        max_concurrent=2,
    )
    result = _run(tmp_path, options, src)
    assert not result.failed, [o.failures for o in result.objects]
    if strategy == "MultiRecord":
        assert result.requests >= 5
    else:
        assert result.requests == count
    _check(tmp_path / "out" / "texts.jsonl.out", count)


def test_serial_nlp_many_mini_batches_gzip_and_an_oversized_record(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    count = 600
    (folder / "texts.jsonl.gz").write_bytes(gzip.compress(_texts(count, pad=5000)))
    big = json.dumps({"text": "word " * 230_000}) + "\n"  # over 1 MB in one record
    (folder / "huge.jsonl.gz").write_bytes(gzip.compress(_texts(3) + big.encode()))
    options = TransformOptions(
        **{**JSONL, "compression": "Gzip"}, max_payload_mb=1, max_concurrent=2
    )
    result = _run(tmp_path, options, folder)
    assert result.requests >= 3
    failed = {o.name: o for o in result.failed}
    assert list(failed) == ["huge.jsonl.gz"]
    assert failed["huge.jsonl.gz"].failures[0].startswith("huge.jsonl.gz: record 4 has ")
    assert not (tmp_path / "out" / "huge.jsonl.gz.out").exists()
    _check(tmp_path / "out" / "texts.jsonl.gz.out", count)
