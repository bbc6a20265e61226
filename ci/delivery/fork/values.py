"""The values a fork changes, per environment: what config holds now, what it will hold, the edits.

Five keys of ``environments/<env>/config.yaml`` belong to a fork: ``repoURL`` and ``repoBranch`` (one
platform repo for every env), ``cluster.projectID``, ``domain`` and ``registry``. A value that embeds
the project follows it unless given: the registry path (a path segment equal to the old project
becomes the new one) and the OpenTofu state bucket (derived from the project by the substrate, so it
follows without an edit).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from delivery.config import EnvConfig
from delivery.core.yamlio import KeyPath
from delivery.fork.request import ForkRequest
from delivery.substrate.inputs import state_bucket

KEYS: dict[str, KeyPath] = {
    "repo_url": ("repoURL",),
    "branch": ("repoBranch",),
    "project": ("cluster", "projectID"),
    "domain": ("domain",),
    "registry": ("registry",),
}
"""Each value fork-init sets -> its key in the env config."""


@dataclass(frozen=True)
class EnvValues:
    """The fork's values of one environment."""

    repo_url: str
    branch: str
    project: str
    domain: str
    registry: str

    def as_dict(self) -> dict[str, str]:
        return {"repoURL": self.repo_url, "repoBranch": self.branch, "projectID": self.project,
                "domain": self.domain, "registry": self.registry}  # fmt: skip

    def changed(self, other: EnvValues) -> list[str]:
        """Names (config keys) of the values that differ in ``other``."""
        return [
            ".".join(map(str, KEYS[f.name]))
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]

    def edits(self) -> list[tuple[KeyPath, str]]:
        """``(keypath, value)`` for each of the five keys (the YAML editor skips equal values)."""
        return [(KEYS[f.name], getattr(self, f.name)) for f in fields(self)]


def current(cfg: EnvConfig) -> EnvValues:
    return EnvValues(cfg.repo_url, cfg.repo_branch, cfg.cluster.project_id, cfg.domain, cfg.registry)


def follow_project(registry: str, old_project: str, new_project: str) -> str:
    """``registry`` with every path segment equal to ``old_project`` replaced (the host is kept)."""
    host, *path = registry.split("/")
    return "/".join([host, *(new_project if part == old_project else part for part in path)])


def wanted(env: str, old: EnvValues, request: ForkRequest) -> EnvValues:
    """The env's values after the fork: those given, the registry following the project otherwise."""
    project = request.projects.get(env, old.project)
    registry = request.registries.get(env) or follow_project(old.registry, old.project, project)
    return EnvValues(
        repo_url=request.repo_url,
        branch=request.branch or old.branch,
        project=project,
        domain=request.domains.get(env, old.domain),
        registry=registry,
    )


def _without_git(url: str) -> str:
    return url.removesuffix(".git")


def replacements(pairs: dict[str, tuple[EnvConfig, EnvConfig]]) -> dict[str, set[str]]:
    """Every old value text -> the new texts it becomes, over all envs (``{old}`` when it stays).

    Beside the five values: the state bucket (it follows the project) and the repo URL without
    ``.git`` (how READMEs link it). The branch is not here: a word like ``main`` is everywhere, so it
    changes only where config and the generated files hold it. Values that stay are kept too, so a
    longer value that stays (``dev.llm.example.com``) is never rewritten through a shorter one that
    changes (``llm.example.com``).
    """
    found: dict[str, set[str]] = {}

    def add(old: str, new: str) -> None:
        if old:
            found.setdefault(old, set()).add(new)

    for old_cfg, new_cfg in pairs.values():
        old, new = current(old_cfg), current(new_cfg)
        add(old.repo_url, new.repo_url)
        if _without_git(old.repo_url) != old.repo_url:
            add(_without_git(old.repo_url), _without_git(new.repo_url))
        add(old.project, new.project)
        add(state_bucket(old_cfg), state_bucket(new_cfg))
        add(old.domain, new.domain)
        add(old.registry, new.registry)
    return found
