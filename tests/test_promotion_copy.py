"""Promotion step "copy": an image moves registry to registry under the same digest (real registries)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import pytest

from conftest import Registry, running_registry
from delivery.core.console import ProgressReporter
from delivery.core.errors import RegistryError, SourceError, UsageError
from delivery.oci.auth import ANONYMOUS, Credentials
from delivery.oci.blobs import BytesBlob, sha256_digest
from delivery.oci.push import push_image
from delivery.oci.reference import ImageRef
from delivery.oci.registry import MAX_MANIFEST_BYTES, RegistryClient
from delivery.oci.remote import RemoteBlob
from delivery.oci.spec import (
    DOCKER_LAYER_TAR_GZIP,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_TAR,
    OCI_MANIFEST,
)
from delivery.promotion.copy import CopyReport, copy_image
from delivery.release import protected_tag
from faultproxy import Fault, FaultProxy
from loopback import loopback_host, start_loopback_server, stop_loopback_server

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
KINDS = {  # manifest type -> (index type, config type, layer type)
    OCI_MANIFEST: (OCI_INDEX, OCI_CONFIG, OCI_LAYER_TAR),
    DOCKER_MANIFEST: (DOCKER_MANIFEST_LIST, DOCKER_CONFIG, DOCKER_LAYER_TAR_GZIP),
}


@dataclass(frozen=True)
class Image:
    repo: str
    digest: str
    manifest: bytes
    blobs: list[BytesBlob]

    def ref(self, host: str) -> ImageRef:
        return ImageRef(host, self.repo, digest=self.digest)


def unusual_json(doc: dict[str, object]) -> bytes:
    """Deliberately not canonical (indent, key order): a copy that re-serialises changes the digest."""
    return (json.dumps(doc, indent=3) + "\n").encode()


def push_test_image(
    host: str, repo: str, layer_sizes: tuple[int, ...], *, seed: str, kind: str = OCI_MANIFEST,
    shared: BytesBlob | None = None, platform: str = "amd64",
) -> Image:  # fmt: skip
    _, config_type, layer_type = KINDS[kind]
    layers = [
        BytesBlob(
            hashlib.sha256(f"{seed}{i}".encode()).digest() * (size // 32) + b"z" * (size % 32), layer_type
        )
        for i, size in enumerate(layer_sizes)
    ] + ([shared] if shared is not None else [])
    config = BytesBlob(
        json.dumps({"architecture": platform, "os": "linux", "seed": seed}).encode(), config_type
    )
    manifest = unusual_json({
        "mediaType": kind,
        "schemaVersion": 2,
        "layers": [{"size": b.size, "digest": b.digest, "mediaType": layer_type} for b in layers],
        "config": {"size": config.size, "digest": config.digest, "mediaType": config_type},
    })  # fmt: skip
    with RegistryClient(host, retries=1, backoff=0.01) as client:
        report = push_image(
            client, repo, layers=layers, config=config, manifest=manifest, manifest_media_type=kind
        )
    return Image(repo, report.digest, manifest, [config, *layers])


def push_test_index(host: str, repo: str, kind: str, seed: str) -> tuple[Image, list[Image]]:
    """Two platforms sharing one layer, and the index (or Docker manifest list) naming them."""
    index_type, _, layer_type = KINDS[kind]
    shared = BytesBlob(b"shared layer " * 50_000, layer_type)
    children = [
        push_test_image(
            host, repo, (300_000, 70), seed=f"{seed}-{arch}", kind=kind, shared=shared, platform=arch
        )
        for arch in ("amd64", "arm64")
    ]
    index = unusual_json({
        "schemaVersion": 2,
        "mediaType": index_type,
        "manifests": [
            {"mediaType": kind, "digest": c.digest, "size": len(c.manifest),
             "platform": {"os": "linux", "architecture": arch}}
            for c, arch in zip(children, ("amd64", "arm64"), strict=True)
        ],
    })  # fmt: skip
    with RegistryClient(host, retries=1, backoff=0.01) as client:
        digest = client.put_manifest(repo, sha256_digest(index), index, index_type)
    blobs = list({b.digest: b for c in children for b in c.blobs}.values())
    return Image(repo, digest, index, blobs), children


def skopeo_raw(skopeo: str, host: str, repo: str, digest: str) -> bytes:
    return subprocess.run(
        [skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{host}/{repo}@{digest}"],
        check=True,
        capture_output=True,
    ).stdout


def copy(source: ImageRef, target: ImageRef, **kw: object) -> CopyReport:
    creds = {"source_credentials": ANONYMOUS, "target_credentials": ANONYMOUS}
    return copy_image(source, target, **{**creds, **kw})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def target_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A second registry: the target environment's (the ``registry`` fixture is the upstream's)."""
    with running_registry(tmp_path_factory.mktemp("target-registry")) as reg:
        yield reg


