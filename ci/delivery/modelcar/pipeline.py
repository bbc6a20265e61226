"""What build, publish and verify share: options, inputs, the hash pass and the assembled image.

``build_image`` is pass 1 (every layer's digest, from the digest cache when nothing changed, and
each file checked against the hub's sha256 as soon as its layer is hashed); ``assemble`` turns the
hashed layers into configs, manifests and (for several platforms) the index.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from delivery.core.console import ProgressReporter
from delivery.core.errors import UsageError
from delivery.modelcar.base import resolve_base
from delivery.modelcar.digestcache import DigestCache, default_cache_dir
from delivery.modelcar.image import (
    BaseImage,
    ModelLayer,
    check_hub_sums,
    image_config,
    image_index,
    image_manifest,
    plan_layers,
)
from delivery.modelcar.lock import lock_data
from delivery.modelcar.source import ModelSource, directory_source, huggingface_source, read_token
from delivery.modelcar.spec import ModelcarSpec, load_spec
from delivery.modelcar.tarlayer import Progress, TarLayer
from delivery.oci.blobs import sha256_digest
from delivery.oci.spec import OCI_INDEX, OCI_MANIFEST


@dataclass(frozen=True)
class BuildOptions:
    """Where inputs come from and which caches to use."""

    source_dir: Path | None = None
    hf_cache: Path | None = None
    offline: bool | None = None
    token_file: Path | None = None
    cache_dir: Path | None = None
    use_digest_cache: bool = True
    allow_unverified: bool = True  # publish: only with --allow-unverified-source
    workers: int = field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))
    downloader: Callable[..., str] | None = None

    @property
    def cache(self) -> Path:
        return self.cache_dir or default_cache_dir()


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
        return OCI_INDEX if self.index is not None else OCI_MANIFEST

    @property
    def digest(self) -> str:
        return sha256_digest(self.top)

    @property
    def tag(self) -> str:
        return self.spec.source.revision[:12]

    def lock_data(self) -> dict[str, Any]:
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
        return lock_data(
            spec=self.spec,
            source=self.source,
            files=files,
            layers=layers,
            bases={p: b.manifest_digest for p, b in self.bases.items()},
            manifests={p: sha256_digest(m) for p, m in self.manifests.items()},
            digest=self.digest,
            media_type=self.media_type,
        )


def load_source(spec: ModelcarSpec, opts: BuildOptions) -> ModelSource:
    """The spec's files: from ``--source DIR`` or the Hugging Face cache/hub."""
    if opts.source_dir is not None:
        return directory_source(opts.source_dir, spec, opts.hf_cache)
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
            read = layer.digest_and_write(None, progress)
            cache.remember_layer(layer, read)
            hashed = ModelLayer(layer, read.digest, read.sums)
        if on_layer is not None:
            on_layer(hashed)
        return hashed

    return map_layers(one, layers, workers)


def map_layers(
    fn: Callable[[TarLayer], ModelLayer], layers: Sequence[TarLayer], workers: int
) -> list[ModelLayer]:
    """``fn`` over the layers on ``workers`` threads, largest first; the first error stops the rest."""
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
    ok = source.verified
    for platform, base in bases.items():
        configs[platform] = image_config(base, layers, spec, verified=ok)
        manifests[platform] = image_manifest(base, configs[platform], layers, spec, verified=ok)
    index = image_index(list(manifests.items()), spec, verified=ok) if len(manifests) > 1 else None
    return BuiltImage(spec, source, bases, layers, configs, manifests, index)


def prepare(
    repo: Path, name: str, opts: BuildOptions, reporter: ProgressReporter, spec: ModelcarSpec | None = None
) -> tuple[ModelcarSpec, ModelSource, dict[str, BaseImage], list[TarLayer]]:
    spec = spec if spec is not None else load_spec(repo, name)
    reporter.line(f"modelcar {name}: {spec.source.repo}@{spec.source.revision[:12]}")
    source = load_source(spec, opts)
    if not source.verified:
        if not opts.allow_unverified:
            raise UsageError(
                f"{source.root} cannot be checked against {spec.source.repo}@{spec.source.revision[:12]}: "
                "the HF cache has no listing of that revision, so nothing proves these are its files",
                where=str(source.root),
                fix="build once without --source (the listing is cached), or pass "
                "--allow-unverified-source to publish it marked unverified (image label and lock say so)",
            )
        reporter.line(f"source: {source.root} is unverified (no hub listing of the revision in the HF cache)")
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
    cache: DigestCache | None = None,
) -> BuiltImage:
    """Pass 1 only: the image's digest and bytes without writing any output.

    ``on_layer`` sees each model layer as soon as it is hashed and its files match the hub's sha256s;
    ``spec`` is the already loaded modelcars/NAME.yaml (read here when not given). The digest
    cache is saved here, unless the caller passes its own ``cache`` and saves it once its own work
    (a push) succeeded.
    """
    spec, source, bases, planned = prepare(repo, name, opts, reporter, spec)
    owned = cache is None
    cache = cache if cache is not None else open_cache(opts)
    task = reporter.task("hash", sum(t.data_size for t in planned))

    def checked(layer: ModelLayer) -> None:
        check_hub_sums(source, [layer], complete=False)  # a corrupt file fails before it is pushed
        if on_layer is not None:
            on_layer(layer)

    layers = hash_layers(planned, cache, opts.workers, task.advance, checked)
    task.finish()
    built = assemble(spec, source, bases, layers)
    if owned:
        cache.save()
    return built


def open_cache(opts: BuildOptions) -> DigestCache:
    """The digest cache these options ask for (a disabled one with --no-cache)."""
    return DigestCache.at(opts.cache if opts.use_digest_cache else None)
