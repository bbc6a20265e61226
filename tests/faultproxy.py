"""A loopback HTTP proxy in front of a real registry that injects faults and records traffic.

It forwards every request (streaming bodies both ways, Host header kept so the registry's
Location URLs point back at the proxy) and can, per matching request: answer an error status
instead (500, 503, 429...), break the connection after N request-body bytes, throttle request
bodies, corrupt a response body, or rewrite a response header. ``gar_like=True`` mimics Google
Artifact Registry, which refuses chunked uploads: a PATCH with Content-Range, a second PATCH on
the same upload session, or a PUT carrying data after a PATCH are rejected with 400.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

from loopback import loopback_host, start_loopback_server, stop_loopback_server

Action = Literal["status", "drop", "corrupt", "header", "throttle"]
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
}


@dataclass
class Fault:
    """What to do to requests matching ``method`` and the ``path`` regex (``times`` < 0: always)."""

    action: Action
    method: str | None = None
    path: str = ""
    times: int = 1
    status: int = 500
    after_bytes: int = 0
    header: tuple[str, str] = ("", "")
    delay_per_mib: float = 0.0
    retry_after: str | None = None
    fired: int = 0

    def matches(self, method: str, target: str) -> bool:
        return (self.method is None or self.method == method) and bool(re.search(self.path, target))


@dataclass(frozen=True)
class Exchange:
    """One request seen by the proxy: method, path with query, status answered, body bytes forwarded."""

    method: str
    target: str
    status: int
    request_bytes: int
    fault: str = ""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


@dataclass
class FaultProxy:
    """Run with ``with FaultProxy(upstream) as proxy:``; point the client at ``proxy.host``."""

    upstream: str
    gar_like: bool = False
    faults: list[Fault] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    max_concurrent_uploads: int = 0
    _inflight_uploads: int = 0
    _patched_sessions: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def host(self) -> str:
        assert self._server is not None
        return loopback_host(self._server)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.exchanges.clear()
            self.max_concurrent_uploads = 0

    def blob_bytes_sent(self) -> int:
        """Request-body bytes forwarded to blob upload endpoints."""
        return sum(e.request_bytes for e in self.exchanges if "/blobs/uploads/" in e.path)

    def requests(self, method: str, path_part: str = "") -> list[Exchange]:
        return [e for e in self.exchanges if e.method == method and path_part in e.target]

    def __enter__(self) -> FaultProxy:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = start_loopback_server(Handler)
        return self

    def __exit__(self, *exc: object) -> None:
        stop_loopback_server(self._server)

    def _take_fault(self, method: str, target: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, target) and (fault.times < 0 or fault.fired < fault.times):
                    fault.fired += 1
                    return fault
        return None

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # ------------------------------------------------------------------ request body

    def _body(self, throttle: float = 0.0) -> Iterator[bytes]:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                yield self.rfile.read(size)
                self.rfile.readline()
        remaining = int(length or 0)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                return
            remaining -= len(chunk)
            if throttle:
                time.sleep(throttle * len(chunk) / (1 << 20))
            yield chunk

    def _reply(self, status: int, payload: dict[str, object], extra: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _break(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # ------------------------------------------------------------------ main

    def _handle(self) -> None:
        owner = self.owner
        method, target = self.command, self.path
        fault = owner._take_fault(method, target)
        is_upload_body = method in ("PUT", "PATCH") and "/blobs/uploads/" in target
        if fault is not None and fault.action == "status":
            consumed = sum(len(c) for c in self._body())
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            self._reply(fault.status, {"errors": [{"code": "INJECTED", "message": "fault injected"}]}, extra)
            owner._record(Exchange(method, target, fault.status, consumed, "status"))
            return
        if fault is not None and fault.action == "drop":
            consumed = 0
            for chunk in self._body():
                consumed += len(chunk)
                if consumed >= fault.after_bytes:
                    break
            owner._record(Exchange(method, target, 0, consumed, "drop"))
            self._break()
            return
        if owner.gar_like and self._gar_rejects(method, target):
            consumed = sum(len(c) for c in self._body())
            self._reply(
                400,
                {"errors": [{"code": "UNSUPPORTED", "message": "chunked uploads are not supported"}]},
            )
            owner._record(Exchange(method, target, 400, consumed, "gar-like rejection"))
            return
        throttle = fault.delay_per_mib if fault is not None and fault.action == "throttle" else 0.0
        if is_upload_body:
            with owner._lock:
                owner._inflight_uploads += 1
                owner.max_concurrent_uploads = max(owner.max_concurrent_uploads, owner._inflight_uploads)
        try:
            self._forward(method, target, fault, throttle)
        finally:
            if is_upload_body:
                with owner._lock:
                    owner._inflight_uploads -= 1

    def _gar_rejects(self, method: str, target: str) -> bool:
        path = target.split("?", 1)[0]
        if "/blobs/uploads/" not in path:
            return False
        owner = self.owner
        with owner._lock:
            if method == "PATCH":
                if self.headers.get("Content-Range") or path in owner._patched_sessions:
                    return True
                owner._patched_sessions.add(path)
            if method == "PUT" and path in owner._patched_sessions:
                return int(self.headers.get("Content-Length") or 0) > 0
        return False

    def _forward(self, method: str, target: str, fault: Fault | None, throttle: float) -> None:
        owner = self.owner
        upstream = http.client.HTTPConnection(owner.upstream, timeout=120)
        sent = 0
        try:
            upstream.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
            for key, value in self.headers.items():
                if key.lower() not in _HOP_BY_HOP:
                    upstream.putheader(key, value)
            if chunked:
                upstream.putheader("Transfer-Encoding", "chunked")
            upstream.endheaders()
            for chunk in self._body(throttle):
                sent += len(chunk)
                upstream.send(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            if chunked:
                upstream.send(b"0\r\n\r\n")
            response = upstream.getresponse()
            self.send_response(response.status)
            length = response.getheader("Content-Length")
            for key, value in response.getheaders():
                if key.lower() in _HOP_BY_HOP or key.lower() == "content-length":
                    continue
                if fault is not None and fault.action == "header" and key.lower() == fault.header[0].lower():
                    value = fault.header[1]
                self.send_header(key, value)
            body_expected = method != "HEAD" and response.status not in (204, 304)
            if length is not None:
                self.send_header("Content-Length", length)
            elif body_expected:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            corrupt = fault is not None and fault.action == "corrupt"
            if body_expected:
                while chunk := response.read(1 << 20):
                    if corrupt:
                        chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                        corrupt = False
                    self.wfile.write(chunk if length is not None else b"%x\r\n%s\r\n" % (len(chunk), chunk))
                if length is None:
                    self.wfile.write(b"0\r\n\r\n")
            owner._record(Exchange(method, target, response.status, sent, fault.action if fault else ""))
        except OSError:
            owner._record(Exchange(method, target, 0, sent, "upstream error"))
            self._break()
        finally:
            upstream.close()
