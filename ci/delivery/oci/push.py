"""Push whole images: blobs of one repository in parallel, manifests only once all their blobs are in.

``ImagePush`` starts each blob's push (skip/mount/upload, ``RegistryClient.push_blob``) as soon as
it is added; ``manifest`` checks that the manifest describes exactly the blobs given, waits for
them, then pushes the manifest by digest, then its tags. A failed blob stops the others and no
manifest goes up, so no tag ever points at a missing blob. ``push_image`` does it for one image.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from delivery.core.console import ProgressReporter
from delivery.core.errors import DeliveryError, RegistryError, SourceError, UsageError
from delivery.oci.blobs import Blob, sha256_digest
from delivery.oci.reference import check_digest, check_repository, is_tag
from delivery.oci.registry import BlobPush, RegistryClient
from delivery.oci.transport import CancelledError


@dataclass(frozen=True)
class PushReport:
    """Result of ``push_image``: the manifest digest and what each blob needed."""

    digest: str
    blobs: list[BlobPush]
    bytes_sent: int


class ImagePush:
    """Blobs of one repository pushed in parallel as soon as they are added; manifests only after.

    ``add`` starts a blob's push (skip/mount/upload) right away, so a caller can upload the blobs
    it has hashed while it is still hashing others. ``manifest`` waits for every blob added so
    far, checks that the manifest describes exactly its blobs, then pushes it by digest, then its
    tags: a manifest is never pushed while a blob is missing or failed. Leaving the ``with`` block
    on an error cancels the uploads still running. ``add`` may be called from several threads.
    """

    def __init__(
        self,
        client: RegistryClient,
        repository: str,
        *,
        mount_from: Sequence[str] = (),
        parallel: int = 4,
        progress: ProgressReporter | None = None,
    ) -> None:
        if parallel < 1:
            raise UsageError(f"parallel must be >= 1, not {parallel}", where="push")
        check_repository(repository)
        self.client = client
        self.repository = repository
        self.mount_from = tuple(mount_from)
        self.progress = progress
        self._pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="oci-push")
        self._cancel = threading.Event()
        self._futures: dict[str, Future[BlobPush]] = {}
        self._reported: set[str] = set()
        self._lock = threading.Lock()

    def __enter__(self) -> ImagePush:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self._stop()
        self._pool.shutdown(wait=True)

    def add(self, blob: Blob, label: str | None = None) -> None:
        """Start pushing ``blob`` (once per digest); raises at once if an earlier blob already failed."""
        self._raise_failure()
        check_digest(blob.digest)
        shown = getattr(blob, "label", None) or label or f"blob {blob.digest[7:19]}"
        with self._lock:
            if blob.digest not in self._futures:
                self._futures[blob.digest] = self._pool.submit(self._push_one, blob, str(shown))

    def _push_one(self, blob: Blob, label: str) -> BlobPush:
        handle = self.progress.task(label, blob.size) if self.progress is not None else None
        pushed = self.client.push_blob(
            self.repository,
            blob,
            mount_from=self.mount_from,
            on_progress=handle.advance if handle is not None else None,
            cancel=self._cancel,
        )
        if handle is not None:
            handle.finish(
                {"exists": "already there", "mounted": "mounted", "uploaded": "uploaded"}[pushed.outcome]
            )
        return pushed

    def manifest(
        self,
        *,
        layers: Sequence[Blob],
        config: Blob,
        manifest: bytes,
        manifest_media_type: str,
        tags: Sequence[str] = (),
    ) -> PushReport:
        """Push the blobs not added yet, wait for all of them, then the manifest by digest, then tags.

        A blob already reported by an earlier ``manifest`` call of this push shows as ``exists``.
        """
        _check_tags(tags)
        _check_manifest_describes(manifest, manifest_media_type, layers, config)
        unique: dict[str, Blob] = {}
        for blob in [*layers, config]:
            unique.setdefault(blob.digest, blob)
        blobs = list(unique.values())
        for index, blob in enumerate(blobs):
            self.add(
                blob,
                f"config {blob.digest[7:19]}"
                if blob is config
                else f"layer {index + 1}/{len(blobs)} {blob.digest[7:19]}",
            )
        results = self._wait_all()
        client, repository = self.client, self.repository
        digest = client.put_manifest(repository, sha256_digest(manifest), manifest, manifest_media_type)
        for tag in tags:
            client.put_manifest(repository, tag, manifest, manifest_media_type)
        if self.progress is not None:
            self.progress.line(
                f"pushed {client.registry}/{repository}@{digest}"
                + (f" (tags: {', '.join(tags)})" if tags else "")
            )
        ordered = []
        for blob in blobs:
            pushed = results[blob.digest]
            if blob.digest in self._reported:
                pushed = BlobPush(pushed.digest, pushed.size, "exists", 0)
            ordered.append(pushed)
        self._reported.update(unique)
        return PushReport(digest=digest, blobs=ordered, bytes_sent=sum(b.bytes_sent for b in ordered))

    def wait(self) -> dict[str, BlobPush]:
        """Wait for every blob added so far: digest -> what its push did (the first failure raised).

        For callers that push their manifests themselves (a registry-to-registry copy keeps every
        manifest's exact bytes): once this returns, every blob added is in the repository.
        """
        return self._wait_all()

    def _snapshot(self) -> dict[str, Future[BlobPush]]:
        with self._lock:
            return dict(self._futures)

    def _wait_all(self) -> dict[str, BlobPush]:
        futures = self._snapshot()
        done, _ = wait(futures.values(), return_when=FIRST_EXCEPTION)
        if any(not f.cancelled() and f.exception() is not None for f in done):
            self._raise_failure()
        return {digest: future.result() for digest, future in futures.items()}

    def _stop(self) -> None:
        self._cancel.set()
        pending = [f for f in self._snapshot().values() if not f.cancel()]
        wait(pending)

    def _raise_failure(self) -> None:
        errors = [f.exception() for f in self._snapshot().values() if f.done() and not f.cancelled()]
        # the root cause first: blobs stopped because of it only say "cancelled"
        failed = sorted((e for e in errors if e is not None), key=lambda e: isinstance(e, CancelledError))
        if not failed:
            return
        self._stop()
        first = failed[0]
        if isinstance(first, DeliveryError):
            raise first
        if isinstance(first, OSError):  # reading a blob's bytes (a weight file) failed mid-push
            raise SourceError(
                f"reading a blob's source failed during the push: {first.strerror or first}",
                where=str(first.filename) if first.filename else "blob source",
                fix="a source file vanished or became unreadable after it was hashed: check it, run again",
            ) from first
        raise RegistryError(
            f"push of {self.repository} failed: {first!r}", where=self.client.registry
        ) from first


def push_image(
    client: RegistryClient,
    repository: str,
    *,
    layers: Sequence[Blob],
    config: Blob,
    manifest: bytes,
    manifest_media_type: str,
    tags: Sequence[str] = (),
    mount_from: Sequence[str] = (),
    parallel: int = 4,
    progress: ProgressReporter | None = None,
) -> PushReport:
    """Push an image: blobs in parallel (skip/mount/upload), then the manifest by digest, then tags.

    Nothing is pushed when the manifest does not describe exactly these blobs; the manifest is
    never pushed when a blob failed, so no tag ever points at a missing blob.
    """
    blobs = len({b.digest for b in [*layers, config]})  # ImagePush and manifest() check the rest
    with ImagePush(
        client, repository, mount_from=mount_from, parallel=min(parallel, blobs), progress=progress
    ) as push:
        return push.manifest(
            layers=layers,
            config=config,
            manifest=manifest,
            manifest_media_type=manifest_media_type,
            tags=tags,
        )


def _check_tags(tags: Sequence[str]) -> None:
    for tag in tags:
        if not is_tag(tag):
            raise UsageError(
                f"invalid tag {tag!r}", where="push", fix="tags match [A-Za-z0-9_][A-Za-z0-9._-]{0,127}"
            )


def _check_manifest_describes(manifest: bytes, media_type: str, layers: Sequence[Blob], config: Blob) -> None:
    """The manifest must name exactly these blobs (digest and size), so nothing dangles."""
    where = "image manifest"
    try:
        doc = json.loads(manifest)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"the manifest is not JSON: {exc}", where=where) from None
    if not isinstance(doc, dict):
        raise UsageError("the manifest is not a JSON object", where=where)
    declared = doc.get("mediaType")
    if declared is not None and declared != media_type:
        raise UsageError(
            f"manifest mediaType {declared!r} differs from the Content-Type {media_type!r}", where=where
        )
    described = [doc.get("config") or {}, *(doc.get("layers") or [])]
    given = [config, *layers]
    pairs = [(d.get("digest"), d.get("size")) if isinstance(d, dict) else (None, None) for d in described]
    if pairs != [(b.digest, b.size) for b in given]:
        raise UsageError(
            "the manifest's config/layers descriptors do not match the blobs given to push",
            where=where,
            fix="build the manifest from the same blobs (digest and size, in order)",
        )
