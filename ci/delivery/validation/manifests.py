"""The Kubernetes manifests of an environment: its roots (clusters/<env>/*.yaml) and layers (layers/**)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from delivery.core import yamlio
from delivery.core.paths import inside_repo, layers_dir

# What an Argo CD directory source applies (and ``kubectl apply -f DIR``): YAML and JSON files alike,
# so every one of them is validated with the same rules (JSON is read by the same YAML loader).
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Manifest:
    """One YAML document of a layer: ``path`` is relative to the repo, ``index`` its position in the file."""

    path: Path
    index: int
    layer: str
    doc: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind") or "")

    @property
    def api_version(self) -> str:
        return str(self.doc.get("apiVersion") or "")

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.doc.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def name(self) -> str:
        return str(self.metadata.get("name") or "")

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace") or "")

    @property
    def resource(self) -> str:
        """``Kind/namespace/name`` (``Kind/name`` when unnamespaced; ``document N`` when neither is set)."""
        if not self.kind and not self.name:
            return f"document {self.index + 1}"
        parts = [self.kind or "?", self.namespace, self.name or "?"]
        return "/".join(p for p in parts if p)


def layer_files(repo: Path, env: str) -> list[Path]:
    """Every manifest file (YAML or JSON) under clusters/<env>/layers/ (absolute paths, sorted)."""
    base = layers_dir(repo, env)
    if not base.is_dir():
        return []
    return sorted(p for p in base.rglob("*") if p.is_file() and p.suffix in MANIFEST_SUFFIXES)


def root_files(repo: Path, env: str) -> list[Path]:
    """The roots in clusters/<env>/ (``root.yaml``, ``root-<profile>.yaml``): what ``kubectl apply``
    bootstraps. The release and ledger beside them are the pipeline's records, not manifests."""
    base = layers_dir(repo, env).parent
    if not base.is_dir():
        return []
    return sorted(
        p
        for p in base.iterdir()
        if p.is_file() and p.suffix in MANIFEST_SUFFIXES and p.stem.split("-")[0] == "root"
    )


def env_files(repo: Path, env: str) -> list[Path]:
    """Everything Argo CD or ``kubectl apply`` takes from clusters/<env>/: the roots, then the layers."""
    return root_files(repo, env) + layer_files(repo, env)


def layer_of(repo: Path, env: str, path: Path) -> str:
    """The layer a file belongs to: the first directory under clusters/<env>/layers/ ("" for a root)."""
    try:
        rel = path.resolve().relative_to(layers_dir(repo, env).resolve())
    except ValueError:
        return ""
    return rel.parts[0] if len(rel.parts) > 1 else ""


def load_file_manifests(repo: Path, env: str, path: Path) -> list[Manifest]:
    """The documents of one file of the env (a YAML syntax error raises ConfigError naming file:line)."""
    inside_repo(repo, path)  # a manifest that is really a file outside the repo is refused
    rel = path.relative_to(repo)
    layer = layer_of(repo, env, path)
    text = yamlio.read_text(path, rel, limit=yamlio.MAX_MANIFEST_BYTES)  # size and encoding bounded
    docs = yamlio.load_all_data(text, str(rel), mappings_only=True)  # plain prose is one clear error
    return [
        Manifest(path=rel, index=i, layer=layer, doc=yamlio.plain(doc) if isinstance(doc, dict) else {})
        for i, doc in enumerate(docs)
    ]


def load_layer_manifests(repo: Path, env: str) -> list[Manifest]:
    """Every YAML document under clusters/<env>/layers/** (files sorted, documents in file order)."""
    return [m for path in layer_files(repo, env) for m in load_file_manifests(repo, env, path)]


def load_env_manifests(repo: Path, env: str) -> list[Manifest]:
    """Every YAML document of the env: its roots, then its layers (what ``deliver validate`` checks)."""
    return [m for path in env_files(repo, env) for m in load_file_manifests(repo, env, path)]
