"""Deterministic, streamed tar layers: the same files give the same bytes on any machine.

The format is pinned (``TAR_SPEC_VERSION``): GNU tar headers (files over 8 GiB use GNU base-256
sizes, long names GNU long-name entries), entries sorted by path components, an explicit entry
for every directory, mtime 0, uid/gid 0, empty uname/gname, mode 0755 for directories and 0644
for files (readable by any uid, e.g. 65532), and the two 512-byte end blocks with no record
padding. The layer size is known from the file sizes alone, before reading any byte, and the
bytes are generated on the fly from the source files on every pass: never a temporary copy,
never a whole file in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import queue
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, NamedTuple

from delivery.core.errors import SourceError

TAR_SPEC_VERSION = "modelcar-tar/1"
"""Bumped on any change to the bytes a layer is made of (part of every layer cache key)."""

DIR_MODE = 0o755
FILE_MODE = 0o644
MTIME = 0
BLOCK = 512
CHUNK = 1 << 20
READ = 2 << 20  # a read handed to the hashing and writing threads
DEPTH = 4  # reads waiting per thread: with READ, the memory a layer pass holds (~10 MiB)
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)

Progress = Callable[[int], None]

RACY_NS = 2_000_000_000
"""A file changed less than this before it was read is "racy" (git's word): file timestamps are
coarse (a kernel tick; 1-2 s on some filesystems), so a write right after the read could leave
size, mtime and ctime as they were. Its sha256 is right, but its stat is no key for a cache."""


class Hashed(NamedTuple):
    """One pass over a layer: its digest, each file's sha256, and the stat of each stable file.

    ``seen`` holds, for each file that was not racy, its ``os.fstat`` taken on the open file before
    its first byte was read (and found unchanged after its last): an identity that any later write
    changes, so a digest cache may key that sha256 on it.
    """

    digest: str
    sums: dict[str, str]
    seen: dict[str, os.stat_result]


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns, a.st_ctime_ns) == (
        b.st_dev,
        b.st_ino,
        b.st_size,
        b.st_mtime_ns,
        b.st_ctime_ns,
    )


def _header(name: str, *, directory: bool, size: int = 0) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = DIR_MODE if directory else FILE_MODE
    info.size = 0 if directory else size
    info.mtime = MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "strict")


def _padding(size: int) -> int:
    return -size % BLOCK


@dataclass(frozen=True)
class LayerFile:
    """One file of a layer: its path inside the image and where its bytes are read from."""

    arcname: str
    path: Path
    size: int

    def __post_init__(self) -> None:
        parts = PurePosixPath(self.arcname).parts
        if not parts or self.arcname.startswith("/") or ".." in parts or "." in parts:
            raise ValueError(f"bad path inside the image: {self.arcname!r}")


@dataclass(frozen=True)
class Entry:
    name: str
    header: bytes
    file: LayerFile | None


@dataclass(frozen=True)
class TarLayer:
    """A tar layer planned from files; ``size`` is exact before any byte is read."""

    files: tuple[LayerFile, ...]
    entries: tuple[Entry, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        dirs: set[str] = set()
        for f in self.files:
            parent = PurePosixPath(f.arcname).parent
            while str(parent) not in (".", "/"):
                dirs.add(str(parent))
                parent = parent.parent
        names = {f.arcname: f for f in self.files}
        if len(names) != len(self.files):
            raise ValueError("a layer lists the same path twice")
        clash = dirs & names.keys()
        if clash:
            raise ValueError(f"{sorted(clash)[0]!r} is both a file and a directory")
        items: list[tuple[tuple[str, ...], Entry]] = []
        for d in dirs:
            items.append((PurePosixPath(d).parts, Entry(d, _header(d, directory=True), None)))
        for f in self.files:
            items.append(
                (
                    PurePosixPath(f.arcname).parts,
                    Entry(f.arcname, _header(f.arcname, directory=False, size=f.size), f),
                )
            )
        items.sort(key=lambda item: item[0])
        object.__setattr__(self, "entries", tuple(e for _, e in items))

    @cached_property
    def size(self) -> int:
        """Exact byte size of the tar stream, from headers and file sizes alone."""
        total = len(END_OF_ARCHIVE)
        for e in self.entries:
            total += len(e.header)
            if e.file is not None:
                total += e.file.size + _padding(e.file.size)
        return total

    @property
    def data_size(self) -> int:
        """Bytes of file content (what has to be read)."""
        return sum(f.size for f in self.files)

    def stream(self, progress: Progress | None = None) -> Iterator[bytes]:
        """The tar bytes, generated from the files (bounded memory; checks sizes as it reads)."""
        for e in self.entries:
            yield e.header
            if e.file is None:
                continue
            with _open(e.file) as fh:
                remaining = e.file.size
                while remaining:
                    chunk = fh.read(min(CHUNK, remaining))
                    if not chunk:
                        raise _changed(e.file, "is shorter than when it was planned")
                    remaining -= len(chunk)
                    if progress is not None:
                        progress(len(chunk))
                    yield chunk
                if fh.read(1):
                    raise _changed(e.file, "grew since it was planned")
            pad = _padding(e.file.size)
            if pad:
                yield b"\0" * pad
        yield END_OF_ARCHIVE

    def digest_and_write(self, out: BinaryIO | None = None, progress: Progress | None = None) -> Hashed:
        """One pass over the files: the layer digest and each file's sha256 (writing the tar to ``out``).

        Every byte is hashed twice (the layer's digest, the file's own sha256) and maybe written:
        three jobs on three threads, each in order, handed the same chunks through bounded queues
        (hashlib and file writes release the GIL), so a layer costs about one hash, not two plus a
        copy. Memory stays at a few chunks whatever the file sizes. A file written to while it is
        read (its size, mtime or ctime moved between the ``fstat`` before the first byte and after
        the last) is an error, never a digest of mixed bytes.
        """
        layer_hash = hashlib.sha256()
        file_sums: dict[str, str] = {}
        seen: dict[str, os.stat_result] = {}
        written = 0

        def hash_file(item: tuple[Any, bytes | str]) -> None:
            digest, data = item
            if isinstance(data, str):  # the file's last chunk was hashed: data is its arcname
                file_sums[data] = "sha256:" + digest.hexdigest()
            else:
                digest.update(data)

        hasher = _Stage("modelcar-file-sha256", hash_file)
        writer = _Stage("modelcar-blob-write", out.write) if out is not None else None
        try:
            for e in self.entries:
                layer_hash.update(e.header)
                if writer is not None:
                    writer.put(e.header)
                written += len(e.header)
                if e.file is None:
                    continue
                file_hash = hashlib.sha256()
                with _open(e.file) as fh:
                    started = time.time_ns()
                    before = os.fstat(fh.fileno())
                    if before.st_size != e.file.size:
                        raise _changed(e.file, f"has {before.st_size} bytes now")
                    remaining = e.file.size
                    while remaining:
                        part = fh.read(min(READ, remaining))
                        if not part:
                            raise _changed(e.file, "is shorter than when it was planned")
                        hasher.put((file_hash, part))
                        if writer is not None:
                            writer.put(part)
                        layer_hash.update(part)
                        remaining -= len(part)
                        if progress is not None:
                            progress(len(part))
                    if fh.read(1):
                        raise _changed(e.file, "grew since it was planned")
                    if not _same_file(before, os.fstat(fh.fileno())):
                        raise _changed(e.file, "was written to while it was read")
                hasher.put((file_hash, e.file.arcname))
                if started - max(before.st_mtime_ns, before.st_ctime_ns) >= RACY_NS:
                    seen[e.file.arcname] = before
                pad = b"\0" * _padding(e.file.size)
                layer_hash.update(pad)
                if writer is not None:
                    writer.put(pad)
                written += e.file.size + len(pad)
            layer_hash.update(END_OF_ARCHIVE)
            if writer is not None:
                writer.put(END_OF_ARCHIVE)
            written += len(END_OF_ARCHIVE)
        except BaseException:
            hasher.close(reraise=False)
            if writer is not None:
                writer.close(reraise=False)
            raise
        hasher.close()
        if writer is not None:
            writer.close()  # the first write error (a full disk), raised here, in the caller's thread
        if written != self.size:  # pragma: no cover - a bug in size(), never bad input
            raise AssertionError(f"tar size {written} != planned {self.size}")
        return Hashed("sha256:" + layer_hash.hexdigest(), file_sums, seen)


_DONE = object()


class _Stage:
    """One consumer thread that applies ``handle`` to items in the order they are put (a bounded
    queue: at most ``DEPTH`` items wait). Its first error is kept, later items are drained unhandled
    (so a producer never blocks on a dead stage), and the error is raised by ``put`` or ``close``."""

    def __init__(self, name: str, handle: Callable[[Any], object]) -> None:
        self._handle = handle
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=DEPTH)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not _DONE:
            if self._error is None:
                try:
                    self._handle(item)
                except BaseException as err:  # kept for the producer's thread
                    self._error = err

    def put(self, item: Any) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def close(self, *, reraise: bool = True) -> None:
        self._queue.put(_DONE)
        self._thread.join()
        if reraise and self._error is not None:
            raise self._error


def _open(f: LayerFile) -> io.FileIO:
    try:
        fh = io.FileIO(f.path, "rb")
    except OSError as err:
        raise SourceError(
            f"cannot read {f.arcname}: {err.strerror}",
            where=str(f.path),
            fix="check the source directory (was it changed or removed during the build?)",
        ) from None
    with contextlib.suppress(AttributeError, OSError):  # not on every platform
        os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
    return fh


def _changed(f: LayerFile, what: str) -> SourceError:
    return SourceError(
        f"{f.arcname} {what} (size {f.size} expected)",
        where=str(f.path),
        fix="do not modify the source while building; run the build again",
    )
