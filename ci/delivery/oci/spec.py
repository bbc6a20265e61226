"""OCI image-spec primitives: media types, annotation keys, descriptors, manifest and index JSON.

Every media type the pipeline writes or reads is defined here, once. Manifests and indexes are
canonical JSON (sorted keys, no whitespace, UTF-8), so the same inputs give the same digest on
every machine. The Docker types are only what reading a Docker Hub base needs (the manifest
``Accept`` header, index detection, base layers taken over as their OCI equivalent).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_TAR_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

MANIFEST_MEDIA_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
"""What a manifest fetch accepts (the ``Accept`` header)."""
INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
"""Manifests that list other manifests (one per platform)."""
OCI_LAYER_TYPES = {
    OCI_LAYER_TAR: OCI_LAYER_TAR,
    OCI_LAYER_TAR_GZIP: OCI_LAYER_TAR_GZIP,
    OCI_LAYER_TAR_ZSTD: OCI_LAYER_TAR_ZSTD,
    DOCKER_LAYER_TAR: OCI_LAYER_TAR,
    DOCKER_LAYER_TAR_GZIP: OCI_LAYER_TAR_GZIP,
}
"""Layer media types we accept, and their OCI name (same bytes, same digest)."""

ANNOTATION_SOURCE = "org.opencontainers.image.source"
ANNOTATION_REVISION = "org.opencontainers.image.revision"
ANNOTATION_TITLE = "org.opencontainers.image.title"
ANNOTATION_BASE_NAME = "org.opencontainers.image.base.name"
ANNOTATION_BASE_DIGEST = "org.opencontainers.image.base.digest"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_MODELCAR_FILE = "dev.llm-platform.modelcar.file"
"""The file a modelcar tar layer holds (``models/…``). Not ``org.opencontainers.image.title``: ORAS
reserves that for a file blob's own name and would write the tar itself under that name on pull."""
ANNOTATION_MODELCAR_UNVERIFIED = "dev.llm-platform.modelcar.unverified-source"
"""Set (to the reason) on a modelcar built from a directory nobody checked against the hub."""
EPOCH = "1970-01-01T00:00:00Z"
"""``created`` of every history entry and config we write: reproducible, and umoci stat needs one."""


def canonical_json(obj: Any) -> bytes:
    """The one JSON serialization of blobs we write: sorted keys, compact, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class Descriptor:
    """What a manifest or index says about a blob it points at."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    platform: dict[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        if self.platform:
            d["platform"] = dict(self.platform)
        return d


def platform_dict(platform: str) -> dict[str, str]:
    """``linux/amd64`` -> ``{"architecture": "amd64", "os": "linux"}``."""
    os_name, _, arch = platform.partition("/")
    return {"architecture": arch, "os": os_name}


def _with_annotations(doc: dict[str, Any], annotations: Mapping[str, str] | None) -> dict[str, Any]:
    if annotations:
        doc["annotations"] = dict(annotations)
    return doc


def manifest_json(
    config: Descriptor, layers: Sequence[Descriptor], annotations: Mapping[str, str] | None = None
) -> bytes:
    """An OCI image manifest (canonical JSON); ``annotations`` left out when empty."""
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.as_dict(),
        "layers": [d.as_dict() for d in layers],
    }
    return canonical_json(_with_annotations(doc, annotations))


def index_document(
    manifests: Sequence[Descriptor], annotations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """An OCI image index as a JSON object; ``annotations`` left out when empty."""
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [d.as_dict() for d in manifests]}
    return _with_annotations(doc, annotations)


def index_json(manifests: Sequence[Descriptor], annotations: Mapping[str, str] | None = None) -> bytes:
    """An OCI image index (canonical JSON)."""
    return canonical_json(index_document(manifests, annotations))
