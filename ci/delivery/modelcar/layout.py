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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from delivery.errors import DeliveryError, SourceError
from delivery.modelcar.image import ANNOTATION_REF_NAME, Descriptor, ModelLayer
from delivery.modelcar.tarlayer import Progress, TarLayer
from delivery.oci.blobs import Blob, sha256_digest

OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


class LayoutWriter:
    """Fills a (temporary) layout directory; ``finish`` writes index.json last."""

    def __init__(self, root: Path, previous: Path | None = None) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.previous = previous / "blobs" / "sha256" if previous is not None else None

    def _path(self, digest: str) -> Path:
        return self.blobs / digest.split(":", 1)[1]

    def _reuse(self, digest: str, size: int) -> bool:
        if self._path(digest).exists():
            return True
        if self.previous is None:
            return False
        old = self.previous / digest.split(":", 1)[1]
        try:
            if old.stat().st_size != size:
                return False
            os.link(old, self._path(digest))
        except OSError:
            return False
        return True

    def add_bytes(self, data: bytes) -> str:
        digest = sha256_digest(data)
        if not self._path(digest).exists():
            self._path(digest).write_bytes(data)
        return digest

    def add_blob(self, blob: Blob) -> None:
        """Copy a blob (e.g. a base layer) in, checking its digest."""
        if self._reuse(blob.digest, blob.size):
            return
        h = hashlib.sha256()
        tmp = self._tmp()
        with tmp.open("wb") as out:
            for chunk in blob.chunks():
                h.update(chunk)
                out.write(chunk)
        if "sha256:" + h.hexdigest() != blob.digest:
            tmp.unlink()
            raise SourceError(
                f"blob content does not match {blob.digest}",
                where="base image",
                fix="the base image cache or layout is corrupt: delete it and build again",
            )
        os.replace(tmp, self._path(blob.digest))

    def _tmp(self) -> Path:
        fd, name = tempfile.mkstemp(dir=self.blobs, prefix=".partial-")
        os.fchmod(fd, 0o644)
        os.close(fd)
        return Path(name)

    def add_layer(
        self, layer: TarLayer, known: tuple[str, dict[str, str]] | None, progress: Progress | None = None
    ) -> ModelLayer:
        """Write a model layer (or link the previous layout's copy when its digest is known)."""
        if known is not None and self._reuse(known[0], layer.size):
            if progress is not None:
                progress(layer.data_size)
            return ModelLayer(layer, known[0], known[1])
        tmp = self._tmp()
        try:
            with io.FileIO(tmp, "wb") as out:
                digest, sums = layer.digest_and_write(out, progress)
            os.replace(tmp, self._path(digest))
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
        for leftover in self.blobs.glob(".partial-*"):
            leftover.unlink()


def read_index(root: Path) -> list[dict[str, Any]]:
    """The manifests listed by a layout's index.json."""
    try:
        data = json.loads((root / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DeliveryError(f"not an OCI layout: {err}", where=str(root), fix="build it again") from None
    manifests: list[dict[str, Any]] = data.get("manifests") or []
    return manifests


def blob_path(root: Path, digest: str) -> Path:
    return root / "blobs" / "sha256" / digest.split(":", 1)[1]


def layout_digests(root: Path) -> Sequence[str]:
    """Digests of the manifests a layout's index points at."""
    return [str(m["digest"]) for m in read_index(root)]
