"""What every rule reads: the environment under check (``EnvContext``) and the manifest helpers.

A rule gets the ``EnvContext`` (repo, env config, the env's manifests and the facts derived from
them once: profile layers, AppProjects, demo namespaces, the repo's environments) and returns
``Finding``s built with ``finding`` (a resource) or ``Finding.at`` (a file or directory).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from delivery.config import EnvConfig
from delivery.gitops.conventions import ARGOCD_NAMESPACE, COMPONENTS, DEMO_TENANTS, DEMOS_NS, layers_for
from delivery.validation.findings import Finding, Status
from delivery.validation.manifests import Manifest

APP_KINDS = ("Application", "ApplicationSet")

JsonPath = tuple[str | int, ...]


@dataclass
class EnvContext:
    """One environment under check; the derived facts are computed on first use."""

    repo: Path
    cfg: EnvConfig
    manifests: Sequence[Manifest]

    @cached_property
    def profile_layers(self) -> tuple[str, ...]:
        return layers_for(self.cfg.profile)

    @cached_property
    def projects(self) -> frozenset[str]:
        """The AppProjects the env's roots and layers define."""
        return frozenset(m.name for m in self.manifests if m.kind == "AppProject")

    @cached_property
    def demo_namespaces(self) -> frozenset[str]:
        """Namespaces the demos layer deploys into (not argocd: it holds every layer's Applications)."""
        names = {DEMOS_NS, *DEMO_TENANTS}
        for m in self.manifests:
            if tier_of(m) != "demos":
                continue
            if m.kind == "Namespace":
                names.add(m.name)
            elif m.kind in APP_KINDS:
                dest = app_spec(m.doc)[1].get("destination") or {}
                if dest.get("namespace"):
                    names.add(str(dest["namespace"]))
            elif m.kind != "AppProject" and m.namespace:
                names.add(m.namespace)
        names.discard(ARGOCD_NAMESPACE)
        return frozenset(names)

    @cached_property
    def applications(self) -> dict[str, dict[str, Any]]:
        """Each Application's spec by name (a component ``components/<layer>/<name>/`` is its app's)."""
        return {m.name: app_spec(m.doc)[1] for m in self.manifests if m.kind == "Application"}

    def owning_app(self, m: Manifest) -> dict[str, Any] | None:
        """The spec of the Application that applies ``m`` (from its component directory), if any."""
        parts = m.path.parts
        if COMPONENTS in parts:
            i = parts.index(COMPONENTS)
            if len(parts) > i + 3:
                return self.applications.get(parts[i + 2])
        return None

    @cached_property
    def envs(self) -> frozenset[str]:
        """Every environment of the repo (directories under environments/ holding a config.yaml)."""
        return frozenset(p.parent.name for p in (self.repo / "environments").glob("*/config.yaml"))


def pointer(path: JsonPath) -> str:
    """``path`` as a JSON pointer (``/spec/containers/0/image``; ``~`` and ``/`` escaped)."""
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path) if path else ""


def walk(node: Any, path: JsonPath = ()) -> Iterator[tuple[JsonPath, Any]]:
    """Every (path, value) in a document, depth first, containers included."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, (*path, i))


def finding(
    m: Manifest, rule: str, what: str, fix: str, path: JsonPath = (), status: Status = Status.FAILURE
) -> Finding:
    """A finding on manifest ``m`` at JSON ``path``."""
    return Finding.at(str(m.path), m.resource, rule, what, fix, path=pointer(path), status=status)


def tier_of(manifest: Manifest) -> str:
    """The layer a manifest belongs to: ``<layer>/…`` or ``components/<layer>/…`` under layers/."""
    parts = manifest.path.parts
    try:
        i = parts.index("layers")
    except ValueError:
        return manifest.layer
    rest = parts[i + 1 :]
    if len(rest) >= 3 and rest[0] == COMPONENTS:
        return rest[1]
    return rest[0] if len(rest) >= 2 else ""


def app_spec(doc: dict[str, Any]) -> tuple[JsonPath, dict[str, Any]]:
    """The spec of an Application (or of an ApplicationSet's template), with its JSON path."""
    spec = doc.get("spec") or {}
    if doc.get("kind") == "ApplicationSet":
        return ("spec", "template", "spec"), ((spec.get("template") or {}).get("spec")) or {}
    return ("spec",), spec


def app_sources(doc: dict[str, Any]) -> Iterator[tuple[JsonPath, dict[str, Any]]]:
    """The sources of an Application (or an ApplicationSet's template), with their JSON paths."""
    prefix, spec = app_spec(doc)
    if isinstance(spec.get("source"), dict):
        yield (*prefix, "source"), spec["source"]
    for i, src in enumerate(spec.get("sources") or []):
        if isinstance(src, dict):
            yield (*prefix, "sources", i), src
