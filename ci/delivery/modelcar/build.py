"""Build, publish and verify modelcars: spec + source + base -> layers, config, manifest -> output.

- ``build_layout``: an OCI image layout directory (atomic), and the lock.
- ``publish``: the same image pushed to an environment's registry through the OCI client
  (layers generated twice: a hash pass, then the upload pass, which starts for each layer as soon
  as it is hashed; blobs the registry has are skipped), manifests last; then the lock.
- ``verify``: a fresh hash pass (no digest cache) compared with the lock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from delivery.config import list_envs, load_env
from delivery.core.console import ProgressReporter
from delivery.core.errors import ConfigError, DeliveryError, Problem, UsageError, ValidationFailed
from delivery.core.fsutil import atomic_directory
from delivery.modelcar import lock as lockmod
from delivery.modelcar.base import resolve_base
from delivery.modelcar.digestcache import DigestCache, default_cache_dir
from delivery.modelcar.image import (
    MT_CONFIG,
    MT_INDEX,
    MT_MANIFEST,
    BaseImage,
    Descriptor,
    ModelLayer,
    check_hub_sums,
    image_config,
    image_index,
    image_manifest,
    plan_layers,
    platform_dict,
)
from delivery.modelcar.layout import LayoutWriter
from delivery.modelcar.source import ModelSource, directory_source, huggingface_source, read_token
from delivery.modelcar.spec import ModelcarSpec, load_spec
from delivery.modelcar.tarlayer import MEDIA_TYPE_TAR, Progress, TarLayer
from delivery.oci.blobs import Blob, BytesBlob, sha256_digest


@dataclass(frozen=True)
class BuildOptions:
    """Where inputs come from and which caches to use."""

    source_dir: Path | None = None
    hf_cache: Path | None = None
    offline: bool | None = None
    token_file: Path | None = None
    cache_dir: Path | None = None
    use_digest_cache: bool = True
    workers: int = field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))
    downloader: Callable[..., str] | None = None

    @property
    def cache(self) -> Path:
        return self.cache_dir or default_cache_dir()


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
        return MEDIA_TYPE_TAR

    def chunks(self) -> Iterator[bytes]:
        return self.layer.tar.stream()


@dataclass
class BuiltImage:
    """Everything about one build: the inputs resolved and the bytes of config/manifest/index."""

    spec: ModelcarSpec
    source: ModelSource
    bases: dict[str, BaseImage]
    layers: list[ModelLayer]
    configs: dict[str, bytes]
    manifests: dict[str, bytes]
    index: bytes | None

    @property
    def top(self) -> bytes:
        """The bytes the image's digest is computed from (manifest, or index when multi-arch)."""
        return self.index if self.index is not None else next(iter(self.manifests.values()))

    @property
    def media_type(self) -> str:
        return MT_INDEX if self.index is not None else MT_MANIFEST

    @property
    def digest(self) -> str:
        return sha256_digest(self.top)

    @property
    def tag(self) -> str:
        return self.spec.source.revision[:12]

    def lock_data(self, repo: Path) -> dict[str, Any]:
        sums = {n: s for layer in self.layers for n, s in layer.file_sha256.items()}
        files = [
            {"path": f.relpath, "size": f.size, "sha256": sums[f"models/{f.relpath}"]}
            for f in self.source.files
        ]
        layers = [
            {
                "digest": layer.digest,
                "size": layer.tar.size,
                "files": [f.arcname.removeprefix("models/") for f in layer.tar.files],
            }
            for layer in self.layers
        ]
        return lockmod.lock_data(
            spec=self.spec,
            files=files,
            layers=layers,
            bases={p: b.manifest_digest for p, b in self.bases.items()},
            manifests={p: sha256_digest(m) for p, m in self.manifests.items()},
            digest=self.digest,
            media_type=self.media_type,
            images=lockmod.env_images(repo, self.spec, self.digest),
        )


