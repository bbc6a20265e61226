"""OCI image layout output (the embedded default: no registry needed).

The layout is written into a temp directory beside the target and renamed into place only when
complete, so the target is either the previous layout or the new one, never half of either.
Model layers are generated once, straight into their blob file while being hashed (the layout's
blob is the output itself, not a temporary copy); a layer whose digest the digest cache knows
and that the previous layout already holds is hard-linked instead of regenerated.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from delivery.core.errors import DeliveryError, SourceError
from delivery.modelcar.image import ANNOTATION_REF_NAME, Descriptor, ModelLayer
from delivery.modelcar.tarlayer import Progress, TarLayer
from delivery.oci.blobs import Blob, sha256_digest

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
        """A fresh ``.partial-*`` file (mode 0644) in the blob directory."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.dir, prefix=".partial-")
        except OSError as err:
            raise _unwritable(self.dir, err) from None
        os.fchmod(fd, 0o644)
        os.close(fd)
        return Path(name)

    def put_stream(self, digest: str, chunks: Iterator[bytes], *, where: str) -> Path:
        """Store the streamed bytes as blob ``digest``; a digest mismatch stores nothing."""
        tmp = self.temp()
        h = hashlib.sha256()
        try:
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
            os.replace(tmp, self.path(digest))
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
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

    def _reuse(self, digest: str, size: int) -> bool:
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
        if not self._reuse(blob.digest, blob.size):
            self.store.put_stream(blob.digest, blob.chunks(), where="base image")

    def add_layer(
        self, layer: TarLayer, known: tuple[str, dict[str, str]] | None, progress: Progress | None = None
    ) -> ModelLayer:
        """Write a model layer (or link the previous layout's copy when its digest is known)."""
        if known is not None and self._reuse(known[0], layer.size):
            if progress is not None:
                progress(layer.data_size)
            return ModelLayer(layer, known[0], known[1])
        tmp = self.store.temp()
        try:
            with io.FileIO(tmp, "wb") as out:
                digest, sums = layer.digest_and_write(out, progress)
            os.replace(tmp, self.store.path(digest))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        return ModelLayer(layer, digest, sums)

    def finish(self, manifest: Descriptor, ref_name: str) -> None:
        """Write oci-layout and index.json (pointing at ``manifest``, named ``ref_name``)."""
        entry = Descriptor(
            manifest.media_type,
            manifest.digest,
            manifest.size,
            {ANNOTATION_REF_NAME: ref_name},
            manifest.platform,
        )
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json"}
        index["manifests"] = [entry.as_dict()]
        (self.root / "oci-layout").write_bytes(OCI_LAYOUT)
        (self.root / "index.json").write_bytes(json.dumps(index, sort_keys=True, indent=2).encode() + b"\n")
        for leftover in self.store.dir.glob(".partial-*"):
            leftover.unlink()
