"""Promotion step "copy": make an image of the upstream environment's registry exist in the target's,
under the same digest.

Only digests move (a tag is refused: it could point elsewhere by the time it is read). The manifest
tree is read from the upstream registry first (an index and its child manifests, each checked
against its digest, each at most ``MAX_MANIFEST_BYTES``); then every blob is made present in the
target repository, in parallel: already there (``HEAD``: skipped), mounted across repositories
when both live on the same registry host (``POST ?mount=&from=``: no bytes move), else streamed
from the upstream ``GET`` straight into the target's upload ``PUT`` (``oci.RemoteBlob``: never whole
in memory, never on disk). Only once every blob is in are the manifests pushed, children before
the index, each by digest with its exact upstream bytes and media type (never re-serialised: that
is what keeps the digest), each skipped when the target has it already; then, with ``protect``, a
tag on every manifest of the tree (promotion passes the release's protected tag, which keeps the
image, and each platform manifest of an index, safe from registry cleanup). So no manifest ever
points at a missing blob, and a rerun after a failure (the target died midway) sends only what is
still missing. Retries, timeouts and auth are the ``oci`` client's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from delivery.core.console import ProgressReporter
from delivery.core.errors import RegistryError, UsageError
from delivery.core.patterns import is_digest
from delivery.oci.auth import Credentials
from delivery.oci.push import ImagePush
from delivery.oci.reference import ImageRef
from delivery.oci.registry import FetchedManifest, RegistryClient
from delivery.oci.remote import RemoteBlob
from delivery.oci.spec import INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES

MAX_MANIFESTS = 1024
"""Manifests one image may have (an index, its children, nested indexes); more is refused."""
MAX_INDEX_DEPTH = 4
"""How deep indexes may nest (an index of indexes of manifests is depth 2)."""


@dataclass(frozen=True)
class CopyReport:
    """What ``copy_image`` did: where from, where to (same digest), and what each part needed."""

    source: str  # host/repo@sha256:...
    target: str  # host/repo@sha256:... (same digest)
    digest: str
    manifests: int  # manifests written (index + children), 0 if the target had it all
    blobs_copied: int
    blobs_mounted: int
    blobs_skipped: int  # already in the target repo
    bytes_sent: int
    tags: tuple[str, ...] = ()  # put on the manifests in the target, once everything else was in

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class _Blob:
    digest: str
    size: int
    media_type: str


@dataclass(frozen=True)
class _Manifest:
    """One manifest of the tree: its exact bytes and media type, the blobs it needs."""

    digest: str
    media_type: str
    data: bytes
    blobs: tuple[_Blob, ...]


def copy_image(
    source: ImageRef,
    target: ImageRef,
    *,
    source_credentials: Credentials,
    target_credentials: Credentials,
    reporter: ProgressReporter | None = None,
    parallel: int = 4,
    protect: Callable[[str], str] | None = None,
) -> CopyReport:
    """source has a digest (no tag needed); target is registry host + repository (tag/digest ignored)."""
    digest = source.digest
    if digest is None:
        raise UsageError(
            f"{source} has no digest: promotion moves digests only, never tags",
            where="source image reference",
            fix=f"promote {source.registry}/{source.repository}@sha256:<digest>, the digest the upstream "
            "environment runs",
        )
    if parallel < 1:
        raise UsageError(f"parallel must be >= 1, not {parallel}", where="copy")
    source_name = f"{source.registry}/{source.repository}@{digest}"
    target_name = f"{target.registry}/{target.repository}@{digest}"
    same_host = source.registry == target.registry
    with (
        RegistryClient(source.registry, source_credentials) as upstream,
        RegistryClient(target.registry, target_credentials) as downstream,
    ):
        if not upstream.manifest_exists(source.repository, digest):
            raise RegistryError(
                f"{source_name} is not in the upstream registry (manifest unknown)",
                where=f"{source.registry}/{source.repository}",
                fix="promote a digest the upstream environment published: check the digest and the "
                "repository, or publish the image there first",
            )
        target_had_root = downstream.manifest_exists(target.repository, digest)  # 401 here, early
        tree = _read_tree(upstream, source.repository, digest)
        # largest first: the biggest layer bounds the copy, so it must not start last
        blobs = sorted({b.digest: b for m in tree for b in m.blobs}.values(), key=lambda b: -b.size)
        if reporter is not None:
            how = "mounting" if same_host else "streaming"
            reporter.line(f"copying {source_name} to {target_name}: {len(tree)} manifest(s), "
                          f"{len(blobs)} blob(s), {how} what the target lacks")  # fmt: skip
        with ImagePush(
            downstream,
            target.repository,
            mount_from=(source.repository,) if same_host else (),
            parallel=min(parallel, max(1, len(blobs))),
            progress=reporter,
        ) as push:
            for i, blob in enumerate(blobs):
                label = f"blob {i + 1}/{len(blobs)} {blob.digest[7:19]}"
                push.add(
                    RemoteBlob(upstream, source.repository, blob.digest, blob.size, blob.media_type, label)
                )
            pushed = push.wait()
        written = 0
        for manifest in tree:  # children first, the root last; each only after all the blobs
            if manifest.digest == digest and target_had_root:
                continue
            if manifest.digest != digest and downstream.manifest_exists(target.repository, manifest.digest):
                continue
            downstream.put_manifest(target.repository, manifest.digest, manifest.data, manifest.media_type)
            written += 1
        tags: list[str] = []
        for manifest in tree:  # children first, like the manifests themselves
            if protect is not None:  # a PUT of the same bytes under a tag: idempotent
                tags.append(protect(manifest.digest))
                downstream.put_manifest(target.repository, tags[-1], manifest.data, manifest.media_type)
    outcomes = [p.outcome for p in pushed.values()]
    report = CopyReport(
        source=source_name,
        target=target_name,
        digest=digest,
        manifests=written,
        blobs_copied=outcomes.count("uploaded"),
        blobs_mounted=outcomes.count("mounted"),
        blobs_skipped=outcomes.count("exists"),
        bytes_sent=sum(p.bytes_sent for p in pushed.values()),
        tags=tuple(tags),
    )
    if reporter is not None:
        reporter.line(
            f"copied {source_name} to {target.registry}/{target.repository}: {written} manifest(s) written; "
            f"blobs: {report.blobs_copied} copied ({report.bytes_sent} bytes), {report.blobs_mounted} "
            f"mounted, {report.blobs_skipped} already there"
        )
    return report


# --------------------------------------------------------------------------- the manifest tree


def _read_tree(client: RegistryClient, repository: str, digest: str) -> list[_Manifest]:
    """Every manifest of the image, children before the index that lists them (post-order)."""
    order: list[_Manifest] = []
    seen: set[str] = set()
    where = f"{client.registry}/{repository}"

    def visit(ref: str, depth: int) -> None:
        if ref in seen:
            return
        if len(seen) >= MAX_MANIFESTS:
            raise RegistryError(
                f"image {digest} has more than {MAX_MANIFESTS} manifests", where=where,
                fix="promote one image (or an index of platforms), not a whole repository",
            )  # fmt: skip
        seen.add(ref)
        fetched = client.get_manifest(repository, ref)  # digest and size checked
        media_type = _media_type(fetched, where)
        doc = fetched.json()
        if media_type in INDEX_MEDIA_TYPES:
            if depth >= MAX_INDEX_DEPTH:
                raise RegistryError(
                    f"index {ref} nests deeper than {MAX_INDEX_DEPTH} levels", where=where,
                    fix="an image index lists platform manifests; this one is not a promotable image",
                )  # fmt: skip
            for child in _descriptors(doc.get("manifests"), f"index {ref}: manifests", where):
                visit(child.digest, depth + 1)
            order.append(_Manifest(ref, media_type, fetched.data, ()))
            return
        config = _descriptors([doc.get("config")], f"manifest {ref}: config", where)
        layers = _descriptors(doc.get("layers"), f"manifest {ref}: layers", where, skip_foreign=True)
        order.append(_Manifest(ref, media_type, fetched.data, (*config, *layers)))

    visit(digest, 0)
    return order


def _media_type(fetched: FetchedManifest, where: str) -> str:
    """The manifest's media type: the registry's Content-Type, which must agree with the body's."""
    declared = fetched.json().get("mediaType")
    answered = fetched.media_type
    if answered in MANIFEST_MEDIA_TYPES:
        if declared is not None and declared != answered:
            raise RegistryError(
                f"manifest {fetched.digest} says mediaType {declared!r} but was served as {answered!r}",
                where=where,
                fix="the upstream registry serves the manifest under the wrong type; re-push it there",
            )
        return answered
    if isinstance(declared, str) and declared in MANIFEST_MEDIA_TYPES:
        return declared
    raise RegistryError(
        f"manifest {fetched.digest} has media type {answered or declared or 'none'!r}, which promotion "
        "cannot copy",
        where=where,
        fix=f"promote an OCI or Docker v2 image or index (one of: {', '.join(MANIFEST_MEDIA_TYPES)})",
    )