@dataclass
class OrderedProxy(FaultProxy):
    """A FaultProxy that also notes when each request arrives (exchanges are noted when they end)."""

    arrivals: list[tuple[str, str]] = field(default_factory=list)

    def _take_fault(self, method: str, target: str) -> Fault | None:
        with self._lock:
            self.arrivals.append((method, target.split("?", 1)[0]))
        return super()._take_fault(method, target)

    def clear(self) -> None:
        super().clear()
        self.arrivals.clear()


@pytest.fixture
def target_proxy(target_registry: Registry) -> Iterator[OrderedProxy]:
    with OrderedProxy(target_registry.host) as p:
        yield p


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVER_REGISTRY_RETRIES", "2")
    monkeypatch.setenv("DELIVER_REGISTRY_BACKOFF", "0.01")


# --------------------------------------------------------------------------- happy paths


def test_single_platform_image_copied_to_another_registry_keeps_its_digest(
    registry: Registry, target_proxy: OrderedProxy, target_registry: Registry, tools: Callable[[str], str]
) -> None:
    image = push_test_image(registry.host, registry.unique_repo("up"), (2_000_000, 50_000, 10), seed="one")
    target_repo = target_registry.unique_repo("prod")
    out = io.StringIO()
    report = copy(image.ref(registry.host), ImageRef(target_proxy.host, target_repo, tag="ignored"),
                  reporter=ProgressReporter(stream=out))  # fmt: skip
    size = sum(b.size for b in image.blobs)
    assert report == CopyReport(
        source=f"{registry.host}/{image.repo}@{image.digest}",
        target=f"{target_proxy.host}/{target_repo}@{image.digest}",
        digest=image.digest, manifests=1, blobs_copied=4, blobs_mounted=0, blobs_skipped=0, bytes_sent=size,
    )  # fmt: skip
    assert report.as_dict()["bytes_sent"] == size and report.as_dict()["digest"] == image.digest
    assert target_proxy.blob_bytes_sent() == size
    # the manifest went up once, by digest, after every blob
    writes = [a for a in target_proxy.arrivals if a[0] in ("PUT", "PATCH")]
    assert writes[-1] == ("PUT", f"/v2/{target_repo}/manifests/{image.digest}")
    assert len([w for w in writes if "/manifests/" in w[1]]) == 1
    raw = skopeo_raw(tools("skopeo"), target_registry.host, target_repo, image.digest)
    assert raw == image.manifest and sha256_digest(raw) == image.digest
    with RegistryClient(target_registry.host) as client:
        for blob in image.blobs:
            with client.get_blob(target_repo, blob.digest) as chunks:
                assert b"".join(chunks) == blob.data
    progress = out.getvalue()
    assert progress.count(": done,") == 4 and "blob 1/4" in progress and "copied " in progress
    # a second run finds everything there: nothing written, nothing sent
    target_proxy.clear()
    again = copy(image.ref(registry.host), ImageRef(target_proxy.host, target_repo))
    assert (again.manifests, again.blobs_skipped, again.blobs_copied, again.bytes_sent) == (0, 4, 0, 0)
    assert target_proxy.blob_bytes_sent() == 0 and not target_proxy.requests("PUT")


