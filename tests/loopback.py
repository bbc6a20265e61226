"""Run a small HTTP server on loopback in a test (fault proxy, token services, broken registries)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def start_loopback_server(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """Serve ``handler`` on 127.0.0.1 at a free port, from a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stop_loopback_server(server: ThreadingHTTPServer | None) -> None:
    """Stop serving and close the socket (no-op for None)."""
    if server is not None:
        server.shutdown()
        server.server_close()


def loopback_host(server: ThreadingHTTPServer) -> str:
    """``127.0.0.1:PORT`` of a running loopback server."""
    return f"127.0.0.1:{server.server_address[1]}"
