"""What a destroy plan leaves standing: secret declarations, unless asked, and what they need.

Pausing an environment to $0 (``deliver plan --destroy``) must not lose its secrets: a Secret Manager
secret's versions were written out-of-band (never by tofu) and go with the secret. So a destroy plan
keeps every secret declaration (``SECRET_DECLARATION_TYPES``) and, transitively, every resource it
depends on (the APIs it needs), and targets the rest; ``--destroy-secrets`` destroys them too.

Why a keep set closed under dependencies is enough: ``plan -destroy -target=X`` also destroys what
depends on X. Nothing kept depends on a target (every dependency of a kept resource is kept), so
no target pulls a kept resource in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from delivery.core.console import ProgressReporter
from delivery.core.errors import UsageError

SECRET_DECLARATION_TYPES = frozenset(
    {"google_secret_manager_secret", "google_secret_manager_regional_secret"}
)
_INDEX = re.compile(r"\[[^\[\]]*\]$")


def is_secret_declaration(address: str, type_: str) -> bool:
    """The default keep rule of a destroy plan: a Secret Manager secret (its versions go with it)."""
    return type_ in SECRET_DECLARATION_TYPES


@dataclass(frozen=True)
class Resource:
    address: str  # the instance, e.g. module.gke.google_project_service.cluster["iam.googleapis.com"]
    type: str
    depends_on: tuple[str, ...]  # resource addresses (no instance keys), as the state records them

    @property
    def config_address(self) -> str:
        return _INDEX.sub("", self.address)


def state_resources(state_json: dict[str, Any]) -> list[Resource]:
    """Every managed resource instance of a ``show -json`` of the state (all modules)."""

    def walk(module: dict[str, Any]) -> Iterator[Resource]:
        for r in module.get("resources") or []:
            if r.get("mode", "managed") == "managed":
                yield Resource(str(r["address"]), str(r.get("type", "")), tuple(r.get("depends_on") or ()))
        for child in module.get("child_modules") or []:
            yield from walk(child)

    root = (state_json.get("values") or {}).get("root_module") or {}
    return list(walk(root))


@dataclass(frozen=True)
class DestroyScope:
    """What a destroy plan keeps, and the ``-target`` addresses it destroys (empty: everything)."""

    kept: tuple[str, ...]
    targets: tuple[str, ...]


def scope(
    resources: list[Resource], keep: Callable[[str, str], bool] = is_secret_declaration
) -> DestroyScope:
    """The instances ``keep`` selects plus everything they depend on, and the rest as targets."""
    by_config: dict[str, list[Resource]] = {}
    for r in resources:
        by_config.setdefault(r.config_address, []).append(r)
    kept: dict[str, Resource] = {}
    todo = [r for r in resources if keep(r.address, r.type)]
    while todo:
        r = todo.pop()
        if r.address in kept:
            continue
        kept[r.address] = r
        for dep in r.depends_on:
            todo += by_config.get(_INDEX.sub("", dep), [])
    if not kept:
        return DestroyScope((), ())
    targets = tuple(sorted(r.address for r in resources if r.address not in kept))
    return DestroyScope(tuple(sorted(kept)), targets)


def plan_scope(state_json: dict[str, Any], env: str, where: str, reporter: ProgressReporter) -> DestroyScope:
    """The scope of ``env``'s destroy plan from its state; refused when only secrets are left."""
    found = scope(state_resources(state_json), is_secret_declaration)  # looked up at call time
    if found.kept and not found.targets:
        raise UsageError(
            f"nothing to destroy in {env} but its secret declarations ({len(found.kept)})",
            where=where,
            fix=f"destroy them too, with their values: deliver plan --env {env} --destroy --destroy-secrets",
        )
    if found.kept:
        reporter.line(f"destroy: keeping {len(found.kept)} secret declaration(s) and what they need "
                      "(--destroy-secrets destroys them too): " + ", ".join(found.kept))  # fmt: skip
    return found
