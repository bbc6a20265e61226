"""The registry API of one host: blobs (exists, streamed push with mount, streamed pull) and manifests.

Every blob is streamed from ``Blob.chunks()``: never read whole, never copied to a temp file.
Push of one blob: ``HEAD`` (skip when present) -> cross-repo mount when sources are given
(``201`` mounted; ``202`` continues the upload session it opened) -> ``POST`` + one streamed
``PUT ?digest=`` (monolithic; what Artifact Registry requires), or one streamed ``PATCH`` then an
empty ``PUT``. Never several PATCH chunks. A transient failure restarts the whole blob upload (new
POST; ``transport``). A manifest's digest is checked against the bytes sent or received and the
registry's ``Docker-Content-Digest``; a manifest read is refused past ``MAX_MANIFEST_BYTES``
(4 MiB) without reading further. Auth is ``auth.RegistryAuth``; whole images are ``push``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Literal

import httpx

from delivery.core.errors import RegistryError, SourceError, UsageError
from delivery.core.patterns import is_digest
from delivery.oci.auth import ANONYMOUS, Credentials, RegistryAuth, pull_scope, push_scope
from delivery.oci.blobs import Blob, sha256_digest
from delivery.oci.reference import check_digest, check_repository, is_tag
from delivery.oci.spec import MANIFEST_MEDIA_TYPES
from delivery.oci.transport import (
    Cancelled,
    Transient,
    Transport,
    http_client,
    is_loopback_host,
    retry_settings,
    timeout_setting,
    transient,
)

log = logging.getLogger("delivery.oci")

MAX_MANIFEST_BYTES = 4 << 20
"""Largest manifest read or accepted (4 MiB: what distribution and the OCI spec allow)."""

UploadMethod = Literal["put", "patch"]
Outcome = Literal["exists", "mounted", "uploaded"]


@dataclass(frozen=True)
class BlobPush:
    """What happened to one blob: already there, mounted from another repo, or uploaded."""

    digest: str
    size: int
    outcome: Outcome
    bytes_sent: int


@dataclass(frozen=True)
class FetchedManifest:
    """A manifest as ``get_manifest`` fetched it: the exact bytes the registry stored."""

    data: bytes = field(repr=False)
    media_type: str
    digest: str

    def json(self) -> dict[str, object]:
        """The manifest parsed as a JSON object."""
        parsed = json.loads(self.data)
        if not isinstance(parsed, dict):
            raise RegistryError(f"manifest {self.digest} is not a JSON object")
        return parsed


class RegistryClient:
    """A client for one registry host. Thread-safe: blobs of one push upload in parallel."""

    def __init__(
        self,
        registry: str,
        credentials: Credentials | None = None,
        *,
        plain_http: bool | None = None,
        retries: int | None = None,
        backoff: float | None = None,
        max_backoff: float = 30.0,
        timeout: float | None = None,
        upload_method: UploadMethod = "put",
    ) -> None:
        retries, backoff = retry_settings(retries, backoff)
        timeout = timeout_setting(timeout)
        self.registry = registry
        self.credentials = credentials or ANONYMOUS
        plain = is_loopback_host(registry) if plain_http is None else plain_http
        http = http_client(timeout)
        self._auth = RegistryAuth(registry, self.credentials, http, plain_http=plain)
        self._transport = Transport(
            registry,
            http,
            self._auth,
            plain_http=plain,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
            timeout=timeout,
        )
        self.upload_method: UploadMethod = upload_method

    @property
    def plain_http(self) -> bool:
        return self._transport.plain_http

    @property
    def base_url(self) -> httpx.URL:
        return self._transport.base_url

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    def __repr__(self) -> str:
        return f"RegistryClient({self.registry!r}, {self.credentials.describe()})"

    # ------------------------------------------------------------------ blobs

    def blob_exists(self, repository: str, digest: str) -> bool:
        """True when ``repository`` already holds the blob (``HEAD``)."""
        check_repository(repository)
        check_digest(digest)
        return self._transport.retrying(
            f"HEAD blob {digest} in {repository}",
            lambda: self._blob_exists_once(repository, digest, (pull_scope(repository),)),
        )

    def push_blob(
        self,
        repository: str,
        blob: Blob,
        *,
        mount_from: Sequence[str] = (),
        on_progress: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> BlobPush:
        """Make sure ``repository`` has ``blob``: skip, mount, or stream it up (retrying the whole upload).

        ``on_progress`` receives byte deltas as they are sent (negative when an upload restarts).
        """
        check_repository(repository)
        check_digest(blob.digest)
        for source in mount_from:
            check_repository(source)
        sources = [s for s in dict.fromkeys(mount_from) if s != repository]
        reported = [0]

        def progress(amount: int) -> None:
            reported[0] += amount
            if on_progress is not None and amount:
                on_progress(amount)

        def attempt() -> BlobPush:
            if reported[0]:
                progress(-reported[0])
            try:
                return self._push_blob_once(repository, blob, sources, progress, cancel)
            except Transient:
                if reported[0]:
                    progress(-reported[0])
                raise

        pushed = self._transport.retrying(
            f"upload of blob {blob.digest} ({blob.size} bytes) to {repository}", attempt, cancel
        )
        if pushed.outcome != "uploaded" and on_progress is not None:
            on_progress(blob.size - reported[0])
        return pushed

    def _push_blob_once(
        self,
        repository: str,
        blob: Blob,
        sources: Sequence[str],
        progress: Callable[[int], None],
        cancel: threading.Event | None,
    ) -> BlobPush:
        self._auth.renew_if_needed()  # short-lived tokens (GAR: 60 min) renewed per blob
        scopes = (push_scope(repository),)
        if self._blob_exists_once(repository, blob.digest, scopes):
            return BlobPush(blob.digest, blob.size, "exists", 0)
        uploads = self._transport.url(f"/v2/{repository}/blobs/uploads/")
        location: httpx.URL | None = None
        for i, source in enumerate(sources):
            mount_scopes = (push_scope(repository), pull_scope(source))
            url = uploads.copy_merge_params({"mount": blob.digest, "from": source})
            response = self._transport.send("POST", url, mount_scopes, headers={"Content-Length": "0"})
            if response.status_code == 201:
                self._transport.check_digest_header(
                    response, blob.digest, f"mount of {blob.digest} from {source}"
                )
                return BlobPush(blob.digest, blob.size, "mounted", 0)
            if response.status_code != 202:
                raise self._transport.error(
                    response, f"mount of blob {blob.digest} from {source} into {repository}"
                )
            location = self._transport.location(response)
            if i < len(sources) - 1:  # try the next source; drop this session
                self._cancel_upload(location, mount_scopes)
                location = None
        if location is None:
            response = self._transport.send("POST", uploads, scopes, headers={"Content-Length": "0"})
            if response.status_code != 202:
                raise self._transport.error(response, f"start of blob upload to {repository}")
            location = self._transport.location(response)
        sent = self._upload(location, blob, scopes, progress, cancel)
        return BlobPush(blob.digest, blob.size, "uploaded", sent)

    def _upload(
        self,
        location: httpx.URL,
        blob: Blob,
        scopes: tuple[str, ...],
        progress: Callable[[int], None],
        cancel: threading.Event | None,
    ) -> int:
        sent = [0]

        def body() -> Iterator[bytes]:
            # No second hash here: the registry checks the bytes against ``?digest=`` on the final
            # PUT and answers DIGEST_INVALID (mapped below); the size is checked as the bytes go.
            sent[0] = 0
            for chunk in blob.chunks():
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                if not chunk:
                    continue
                if sent[0] + len(chunk) > blob.size:
                    raise _blob_changed(blob, f"more than its size of {blob.size} bytes")
                yield chunk
                sent[0] += len(chunk)
                progress(len(chunk))
            if sent[0] != blob.size:
                raise _blob_changed(blob, f"{sent[0]} bytes instead of {blob.size}")

        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)}
        what = f"upload of blob {blob.digest}"
        if self.upload_method == "patch":
            response = self._transport.send("PATCH", location, scopes, headers=headers, content=body)
            if response.status_code != 202:
                raise self._transport.error(response, what)
            location = self._transport.location(response)
            final = self._transport.send(
                "PUT",
                location.copy_merge_params({"digest": blob.digest}),
                scopes,
                headers={"Content-Length": "0"},
            )
        else:
            final = self._transport.send(
                "PUT",
                location.copy_merge_params({"digest": blob.digest}),
                scopes,
                headers=headers,
                content=body,
            )
        if final.status_code == 400 and "DIGEST_INVALID" in self._transport.error_detail(final):
            raise _blob_changed(blob, "bytes with another digest (the registry refused them: DIGEST_INVALID)")
        if final.status_code != 201:
            raise self._transport.error(final, what)
        self._transport.check_digest_header(
            final,
            blob.digest,
            what,
            fix="the source changed after it was hashed, or the bytes were altered on the way: "
            "rebuild, then push again",
        )
        return sent[0]

    def _cancel_upload(self, location: httpx.URL, scopes: tuple[str, ...]) -> None:
        try:
            self._transport.send("DELETE", location, scopes)
        except (Transient, RegistryError) as exc:  # best effort: the registry expires it anyway
            log.debug("could not cancel upload session: %s", exc)

    def _blob_exists_once(self, repository: str, digest: str, scopes: tuple[str, ...]) -> bool:
        response = self._transport.send(
            "HEAD", self._transport.url(f"/v2/{repository}/blobs/{digest}"), scopes
        )
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self._transport.error(response, f"HEAD blob {digest} in {repository}")

    def get_blob(
        self, repository: str, digest: str, *, retryable: bool = False, verify: bool = True
    ) -> AbstractContextManager[Iterator[bytes]]:
        """Stream a blob; the digest (and size) are checked once the stream has been read to its end.

        ``retryable``: a stream that breaks midway raises ``Transient`` (so an enclosing
        ``retrying`` operation, e.g. the upload it feeds, starts over) instead of a RegistryError.
        ``verify=False`` leaves the digest check to whoever consumes the bytes: only for a stream
        fed straight into an upload, which the receiving registry checks against ``?digest=``.
        """
        check_repository(repository)
        check_digest(digest)
        return self._get_blob(repository, digest, retryable, verify)

    @contextmanager
    def _get_blob(
        self, repository: str, digest: str, retryable: bool, verify: bool
    ) -> Iterator[Iterator[bytes]]:
        scopes = (pull_scope(repository),)
        url = self._transport.url(f"/v2/{repository}/blobs/{digest}")
        what = f"download of blob {digest} from {repository}"

        def start() -> httpx.Response:
            response = self._transport.send("GET", url, scopes, stream=True, follow_redirects=True)
            if response.status_code != 200:
                try:
                    response.read()
                finally:
                    response.close()
                if response.status_code == 404:
                    raise self._transport.error(
                        response, what, fix="check the digest and repository; push the blob first"
                    )
                raise self._transport.error(response, what)
            return response

        response = self._transport.retrying(what, start)

        def chunks() -> Iterator[bytes]:
            hasher = hashlib.sha256()
            size = 0
            try:
                for chunk in response.iter_bytes():  # as received (~64 KiB): re-chunking costs a copy
                    if verify:
                        hasher.update(chunk)
                    size += len(chunk)
                    yield chunk
            except httpx.TransportError as exc:
                failure = transient(exc, f"{what} broke after {size} bytes", self._transport.timeout)
                if retryable:
                    raise failure from None
                raise RegistryError(
                    str(failure),
                    where=self.registry,
                    fix="retry; check the network and the registry",
                ) from None
            got = "sha256:" + hasher.hexdigest()
            if verify and got != digest:
                raise RegistryError(
                    f"digest mismatch: {what} returned {size} bytes with digest {got}",
                    where=f"{self.registry}/{repository}",
                    fix="the registry's copy is corrupt or a proxy altered it; re-push the blob",
                )

        try:
            yield chunks()
        finally:
            response.close()

    # ------------------------------------------------------------------ manifests

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        """PUT the exact bytes of a manifest under a tag or its digest; returns the verified digest."""
        check_repository(repository)
        digest = sha256_digest(data)
        if is_digest(reference):
            if reference != digest:
                raise RegistryError(
                    f"manifest bytes have digest {digest}, not {reference}",
                    where=f"{self.registry}/{repository}",
                    fix="push the manifest under its own digest",
                )
        elif not is_tag(reference):
            raise UsageError(
                f"{reference!r} is neither a tag nor a sha256 digest",
                where=f"{self.registry}/{repository}",
                fix="tags match [A-Za-z0-9_][A-Za-z0-9._-]{0,127}",
            )
        url = self._transport.url(f"/v2/{repository}/manifests/{reference}")
        headers = {"Content-Type": media_type}
        what = (
            f"push of manifest {repository}:{reference}"
            if not is_digest(reference)
            else (f"push of manifest {repository}@{reference}")
        )

        def once() -> str:
            response = self._transport.send(
                "PUT", url, (push_scope(repository),), headers=headers, content=data
            )
            if response.status_code != 201:
                raise self._transport.error(response, what)
            returned = response.headers.get("Docker-Content-Digest")
            if returned is None:  # not sent by every registry: confirm by reading it back
                self._confirm_manifest(repository, digest, what)
            elif returned != digest:
                raise RegistryError(
                    f"{what}: the registry reports digest {returned} but the bytes sent have {digest}",
                    where=f"{self.registry}/{repository}",
                    fix="the registry rewrote the manifest; use a registry that stores manifests as sent",
                )
            return digest

        return self._transport.retrying(what, once)

    def _confirm_manifest(self, repository: str, digest: str, what: str) -> None:
        url = self._transport.url(f"/v2/{repository}/manifests/{digest}")
        response = self._transport.send(
            "HEAD", url, (pull_scope(repository),), headers={"Accept": ", ".join(MANIFEST_MEDIA_TYPES)}
        )
        if response.status_code != 200:
            raise RegistryError(
                f"{what}: the registry accepted the manifest but has nothing under {digest}",
                where=f"{self.registry}/{repository}",
                fix="the registry rewrote the manifest; use a registry that stores manifests as sent",
            )

    def manifest_exists(self, repository: str, digest: str) -> bool:
        """True when ``repository`` holds the manifest ``digest`` (``HEAD``; 404 is False)."""
        check_repository(repository)
        check_digest(digest)
        url = self._transport.url(f"/v2/{repository}/manifests/{digest}")
        what = f"HEAD manifest {repository}@{digest}"

        def once() -> bool:
            response = self._transport.send(
                "HEAD", url, (pull_scope(repository),), headers={"Accept": ", ".join(MANIFEST_MEDIA_TYPES)}
            )
            if response.status_code == 404:
                return False
            if response.status_code != 200:
                raise self._transport.error(response, what)
            self._transport.check_digest_header(response, digest, what)
            return True

        return self._transport.retrying(what, once)

    def get_manifest(
        self, repository: str, reference: str, accept: Sequence[str] = MANIFEST_MEDIA_TYPES
    ) -> FetchedManifest:
        """Fetch a manifest by tag or digest; its digest is checked against the reference and the header."""
        check_repository(repository)
        url = self._transport.url(f"/v2/{repository}/manifests/{reference}")
        what = f"manifest {repository}{'@' if is_digest(reference) else ':'}{reference}"

        def once() -> FetchedManifest:
            response = self._transport.send(
                "GET", url, (pull_scope(repository),), headers={"Accept": ", ".join(accept)}, stream=True
            )
            response = self._read_capped(response, MAX_MANIFEST_BYTES, f"fetch of {what}")
            if response.status_code == 404:
                raise self._transport.error(
                    response,
                    f"fetch of {what}",
                    fix="check the repository name and the tag/digest (was it pushed to this registry?)",
                )
            if response.status_code != 200:
                raise self._transport.error(response, f"fetch of {what}")
            data = response.content
            digest = sha256_digest(data)
            returned = response.headers.get("Docker-Content-Digest")
            if (is_digest(reference) and reference != digest) or (returned and returned != digest):
                raise RegistryError(
                    f"digest mismatch: {what} returned bytes with digest {digest}",
                    where=f"{self.registry}/{repository}",
                    fix="the registry or a proxy altered the manifest; do not trust this registry's copy",
                )
            media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
            return FetchedManifest(data=data, media_type=media_type, digest=digest)

        return self._transport.retrying(f"fetch of {what}", once)

    def _read_capped(self, response: httpx.Response, limit: int, what: str) -> httpx.Response:
        """A streamed response read whole, refused (never read further) once it passes ``limit``."""
        try:
            length = response.headers.get("Content-Length", "")
            declared = int(length) if length.isdigit() else 0
            parts, size = [], 0
            if declared <= limit:
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        break
                    parts.append(chunk)
        except httpx.TransportError as exc:
            raise transient(exc, f"{what} reading the response", self._transport.timeout) from None
        finally:
            response.close()
        if declared > limit or size > limit:
            raise RegistryError(
                f"{what}: the answer is larger than {limit >> 20} MiB (HTTP {response.status_code})",
                where=self.registry,
                fix="a manifest is never that large: check the reference and what serves this registry",
            )
        dropped = {"content-encoding", "content-length"}  # the bytes below are decoded, whole
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in dropped]
        return httpx.Response(
            response.status_code, headers=headers, content=b"".join(parts), request=response.request
        )

    def list_tags(self, repository: str) -> list[str]:
        """Tags of ``repository`` (first page as the registry returns it)."""
        check_repository(repository)

        def once() -> list[str]:
            response = self._transport.send(
                "GET", self._transport.url(f"/v2/{repository}/tags/list"), (pull_scope(repository),)
            )
            if response.status_code != 200:
                raise self._transport.error(response, f"list of tags of {repository}")
            tags = response.json().get("tags") or []
            return [str(t) for t in tags]

        return self._transport.retrying(f"list of tags of {repository}", once)


def _blob_changed(blob: Blob, what: str) -> SourceError:
    # a blob may name where its bytes come from (``origin``) and the fix when they are not its own
    return SourceError(
        f"blob {blob.digest} produced {what} while being uploaded",
        where=getattr(blob, "origin", None) or getattr(blob, "label", None) or "blob source",
        fix=getattr(blob, "changed_fix", None)
        or "the source changed after it was hashed: rebuild, then push again",
    )
