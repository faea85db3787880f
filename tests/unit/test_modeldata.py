"""Model archives are untrusted: only plain files and folders land, only inside the folder, and
only up to the size cap (COMPOSER_MAX_MODEL_BYTES)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from composer.errors import UsageError
from composer.runners import modeldata
from composer.runners.modeldata import (
    DEFAULT_MAX_BYTES,
    MAX_BYTES_ENV,
    ModelDataError,
    check_members,
    extract_archive,
    max_model_bytes,
    prepare_model_dir,
)


def make_archive(path: Path, members: list[tarfile.TarInfo], data: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for m in members:
            if m.isfile():
                m.size = len(data)
                tar.addfile(m, io.BytesIO(data))
            else:
                tar.addfile(m)
    return path


def info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type = kind
    m.linkname = link
    return m


def make_bomb(path: Path, expanded: int) -> Path:
    """A small .tar.gz whose one member expands to `expanded` zero bytes."""

    class Zeros(io.RawIOBase):
        def __init__(self, size: int) -> None:
            self.left = size

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
            n = min(len(buffer), self.left)
            buffer[:n] = bytes(n)
            self.left -= n
            return n

    member = info("weights.bin")
    member.size = expanded
    with tarfile.open(path, "w:gz", compresslevel=9) as tar:
        tar.addfile(info("config.cfg", tarfile.DIRTYPE))
        tar.addfile(member, io.BufferedReader(Zeros(expanded)))
    return path


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_good_archive_is_extracted_and_reused(tmp_path: Path) -> None:
    archive = make_archive(
        tmp_path / "model.tar.gz",
        [info("config.cfg"), info("ner", tarfile.DIRTYPE), info("ner/model")],
    )
    work = tmp_path / "work"
    model = prepare_model_dir("model.tar.gz", archive, work)
    assert (model / "config.cfg").read_bytes() == b"x"
    assert (model / "ner" / "model").is_file()
    (model / "marker").write_text("kept")
    assert prepare_model_dir("model.tar.gz", archive, work) == model
    assert (model / "marker").exists(), "an unchanged archive is not extracted again"


def test_setuid_and_world_writable_modes_are_dropped(tmp_path: Path) -> None:
    member = info("run.sh")
    member.mode = 0o4777
    archive = make_archive(tmp_path / "model.tar.gz", [member])
    model = prepare_model_dir("model.tar.gz", archive, tmp_path / "work")
    assert (model / "run.sh").stat().st_mode & 0o7777 == 0o755


UNSAFE = [
    ("dotdot", info("../evil"), "climbs out with '..'"),
    ("dotdot-inner", info("a/../../evil"), "climbs out with '..'"),
    ("absolute", info("/tmp/evil"), "has an absolute path"),
    ("symlink", info("evil", tarfile.SYMTYPE, "/etc/passwd"), "is a link"),
    ("symlink-relative", info("evil", tarfile.SYMTYPE, "../../.."), "is a link"),
    ("hardlink", info("evil", tarfile.LNKTYPE, "config.cfg"), "is a link"),
    ("char-device", info("evil", tarfile.CHRTYPE), "is a device or special file"),
    ("block-device", info("evil", tarfile.BLKTYPE), "is a device or special file"),
    ("fifo", info("evil", tarfile.FIFOTYPE), "is a device or special file"),
]


@pytest.mark.parametrize(
    ("member", "reason"), [(u[1], u[2]) for u in UNSAFE], ids=[u[0] for u in UNSAFE]
)
def test_unsafe_members_are_refused_and_nothing_lands(
    tmp_path: Path, member: tarfile.TarInfo, reason: str
) -> None:
    archive = make_archive(tmp_path / "bad.tar.gz", [info("config.cfg"), member])
    work = tmp_path / "project" / ".composer" / "models" / "a"
    before = tree(tmp_path)
    with pytest.raises(ModelDataError) as caught:
        prepare_model_dir("bad.tar.gz", archive, work)
    message = str(caught.value)
    assert message.startswith(f"{archive}: member {member.name!r}"), message
    assert reason in message
    # only the (empty) working folder is new: no model folder, no .partial, nothing outside
    new = {"project", "project/.composer", "project/.composer/models", "project/.composer/models/a"}
    assert tree(tmp_path) - before == new
    assert not any(work.iterdir())


def test_gzip_bomb_is_refused_at_its_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = make_bomb(tmp_path / "bomb.tar.gz", 64 * 1024**2)  # 64 MiB of zeros
    assert archive.stat().st_size < 128 * 1024, "the bomb itself is small"
    monkeypatch.setenv(MAX_BYTES_ENV, "1M")
    work = tmp_path / "work"
    before = tree(tmp_path)
    with pytest.raises(ModelDataError) as caught:
        prepare_model_dir("bomb.tar.gz", archive, work)
    message = str(caught.value)
    assert message.startswith(f"{archive}: member 'weights.bin' takes the archive past")
    assert "the cap is 1048576 bytes (1.0 MiB)" in message
    assert MAX_BYTES_ENV in message
    assert tree(tmp_path) - before == {"work"}
    assert not any(work.iterdir())


def test_the_cap_also_counts_the_bytes_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second count: were the headers to pass (one that understates), writing still stops
    at the cap, and nothing is left."""

    def headers_pass(tar: tarfile.TarFile, shown: str, cap: int | None = None) -> object:
        return check_members(tar, shown, cap=1024**3)

    monkeypatch.setattr(modeldata, "check_members", headers_pass)
    archive = make_bomb(tmp_path / "bomb.tar.gz", 8 * 1024**2)
    before = tree(tmp_path)
    with pytest.raises(ModelDataError, match=r"'weights\.bin' takes the archive past"):
        extract_archive(archive, tmp_path / "out", cap=3 * 1024**2)
    assert tree(tmp_path) == before


