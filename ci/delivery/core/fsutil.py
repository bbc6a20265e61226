"""Atomic file writes: write to a temp path beside the target, fsync, then rename.

What is written gets the modes ``open``/``mkdir`` would give under the process umask (files 0666,
directories 0777, less the umask), not the 0600/0700 of the temp files they start as.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

_UMASK_LOCK = threading.Lock()


def umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _UMASK_LOCK:  # elsewhere: set and put back (only this module does that)
        old = os.umask(0o022)
        os.umask(old)
        return old


def file_mode() -> int:
    """The mode of a new regular file: 0666 less the umask."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """The mode of a new directory: 0777 less the umask."""
    return 0o777 & ~umask()


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically (readers see the old or the new file, never half).

    ``mode`` defaults to :func:`file_mode`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, file_mode() if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), mode)


@contextlib.contextmanager
def atomic_directory(path: Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a temp directory beside ``path``; on success it replaces ``path`` whole.

    On error the temp directory is removed and ``path`` is left as it was. The directory gets
    ``mode``, by default :func:`dir_mode` (mkdtemp makes it 0700; pass 0o700 for private output).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, dir_mode() if mode is None else mode)
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)  # put the previous directory back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


REPO_DATA_DIRS = ("environments", "modelcars", "clusters", "tofu")
"""The platform repo's data: what rendering, validation and the substrate read (no code, no git)."""


@contextlib.contextmanager
def scratch_repo(repo: Path, prefix: str) -> Iterator[Path]:
    """A throwaway copy of the repo's data (``pyproject.toml`` and ``REPO_DATA_DIRS``, symlinks kept,
    no ``.terraform/``) in a temp directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        copy = Path(tmp) / "repo"
        copy.mkdir()
        shutil.copy2(repo / "pyproject.toml", copy / "pyproject.toml")
        for name in REPO_DATA_DIRS:
            if (repo / name).is_dir():
                shutil.copytree(
                    repo / name, copy / name, symlinks=True, ignore=shutil.ignore_patterns(".terraform")
                )
        yield copy
