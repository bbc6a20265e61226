"""The hermetic schema bundle kubeconform validates against.

Three sources, each pinned:
- core Kubernetes kinds from the PyPI package kubernetes-validate (pinned in pyproject.toml), for
  the environment's Kubernetes minor; its schemas point at a shared ``/api/_definitions.json`` that
  kubeconform cannot resolve, so each kind is rewritten as a standalone schema (the definitions it
  uses are inlined under ``$defs``), in a plain and a ``-strict`` variant;
- CRD schemas from the datreeio CRDs-catalog at a pinned commit;
- our own conversion of upstream CRD YAML (``openAPIV3Schema`` -> JSON schema) for the kinds the
  catalog lacks (InferencePool, InferenceObjective, LLMInferenceService...).

Every upstream file is pinned by sha256 in ``schemas.sha256`` beside this module. Files are read
from the hermetic copy next to the repo (``../shared/kube-schemas``, or ``$DELIVER_KUBE_SCHEMAS``,
or ``--source``), else from the download cache, else (online) fetched from the pinned URL and
checked against the pin. The built bundle is cached under ``.cache/schemas/<key>``, where the key
hashes every input (pins, kubernetes-validate version, Kubernetes minors, converter version).

Bundle layout (one exact file per apiVersion and kind, the same for core kinds and CRDs)::

    bundle.json                                        provenance and the index of kinds
    kubernetes/v<minor>.0-standalone[-strict]/<group>/<kind>_<version>.json
    crds/standalone[-strict]/<group>/<kind>_<version>.json
    licenses/<source set>/LICENSE

where ``<group>`` is kubeconform's ``{{.Group}}`` (``v1`` for the core group), so kubeconform reads
it with ``-schema-location`` templates (see ``SchemaBundle.locations``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from delivery.core.errors import SourceError, ToolError, UsageError
from delivery.core.fsutil import atomic_write_bytes

BUNDLE_FORMAT = 1
BUNDLE_FILE = "bundle.json"
PINS_FILE = Path(__file__).with_name("schemas.sha256")
KUBERNETES_VALIDATE = "kubernetes-validate"
SOURCE_DIR_ENV = "DELIVER_KUBE_SCHEMAS"
CACHE_DIR_ENV = "DELIVER_SCHEMA_CACHE"
CATALOG_COMMIT = "7b1e26ef"

_RAW = "https://raw.githubusercontent.com"


@dataclass(frozen=True)
class SourceSet:
    """A folder of pinned upstream files: where it comes from, and the URL of each file."""

    folder: str
    upstream: str
    files_url: str
    license_url: str

    def url(self, name: str) -> str:
        return self.license_url if name == "LICENSE" else f"{self.files_url}/{name}"


SOURCE_SETS: tuple[SourceSet, ...] = (
    SourceSet(
        "catalog",
        f"datreeio/CRDs-catalog at commit {CATALOG_COMMIT}",
        f"{_RAW}/datreeio/CRDs-catalog/{CATALOG_COMMIT}",
        f"{_RAW}/datreeio/CRDs-catalog/{CATALOG_COMMIT}/LICENSE",
    ),
    SourceSet(
        "crds/gateway-api-inference-extension-v1.5.0",
        "kubernetes-sigs/gateway-api-inference-extension tag v1.5.0, config/crd/bases",
        f"{_RAW}/kubernetes-sigs/gateway-api-inference-extension/v1.5.0/config/crd/bases",
        f"{_RAW}/kubernetes-sigs/gateway-api-inference-extension/v1.5.0/LICENSE",
    ),
    SourceSet(
        "crds/kserve-v0.19.0",
        "kserve/kserve tag v0.19.0, config/crd/full",
        f"{_RAW}/kserve/kserve/v0.19.0/config/crd/full",
        f"{_RAW}/kserve/kserve/v0.19.0/LICENSE",
    ),
)


@dataclass(frozen=True)
class PinnedFile:
    """One upstream file: its path under the source root, its sha256 and its pinned URL."""

    path: str
    sha256: str
    source_set: SourceSet

    @property
    def url(self) -> str:
        return self.source_set.url(self.path.removeprefix(self.source_set.folder + "/"))

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def pinned_files() -> list[PinnedFile]:
    """Every pinned upstream file (from ``schemas.sha256``)."""
    pins: list[PinnedFile] = []
    for raw in PINS_FILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        digest, path = line.split(maxsplit=1)
        owner = next((s for s in SOURCE_SETS if path.startswith(s.folder + "/")), None)
        if owner is None:
            raise ValueError(f"{PINS_FILE.name}: {path} belongs to no source set")
        pins.append(PinnedFile(path, digest, owner))
    return pins


# --------------------------------------------------------------------------- locating inputs


def default_source_dir(repo: Path) -> Path:
    """The hermetic copy of the upstream files: ``$DELIVER_KUBE_SCHEMAS`` or ``../shared/kube-schemas``."""
    override = os.environ.get(SOURCE_DIR_ENV)
    return Path(override) if override else repo.parent / "shared" / "kube-schemas"


def default_cache_dir(repo: Path) -> Path:
    """Where built bundles and downloaded sources are cached: ``$DELIVER_SCHEMA_CACHE`` or .cache/schemas."""
    override = os.environ.get(CACHE_DIR_ENV)
    return Path(override) if override else repo / ".cache" / "schemas"


def kubernetes_validate_version() -> str:
    try:
        return importlib.metadata.version(KUBERNETES_VALIDATE)
    except importlib.metadata.PackageNotFoundError:
        raise ToolError(
            f"the Python package {KUBERNETES_VALIDATE} is not installed",
            fix="pip install -e . (it is a dependency in pyproject.toml)",
        ) from None


def _kubernetes_validate_root() -> Path:
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        kubernetes_validate_version()  # raises the install hint
        raise ToolError(f"cannot locate the {KUBERNETES_VALIDATE} package files")
    return Path(next(iter(spec.submodule_search_locations))) / "kubernetes-json-schema"


def kubernetes_schema_dir(minor: str, *, strict: bool) -> Path:
    """kubernetes-validate's folder for a Kubernetes minor (``1.34`` -> ``v1.34.0-local[-strict]``)."""
    folder = _kubernetes_validate_root() / f"v{minor}.0-local{'-strict' if strict else ''}"
    if not (folder / "_definitions.json").is_file():
        known = sorted(
            p.name.removeprefix("v").removesuffix(".0-local")
            for p in _kubernetes_validate_root().glob("v*-local")
        )
        raise UsageError(
            f"{KUBERNETES_VALIDATE} {kubernetes_validate_version()} has no schemas for Kubernetes {minor}",
            where="cluster.kubernetesVersion",
            fix=f"use one of {', '.join(known)}, or upgrade {KUBERNETES_VALIDATE}",
        )
    return folder


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


