"""Every OCI tool reads our modelcars correctly: tools nobody here wrote, on the layout and on the
registry copy (umoci, crane from go-containerregistry, the oras CLI, skopeo).

The real weights (all-MiniLM-L6-v2, 90 MB) in their own layer; the lock's sha256 of each file is
what every tool's copy must hold.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from delivery.core import yamlio
from delivery.modelcar.busybox import BaseLayout
from test_modelcar_helpers import point_env_at, write_spec

pytest_plugins = ("test_modelcar_helpers",)  # fixtures: busybox_base, minilm_dir

WEIGHTS = "models/model.safetensors"


def run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, cwd=cwd)
    assert proc.returncode == 0, f"{argv[0]} {argv[1]}: {proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def published(
    tmp_path_factory: pytest.TempPathFactory, busybox_base: BaseLayout, minilm_dir: Path, registry: Any
) -> dict[str, Any]:
    """minilm built into a layout and published to the loopback registry, with its lock."""
    from conftest import REPO, run_deliver

    base = tmp_path_factory.mktemp("interop")
    repo = base / "repo"
    repo.mkdir()
    (repo / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    for name in ("environments", "modelcars", "clusters"):
        import shutil

        shutil.copytree(REPO / name, repo / name)
    write_spec(repo, "minilm", busybox_base.spec_ref, repository=f"interop-{base.name}")
    point_env_at(repo, "dev", registry.host)
    cache = str(base / "cache")
    built = run_deliver(
        "modelcar", "build", "minilm", "--source", str(minilm_dir), "--cache-dir", cache, "--json", repo=repo
    )
    assert built.code == 0, built.err
    out = run_deliver(
        "modelcar", "publish", "minilm", "--env", "dev",
        "--allow-unverified-source", "--source", str(minilm_dir), "--cache-dir", cache,
        "--json", repo=repo,
    )  # fmt: skip
    assert out.code == 0, out.err
    data = json.loads(out.out)
    layout = Path(json.loads(built.out)["output"])
    tag = json.loads((layout / "index.json").read_text())["manifests"][0]["annotations"][
        "org.opencontainers.image.ref.name"
    ]
    lock = yamlio.plain(yamlio.load_file(repo / "modelcars" / "minilm.lock.yaml"))
    return {
        "digest": data["digest"],
        "ref": data["uri"].removeprefix("oci://"),
        "layout": layout,
        "tag": tag,
        "sums": {f"models/{f['path']}": f["sha256"] for f in lock["files"]},
        "tmp": base,
    }


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _files_of_layers(layout: Path, manifest: dict[str, Any]) -> dict[str, str]:
    """path -> sha256 of every regular file in the image's tar layers, read from a layout."""
    found: dict[str, str] = {}
    for layer in manifest["layers"]:
        blob = layout / "blobs" / "sha256" / layer["digest"].split(":")[1]
        with tarfile.open(blob) as tar:
            for member in tar:
                if member.isfile() and member.name.startswith("models/"):
                    fh = tar.extractfile(member)
                    assert fh is not None
                    found[member.name] = _sha256(fh.read())
    return found


def test_umoci_stat_reads_the_layout(published: dict[str, Any], tools: Any) -> None:
    """umoci stat crashed (nil pointer) on images whose history entries had no created time."""
    out = run(tools("umoci"), "stat", "--image", f"{published['layout']}:{published['tag']}").stdout
    assert "1970-01-01T00:00:00Z" in out
    assert f"deliver modelcar: {WEIGHTS}" in out  # one readable line per layer, no stray "/"
    assert "deliver modelcar busybox-base" in out


def test_crane_reads_the_registry_copy(published: dict[str, Any], tools: Any, tmp_path: Path) -> None:
    crane = tools("crane")
    ref = published["ref"]
    assert run(crane, "digest", "--insecure", ref).stdout.strip() == published["digest"]
    # full validation assumes gzip layers (ours are plain tar); --fast checks every blob's digest
    run(crane, "validate", "--insecure", "--fast", "--remote", ref)
    flat = tmp_path / "fs.tar"
    with flat.open("wb") as fh:
        subprocess.run([crane, "export", "--insecure", ref, "-"], stdout=fh, check=True, timeout=300)
    with tarfile.open(flat) as tar:
        member = tar.extractfile(WEIGHTS)
        assert member is not None
        assert _sha256(member.read()) == published["sums"][WEIGHTS]
        assert tar.getmember(WEIGHTS).mode & 0o444 == 0o444  # readable by uid 65532


def test_oras_reads_the_layout_and_the_registry_copy(
    published: dict[str, Any], tools: Any, tmp_path: Path
) -> None:
    oras = tools("oras")
    layout_ref = f"{published['layout']}:{published['tag']}"
    fetched = run(oras, "manifest", "fetch", "--oci-layout", layout_ref).stdout
    assert _sha256(fetched.encode()) == published["digest"]
    # oras pull writes only file blobs (layers titled org.opencontainers.image.title): a modelcar's
    # layers are tar layers, so it must write nothing, never a tar under a weight file's name
    pulled = tmp_path / "pulled"
    res = run(oras, "pull", "--plain-http", published["ref"], "-o", str(pulled))
    assert "Skipped pulling layers without file name" in res.stdout + res.stderr
    assert not pulled.exists() or not any(pulled.rglob("*.safetensors"))
    # oras copy takes the whole image, digest for digest, into a layout whose tar layers hold the files
    copy = tmp_path / "copy"
    run(oras, "copy", "--from-plain-http", published["ref"], "--to-oci-layout", f"{copy}:{published['tag']}")
    index = json.loads((copy / "index.json").read_text())
    assert index["manifests"][0]["digest"] == published["digest"]
    manifest = json.loads((copy / "blobs" / "sha256" / published["digest"].split(":")[1]).read_bytes())
    assert _files_of_layers(copy, manifest) == published["sums"]
    assert all(
        "org.opencontainers.image.title" not in (layer.get("annotations") or {})
        for layer in manifest["layers"]
    )


def test_skopeo_keeps_the_digest_only_when_told(
    published: dict[str, Any], tools: Any, tmp_path: Path
) -> None:
    """A plain skopeo copy to an OCI layout keeps our uncompressed layers; to a registry without
    --preserve-digests it may compress them (README): with it, the digest is ours."""
    skopeo = tools("skopeo")
    dest = tmp_path / "skopeo"
    run(
        skopeo, "copy", "--preserve-digests", "--src-tls-verify=false", f"docker://{published['ref']}",
        f"oci:{dest}:copy",
    )  # fmt: skip
    index = json.loads((dest / "index.json").read_text())
    assert index["manifests"][0]["digest"] == published["digest"]
