"""Modelcar builds to an OCI layout: reproducible bytes, deterministic tar, lock, no-op rebuilds, verify."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from delivery.core import yamlio
from delivery.modelcar import tarlayer
from delivery.modelcar.busybox import BaseLayout, build_busybox_index
from delivery.modelcar.tarlayer import LayerFile, TarLayer
from test_modelcar_helpers import (
    fake_arm64_busybox_for_tests,
    point_env_at,
    sha256_file,
    small_model,
    write_spec,
)

pytest_plugins = ("test_modelcar_helpers",)  # fixtures: busybox_base, minilm_dir

THRESHOLD = 1 << 20


def _build(
    deliver: Any, repo: Path, name: str, source: Path, *extra: str, cache: Path | None = None
) -> dict[str, Any]:
    args = ["modelcar", "build", name, "--source", str(source), "--json"]
    args += ["--cache-dir", str(cache or repo / ".cache-deliver")]
    result = deliver(*args, *extra, repo=repo)
    assert result.code == 0, result.err
    data: dict[str, Any] = json.loads(result.out)
    return data


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()


def _manifest(layout: Path) -> dict[str, Any]:
    index = json.loads((layout / "index.json").read_text())
    return json.loads(_blob(layout, index["manifests"][0]["digest"]))  # type: ignore[no-any-return]


def test_layout_is_a_valid_oci_image_skopeo_and_umoci_read(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path, tools: Any
) -> None:
    src = small_model(tmp_path / "model")
    write_spec(repo_copy, "tiny", busybox_base.spec_ref, layerThreshold=THRESHOLD)
    out = _build(deliver, repo_copy, "tiny", src)
    layout = Path(out["output"])
    tag = "c9745ed1d9f2"
    inspect = subprocess.run(
        [tools("skopeo"), "inspect", f"oci:{layout}:{tag}"], check=True, capture_output=True, text=True
    )
    info = json.loads(inspect.stdout)
    assert info["Digest"] == out["digest"]
    assert info["Labels"]["org.opencontainers.image.revision"] == "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"
    # base layer + the small-files layer + one layer per large file
    assert len(info["Layers"]) == 1 + 1 + 2
    bundle = tmp_path / "bundle"
    subprocess.run([tools("umoci"), "unpack", "--image", f"{layout}:{tag}", str(bundle)], check=True)
    models = bundle / "rootfs" / "models"
    for name in ("config.json", "sub/extra.txt", "model-00001-of-00002.safetensors"):
        assert sha256_file(models / name) == sha256_file(src / name)
    assert not (models / "ignored.pt").exists()  # *.pt is never shipped
    assert (models / "config.json").stat().st_mode & 0o777 == 0o644
    assert (models / "sub").stat().st_mode & 0o777 == 0o755


def test_manifest_and_config_are_canonical_and_timeless(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path
) -> None:
    src = small_model(tmp_path / "model")
    write_spec(repo_copy, "tiny", busybox_base.spec_ref, layerThreshold=THRESHOLD, uid=65532)
    layout = Path(_build(deliver, repo_copy, "tiny", src)["output"])
    manifest = _manifest(layout)
    raw_config = _blob(layout, manifest["config"]["digest"])
    config = json.loads(raw_config)
    assert raw_config == json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    assert "created" not in config
    assert all(h["created"] == "1970-01-01T00:00:00Z" for h in config["history"])  # umoci stat needs one
    assert len([h for h in config["history"] if not h.get("empty_layer")]) == len(manifest["layers"])
    assert "Entrypoint" not in config["config"]  # KServe's args must run as given
    assert config["config"]["User"] == "65532:65532"
    assert config["rootfs"]["diff_ids"][1:] == [layer["digest"] for layer in manifest["layers"][1:]]
    assert manifest["annotations"]["org.opencontainers.image.source"].endswith("all-MiniLM-L6-v2")
    assert all(layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar" for layer in manifest["layers"])


def test_a_write_error_in_the_writing_thread_reaches_the_caller_and_no_thread_is_left(tmp_path: Path) -> None:
    """The layer pass hashes and writes on threads of its own: their errors are the caller's."""
    big = tmp_path / "w.bin"
    big.write_bytes(os.urandom(9 << 20))
    layer = TarLayer((LayerFile("models/w.bin", big, big.stat().st_size),))

    class Full:
        written = 0

        def write(self, data: bytes) -> int:
            if self.written > 3 << 20:
                raise OSError(28, "No space left on device")
            self.written += len(data)
            return len(data)

    threads = threading.active_count()
    with pytest.raises(OSError, match="No space left on device"):
        layer.digest_and_write(Full())  # type: ignore[arg-type]
    assert threading.active_count() == threads
    digest, sums, _ = layer.digest_and_write(None)  # hash only: the same digest as the written pass
    with (tmp_path / "layer.tar").open("wb") as fh:
        assert layer.digest_and_write(fh)[:2] == (digest, sums)  # type: ignore[arg-type]
    assert digest == "sha256:" + sha256_file(tmp_path / "layer.tar")
    assert sums["models/w.bin"] == "sha256:" + sha256_file(big)