Fetcher = Callable[[str], bytes]


def _http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as resp:
        data: bytes = resp.read()
        return data


def read_sources(
    pins: Sequence[PinnedFile],
    *,
    source_dir: Path | None,
    download_cache: Path,
    offline: bool,
    fetch: Fetcher = _http_get,
) -> tuple[dict[str, bytes], dict[str, str]]:
    """The bytes of every pinned file, each checked against its sha256, and where each came from.

    Order: the hermetic source dir, the download cache, then (unless ``offline``) the pinned URL,
    which is stored in the download cache. A file whose bytes do not match its pin is an error.
    """
    data: dict[str, bytes] = {}
    origin: dict[str, str] = {}
    missing: list[PinnedFile] = []
    for pin in pins:
        for where, candidate in (
            ("source", source_dir / pin.path if source_dir else None),
            ("cache", download_cache / pin.sha256),
        ):
            if candidate is None or not candidate.is_file():
                continue
            blob = candidate.read_bytes()
            if _sha256(blob) != pin.sha256:
                raise SourceError(
                    f"sha256 {_sha256(blob)} does not match the pin {pin.sha256}",
                    where=str(candidate),
                    fix=f"restore the upstream file ({pin.url}), or update {PINS_FILE.name} on purpose",
                )
            data[pin.path], origin[pin.path] = blob, where
            break
        else:
            missing.append(pin)
    if missing and offline:
        shown = ", ".join(p.path for p in missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise SourceError(
            f"{len(missing)} pinned schema source(s) not available offline: {shown}",
            where=str(source_dir) if source_dir else "--source",
            fix=f"point --source (or ${SOURCE_DIR_ENV}) at the hermetic kube-schemas copy, or run online",
        )
    for pin in missing:
        try:
            blob = fetch(pin.url)
        except (urllib.error.URLError, OSError) as err:
            raise SourceError(
                f"cannot fetch {pin.url}: {err}",
                where=pin.path,
                fix=f"run with network access, or pass --source DIR holding {pin.path}",
            ) from None
        if _sha256(blob) != pin.sha256:
            raise SourceError(
                f"downloaded sha256 {_sha256(blob)} does not match the pin {pin.sha256}",
                where=pin.url,
                fix="upstream changed under a pinned URL: investigate before updating the pin",
            )
        download_cache.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(download_cache / pin.sha256, blob)
        data[pin.path], origin[pin.path] = blob, "download"
    return data, origin
