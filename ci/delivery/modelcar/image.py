"""The image: base layers as they are + one tar layer per large model file (small files share one).

Config and manifest are canonical JSON (sorted keys, no whitespace, UTF-8) with no wall-clock
time anywhere, so the same inputs give the same manifest digest on every machine. The image is a
normal runnable OCI image (KServe's modelcar sidecar runs ``sh -c 'ln -sf ...'`` in it): no
ENTRYPOINT, so the args KServe passes are what runs; the files live under /models, readable by
any uid; the config says which uid to run as.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from delivery.core.errors import BadSourceError, SourceError
from delivery.modelcar.source import ModelSource
from delivery.modelcar.spec import ModelcarSpec
from delivery.modelcar.tarlayer import LayerFile, TarLayer
from delivery.oci.blobs import Blob, sha256_digest
from delivery.oci.spec import (
    ANNOTATION_BASE_DIGEST,
    ANNOTATION_BASE_NAME,
    ANNOTATION_MODELCAR_FILE,
    ANNOTATION_MODELCAR_UNVERIFIED,
    ANNOTATION_REVISION,
    ANNOTATION_SOURCE,
    ANNOTATION_TITLE,
    EPOCH,
    OCI_CONFIG,
    OCI_LAYER_TAR,
    OCI_MANIFEST,
    Descriptor,
    canonical_json,
    index_json,
    manifest_json,
    platform_dict,
)

MODELS_DIR = "models"
# Config keys of a base config that only describe how the base was built (host names, tool versions).
_DROPPED_CONFIG_KEYS = ("created", "container", "container_config", "docker_version", "author")


BlobGetter = Callable[[Descriptor], Blob]


@dataclass(frozen=True)
class BaseImage:
    """One platform of the pinned base image: its config and layers (bytes reachable via ``blob``)."""

    name: str
    platform: str
    manifest_digest: str
    config: dict[str, Any]
    layers: tuple[Descriptor, ...]
    blob: BlobGetter = field(repr=False, compare=False)


@dataclass(frozen=True)
class ModelLayer:
    """A planned model layer with its digest and the sha256 of each of its files."""

    tar: TarLayer
    digest: str
    file_sha256: dict[str, str]

    @property
    def descriptor(self) -> Descriptor:
        annotations = {}
        if len(self.tar.files) == 1:
            annotations[ANNOTATION_MODELCAR_FILE] = self.tar.files[0].arcname
        return Descriptor(OCI_LAYER_TAR, self.digest, self.tar.size, annotations)


def plan_layers(source: ModelSource, spec: ModelcarSpec) -> list[TarLayer]:
    """Small files (below the threshold) in one layer first, then one layer per large file, by path."""
    small = [f for f in source.files if f.size < spec.layer_threshold]
    large = [f for f in source.files if f.size >= spec.layer_threshold]

    def as_layer_file(relpath: str, path: Any, size: int) -> LayerFile:
        return LayerFile(f"{MODELS_DIR}/{relpath}", path, size)

    layers = []
    if small:
        layers.append(TarLayer(tuple(as_layer_file(f.relpath, f.path, f.size) for f in small)))
    layers += [TarLayer((as_layer_file(f.relpath, f.path, f.size),)) for f in large]
    return layers


def check_hub_sums(source: ModelSource, layers: Sequence[ModelLayer], *, complete: bool = True) -> None:
    """Every file whose sha256 the hub published must hash to exactly that.

    With ``complete=False`` only the files inside ``layers`` are checked (one layer as it is hashed).
    """
    sums = {name: s for layer in layers for name, s in layer.file_sha256.items()}
    for f in source.files:
        got = sums.get(f"{MODELS_DIR}/{f.relpath}")
        if got is None and not complete:
            continue
        if f.expected_sha256 and got != f.expected_sha256:
            raise BadSourceError(
                f"{f.relpath}: sha256 {got} does not match the hub's {f.expected_sha256}",
                where=str(f.path),
                fix="the cached file is corrupt or altered: delete it from the HF cache, download again",
            )


UNVERIFIED = "built from a local directory not checked against the hub's listing of this revision"


def _labels(spec: ModelcarSpec, verified: bool = True) -> dict[str, str]:
    """Source and revision; an unverified build says so (the revision is then only a claim)."""
    labels = {
        ANNOTATION_SOURCE: f"https://huggingface.co/{spec.source.repo}",
        ANNOTATION_REVISION: spec.source.revision,
        ANNOTATION_TITLE: spec.repository,
    }
    if not verified:
        labels[ANNOTATION_MODELCAR_UNVERIFIED] = UNVERIFIED
    return labels


def image_config(
    base: BaseImage, layers: Sequence[ModelLayer], spec: ModelcarSpec, *, verified: bool = True
) -> bytes:
    """The image config: the base's, minus build-time noise, plus our layers, user and labels."""
    cfg = copy.deepcopy(base.config)
    for key in _DROPPED_CONFIG_KEYS:
        cfg.pop(key, None)
    run = dict(cfg.get("config") or {})
    run.pop("Entrypoint", None)  # KServe passes args only: an ENTRYPOINT would swallow them
    run["User"] = f"{spec.uid}:{spec.uid}"
    labels = dict(run.get("Labels") or {})
    labels.update(_labels(spec, verified))
    run["Labels"] = labels
    cfg["config"] = run
    rootfs = dict(cfg.get("rootfs") or {"type": "layers"})
    diff_ids = list(rootfs.get("diff_ids") or [])
    if len(diff_ids) != len(base.layers):
        raise SourceError(
            f"base config lists {len(diff_ids)} diff_ids for {len(base.layers)} layers",
            where=base.name,
            fix="use a well-formed base image",
        )
    rootfs["diff_ids"] = diff_ids + [layer.digest for layer in layers]  # uncompressed: diff_id == digest
    cfg["rootfs"] = rootfs
    # every entry gets a created time (the epoch: reproducible; umoci stat needs one)
    history = [
        {"created": EPOCH, **h} if isinstance(h, dict) and "created" not in h else h
        for h in cfg.get("history") or []
    ]
    for layer in layers:
        names = ", ".join(f.arcname for f in layer.tar.files)
        if len(names) > 200:
            names = f"{len(layer.tar.files)} files under {MODELS_DIR}/"
        history.append(
            {"created": EPOCH, "created_by": f"deliver modelcar: {names}", "comment": spec.source.revision}
        )
    cfg["history"] = history
    return canonical_json(cfg)


