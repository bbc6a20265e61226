"""Shared test harness: real tools found on the machine, real registries on loopback.

In CI (CI=true) a missing tool fails the run instead of skipping, and any skip is turned into a
failure by ``pytest_runtest_makereport`` below.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

_EXTRA_DIRS = [
    Path.home() / "go" / "bin",
    Path(os.environ.get("GOPATH", str(Path.home() / "go"))) / "bin",
    REPO / ".cache" / "bin",
    Path("/usr/sbin"),
]
_ALIASES = {"tofu": ("tofu", "terraform")}


def find_tool(name: str) -> str | None:
    """Path of a tool on PATH or in the usual install dirs (tofu falls back to terraform)."""
    for candidate in _ALIASES.get(name, (name,)):
        found = shutil.which(candidate)
        if found:
            return found
        for d in _EXTRA_DIRS:
            p = d / candidate
            if p.is_file() and os.access(p, os.X_OK):
                return str(p)
    return None


def require_tool(name: str) -> str:
    """The tool's path; skips the test locally, fails it in CI, when it is missing."""
    path = find_tool(name)
    if path:
        return path
    msg = f"required tool {name!r} not found (install it with `bash .ci/run` or see README)"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (CI=true forbids skips): {report.longrepr}"


@pytest.fixture(scope="session")
def tools() -> Callable[[str], str]:
    """``tools("kubeconform")`` returns the tool's path (skip locally / fail in CI if missing)."""
    return require_tool


# --------------------------------------------------------------------------- registries


@dataclass
class Registry:
    """A running distribution registry on loopback."""

    host: str
    root: Path
    log: Path
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.username, self.password) if self.username and self.password else None

    def unique_repo(self, prefix: str = "test") -> str:
        """A fresh repository name, so tests sharing the registry never see each other's data."""
        return f"{prefix}/{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_registry(base: Path, *, auth: bool) -> tuple[subprocess.Popen[bytes], Registry]:
    binary = require_tool("docker-registry")
    root = base / "data"
    root.mkdir(parents=True)
    port = free_port()
    cfg = [
        "version: 0.1",
        "log: {level: warn, accesslog: {disabled: true}}",
        f"storage: {{filesystem: {{rootdirectory: {root}}}, delete: {{enabled: true}}}}",
        f"http: {{addr: 127.0.0.1:{port}, secret: test-only-secret}}",
    ]
    reg = Registry(host=f"127.0.0.1:{port}", root=root, log=base / "registry.log")
    if auth:
        htpasswd = require_tool("htpasswd")
        reg.username, reg.password = "tester", f"pw-{uuid.uuid4().hex[:10]}"
        out = subprocess.run(
            [htpasswd, "-Bbn", reg.username, reg.password], check=True, capture_output=True, text=True
        ).stdout
        (base / "htpasswd").write_text(out)
        cfg.append(f"auth: {{htpasswd: {{realm: test-registry, path: {base / 'htpasswd'}}}}}")
    (base / "config.yml").write_text("\n".join(cfg) + "\n")
    log = reg.log.open("wb")
    proc = subprocess.Popen([binary, "serve", str(base / "config.yml")], stdout=log, stderr=log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited early: {reg.log.read_text()[-2000:]}")
        with contextlib.suppress(requests.RequestException):
            status = requests.get(f"{reg.url}/v2/", timeout=1).status_code
            if status in (200, 401):
                return proc, reg
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"docker-registry did not answer on {reg.host}: {reg.log.read_text()[-2000:]}")


@contextlib.contextmanager
def running_registry(base: Path, *, auth: bool = False) -> Iterator[Registry]:
    """Start a registry with its data under ``base``; stop it on exit."""
    proc, reg = _start_registry(base, auth=auth)
    try:
        yield reg
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """An anonymous distribution registry on a free loopback port (session-wide; use unique_repo())."""
    with running_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A distribution registry with htpasswd basic auth (credentials on the fixture, never logged)."""
    with running_registry(tmp_path_factory.mktemp("auth-registry"), auth=True) as reg:
        yield reg


# --------------------------------------------------------------------------- the CLI and repo copies


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_deliver(*args: str, repo: Path | None = None) -> Result:
    """Run the ``deliver`` CLI in-process (same entry point as the console script)."""
    from delivery import cli

    cli._json_mode["on"] = False
    argv = ([f"--repo={repo}"] if repo else []) + [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def deliver() -> Callable[..., Result]:
    """``deliver("config", "check", repo=path)`` -> Result(code, out, err)."""
    return run_deliver


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A throwaway copy of the platform repo's data (environments, modelcars, clusters, tofu)."""
    dest = tmp_path / "repo"
    dest.mkdir()
    shutil.copy2(REPO / "pyproject.toml", dest / "pyproject.toml")
    for name in ("environments", "modelcars", "clusters", "tofu"):
        if (REPO / name).is_dir():
            shutil.copytree(
                REPO / name,
                dest / name,
                ignore=shutil.ignore_patterns(".terraform", "*.tfplan", ".*.tmp", ".*.old-*"),
            )
    return dest
