"""A streaming OCI distribution client: push and pull blobs and manifests, any registry.

Built on httpx because it streams a request body from an iterator with an explicit
``Content-Length`` (requests cannot: a generator body forces chunked encoding). Every blob is
streamed from ``Blob.chunks()``: never read whole, never copied to a temp file.

Push of one blob: ``HEAD`` (skip when present) -> cross-repo mount when sources are given
(``201`` mounted; ``202`` continues the upload session it opened) -> ``POST`` + one streamed
``PUT ?digest=`` (monolithic; what Artifact Registry requires), or one streamed ``PATCH`` then an
empty ``PUT``. Never several PATCH chunks. 5xx, 429 and broken connections restart the whole blob
upload (new POST) with exponential backoff and jitter (``DELIVER_REGISTRY_RETRIES`` and
``DELIVER_REGISTRY_BACKOFF`` override the defaults). Manifests go last, by digest then by tag,
and the registry's ``Docker-Content-Digest`` must equal the sha256 of our bytes.

Auth: whatever the registry asks for in ``WWW-Authenticate``: Basic, or the Bearer token flow
(realm/service/scope; one token per scope set, cached until it expires; ``pull`` scope on mount
sources). Secrets never reach messages, logs or ``repr``.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import httpx

from delivery.core.console import ProgressReporter, redact
from delivery.core.errors import DeliveryError, RegistryError, SourceError, UsageError
from delivery.core.patterns import is_digest
from delivery.oci.auth import ANONYMOUS, Credentials
from delivery.oci.blobs import Blob, sha256_digest
from delivery.oci.reference import is_repository_name, is_tag

log = logging.getLogger("delivery.oci")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_MEDIA_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)

UploadMethod = Literal["put", "patch"]
Outcome = Literal["exists", "mounted", "uploaded"]
T = TypeVar("T")

_TOKEN_MARGIN = 30.0  # seconds: renew a bearer token this long before it expires
_DEFAULT_TOKEN_LIFETIME = 60.0  # seconds, per the docker token spec when expires_in is absent
_AUTH_PARAM_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')
DEFAULT_RETRIES = 5
DEFAULT_BACKOFF = 0.5  # seconds before the first retry; doubles per attempt (jittered)
RETRIES_VAR = "DELIVER_REGISTRY_RETRIES"
BACKOFF_VAR = "DELIVER_REGISTRY_BACKOFF"
_LOGIN_FIX = "check the credentials: run `docker login {registry}` or pass --username/--password"


@dataclass(frozen=True)
class BlobPush:
    """What happened to one blob: already there, mounted from another repo, or uploaded."""

    digest: str
    size: int
    outcome: Outcome
    bytes_sent: int


@dataclass(frozen=True)
class Manifest:
    """A manifest exactly as the registry stored it."""

    data: bytes = field(repr=False)
    media_type: str
    digest: str

    def json(self) -> dict[str, object]:
        """The manifest parsed as a JSON object."""
        parsed = json.loads(self.data)
        if not isinstance(parsed, dict):
            raise RegistryError(f"manifest {self.digest} is not a JSON object")
        return parsed


@dataclass(frozen=True)
class PushReport:
    """Result of ``push_image``: the manifest digest and what each blob needed."""

    digest: str
    blobs: list[BlobPush]
    bytes_sent: int


class _Transient(Exception):
    """A failure worth retrying: 5xx, 429, a broken or refused connection."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Cancelled(Exception):
    """Another blob of the same push failed; stop this one."""


class _CancelledError(RegistryError):
    """What a blob stopped by ``_Cancelled`` reports (never the root cause of a failed push)."""


@dataclass
class _Token:
    value: str = field(repr=False)
    expires_at: float


