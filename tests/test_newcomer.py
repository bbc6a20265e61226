"""Newcomer dead ends, each shown by the message it now gives.

- ``bash .ci/demo`` from a fresh clone (no ``../shared`` beside it): the demo finds its schema
  sources as ``deliver schemas`` does and, online, downloads the pinned files (sha256-checked) from a
  loopback mirror of them (``$DELIVER_SCHEMA_MIRROR``); without them one error says what is missing
  and every way to provide it;
- a modelcar build whose hub cannot be reached fails in a second, naming the real cause (DNS,
  refused) and the real fixes, never a variable that is not set;
- earlier fixes without a test showing their message: a failed fetch does not say "blobs already
  pushed are skipped", the revision hint names no ``huggingface-cli``;
- ``deliver root --write --check`` is a usage error.

The hub and the upstream schema hosts cannot be reached here: a refused loopback port, the reserved
``.invalid`` TLD and a loopback HTTP server stand in for them; everything else is real.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, free_port, require_tool
from delivery.core.console import ProgressReporter
from delivery.core.errors import RegistryError, SourceError
from delivery.demo.schemas import SchemaSource, schema_stage
from delivery.oci.blobs import BytesBlob
from delivery.oci.registry import RegistryClient
from delivery.schemas import sources as schema_sources
from delivery.schemas.sources import BUNDLE_FILE, MIRROR_ENV, SOURCE_DIR_ENV, pinned_files
from loopback import loopback_host, start_loopback_server, stop_loopback_server
from test_modelcar_helpers import MINILM_REPO, MINILM_REVISION, hf_cache_from_dir, write_spec
from test_schemas import hermetic_schemas

pytest_plugins = ("test_modelcar_helpers",)  # fixtures: busybox_base, minilm_dir

PINS = pinned_files()
SCHEMA_ENV = (SOURCE_DIR_ENV, schema_sources.CACHE_DIR_ENV, MIRROR_ENV)


# --------------------------------------------------------------------------- a fresh clone, a mirror


@pytest.fixture
def clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repo's tree where a public clone would be: nothing beside it (no ../shared),
    no schema variables set, an empty cache."""
    dest = tmp_path / "public" / "llm-platform"
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", ".gitattributes"):
        shutil.copy2(REPO / name, dest / name)
    ignore = shutil.ignore_patterns(".terraform", "*.tfplan", ".*.tmp", ".*.old-*", ".cache")
    for name in ("environments", "modelcars", "clusters", "tofu"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    for var in SCHEMA_ENV:
        monkeypatch.delenv(var, raising=False)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["llm-platform"]
    assert not (dest.parent / "shared").exists() and not (dest / ".cache").exists()
    return dest


def mirror_tree(root: Path) -> Path:
    """The pinned files laid out as ``<host>/<path>`` of their pinned URLs (what a mirror serves)."""
    source = hermetic_schemas()
    for pin in PINS:
        url = urllib.parse.urlsplit(pin.url)
        target = root / url.netloc / url.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / pin.path, target)
    return root


class _Recording(http.server.SimpleHTTPRequestHandler):
    served: list[str]

    def log_message(self, *_: object) -> None:
        pass

    def do_GET(self) -> None:
        self.served.append(self.path)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client that stopped reading
            super().do_GET()


@contextlib.contextmanager
def serving(root: Path) -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on loopback serving ``root``: (base URL, the paths it was asked for)."""
    served: list[str] = []
    handler = type("Handler", (_Recording,), {"served": served})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    with serving(mirror_tree(tmp_path / "mirror")) as running:
        yield running


def _pinned_paths() -> set[str]:
    return {urllib.parse.urlsplit(p.url).netloc + urllib.parse.urlsplit(p.url).path for p in PINS}


# --------------------------------------------------------------------------- 1. the demo's schemas


def test_demo_from_a_fresh_clone_downloads_the_pinned_schema_sources(
    deliver: Any, clone: Path, mirror: tuple[str, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole demo from a clone with no ../shared: its schema sources come from the (loopback)
    mirror of the pinned URLs, every one checked against its pin, then it runs to the end."""
    for tool in ("docker-registry", "busybox", "kubeconform", "git"):
        require_tool(tool)
    base, served = mirror
    monkeypatch.setenv(MIRROR_ENV, base)
    res = deliver("demo", "--output", str(tmp_path / "demo"), "--json", repo=clone)
    assert res.code == 0, res.err
    out = json.loads(res.out)
    assert out["ok"] and out["environments"] == ["dev", "prod", "staging"] and out["resources_validated"] > 0
    assert out["promoted"].endswith("@" + out["digest"])
    assert {p.lstrip("/") for p in served} == _pinned_paths() and len(served) == len(PINS)  # each once
    (bundle,) = (p for p in (clone / ".cache" / "schemas").iterdir() if (p / BUNDLE_FILE).is_file())
    files = json.loads((bundle / BUNDLE_FILE).read_text())["sources"]["files"]
    assert {f["from"] for f in files} == {"mirror"} and len(files) == len(PINS)
    assert not (clone.parent / "shared").exists()


