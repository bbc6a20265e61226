"""HTTP to one registry host: the httpx client, sending with auth, retries with backoff, errors.

Built on httpx because it streams a request body from an iterator with an explicit
``Content-Length`` (requests cannot: a generator body forces chunked encoding). A request that
gets a 401 is sent once more after the ``Authenticator`` learned the challenge. 5xx, 429 and
broken connections are ``Transient``: ``retrying`` runs the whole operation again with exponential
backoff and jitter, at least as long as ``Retry-After`` says (``DELIVER_REGISTRY_RETRIES`` and
``DELIVER_REGISTRY_BACKOFF`` override the defaults). Other answers become ``RegistryError`` with
a fix; secrets never reach messages (``Authenticator.redact``).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

import httpx

from delivery.core.errors import RegistryError, UsageError

log = logging.getLogger("delivery.oci")

T = TypeVar("T")

DEFAULT_RETRIES = 5
DEFAULT_BACKOFF = 0.5  # seconds before the first retry; doubles per attempt (jittered)
RETRIES_VAR = "DELIVER_REGISTRY_RETRIES"
BACKOFF_VAR = "DELIVER_REGISTRY_BACKOFF"


class Transient(Exception):
    """A failure worth retrying: 5xx, 429, a broken or refused connection."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Cancelled(Exception):
    """Another blob of the same push failed; stop this one."""


class CancelledError(RegistryError):
    """What a blob stopped by ``Cancelled`` reports (never the root cause of a failed push)."""


class Authenticator(Protocol):
    """What the transport asks of registry auth (``delivery.oci.auth.RegistryAuth``)."""

    def authorization(self, scopes: tuple[str, ...]) -> str | None:
        """The ``Authorization`` header for a request needing ``scopes`` (None: send none)."""
        ...

    def learn_challenge(self, response: httpx.Response) -> bool:
        """Remember what a 401 asked for; True when a retry with (new) credentials can help."""
        ...

    def redact(self, text: str) -> str:
        """``text`` with every secret (password, token) masked."""
        ...

    def describe(self) -> str:
        """Who is asking, safe to print (``user 'x' from docker config``, ``anonymous``)."""
        ...

    def login_fix(self) -> str:
        """The fix for refused credentials."""
        ...


