"""The harness itself: registries really serve blobs, auth really refuses, tools are found."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from conftest import IN_CI, Registry, find_tool


def _push_blob(reg: Registry, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = requests.post(f"{reg.url}/v2/{repo}/blobs/uploads/", auth=reg.auth, timeout=10)
    assert start.status_code == 202, start.text
    location = start.headers["Location"]
    if location.startswith("/"):
        location = reg.url + location
    sep = "&" if "?" in location else "?"
    put = requests.put(
        f"{location}{sep}digest={digest}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        auth=reg.auth,
        timeout=10,
    )
    assert put.status_code == 201, put.text
    return digest


def test_registry_push_and_pull_blob(registry: Registry) -> None:
    repo = registry.unique_repo()
    data = os.urandom(100_000)
    digest = _push_blob(registry, repo, data)
    head = requests.head(f"{registry.url}/v2/{repo}/blobs/{digest}", timeout=10)
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == digest
    got = requests.get(f"{registry.url}/v2/{repo}/blobs/{digest}", timeout=10)
    assert got.content == data


def test_auth_registry_refuses_anonymous_and_accepts_credentials(auth_registry: Registry) -> None:
    anon = requests.get(f"{auth_registry.url}/v2/", timeout=10)
    assert anon.status_code == 401
    assert "Basic" in anon.headers.get("WWW-Authenticate", "")
    wrong = requests.get(f"{auth_registry.url}/v2/", auth=("tester", "wrong"), timeout=10)
    assert wrong.status_code == 401
    repo = auth_registry.unique_repo()
    digest = _push_blob(auth_registry, repo, b"hello")
    got = requests.get(f"{auth_registry.url}/v2/{repo}/blobs/{digest}", auth=auth_registry.auth, timeout=10)
    assert got.content == b"hello"


@pytest.mark.parametrize("tool", ["kubeconform", "umoci", "skopeo", "runc", "tofu", "git", "docker-registry"])
def test_required_tools_are_installed(tool: str, tools) -> None:  # type: ignore[no-untyped-def]
    path = tools(tool)
    assert os.access(path, os.X_OK)


def test_missing_tool_is_not_found_and_tofu_falls_back_to_terraform() -> None:
    assert find_tool("definitely-not-a-tool-xyz") is None
    tofu = find_tool("tofu")
    if tofu is None:
        assert not IN_CI, "CI=true needs tofu or terraform"
    else:
        assert os.path.basename(tofu) in {"tofu", "terraform"}


SKIPPING_TESTS = """
import pytest

def test_skipped_in_the_body():
    pytest.skip("tool missing")

@pytest.mark.skipif(True, reason="marker")
def test_skipped_by_a_marker():
    pass

def test_passes():
    pass
"""
SKIPPED_MODULE = """
import pytest

pytest.importorskip("no_such_module_for_tests")

def test_never_collected():
    pass
"""


@pytest.mark.parametrize(
    ("source", "ci", "code", "summary"),
    [
        (SKIPPING_TESTS, "true", 1, "1 failed, 1 passed, 1 error"),
        (SKIPPING_TESTS, "", 0, "1 passed, 2 skipped"),
        (SKIPPED_MODULE, "true", 2, "1 error"),
        (SKIPPED_MODULE, "", 5, "1 skipped"),
    ],
    ids=["tests-ci", "tests-local", "module-ci", "module-local"],
)
def test_ci_turns_every_skip_into_a_failure(
    tmp_path: Path, source: str, ci: str, code: int, summary: str
) -> None:
    # the suite's own conftest hooks, loaded as a plugin into a throwaway suite
    (tmp_path / "test_throwaway.py").write_text(source)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(Path(__file__).parent)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-q", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == code, proc.stdout
    assert summary in proc.stdout.strip().splitlines()[-1], proc.stdout
    assert ("skipped in CI (CI=true forbids skips)" in proc.stdout) == bool(ci), proc.stdout
