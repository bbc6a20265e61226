"""The bundle: build, cache and export the hermetic schema bundle (layout in ``delivery.schemas.sources``)."""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from delivery.core import yamlio
from delivery.core.console import ProgressReporter
from delivery.core.errors import UsageError
from delivery.core.fsutil import atomic_directory
from delivery.schemas.convert import CONVERTER_VERSION, crd_schemas, schema_relpath, standalone, strictify
from delivery.schemas.sources import (
    BUNDLE_FILE,
    BUNDLE_FORMAT,
    CATALOG_COMMIT,
    KUBERNETES_VALIDATE,
    MIRROR_ENV,
    SOURCE_DIR_ENV,
    SOURCE_SETS,
    Fetcher,
    PinnedFile,
    _http_get,
    _sha256,
    default_cache_dir,
    default_source_dir,
    kubernetes_schema_dir,
    kubernetes_validate_version,
    pinned_files,
    read_sources,
)


def _dump(path: Path, schema: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True), encoding="utf-8")


Index = dict[str, list[str]]  # kind -> apiVersions


def _add(index: Index, kind: str, api_version: str) -> None:
    versions = index.setdefault(kind, [])
    if api_version not in versions:
        versions.append(api_version)
        versions.sort()


def build_kubernetes(dest: Path, minor: str) -> Index:
    """Standalone core schemas for one Kubernetes minor, both variants; returns the kinds index."""
    index: Index = {}
    for strict in (False, True):
        src = kubernetes_schema_dir(minor, strict=strict)
        out = dest / f"v{minor}.0-standalone{'-strict' if strict else ''}"
        definitions = json.loads((src / "_definitions.json").read_text(encoding="utf-8"))["$defs"]
        for path in sorted(src.glob("*.json")):
            if path.name in {"_definitions.json", "all.json"}:
                continue
            schema = json.loads(path.read_text(encoding="utf-8"))
            for gvk in schema.get("x-kubernetes-group-version-kind") or []:
                api_version = f"{gvk['group']}/{gvk['version']}" if gvk.get("group") else gvk["version"]
                _dump(out / schema_relpath(api_version, gvk["kind"]), standalone(schema, definitions))
                _add(index, gvk["kind"], api_version)
    return index


def build_crds(dest: Path, sources: Mapping[str, bytes]) -> tuple[Index, Index]:
    """CRD schemas: the catalog's, then our conversion of CRD YAML for what the catalog lacks.

    Returns (catalog index, converted index). The plain variant keeps the top level open (as the
    catalog does); the strict variant closes every object with listed properties, top level too.
    """
    catalog: Index = {}
    converted: Index = {}
    written: set[str] = set()
    for path in sorted(p for p in sources if p.startswith("catalog/") and p.endswith(".json")):
        group, filename = path.removeprefix("catalog/").split("/", 1)
        kind_lower, version = filename.removesuffix(".json").rsplit("_", 1)
        schema = json.loads(sources[path])
        rel = f"{group}/{filename}"
        _dump(dest / "standalone" / rel, schema)
        _dump(dest / "standalone-strict" / rel, strictify(copy.deepcopy(schema)))
        _add(catalog, _kind_name(schema, kind_lower), f"{group}/{version}")
        written.add(rel)
    for path in sorted(p for p in sources if p.startswith("crds/") and p.endswith((".yaml", ".yml"))):
        for doc in yamlio.load_all_data(sources[path].decode("utf-8"), path):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            for api_version, kind, schema in crd_schemas(doc):
                rel = schema_relpath(api_version, kind)
                if rel in written:
                    continue  # the catalog has it
                _dump(dest / "standalone" / rel, strictify(copy.deepcopy(schema), root=False))
                _dump(dest / "standalone-strict" / rel, strictify(schema))
                _add(converted, kind, api_version)
                written.add(rel)
    return catalog, converted


def _kind_name(schema: Mapping[str, Any], kind_lower: str) -> str:
    """The kind's CamelCase name from a catalog schema (its ``kind`` enum), else the file's name."""
    kind_prop = (schema.get("properties") or {}).get("kind") or {}
    enum = kind_prop.get("enum")
    if isinstance(enum, list) and enum and isinstance(enum[0], str):
        return enum[0]
    return kind_lower


# --------------------------------------------------------------------------- the bundle


