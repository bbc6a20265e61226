"""A throwaway distribution registry on loopback (Debian package docker-registry).

Used by ``deliver demo`` (the main job with no cloud account) and by the test fixtures, so both
start it the same way: free port, data in a given directory, optional htpasswd basic auth.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from delivery.core.errors import ToolError


@dataclass
class LocalRegistry:
    """A running registry: ``host`` is ``127.0.0.1:PORT``; ``auth`` is (user, password) or None."""

    host: str
    root: Path
    log: Path
    username: str | None = None
    password: str | None = None
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.username, self.password) if self.username and self.password else None

    def __repr__(self) -> str:
        return (
            f"LocalRegistry(host={self.host!r}, root={str(self.root)!r}, auth={'yes' if self.auth else 'no'})"
        )


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if not found:
        raise ToolError(f"{name} not found", fix=f"apt-get install {package} (or run: bash .ci/install)")
    return found


@contextlib.contextmanager
def local_registry(
    base: Path, *, auth: bool = False, startup_timeout: float = 20.0, binary: str | None = None
) -> Iterator[LocalRegistry]:
    """Start a registry with config and data under ``base``; stop it on exit.

    ``binary`` is any distribution registry executable (default: Debian's ``docker-registry``).
    """
    binary = binary or _tool("docker-registry", "docker-registry")
    root = base / "data"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    reg = LocalRegistry(host=f"127.0.0.1:{port}", root=root, log=base / "registry.log")
    cfg = [
        "version: 0.1",
        "log: {level: warn, accesslog: {disabled: true}}",
        f"storage: {{filesystem: {{rootdirectory: {root}}}, delete: {{enabled: true}}}}",
        f"http: {{addr: 127.0.0.1:{port}, secret: {secrets.token_hex(16)}}}",
    ]
    if auth:
        htpasswd = _tool("htpasswd", "apache2-utils")
        reg.username, reg.password = "tester", secrets.token_urlsafe(12)
        entry = subprocess.run(
            [htpasswd, "-Bbn", reg.username, reg.password], check=True, capture_output=True, text=True
        ).stdout
        (base / "htpasswd").write_text(entry)
        cfg.append(f"auth: {{htpasswd: {{realm: local-registry, path: {base / 'htpasswd'}}}}}")
    (base / "config.yml").write_text("\n".join(cfg) + "\n")
    with reg.log.open("wb") as log:
        # distribution v3 exports OpenTelemetry traces by default; a throwaway registry has no collector
        env = {**os.environ, "OTEL_TRACES_EXPORTER": "none"}
        proc = subprocess.Popen([binary, "serve", str(base / "config.yml")], stdout=log, stderr=log, env=env)
    reg.pid = proc.pid
    try:
        _wait_ready(proc, reg, startup_timeout)
        yield reg
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(proc: subprocess.Popen[bytes], reg: LocalRegistry, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ToolError(
                f"docker-registry exited at start-up: {reg.log.read_text()[-1000:]}",
                where=str(reg.log),
                fix="check the log; is the port or the data directory in use?",
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{reg.url}/v2/", timeout=1).status_code in (200, 401):
                return
        time.sleep(0.05)
    proc.kill()
    raise ToolError(f"docker-registry did not answer on {reg.host} within {timeout:.0f}s", where=str(reg.log))