def test_an_archive_under_the_cap_is_extracted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = make_bomb(tmp_path / "big.tar.gz", 2 * 1024**2)
    monkeypatch.setenv(MAX_BYTES_ENV, "3MiB")
    model = prepare_model_dir("big.tar.gz", archive, tmp_path / "work")
    assert (model / "weights.bin").stat().st_size == 2 * 1024**2


def test_too_many_members_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(modeldata, "MAX_MEMBERS", 10)
    archive = make_archive(tmp_path / "many.tar.gz", [info(f"f{i}") for i in range(11)])
    with pytest.raises(ModelDataError, match="more than 10 members"):
        prepare_model_dir("many.tar.gz", archive, tmp_path / "work")


@pytest.mark.parametrize(
    ("raw", "value"),
    [("", DEFAULT_MAX_BYTES), ("1000", 1000), ("5M", 5 * 1024**2), ("2GiB", 2 * 1024**3)],
)
def test_cap_setting(monkeypatch: pytest.MonkeyPatch, raw: str, value: int) -> None:
    monkeypatch.setenv(MAX_BYTES_ENV, raw)
    assert max_model_bytes() == value


@pytest.mark.parametrize("raw", ["lots", "0", "-5", "1.5G"])
def test_bad_cap_setting_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(MAX_BYTES_ENV, raw)
    with pytest.raises(UsageError, match=f"{MAX_BYTES_ENV}: got"):
        max_model_bytes()


def test_not_an_archive(tmp_path: Path) -> None:
    bogus = tmp_path / "model.tar.gz"
    bogus.write_bytes(b"definitely not gzip")
    with pytest.raises(ModelDataError, match="not a readable tar archive"):
        prepare_model_dir("model.tar.gz", bogus, tmp_path / "work")


def test_truncated_archive_leaves_nothing(tmp_path: Path) -> None:
    whole = make_bomb(tmp_path / "whole.tar.gz", 4 * 1024**2).read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    work = tmp_path / "work"
    with pytest.raises(ModelDataError, match="not a readable tar archive"):
        prepare_model_dir("cut.tar.gz", cut, work)
    assert not any(work.iterdir())


def test_folder_is_used_as_is_and_no_data_gives_an_empty_folder(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    assert prepare_model_dir("model", folder, tmp_path / "work") == folder
    empty = prepare_model_dir(None, None, tmp_path / "work")
    assert empty.is_dir() and not any(empty.iterdir())
