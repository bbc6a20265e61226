"""Blobs: content with a digest, a size and a media type, streamed in bounded memory.

A ``Blob`` re-generates its exact bytes on every ``chunks()`` call, so the same content can be
hashed in one pass and uploaded in another without ever holding it whole in memory or writing a
temporary copy (the modelcar layers are tar streams generated on the fly from the weight files).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

CHUNK_SIZE = 1 << 20
"""Bytes per chunk when streaming files (1 MiB: hashlib releases the GIL, memory stays flat)."""


def sha256_digest(data: bytes) -> str:
    """``sha256:<64 hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@runtime_checkable
class Blob(Protocol):
    """Content addressed by digest; ``chunks()`` yields the exact same bytes on every call."""

    @property
    def digest(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def media_type(self) -> str: ...

    def chunks(self) -> Iterator[bytes]: ...


@dataclass(frozen=True)
class BytesBlob:
    """A small blob held in memory (configs, manifests, test data)."""

    data: bytes = field(repr=False)
    media_type: str = "application/octet-stream"

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def chunks(self) -> Iterator[bytes]:
        view = memoryview(self.data)
        for start in range(0, len(view), CHUNK_SIZE):
            yield bytes(view[start : start + CHUNK_SIZE])

    def __repr__(self) -> str:
        return f"BytesBlob(digest={self.digest!r}, size={self.size}, media_type={self.media_type!r})"


@dataclass(frozen=True)
class FileBlob:
    """A file on disk used as a blob as it is; digest and size come from one hashing pass."""

    path: Path
    digest: str
    size: int
    media_type: str = "application/octet-stream"

    @classmethod
    def of(cls, path: Path, media_type: str = "application/octet-stream") -> FileBlob:
        """Hash ``path`` once (streamed) and describe it as a blob."""
        digest, size = digest_of_chunks(read_file_chunks(path))
        return cls(path=path, digest=digest, size=size, media_type=media_type)

    def chunks(self) -> Iterator[bytes]:
        return read_file_chunks(self.path)


def read_file_chunks(path: Path) -> Iterator[bytes]:
    """The bytes of ``path`` in CHUNK_SIZE pieces (bounded memory)."""
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_SIZE):
            yield chunk


def digest_of_chunks(chunks: Iterator[bytes]) -> tuple[str, int]:
    """Digest and size of a stream, in one pass and bounded memory."""
    h = hashlib.sha256()
    size = 0
    for chunk in chunks:
        h.update(chunk)
        size += len(chunk)
    return "sha256:" + h.hexdigest(), size
