"""Model archives are untrusted: only plain files and folders land, and only inside the folder."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from composer.runners.modeldata import ModelDataError, prepare_model_dir


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


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (info("/etc/evil"), "absolute path"),
        (info("../evil"), "climbs out"),
        (info("a/../../evil"), "climbs out"),
        (info("link", tarfile.SYMTYPE, "/etc/passwd"), "is a link"),
        (info("hard", tarfile.LNKTYPE, "config.cfg"), "is a link"),
        (info("dev", tarfile.CHRTYPE), "device or special file"),
        (info("fifo", tarfile.FIFOTYPE), "device or special file"),
    ],
)
def test_unsafe_members_are_refused_before_anything_is_written(
    tmp_path: Path, member: tarfile.TarInfo, reason: str
) -> None:
    archive = make_archive(tmp_path / "bad.tar.gz", [info("config.cfg"), member])
    work = tmp_path / "work"
    with pytest.raises(ModelDataError, match=reason):
        prepare_model_dir("bad.tar.gz", archive, work)
    assert not (tmp_path / "evil").exists()
    assert not any(p.name.startswith("model-") for p in work.iterdir())


def test_not_an_archive(tmp_path: Path) -> None:
    bogus = tmp_path / "model.tar.gz"
    bogus.write_bytes(b"definitely not gzip")
    with pytest.raises(ModelDataError, match="not a readable tar archive"):
        prepare_model_dir("model.tar.gz", bogus, tmp_path / "work")


def test_folder_is_used_as_is_and_no_data_gives_an_empty_folder(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    assert prepare_model_dir("model", folder, tmp_path / "work") == folder
    empty = prepare_model_dir(None, None, tmp_path / "work")
    assert empty.is_dir() and not any(empty.iterdir())
