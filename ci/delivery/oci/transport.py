"""HTTP to one registry host: the httpx client, sending with auth, retries with backoff, errors.

Built on httpx because it streams a request body from an iterator with an explicit
``Content-Length`` (requests cannot: a generator body forces chunked encoding). A request that
gets a 401 is sent once more after the ``Authenticator`` learned the challenge. 5xx, 429 and
broken connections are ``Transient``: ``retrying`` runs the whole operation again with exponential
backoff and jitter, at least as long as ``Retry-After`` says (``DELIVER_REGISTRY_RETRIES`` and
``DELIVER_REGISTRY_BACKOFF`` override the defaults). Other answers become ``RegistryError`` with
a fix; secrets never reach messages (``Authenticator.redact``).

Hung peers: every socket operation (connect, each read, each write, waiting for a pooled
connection) times out after ``DELIVER_REGISTRY_TIMEOUT`` seconds (default 60; connect at most
15). It bounds a stall, not a request: a multi-GB PUT that keeps moving never times out. A
timed-out attempt is retried, but once the attempts of one operation have waited
``STALL_BUDGET_FACTOR`` (3) timeouts in all, it fails at once naming the host and the knob, so a
peer that accepts and never answers costs about 3 minutes, whatever the retry count.

Not a registry: an odd answer on a ``/v2/`` path without a ``Docker-Distribution-API-Version``
header (404, 405, 501, or HTML) triggers one ``GET /v2/`` probe per host; when that is not a
registry's answer either, the call fails at once (no retries) saying the host does not speak the
OCI distribution API.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import random
import socket
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
DEFAULT_TIMEOUT = 60.0  # seconds per socket operation (read, write, pool)
MAX_CONNECT_TIMEOUT = 15.0
STALL_BUDGET_FACTOR = 3  # timed-out attempts of one operation stop after this many timeouts in all
RETRIES_VAR = "DELIVER_REGISTRY_RETRIES"
BACKOFF_VAR = "DELIVER_REGISTRY_BACKOFF"
TIMEOUT_VAR = "DELIVER_REGISTRY_TIMEOUT"
API_VERSION_HEADER = "Docker-Distribution-API-Version"
NOT_A_REGISTRY_FIX = "check the registry host/port in environments/<env>/config.yaml"


class Transient(Exception):
    """A failure worth retrying: 5xx, 429, a broken or refused connection."""

    def __init__(self, message: str, retry_after: float | None = None, stalled: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.stalled = stalled  # seconds the peer kept us waiting (a timeout), else 0


def connect_timeout(timeout: float) -> float:
    return min(timeout, MAX_CONNECT_TIMEOUT)


def transient(exc: httpx.TransportError, what: str, timeout: float) -> Transient:
    """The Transient of a failed socket operation; a timeout says how long and remembers the stall."""
    if isinstance(exc, httpx.TimeoutException):
        waited = connect_timeout(timeout) if isinstance(exc, httpx.ConnectTimeout) else timeout
        return Transient(f"{what}: timed out after {waited:g} s ({type(exc).__name__})", stalled=waited)
    return Transient(f"{what}: {type(exc).__name__}")


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
    """The httpx client of one registry host (connection pool shared by parallel uploads).

    httpx applies ``timeout`` to each socket operation (each read or write of a chunk, each wait
    for a pooled connection), not to a whole request: a slow upload that keeps moving is fine.
    """
    _read_bigger()
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=connect_timeout(timeout)),
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


def _unknown_host(exc: BaseException) -> bool:
    """True when a connection failed because the host name does not exist (EAI_NONAME: not a
    passing DNS hiccup, which EAI_AGAIN is)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror) and seen.errno in (
            socket.EAI_NONAME,
            getattr(socket, "EAI_NODATA", -5),
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return "Name or service not known" in str(exc) or "nodename nor servname" in str(exc)


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds, when it is a number."""
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def timeout_setting(timeout: float | None) -> float:
    """Seconds per socket operation: as given, else ``DELIVER_REGISTRY_TIMEOUT``, else 60."""
    if timeout is None:
        timeout = env_number(TIMEOUT_VAR, DEFAULT_TIMEOUT)
        if timeout <= 0:
            raise UsageError(
                f"{TIMEOUT_VAR}={os.environ.get(TIMEOUT_VAR, '').strip()!r} is not a number of seconds > 0",
                where=f"environment variable {TIMEOUT_VAR}",
                fix=f"unset it (default {DEFAULT_TIMEOUT:g}) or set e.g. {TIMEOUT_VAR}={DEFAULT_TIMEOUT:g}",
            )
    if not timeout > 0 or timeout == float("inf"):
        raise UsageError("timeout must be a number of seconds > 0", where="RegistryClient")
    return timeout


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
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.registry = registry
        self.http = http
        self.auth = auth
        self.plain_http = plain_http
        self.base_url = httpx.URL(f"{'http' if plain_http else 'https'}://{registry}")
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self._not_registry: str | None = None  # why GET /v2/ says this host is no registry
        self._probed = False
        self._probe_lock = threading.Lock()

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
            except httpx.TimeoutException as exc:
                raise transient(exc, f"{method} {url.path}", self.timeout) from None
            except httpx.TransportError as exc:
                if _unknown_host(exc):  # a name that does not resolve will not resolve on a retry
                    raise RegistryError(
                        f"cannot resolve the registry host {url.host!r} ({self.safe(str(exc))})",
                        where=self.registry,
                        fix="check the host in the environment's registry: (environments/<env>/config.yaml) "
                        "or the reference, and this machine's DNS",
                    ) from None
                raise Transient(f"{method} {url.path}: {type(exc).__name__}: {self.safe(str(exc))}") from None
            if not stream:
                try:
                    response.read()
                except httpx.TransportError as exc:
                    raise transient(exc, f"{method} {url.path} reading the response", self.timeout) from None
            if same_host and self._looks_foreign(response):
                reason = self.not_a_registry()
                if reason:
                    if stream:
                        response.close()
                    raise RegistryError(
                        f"{self.registry} does not speak the OCI distribution API: {method} {url.path} "
                        f"answered HTTP {response.status_code} "
                        f"({response.headers.get('Content-Type') or 'no Content-Type'}), {reason}",
                        where=self.registry,
                        fix=NOT_A_REGISTRY_FIX,
                    )
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

    @staticmethod
    def _looks_foreign(response: httpx.Response) -> bool:
        """An answer on a registry path that a registry would not give (worth a ``/v2/`` probe)."""
        if API_VERSION_HEADER in response.headers or not response.url.path.startswith("/v2/"):
            return False
        html = response.headers.get("Content-Type", "").lower().startswith("text/html")
        return html or response.status_code in (404, 405, 501)

    def not_a_registry(self) -> str | None:
        """Why this host is no registry, from one ``GET /v2/`` (cached; None: it is, or unknown)."""
        with self._probe_lock:
            if not self._probed:
                self._not_registry = self._probe()
                self._probed = True
            return self._not_registry

    def _probe(self) -> str | None:
        try:
            ping = self.http.get(self.url("/v2/"), timeout=min(self.timeout, 10.0))
        except httpx.TransportError:
            return None  # cannot tell: keep the answer we had
        version = ping.headers.get(API_VERSION_HEADER)
        content_type = ping.headers.get("Content-Type", "").lower()
        if version:
            return None
        if ping.status_code == 401 and "WWW-Authenticate" in ping.headers:
            return None
        if ping.status_code == 200 and "json" in content_type:
            return None
        return (
            f"and GET /v2/ answered HTTP {ping.status_code} ({content_type or 'no Content-Type'}) "
            f"without a {API_VERSION_HEADER} header"
        )

    def retrying(self, what: str, operation: Callable[[], T], cancel: threading.Event | None = None) -> T:
        """Run ``operation`` until it does not raise Transient (at most ``retries`` more times).

        Attempts that timed out stop early once they waited ``STALL_BUDGET_FACTOR`` timeouts in all.
        """
        last: Transient | None = None
        stalled = 0.0
        attempts = 0
        for attempt in range(self.retries + 1):
            try:
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                attempts += 1
                return operation()
            except Transient as exc:
                last = exc
                stalled += exc.stalled
                if exc.stalled and stalled + exc.stalled > STALL_BUDGET_FACTOR * self.timeout:
                    raise self._timed_out(what, exc, attempts, stalled) from None
                if attempt == self.retries:
                    if exc.stalled:
                        raise self._timed_out(what, exc, attempts, stalled) from None
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
        # the operation is named by the first word of ``what`` (never by a repository name in it)
        pushing = what.split(" ", 1)[0] in ("push", "upload", "PUT", "POST", "PATCH", "mount")
        raise RegistryError(
            f"{what} failed after {self.retries + 1} attempts; last error: {last}",
            where=self.registry,
            fix="the registry is unavailable or the connection keeps breaking: check it and run again"
            + (" (blobs already pushed are skipped)" if pushing else ""),
        )

    def _timed_out(self, what: str, last: Transient, attempts: int, stalled: float) -> RegistryError:
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        return RegistryError(
            f"{what} failed: {self.registry} did not answer; last error: {last} "
            f"({tries}, {stalled:g} s waited in all)",
            where=self.registry,
            fix=f"check that the registry at {self.registry} is up and answering; on a slow link raise "
            f"{TIMEOUT_VAR} (now {self.timeout:g} s per socket operation)",
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
