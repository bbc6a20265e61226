"""Loading and checking environment configs: one file at a time, then the references between them."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from delivery.config.model import ENV_NAME, EnvConfig
from delivery.core import yamlio
from delivery.core.documents import load_typed
from delivery.core.errors import ConfigError, Location, Problem, UsageError, raise_if
from delivery.core.paths import env_config_path, environments_dir, modelcars_dir

MIN_PRODUCTION_PREFIX = 8
"""A production control plane may be reached only from networks no broader than a /8 (each, and together)."""


def _at(cfg: EnvConfig, data: Any, *keypath: str | int) -> Location:
    """``file:line: key.path`` of a key in the env's config (the line where it is written)."""
    return Location(str(cfg.path), yamlio.line_of(data, list(keypath)), ".".join(map(str, keypath)))


def _semantic_problems(cfg: EnvConfig, data: Any) -> list[Problem]:
    problems = []
    if cfg.features.llm_d and cfg.gpu.max_gpus < 2:
        problems.append(
            Problem(
                _at(cfg, data, "features", "llm-d"),
                f"features.llm-d is true but the GPU pool has at most {cfg.gpu.max_gpus} GPU "
                "(llm-d disaggregated serving needs at least 2)",
                "set features.llm-d: false, or raise gpu.perNode x gpu.maxNodes to 2 or more",
            )
        )
    if cfg.features.demos and cfg.profile != "full":
        problems.append(
            Problem(
                _at(cfg, data, "features", "demos"),
                f"features.demos is true but profile {cfg.profile!r} has no demos layer",
                "set profile: full, or features.demos: false",
            )
        )
    if cfg.promotion.source == cfg.name:
        problems.append(
            Problem(
                _at(cfg, data, "promotion", "from"),
                "promotion.from names this environment itself",
                "name the upstream env",
            )
        )
    for i, window in enumerate(cfg.promotion.freeze_windows):
        if window.end <= window.start:
            problems.append(
                Problem(
                    _at(cfg, data, "promotion", "freezeWindows", i),
                    f"promotion.freezeWindows.{i}: end is not after start",
                    "swap or fix the times",
                )
            )
    return problems


def _production_problems(cfg: EnvConfig, data: Any) -> list[Problem]:
    """A production env (``promotion.approvalRequired: true``) names who may reach its control plane,
    and that is never the whole internet."""
    if not cfg.production:
        return []

    def at(*keypath: str | int) -> Location:
        return Location(str(cfg.path), yamlio.line_of(data, list(keypath)), ".".join(map(str, keypath)))

    example = "e.g. authorizedNetworks: [{cidrBlock: 203.0.113.0/24, displayName: office}]"
    if not cfg.cluster.authorized_networks:
        return [
            Problem(
                at("cluster", "authorizedNetworks"),
                "is missing or empty, but this is a production environment "
                "(promotion.approvalRequired: true): name the networks that may reach its control plane",
                f"list your office/VPN/CI egress networks under cluster.authorizedNetworks ({example})",
            )
        ]
    fix = "list only the networks that need kubectl access (your office, VPN or CI egress ranges)"
    problems = [
        Problem(
            at("cluster", "authorizedNetworks", i, "cidrBlock"),
            f"{net.cidr_block} opens the control plane of a production environment to "
            + (
                "the whole internet"
                if net.network.prefixlen == 0
                else f"2^{32 - net.network.prefixlen} addresses"
            ),
            fix,
        )
        for i, net in enumerate(cfg.cluster.authorized_networks)
        if net.network.prefixlen < MIN_PRODUCTION_PREFIX
    ]
    # several broad networks can add up to everything (0.0.0.0/1 + 128.0.0.0/1)
    v4 = [
        net.network
        for net in cfg.cluster.authorized_networks
        if isinstance(net.network, ipaddress.IPv4Network)
    ]
    union = list(ipaddress.collapse_addresses(v4))
    if not problems and any(n.prefixlen < MIN_PRODUCTION_PREFIX for n in union):
        problems.append(
            Problem(
                at("cluster", "authorizedNetworks"),
                "together these networks cover "
                + ", ".join(str(n) for n in union if n.prefixlen < MIN_PRODUCTION_PREFIX)
                + ": a production control plane open that wide is as good as public",
                fix,
            )
        )
    return problems


def list_envs(repo: Path) -> list[str]:
    """Names of all environments (directories under environments/ that hold a config.yaml)."""
    base = environments_dir(repo)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / "config.yaml").is_file())


