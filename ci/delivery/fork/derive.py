"""Everything derived from config, computed in memory with the project's own renderers, and checked.

- ``generated``: an env's roots and layers as ``deliver root --write`` and ``deliver layers render
  --write`` write them (the same functions), path -> text;
- ``stale``: the generated files of the tree that are out of date with its config (fork-init
  refuses to start on such a tree: it could not tell a fork's change from an old one);
- ``tofu_inputs``: the variables and backend ``deliver plan`` would pass the env's root;
- ``scratch``: a throwaway copy of the repo's data with the new files in it, where the configs are
  checked (``config check``) and every environment validated (``deliver validate``'s kubeconform
  and policy rules) before anything is written to the tree.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from delivery.config import EnvConfig
from delivery.core.errors import Location, Problem
from delivery.core.fsutil import scratch_repo
from delivery.core.paths import layers_dir
from delivery.gitops import drift, render_layers, render_root, root_path, stale_root
from delivery.gitops.conventions import PROFILES
from delivery.schemas import ensure_bundle
from delivery.substrate import inputs
from delivery.substrate.hcl import load_module
from delivery.validation import Report, validate_envs

_SHOWN_DRIFT = 5


def _rel(repo: Path, path: Path) -> str:
    return str(path.relative_to(repo))


def other_profiles(repo: Path, cfg: EnvConfig) -> list[str]:
    """Profiles besides the env's own whose root is written (clusters/<env>/root-<profile>.yaml)."""
    return [p for p in PROFILES if p != cfg.profile and root_path(repo, cfg, p).is_file()]


def generated(repo: Path, cfg: EnvConfig) -> dict[str, str]:
    """The env's roots and layers as the renderers make them from ``cfg`` (repo-relative path -> text)."""
    files = {_rel(repo, root_path(repo, cfg)): render_root(cfg)}
    for profile in other_profiles(repo, cfg):
        files[_rel(repo, root_path(repo, cfg, profile))] = render_root(cfg, profile)
    base = _rel(repo, layers_dir(repo, cfg.name))
    files.update({f"{base}/{rel}": text for rel, text in render_layers(repo, cfg).items()})
    return files


def on_disk(repo: Path, env: str) -> set[str]:
    """The generated files of ``env`` in the tree now (its roots and everything under its layers)."""
    base = layers_dir(repo, env)
    roots = {
        _rel(repo, p)
        for p in base.parent.glob("root*.yaml")
        if p.is_file() and (p.name == "root.yaml" or p.stem.removeprefix("root-") in PROFILES)
    }
    layers = {_rel(repo, p) for p in base.rglob("*") if p.is_file()} if base.is_dir() else set()
    return roots | layers


def stale(repo: Path, cfg: EnvConfig) -> list[Problem]:
    """The env's generated files that are out of date with its config, each naming the file(s)."""
    again = "commit, then run deliver fork-init again"
    problems = []
    for profile in [None, *other_profiles(repo, cfg)]:
        found = stale_root(repo, cfg, profile)
        if found is not None:
            problems.append(Problem(found.where, found.what, f"{found.fix.removeprefix('run: ')}, {again}"))
    drifted = drift(repo, cfg)
    if drifted:
        names = [str(p.where) for p in drifted]
        more = f" and {len(names) - _SHOWN_DRIFT} more" if len(names) > _SHOWN_DRIFT else ""
        base = _rel(repo, layers_dir(repo, cfg.name))
        problems.append(
            Problem(
                base,
                f"{len(names)} generated file(s) differ from what {cfg.path} renders: "
                f"{', '.join(names[:_SHOWN_DRIFT])}{more} "
                f"(deliver layers render --env {cfg.name} --check lists them all)",
                f"deliver layers render --env {cfg.name} --write (or move a hand edit into the config "
                f"first), {again}",
            )
        )
    return problems


def disagreeing_repo_urls(configs: Mapping[str, EnvConfig]) -> list[Problem]:
    """One platform repo serves every env: configs that name different ones are refused, each named."""
    urls = {cfg.repo_url for cfg in configs.values()}
    if len(urls) < 2:
        return []
    shown = "; ".join(f"{cfg.path}: {cfg.repo_url}" for cfg in configs.values())
    return [
        Problem(
            Location(str(cfg.path), key="repoURL"),
            f"repoURL {cfg.repo_url!r} disagrees with the other environments ({shown})",
            "make every env's repoURL the platform repo's URL (run deliver root / layers render --write "
            "for each), commit, then run deliver fork-init again",
        )
        for cfg in configs.values()
    ]


def tofu_inputs(repo: Path, cfg: EnvConfig) -> dict[str, Any]:
    """What ``deliver plan`` passes the env's OpenTofu root: its variables and backend config."""
    root = inputs.root_dir(repo, cfg.name)
    if not root.is_dir():
        return {}
    module = load_module(root)
    return {
        "root": _rel(repo, root),
        "variables": inputs.root_variables(cfg, set(module.variables)),
        "backend": inputs.backend_config(cfg, module.backend),
        "stateBucket": inputs.state_bucket(cfg),
    }


@contextmanager
def scratch(repo: Path, files: Mapping[str, str | None]) -> Iterator[Path]:
    """A throwaway copy of the repo's data with ``files`` (path -> text, None: deleted) in place."""
    with scratch_repo(repo, "deliver-fork-") as copy:
        overlay(copy, files)
        yield copy


def overlay(copy: Path, files: Mapping[str, str | None]) -> None:
    """Put ``files`` (path -> text, None: deleted) into the scratch copy ``copy``."""
    for rel, text in files.items():
        path = copy / rel
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text.encode("utf-8"))


def validate(
    repo: Path,
    copy: Path,
    envs: Sequence[str],
    minors: Sequence[str],
    *,
    offline: bool,
    source_dir: Path | None,
) -> list[Report]:
    """``deliver validate`` over every env of the scratch copy (the schema bundle cached in ``repo``)."""
    bundle = ensure_bundle(repo, sorted(set(minors)), source_dir=source_dir, offline=offline)
    return validate_envs(copy, list(envs), schemas=bundle.root)