@dataclass(frozen=True)
class SchemaBundle:
    """A built schema bundle on disk and what it holds."""

    root: Path
    key: str
    kubernetes_versions: tuple[str, ...]
    kubernetes: dict[str, Index]
    crds: Index
    converted: Index
    provenance: dict[str, Any]

    @classmethod
    def load(cls, root: Path) -> SchemaBundle:
        """Open a bundle directory (one written by ``deliver schemas``)."""
        meta_path = root / BUNDLE_FILE
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise UsageError(
                f"not a schema bundle (no readable {BUNDLE_FILE})",
                where=str(root),
                fix="build one with: deliver schemas --output DIR",
            ) from None
        if meta.get("format") != BUNDLE_FORMAT:
            raise UsageError(
                f"schema bundle format {meta.get('format')!r}, expected {BUNDLE_FORMAT}",
                where=str(meta_path),
                fix="rebuild it with: deliver schemas --output DIR",
            )
        return cls(
            root=root,
            key=meta["key"],
            kubernetes_versions=tuple(meta["kubernetesVersions"]),
            kubernetes=meta["schemas"]["kubernetes"],
            crds=meta["schemas"]["catalog"],
            converted=meta["schemas"]["converted"],
            provenance=meta["sources"],
        )

    def locations(self) -> list[str]:
        """kubeconform ``-schema-location`` templates: core kinds first, then CRDs."""
        tail = "{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json"
        return [
            f"{self.root}/kubernetes/{{{{.NormalizedKubernetesVersion}}}}-standalone{{{{.StrictSuffix}}}}/{tail}",
            f"{self.root}/crds/standalone{{{{.StrictSuffix}}}}/{tail}",
        ]

    def api_versions(self, kind: str, minor: str) -> list[str]:
        """Every apiVersion the bundle has a schema for, for this kind (core for ``minor``, and CRDs)."""
        wanted = kind.lower()  # kubeconform looks kinds up lower-cased; catalog files name them so
        found = [
            v
            for index in ((self.kubernetes.get(minor) or {}), self.crds, self.converted)
            for name, versions in index.items()
            if name.lower() == wanted
            for v in versions
        ]
        return sorted(set(found))

    def schema_count(self) -> int:
        core = sum(len(v) for index in self.kubernetes.values() for v in index.values())
        crds = sum(len(v) for v in self.crds.values()) + sum(len(v) for v in self.converted.values())
        return core + crds

    def summary(self) -> dict[str, Any]:
        return {
            "path": str(self.root),
            "key": self.key,
            "kubernetesVersions": list(self.kubernetes_versions),
            "schemas": {
                "kubernetes": {m: sum(len(v) for v in idx.values()) for m, idx in self.kubernetes.items()},
                "catalog": sum(len(v) for v in self.crds.values()),
                "converted": {k: v for k, v in sorted(self.converted.items())},
            },
            "kubernetesValidate": self.provenance.get("kubernetesValidate", {}).get("version"),
            "catalogCommit": CATALOG_COMMIT,
        }


def bundle_key(versions: Sequence[str], pins: Sequence[PinnedFile]) -> str:
    """Content address of a bundle: every input that changes its bytes."""
    inputs = {
        "converter": CONVERTER_VERSION,
        "format": BUNDLE_FORMAT,
        KUBERNETES_VALIDATE: kubernetes_validate_version(),
        "kubernetesVersions": sorted(set(versions)),
        "sources": sorted((p.path, p.sha256) for p in pins),
    }
    return _sha256(json.dumps(inputs, sort_keys=True).encode())[:20]


