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

import copy
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from delivery import yamlio
from delivery.console import ProgressReporter
from delivery.errors import SourceError, ToolError, UsageError
from delivery.fsutil import atomic_directory, atomic_write_bytes

# Bump when the conversion below changes: it is part of the cache key.
CONVERTER_VERSION = "1"
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


# --------------------------------------------------------------------------- conversion

# JSON-schema keywords whose value is a schema, a list of schemas, or a map of schemas.
_SCHEMA_KEYS = ("additionalProperties", "items", "not", "additionalItems", "contains")
_SCHEMA_LIST_KEYS = ("allOf", "anyOf", "oneOf", "items", "prefixItems")
_SCHEMA_MAP_KEYS = ("properties", "patternProperties", "definitions", "$defs", "dependentSchemas")


def _subschemas(node: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for key in _SCHEMA_KEYS:
        value = node.get(key)
        if isinstance(value, dict):
            yield value
    for key in _SCHEMA_LIST_KEYS:
        value = node.get(key)
        if isinstance(value, list):
            yield from (v for v in value if isinstance(v, dict))
    for key in _SCHEMA_MAP_KEYS:
        value = node.get(key)
        if isinstance(value, dict):
            yield from (v for v in value.values() if isinstance(v, dict))


def strictify(schema: dict[str, Any], *, root: bool = True) -> dict[str, Any]:
    """Close every object that lists its properties (``additionalProperties: false``), in place.

    Like openapi2jsonschema (and kubectl): objects that already say something about additional
    properties, or keep unknown fields (``x-kubernetes-preserve-unknown-fields``), stay open.
    With ``root=False`` the top level stays open (the catalog's default).
    """
    if (
        root
        and "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        schema["additionalProperties"] = False
    for sub in _subschemas(schema):
        strictify(sub)
    return schema


def openapi_to_jsonschema(node: Any) -> Any:
    """Convert a CRD's OpenAPI v3 schema to JSON schema (returns a new object).

    ``nullable: true`` becomes a ``null`` type, and ``int-or-string`` (as a format or the
    ``x-kubernetes-int-or-string`` marker) becomes ``oneOf: [string, integer]``.
    """
    if isinstance(node, list):
        return [openapi_to_jsonschema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SCHEMA_MAP_KEYS and isinstance(value, dict):
            out[key] = {k: openapi_to_jsonschema(v) for k, v in value.items()}
        elif key in _SCHEMA_KEYS or key in _SCHEMA_LIST_KEYS:
            out[key] = openapi_to_jsonschema(value)
        else:
            out[key] = value
    if out.get("format") == "int-or-string" or (
        out.get("x-kubernetes-int-or-string") and not ({"anyOf", "oneOf"} & out.keys())
    ):
        out.pop("format", None)
        out.pop("type", None)
        out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    if out.pop("nullable", False):
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


def crd_schemas(crd: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(apiVersion, kind, JSON schema)`` for every served version of a CRD document."""
    spec = crd.get("spec") or {}
    group, kind = spec.get("group", ""), (spec.get("names") or {}).get("kind", "")
    found = []
    for version in spec.get("versions") or []:
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if version.get("served", True) and isinstance(schema, dict):
            found.append((f"{group}/{version['name']}", kind, openapi_to_jsonschema(schema)))
    return found


def schema_relpath(api_version: str, kind: str) -> str:
    """``<group>/<kind>_<version>.json`` exactly as kubeconform's template fills it in."""
    parts = api_version.split("/")
    return f"{parts[0]}/{kind.lower()}_{parts[-1]}.json"


_DEFS_PREFIX = "/api/_definitions.json#/$defs/"


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: ("#/$defs/" + v.removeprefix(_DEFS_PREFIX))
            if k == "$ref" and isinstance(v, str) and v.startswith(_DEFS_PREFIX)
            else _rewrite_refs(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


def standalone(kind_schema: dict[str, Any], definitions: Mapping[str, Any]) -> dict[str, Any]:
    """A kind's schema with the definitions it uses (transitively) inlined under ``$defs``."""
    needed: dict[str, Any] = {}
    queue = [r.rsplit("/", 1)[-1] for r in _refs(kind_schema) if "#/$defs/" in r]
    while queue:
        name = queue.pop()
        if name in needed:
            continue
        if name not in definitions:
            raise ToolError(f"{KUBERNETES_VALIDATE}: definition {name!r} is referenced but missing")
        needed[name] = definitions[name]
        queue.extend(r.rsplit("/", 1)[-1] for r in _refs(definitions[name]) if "#/$defs/" in r)
    out: dict[str, Any] = _rewrite_refs({k: v for k, v in kind_schema.items() if k != "$id"})
    if needed:
        out["$defs"] = {name: needed[name] for name in sorted(needed)}
    return out


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
) -> SchemaBundle:
    """The bundle for these Kubernetes minors: from the cache, or built (atomically) and cached."""
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
    sources, origin = read_sources(
        pins,
        source_dir=source if source.is_dir() else None,
        download_cache=cache / "sources",
        offline=offline,
        fetch=fetch,
    )
    with atomic_directory(root) as tmp:
        build_bundle(tmp, versions, sources, origin, pins, key, progress)
    return SchemaBundle.load(root)


def export_bundle(bundle: SchemaBundle, output: Path) -> SchemaBundle:
    """Copy a bundle to ``output`` (replaced atomically) and open the copy."""
    with atomic_directory(output) as tmp:
        shutil.copytree(bundle.root, tmp, dirs_exist_ok=True)
    return SchemaBundle.load(output)
