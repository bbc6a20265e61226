"""The harness itself: registries really serve blobs, auth really refuses, tools are found."""

from __future__ import annotations

import hashlib
import os

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