def _check_env_name(repo: Path, env: str) -> Path:
    path = env_config_path(repo, env)
    if not ENV_NAME.match(env) or not path.is_file():
        known = ", ".join(list_envs(repo)) or "none"
        raise UsageError(
            f"unknown environment {env!r} (known: {known})",
            where=str(environments_dir(repo)),
            fix="pass one of the known environments, or create environments/<env>/config.yaml",
        )
    return path


def _load_typed(repo: Path, env: str) -> tuple[EnvConfig, Any, list[Problem]]:
    """The env's config as typed data (a ConfigError if it is not), with its semantic problems."""
    path = _check_env_name(repo, env)
    cfg, data = load_typed(
        path,
        path.relative_to(repo),
        EnvConfig,
        docs="README: Environment config, and environments/dev/config.yaml",
    )
    cfg._name = env
    cfg._path = path.relative_to(repo)
    return cfg, data, _semantic_problems(cfg, data) + _production_problems(cfg, data)


def load_env(repo: Path, env: str) -> EnvConfig:
    """Load and validate one environment's config; raises ConfigError listing every problem."""
    cfg, _, problems = _load_typed(repo, env)
    raise_if(problems, ConfigError)
    return cfg


def _cross_env_problems(
    repo: Path, configs: dict[str, tuple[EnvConfig, Any]], selected: list[str], all_envs: list[str]
) -> list[Problem]:
    problems = []
    for name, (cfg, data) in configs.items():
        if name not in selected:
            continue
        source = cfg.promotion.source
        if source is not None and source != name and source not in all_envs:
            problems.append(
                Problem(
                    _at(cfg, data, "promotion", "from"),
                    f"promotion.from names unknown environment {source!r} (known: {', '.join(all_envs)})",
                    "name an existing environment, or remove promotion.from",
                )
            )
        spec = modelcars_dir(repo) / f"{cfg.serving.model}.yaml"
        if not spec.is_file():
            problems.append(
                Problem(
                    _at(cfg, data, "serving", "model"),
                    f"serving.model {cfg.serving.model!r} has no modelcar spec at modelcars/{spec.name}",
                    "add the spec under modelcars/, or name an existing one",
                )
            )
    # one GCP project per environment: the substrate names its secrets, service accounts and state
    # bucket from it, so two envs on one project would collide at apply
    owners: dict[str, list[str]] = {}
    for name, (cfg, _data) in configs.items():
        owners.setdefault(cfg.cluster.project_id, []).append(name)
    for project, names in owners.items():
        for name in names:
            if len(names) > 1 and name in selected:
                cfg, data = configs[name]
                others = ", ".join(n for n in names if n != name)
                problems.append(
                    Problem(
                        _at(cfg, data, "cluster", "projectID"),
                        f"cluster.projectID {project!r} is also {others}'s: each environment needs its own "
                        "(its substrate's secrets, service accounts and state bucket are named from it)",
                        f"give {name} a GCP project of its own",
                    )
                )
    # promotion chains must not loop
    for name, (cfg, data) in configs.items():
        if name not in selected:
            continue
        seen = [name]
        cur = cfg.promotion.source
        while cur is not None and cur in configs:
            if cur in seen:
                problems.append(
                    Problem(
                        _at(cfg, data, "promotion", "from"),
                        f"promotion.from forms a loop: {' -> '.join([*seen, cur])}",
                        "promotion must flow one way (e.g. dev -> staging -> prod)",
                    )
                )
                break
            seen.append(cur)
            cur = configs[cur][0].promotion.source
    return problems


def check(repo: Path, envs: list[str] | None = None) -> tuple[dict[str, EnvConfig], list[Problem]]:
    """Validate the given environments (default: all) and their cross-references.

    Returns the configs that loaded and every problem found (empty when all is well).
    """
    all_envs = list_envs(repo)
    if not all_envs:
        raise UsageError(
            "no environments found",
            where=str(environments_dir(repo)),
            fix="add environments/<env>/config.yaml",
        )
    selected = envs or all_envs
    typed: dict[str, tuple[EnvConfig, Any]] = {}
    valid: dict[str, EnvConfig] = {}
    problems: list[Problem] = []
    for env in selected:
        _check_env_name(repo, env)
    # load every env (cross-references need them), report on the selected ones; an env with a
    # semantic problem still takes part in the cross-file checks, so everything is reported at once
    for env in all_envs:
        try:
            cfg, data, found = _load_typed(repo, env)
        except ConfigError as err:
            if env in selected:
                problems.extend(err.problems)
            continue
        typed[env] = (cfg, data)
        if env in selected:
            problems.extend(found)
        if not found:
            valid[env] = cfg
    problems.extend(_cross_env_problems(repo, typed, selected, all_envs))
    return {k: v for k, v in valid.items() if k in selected}, problems
