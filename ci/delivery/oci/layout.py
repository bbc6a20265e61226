"""OCI image layouts: a content-addressed blob store and a layout writer (no registry needed).

The caller writes the layout into a temp directory beside the target and renames it into place
only when complete, so the target is either the previous layout or the new one, never half of
either. A generated blob is written once, straight into its blob file while being hashed (the
layout's blob is the output itself, not a temporary copy); a blob the previous layout already
holds is hard-linked instead of written again.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from delivery.core.errors import DeliveryError, SourceError
from delivery.core.fsutil import file_mode
from delivery.oci.blobs import Blob, sha256_digest
from delivery.oci.spec import ANNOTATION_REF_NAME, Descriptor, index_document

OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


class BlobStore:
    """Content-addressed blob files under ``root/blobs/sha256`` (a layout, or the base-blob cache).

    Every write is streamed into a temp file beside its blob, checked against the digest, then
    renamed: a blob file either holds exactly its digest's bytes or does not exist.
    """

    def __init__(self, root: Path) -> None:
        self.dir = root / "blobs" / "sha256"

    def path(self, digest: str) -> Path:
        return self.dir / digest.split(":", 1)[1]

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def temp(self) -> Path:
        """A fresh ``.partial-*`` file (mode 0666 less the umask) in the blob directory."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.dir, prefix=".partial-")
        except OSError as err:
            raise _unwritable(self.dir, err) from None
        os.fchmod(fd, file_mode())
        os.close(fd)
        return Path(name)

    def put_generated(self, write: Callable[[Path], str]) -> str:
        """A blob written into a temp file by ``write`` (it returns the digest), then renamed into place."""
        tmp = self.temp()
        try:
            digest = write(tmp)
            os.replace(tmp, self.path(digest))
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return digest

    def put_stream(self, digest: str, chunks: Iterator[bytes], *, where: str) -> Path:
        """Store the streamed bytes as blob ``digest``; a digest mismatch stores nothing."""

        def write(tmp: Path) -> str:
            h = hashlib.sha256()
            try:
                with tmp.open("wb") as out:
                    for chunk in chunks:
                        h.update(chunk)
                        out.write(chunk)
            except OSError as err:
                raise _unwritable(self.dir, err) from None
            if "sha256:" + h.hexdigest() != digest:
                raise SourceError(
                    f"blob content has digest sha256:{h.hexdigest()}, expected {digest}",
                    where=where,
                    fix="the copy it came from is corrupt: delete it (or the cache dir) and build again",
                )
            return digest

        self.put_generated(write)
        return self.path(digest)

    def put_bytes(self, data: bytes) -> str:
        """Store a small blob held in memory; returns its digest."""
        digest = sha256_digest(data)
        if not self.has(digest):
            self.put_stream(digest, iter([data]), where="blob store")
        return digest


def _unwritable(where: Path, err: OSError) -> DeliveryError:
    return DeliveryError(
        f"cannot write a blob: {err.strerror or err}",
        where=str(where),
        fix="free disk space, or pass a writable --cache-dir / --output",
    )


class LayoutWriter:
    """Fills a (temporary) layout directory; ``finish`` writes index.json last."""

    def __init__(self, root: Path, previous: Path | None = None) -> None:
        self.root = root
        self.store = BlobStore(root)
        self.store.dir.mkdir(parents=True, exist_ok=True)
        self.previous = BlobStore(previous) if previous is not None else None

    def reuse(self, digest: str, size: int) -> bool:
        """True when the layout has blob ``digest`` (hard-linked from the previous layout if need be)."""
        if self.store.has(digest):
            return True
        if self.previous is None:
            return False
        old = self.previous.path(digest)
        try:
            if old.stat().st_size != size:
                return False
            os.link(old, self.store.path(digest))
        except OSError:
            return False
        return True

    def add_bytes(self, data: bytes) -> str:
        return self.store.put_bytes(data)

    def add_blob(self, blob: Blob) -> None:
        """Copy a blob (e.g. a base layer) in, checking its digest."""
        if not self.reuse(blob.digest, blob.size):
            self.store.put_stream(blob.digest, blob.chunks(), where="base image")

    def add_generated(self, write: Callable[[BinaryIO], str]) -> str:
        """A blob whose digest is known only once written: ``write`` streams it and returns the digest."""

        def into(tmp: Path) -> str:
            with io.FileIO(tmp, "wb") as out:
                return write(out)

        return self.store.put_generated(into)

    def finish(self, manifest: Descriptor, ref_name: str) -> None:
        """Write oci-layout and index.json (pointing at ``manifest``, named ``ref_name``)."""
        entry = Descriptor(
            manifest.media_type,
            manifest.digest,
            manifest.size,
            {ANNOTATION_REF_NAME: ref_name},
            manifest.platform,
        )
        index = index_document([entry])
        (self.root / "oci-layout").write_bytes(OCI_LAYOUT)
        (self.root / "index.json").write_bytes(json.dumps(index, sort_keys=True, indent=2).encode() + b"\n")
        for leftover in self.store.dir.glob(".partial-*"):
            leftover.unlink()