def test_tar_layers_are_pinned_byte_for_byte(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    big = tmp_path / "w.bin"
    big.write_bytes(os.urandom(70_001))
    small = tmp_path / "a" / "c.json"
    small.write_text("{}")
    os.chmod(big, 0o600)
    layer = TarLayer(
        (LayerFile("models/w.bin", big, big.stat().st_size), LayerFile("models/a/c.json", small, 2))
    )
    out = tmp_path / "layer.tar"
    with out.open("wb") as fh:
        digest, sums, _ = layer.digest_and_write(fh)  # type: ignore[arg-type]
    assert out.stat().st_size == layer.size  # size known before reading
    assert b"".join(layer.stream()) == out.read_bytes()  # second pass: identical bytes
    assert digest == "sha256:" + sha256_file(out)
    assert sums["models/w.bin"] == "sha256:" + sha256_file(big)
    with tarfile.open(out) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["models", "models/a", "models/a/c.json", "models/w.bin"]
    for m in members:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")
        assert m.mode == (0o755 if m.isdir() else 0o644)
    assert out.read_bytes()[257:265] == b"ustar  \0"  # GNU magic: the one pinned format
    assert tarlayer.TAR_SPEC_VERSION == "modelcar-tar/1"


GOLDEN_FILES = {
    "models/config.json": b'{"a": 1}\n',
    "models/empty.txt": b"",
    "models/block.bin": bytes(range(256)) * 2,  # exactly one 512-byte block: no padding
    "models/" + "deep/" * 3 + "w" * 120 + ".safetensors": b"x" * 1000,  # a GNU long-name entry
    "models/tokenizer/vocab-\u00e9\u4e2d.txt": "h\u00e9llo\n".encode(),  # UTF-8 name
}
# The pinned bytes of modelcar-tar/1 for GOLDEN_FILES. If this changes, every modelcar digest
# changes with it: that needs a new TAR_SPEC_VERSION (and new locks), never a silent update.
GOLDEN_DIGEST = "sha256:b8830456cf6fdacd23c1faf03dae1d830806504fa48261e7cd84a1a865225dc3"


def test_tar_bytes_are_pinned_across_python_versions_and_read_by_gnu_tar(tmp_path: Path, tools: Any) -> None:
    files = []
    for i, (name, data) in enumerate(GOLDEN_FILES.items()):
        path = tmp_path / f"f{i}"
        path.write_bytes(data)
        files.append(LayerFile(name, path, len(data)))
    layer = TarLayer(tuple(reversed(files)))  # the order given does not matter
    out = tmp_path / "layer.tar"
    with out.open("wb") as fh:
        digest, _, _ = layer.digest_and_write(fh)  # type: ignore[arg-type]
    assert (digest, out.stat().st_size) == (GOLDEN_DIGEST, layer.size) == (GOLDEN_DIGEST, 9728)
    listing = subprocess.run(
        [tools("tar"), "--numeric-owner", "-tvf", str(out)], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    names = [line.split(" 1970-01-01 00:00 ", 1)[1] for line in listing]
    dirs = ["models/", "models/deep/", "models/deep/deep/", "models/deep/deep/deep/", "models/tokenizer/"]
    assert sorted(names) == sorted([*GOLDEN_FILES, *dirs])
    assert all(line.split()[1] == "0/0" for line in listing)


def test_layer_size_is_exact_for_files_over_8_gib_without_reading_them(tmp_path: Path) -> None:
    huge = 9 << 30  # above the 8 GiB ustar limit: GNU base-256 size field
    layer = TarLayer((LayerFile("models/huge.safetensors", tmp_path / "never-read", huge),))
    assert layer.size == 512 + 512 + huge + 1024  # dir entry, file header, data (no padding), end
    header = tarfile.TarInfo.frombuf(layer.entries[1].header, "utf-8", "strict")
    assert (header.name, header.size) == ("models/huge.safetensors", huge)


def test_same_digest_whatever_mtime_umask_listing_order_and_cwd(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = small_model(tmp_path / "one")
    # the base inside the repo, named relative to it, as a checked-in air-gapped base would be
    shutil.copytree(busybox_base.path, repo_copy / "bases" / "busybox")
    base_ref = f"oci-layout:bases/busybox@{busybox_base.index_digest}"
    write_spec(repo_copy, "tiny", base_ref, layerThreshold=THRESHOLD)
    a = _build(deliver, repo_copy, "tiny", first, "--no-cache")
    lock_a = (repo_copy / "modelcars" / "tiny.lock.yaml").read_text()
    # The same bytes, written in reverse order under another umask, with other mtimes, from another cwd.
    second = tmp_path / "two" / "nested"
    old = os.umask(0o077)
    try:
        files = sorted((p for p in first.rglob("*") if p.is_file()), reverse=True)
        for i, f in enumerate(files):
            dest = second / f.relative_to(first)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(f.read_bytes())
            os.utime(dest, (1_000_000 + i * 7777, 1_000_000 + i * 7777))
    finally:
        os.umask(old)
    assert (second / "config.json").stat().st_mode & 0o777 == 0o600
    # ... and from a checkout of the repo at another path (another machine), from another cwd.
    elsewhere = tmp_path / "elsewhere" / "checkout"
    shutil.copytree(
        repo_copy, elsewhere, ignore=shutil.ignore_patterns("out", ".cache-deliver", "*.lock.yaml")
    )
    monkeypatch.chdir(tmp_path / "two")
    b = _build(deliver, elsewhere, "tiny", second, "--output", str(tmp_path / "other-out"), "--no-cache")
    assert a["digest"] == b["digest"]
    assert a["layers"] == b["layers"]
    assert (elsewhere / "modelcars" / "tiny.lock.yaml").read_text() == lock_a  # the lock too, byte for byte
    assert str(tmp_path) not in lock_a  # no local path in it


def test_lock_is_deterministic_and_claims_no_registry(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path
) -> None:
    src = small_model(tmp_path / "model")
    write_spec(repo_copy, "tiny", busybox_base.spec_ref, layerThreshold=THRESHOLD)
    out = _build(deliver, repo_copy, "tiny", src)
    lock_file = repo_copy / "modelcars" / "tiny.lock.yaml"
    text = lock_file.read_text()
    lock = yamlio.plain(yamlio.load_file(lock_file))
    assert lock["manifest"]["digest"] == out["digest"]
    assert lock["source"]["revision"] == "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"
    assert [f["path"] for f in lock["files"]] == sorted(f["path"] for f in lock["files"])
    by_path = {f["path"]: f for f in lock["files"]}
    assert by_path["config.json"]["sha256"] == "sha256:" + sha256_file(src / "config.json")
    assert "ignored.pt" not in by_path
    # a build pushes nothing, so neither the lock nor any release claims an image in a registry
    assert "images" not in lock
    for env in ("dev", "staging", "prod"):
        registry = yamlio.plain(yamlio.load_file(repo_copy / "environments" / env / "config.yaml"))[
            "registry"
        ]
        assert registry.split("/")[0] not in text
        assert not (repo_copy / "clusters" / env / "release.yaml").exists()
    assert len(lock["layers"]) == 3
    mtime = lock_file.stat().st_mtime_ns
    _build(deliver, repo_copy, "tiny", src, "--no-cache")
    assert lock_file.read_text() == text
    assert lock_file.stat().st_mtime_ns == mtime  # unchanged content: file not rewritten


def test_noop_rebuild_reads_no_weights(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tarlayer, "RACY_NS", 0)  # files written a moment ago may be cached here
    src = small_model(tmp_path / "model")
    write_spec(repo_copy, "tiny", busybox_base.spec_ref, layerThreshold=THRESHOLD)
    first = _build(deliver, repo_copy, "tiny", src)

    def must_not_read(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("a no-op rebuild read the weights")

    monkeypatch.setattr(TarLayer, "digest_and_write", must_not_read)
    monkeypatch.setattr(TarLayer, "stream", must_not_read)
    again = _build(deliver, repo_copy, "tiny", src)
    assert again["digest"] == first["digest"]
    # a changed file is noticed (its ctime changed) and only that layer is read again
    monkeypatch.undo()
    (src / "config.json").write_text('{"model_type": "changed"}\n')
    changed = _build(deliver, repo_copy, "tiny", src)
    assert changed["digest"] != first["digest"]
    assert changed["layers"][1:] == first["layers"][1:]


def test_verify_passes_then_fails_when_the_source_changes(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, tmp_path: Path
) -> None:
    src = small_model(tmp_path / "model")
    write_spec(repo_copy, "tiny", busybox_base.spec_ref, layerThreshold=THRESHOLD)
    out = _build(deliver, repo_copy, "tiny", src)
    ok = deliver("modelcar", "verify", "tiny", "--source", str(src), "--json", repo=repo_copy)
    assert ok.code == 0, ok.err
    assert json.loads(ok.out)["digest"] == out["digest"]
    with (src / "model-00001-of-00002.safetensors").open("r+b") as fh:
        fh.seek(100)
        fh.write(b"\xff\xfe")
    bad = deliver("modelcar", "verify", "tiny", "--source", str(src), repo=repo_copy)
    assert bad.code == 1
    assert "differs from the lock" in bad.err
    assert "model-00001-of-00002.safetensors changed" in bad.err


def test_real_minilm_model_builds_reproducibly(
    deliver: Any, repo_copy: Path, busybox_base: BaseLayout, minilm_dir: Path, tmp_path: Path
) -> None:
    write_spec(repo_copy, "minilm", busybox_base.spec_ref)
    a = _build(deliver, repo_copy, "minilm", minilm_dir, "--no-cache")
    copy = tmp_path / "copy"
    shutil.copytree(minilm_dir, copy)
    b = _build(deliver, repo_copy, "minilm", copy, "--no-cache", "--output", str(tmp_path / "out2"))
    assert a["digest"] == b["digest"]
    assert a["files"] == 13 and a["bytes"] > 90_000_000
    manifest = _manifest(Path(a["output"]))
    titles = [
        layer.get("annotations", {}).get("dev.llm-platform.modelcar.file") for layer in manifest["layers"]
    ]
    assert "models/model.safetensors" in titles


def test_two_platform_index_shares_the_model_layers_in_the_layout_and_the_registry(
    deliver: Any, repo_copy: Path, registry: Any, tmp_path: Path, tools: Any
) -> None:
    skopeo = tools("skopeo")
    busybox = Path(tools("busybox")).resolve()
    arm64 = fake_arm64_busybox_for_tests(tmp_path / "busybox-arm64")
    base = build_busybox_index({"linux/amd64": busybox, "linux/arm64": arm64}, tmp_path / "base")
    assert set(base.manifests) == {"linux/amd64", "linux/arm64"}
    src = small_model(tmp_path / "model")
    write_spec(
        repo_copy, "multi", base.spec_ref, platforms=["linux/amd64", "linux/arm64"],
        layerThreshold=THRESHOLD, repository="multi",
    )  # fmt: skip
    built = _build(deliver, repo_copy, "multi", src)
    layout = Path(built["output"])
    assert built["mediaType"] == "application/vnd.oci.image.index.v1+json"
    top = json.loads((layout / "index.json").read_text())["manifests"]
    assert [(m["mediaType"], m["digest"]) for m in top] == [(built["mediaType"], built["digest"])]
    index = json.loads(_blob(layout, built["digest"]))
    platforms = {m["platform"]["architecture"]: m["digest"] for m in index["manifests"]}
    assert sorted(platforms) == ["amd64", "arm64"]
    manifests = {arch: json.loads(_blob(layout, d)) for arch, d in platforms.items()}
    model_layers = [layer["digest"] for layer in built["layers"]]
    for arch, manifest in manifests.items():
        assert [layer["digest"] for layer in manifest["layers"][1:]] == model_layers  # shared, same order
        config = json.loads(_blob(layout, manifest["config"]["digest"]))
        assert (config["os"], config["architecture"]) == ("linux", arch)
        assert config["config"]["User"] == "65532:65532"
    assert manifests["amd64"]["layers"][0] != manifests["arm64"]["layers"][0]  # each its own base
    # skopeo resolves the index to each platform's manifest
    tag = "c9745ed1d9f2"
    for arch in platforms:
        raw = subprocess.run(
            [skopeo, "inspect", "--override-arch", arch, "--raw", f"oci:{layout}:{tag}"],
            check=True, capture_output=True,
        ).stdout  # fmt: skip
        assert raw == _blob(layout, built["digest"])  # --raw shows the index itself
        info = subprocess.run(
            [skopeo, "inspect", "--override-arch", arch, f"oci:{layout}:{tag}"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        assert json.loads(info)["Architecture"] == arch
        assert json.loads(info)["Layers"][1:] == model_layers
    lock = yamlio.plain(yamlio.load_file(repo_copy / "modelcars" / "multi.lock.yaml"))
    assert lock["manifest"]["digest"] == built["digest"]
    assert {p: d for p, d in lock["manifest"]["platforms"].items()} == {
        f"linux/{arch}": d for arch, d in platforms.items()
    }

    # Published: the same index digest; the model layers are uploaded once for both platforms.
    point_env_at(repo_copy, "dev", registry.host)
    pushed = deliver(
        "modelcar", "publish", "multi", "--env", "dev",
        "--allow-unverified-source", "--source", str(src), "--json",
        "--cache-dir", str(repo_copy / ".cache-deliver"), repo=repo_copy,
    )  # fmt: skip
    assert pushed.code == 0, pushed.err
    report = json.loads(pushed.out)
    assert report["digest"] == built["digest"]
    assert report["uri"] == f"oci://{registry.host}/modelcars/multi@{built['digest']}"
    uploaded = [b["digest"] for b in report["blobs"] if b["outcome"] == "uploaded"]
    assert sorted(set(uploaded)) == sorted(uploaded)  # no blob sent twice
    assert set(model_layers) <= set(uploaded)
    layer_bytes = sum(layer["size"] for layer in built["layers"])
    assert layer_bytes <= report["bytesSent"] < layer_bytes + 2 * (4 << 20)  # + two small bases/configs
    remote = subprocess.run(
        [skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/modelcars/multi:{tag}"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    assert remote == _blob(layout, built["digest"])
    for arch in platforms:
        info = subprocess.run(
            [skopeo, "inspect", "--tls-verify=false", "--override-arch", arch,
             f"docker://{registry.host}/modelcars/multi@{built['digest']}"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        assert json.loads(info)["Layers"][1:] == model_layers


def test_a_base_pinned_in_a_registry_is_resolved_per_platform_and_cached(
    deliver: Any, repo_copy: Path, registry: Any, tmp_path: Path, tools: Any
) -> None:
    skopeo = tools("skopeo")
    busybox = Path(tools("busybox")).resolve()
    arm64 = fake_arm64_busybox_for_tests(tmp_path / "busybox-arm64")
    base = build_busybox_index({"linux/amd64": busybox, "linux/arm64": arm64}, tmp_path / "base")
    subprocess.run(
        [skopeo, "copy", "--all", "--preserve-digests", "--dest-tls-verify=false",
         f"oci:{base.path}:latest", f"docker://{registry.host}/bases/busybox:1"],
        check=True, capture_output=True,
    )  # fmt: skip
    src = small_model(tmp_path / "model")
    remote_ref = f"{registry.host}/bases/busybox:1@{base.index_digest}"
    write_spec(repo_copy, "remote", remote_ref, layerThreshold=THRESHOLD, platforms=["linux/arm64"])
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    unwritable = deliver(
        "modelcar",
        "build",
        "remote",
        "--source",
        str(src),
        "--cache-dir",
        str(blocked / "cache"),
        repo=repo_copy,
    )
    assert unwritable.code == 1 and "cannot write a blob" in unwritable.err and "fix:" in unwritable.err
    assert "Traceback" not in unwritable.err and not (repo_copy / "out").exists()
    cache = tmp_path / "cache"
    built = _build(deliver, repo_copy, "remote", src, cache=cache)
    manifest = _manifest(Path(built["output"]))
    arm64_base = json.loads(_blob(base.path, base.manifests["linux/arm64"]))
    assert manifest["layers"][0] == arm64_base["layers"][0]  # the arm64 base layer, as it is
    assert manifest["annotations"]["org.opencontainers.image.base.name"] == remote_ref
    assert manifest["annotations"]["org.opencontainers.image.base.digest"] == base.manifests["linux/arm64"]
    cached = {p.name for p in (cache / "blobs" / "sha256").iterdir()}
    assert {
        base.index_digest[7:],
        base.manifests["linux/arm64"][7:],
        arm64_base["layers"][0]["digest"][7:],
    } <= cached
    assert base.manifests["linux/amd64"][7:] not in cached  # only the platform asked for is fetched
    # The cache now holds every base blob: the same build works with the registry gone.
    gone = remote_ref.replace(registry.host, "127.0.0.1:9")
    write_spec(repo_copy, "remote", gone, layerThreshold=THRESHOLD, platforms=["linux/arm64"])
    again = _build(deliver, repo_copy, "remote", src, "--output", str(tmp_path / "again"), cache=cache)
    assert again["layers"] == built["layers"]


def test_the_hash_pass_stops_at_the_first_error(tmp_path: Path) -> None:
    # a layer that fails (e.g. a file that does not match the hub's sha256) stops the pass: layers
    # not started yet are never read, so nothing more reaches the uploader
    from delivery.core.errors import SourceError
    from delivery.modelcar import pipeline

    layers = []
    for i, size in enumerate((5000, 4000, 3000, 2000, 1000)):
        path = tmp_path / f"f{i}"
        path.write_bytes(b"x" * size)
        layers.append(TarLayer((LayerFile(f"models/f{i}", path, size),)))
    started: list[str] = []

    def hash_one(layer: TarLayer) -> Any:
        name = layer.files[0].arcname
        started.append(name)
        if name == "models/f0":  # the largest: started first, fails at once
            raise SourceError("f0 does not match the hub's sha256")
        time.sleep(0.5)
        return name

    with pytest.raises(SourceError, match="f0 does not match"):
        pipeline.map_layers(hash_one, layers, 2)
    # f1 may have been running on the other worker; f2..f4 never start
    assert started[0] == "models/f0" and set(started) <= {"models/f0", "models/f1"}