@pytest.mark.parametrize("kind", [OCI_MANIFEST, DOCKER_MANIFEST], ids=["oci-index", "docker-list"])
def test_two_platform_index_copied_children_first_with_every_digest_kept(
    registry: Registry, target_proxy: OrderedProxy, target_registry: Registry, tools: Callable[[str], str],
    kind: str,
) -> None:  # fmt: skip
    index, children = push_test_index(registry.host, registry.unique_repo("multi"), kind, seed=kind[-9:])
    target_repo = target_registry.unique_repo("prod")
    report = copy(index.ref(registry.host), ImageRef(target_proxy.host, target_repo), parallel=3)
    assert (report.digest, report.manifests, report.blobs_copied) == (index.digest, 3, 7)  # shared layer once
    assert report.bytes_sent == sum(b.size for b in index.blobs) == target_proxy.blob_bytes_sent()
    puts = [path for method, path in target_proxy.arrivals if method == "PUT"]
    manifest_puts = [p.rsplit("/", 1)[1] for p in puts if "/manifests/" in p]
    assert sorted(manifest_puts[:2]) == sorted(c.digest for c in children)
    assert manifest_puts == [*manifest_puts[:2], index.digest]  # the index last
    assert all("/manifests/" in p for p in puts[-3:])  # after every blob
    skopeo = tools("skopeo")
    for image in [index, *children]:
        raw = skopeo_raw(skopeo, target_registry.host, target_repo, image.digest)
        assert raw == image.manifest and sha256_digest(raw) == image.digest
    with RegistryClient(target_registry.host) as client:
        got = client.get_manifest(target_repo, index.digest)
        assert got.media_type == KINDS[kind][0]


def test_protect_tags_every_manifest_of_an_index_after_all_of_them_are_in(
    registry: Registry, target_proxy: OrderedProxy, target_registry: Registry
) -> None:
    """Registry cleanup keeps protected tags: the index and each platform manifest get one."""
    index, children = push_test_index(
        registry.host, registry.unique_repo("multi"), OCI_MANIFEST, seed="protect"
    )
    target_repo = target_registry.unique_repo("prod")
    report = copy(index.ref(registry.host), ImageRef(target_proxy.host, target_repo), protect=protected_tag)
    expected = {protected_tag(m.digest) for m in [index, *children]}
    assert set(report.tags) == expected and report.tags[-1] == protected_tag(index.digest)
    puts = [
        p.rsplit("/", 1)[1] for method, p in target_proxy.arrivals if method == "PUT" and "/manifests/" in p
    ]
    assert puts[:3] == [*puts[:2], index.digest] and set(puts[3:]) == expected  # tags after the digests
    with RegistryClient(target_registry.host) as client:
        assert set(client.list_tags(target_repo)) == expected
        for image in [index, *children]:
            assert (
                sha256_digest(client.get_manifest(target_repo, protected_tag(image.digest)).data)
                == image.digest
            )


def test_same_registry_promotion_mounts_every_blob_and_sends_no_blob_bytes(
    registry: Registry, tools: Callable[[str], str]
) -> None:
    with FaultProxy(registry.host) as proxy:
        index, children = push_test_index(proxy.host, registry.unique_repo("dev"), OCI_MANIFEST, seed="mount")
        proxy.clear()
        target_repo = registry.unique_repo("prod")
        report = copy(index.ref(proxy.host), ImageRef(proxy.host, target_repo))
        assert (report.blobs_mounted, report.blobs_copied, report.manifests) == (7, 0, 3)
        assert report.bytes_sent == 0
        assert proxy.blob_bytes_sent() == 0
        assert not [e for e in proxy.requests("GET") if "/blobs/" in e.path]  # nothing downloaded either
        mounts = proxy.requests("POST", "mount=")
        assert len(mounts) == 7 and all(e.status == 201 for e in mounts)
    for image in [index, *children]:
        assert skopeo_raw(tools("skopeo"), registry.host, target_repo, image.digest) == image.manifest


