"""``deliver modelcar build``: a modelcar as an OCI image layout directory (atomic), and its lock.

Model layers are generated once, straight into their layout blob while being hashed; a layer
whose digest the digest cache knows and that the previous layout already holds is hard-linked
instead of regenerated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from delivery.core.console import ProgressReporter
from delivery.core.errors import DeliveryError, UsageError
from delivery.core.fsutil import atomic_directory
from delivery.modelcar.digestcache import DigestCache
from delivery.modelcar.image import ModelLayer
from delivery.modelcar.lock import write_lock
from delivery.modelcar.pipeline import BuildOptions, BuiltImage, assemble, map_layers, open_cache, prepare
from delivery.modelcar.tarlayer import Hashed, Progress, TarLayer
from delivery.oci.layout import LayoutWriter
from delivery.oci.spec import OCI_INDEX, OCI_MANIFEST, Descriptor, platform_dict


def write_layer(
    writer: LayoutWriter, layer: TarLayer, cache: DigestCache, progress: Progress | None = None
) -> ModelLayer:
    """Write a model layer into the layout (or link the previous layout's copy when its digest is known)."""
    known = cache.layer_digest(layer)
    if known is not None and writer.reuse(known[0], layer.size):
        if progress is not None:
            progress(layer.data_size)
        return ModelLayer(layer, known[0], known[1])
    passes: list[Hashed] = []

    def write(out: BinaryIO) -> str:
        passes.append(layer.digest_and_write(out, progress))
        return passes[-1].digest

    digest = writer.add_generated(write)
    cache.remember_layer(layer, passes[-1])
    return ModelLayer(layer, digest, passes[-1].sums)


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
    spec, source, bases, planned = prepare(repo, name, opts, reporter)
    target = (output or default_output(repo, name)).resolve()
    if target.exists() and not (target / "oci-layout").is_file() and any(target.iterdir()):
        raise UsageError(
            "output directory exists and is not an OCI layout",
            where=str(target),
            fix="pass an empty or new --output directory (an existing layout is replaced)",
        )
    cache = open_cache(opts)
    try:
        with atomic_directory(target) as tmp:
            writer = LayoutWriter(tmp, previous=target if (target / "oci-layout").is_file() else None)
            task = reporter.task("layers", sum(t.data_size for t in planned))

            layers = map_layers(lambda t: write_layer(writer, t, cache, task.advance), planned, opts.workers)
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
                top = Descriptor(OCI_INDEX, built.digest, len(built.index))
            else:
                (platform,) = bases
                top = Descriptor(OCI_MANIFEST, built.digest, len(built.top), platform=platform_dict(platform))
            writer.finish(top, built.tag)
    except OSError as err:
        raise DeliveryError(
            f"cannot write the layout: {err.strerror or err}",
            where=str(target),
            fix="free disk space (or raise the file size limit), or pass another --output",
        ) from None
    cache.save()
    written = write_lock(repo, built.lock_data())
    reporter.line(f"built {target} ({built.digest})")
    return BuildResult(built, target, written)