def is_loopback_host(registry: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (with or without a port)."""
    host = registry.rsplit("]", 1)[0].lstrip("[") if registry.startswith("[") else registry.split(":")[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="..",service="..",scope=".."`` -> ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    for key, raw in _AUTH_PARAM_RE.findall(rest):
        value = raw[1:-1].replace('\\"', '"') if raw.startswith('"') else raw
        params[key.lower()] = value
    return scheme.lower(), params


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


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
        timeout: float = 300.0,
        upload_method: UploadMethod = "put",
    ) -> None:
        if retries is None:
            retries = int(_env_number(RETRIES_VAR, DEFAULT_RETRIES, integer=True))
        if backoff is None:
            backoff = _env_number(BACKOFF_VAR, DEFAULT_BACKOFF)
        if retries < 0:
            raise UsageError("retries must be >= 0", where="RegistryClient")
        self.registry = registry
        self.credentials = credentials or ANONYMOUS
        self.plain_http = is_loopback_host(registry) if plain_http is None else plain_http
        self.base_url = httpx.URL(f"{'http' if self.plain_http else 'https'}://{registry}")
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.upload_method: UploadMethod = upload_method
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            follow_redirects=False,
        )
        self._lock = threading.Lock()
        self._scheme: str | None = None  # "basic" / "bearer" once the registry asked for it
        self._bearer: dict[str, str] = {}
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._token_locks: dict[tuple[str, ...], threading.Lock] = {}

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"RegistryClient({self.registry!r}, {self.credentials.describe()})"

    # ------------------------------------------------------------------ blobs

    def blob_exists(self, repository: str, digest: str) -> bool:
        """True when ``repository`` already holds the blob (``HEAD``)."""
        _check_repository(repository)
        _check_digest(digest)
        return self._retrying(
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
        _check_repository(repository)
        _check_digest(blob.digest)
        for source in mount_from:
            _check_repository(source)
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
            except _Transient:
                if reported[0]:
                    progress(-reported[0])
                raise

        pushed = self._retrying(
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
        if self.credentials.refresh_if_needed():  # short-lived tokens (GAR: 60 min) renewed per blob
            self._forget_tokens()
        scopes = (push_scope(repository),)
        if self._blob_exists_once(repository, blob.digest, scopes):
            return BlobPush(blob.digest, blob.size, "exists", 0)
        uploads = self._url(f"/v2/{repository}/blobs/uploads/")
        location: httpx.URL | None = None
        for i, source in enumerate(sources):
            mount_scopes = (push_scope(repository), pull_scope(source))
            url = uploads.copy_merge_params({"mount": blob.digest, "from": source})
            response = self._send("POST", url, mount_scopes, headers={"Content-Length": "0"})
            if response.status_code == 201:
                self._check_digest_header(response, blob.digest, f"mount of {blob.digest} from {source}")
                return BlobPush(blob.digest, blob.size, "mounted", 0)
            if response.status_code != 202:
                raise self._error(response, f"mount of blob {blob.digest} from {source} into {repository}")
            location = self._location(response)
            if i < len(sources) - 1:  # try the next source; drop this session
                self._cancel_upload(location, mount_scopes)
                location = None
        if location is None:
            response = self._send("POST", uploads, scopes, headers={"Content-Length": "0"})
            if response.status_code != 202:
                raise self._error(response, f"start of blob upload to {repository}")
            location = self._location(response)
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
                    raise _Cancelled()
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
            response = self._send("PATCH", location, scopes, headers=headers, content=body)
            if response.status_code != 202:
                raise self._error(response, what)
            location = self._location(response)
            final = self._send(
                "PUT",
                location.copy_merge_params({"digest": blob.digest}),
                scopes,
                headers={"Content-Length": "0"},
            )
        else:
            final = self._send(
                "PUT",
                location.copy_merge_params({"digest": blob.digest}),
                scopes,
                headers=headers,
                content=body,
            )
        if final.status_code == 400 and "DIGEST_INVALID" in self._error_detail(final):
            raise _blob_changed(blob, "bytes with another digest (the registry refused them: DIGEST_INVALID)")
        if final.status_code != 201:
            raise self._error(final, what)
        self._check_digest_header(
            final,
            blob.digest,
            what,
            fix="the source changed after it was hashed, or the bytes were altered on the way: "
            "rebuild, then push again",
        )
        return sent[0]

    def _cancel_upload(self, location: httpx.URL, scopes: tuple[str, ...]) -> None:
        try:
            self._send("DELETE", location, scopes)
        except (_Transient, RegistryError) as exc:  # best effort: the registry expires it anyway
            log.debug("could not cancel upload session: %s", exc)

    def _blob_exists_once(self, repository: str, digest: str, scopes: tuple[str, ...]) -> bool:
        response = self._send("HEAD", self._url(f"/v2/{repository}/blobs/{digest}"), scopes)
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise self._error(response, f"HEAD blob {digest} in {repository}")

    def get_blob(self, repository: str, digest: str) -> AbstractContextManager[Iterator[bytes]]:
        """Stream a blob; the digest (and size) are checked once the stream has been read to its end."""
        _check_repository(repository)
        _check_digest(digest)
        return self._get_blob(repository, digest)

    @contextmanager
    def _get_blob(self, repository: str, digest: str) -> Iterator[Iterator[bytes]]:
        scopes = (pull_scope(repository),)
        url = self._url(f"/v2/{repository}/blobs/{digest}")
        what = f"download of blob {digest} from {repository}"

        def start() -> httpx.Response:
            response = self._send("GET", url, scopes, stream=True, follow_redirects=True)
            if response.status_code != 200:
                try:
                    response.read()
                finally:
                    response.close()
                if response.status_code == 404:
                    raise self._error(
                        response, what, fix="check the digest and repository; push the blob first"
                    )
                raise self._error(response, what)
            return response

        response = self._retrying(what, start)

        def chunks() -> Iterator[bytes]:
            hasher = hashlib.sha256()
            size = 0
            try:
                for chunk in response.iter_bytes(1 << 20):
                    hasher.update(chunk)
                    size += len(chunk)
                    yield chunk
            except httpx.TransportError as exc:
                raise RegistryError(
                    f"{what} broke after {size} bytes: {type(exc).__name__}",
                    where=self.registry,
                    fix="retry; check the network and the registry",
                ) from None
            got = "sha256:" + hasher.hexdigest()
            if got != digest:
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
        _check_repository(repository)
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
        url = self._url(f"/v2/{repository}/manifests/{reference}")
        headers = {"Content-Type": media_type}
        what = (
            f"push of manifest {repository}:{reference}"
            if not is_digest(reference)
            else (f"push of manifest {repository}@{reference}")
        )

        def once() -> str:
            response = self._send("PUT", url, (push_scope(repository),), headers=headers, content=data)
            if response.status_code != 201:
                raise self._error(response, what)
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

        return self._retrying(what, once)

    def _confirm_manifest(self, repository: str, digest: str, what: str) -> None:
        url = self._url(f"/v2/{repository}/manifests/{digest}")
        response = self._send(
            "HEAD", url, (pull_scope(repository),), headers={"Accept": ", ".join(MANIFEST_MEDIA_TYPES)}
        )
        if response.status_code != 200:
            raise RegistryError(
                f"{what}: the registry accepted the manifest but has nothing under {digest}",
                where=f"{self.registry}/{repository}",
                fix="the registry rewrote the manifest; use a registry that stores manifests as sent",
            )

    def get_manifest(
        self, repository: str, reference: str, accept: Sequence[str] = MANIFEST_MEDIA_TYPES
    ) -> Manifest:
        """Fetch a manifest by tag or digest; its digest is checked against the reference and the header."""
        _check_repository(repository)
        url = self._url(f"/v2/{repository}/manifests/{reference}")
        what = f"manifest {repository}{'@' if is_digest(reference) else ':'}{reference}"

        def once() -> Manifest:
            response = self._send(
                "GET", url, (pull_scope(repository),), headers={"Accept": ", ".join(accept)}
            )
            if response.status_code == 404:
                raise self._error(
                    response,
                    f"fetch of {what}",
                    fix="check the repository name and the tag/digest (was it pushed to this registry?)",
                )
            if response.status_code != 200:
                raise self._error(response, f"fetch of {what}")
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
            return Manifest(data=data, media_type=media_type, digest=digest)

        return self._retrying(f"fetch of {what}", once)

    def list_tags(self, repository: str) -> list[str]:
        """Tags of ``repository`` (first page as the registry returns it)."""
        _check_repository(repository)

        def once() -> list[str]:
            response = self._send("GET", self._url(f"/v2/{repository}/tags/list"), (pull_scope(repository),))
            if response.status_code != 200:
                raise self._error(response, f"list of tags of {repository}")
            tags = response.json().get("tags") or []
            return [str(t) for t in tags]

        return self._retrying(f"list of tags of {repository}", once)

    # ------------------------------------------------------------------ HTTP, auth, retries

    def _url(self, path: str) -> httpx.URL:
        return self.base_url.join(path)

    def _location(self, response: httpx.Response) -> httpx.URL:
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(
                f"{response.request.method} {response.url.path} answered {response.status_code} "
                "without a Location header",
                where=self.registry,
                fix="the registry does not follow the OCI distribution spec",
            )
        return response.url.join(location)  # may be relative and carry query parameters: keep them

    def _send(
        self,
        method: str,
        url: httpx.URL,
        scopes: tuple[str, ...],
        *,
        headers: dict[str, str] | None = None,
        content: bytes | Callable[[], Iterator[bytes]] | None = None,
        stream: bool = False,
        follow_redirects: bool = False,
    ) -> httpx.Response:
        """One request with auth; answers a 401 challenge once; raises _Transient for retryable failures."""
        for attempt in (1, 2):
            request_headers = dict(headers or {})
            same_host = url.host == self.base_url.host and url.port == self.base_url.port
            authorization = self._authorization(scopes) if same_host else None
            if authorization:
                request_headers["Authorization"] = authorization
            body = content() if callable(content) else content
            request = self._http.build_request(method, url, headers=request_headers, content=body)
            try:
                response = self._http.send(request, stream=stream, follow_redirects=follow_redirects)
            except httpx.TransportError as exc:
                raise _Transient(
                    f"{method} {url.path}: {type(exc).__name__}: {self._safe(str(exc))}"
                ) from None
            if not stream:
                try:
                    response.read()
                except httpx.TransportError as exc:
                    raise _Transient(
                        f"{method} {url.path}: {type(exc).__name__} reading the response"
                    ) from None
            if response.status_code == 401 and attempt == 1 and same_host and self._learn_challenge(response):
                if stream:
                    response.close()
                continue
            if response.status_code == 429 or response.status_code >= 500:
                if stream:
                    response.read()
                    response.close()
                detail = self._error_detail(response)
                raise _Transient(
                    f"{method} {url.path}: HTTP {response.status_code} {detail}".rstrip(),
                    retry_after=_retry_after(response),
                )
            return response
        raise AssertionError("unreachable")

    def _learn_challenge(self, response: httpx.Response) -> bool:
        """Remember what a 401 asked for; True when a retry with (new) credentials can help."""
        challenges = [parse_challenge(h) for h in response.headers.get_list("WWW-Authenticate")]
        bearer = next((p for s, p in challenges if s == "bearer"), None)
        basic = any(s == "basic" for s, _ in challenges)
        request_auth = response.request.headers.get("Authorization", "")
        with self._lock:
            if bearer is not None and "realm" in bearer:
                previous_scheme = self._scheme
                self._scheme = "bearer"
                self._bearer = {"realm": bearer["realm"], "service": bearer.get("service", "")}
                if previous_scheme == "bearer" and request_auth.startswith("Bearer "):
                    # the token did not do: drop it (expired, or too narrow a scope)
                    self._tokens = {
                        k: t for k, t in self._tokens.items() if f"Bearer {t.value}" != request_auth
                    }
                return True
            if basic:
                if request_auth.startswith("Basic ") or self.credentials.anonymous:
                    self._scheme = "basic"
                    return False
                self._scheme = "basic"
                return True
        return False

    def _authorization(self, scopes: tuple[str, ...]) -> str | None:
        scheme = self._scheme
        if scheme == "basic":
            secret = self.credentials.secret()
            if secret.username and secret.password:
                raw = f"{secret.username}:{secret.password}".encode()
                return "Basic " + base64.b64encode(raw).decode("ascii")
            return None
        if scheme == "bearer":
            return "Bearer " + self._token(tuple(sorted(scopes)))
        return None

    def _token(self, scopes: tuple[str, ...]) -> str:
        with self._lock:
            lock = self._token_locks.setdefault(scopes, threading.Lock())
        with lock:
            cached = self._tokens.get(scopes)
            if cached is not None and cached.expires_at - _TOKEN_MARGIN > time.monotonic():
                return cached.value
            token = self._fetch_token(scopes)
            with self._lock:
                self._tokens[scopes] = token
            return token.value

    def _forget_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def _fetch_token(self, scopes: tuple[str, ...]) -> _Token:
        realm = httpx.URL(self._bearer["realm"])
        service = self._bearer.get("service", "")
        secret = self.credentials.secret()
        if realm.scheme not in ("http", "https"):
            raise RegistryError(f"token realm {realm} is not an http(s) URL", where=self.registry)
        if (
            realm.scheme == "http"
            and not self.credentials.anonymous
            and not (self.plain_http or is_loopback_host(realm.netloc.decode()))
        ):
            raise RegistryError(
                f"the registry asks for credentials to be sent to {realm} over plain http",
                where=self.registry,
                fix="use an https token realm (credentials are never sent in clear text to remote hosts)",
            )
        started = time.monotonic()
        try:
            if secret.identity_token:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": secret.identity_token,
                    "service": service,
                    "scope": " ".join(scopes),
                    "client_id": "llm-platform-delivery",
                }
                response = self._http.post(realm, data=form)
            else:
                params: list[tuple[str, str | int | float | bool | None]] = []
                if service:
                    params.append(("service", service))
                params += [("scope", s) for s in scopes]
                auth = (secret.username, secret.password) if secret.username and secret.password else None
                response = self._http.get(realm.copy_merge_params(params), auth=auth)
        except httpx.TransportError as exc:
            raise _Transient(f"token request to {realm.host}: {type(exc).__name__}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise _Transient(
                f"token request to {realm.host}: HTTP {response.status_code}", _retry_after(response)
            )
        if response.status_code in (401, 403):
            raise RegistryError(
                f"authentication failed: the token service {realm.host} refused "
                f"{self.credentials.describe()} (HTTP {response.status_code}) "
                f"for {' '.join(scopes) or 'registry access'}",
                where=self.registry,
                fix=self.credentials.hint or _LOGIN_FIX.format(registry=self.registry),
            )
        try:
            body = response.json()
            value = body.get("token") or body.get("access_token")
            lifetime = float(body.get("expires_in") or _DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError):
            value, lifetime = None, 0.0
        if response.status_code != 200 or not isinstance(value, str) or not value:
            raise RegistryError(
                f"the token service {realm.host} answered HTTP {response.status_code} without a token",
                where=self.registry,
                fix="check the registry's token service",
            )
        return _Token(value, started + lifetime)

    def _retrying(self, what: str, operation: Callable[[], T], cancel: threading.Event | None = None) -> T:
        last: _Transient | None = None
        for attempt in range(self.retries + 1):
            try:
                if cancel is not None and cancel.is_set():
                    raise _Cancelled()
                return operation()
            except _Transient as exc:
                last = exc
                if attempt == self.retries:
                    break
                delay = min(self.max_backoff, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, self.max_backoff))
                log.warning("%s: %s; retry %d/%d in %.1fs", what, exc, attempt + 1, self.retries, delay)
                if cancel is None:
                    time.sleep(delay)
                elif cancel.wait(delay):  # another blob failed while we waited: stop now
                    raise _CancelledError(f"{what} cancelled: another blob of the push failed") from None
            except _Cancelled:
                raise _CancelledError(f"{what} cancelled: another blob of the push failed") from None
        raise RegistryError(
            f"{what} failed after {self.retries + 1} attempts; last error: {last}",
            where=self.registry,
            fix="the registry is unavailable or the connection keeps breaking: check it and run again "
            "(blobs already pushed are skipped)",
        )

    def _check_digest_header(
        self,
        response: httpx.Response,
        digest: str,
        what: str,
        *,
        fix: str = "the bytes were altered on the way; push again",
    ) -> None:
        returned = response.headers.get("Docker-Content-Digest")
        if returned and returned != digest:
            raise RegistryError(
                f"{what}: the registry stored digest {returned}, expected {digest}",
                where=self.registry,
                fix=fix,
            )

    def _error_detail(self, response: httpx.Response) -> str:
        try:
            errors = response.json().get("errors") or []
            parts = [f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors]
            text = "; ".join(p for p in parts if p)
        except (ValueError, AttributeError, TypeError, httpx.ResponseNotRead):
            text = ""
        return self._safe(text)[:500]

    def _error(self, response: httpx.Response, what: str, *, fix: str = "") -> RegistryError:
        status = response.status_code
        detail = self._error_detail(response)
        where = self.registry
        if status == 401:
            return RegistryError(
                f"authentication failed: {what} refused for {self.credentials.describe()} (HTTP 401"
                f"{', ' + detail if detail else ''})",
                where=where,
                fix=self.credentials.hint or _LOGIN_FIX.format(registry=self.registry),
            )
        if status == 403:
            return RegistryError(
                f"access denied: {what} (HTTP 403{', ' + detail if detail else ''}) for "
                f"{self.credentials.describe()}",
                where=where,
                fix="grant these credentials push/pull rights on the repository",
            )
        if "BLOB_UNKNOWN" in detail and "manifest" in what:
            fix = fix or "push every layer and the config before the manifest"
        return RegistryError(
            f"{what} failed: HTTP {status}{', ' + detail if detail else ''}",
            where=where,
            fix=fix or "check the repository name and the registry's logs",
        )

    def _safe(self, text: str) -> str:
        with self._lock:
            tokens = [t.value for t in self._tokens.values()]
        return redact(text, *self.credentials.secret_values(), *tokens)


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
        _check_repository(repository)
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
        _check_digest(blob.digest)
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
        failed = sorted((e for e in errors if e is not None), key=lambda e: isinstance(e, _CancelledError))
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


def _blob_changed(blob: Blob, what: str) -> SourceError:
    return SourceError(
        f"blob {blob.digest} produced {what} while being uploaded",
        where=getattr(blob, "label", None) or "blob source",
        fix="the source changed after it was hashed: rebuild, then push again",
    )


def _env_number(var: str, default: float, *, integer: bool = False) -> float:
    """A retry setting from the environment (``default`` when unset); a bad value is a UsageError."""
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    try:
        value = float(int(raw)) if integer else float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        kind = "a whole number" if integer else "a number of seconds"
        raise UsageError(
            f"{var}={raw!r} is not {kind} >= 0",
            where=f"environment variable {var}",
            fix=f"unset it (default {default:g}) or set e.g. {var}={default:g}",
        )
    return value


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _check_repository(repository: str) -> None:
    if not is_repository_name(repository):
        raise UsageError(
            f"invalid repository name {repository!r}",
            where="registry repository",
            fix="use lowercase path components [a-z0-9] separated by '/', '.', '_' or '-'",
        )


def _check_digest(digest: str) -> None:
    if not is_digest(digest):
        raise UsageError(f"invalid digest {digest!r}", where="blob", fix="use sha256:<64 lowercase hex>")
