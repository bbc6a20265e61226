"""The pinned base image: resolved per platform from a registry or a local OCI layout.

``base`` in a spec is ``host/repo[:tag]@sha256:...`` or ``oci-layout:PATH@sha256:...`` (PATH
relative to the repo root). The digest may name an index (the platform's manifest is picked from
it) or a manifest. Everything fetched from a registry is checked against its digest and kept in a
content-addressed cache (``<cache>/blobs/sha256/<hex>``): a second build needs no network, and
base layers are only downloaded when an output actually needs their bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from delivery.core.errors import BadSourceError
from delivery.modelcar.image import BaseImage
from delivery.modelcar.spec import LAYOUT_PREFIX
from delivery.oci.blobs import Blob, read_file_chunks, sha256_digest
from delivery.oci.layout import BlobStore
from delivery.oci.spec import INDEX_MEDIA_TYPES, OCI_LAYER_TYPES, Descriptor, platform_dict


@dataclass(frozen=True)
class LazyBlob:
    """A blob whose bytes live in a file that ``ensure`` fetches the first time they are needed."""

    digest: str
    size: int
    media_type: str
    path: Path
    ensure: Callable[[], None] = field(repr=False, compare=False)

    def chunks(self) -> Iterator[bytes]:
        self.ensure()
        yield from read_file_chunks(self.path)


def _load_json(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as err:
        raise BadSourceError(f"not JSON: {err}", where=where, fix="check the base image") from None
    if not isinstance(doc, dict):
        raise BadSourceError("expected a JSON object", where=where, fix="check the base image")
    return doc


def _pick_platform(index: dict[str, Any], platform: str, where: str) -> str:
    want = platform_dict(platform)
    for m in index.get("manifests") or []:
        p = m.get("platform") or {}
        if p.get("os") == want["os"] and p.get("architecture") == want["architecture"]:
            if want["architecture"] == "arm64" and p.get("variant") not in (None, "v8"):
                continue
            return str(m["digest"])
    raise BadSourceError(
        f"the base image index has no {platform} manifest",
        where=where,
        fix="pick a base that supports this platform, or change platforms: in the spec",
    )


def _base_image(
    name: str,
    platform: str,
    manifest_digest: str,
    manifest: dict[str, Any],
    read: Callable[[str], bytes],
    blob: Callable[[Descriptor], Blob],
) -> BaseImage:
    cfg_desc = manifest.get("config") or {}
    config = _load_json(read(str(cfg_desc.get("digest"))), f"{name}: config")
    want = platform_dict(platform)
    if config.get("os") != want["os"] or config.get("architecture") != want["architecture"]:
        raise BadSourceError(
            f"the base image is {config.get('os')}/{config.get('architecture')}, not {platform}",
            where=name,
            fix="pin the multi-arch index digest, or the manifest of the right platform",
        )
    layers = []
    for layer in manifest.get("layers") or []:
        media = OCI_LAYER_TYPES.get(str(layer.get("mediaType")))
        if media is None:
            raise BadSourceError(
                f"base layer media type {layer.get('mediaType')!r} is not supported",
                where=name,
                fix="use a base image with ordinary (tar, tar+gzip, tar+zstd) layers",
            )
        layers.append(Descriptor(media, str(layer["digest"]), int(layer["size"])))
    return BaseImage(name, platform, manifest_digest, config, tuple(layers), blob)


def _resolve_layout(text: str, platforms: tuple[str, ...], repo: Path) -> dict[str, BaseImage]:
    path_text, _, digest = text[len(LAYOUT_PREFIX) :].rpartition("@")
    root = Path(path_text)
    root = root if root.is_absolute() else repo / root
    if not (root / "oci-layout").is_file():
        raise BadSourceError(
            "base OCI layout not found (no oci-layout file)",
            where=str(root),
            fix="build it (deliver modelcar busybox-base --output DIR) or fix the path in base:",
        )
    blobs = BlobStore(root)

    def read(d: str) -> bytes:
        try:
            data = blobs.path(d).read_bytes()
        except (OSError, IndexError):
            raise BadSourceError(
                f"blob {d} missing from the layout", where=str(root), fix="rebuild it"
            ) from None
        if sha256_digest(data) != d:
            raise BadSourceError(
                f"blob {d} in the layout is corrupt", where=str(root), fix="rebuild the layout"
            )
        return data

    def blob(desc: Descriptor) -> Blob:
        p = blobs.path(desc.digest)
        if not p.is_file() or p.stat().st_size != desc.size:
            raise BadSourceError(
                f"base layer {desc.digest} missing or truncated", where=str(root), fix="rebuild it"
            )
        return LazyBlob(desc.digest, desc.size, desc.media_type, p, lambda: None)

    return _resolve(text, digest, platforms, read, blob)


def _resolve(
    name: str,
    digest: str,
    platforms: tuple[str, ...],
    read: Callable[[str], bytes],
    blob: Callable[[Descriptor], Blob],
) -> dict[str, BaseImage]:
    top = _load_json(read(digest), name)
    media = top.get("mediaType")
    is_index = media in INDEX_MEDIA_TYPES or ("manifests" in top and "layers" not in top)
    out = {}
    for platform in platforms:
        if is_index:
            mdigest = _pick_platform(top, platform, name)
            manifest = _load_json(read(mdigest), f"{name}: {platform} manifest")
        else:
            if len(platforms) > 1:
                raise BadSourceError(
                    "the base is pinned to a single-platform manifest but several platforms are wanted",
                    where=name,
                    fix="pin the base's multi-arch index digest",
                )
            mdigest, manifest = digest, top
        out[platform] = _base_image(name, platform, mdigest, manifest, read, blob)
    return out


def _resolve_registry(text: str, platforms: tuple[str, ...], cache: BlobStore) -> dict[str, BaseImage]:
    from delivery.oci.reference import ImageRef

    ref = ImageRef.parse(text)
    assert ref.digest is not None  # the spec loader insists on a digest
    client_box: list[Any] = []

    def client() -> Any:
        if not client_box:
            from delivery.oci.auth import resolve_credentials
            from delivery.oci.registry import RegistryClient

            client_box.append(RegistryClient(ref.registry, resolve_credentials(ref.registry)))
        return client_box[0]

    def read(d: str) -> bytes:
        if cache.has(d):
            return cache.path(d).read_bytes()
        if d == ref.digest or _is_manifest_digest(d):
            data: bytes = client().get_manifest(ref.repository, d).data
        else:
            with client().get_blob(ref.repository, d) as chunks:
                cache.put_stream(d, chunks, where=f"{ref.registry}/{ref.repository}")
            return cache.path(d).read_bytes()
        cache.put_stream(d, iter([data]), where=f"{ref.registry}/{ref.repository}")
        return data

    manifest_digests: set[str] = set()

    def _is_manifest_digest(d: str) -> bool:
        return d in manifest_digests

    # Manifests of an index are fetched as manifests, everything else as blobs.
    top = _load_json(read(ref.digest), text)
    for m in top.get("manifests") or []:
        manifest_digests.add(str(m.get("digest")))

    def ensure(desc: Descriptor) -> Callable[[], None]:
        def fetch() -> None:
            if not cache.has(desc.digest):
                with client().get_blob(ref.repository, desc.digest) as chunks:
                    cache.put_stream(desc.digest, chunks, where=f"{ref.registry}/{ref.repository}")

        return fetch

    def blob(desc: Descriptor) -> Blob:
        return LazyBlob(desc.digest, desc.size, desc.media_type, cache.path(desc.digest), ensure(desc))

    return _resolve(text, ref.digest, platforms, read, blob)


def resolve_base(
    text: str, platforms: tuple[str, ...], *, repo: Path, cache_dir: Path
) -> dict[str, BaseImage]:
    """The base image for each platform (from a local layout or a registry, cached by digest)."""
    if text.startswith(LAYOUT_PREFIX):
        return _resolve_layout(text, platforms, repo)
    return _resolve_registry(text, platforms, BlobStore(cache_dir))
