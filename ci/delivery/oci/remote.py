"""Blobs that live in a registry: ``RemoteBlob.chunks()`` streams a ``GET`` from the repository holding it.

Fed to ``push_blob`` / ``ImagePush`` on another host, it copies a blob registry to registry with the
GET streamed straight into the upload's PUT: the blob is never whole in memory nor on disk. The GET
starts only when the upload reads its first chunk (a blob already in the target, or mounted there,
is never downloaded). A download that breaks midway is ``Transient``, so the upload's retry starts
both over. The bytes are not hashed on the way by default: the target registry checks every
upload against its ``?digest=`` and refuses (``DIGEST_INVALID``) what does not match, so a corrupt
upstream copy is never stored, and a second hash would cost a core-second per 2 GB on the copy's
critical path. ``verify=True`` checks them here too (a corrupt copy then fails before the upload
completes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from delivery.oci.registry import RegistryClient


@dataclass(frozen=True)
class RemoteBlob:
    """The blob ``digest`` (``size`` bytes, as its descriptor says) in ``repository`` on ``client``'s host."""

    client: RegistryClient = field(repr=False)
    repository: str
    digest: str
    size: int
    media_type: str = "application/octet-stream"
    label: str | None = None
    verify: bool = False

    changed_fix = (
        "the upstream registry's copy of this blob is corrupt, or something altered it on the way: "
        "check the upstream registry (publish the image there again), then copy again"
    )

    def chunks(self) -> Iterator[bytes]:
        with self.client.get_blob(self.repository, self.digest, retryable=True, verify=self.verify) as chunks:
            yield from chunks

    @property
    def origin(self) -> str:
        """``host/repository@digest``: where the bytes come from."""
        return f"{self.client.registry}/{self.repository}@{self.digest}"