def load_source(spec: ModelcarSpec, opts: BuildOptions) -> ModelSource:
    """The spec's files: from ``--source DIR`` or the Hugging Face cache/hub."""
    if opts.source_dir is not None:
        return directory_source(opts.source_dir, spec)
    return huggingface_source(
        spec,
        cache_dir=opts.hf_cache,
        offline=opts.offline,
        token=read_token(opts.token_file),
        downloader=opts.downloader,
    )


def hash_layers(
    layers: Sequence[TarLayer],
    cache: DigestCache,
    workers: int,
    progress: Progress | None,
    on_layer: Callable[[ModelLayer], None] | None = None,
) -> list[ModelLayer]:
    """Pass 1: each layer's digest and its files' sha256 (from the cache when nothing changed).

    ``on_layer`` is called (from a worker thread) with each layer as soon as it is hashed.
    """

    def one(layer: TarLayer) -> ModelLayer:
        known = cache.layer_digest(layer)
        if known is not None:
            if progress is not None:
                progress(layer.data_size)
            hashed = ModelLayer(layer, known[0], known[1])
        else:
            digest, sums = layer.digest_and_write(None, progress)
            cache.remember_layer(layer, digest, sums)
            hashed = ModelLayer(layer, digest, sums)
        if on_layer is not None:
            on_layer(hashed)
        return hashed

    return _parallel(one, layers, workers)


def _parallel(
    fn: Callable[[TarLayer], ModelLayer], layers: Sequence[TarLayer], workers: int
) -> list[ModelLayer]:
    if workers <= 1 or len(layers) <= 1:
        return [fn(layer) for layer in layers]
    # Largest first, so the longest job starts first; results keep the planned order.
    order = sorted(range(len(layers)), key=lambda i: -layers[i].data_size)
    stop = threading.Event()

    def guarded(layer: TarLayer) -> ModelLayer | None:
        if stop.is_set():  # an earlier layer failed: do not read this one
            return None
        try:
            return fn(layer)
        except BaseException:
            stop.set()
            raise

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="modelcar") as pool:
        futures = {i: pool.submit(guarded, layers[i]) for i in order}
        done, _ = wait(futures.values(), return_when=FIRST_EXCEPTION)
        error = next((f.exception() for f in done if f.exception() is not None), None)
        if error is not None:  # stop at the first error: layers not started yet are never read
            for future in futures.values():
                future.cancel()
            raise error
        results = [futures[i].result() for i in range(len(layers))]
        return [r for r in results if r is not None]


def assemble(
    spec: ModelcarSpec, source: ModelSource, bases: dict[str, BaseImage], layers: list[ModelLayer]
) -> BuiltImage:
    """Configs, manifests (and the index for several platforms) from resolved layers."""
    check_hub_sums(source, layers)
    configs, manifests = {}, {}
    for platform, base in bases.items():
        configs[platform] = image_config(base, layers, spec)
        manifests[platform] = image_manifest(base, configs[platform], layers, spec)
    index = image_index(list(manifests.items()), spec) if len(manifests) > 1 else None
    return BuiltImage(spec, source, bases, layers, configs, manifests, index)


def _prepare(
    repo: Path, name: str, opts: BuildOptions, reporter: ProgressReporter, spec: ModelcarSpec | None = None
) -> tuple[ModelcarSpec, ModelSource, dict[str, BaseImage], list[TarLayer]]:
    spec = spec if spec is not None else load_spec(repo, name)
    reporter.line(f"modelcar {name}: {spec.source.repo}@{spec.source.revision[:12]}")
    source = load_source(spec, opts)
    bases = resolve_base(spec.base, spec.platforms, repo=repo, cache_dir=opts.cache)
    return spec, source, bases, plan_layers(source, spec)


