"""`up --watch`'s and `local --watch`'s choices that need no process: which saved paths count,
and what each reloads.

The reloads themselves, under load, are tested end to end in tests/e2e/test_watch.py.
"""

from __future__ import annotations

from pathlib import Path

from watchfiles import Change

from composer.localsm.watch import Relevant, why_changed


def test_only_the_pipeline_file_and_the_container_folders_count(tmp_path: Path) -> None:
    pipeline = tmp_path / "pipeline.yaml"
    a, b = tmp_path / "a", tmp_path / "b"
    relevant = Relevant(pipeline, [a, b])
    for kept in (pipeline, a / "inference.py", a / "requirements.txt", b / "lib" / "util.py"):
        assert relevant(Change.modified, str(kept)), kept
    for left_out in (
        tmp_path / "notes.txt",  # beside the pipeline, in no container's folder
        tmp_path / ".composer" / "p" / "logs" / "a.log",  # up's own state
        a / ".composer" / "p" / "build" / "a" / "inference.py",  # a pipeline inside a folder
        a / "__pycache__" / "inference.cpython-311.pyc",
        a / ".inference.py.swp",  # vim
        a / "inference.py~",  # emacs, and others' backups
        a / ".#inference.py",  # emacs' lock
        a / ".git" / "index",
    ):
        assert not relevant(Change.modified, str(left_out)), left_out


def test_local_watch_counts_the_build_folders_only(tmp_path: Path) -> None:
    """`local --watch` has no pipeline file: only what is in the endpoints' build folders."""
    a = tmp_path / "a"
    relevant = Relevant(None, [a])
    assert relevant(Change.modified, str(a / "inference.py"))
    assert not relevant(Change.modified, str(tmp_path / "pipeline.yaml"))
    assert not relevant(Change.modified, str(a / ".composer" / "p" / "logs" / "a.log"))


def test_requirements_and_code_reload_each_container_of_that_folder(tmp_path: Path) -> None:
    shared, own = tmp_path / "shared", tmp_path / "own"
    folders = {"one": shared, "two": shared, "three": own}
    assert why_changed([shared / "inference.py"], folders) == {"one": {"code"}, "two": {"code"}}
    assert why_changed([own / "requirements.txt", own / "x" / "requirements.txt"], folders) == {
        "three": {"requirements", "code"}
    }
    assert why_changed([tmp_path / "pipeline.yaml"], folders) == {}
