"""Bad input gives one clear error (what, where, fix), a non-zero exit, and nothing half-written
or pushed: bad spec fields, moving revisions, unsafe sources, missing files, registry 401/404/500,
digest mismatch, disk full."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import requests

from delivery.core import yamlio
from delivery.modelcar.busybox import BaseLayout
from faultproxy import Fault, FaultProxy
from loopback import loopback_host, start_loopback_server, stop_loopback_server
from test_modelcar_helpers import point_env_at, small_model, write_spec

pytest_plugins = ("test_modelcar_helpers",)  # fixtures: busybox_base, minilm_dir

GOOD_REV = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"


def _spec_text(base_ref: str, **override: Any) -> str:
    spec: dict[str, Any] = {
        "source": {"repo": "org/model", "revision": GOOD_REV},
        "base": base_ref,
        "repository": "models/tiny",
        "layerThreshold": 1 << 20,
    }
    spec.update(override)
    return yamlio.dump({k: v for k, v in spec.items() if v is not None})


SPEC_CASES = {
    "unknown key": ({"colour": "blue"}, "colour: unknown key"),
    "branch revision": (
        {"source": {"repo": "org/model", "revision": "main"}},
        "huggingface_hub import HfApi",
    ),
    "short commit": ({"source": {"repo": "org/model", "revision": "c9745ed"}}, "full 40-hex commit"),
    "tag revision": ({"source": {"repo": "org/model", "revision": "v1.0"}}, "branches and tags move"),
    "bad repo id": ({"source": {"repo": "no-slash", "revision": GOOD_REV}}, "source.repo"),
    "base without digest": ({"base": "busybox:1.38.0"}, "not pinned by digest"),
    "uid as text": ({"uid": "65532"}, "uid: got a string"),
    "uid zero (root)": ({"uid": 0}, "uid"),
    "uppercase repository": ({"repository": "Models/Tiny"}, "repository"),
    "include of pickles": ({"include": ["*.pt"]}, "always excluded"),
    "bad platform": ({"platforms": ["windows/amd64"]}, "linux/amd64, linux/arm64"),
    "pattern escaping the repo": ({"exclude": ["../x"]}, "without '..'"),
    "missing repository": ({"repository": None}, "repository: required key is missing"),
}


@pytest.mark.parametrize("case", sorted(SPEC_CASES))
def test_bad_spec_fields_are_reported_with_file_line_and_fix(
    case: str, deliver: Any, repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path
) -> None:
    override, expected = SPEC_CASES[case]
    path = repo_copy / "modelcars" / "bad.yaml"
    path.write_text(_spec_text(busybox_base.spec_ref, **override))
    result = deliver("modelcar", "build", "bad", "--source", str(small_model(tmp_path / "m")), repo=repo_copy)
    assert result.code == 2, result.err
    assert expected in result.err
    assert "modelcars/bad.yaml:" in result.err and "fix:" in result.err
    assert not (repo_copy / "out").exists()
    assert not (repo_copy / "modelcars" / "bad.lock.yaml").exists()


def test_invalid_yaml_and_unknown_names(deliver: Any, repo_copy: Path) -> None:
    (repo_copy / "modelcars" / "broken.yaml").write_text("source: [unclosed\n")
    broken = deliver("modelcar", "build", "broken", repo=repo_copy)
    assert broken.code == 2 and "not valid YAML" in broken.err
    unknown = deliver("modelcar", "build", "no-such-model", repo=repo_copy)
    assert unknown.code == 2 and "unknown modelcar 'no-such-model'" in unknown.err
    assert "qwen2.5-0.5b-instruct" in unknown.err  # names the known ones


SOURCE_CASES = ["missing dir", "nothing selected", "symlink outside", "control characters", "symlinked dir"]


@pytest.mark.parametrize("case", SOURCE_CASES)
def test_unsafe_or_missing_sources_are_refused(
    case: str, deliver: Any, repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path
) -> None:
    write_spec(repo_copy, "tiny", busybox_base.spec_ref, layerThreshold=1 << 20)
    src = small_model(tmp_path / "m")
    expected = {
        "missing dir": "source directory not found",
        "nothing selected": "matches include",
        "symlink outside": "points outside the source",
        "control characters": "unsafe file name",
        "symlinked dir": "symlinked directory",
    }[case]
    if case == "missing dir":
        src = tmp_path / "nope"
    elif case == "nothing selected":
        write_spec(repo_copy, "tiny", busybox_base.spec_ref, include=["*.gguf"])
    elif case == "symlink outside":
        (tmp_path / "passwd").write_text("root:x:0:0")
        (src / "vocab.txt").symlink_to(tmp_path / "passwd")
    elif case == "control characters":
        (src / "evil\nname.json").write_text("{}")
    elif case == "symlinked dir":
        (src / "linked").symlink_to(tmp_path)
    result = deliver("modelcar", "build", "tiny", "--source", str(src), repo=repo_copy)
    assert result.code == 2, result.err  # a bad source is bad input
    assert expected in result.err and "fix:" in result.err
    assert not (repo_copy / "out").exists()


def test_base_layout_missing_or_without_the_pinned_digest(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path
) -> None:
    src = small_model(tmp_path / "m")
    write_spec(repo_copy, "tiny", f"oci-layout:{tmp_path}/none@{busybox_base.index_digest}")
    missing = deliver("modelcar", "build", "tiny", "--source", str(src), repo=repo_copy)
    assert missing.code == 2 and "base OCI layout not found" in missing.err
    write_spec(repo_copy, "tiny", f"oci-layout:{busybox_base.path}@sha256:{'ab' * 32}")
    wrong = deliver("modelcar", "build", "tiny", "--source", str(src), repo=repo_copy)
    assert wrong.code == 2 and "missing from the layout" in wrong.err


def test_verify_without_a_lock_and_publish_to_an_unknown_env(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path
) -> None:
    write_spec(repo_copy, "tiny", busybox_base.spec_ref)
    src = str(small_model(tmp_path / "m"))
    nolock = deliver("modelcar", "verify", "tiny", "--source", src, repo=repo_copy)
    assert nolock.code == 2 and "has no lock yet" in nolock.err
    env = deliver(
        "modelcar",
        "publish",
        "tiny",
        "--env",
        "qa",
        "--allow-unverified-source",
        "--source",
        src,
        repo=repo_copy,
    )
    assert env.code == 2 and "unknown environment 'qa'" in env.err


def test_registry_401_pushes_nothing(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, auth_registry: Any, tmp_path: Path
) -> None:
    write_spec(repo_copy, "tiny", busybox_base.spec_ref, repository="tiny", layerThreshold=1 << 20)
    point_env_at(repo_copy, "dev", auth_registry.host)
    src = str(small_model(tmp_path / "m"))
    result = deliver(
        "modelcar", "publish", "tiny", "--env", "dev",
        "--allow-unverified-source", "--source", src, "--cache-dir", str(tmp_path / "c"),
        repo=repo_copy,
    )  # fmt: skip
    assert result.code == 1
    assert "authentication failed" in result.err
    assert auth_registry.password not in result.err
    tags = requests.get(
        f"{auth_registry.url}/v2/modelcars/tiny/tags/list", auth=auth_registry.auth, timeout=5
    )
    assert tags.status_code == 404  # no manifest, no tag
    assert not (repo_copy / "modelcars" / "tiny.lock.yaml").exists()
    # with the password (from the environment, as the Dagger function passes it) it works
    os.environ["DELIVER_REGISTRY_PASSWORD"] = auth_registry.password
    try:
        ok = deliver(
            "modelcar", "publish", "tiny", "--env", "dev", "--allow-unverified-source", "--source", src,
            "--username", auth_registry.username, "--cache-dir", str(tmp_path / "c"), "--json",
            repo=repo_copy,
        )  # fmt: skip
    finally:
        del os.environ["DELIVER_REGISTRY_PASSWORD"]
    assert ok.code == 0, ok.err
    assert auth_registry.password not in ok.out + ok.err


def test_base_missing_from_the_registry_is_a_404(
    deliver: Any, repo_copy: Path, registry: Any, tmp_path: Path
) -> None:
    write_spec(repo_copy, "tiny", f"{registry.host}/no/such-base@sha256:{'0' * 64}")
    result = deliver(
        "modelcar", "build", "tiny", "--source", str(small_model(tmp_path / "m")), "--cache-dir",
        str(tmp_path / "c"), repo=repo_copy,
    )  # fmt: skip
    assert result.code == 1
    assert "no/such-base" in result.err or "not found" in result.err.lower()
    assert not (repo_copy / "out").exists()


class _Always500(BaseHTTPRequestHandler):
    def _fail(self) -> None:
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.send_header("Retry-After", "0")
        self.end_headers()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _fail

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def broken_registry() -> Iterator[str]:
    server = start_loopback_server(_Always500)
    try:
        yield loopback_host(server)
    finally:
        stop_loopback_server(server)


def test_registry_500_fails_cleanly_after_retries(
    deliver: Any,
    repo_copy: Path,
    busybox_base: BaseLayout,
    broken_registry: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_spec(repo_copy, "tiny", busybox_base.spec_ref, layerThreshold=1 << 20)
    point_env_at(repo_copy, "dev", broken_registry)
    monkeypatch.setenv("DELIVER_REGISTRY_RETRIES", "2")
    monkeypatch.setenv("DELIVER_REGISTRY_BACKOFF", "0.01")  # the documented knob: no 20 s of backoff
    result = deliver(
        "modelcar", "publish", "tiny", "--env", "dev",
        "--allow-unverified-source", "--source", str(small_model(tmp_path / "m")),
        "--cache-dir", str(tmp_path / "c"), repo=repo_copy,
    )  # fmt: skip
    assert result.code == 1
    assert "500" in result.err
    assert "failed after 3 attempts" in result.err  # the retry count came from the environment
    assert "Traceback" not in result.err
    assert not (repo_copy / "modelcars" / "tiny.lock.yaml").exists()


def test_a_bad_retry_setting_is_one_clear_error(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_spec(repo_copy, "tiny", busybox_base.spec_ref, layerThreshold=1 << 20)
    point_env_at(repo_copy, "dev", "127.0.0.1:9")
    monkeypatch.setenv("DELIVER_REGISTRY_BACKOFF", "soon")
    result = deliver(
        "modelcar", "publish", "tiny", "--env", "dev",
        "--allow-unverified-source", "--source", str(small_model(tmp_path / "m")),
        "--cache-dir", str(tmp_path / "c"), repo=repo_copy,
    )  # fmt: skip
    assert result.code == 2, result.err
    assert "DELIVER_REGISTRY_BACKOFF='soon' is not a number of seconds" in result.err
    assert "fix:" in result.err and "Traceback" not in result.err
    assert not (repo_copy / "modelcars" / "tiny.lock.yaml").exists()


def test_parallel_bounds_concurrent_uploads_and_rejects_nonsense(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, registry: Any, tmp_path: Path
) -> None:
    src = str(small_model(tmp_path / "m"))
    bad = deliver(
        "modelcar",
        "publish",
        "tiny",
        "--env",
        "dev",
        "--allow-unverified-source",
        "--source",
        src,
        "--parallel",
        "0",
        repo=repo_copy,
    )
    assert bad.code == 2 and "--parallel" in bad.err
    for parallel in (1, 2):
        write_spec(
            repo_copy, "tiny", busybox_base.spec_ref, repository=f"par{parallel}-{tmp_path.name[-8:]}",
            layerThreshold=1 << 20,
        )  # fmt: skip
        with FaultProxy(registry.host) as proxy:
            # slow uploads (0.3 s per MiB) so that uploads allowed to overlap do overlap
            proxy.add(Fault("throttle", method="PUT", path="/blobs/uploads/", times=-1, delay_per_mib=0.3))
            point_env_at(repo_copy, "dev", proxy.host)
            ok = deliver(
                "modelcar", "publish", "tiny", "--env", "dev",
                "--allow-unverified-source", "--source", src, "--parallel", str(parallel),
                "--cache-dir", str(tmp_path / "c"), "--json", repo=repo_copy,
            )  # fmt: skip
            assert ok.code == 0, ok.err
            assert sum(b["outcome"] == "uploaded" for b in json.loads(ok.out)["blobs"]) >= 3
            assert proxy.max_concurrent_uploads == parallel


def _limit_file_size() -> None:  # runs in the child before exec
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20))


def test_disk_full_leaves_the_previous_layout_untouched(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path
) -> None:
    write_spec(repo_copy, "tiny", busybox_base.spec_ref, layerThreshold=1 << 20)
    src = small_model(tmp_path / "m", large=4 << 20)
    out = tmp_path / "layout"
    first = deliver("modelcar", "build", "tiny", "--source", str(src), "--output", str(out), repo=repo_copy)
    assert first.code == 0, first.err
    index_before = (out / "index.json").read_bytes()
    lock_before = (repo_copy / "modelcars" / "tiny.lock.yaml").read_bytes()
    (src / "model-00001-of-00002.safetensors").write_bytes(os.urandom(4 << 20))  # a new layer to write
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "ci")}
    proc = subprocess.run(
        [sys.executable, "-m", "delivery", "--repo", str(repo_copy), "modelcar", "build", "tiny",
         "--source", str(src), "--output", str(out), "--no-cache", "--json"],
        capture_output=True, text=True, preexec_fn=_limit_file_size, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "cannot write the layout: File too large" in proc.stderr
    assert json.loads(proc.stdout)["ok"] is False
    assert (out / "index.json").read_bytes() == index_before  # the old layout, whole
    assert (repo_copy / "modelcars" / "tiny.lock.yaml").read_bytes() == lock_before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".layout")] == []  # no temp left


def test_busybox_base_refuses_a_binary_of_another_architecture(
    deliver: Any, tmp_path: Path, tools: Any
) -> None:
    busybox = str(Path(tools("busybox")).resolve())
    out = tmp_path / "base"
    wrong = deliver("modelcar", "busybox-base", "--platform", "linux/arm64", "--busybox", busybox,
                    "--output", str(out))  # fmt: skip
    assert wrong.code == 2, wrong.err
    assert "busybox is built for x86-64 (linux/amd64), not linux/arm64" in wrong.err and "fix:" in wrong.err
    uneven = deliver("modelcar", "busybox-base", "--platform", "linux/amd64", "--platform", "linux/arm64",
                     "--busybox", busybox, "--output", str(out))  # fmt: skip
    assert uneven.code == 2 and "need as many --busybox binaries" in uneven.err
    not_elf = tmp_path / "script"
    not_elf.write_text("#!/bin/sh\n")
    bad = deliver("modelcar", "busybox-base", "--busybox", str(not_elf), "--output", str(out))
    assert bad.code == 2 and "not an ELF binary" in bad.err
    assert not out.exists() and list(tmp_path.glob(".base*")) == []  # nothing written


def test_half_given_registry_credentials_are_one_clear_error(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_spec(repo_copy, "tiny", busybox_base.spec_ref)
    point_env_at(repo_copy, "dev", "127.0.0.1:9")
    src = str(small_model(tmp_path / "m"))
    empty = tmp_path / "empty-password"
    empty.write_text("\n")
    cases = {
        "password, no user": ([], "s3cret-from-env", "a registry password was given without --username"),
        "user, no password": (["--username", "bob"], None, "--username bob needs a password"),
        "empty password file": (["--username", "bob", "--password-file", str(empty)], None, "is empty"),
    }
    for case, (args, env_password, expected) in cases.items():
        if env_password:
            monkeypatch.setenv("DELIVER_REGISTRY_PASSWORD", env_password)
        else:
            monkeypatch.delenv("DELIVER_REGISTRY_PASSWORD", raising=False)
        result = deliver(
            "modelcar",
            "publish",
            "tiny",
            "--env",
            "dev",
            "--allow-unverified-source",
            "--source",
            src,
            *args,
            repo=repo_copy,
        )
        assert result.code == 2, (case, result.err)
        assert expected in result.err and "fix:" in result.err, case
        assert "s3cret-from-env" not in result.out + result.err
    assert not (repo_copy / "modelcars" / "tiny.lock.yaml").exists()


def test_an_unwritable_lock_is_one_clear_error(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path
) -> None:
    write_spec(repo_copy, "tiny", busybox_base.spec_ref)
    (repo_copy / "modelcars" / "tiny.lock.yaml").mkdir()  # something that is not a file is in the way
    result = deliver(
        "modelcar", "build", "tiny", "--source", str(small_model(tmp_path / "m")), repo=repo_copy
    )
    assert result.code == 1, result.err
    assert "cannot write the lock" in result.err and "fix:" in result.err and "Traceback" not in result.err
    assert list((repo_copy / "modelcars").glob(".tiny.lock.yaml.*")) == []  # no temp file left


def test_publish_into_a_promoted_environment_names_deliver_promote(deliver: Any, repo_copy: Path) -> None:
    result = deliver("modelcar", "publish", "qwen2.5-0.5b-instruct", "--env", "prod", repo=repo_copy)
    assert result.code == 2, result.err
    assert "environment 'prod' takes artifacts only by promotion from 'staging'" in result.err
    assert "deliver modelcar publish qwen2.5-0.5b-instruct --env dev" in result.err
    assert "deliver promote --to ENV" in result.err
    assert not list((repo_copy / "clusters").glob("*/release.yaml"))  # nothing written
