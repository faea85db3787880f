"""composer.storage (locations, local reads and writes, the cached S3 client) and poll_until."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from composer import storage
from composer.errors import UsageError
from composer.polling import Wait, poll_until


def test_s3_locations_parse_and_bad_ones_say_the_form() -> None:
    assert storage.parse_s3("s3://bucket/a/b") == ("bucket", "a/b")
    assert storage.parse_s3("s3://bucket") == ("bucket", "")
    for bad in ("s3://", "s3://Bad_Bucket/x", "https://bucket/x"):
        with pytest.raises(UsageError, match=r"s3://BUCKET\[/PREFIX\]"):
            storage.parse_s3(bad)
    assert storage.join("s3://b/out/", "a.out") == "s3://b/out/a.out"
    # I/O on a location that is not S3's refuses it as a storage failure, calling nothing
    with pytest.raises(storage.StorageError, match="not an S3 location"):
        storage.read("s3://Bad_Bucket/x")


def test_local_files_round_trip_whole(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "out.json"
    storage.write(str(target), b"one")
    storage.write(f"file://{target}", b"two")
    assert storage.read(str(target)) == b"two"
    assert storage.read_object(str(target)) == storage.Blob(b"two", "")
    assert storage.exists(str(target)) and not storage.exists(str(tmp_path / "none"))
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]  # nothing .partial
    with pytest.raises(storage.TooLarge) as caught:
        storage.read(str(target), limit=2)
    assert (caught.value.size, caught.value.limit) == (3, 2)
    with pytest.raises(storage.StorageError, match=r"reading .*none: No such file"):
        storage.read(str(tmp_path / "none"))


def test_a_failed_atomic_write_leaves_the_old_file_and_no_partial(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    storage.atomic_write(path, "old")
    with pytest.raises(RuntimeError), storage.atomic_file(path) as f:
        f.write(b"half of the new")
        raise RuntimeError("disk gone")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["lock.json"]


def test_an_atomic_write_gets_the_mode_a_plain_write_gets(tmp_path: Path) -> None:
    storage.atomic_write(tmp_path / "atomic", b"x")
    (tmp_path / "plain").write_bytes(b"x")
    modes = {(tmp_path / name).stat().st_mode & 0o777 for name in ("atomic", "plain")}
    assert len(modes) == 1


def test_atomic_dir_replaces_the_folder_or_leaves_it(tmp_path: Path) -> None:
    dest = tmp_path / "env"
    with storage.atomic_dir(dest) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), storage.atomic_dir(dest) as tmp:
        (tmp / "b").write_text("2")
        raise RuntimeError("pip failed")
    assert [p.name for p in tmp_path.iterdir()] == ["env"]
    assert [p.name for p in dest.iterdir()] == ["a"]
    with storage.atomic_dir(dest) as tmp:
        (tmp / "c").write_text("3")
    assert [p.name for p in dest.iterdir()] == ["c"]


def test_one_s3_client_per_endpoint_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(storage.s3_client())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen}) == 1
    assert storage.s3_client() is seen[0]
    assert storage.s3_client().meta.endpoint_url == "http://127.0.0.1:9"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:10")
    other = storage.s3_client()
    assert other is not seen[0] and other.meta.endpoint_url == "http://127.0.0.1:10"


def test_poll_until_returns_the_value_it_waited_for() -> None:
    values = iter(["Creating", "Creating", "InService"])
    seen: list[str] = []
    got = poll_until(
        lambda: next(values),
        lambda v: v == "InService",
        Wait(interval=0, timeout=60),
        timed_out=lambda v: AssertionError(v),
        on_poll=lambda v, elapsed: seen.append(v),
    )
    assert got == "InService" and seen == ["Creating", "Creating", "InService"]


def test_poll_until_raises_what_the_timeout_makes_of_the_last_value() -> None:
    with pytest.raises(TimeoutError, match="still Creating"):
        poll_until(
            lambda: "Creating",
            lambda v: False,
            Wait(interval=0.01, timeout=0.05),
            timed_out=lambda v: TimeoutError(f"still {v}"),
        )
