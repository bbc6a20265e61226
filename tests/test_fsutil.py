"""Atomic writes: readers see the old or the new content, never half, and failures leave no trace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from delivery.core import fsutil


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.txt"
    fsutil.atomic_write_text(target, "one")
    fsutil.atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.txt"]


def test_failed_atomic_directory_keeps_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), fsutil.atomic_directory(target) as tmp:
        (tmp / "new.txt").write_text("half")
        raise RuntimeError("build failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert [p.name for p in target.iterdir()] == ["old.txt"]


def test_atomic_directory_restores_the_old_one_when_the_swap_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    real_replace = os.replace
    calls: list[str] = []

    def flaky_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        calls.append(Path(src).name)
        if Path(src).name.endswith(".tmp") and Path(dst) == target:
            raise OSError("disk went away")
        real_replace(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", flaky_replace)
    with pytest.raises(OSError, match="disk went away"), fsutil.atomic_directory(target) as tmp:
        (tmp / "new.txt").write_text("new")
    monkeypatch.setattr(fsutil.os, "replace", real_replace)
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert len(calls) == 3  # old aside, failed swap, old back


def test_atomic_directory_success_replaces_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with fsutil.atomic_directory(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
