"""The OCI distribution client against a real distribution registry (and a fault proxy in front of it)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
import pytest

from conftest import Registry
from delivery.core.console import ProgressReporter
from delivery.core.errors import RegistryError, SourceError, UsageError
from delivery.oci.auth import parse_challenge
from delivery.oci.blobs import BytesBlob, FileBlob, digest_of_chunks, sha256_digest
from delivery.oci.push import ImagePush, push_image
from delivery.oci.reference import ImageRef
from delivery.oci.registry import RegistryClient
from delivery.oci.spec import OCI_CONFIG, OCI_LAYER_TAR, OCI_MANIFEST
from delivery.oci.transport import is_loopback_host
from faultproxy import Fault, FaultProxy

LAYER = OCI_LAYER_TAR
CONFIG = OCI_CONFIG


def image(*layer_sizes: int, seed: str = "x") -> tuple[list[BytesBlob], BytesBlob, bytes]:
    """Distinct layers of the given sizes, a config and the OCI manifest naming them."""
    layers = [
        BytesBlob(hashlib.sha256(f"{seed}{i}".encode()).digest() * (size // 32) + b"z" * (size % 32), LAYER)
        for i, size in enumerate(layer_sizes)
    ]
    config = BytesBlob(
        json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}, sort_keys=True).encode(), CONFIG
    )
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": CONFIG, "digest": config.digest, "size": config.size},
            "layers": [{"mediaType": LAYER, "digest": b.digest, "size": b.size} for b in layers],
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    return layers, config, manifest


@pytest.fixture
def proxy(registry: Registry) -> Iterator[FaultProxy]:
    with FaultProxy(registry.host) as p:
        yield p


def client_for(host: str, **kw: object) -> RegistryClient:
    return RegistryClient(host, retries=kw.pop("retries", 3), backoff=0.01, **kw)  # type: ignore[arg-type]


def read_blob(client: RegistryClient, repo: str, digest: str) -> bytes:
    with client.get_blob(repo, digest) as chunks:
        return b"".join(chunks)


# --------------------------------------------------------------------------- happy paths


def test_push_image_then_pull_it_back_with_our_client_and_skopeo(
    registry: Registry, tools: Callable[[str], str]
) -> None:
    layers, config, manifest = image(3_000_000, 10, 70_000)
    repo = registry.unique_repo("push")
    with client_for(registry.host) as client:
        report = push_image(
            client, repo, layers=layers, config=config, manifest=manifest,
            manifest_media_type=OCI_MANIFEST, tags=["v1", "latest"],
        )  # fmt: skip
        assert report.digest == "sha256:" + hashlib.sha256(manifest).hexdigest()
        assert [b.outcome for b in report.blobs] == ["uploaded"] * 4
        assert report.bytes_sent == sum(b.size for b in [*layers, config])
        for ref in ("v1", "latest", report.digest):
            got = client.get_manifest(repo, ref)
            assert (got.data, got.media_type, got.digest) == (manifest, OCI_MANIFEST, report.digest)
        for blob in [*layers, config]:
            assert read_blob(client, repo, blob.digest) == blob.data
        assert sorted(client.list_tags(repo)) == ["latest", "v1"]
    raw = subprocess.run(
        [tools("skopeo"), "inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/{repo}:v1"],
        check=True,
        capture_output=True,
    ).stdout
    assert raw == manifest
    assert ImageRef.parse(f"{registry.host}/{repo}").with_digest(report.digest).oci_uri == (
        f"oci://{registry.host}/{repo}@{report.digest}"
    )


def test_second_push_sends_no_blob_bytes(proxy: FaultProxy, registry: Registry) -> None:
    layers, config, manifest = image(2_000_000, 5_000)
    repo = registry.unique_repo("again")
    with client_for(proxy.host) as client:
        push_image(
            client, repo, layers=layers, config=config, manifest=manifest, manifest_media_type=OCI_MANIFEST
        )
        first = proxy.blob_bytes_sent()
        proxy.clear()
        report = push_image(
            client, repo, layers=layers, config=config, manifest=manifest, manifest_media_type=OCI_MANIFEST
        )
    assert first == 2_005_000 + config.size
    assert [b.outcome for b in report.blobs] == ["exists"] * 3
    assert report.bytes_sent == 0 and proxy.blob_bytes_sent() == 0
    assert not proxy.requests("POST") and len(proxy.requests("HEAD", "/blobs/")) == 3
    assert [e.method for e in proxy.exchanges][-1] == "PUT"  # the manifest, last


def test_mount_across_repositories_sends_no_bytes(proxy: FaultProxy, registry: Registry) -> None:
    layers, config, manifest = image(1_500_000, 1_000, seed="mount")
    source, target = registry.unique_repo("src"), registry.unique_repo("dst")
    with client_for(proxy.host) as client:
        push_image(
            client, source, layers=layers, config=config, manifest=manifest, manifest_media_type=OCI_MANIFEST
        )
        proxy.clear()
        report = push_image(
            client, target, layers=layers, config=config, manifest=manifest,
            manifest_media_type=OCI_MANIFEST, mount_from=[source],
        )  # fmt: skip
        assert [b.outcome for b in report.blobs] == ["mounted"] * 3
        assert proxy.blob_bytes_sent() == 0
        mounts = proxy.requests("POST", "mount=")
        assert len(mounts) == 3 and all(e.status == 201 and f"from={source}".replace("/", "%2F") in e.target
                                        for e in mounts)  # fmt: skip
        assert client.get_manifest(target, report.digest).data == manifest
        assert read_blob(client, target, layers[0].digest) == layers[0].data


def test_mount_refused_with_202_continues_the_session_it_opened(
    proxy: FaultProxy, registry: Registry
) -> None:
    blob = BytesBlob(b"not in the source repo" * 1000, LAYER)
    repo = registry.unique_repo("m202")
    with client_for(proxy.host) as client:
        pushed = client.push_blob(repo, blob, mount_from=[registry.unique_repo("empty")])
        assert (pushed.outcome, pushed.bytes_sent) == ("uploaded", blob.size)
        assert read_blob(client, repo, blob.digest) == blob.data
    posts = proxy.requests("POST")
    assert len(posts) == 1 and posts[0].status == 202 and "mount=" in posts[0].target  # no second POST
    assert [e.method for e in proxy.exchanges] == ["HEAD", "POST", "PUT", "GET"]


def test_blobs_upload_in_parallel_up_to_the_limit(proxy: FaultProxy, registry: Registry) -> None:
    layers, config, manifest = image(*([1_000_000] * 6), seed="par")
    proxy.add(Fault("throttle", method="PUT", path="/blobs/uploads/", times=-1, delay_per_mib=0.3))
    with client_for(proxy.host) as client:
        push_image(
            client, registry.unique_repo("par"), layers=layers, config=config, manifest=manifest,
            manifest_media_type=OCI_MANIFEST, parallel=3,
        )  # fmt: skip
        assert 2 <= proxy.max_concurrent_uploads <= 3
        proxy.clear()
        proxy.add(Fault("throttle", method="PUT", path="/blobs/uploads/", times=-1, delay_per_mib=0.05))
        push_image(
            client, registry.unique_repo("seq"), layers=layers, config=config, manifest=manifest,
            manifest_media_type=OCI_MANIFEST, parallel=1,
        )  # fmt: skip
        assert proxy.max_concurrent_uploads == 1


def test_progress_is_reported_per_blob(registry: Registry) -> None:
    layers, config, manifest = image(400_000, 300, seed="progress")
    out = io.StringIO()
    with client_for(registry.host) as client, ProgressReporter(stream=out) as progress:
        push_image(
            client, registry.unique_repo("prog"), layers=layers, config=config, manifest=manifest,
            manifest_media_type=OCI_MANIFEST, progress=progress,
        )  # fmt: skip
    lines = out.getvalue().splitlines()
    done = [line for line in lines if ": done," in line]
    assert len(done) == 3 and all("(uploaded)" in line for line in done)
    assert any(line.startswith("config ") for line in done)
    assert lines[-1].startswith(f"pushed {registry.host}/")


# --------------------------------------------------------------------------- faults and retries


def test_5xx_and_429_are_retried_and_the_push_succeeds(proxy: FaultProxy, registry: Registry) -> None:
    layers, config, manifest = image(800_000, seed="5xx")
    proxy.add(Fault("status", method="PUT", path="/blobs/uploads/", status=500, times=1))
    proxy.add(Fault("status", method="POST", path="/blobs/uploads/", status=503, times=1))
    proxy.add(Fault("status", method="HEAD", path="/blobs/", status=429, retry_after="0", times=1))
    proxy.add(Fault("status", method="PUT", path="/manifests/", status=502, times=1))
    repo = registry.unique_repo("retry")
    with client_for(proxy.host, retries=5) as client:
        report = push_image(
            client, repo, layers=layers, config=config, manifest=manifest, manifest_media_type=OCI_MANIFEST
        )
        assert client.get_manifest(repo, report.digest).data == manifest
        assert read_blob(client, repo, layers[0].digest) == layers[0].data
    assert {e.status for e in proxy.exchanges if e.fault} == {500, 503, 429, 502}
    manifest_puts = proxy.requests("PUT", "/manifests/")
    assert [e.status for e in manifest_puts] == [502, 201]


def test_broken_connection_mid_upload_restarts_the_whole_blob(proxy: FaultProxy, registry: Registry) -> None:
    blob = BytesBlob(bytes(range(256)) * 20_000, LAYER)  # 5 MB
    proxy.add(Fault("drop", method="PUT", path="/blobs/uploads/", after_bytes=1_000_000, times=2))
    repo = registry.unique_repo("drop")
    progress: list[int] = []
    with client_for(proxy.host, retries=3) as client:
        pushed = client.push_blob(repo, blob, on_progress=progress.append)
        assert pushed.outcome == "uploaded"
        assert read_blob(client, repo, blob.digest) == blob.data
    assert sum(progress) == blob.size and any(p < 0 for p in progress)  # rolled back on each restart
    assert len(proxy.requests("POST", "/blobs/uploads/")) == 3  # a new session for every attempt
    assert [e.fault for e in proxy.requests("PUT")] == ["drop", "drop", ""]


@pytest.mark.parametrize("action", ["status", "drop"])
def test_retries_exhausted_is_a_clear_error_and_no_manifest_is_pushed(
    proxy: FaultProxy, registry: Registry, action: Literal["status", "drop"]
) -> None:
    layers, config, manifest = image(300_000, 200_000, seed=f"exhaust-{action}")
    # every upload of the second layer fails: 500, or the connection breaks after 64 KiB
    proxy.add(Fault(action, method="PUT", path=layers[1].digest[7:], times=-1, after_bytes=65536))
    repo = registry.unique_repo("exhaust")
    with client_for(proxy.host, retries=2) as client:
        with pytest.raises(RegistryError) as err:
            push_image(
                client, repo, layers=layers, config=config, manifest=manifest,
                manifest_media_type=OCI_MANIFEST, tags=["v1"],
            )  # fmt: skip
        text = str(err.value)
        assert f"upload of blob {layers[1].digest}" in text and "failed after 3 attempts" in text
        assert "fix:" in text
        assert not proxy.requests("PUT", "/manifests/")
        with pytest.raises(RegistryError, match="HTTP 404"):
            client.get_manifest(repo, "v1")


def test_gar_like_proxy_rejects_multi_chunk_patch_but_accepts_our_uploads(
    registry: Registry,
) -> None:
    with FaultProxy(registry.host, gar_like=True) as gar:
        # the double really refuses chunked uploads: POST, then PATCH with Content-Range
        repo = registry.unique_repo("gar")
        start = httpx.post(f"http://{gar.host}/v2/{repo}/blobs/uploads/")
        assert start.status_code == 202
        chunk = httpx.patch(
            httpx.URL(f"http://{gar.host}").join(start.headers["Location"]),
            content=b"0123456789",
            headers={"Content-Range": "0-9", "Content-Type": "application/octet-stream"},
        )
        assert chunk.status_code == 400 and "chunked uploads" in chunk.text
        layers, config, manifest = image(1_200_000, 7, seed="gar")
        for method in ("put", "patch"):
            repo = registry.unique_repo(f"gar-{method}")
            with client_for(gar.host, upload_method=method) as client:
                report = push_image(
                    client,
                    repo,
                    layers=layers,
                    config=config,
                    manifest=manifest,
                    manifest_media_type=OCI_MANIFEST,
                )
                assert client.get_manifest(repo, report.digest).data == manifest
                assert read_blob(client, repo, layers[0].digest) == layers[0].data
        assert not [e for e in gar.exchanges if e.fault == "gar-like rejection" and e.method != "PATCH"]
        assert len([e for e in gar.exchanges if e.fault == "gar-like rejection"]) == 1  # only the raw probe


def test_get_blob_detects_a_corrupt_registry_copy(registry: Registry) -> None:
    blob = BytesBlob(b"precious weights " * 10_000, LAYER)
    repo = registry.unique_repo("corrupt")
    with client_for(registry.host) as client:
        client.push_blob(repo, blob)
        data = registry.root / "docker/registry/v2/blobs/sha256" / blob.digest[7:9] / blob.digest[7:] / "data"
        data.write_bytes(b"X" + blob.data[1:])  # same size, one byte flipped, on the registry's disk
        with (
            pytest.raises(RegistryError, match="digest mismatch") as err,
            client.get_blob(repo, blob.digest) as it,
        ):
            for _ in it:
                pass
        assert "re-push" in str(err.value)


def test_get_blob_and_manifest_detect_bytes_altered_in_transit(proxy: FaultProxy, registry: Registry) -> None:
    layers, config, manifest = image(100_000, seed="transit")
    repo = registry.unique_repo("transit")
    with client_for(proxy.host) as client:
        report = push_image(
            client, repo, layers=layers, config=config, manifest=manifest, manifest_media_type=OCI_MANIFEST,
            tags=["v1"],
        )  # fmt: skip
        proxy.add(Fault("corrupt", method="GET", path="/blobs/sha256:"))
        with (
            pytest.raises(RegistryError, match="digest mismatch"),
            client.get_blob(repo, layers[0].digest) as it,
        ):
            b"".join(it)
        proxy.add(Fault("corrupt", method="GET", path="/manifests/"))
        with pytest.raises(RegistryError, match="digest mismatch"):
            client.get_manifest(repo, report.digest)
        proxy.add(Fault("corrupt", method="GET", path="/manifests/v1"))
        with pytest.raises(RegistryError, match="digest mismatch"):
            client.get_manifest(repo, "v1")  # caught through Docker-Content-Digest


def test_manifest_digest_header_mismatch_is_an_error(proxy: FaultProxy, registry: Registry) -> None:
    layers, config, manifest = image(1000, seed="hdr")
    proxy.add(
        Fault(
            "header", method="PUT", path="/manifests/", header=("Docker-Content-Digest", "sha256:" + "0" * 64)
        )
    )
    with client_for(proxy.host) as client, pytest.raises(RegistryError, match="reports digest sha256:0000"):
        push_image(
            client, registry.unique_repo("hdr"), layers=layers, config=config, manifest=manifest,
            manifest_media_type=OCI_MANIFEST,
        )  # fmt: skip


# --------------------------------------------------------------------------- registry errors


def test_unknown_repository_manifest_and_blob_are_clear_404s(registry: Registry) -> None:
    repo = registry.unique_repo("nothing")
    with client_for(registry.host) as client:
        with pytest.raises(RegistryError) as err:
            client.get_manifest(repo, "v1")
        text = str(err.value)
        assert f"fetch of manifest {repo}:v1 failed: HTTP 404, MANIFEST_UNKNOWN" in text
        assert "fix: check the repository name and the tag/digest" in text
        layers, config, manifest = image(10, seed="404")
        push_image(
            client, repo, layers=layers, config=config, manifest=manifest, manifest_media_type=OCI_MANIFEST
        )
        with pytest.raises(RegistryError, match="MANIFEST_UNKNOWN"):
            client.get_manifest(repo, "no-such-tag")
        missing = "sha256:" + "ab" * 32
        assert client.blob_exists(repo, layers[0].digest) and not client.blob_exists(repo, missing)
        with pytest.raises(RegistryError, match="HTTP 404"), client.get_blob(repo, missing):
            pass


def test_manifest_pointing_at_missing_blobs_is_refused(registry: Registry) -> None:
    _, _, manifest = image(10, seed="dangling")
    with client_for(registry.host) as client, pytest.raises(RegistryError) as err:
        client.put_manifest(registry.unique_repo("dangling"), "v1", manifest, OCI_MANIFEST)
    assert "BLOB_UNKNOWN" in str(err.value) and "push every layer and the config before the manifest" in str(
        err.value
    )


def test_push_image_refuses_a_manifest_that_does_not_name_its_blobs(
    proxy: FaultProxy, registry: Registry
) -> None:
    layers, config, manifest = image(10, 20, seed="mismatch")
    with client_for(proxy.host) as client:
        with pytest.raises(UsageError, match="do not match the blobs"):
            push_image(
                client, registry.unique_repo("m"), layers=layers[:1], config=config, manifest=manifest,
                manifest_media_type=OCI_MANIFEST,
            )  # fmt: skip
        with pytest.raises(UsageError, match="mediaType"):
            push_image(
                client, registry.unique_repo("m"), layers=layers, config=config, manifest=manifest,
                manifest_media_type="application/vnd.docker.distribution.manifest.v2+json",
            )  # fmt: skip
        with pytest.raises(UsageError, match="invalid repository"):
            client.push_blob("Bad/Name", layers[0])
        with pytest.raises(UsageError, match="invalid tag"):
            push_image(
                client, "ok", layers=layers, config=config, manifest=manifest,
                manifest_media_type=OCI_MANIFEST, tags=["bad tag"],
            )  # fmt: skip
        with pytest.raises(RegistryError, match="not sha256"):
            client.put_manifest("ok", "sha256:" + "0" * 64, manifest, OCI_MANIFEST)
    assert proxy.exchanges == []  # nothing was sent


@dataclass(frozen=True)
class ChangingBlobForTests:
    """A blob whose bytes differ from its digest (a source file modified after hashing)."""

    digest: str
    size: int
    media_type: str = LAYER
    label: str = "model.safetensors"

    def chunks(self) -> Iterator[bytes]:
        yield b"B" * self.size


def test_image_push_uploads_each_blob_as_soon_as_it_is_added_and_once_per_digest(
    proxy: FaultProxy, registry: Registry
) -> None:
    layers, config, manifest = image(400_000, 1000, seed="pipelined")
    repo = registry.unique_repo("pipelined")
    with client_for(proxy.host) as client, ImagePush(client, repo, parallel=2) as push:
        push.add(layers[0])
        push.add(layers[0])  # the same digest again (e.g. from another platform): one upload
        deadline = time.monotonic() + 10
        while not client.blob_exists(repo, layers[0].digest):  # up before the manifest is even known
            assert time.monotonic() < deadline, "an added blob was not uploaded before manifest()"
            time.sleep(0.02)
        report = push.manifest(
            layers=layers, config=config, manifest=manifest, manifest_media_type=OCI_MANIFEST, tags=["v1"]
        )
        again = push.manifest(
            layers=layers, config=config, manifest=manifest, manifest_media_type=OCI_MANIFEST
        )
    assert [b.outcome for b in report.blobs] == ["uploaded", "uploaded", "uploaded"]
    assert report.bytes_sent == sum(b.size for b in [*layers, config])
    assert [b.outcome for b in again.blobs] == ["exists"] * 3 and again.bytes_sent == 0
    assert len(proxy.requests("PUT", layers[0].digest[7:])) == 1
    with client_for(registry.host) as client:
        assert client.get_manifest(repo, "v1").data == manifest


def test_image_push_reports_the_blob_that_failed_not_those_it_cancelled(
    proxy: FaultProxy, registry: Registry
) -> None:
    layers, config, manifest = image(24 << 20, 100_000, seed="root-cause")
    # the big layer crawls (0.5 s per MiB) while every upload of the small one answers 500
    proxy.add(Fault("throttle", method="PUT", path=layers[0].digest[7:], times=-1, delay_per_mib=0.5))
    proxy.add(Fault("status", method="PUT", path=layers[1].digest[7:], times=-1))
    repo = registry.unique_repo("root-cause")
    with client_for(proxy.host, retries=1) as client:
        with pytest.raises(RegistryError) as err, ImagePush(client, repo, parallel=2) as push:
            push.add(layers[0])
            push.add(layers[1])
            push.manifest(layers=layers, config=config, manifest=manifest, manifest_media_type=OCI_MANIFEST)
        text = str(err.value)
        assert f"upload of blob {layers[1].digest}" in text and "failed after 2 attempts" in text
        assert "cancelled" not in text
        assert not client.blob_exists(repo, layers[0].digest)  # the crawling upload was stopped
    assert not proxy.requests("PUT", "/manifests/")
    with pytest.raises(RegistryError, match="failed after 2 attempts"):
        push.add(layers[1])  # a failed push refuses more blobs


def test_a_failed_blob_cuts_short_another_blobs_retry_wait(proxy: FaultProxy, registry: Registry) -> None:
    layers, config, manifest = image(100_000, 100_000, seed="backoff")
    # layer 1 is told to come back in 20 s; layer 0 fails for good meanwhile
    proxy.add(Fault("status", method="PUT", path=layers[1].digest[7:], status=503, retry_after="20"))
    proxy.add(Fault("status", method="PUT", path=layers[0].digest[7:], times=-1))
    repo = registry.unique_repo("backoff")
    start = time.monotonic()
    with (
        client_for(proxy.host, retries=1) as client,
        pytest.raises(RegistryError) as err,
        ImagePush(client, repo, parallel=2) as push,
    ):
        push.add(layers[1])
        push.add(layers[0])
        push.manifest(layers=layers, config=config, manifest=manifest, manifest_media_type=OCI_MANIFEST)
    assert f"upload of blob {layers[0].digest}" in str(err.value)
    assert time.monotonic() - start < 10  # not after layer 1's 20 s wait
    assert len(proxy.requests("PUT", layers[1].digest[7:])) == 1  # no retry after the cancel
    assert not proxy.requests("PUT", "/manifests/")


def test_a_source_file_that_vanishes_before_upload_is_one_clear_source_error(
    registry: Registry, tmp_path: Path
) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"weights" * 50_000)
    blob = FileBlob.of(path, LAYER)
    config = BytesBlob(b"{}", CONFIG)
    manifest = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
         "config": {"mediaType": CONFIG, "digest": config.digest, "size": config.size},
         "layers": [{"mediaType": LAYER, "digest": blob.digest, "size": blob.size}]}
    ).encode()  # fmt: skip
    path.unlink()  # hashed, then gone before the upload reads it
    repo = registry.unique_repo("vanished")
    with client_for(registry.host) as client:
        with pytest.raises(SourceError, match="No such file or directory") as err:
            push_image(
                client,
                repo,
                layers=[blob],
                config=config,
                manifest=manifest,
                manifest_media_type=OCI_MANIFEST,
            )
        assert err.value.problems[0].where.file == str(path)
        assert "vanished or became unreadable" in str(err.value)
        with pytest.raises(RegistryError, match="HTTP 404"):
            client.get_manifest(repo, sha256_digest(manifest))


def test_a_blob_that_changes_during_upload_is_caught_and_no_manifest_pushed(
    proxy: FaultProxy, registry: Registry
) -> None:
    good = BytesBlob(b"A" * 100_000, LAYER)
    changed = ChangingBlobForTests(good.digest, good.size)
    config = BytesBlob(b"{}", CONFIG)
    manifest = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
         "config": {"mediaType": CONFIG, "digest": config.digest, "size": config.size},
         "layers": [{"mediaType": LAYER, "digest": good.digest, "size": good.size}]}
    ).encode()  # fmt: skip
    repo = registry.unique_repo("changed")
    with client_for(proxy.host) as client:
        with pytest.raises(SourceError, match=r"model\.safetensors") as err:
            push_image(
                client,
                repo,
                layers=[changed],
                config=config,
                manifest=manifest,
                manifest_media_type=OCI_MANIFEST,
            )
        assert "rebuild" in str(err.value)
        assert not client.blob_exists(repo, good.digest)
    assert not proxy.requests("PUT", "/manifests/")


# --------------------------------------------------------------------------- memory


@dataclass(frozen=True)
class GeneratedBlob:
    """A large blob generated on the fly (distinct 1 MiB chunks), never held in memory whole."""

    digest: str
    size: int
    media_type: str = LAYER

    @staticmethod
    def stream(size: int) -> Iterator[bytes]:
        base = hashlib.sha256(b"seed").digest() * (1 << 15)  # 1 MiB
        for i, start in enumerate(range(0, size, 1 << 20)):
            yield i.to_bytes(8, "big") + base[8 : min(1 << 20, size - start)]

    @classmethod
    def of(cls, size: int) -> GeneratedBlob:
        digest, _ = digest_of_chunks(cls.stream(size))
        return cls(digest, size)

    def chunks(self) -> Iterator[bytes]:
        return self.stream(self.size)


def test_pushing_a_256_mib_blob_keeps_memory_flat(registry: Registry, tmp_path: Path) -> None:
    blob = GeneratedBlob.of(256 << 20)
    repo = registry.unique_repo("big")
    with client_for(registry.host) as client:
        client.blob_exists(repo, blob.digest)  # warm up connection/auth outside the measurement
        tracemalloc.start()
        try:
            pushed = client.push_blob(repo, blob)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert pushed.outcome == "uploaded" and pushed.bytes_sent == blob.size
        assert peak < 16 << 20, f"peak traced memory {peak / 2**20:.1f} MiB while pushing 256 MiB"
        tracemalloc.start()
        try:
            with client.get_blob(repo, blob.digest) as chunks:
                total = sum(len(c) for c in chunks)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert total == blob.size and peak < 16 << 20


def test_file_blob_streams_a_file(registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(bytes(range(256)) * 9000)
    blob = FileBlob.of(path, LAYER)
    assert blob.digest == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() and blob.size == 2_304_000
    with client_for(registry.host) as client:
        client.push_blob(registry.unique_repo("file"), blob)


# --------------------------------------------------------------------------- small pure parts


def test_challenge_parsing_and_loopback_detection() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'
    )
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.example/token", "service": "registry.example",
                      "scope": "repository:a/b:pull,push"}  # fmt: skip
    assert parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})
    assert all(is_loopback_host(h) for h in ("localhost:5000", "127.0.0.1:1", "127.3.4.5", "[::1]:5000"))
    assert not any(is_loopback_host(h) for h in ("ghcr.io", "europe-docker.pkg.dev", "10.0.0.1:5000"))
    assert RegistryClient("ghcr.io").base_url.scheme == "https"
    assert RegistryClient("127.0.0.1:5000").base_url.scheme == "http"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("busybox", ("registry-1.docker.io", "library/busybox", None, None)),
        ("docker.io/library/busybox:1.38.0", ("registry-1.docker.io", "library/busybox", "1.38.0", None)),
        ("localhost:5000/a/b:t", ("localhost:5000", "a/b", "t", None)),
        (f"ghcr.io/o/r@sha256:{'a' * 64}", ("ghcr.io", "o/r", None, f"sha256:{'a' * 64}")),
        (f"127.0.0.1:5000/m:v1@sha256:{'b' * 64}", ("127.0.0.1:5000", "m", "v1", f"sha256:{'b' * 64}")),
        (f"oci://europe-docker.pkg.dev/p/r/m@sha256:{'c' * 64}", ("europe-docker.pkg.dev", "p/r/m", None,
                                                                   f"sha256:{'c' * 64}")),
    ],
)  # fmt: skip
def test_image_reference_parsing(text: str, expected: tuple[str, str, str | None, str | None]) -> None:
    ref = ImageRef.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == expected
    assert ImageRef.parse(str(ref)) == ref


@pytest.mark.parametrize(
    "text", ["", "Busybox", "host:5000/a:b:c", "a@sha256:1234", "a@", "a:", "x/y:bad tag"]
)
def test_bad_image_references_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="invalid image reference"):
        ImageRef.parse(text)


def test_oci_uri_needs_a_digest() -> None:
    with pytest.raises(UsageError, match="no digest"):
        _ = ImageRef.parse("ghcr.io/a/b:v1").oci_uri