def build_bundle(
    dest: Path,
    versions: Sequence[str],
    sources: Mapping[str, bytes],
    origin: Mapping[str, str],
    pins: Sequence[PinnedFile],
    key: str,
    progress: ProgressReporter | None = None,
) -> None:
    """Write a complete bundle into the (empty) directory ``dest``."""
    minors = sorted(set(versions))
    kubernetes: dict[str, Index] = {}
    core_files: dict[str, str] = {}
    for minor in minors:
        if progress:
            progress.line(f"schemas: Kubernetes {minor} from {KUBERNETES_VALIDATE}")
        kubernetes[minor] = build_kubernetes(dest / "kubernetes", minor)
        for strict in (False, True):
            defs = kubernetes_schema_dir(minor, strict=strict) / "_definitions.json"
            core_files[f"{defs.parent.name}/{defs.name}"] = _sha256(defs.read_bytes())
    if progress:
        progress.line(f"schemas: CRDs (catalog {CATALOG_COMMIT} + converted CRD YAML)")
    catalog, converted = build_crds(dest / "crds", sources)
    for pin in pins:
        if pin.name == "LICENSE":
            target = dest / "licenses" / pin.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(sources[pin.path])
    meta = {
        "format": BUNDLE_FORMAT,
        "key": key,
        "kubernetesVersions": minors,
        "sources": {
            "kubernetesValidate": {"version": kubernetes_validate_version(), "definitions": core_files},
            "sets": [{"folder": s.folder, "upstream": s.upstream} for s in SOURCE_SETS],
            "files": [
                {"path": p.path, "sha256": p.sha256, "url": p.url, "from": origin.get(p.path, "")}
                for p in pins
            ],
        },
        "schemas": {"kubernetes": kubernetes, "catalog": catalog, "converted": converted},
    }
    (dest / BUNDLE_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def ensure_bundle(
    repo: Path,
    versions: Sequence[str],
    *,
    source_dir: Path | None = None,
    cache_dir: Path | None = None,
    offline: bool = False,
    fetch: Fetcher = _http_get,
    progress: ProgressReporter | None = None,
    option: str = "--source",
) -> SchemaBundle:
    """The bundle for these Kubernetes minors: from the cache, or built (atomically) and cached.

    Sources: ``source_dir`` (else ``$DELIVER_KUBE_SCHEMAS``, else ``../shared/kube-schemas`` when
    present), the download cache, then the pinned URLs unless ``offline`` (``read_sources``).
    ``option`` is the caller's option for the hermetic copy, named in the error when files are
    missing.
    """
    if not versions:
        raise UsageError("no Kubernetes version to build schemas for", fix="pass --env or add environments")
    pins = pinned_files()
    cache = cache_dir or default_cache_dir(repo)
    key = bundle_key(versions, pins)
    root = cache / key
    if (root / BUNDLE_FILE).is_file():
        return SchemaBundle.load(root)
    for minor in sorted(set(versions)):
        kubernetes_schema_dir(minor, strict=True)  # fail early on an unsupported minor
    source = source_dir if source_dir is not None else default_source_dir(repo)
    named = os.environ.get(SOURCE_DIR_ENV)
    if named and source == Path(named) and not source.is_dir():  # a typo is never silently a download
        raise UsageError(
            "the hermetic schema copy is not a directory",
            where=f"${SOURCE_DIR_ENV} ({named})",
            fix=f"point {SOURCE_DIR_ENV} at the copy of the pinned files, or unset it",
        )
    sources, origin = read_sources(
        pins,
        source_dir=source if source.is_dir() else None,
        download_cache=cache / "sources",
        offline=offline,
        fetch=fetch,
        option=option,
    )
    fetched = [p for p in pins if origin.get(p.path) in ("download", "mirror")]
    if progress and fetched:
        via = f"the mirror ${MIRROR_ENV}" if origin[fetched[0].path] == "mirror" else "the pinned URLs"
        progress.line(
            f"schemas: {len(fetched)} pinned source files downloaded from {via}, sha256-checked, "
            f"cached in {cache / 'sources'}"
        )
    with atomic_directory(root) as tmp:
        build_bundle(tmp, versions, sources, origin, pins, key, progress)
    return SchemaBundle.load(root)


def save_sources(
    repo: Path,
    dest: Path,
    *,
    source_dir: Path | None = None,
    cache_dir: Path | None = None,
    offline: bool = False,
    fetch: Fetcher = _http_get,
) -> int:
    """Write every pinned file (read and checked as ``ensure_bundle`` does) into ``dest``, laid out
    as a hermetic copy (``--source DIR`` on a machine without network); returns the file count."""
    pins = pinned_files()
    if dest.exists():
        ours = {p.path for p in pins} | {"README.md"}
        other = sorted(
            str(f.relative_to(dest))
            for f in dest.rglob("*")
            if not f.is_dir() and str(f.relative_to(dest)) not in ours
        )
        if other or not dest.is_dir():
            raise UsageError(
                f"refusing to replace {dest}: it holds files that are not pinned schema sources"
                + (f" ({', '.join(other[:3])})" if other else ""),
                where=str(dest),
                fix="pass a new (or empty) directory, or one written by --save-sources before",
            )
    source = source_dir if source_dir is not None else default_source_dir(repo)
    cache = cache_dir or default_cache_dir(repo)
    sources, _ = read_sources(
        pins,
        source_dir=source if source.is_dir() else None,
        download_cache=cache / "sources",
        offline=offline,
        fetch=fetch,
    )
    with atomic_directory(dest) as tmp:
        for pin in pins:
            target = tmp / pin.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(sources[pin.path])
    return len(pins)


def export_bundle(bundle: SchemaBundle, output: Path) -> SchemaBundle:
    """Copy a bundle to ``output`` (replaced atomically) and open the copy."""
    with atomic_directory(output) as tmp:
        shutil.copytree(bundle.root, tmp, dirs_exist_ok=True)
    return SchemaBundle.load(output)