# --------------------------------------------------------------------------- failures and resumption


def test_target_dying_mid_copy_leaves_no_manifest_and_a_rerun_sends_only_the_missing_blobs(
    registry: Registry, target_proxy: OrderedProxy, target_registry: Registry, tools: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    image = push_test_image(
        registry.host, registry.unique_repo("up"), (40_000, 30_000, 3_000_000), seed="die"
    )
    big = image.blobs[-1]
    target_repo = target_registry.unique_repo("prod")
    # the connection to the target is cut 1 MB into every upload of the big layer (retries too);
    # the small blobs, uploaded alongside, make it in
    target_proxy.add(Fault("drop", method="PUT", path=big.digest[7:], times=-1, after_bytes=1_000_000))
    target = ImageRef(target_proxy.host, target_repo)
    monkeypatch.setenv("DELIVER_REGISTRY_BACKOFF", "0.05")
    with pytest.raises(RegistryError) as err:
        copy(image.ref(registry.host), target)
    text = str(err.value)
    assert f"upload of blob {big.digest}" in text and "failed after 3 attempts" in text and "fix:" in text
    assert not target_proxy.requests("PUT", "/manifests/")
    with RegistryClient(target_registry.host) as client:
        assert not client.manifest_exists(target_repo, image.digest)
        assert [client.blob_exists(target_repo, b.digest) for b in image.blobs] == [True, True, True, False]
    # the target is back: the rerun sends the big layer only, then the manifest
    target_proxy.clear()
    report = copy(image.ref(registry.host), target)
    assert (report.blobs_copied, report.blobs_skipped, report.manifests) == (1, 3, 1)
    assert report.bytes_sent == big.size == target_proxy.blob_bytes_sent()
    assert skopeo_raw(tools("skopeo"), target_registry.host, target_repo, image.digest) == image.manifest


def test_a_corrupt_upstream_blob_never_reaches_the_target(
    registry: Registry, target_registry: Registry
) -> None:
    image = push_test_image(registry.host, registry.unique_repo("up"), (500_000,), seed="corrupt")
    layer = image.blobs[1]
    target_repo = target_registry.unique_repo("prod")
    with FaultProxy(registry.host) as upstream:
        upstream.add(Fault("corrupt", method="GET", path=f"/blobs/{layer.digest}", times=-1))
        # the target checks every upload against its ?digest= and refuses the altered bytes
        with pytest.raises(SourceError, match="DIGEST_INVALID") as err:
            copy(image.ref(upstream.host), ImageRef(target_registry.host, target_repo))
        assert str(err.value).startswith(f"{upstream.host}/{image.repo}@{layer.digest}: blob {layer.digest}")
        assert "fix: the upstream registry's copy of this blob is corrupt" in str(err.value)
        # hashed on the way too (verify=True): refused before the upload completes
        with RegistryClient(upstream.host) as src, RegistryClient(target_registry.host) as dst:
            blob = RemoteBlob(src, image.repo, layer.digest, layer.size, verify=True)
            with pytest.raises(RegistryError, match="digest mismatch: download of blob"):
                dst.push_blob(target_repo, blob)
    with RegistryClient(target_registry.host) as client:
        assert not client.blob_exists(target_repo, layer.digest)
        assert not client.manifest_exists(target_repo, image.digest)


@pytest.mark.parametrize("who", ["anonymous", "wrong password"])
def test_401_on_the_target_is_one_clear_error_naming_docker_login(
    registry: Registry, auth_registry: Registry, who: str
) -> None:
    image = push_test_image(registry.host, registry.unique_repo("up"), (1_000,), seed="401")
    wrong = Credentials(source="--username", username="tester", password="no")
    creds = ANONYMOUS if who == "anonymous" else wrong
    with pytest.raises(RegistryError) as err:
        copy(image.ref(registry.host), ImageRef(auth_registry.host, "prod/model"), target_credentials=creds)
    text = str(err.value)
    assert text.startswith(f"{auth_registry.host}: authentication failed") and "HTTP 401" in text
    assert "docker login" in text and "--username" in text


def test_a_digest_missing_upstream_is_not_in_the_upstream_registry(
    registry: Registry, target_registry: Registry
) -> None:
    image = push_test_image(registry.host, registry.unique_repo("up"), (10,), seed="missing")
    missing = "sha256:" + "0" * 64
    for repo in (image.repo, registry.unique_repo("never-pushed")):
        source = ImageRef(registry.host, repo, digest=missing)
        with pytest.raises(RegistryError) as err:
            copy(source, ImageRef(target_registry.host, "prod/x"))
        assert str(err.value).startswith(
            f"{registry.host}/{repo}: {registry.host}/{repo}@{missing} is not in the upstream registry"
        )
        assert "fix: promote a digest the upstream environment published" in str(err.value)


def test_a_tag_reference_without_digest_is_refused_before_any_network_call() -> None:
    source = ImageRef.parse("127.0.0.1:9/dev/model:v1")  # nothing listens there
    with pytest.raises(UsageError, match="promotion moves digests only") as err:
        copy(source, ImageRef.parse("127.0.0.1:9/prod/model"))
    assert "@sha256:" in str(err.value)
    with pytest.raises(UsageError, match="parallel must be >= 1"):
        copy(source.with_digest("sha256:" + "1" * 64), ImageRef.parse("127.0.0.1:9/prod/model"), parallel=0)


# --------------------------------------------------------------------------- bounds


class _HugeManifest(BaseHTTPRequestHandler):
    """A 'registry' whose manifests never end: with a huge Content-Length, or chunked without one."""

    protocol_version = "HTTP/1.1"
    sent: ClassVar[list[int]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", OCI_MANIFEST)
        declared = "declared" in self.path
        if declared:
            self.send_header("Content-Length", str(MAX_MANIFEST_BYTES + 1))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk, total = b"{" * 65536, 0
        try:
            while total < 64 * MAX_MANIFEST_BYTES:  # far more than any client should read
                self.wfile.write(chunk if declared else b"%x\r\n%s\r\n" % (len(chunk), chunk))
                total += len(chunk)
        except OSError:
            pass
        _HugeManifest.sent.append(total)
        self.close_connection = True


@pytest.mark.parametrize("repo", ["declared/size", "chunked/stream"])
def test_manifests_larger_than_the_cap_are_refused_without_reading_them(repo: str) -> None:
    server = start_loopback_server(_HugeManifest)
    try:
        client = RegistryClient(loopback_host(server), retries=0)
        with client, pytest.raises(RegistryError, match="larger than 4 MiB") as err:
            client.get_manifest(repo, "sha256:" + "2" * 64)
        assert "fix:" in str(err.value)
        deadline = time.monotonic() + 10
        while len(_HugeManifest.sent) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop_loopback_server(server)
    assert _HugeManifest.sent[-1] < 64 * MAX_MANIFEST_BYTES  # the client hung up long before the end
    _HugeManifest.sent.clear()


def test_every_registry_client_call_has_a_timeout_and_reads_big_pieces() -> None:
    from httpcore._sync.http11 import HTTP11Connection

    with RegistryClient("127.0.0.1:9") as client:
        timeout = client._transport.http.timeout
    assert None not in (timeout.connect, timeout.read, timeout.write, timeout.pool)
    assert HTTP11Connection.READ_NUM_BYTES >= 1 << 20  # a streamed copy's GET costs half the CPU