def build_image(
    repo: Path,
    name: str,
    opts: BuildOptions,
    reporter: ProgressReporter,
    *,
    on_layer: Callable[[ModelLayer], None] | None = None,
    spec: ModelcarSpec | None = None,
) -> BuiltImage:
    """Pass 1 only: the image's digest and bytes without writing any output.

    ``on_layer`` sees each model layer as soon as it is hashed and its files match the hub's sha256s;
    ``spec`` is the already loaded modelcars/NAME.yaml (read here when not given).
    """
    spec, source, bases, planned = _prepare(repo, name, opts, reporter, spec)
    cache = DigestCache.at(opts.cache if opts.use_digest_cache else None)
    task = reporter.task("hash", sum(t.data_size for t in planned))

    def checked(layer: ModelLayer) -> None:
        check_hub_sums(source, [layer], complete=False)  # a corrupt file fails before it is pushed
        if on_layer is not None:
            on_layer(layer)

    layers = hash_layers(planned, cache, opts.workers, task.advance, checked)
    task.finish()
    built = assemble(spec, source, bases, layers)
    cache.save()
    return built


@dataclass(frozen=True)
class BuildResult:
    image: BuiltImage
    output: Path | None
    lock_written: bool


def default_output(repo: Path, name: str) -> Path:
    return repo / "out" / "modelcars" / name


def build_layout(
    repo: Path, name: str, output: Path | None, opts: BuildOptions, reporter: ProgressReporter
) -> BuildResult:
    """Build modelcar ``name`` into an OCI layout at ``output`` (atomic) and write its lock."""
    spec, source, bases, planned = _prepare(repo, name, opts, reporter)
    target = (output or default_output(repo, name)).resolve()
    if target.exists() and not (target / "oci-layout").is_file() and any(target.iterdir()):
        raise UsageError(
            "output directory exists and is not an OCI layout",
            where=str(target),
            fix="pass an empty or new --output directory (an existing layout is replaced)",
        )
    cache = DigestCache.at(opts.cache if opts.use_digest_cache else None)
    try:
        with atomic_directory(target) as tmp:
            writer = LayoutWriter(tmp, previous=target if (target / "oci-layout").is_file() else None)
            task = reporter.task("layers", sum(t.data_size for t in planned))

            def one(layer: TarLayer) -> ModelLayer:
                written = writer.add_layer(layer, cache.layer_digest(layer), task.advance)
                cache.remember_layer(layer, written.digest, written.file_sha256)
                return written

            layers = _parallel(one, planned, opts.workers)
            task.finish()
            built = assemble(spec, source, bases, layers)
            for base in bases.values():
                for desc in base.layers:
                    writer.add_blob(base.blob(desc))
            for platform in bases:
                writer.add_bytes(built.configs[platform])
                writer.add_bytes(built.manifests[platform])
            if built.index is not None:
                writer.add_bytes(built.index)
                top = Descriptor(MT_INDEX, built.digest, len(built.index))
            else:
                (platform,) = bases
                top = Descriptor(MT_MANIFEST, built.digest, len(built.top), platform=platform_dict(platform))
            writer.finish(top, built.tag)
    except OSError as err:
        raise DeliveryError(
            f"cannot write the layout: {err.strerror or err}",
            where=str(target),
            fix="free disk space (or raise the file size limit), or pass another --output",
        ) from None
    cache.save()
    written = lockmod.write_lock(repo, built.lock_data(repo))
    reporter.line(f"built {target} ({built.digest})")
    return BuildResult(built, target, written)


