"""``deliver modelcar publish``: the image pushed to an entry environment's registry, then its release.

Only an entry environment (no ``promotion.from``) takes a new modelcar; the others get it through
``deliver promote``. After the push the lock is refreshed and the environment's release
(clusters/<env>/release.yaml) names the image by digest, with a ``publish`` ledger entry.

Layers are generated twice: a hash pass, then the upload pass, which starts for each layer as
soon as it is hashed (blobs the registry has are skipped, blobs of the same image in another
environment's repository on the same host are mounted); manifests go last.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from delivery.config import list_envs, load_env
from delivery.core.console import ProgressReporter
from delivery.core.errors import ConfigError
from delivery.modelcar.image import ModelLayer
from delivery.modelcar.lock import env_repository, write_lock
from delivery.modelcar.pipeline import BuildOptions, BuiltImage, build_image, open_cache
from delivery.modelcar.spec import load_spec
from delivery.oci.blobs import Blob, BytesBlob, sha256_digest
from delivery.oci.spec import OCI_CONFIG, OCI_INDEX, OCI_LAYER_TAR, OCI_MANIFEST
from delivery.release import Artifact, Source, protected_tag
from delivery.release.entry import record, require_entry


@dataclass(frozen=True)
class LayerBlob:
    """A model layer as a Blob: the tar is generated again from the files on each ``chunks()``."""

    layer: ModelLayer

    @property
    def label(self) -> str:
        """What the push progress shows for this layer."""
        files = self.layer.tar.files
        return files[0].arcname if len(files) == 1 else f"models/ ({len(files)} small files)"

    @property
    def digest(self) -> str:
        return self.layer.digest

    @property
    def size(self) -> int:
        return self.layer.tar.size

    @property
    def media_type(self) -> str:
        return OCI_LAYER_TAR

    def chunks(self) -> Iterator[bytes]:
        return self.layer.tar.stream()


@dataclass(frozen=True)
class PublishResult:
    image: BuiltImage
    uri: str
    bytes_sent: int
    blobs: list[dict[str, Any]]
    lock_written: bool
    ledger_id: str | None = None  # the ledger entry that recorded a new release, None when unchanged


def _mount_sources(repo: Path, env: str, host: str, repository: str) -> list[str]:
    """Repositories of the same image in other environments on the same registry host."""
    out = []
    for other in list_envs(repo):
        if other == env:
            continue
        try:
            cfg = load_env(repo, other)
        except ConfigError:  # mounting is only a shortcut: a broken other env must not block this publish
            continue
        ref = env_repository(cfg.registry, repository)
        if ref.registry == host and ref.repository not in out:
            out.append(ref.repository)
    return out


def publish(
    repo: Path,
    name: str,
    env: str,
    opts: BuildOptions,
    reporter: ProgressReporter,
    *,
    username: str | None = None,
    password: str | None = None,
    password_origin: str = "",
    parallel: int = 4,
    allow_unverified_source: bool = False,
) -> PublishResult:
    """Build modelcar ``name`` and push it to environment ``env``'s registry; returns the oci:// URI.

    Each model layer starts uploading (``parallel`` blobs at once) as soon as it is hashed, while
    other layers are still being hashed; every manifest goes up last, once all its blobs are in.
    A source that cannot be checked against the hub (``--source DIR`` without the revision's
    listing in the HF cache) enters the promotion chain only with ``allow_unverified_source``.
    """
    from delivery.oci.auth import resolve_credentials
    from delivery.oci.push import ImagePush
    from delivery.oci.registry import RegistryClient

    opts = dataclasses.replace(opts, allow_unverified=allow_unverified_source)
    cfg = load_env(repo, env)
    require_entry(repo, cfg, f"deliver modelcar publish {name}")
    spec = load_spec(repo, name)
    target = env_repository(cfg.registry, spec.repository)
    credentials = resolve_credentials(
        target.registry, username=username, password=password, password_origin=password_origin
    )
    mounts = _mount_sources(repo, env, target.registry, target.repository)
    blobs: list[dict[str, Any]] = []
    sent = 0
    cache = open_cache(opts)  # saved only once the image is in the registry
    with (
        RegistryClient(target.registry, credentials) as client,
        ImagePush(client, target.repository, mount_from=mounts, parallel=parallel, progress=reporter) as push,
    ):
        built = build_image(
            repo,
            name,
            opts,
            reporter,
            on_layer=lambda layer: push.add(LayerBlob(layer)),
            spec=spec,
            cache=cache,
        )
        single = built.index is None
        for platform, base in built.bases.items():
            layers: list[Blob] = [base.blob(d) for d in base.layers]
            layers += [LayerBlob(layer) for layer in built.layers]
            report = push.manifest(
                layers=layers,
                config=BytesBlob(built.configs[platform], OCI_CONFIG),
                manifest=built.manifests[platform],
                manifest_media_type=OCI_MANIFEST,
                # the protected tag keeps what the release records from registry cleanup (each
                # platform manifest of an index too)
                tags=[built.tag, protected_tag(built.digest)]
                if single
                else [protected_tag(sha256_digest(built.manifests[platform]))],
            )
            sent += report.bytes_sent
            blobs += [
                {"digest": b.digest, "size": b.size, "outcome": b.outcome, "bytesSent": b.bytes_sent}
                for b in report.blobs
            ]
        if built.index is not None:
            client.put_manifest(target.repository, built.digest, built.index, OCI_INDEX)
            client.put_manifest(target.repository, built.tag, built.index, OCI_INDEX)
            # the release records this digest: its protected tag keeps it from registry cleanup
            client.put_manifest(target.repository, protected_tag(built.digest), built.index, OCI_INDEX)
    cache.save()
    written = write_lock(repo, built.lock_data())
    ref = target.with_digest(built.digest)
    entry = record(
        repo,
        env,
        name,
        Artifact(
            kind="modelcar",
            ref=str(ref),
            source=Source(
                repo=spec.source.repo, revision=spec.source.revision, verified=built.source.verified
            ),
        ),
    )
    uri = ref.oci_uri
    reporter.line(f"published {uri}" + (f" (release of {env} updated, ledger {entry.id})" if entry else ""))
    return PublishResult(built, uri, sent, blobs, written, entry.id if entry else None)
