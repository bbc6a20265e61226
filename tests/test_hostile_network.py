"""Hung and hostile peers where a registry should be (issue 11): each fails fast with its cause.

Gathers the cases of a peer that is not a healthy registry, all on 127.0.0.1 and all bounded:

- a TCP server that accepts connections and never answers (it stops itself after a few seconds):
  a publish fails within the ``DELIVER_REGISTRY_TIMEOUT`` and the stall budget, naming the host
  and the knob, however many retries are configured;
- bad ``DELIVER_REGISTRY_TIMEOUT`` values: one UsageError (exit 2);
- a plain ``http.server`` (404 / 501 for registry paths) and a web server answering HTML 200 on
  ``/v2/``: "does not speak the OCI distribution API" at once, not retried as "unavailable".

Driven through the real client (``RegistryClient``, ``push_image``) and the ``deliver`` CLI.
"""

from __future__ import annotations

import functools
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from delivery.core.errors import RegistryError, UsageError
from delivery.modelcar.busybox import BaseLayout
from delivery.oci.blobs import BytesBlob
from delivery.oci.push import push_image
from delivery.oci.registry import RegistryClient
from delivery.oci.spec import OCI_CONFIG, OCI_LAYER_TAR, OCI_MANIFEST
from loopback import loopback_host, start_loopback_server, stop_loopback_server
from test_modelcar_helpers import point_env_at, small_model, write_spec

pytest_plugins = ("test_modelcar_helpers",)  # fixtures: busybox_base

BOUND = 10.0  # seconds: generous upper bound of every failure below (timeout 1 s, 1 retry)


class HungServer:
    """Accepts TCP connections on 127.0.0.1 and never answers; closes them all after ``lifetime``.

    Bounded: at most ``max_connections`` accepted, the accept loop polls every 0.1 s and ends at
    ``lifetime`` (or ``stop()``), whatever happens to the test.
    """

    def __init__(self, lifetime: float = 20.0, max_connections: int = 200) -> None:
        self.lifetime = lifetime
        self.max_connections = max_connections
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.host = f"127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> HungServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        deadline = time.monotonic() + self.lifetime
        polls = int(self.lifetime / 0.1) + 10
        try:
            for _ in range(polls):
                if self._stop.is_set() or time.monotonic() > deadline:
                    break
                if len(self._held) >= self.max_connections:
                    self._stop.wait(0.1)
                    continue
                try:
                    conn, _ = self._listener.accept()
                except TimeoutError:
                    continue
                self._held.append(conn)  # read nothing, answer nothing
        finally:
            for conn in self._held:
                conn.close()
            self._listener.close()


@pytest.fixture
def hung() -> Iterator[HungServer]:
    with HungServer() as server:
        yield server


class HtmlEverywhere(BaseHTTPRequestHandler):
    """A web site on the registry's port: 200 and an HTML page for every path and method."""

    page = b"<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.page)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(self.page)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _answer

    def log_message(self, *args: Any) -> None:
        pass


class QuietFiles(SimpleHTTPRequestHandler):
    """``python -m http.server``: 404 for unknown files, 501 for POST/PUT/PATCH (no such methods)."""

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def plain_http_server(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "www").mkdir()
    server = start_loopback_server(functools.partial(QuietFiles, directory=str(tmp_path / "www")))  # type: ignore[arg-type]
    try:
        yield loopback_host(server)
    finally:
        stop_loopback_server(server)


@pytest.fixture
def html_server() -> Iterator[str]:
    server: ThreadingHTTPServer = start_loopback_server(HtmlEverywhere)
    try:
        yield loopback_host(server)
    finally:
        stop_loopback_server(server)


@pytest.fixture
def fast_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVER_REGISTRY_TIMEOUT", "1")
    monkeypatch.setenv("DELIVER_REGISTRY_RETRIES", "1")
    monkeypatch.setenv("DELIVER_REGISTRY_BACKOFF", "0.01")


def tiny_image() -> tuple[list[BytesBlob], BytesBlob, bytes]:
    layer = BytesBlob(b"layer bytes" * 100, OCI_LAYER_TAR)
    config = BytesBlob(b'{"architecture":"amd64","os":"linux"}', OCI_CONFIG)
    manifest = (
        f'{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",'
        f'"config":{{"mediaType":"{OCI_CONFIG}","digest":"{config.digest}","size":{config.size}}},'
        f'"layers":[{{"mediaType":"{OCI_LAYER_TAR}","digest":"{layer.digest}","size":{layer.size}}}]}}'
    ).encode()
    return [layer], config, manifest


def push_tiny(host: str) -> None:
    layers, config, manifest = tiny_image()
    with RegistryClient(host) as client:
        push_image(
            client,
            "models/tiny",
            layers=layers,
            config=config,
            manifest=manifest,
            manifest_media_type=OCI_MANIFEST,
            tags=["v1"],
        )


def publish(deliver: Any, repo: Path, base: BaseLayout, host: str, tmp_path: Path) -> Any:
    write_spec(repo, "tiny", base.spec_ref, layerThreshold=1 << 20)
    point_env_at(repo, "dev", host)
    return deliver(
        "modelcar", "publish", "tiny", "--env", "dev",
        "--allow-unverified-source", "--source", str(small_model(tmp_path / "m")),
        "--cache-dir", str(tmp_path / "c"), repo=repo,
    )  # fmt: skip


# --------------------------------------------------------------------------- hung peer