def test_the_demo_schema_stage_says_what_it_downloaded_and_reuses_it(
    clone: Path,
    mirror: tuple[str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base, served = mirror
    monkeypatch.setenv(MIRROR_ENV, base)
    with ProgressReporter() as reporter:
        first = schema_stage(clone, ["1.34"], SchemaSource(), reporter)
    assert len(served) == len(PINS)
    err = capsys.readouterr().err
    assert f"schemas: {len(PINS)} pinned source files downloaded from the mirror ${MIRROR_ENV}" in err
    assert f"schemas: bundle {first.key} (" in err
    shutil.rmtree(first.root)  # only the downloaded sources are left in the cache
    again = schema_stage(clone, ["1.34"], SchemaSource(offline=True), ProgressReporter(quiet=True))
    assert again.key == first.key and len(served) == len(PINS)  # offline, from the download cache
    assert {f["from"] for f in again.provenance["files"]} == {"cache"}


def _demo_fails(deliver: Any, clone: Path, tmp_path: Path, *extra: str) -> str:
    start = time.monotonic()
    res = deliver("demo", "--output", str(tmp_path / "demo"), *extra, repo=clone)
    took = time.monotonic() - start
    assert res.code == 1, res.err
    assert took < 5, f"{took:.1f} s"
    assert not (tmp_path / "demo").exists()  # failed before building anything
    err: str = res.err
    return err


def _names_every_way_out(err: str) -> None:
    assert f"{len(PINS)} of {len(PINS)} pinned files are missing: catalog/LICENSE" in err
    assert "there is none at ../shared/kube-schemas beside the repo" in err
    for way in (
        "--schema-source DIR",
        f"${SOURCE_DIR_ENV}=DIR",
        "deliver schemas --source DIR",
        "deliver schemas --save-sources DIR",
        "network access to raw.githubusercontent.com",
        f"${MIRROR_ENV}",
        str(schema_sources.PINS_FILE),
    ):
        assert way in err, way
    assert "Traceback" not in err


def test_the_demo_without_reachable_sources_fails_at_once_naming_every_way_out(
    deliver: Any, clone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv(MIRROR_ENV, f"http://{refused}")
    err = _demo_fails(deliver, clone, tmp_path)
    _names_every_way_out(err)
    assert f"they cannot be downloaded: {refused} refused the connection" in err

    monkeypatch.setenv(MIRROR_ENV, "http://kube-schemas.no-such-host.invalid")
    err = _demo_fails(deliver, clone, tmp_path)
    _names_every_way_out(err)
    assert "the host name kube-schemas.no-such-host.invalid does not resolve (DNS: " in err

    err = _demo_fails(deliver, clone, tmp_path, "--offline")
    _names_every_way_out(err)
    assert "not available offline (--offline: nothing is downloaded)" in err and "drop --offline" in err
    assert not any((clone / ".cache" / "schemas").rglob("*.json"))


def test_a_mirror_serving_other_bytes_is_refused(
    clone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = mirror_tree(tmp_path / "mirror")
    victim = next(root.rglob("appproject_v1alpha1.json"))
    victim.write_text(victim.read_text().replace("AppProject", "AppProjekt"))
    with serving(root) as (base, _):
        monkeypatch.setenv(MIRROR_ENV, base)
        with pytest.raises(SourceError) as err:
            schema_stage(clone, ["1.34"], SchemaSource(), ProgressReporter(quiet=True))
    text = err.value.render()
    assert "downloaded sha256" in text and "does not match the pin" in text
    assert f"/raw.githubusercontent.com/datreeio/CRDs-catalog/{schema_sources.CATALOG_COMMIT}" in text
    assert f"the mirror (${MIRROR_ENV}) serves other bytes than https://raw.githubusercontent.com" in text
    pin = next(p for p in PINS if p.path.endswith("appproject_v1alpha1.json"))
    assert not (clone / ".cache/schemas/sources" / pin.sha256).exists()
    assert not any((clone / ".cache/schemas").glob(f"*/{BUNDLE_FILE}"))


class _Trickle(http.server.BaseHTTPRequestHandler):
    def log_message(self, *_: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        with contextlib.suppress(OSError):
            for _ in range(1000):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.05)


class _Undeclared(http.server.BaseHTTPRequestHandler):
    """Answers 5000 bytes without a Content-Length (the end is the connection's close)."""

    def log_message(self, *_: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(b"x" * 5000)


def test_schema_downloads_are_bounded_in_size_and_time(
    clone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def stage() -> str:
        start = time.monotonic()
        with pytest.raises(SourceError) as err:
            schema_stage(clone, ["1.34"], SchemaSource(), ProgressReporter(quiet=True))
        assert time.monotonic() - start < 5
        return err.value.render()

    with serving(mirror_tree(tmp_path / "mirror")) as (base, _):  # too large: refused, never stored
        monkeypatch.setenv(MIRROR_ENV, base)
        monkeypatch.setattr(schema_sources, "MAX_SOURCE_BYTES", 1000)
        text = stage()
        assert "downloading them failed: http://127.0.0.1:" in text
        assert "/raw.githubusercontent.com/datreeio/CRDs-catalog/" in text
        assert "declares 1066 bytes, more than the limit of 1000 bytes" in text  # refused unread
    undeclared = start_loopback_server(_Undeclared)  # no Content-Length: counted while read
    try:
        monkeypatch.setenv(MIRROR_ENV, f"http://{loopback_host(undeclared)}")
        assert "sends more than the limit of 1000 bytes" in stage()
    finally:
        stop_loopback_server(undeclared)
    assert not (clone / ".cache/schemas/sources").exists()
    monkeypatch.undo()
    for var in SCHEMA_ENV:
        monkeypatch.delenv(var, raising=False)

    silent = socket.socket()  # accepts connections (the kernel's backlog), never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        host = f"127.0.0.1:{silent.getsockname()[1]}"
        monkeypatch.setenv(MIRROR_ENV, f"http://{host}")
        monkeypatch.setattr(schema_sources, "FETCH_TIMEOUT", 0.5)
        assert f"they cannot be downloaded: no answer from {host} within 0.5 s" in stage()
    finally:
        silent.close()

    trickle = start_loopback_server(_Trickle)  # answers, a byte at a time: the per-file deadline
    try:
        monkeypatch.setenv(MIRROR_ENV, f"http://{loopback_host(trickle)}")
        monkeypatch.setattr(schema_sources, "FETCH_DEADLINE", 1.0)
        assert "took longer than 1 s" in stage()
    finally:
        stop_loopback_server(trickle)


def test_saved_sources_serve_the_demo_offline_through_its_option(
    deliver: Any, clone: Path, mirror: tuple[str, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`deliver schemas --save-sources DIR` (where the pinned URLs are reachable) writes a hermetic
    copy; `deliver demo --schema-source DIR` (here: its schema stage) reads it without network."""
    base, _ = mirror
    monkeypatch.setenv(MIRROR_ENV, base)
    saved = tmp_path / "kube-schemas"
    res = deliver("schemas", "--save-sources", str(saved), "--json", repo=clone)
    assert res.code == 0, res.err
    assert json.loads(res.out)["savedSources"] == {"path": str(saved), "files": len(PINS)}
    assert {str(p.relative_to(saved)) for p in saved.rglob("*") if p.is_file()} == {p.path for p in PINS}
    monkeypatch.delenv(MIRROR_ENV)

    other = tmp_path / "another-clone"
    shutil.copytree(clone, other, ignore=shutil.ignore_patterns(".cache"))
    bundle = schema_stage(other, ["1.34"], SchemaSource(saved, offline=True), ProgressReporter(quiet=True))
    assert {f["from"] for f in bundle.provenance["files"]} == {"source"}

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine\n")
    refused = deliver("schemas", "--save-sources", str(tmp_path / "notes"), repo=clone)
    assert refused.code == 2 and "holds files that are not pinned schema sources (todo.txt)" in refused.err
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine\n"
    missing = deliver("demo", "--schema-source", str(tmp_path / "kube-shemas"), repo=clone)
    assert missing.code == 2 and "--schema-source" in missing.err and "does not exist" in missing.err


def test_a_bad_schema_mirror_or_hermetic_copy_setting_is_a_usage_error(
    deliver: Any, clone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MIRROR_ENV, "ftp://mirror.example/kube")
    res = deliver("schemas", repo=clone)
    assert res.code == 2 and f"${MIRROR_ENV}: not an http(s) base URL: 'ftp://mirror.example/kube'" in res.err
    monkeypatch.delenv(MIRROR_ENV)
    monkeypatch.setenv(SOURCE_DIR_ENV, str(tmp_path / "kube-shemas"))
    res = deliver("schemas", repo=clone)
    assert res.code == 2 and f"${SOURCE_DIR_ENV} ({tmp_path / 'kube-shemas'})" in res.err, res.err
    assert "is not a directory" in res.err


# --------------------------------------------------------------------------- 2. an unreachable hub


def _build_in_a_process(repo: Path, name: str, env: dict[str, str], *extra: str) -> tuple[int, str, float]:
    """``deliver modelcar build`` as a user runs it: its own process (huggingface_hub reads
    HF_ENDPOINT when it is imported), with a fresh HF cache."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "delivery", "--repo", str(repo), "modelcar", "build", name, *extra],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=120,
        check=False,
    )
    return proc.returncode, proc.stderr, time.monotonic() - start


@pytest.mark.parametrize("hub", ["refused", "unresolvable"])
def test_a_build_whose_hub_cannot_be_reached_fails_at_once_with_the_real_cause(
    repo_copy: Path, tmp_path: Path, hub: str
) -> None:
    endpoint = f"127.0.0.1:{free_port()}" if hub == "refused" else "hub.no-such-host.invalid"
    cause = (
        f"{endpoint} refused the connection"
        if hub == "refused"
        else "the host name hub.no-such-host.invalid does not resolve (DNS: "
    )
    scheme = "http" if hub == "refused" else "https"
    code, err, took = _build_in_a_process(
        repo_copy,
        "qwen2.5-0.5b-instruct",
        {"HF_HOME": str(tmp_path / "hf-home"), "HF_ENDPOINT": f"{scheme}://{endpoint}"},
        "--output",
        str(tmp_path / "out"),
    )
    assert code == 1, err
    assert took < 5, f"{took:.1f} s: {err}"
    assert f"the hub at {endpoint} could not be reached: {cause}" in err
    assert "is not (completely) in the HF cache" in err
    for fix in ("network access to the hub", "--source DIR", "build with --offline", "$HF_ENDPOINT"):
        assert fix in err, fix
    assert "Retrying" not in err and "HF_HUB_OFFLINE" not in err and "Traceback" not in err


def test_offline_errors_name_only_the_switch_that_is_set(
    deliver: Any, repo_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    argv = ("modelcar", "build", "qwen2.5-0.5b-instruct", "--hf-cache", str(tmp_path / "hf"))
    flag = deliver(*argv, "--offline", repo=repo_copy)
    assert flag.code == 1 and "the hub is not used (offline: --offline;" in flag.err, flag.err
    assert "network access to huggingface.co (without --offline)" in flag.err
    assert "HF_HUB_OFFLINE" not in flag.err

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    env = deliver(*argv, repo=repo_copy)
    assert env.code == 1 and "the hub is not used (offline: HF_HUB_OFFLINE=1;" in env.err, env.err
    assert "network access to huggingface.co (with HF_HUB_OFFLINE unset)" in env.err
    assert "--offline" not in env.err


def test_an_unreachable_hub_still_builds_from_the_hf_cache_at_once(
    deliver: Any,
    repo_copy: Path,
    busybox_base: Any,
    minilm_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hub being down is no reason to fail, nor to wait, when the HF cache holds the revision:
    with the hub's listing (verified), and without it (unverified, as huggingface_hub would serve it
    after its retries)."""
    cache = tmp_path / "hf"
    hf_cache_from_dir(minilm_dir, cache, MINILM_REPO, MINILM_REVISION)
    write_spec(repo_copy, "minilm", busybox_base.spec_ref)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")

    def build(out: str) -> dict[str, Any]:
        start = time.monotonic()
        res = deliver(
            "modelcar", "build", "minilm", "--hf-cache", str(cache), "--cache-dir", str(tmp_path / "d"),
            "--output", str(tmp_path / out), "--json", repo=repo_copy,
        )  # fmt: skip
        assert res.code == 0, res.err
        assert time.monotonic() - start < 15, res.err
        data: dict[str, Any] = json.loads(res.out)
        return data

    verified = build("with-listing")
    assert verified["files"] == 13 and verified["source"]["verified"] is True
    bare = tmp_path / "hf-without-listing"  # a path huggingface_hub has not read (nor memoized) yet
    shutil.copytree(cache, bare, symlinks=True)
    shutil.rmtree(bare / ("models--" + MINILM_REPO.replace("/", "--")) / "trees")
    cache = bare
    unverified = build("without-listing")
    assert unverified["files"] == 13 and unverified["source"]["verified"] is False


# --------------------------------------------------------------------------- 3. earlier fixes


class _Unavailable(http.server.BaseHTTPRequestHandler):
    """A registry that answers 503 to everything."""

    def log_message(self, *_: object) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(503)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _answer


def test_a_failed_fetch_does_not_say_blobs_already_pushed_are_skipped() -> None:
    """Only a push names the skipped blobs, whatever the repository is called."""
    server = start_loopback_server(_Unavailable)
    repo = "models/pushgateway-mountain-upload"  # words of a push in a repository name
    try:
        with RegistryClient(loopback_host(server), retries=1, backoff=0.01) as client:
            with pytest.raises(RegistryError) as fetch:
                client.get_manifest(repo, "latest")
            with pytest.raises(RegistryError) as push:
                client.push_blob(repo, BytesBlob(b"weights"))
    finally:
        stop_loopback_server(server)
    assert f"fetch of manifest {repo}:latest failed after 2 attempts" in fetch.value.render()
    assert "blobs already pushed" not in fetch.value.render()
    assert "run again (blobs already pushed are skipped)" in push.value.render()


def test_the_revision_hint_names_no_cli_that_does_not_exist(deliver: Any, repo_copy: Path) -> None:
    spec = repo_copy / "modelcars" / "qwen2.5-0.5b-instruct.yaml"
    text = spec.read_text()
    spec.write_text(text.replace("revision: 7ae557604adf67be50417f59c2c2f167def9a775", "revision: main"))
    res = deliver("modelcar", "build", "qwen2.5-0.5b-instruct", repo=repo_copy)
    assert res.code == 2 and "revision must be a full 40-hex commit, got 'main'" in res.err, res.err
    assert "'Files and versions' > 'History' page" in res.err
    assert "HfApi().model_info('<repo>', revision='<branch>').sha" in res.err
    assert "huggingface-cli" not in res.err


# --------------------------------------------------------------------------- 4. deliver root


def test_root_write_and_check_together_is_a_usage_error_that_writes_nothing(
    deliver: Any, repo_copy: Path
) -> None:
    cfg = repo_copy / "environments/staging/config.yaml"
    cfg.write_text(cfg.read_text().replace("profile: llm-gateway", "profile: serving"))
    root = repo_copy / "clusters/staging/root.yaml"
    before = root.read_bytes()
    res = deliver("root", "--env", "staging", "--write", "--check", repo=repo_copy)
    assert res.code == 2 and "--write and --check exclude each other" in res.err and "fix:" in res.err
    assert root.read_bytes() == before  # --write was not silently done (nor silently ignored)
    assert deliver("root", "--env", "staging", "--check", repo=repo_copy).code == 1  # it is stale
