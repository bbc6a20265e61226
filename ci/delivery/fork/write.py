"""Write many files as one change: every new file is staged beside its target first, then all are
renamed into place; if anything fails, the files already replaced are put back as they were.

Each file is written atomically (temp file, fsync, rename: a reader sees the old or the new file),
keeps its mode (a new file gets ``core.fsutil.file_mode``), and is checked unchanged since it was
read before the first rename: a tree edited meanwhile is left alone (exit 1, run again).
"""

from __future__ import annotations

import contextlib
import difflib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from delivery.core.errors import DeliveryError
from delivery.core.fsutil import atomic_write_bytes, file_mode
from delivery.core.paths import inside_repo

_replace = os.replace  # the one rename of the commit phase (tests make it fail to check the undo)


@dataclass(frozen=True)
class Change:
    """One file's change: its text before (None: new) and after (None: deleted), and why."""

    path: str
    before: str | None
    after: str | None
    why: str

    def diff(self) -> str:
        a = (self.before or "").splitlines(keepends=True)
        b = (self.after or "").splitlines(keepends=True)
        old = f"a/{self.path}" if self.before is not None else "/dev/null"
        new = f"b/{self.path}" if self.after is not None else "/dev/null"
        return "".join(difflib.unified_diff(a, b, old, new))


def _current(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None


def _mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return file_mode()


def write_all(repo: Path, changes: Sequence[Change]) -> None:
    """Put every change into the tree, all or none (see the module docstring)."""
    moved = [c for c in changes if _current(repo / c.path) != c.before]
    if moved:
        raise DeliveryError(
            f"{len(moved)} file(s) changed while fork-init ran ({', '.join(c.path for c in moved[:5])})",
            where=str(repo),
            fix="nothing was written; commit or discard those edits, then run deliver fork-init again",
        )
    for change in changes:
        inside_repo(repo, repo / change.path)
    staged: dict[str, Path] = {}
    made: list[Path] = []
    done: list[tuple[Change, int, Path | None]] = []  # change, original mode, backup of a deleted file
    try:
        for change in changes:
            target = repo / change.path
            if change.after is None:
                continue
            for parent in reversed([target.parent, *target.parent.parents]):
                if not parent.exists() and parent.is_relative_to(repo):
                    parent.mkdir()
                    made.append(parent)
            fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            staged[change.path] = Path(name)
            with os.fdopen(fd, "wb") as fh:
                fh.write(change.after.encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(name, _mode(target))
        for change in changes:
            target = repo / change.path
            mode = _mode(target)
            if change.after is None:
                backup = target.with_name(f".{target.name}.fork-old-{os.getpid()}")
                _replace(target, backup)
                done.append((change, mode, backup))
            else:
                _replace(staged[change.path], target)
                del staged[change.path]
                done.append((change, mode, None))
    except BaseException as err:
        _undo(repo, done)
        for leftover in staged.values():
            leftover.unlink(missing_ok=True)
        for parent in reversed(made):
            with contextlib.suppress(OSError):
                parent.rmdir()
        if isinstance(err, OSError):
            raise DeliveryError(
                f"writing the fork's files failed ({err.strerror or err}); every file was put back as it was",
                where=str(err.filename or repo),
                fix="fix the cause (disk space, permissions), then run deliver fork-init again",
            ) from None
        raise
    for _, _, old in done:
        if old is not None:
            old.unlink(missing_ok=True)


def _undo(repo: Path, done: list[tuple[Change, int, Path | None]]) -> None:
    """Put back, newest first, every file the commit phase had already replaced or removed."""
    for change, mode, backup in reversed(done):
        target = repo / change.path
        if backup is not None:
            os.replace(backup, target)
        elif change.before is None:
            target.unlink(missing_ok=True)
        else:
            atomic_write_bytes(target, change.before.encode("utf-8"), mode)
