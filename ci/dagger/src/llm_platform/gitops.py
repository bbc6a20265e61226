"""GitOps files the CLI writes or checks: the layers (`deliver layers render`, clusters/<env>/layers/)
and the root Applications (`deliver root`, clusters/<env>/root.yaml), for one environment or all.

Writing runs the CLI in the toolbox against the mounted repo and returns what it changed there as a
changeset (`dagger generate` and `dagger call` offer to apply it to the checkout).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import PurePosixPath

import dagger

from .toolbox import changes, deliver, toolbox

# An environment is a directory under environments/ holding a config.yaml (as `deliver` lists them).
ENV_CONFIG_GLOB = "environments/*/config.yaml"


def env_names(config_paths: Iterable[str]) -> list[str]:
    """Environment names from paths matching ENV_CONFIG_GLOB, sorted like the CLI lists them."""
    return sorted({PurePosixPath(path).parent.name for path in config_paths})


async def environments(source: dagger.Directory, env: str) -> list[str]:
    """``[env]``, or every environment of the repo when ``env`` is empty."""
    if env:
        return [env]
    return env_names(await source.glob(ENV_CONFIG_GLOB))


def _require(envs: Sequence[str]) -> None:
    if not envs:
        raise ValueError("no environment found (environments/<env>/config.yaml)")


def layers(source: dagger.Directory, envs: Sequence[str], mode: str) -> dagger.Container:
    """`deliver layers render --env ENV MODE` per environment, in order (MODE: --write or --check)."""
    if mode not in ("--write", "--check"):
        raise ValueError(f"mode must be --write or --check, not {mode!r}")
    _require(envs)
    ctr = toolbox(source)
    for env in envs:
        ctr = deliver(ctr, "layers", "render", "--env", env, mode)
    return ctr


def write_layers(source: dagger.Directory, envs: Sequence[str]) -> dagger.Changeset:
    """The changeset of `deliver layers render --env ENV --write` over ``envs``."""
    return changes(source, layers(source, envs, "--write"))


def roots(source: dagger.Directory, envs: Sequence[str], profile: str) -> dagger.Container:
    """`deliver root --env ENV [--profile P] --write` per environment (a profile needs one env)."""
    if profile and len(envs) != 1:
        raise ValueError("a profile is chosen per environment: give exactly one env with it")
    _require(envs)
    ctr = toolbox(source)
    for env in envs:
        ctr = deliver(ctr, "root", "--env", env, *(["--profile", profile] if profile else []), "--write")
    return ctr


def write_roots(source: dagger.Directory, envs: Sequence[str], profile: str) -> dagger.Changeset:
    """The changeset of `deliver root --env ENV [--profile P] --write` over ``envs``."""
    return changes(source, roots(source, envs, profile))