def test_a_hung_registry_fails_within_the_timeout_naming_host_and_knob(
    hung: HungServer, fast_fail: None
) -> None:
    start = time.monotonic()
    with pytest.raises(RegistryError) as caught:
        push_tiny(hung.host)
    elapsed = time.monotonic() - start
    text = f"{caught.value}\n{caught.value.problems[0].fix}"
    assert elapsed < BOUND, elapsed
    assert hung.host in text
    assert "timed out after 1 s" in text
    assert "DELIVER_REGISTRY_TIMEOUT" in caught.value.problems[0].fix


def test_retries_of_a_hung_peer_stop_at_the_stall_budget(
    hung: HungServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DELIVER_REGISTRY_TIMEOUT", "1")
    monkeypatch.setenv("DELIVER_REGISTRY_BACKOFF", "0.01")
    monkeypatch.setenv("DELIVER_REGISTRY_RETRIES", "50")  # the budget, not the retry count, ends it
    start = time.monotonic()
    with RegistryClient(hung.host) as client, pytest.raises(RegistryError) as caught:
        client.get_manifest("models/tiny", "v1")
    elapsed = time.monotonic() - start
    assert elapsed < BOUND, elapsed
    assert "3 attempts, 3 s waited in all" in str(caught.value)
    assert "timed out after 1 s" in str(caught.value)


def test_publish_to_a_hung_registry_fails_fast_through_the_cli(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, hung: HungServer, tmp_path: Path, fast_fail: None
) -> None:
    start = time.monotonic()
    result = publish(deliver, repo_copy, busybox_base, hung.host, tmp_path)
    elapsed = time.monotonic() - start
    assert result.code == 1, result.err
    assert elapsed < BOUND + 5, elapsed  # + building the layers
    assert hung.host in result.err
    assert "timed out after 1 s" in result.err
    assert "DELIVER_REGISTRY_TIMEOUT" in result.err
    assert "Traceback" not in result.err
    assert not (repo_copy / "modelcars" / "tiny.lock.yaml").exists()


@pytest.mark.parametrize("value", ["soon", "0", "-1", "inf"])
def test_a_bad_timeout_setting_is_one_usage_error(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVER_REGISTRY_TIMEOUT", value)
    with pytest.raises(UsageError) as caught:
        RegistryClient("127.0.0.1:9")
    assert f"DELIVER_REGISTRY_TIMEOUT={value!r}" in str(caught.value)
    assert "DELIVER_REGISTRY_TIMEOUT=60" in caught.value.problems[0].fix


def test_a_bad_timeout_setting_exits_2_through_the_cli(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DELIVER_REGISTRY_TIMEOUT", "a minute")
    result = publish(deliver, repo_copy, busybox_base, "127.0.0.1:9", tmp_path)
    assert result.code == 2, result.err
    assert "DELIVER_REGISTRY_TIMEOUT='a minute' is not a number of seconds" in result.err
    assert "fix:" in result.err and "Traceback" not in result.err


# --------------------------------------------------------------------------- not a registry


def _assert_not_a_registry(text: str, host: str) -> None:
    assert f"{host} does not speak the OCI distribution API" in text, text
    assert "Docker-Distribution-API-Version" in text
    assert "environments/<env>/config.yaml" in text
    assert "unavailable" not in text and "attempts" not in text


@pytest.mark.parametrize("server", ["plain_http_server", "html_server"])
def test_a_non_registry_is_recognised_at_once(
    server: str, request: pytest.FixtureRequest, fast_fail: None
) -> None:
    host: str = request.getfixturevalue(server)
    start = time.monotonic()
    with pytest.raises(RegistryError) as caught:
        push_tiny(host)
    assert time.monotonic() - start < BOUND
    _assert_not_a_registry(f"{caught.value}\n{caught.value.problems[0].fix}", host)


@pytest.mark.parametrize("server", ["plain_http_server", "html_server"])
def test_a_non_registry_fetch_is_recognised(server: str, request: pytest.FixtureRequest) -> None:
    host: str = request.getfixturevalue(server)
    with RegistryClient(host, retries=3, backoff=0.01) as client, pytest.raises(RegistryError) as caught:
        client.get_manifest("models/tiny", "v1")
    _assert_not_a_registry(f"{caught.value}\n{caught.value.problems[0].fix}", host)


def test_publish_to_a_plain_http_server_names_the_config_through_the_cli(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, plain_http_server: str, tmp_path: Path
) -> None:
    start = time.monotonic()  # default retries and backoff: recognised before any retry
    result = publish(deliver, repo_copy, busybox_base, plain_http_server, tmp_path)
    assert time.monotonic() - start < BOUND
    assert result.code == 1, result.err
    _assert_not_a_registry(result.err, plain_http_server)
    assert "Traceback" not in result.err


def test_a_registry_host_that_does_not_resolve_fails_at_once(
    deliver: Any, repo_copy: Path, busybox_base: Any, tmp_path: Path
) -> None:
    """A name that does not exist (the reserved .invalid TLD) is not retried for seconds."""
    write_spec(repo_copy, "tiny", busybox_base.spec_ref, layerThreshold=1 << 20)
    point_env_at(repo_copy, "dev", "registry.no-such-host.invalid:5000")
    start = time.monotonic()
    res = deliver(
        "modelcar", "publish", "tiny", "--env", "dev", "--allow-unverified-source",
        "--source", str(small_model(tmp_path / "m")), "--cache-dir", str(tmp_path / "c"), repo=repo_copy,
    )  # fmt: skip
    assert res.code == 1 and "cannot resolve the registry host 'registry.no-such-host.invalid'" in res.err
    assert "retry" not in res.err and time.monotonic() - start < 5, res.err