_FOREIGN = ("foreign", "nondistributable")


def _descriptors(items: object, what: str, where: str, *, skip_foreign: bool = False) -> list[_Blob]:
    """The descriptors of a manifest field, each checked (sha256 digest, size, media type)."""
    if items is None:
        items = []
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        raise _malformed(what, "is not a list", where)
    found = []
    for item in items:
        if not isinstance(item, dict):
            raise _malformed(what, "has an entry that is not a descriptor", where)
        digest, size, media_type = item.get("digest"), item.get("size"), item.get("mediaType", "")
        if not isinstance(digest, str) or not is_digest(digest):
            raise _malformed(what, f"has digest {digest!r}, not sha256:<64 hex>", where)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _malformed(what, f"gives {digest} the size {size!r}", where)
        if not isinstance(media_type, str):
            raise _malformed(what, f"gives {digest} the media type {media_type!r}", where)
        if skip_foreign and item.get("urls") and any(word in media_type for word in _FOREIGN):
            continue  # a non-distributable layer: fetched from its URLs, never stored in a registry
        found.append(_Blob(digest, size, media_type or "application/octet-stream"))
    return found


def _malformed(what: str, problem: str, where: str) -> RegistryError:
    return RegistryError(
        f"{what} {problem}",
        where=where,
        fix="the upstream manifest is malformed; rebuild and publish the image again",
    )