@dataclass(frozen=True)
class PublishResult:
    image: BuiltImage
    uri: str
    bytes_sent: int
    blobs: list[dict[str, Any]]
    lock_written: bool


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
        ref = lockmod.env_repository(cfg.registry, repository)
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
    parallel: int = 4,
) -> PublishResult:
    """Build modelcar ``name`` and push it to environment ``env``'s registry; returns the oci:// URI.

    Each model layer starts uploading (``parallel`` blobs at once) as soon as it is hashed, while
    other layers are still being hashed; every manifest goes up last, once all its blobs are in.
    """
    from delivery.oci.auth import resolve_credentials
    from delivery.oci.registry import ImagePush, RegistryClient

    cfg = load_env(repo, env)
    spec = load_spec(repo, name)
    target = lockmod.env_repository(cfg.registry, spec.repository)
    credentials = resolve_credentials(target.registry, username=username, password=password)
    mounts = _mount_sources(repo, env, target.registry, target.repository)
    blobs: list[dict[str, Any]] = []
    sent = 0
    with (
        RegistryClient(target.registry, credentials) as client,
        ImagePush(client, target.repository, mount_from=mounts, parallel=parallel, progress=reporter) as push,
    ):
        built = build_image(
            repo, name, opts, reporter, on_layer=lambda layer: push.add(LayerBlob(layer)), spec=spec
        )
        single = built.index is None
        for platform, base in built.bases.items():
            layers: list[Blob] = [base.blob(d) for d in base.layers]
            layers += [LayerBlob(layer) for layer in built.layers]
            report = push.manifest(
                layers=layers,
                config=BytesBlob(built.configs[platform], MT_CONFIG),
                manifest=built.manifests[platform],
                manifest_media_type=MT_MANIFEST,
                tags=[built.tag] if single else [],
            )
            sent += report.bytes_sent
            blobs += [
                {"digest": b.digest, "size": b.size, "outcome": b.outcome, "bytesSent": b.bytes_sent}
                for b in report.blobs
            ]
        if built.index is not None:
            client.put_manifest(target.repository, built.digest, built.index, MT_INDEX)
            client.put_manifest(target.repository, built.tag, built.index, MT_INDEX)
    written = lockmod.write_lock(repo, built.lock_data(repo))
    uri = target.with_digest(built.digest).oci_uri
    reporter.line(f"published {uri}")
    return PublishResult(built, uri, sent, blobs, written)


@dataclass(frozen=True)
class VerifyResult:
    image: BuiltImage
    expected: str
    ok: bool
    differences: list[str]


def verify(repo: Path, name: str, opts: BuildOptions, reporter: ProgressReporter) -> VerifyResult:
    """Rebuild from the source (reading every byte again) and compare with the committed lock."""
    locked = lockmod.read_lock(repo, name)
    if locked is None:
        raise UsageError(
            f"modelcar {name!r} has no lock yet",
            where=str(lockmod.lock_path(repo, name).relative_to(repo)),
            fix=f"run: deliver modelcar build {name} (and commit the lock)",
        )
    fresh = build_image(repo, name, BuildOptions(**{**opts.__dict__, "use_digest_cache": False}), reporter)
    differences = _differences(locked.data, fresh.lock_data(repo))
    ok = fresh.digest == locked.digest and not differences
    result = VerifyResult(fresh, locked.digest, ok, differences)
    if not ok:
        raise ValidationFailed.of(
            [
                _problem(
                    repo, name, f"rebuilt digest {fresh.digest} differs from the lock's {locked.digest}"
                ),
                *(_problem(repo, name, d) for d in differences),
            ]
        )
    return result


def _problem(repo: Path, name: str, what: str) -> Problem:
    return Problem(
        str(lockmod.lock_path(repo, name).relative_to(repo)),
        what,
        "find what changed (source files, base, spec); if intended, rebuild and commit the lock",
    )


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    old_files = {f["path"]: f for f in old.get("files") or []}
    new_files = {f["path"]: f for f in new.get("files") or []}
    for path in sorted(old_files.keys() | new_files.keys()):
        a, b = old_files.get(path), new_files.get(path)
        if a is None:
            out.append(f"file {path} is new")
        elif b is None:
            out.append(f"file {path} is missing from the source")
        elif a != b:
            out.append(f"file {path} changed: sha256 {a.get('sha256')} -> {b.get('sha256')}")
    for key in ("source", "tarFormat", "base"):
        if old.get(key) != new.get(key):
            out.append(f"{key} changed: {old.get(key)} -> {new.get(key)}")
    return out