def image_manifest(
    base: BaseImage, config: bytes, layers: Sequence[ModelLayer], spec: ModelcarSpec, *, verified: bool = True
) -> bytes:
    """The OCI image manifest: base layers (as they are), then the model layers; annotated."""
    return manifest_json(
        Descriptor(OCI_CONFIG, sha256_digest(config), len(config)),
        [*base.layers, *(layer.descriptor for layer in layers)],
        {**_labels(spec, verified), **_base_annotations(spec, base)},
    )


def _base_annotations(spec: ModelcarSpec, base: BaseImage) -> dict[str, str]:
    """Base name and digest; a local layout's path is left out (it differs per machine and checkout)."""
    found = {ANNOTATION_BASE_DIGEST: base.manifest_digest}
    if not spec.base.startswith("oci-layout:"):
        found[ANNOTATION_BASE_NAME] = spec.base
    return found


def image_index(
    manifests: Sequence[tuple[str, bytes]], spec: ModelcarSpec, *, verified: bool = True
) -> bytes:
    """An OCI index over per-platform manifests (multi-arch specs)."""
    return index_json(
        [
            Descriptor(OCI_MANIFEST, sha256_digest(data), len(data), platform=platform_dict(p))
            for p, data in manifests
        ],
        _labels(spec, verified),
    )