def is_loopback_host(registry: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (with or without a port)."""
    host = registry.rsplit("]", 1)[0].lstrip("[") if registry.startswith("[") else registry.split(":")[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


READ_SIZE = 1 << 20
"""Bytes asked of the socket per read of a response (httpcore's default is 64 KiB)."""


def _read_bigger() -> None:
    """Let httpcore read responses up to ``READ_SIZE`` at a time instead of 64 KiB.

    A read returns what has arrived, so small answers cost nothing more, while a blob streamed
    registry to registry takes half the CPU per byte (fewer trips through h11): the copy's GET is
    on its critical path. Process-wide (httpcore has no per-client knob); skipped if httpcore
    renames it.
    """
    try:
        from httpcore._sync.http11 import HTTP11Connection
    except ImportError:  # pragma: no cover - another httpcore layout: keep its default
        return
    if getattr(HTTP11Connection, "READ_NUM_BYTES", READ_SIZE) < READ_SIZE:
        HTTP11Connection.READ_NUM_BYTES = READ_SIZE


def http_client(timeout: float) -> httpx.Client:
    """The httpx client of one registry host (connection pool shared by parallel uploads)."""
    _read_bigger()
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        follow_redirects=False,
    )


def env_number(var: str, default: float, *, integer: bool = False) -> float:
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


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds, when it is a number."""
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def retry_settings(retries: int | None, backoff: float | None) -> tuple[int, float]:
    """Retries and first backoff: as given, else from the environment, else the defaults."""
    if retries is None:
        retries = int(env_number(RETRIES_VAR, DEFAULT_RETRIES, integer=True))
    if backoff is None:
        backoff = env_number(BACKOFF_VAR, DEFAULT_BACKOFF)
    if retries < 0:
        raise UsageError("retries must be >= 0", where="RegistryClient")
    return retries, backoff


class Transport:
    """Requests to one registry host with auth and retries (``retry_settings``). Thread-safe."""

    def __init__(
        self,
        registry: str,
        http: httpx.Client,
        auth: Authenticator,
        *,
        plain_http: bool,
        retries: int,
        backoff: float,
        max_backoff: float = 30.0,
    ) -> None:
        self.registry = registry
        self.http = http
        self.auth = auth
        self.plain_http = plain_http
        self.base_url = httpx.URL(f"{'http' if plain_http else 'https'}://{registry}")
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff

    def close(self) -> None:
        self.http.close()

    def url(self, path: str) -> httpx.URL:
        return self.base_url.join(path)

    def location(self, response: httpx.Response) -> httpx.URL:
        """Where an upload continues (the ``Location`` header, resolved against the request URL)."""
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(
                f"{response.request.method} {response.url.path} answered {response.status_code} "
                "without a Location header",
                where=self.registry,
                fix="the registry does not follow the OCI distribution spec",
            )
        return response.url.join(location)  # may be relative and carry query parameters: keep them

    def send(
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
        """One request with auth; answers a 401 challenge once; raises Transient for retryable failures."""
        for attempt in (1, 2):
            request_headers = dict(headers or {})
            same_host = url.host == self.base_url.host and url.port == self.base_url.port
            authorization = self.auth.authorization(scopes) if same_host else None
            if authorization:
                request_headers["Authorization"] = authorization
            body = content() if callable(content) else content
            request = self.http.build_request(method, url, headers=request_headers, content=body)
            try:
                response = self.http.send(request, stream=stream, follow_redirects=follow_redirects)
            except httpx.TransportError as exc:
                raise Transient(f"{method} {url.path}: {type(exc).__name__}: {self.safe(str(exc))}") from None
            if not stream:
                try:
                    response.read()
                except httpx.TransportError as exc:
                    raise Transient(
                        f"{method} {url.path}: {type(exc).__name__} reading the response"
                    ) from None
            if (
                response.status_code == 401
                and attempt == 1
                and same_host
                and self.auth.learn_challenge(response)
            ):
                if stream:
                    response.close()
                continue
            if response.status_code == 429 or response.status_code >= 500:
                if stream:
                    response.read()
                    response.close()
                detail = self.error_detail(response)
                raise Transient(
                    f"{method} {url.path}: HTTP {response.status_code} {detail}".rstrip(),
                    retry_after=retry_after(response),
                )
            return response
        raise AssertionError("unreachable")

    def retrying(self, what: str, operation: Callable[[], T], cancel: threading.Event | None = None) -> T:
        """Run ``operation`` until it does not raise Transient (at most ``retries`` more times)."""
        last: Transient | None = None
        for attempt in range(self.retries + 1):
            try:
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                return operation()
            except Transient as exc:
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
                    raise CancelledError(f"{what} cancelled: another blob of the push failed") from None
            except Cancelled:
                raise CancelledError(f"{what} cancelled: another blob of the push failed") from None
        raise RegistryError(
            f"{what} failed after {self.retries + 1} attempts; last error: {last}",
            where=self.registry,
            fix="the registry is unavailable or the connection keeps breaking: check it and run again "
            "(blobs already pushed are skipped)",
        )

    def check_digest_header(
        self,
        response: httpx.Response,
        digest: str,
        what: str,
        *,
        fix: str = "the bytes were altered on the way; push again",
    ) -> None:
        """The registry's ``Docker-Content-Digest`` (when sent) must be ``digest``."""
        returned = response.headers.get("Docker-Content-Digest")
        if returned and returned != digest:
            raise RegistryError(
                f"{what}: the registry stored digest {returned}, expected {digest}",
                where=self.registry,
                fix=fix,
            )

    def error_detail(self, response: httpx.Response) -> str:
        """The registry's ``errors`` list as one line (redacted, at most 500 characters)."""
        try:
            errors = response.json().get("errors") or []
            parts = [f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors]
            text = "; ".join(p for p in parts if p)
        except (ValueError, AttributeError, TypeError, httpx.ResponseNotRead):
            text = ""
        return self.safe(text)[:500]

    def error(self, response: httpx.Response, what: str, *, fix: str = "") -> RegistryError:
        """The RegistryError for an unexpected answer to ``what`` (401/403 name the credentials)."""
        status = response.status_code
        detail = self.error_detail(response)
        where = self.registry
        if status == 401:
            return RegistryError(
                f"authentication failed: {what} refused for {self.auth.describe()} (HTTP 401"
                f"{', ' + detail if detail else ''})",
                where=where,
                fix=self.auth.login_fix(),
            )
        if status == 403:
            return RegistryError(
                f"access denied: {what} (HTTP 403{', ' + detail if detail else ''}) for "
                f"{self.auth.describe()}",
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

    def safe(self, text: str) -> str:
        return self.auth.redact(text)
