"""OCI: image-spec primitives, image layouts and a streaming distribution client; no commands.

Modules, each depending only on those above it (and core):

- ``blobs``: content with a digest, streamed in bounded memory (``Blob``, ``BytesBlob``, ``FileBlob``)
- ``reference``: image references (``ImageRef``) and name/tag/digest checks
- ``spec``: media types, annotation keys, ``Descriptor``, manifest and index JSON
- ``layout``: OCI image layouts (``BlobStore``, ``LayoutWriter``)
- ``transport``: HTTP to one registry host: sending, retries with backoff, error mapping
- ``auth``: credentials and the ``WWW-Authenticate`` handshake (Basic, Bearer tokens)
- ``registry``: ``RegistryClient``, the blob and manifest API of one host
- ``remote``: ``RemoteBlob``, a blob streamed from a registry (registry-to-registry copies)
- ``push``: ``ImagePush`` / ``push_image``, whole images with manifests last
- ``localregistry``: a throwaway registry on loopback (demo, tests)

The client's names load on first use (they pull in httpx), so reading specs or writing a layout
does not pay for the network stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from delivery.oci.blobs import Blob, BytesBlob, FileBlob, sha256_digest
from delivery.oci.layout import BlobStore, LayoutWriter
from delivery.oci.reference import ImageRef
from delivery.oci.spec import OCI_CONFIG, OCI_INDEX, OCI_LAYER_TAR, OCI_MANIFEST, Descriptor

if TYPE_CHECKING:
    from delivery.oci.auth import Credentials, resolve_credentials
    from delivery.oci.localregistry import LocalRegistry, local_registry
    from delivery.oci.push import ImagePush, PushReport, push_image
    from delivery.oci.registry import FetchedManifest, RegistryClient
    from delivery.oci.remote import RemoteBlob

_LAZY = {
    "Credentials": "auth",
    "resolve_credentials": "auth",
    "LocalRegistry": "localregistry",
    "local_registry": "localregistry",
    "ImagePush": "push",
    "PushReport": "push",
    "push_image": "push",
    "FetchedManifest": "registry",
    "RegistryClient": "registry",
    "RemoteBlob": "remote",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER_TAR",
    "OCI_MANIFEST",
    "Blob",
    "BlobStore",
    "BytesBlob",
    "Credentials",
    "Descriptor",
    "FetchedManifest",
    "FileBlob",
    "ImagePush",
    "ImageRef",
    "LayoutWriter",
    "LocalRegistry",
    "PushReport",
    "RegistryClient",
    "RemoteBlob",
    "local_registry",
    "push_image",
    "resolve_credentials",
    "sha256_digest",
]
