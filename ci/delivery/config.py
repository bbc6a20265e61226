"""Environment config: environments/<env>/config.yaml is the single source of an environment's values.

One typed loader (pydantic, strict): unknown keys, wrong types, bad enums and missing keys are
errors naming the file, the line, the key path and what is expected; all errors of a file at once.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from delivery import yamlio
from delivery.errors import ConfigError, Problem, UsageError, raise_if
from delivery.paths import env_config_path, environments_dir, modelcars_dir

M = TypeVar("M", bound=BaseModel)

Profile = Literal["platform", "serving", "llm-gateway", "full"]

# GKE accelerator types (gcloud compute accelerator-types list), the ones a serving pool uses.
GpuType = Literal[
    "nvidia-l4",
    "nvidia-tesla-t4",
    "nvidia-tesla-v100",
    "nvidia-tesla-a100",
    "nvidia-a100-80gb",
    "nvidia-h100-80gb",
    "nvidia-h100-mega-80gb",
    "nvidia-h200-141gb",
    "nvidia-b200",
    "nvidia-rtx-pro-6000",
]

ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """Parse ``30m``, ``24h``, ``7d`` (one integer and one unit) into a timedelta."""
    m = DURATION.match(text)
    if not m:
        raise ValueError(f"expected a duration like 30m, 24h or 7d, got {text!r}")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


class Strict(BaseModel):
    """Base of every typed YAML document: unknown keys are errors, no type coercion, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=False)


class LocatedDocument(Strict):
    """A top-level document that knows its name and the file it came from (set by its loader)."""

    _name: str = PrivateAttr(default="")
    _path: Path = PrivateAttr(default=Path())

    @property
    def name(self) -> str:
        """The document's name (its directory or file stem)."""
        return self._name

    @property
    def path(self) -> Path:
        """The file it was loaded from, relative to the repo root."""
        return self._path

    def _locate(self, name: str, path: Path) -> None:
        self._name = name
        self._path = path


class Cluster(Strict):
    name: Annotated[str, Field(pattern=r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")]
    project_id: Annotated[str, Field(alias="projectID", pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")]
    location: Annotated[str, Field(pattern=r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")]
    kubernetes_version: Annotated[str, Field(alias="kubernetesVersion", pattern=r"^1\.(2[5-9]|3[0-7])$")]

    @property
    def region(self) -> str:
        """The region of the (zonal) cluster location, e.g. europe-west4 for europe-west4-a."""
        return self.location.rsplit("-", 1)[0]


class Gpu(Strict):
    type: GpuType
    machine_type: Annotated[str, Field(alias="machineType", pattern=r"^[a-z][a-z0-9]*-[a-z0-9-]+$")]
    per_node: Annotated[int, Field(alias="perNode", ge=1, le=8)]
    max_nodes: Annotated[int, Field(alias="maxNodes", ge=1, le=16)]
    spot: bool = False

    @property
    def min_nodes(self) -> int:
        """Always 0: an idle GPU pool costs nothing (scale-to-zero)."""
        return 0

    @property
    def max_gpus(self) -> int:
        return self.per_node * self.max_nodes


class Features(Strict):
    llm_d: bool = Field(default=False, alias="llm-d")
    kserve: bool = True
    autoscaling: bool = True
    demos: bool = False


class FreezeWindow(Strict):
    start: Annotated[datetime, Field(strict=False)]
    end: Annotated[datetime, Field(strict=False)]
    reason: Annotated[str, Field(min_length=1)]

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("expected a timestamp with a timezone, e.g. 2026-12-24T00:00:00Z")
        return value


class Promotion(Strict):
    source: Annotated[str | None, Field(alias="from")] = None
    soak: Annotated[str, Field(pattern=DURATION.pattern)] = "0s"
    approval_required: Annotated[bool, Field(alias="approvalRequired")] = False
    freeze_windows: Annotated[tuple[FreezeWindow, ...], Field(alias="freezeWindows", strict=False)] = ()

    @property
    def soak_time(self) -> timedelta:
        return parse_duration(self.soak)


class Serving(Strict):
    model: Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")]
    max_replicas: Annotated[int, Field(alias="maxReplicas", ge=1, le=64)] = 1


class EnvConfig(LocatedDocument):
    cluster: Cluster
    repo_url: Annotated[
        str, Field(alias="repoURL", pattern=r"^(https://[^\s/]+/\S+|ssh://\S+|git@[^\s:]+:\S+)$")
    ]
    repo_branch: Annotated[
        str,
        Field(alias="repoBranch", pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$"),
    ]
    domain: Annotated[str, Field(pattern=r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,}$")]
    registry: Annotated[str, Field(pattern=r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)+$")]
    profile: Profile
    gpu: Gpu
    features: Features = Features()
    promotion: Promotion = Promotion()
    serving: Serving


_YAML_TYPE = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "string": "a string",
    "bool": "a boolean (true or false)",
    "dict": "a mapping",
    "model": "a mapping",
    "list": "a list",
    "tuple": "a list",
    "datetime": "a timestamp",
    "NoneType": "nothing (null)",
}


def _describe(err: Any, docs: str) -> tuple[str, str]:
    """(what, fix) for one pydantic error; ``docs`` says where the format is documented."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    got = err.get("input")
    if kind == "extra_forbidden":
        return "unknown key", f"remove it or fix its spelling (see {docs})"
    if kind == "missing":
        return "required key is missing", f"add it (see {docs})"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, "), f"fix the value (see {docs})"
    if kind == "literal_error":
        return f"got {got!r}, expected one of {ctx.get('expected')}", "use one of the allowed values"
    if kind == "string_pattern_mismatch":
        return f"got {got!r}, which does not match {ctx.get('pattern')}", "fix the value's format"
    if kind.endswith("_type"):
        expected = _YAML_TYPE.get(kind.removesuffix("_type"), kind.removesuffix("_type"))
        hint = ' (quote numbers meant as text, e.g. "1.34")' if expected == "a string" else ""
        actual = _YAML_TYPE.get(type(got).__name__, type(got).__name__)
        return f"got {actual} {got!r}, expected {expected}{hint}", f"write {expected}"
    return f"{err['msg']} (got {got!r})", "fix the value"


def _validation_problems(path: Path, data: Any, exc: ValidationError, docs: str) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        keypath = ".".join(str(p) for p in loc) or "(top level)"
        line = yamlio.line_of(data, loc)
        what, fix = _describe(err, docs)
        where = f"{path}:{line}" if line else str(path)
        problems.append(Problem(where, f"{keypath}: {what}", fix))
    return problems


def _semantic_problems(cfg: EnvConfig) -> list[Problem]:
    where = str(cfg.path)
    problems = []
    if cfg.features.llm_d and cfg.gpu.max_gpus < 2:
        problems.append(
            Problem(
                where,
                f"features.llm-d is true but the GPU pool has at most {cfg.gpu.max_gpus} GPU "
                "(llm-d disaggregated serving needs at least 2)",
                "set features.llm-d: false, or raise gpu.perNode x gpu.maxNodes to 2 or more",
            )
        )
    if cfg.features.demos and cfg.profile != "full":
        problems.append(
            Problem(
                where,
                f"features.demos is true but profile {cfg.profile!r} has no demos layer",
                "set profile: full, or features.demos: false",
            )
        )
    if cfg.promotion.source == cfg.name:
        problems.append(
            Problem(where, "promotion.from names this environment itself", "name the upstream env")
        )
    for i, window in enumerate(cfg.promotion.freeze_windows):
        if window.end <= window.start:
            problems.append(
                Problem(
                    where, f"promotion.freezeWindows.{i}: end is not after start", "swap or fix the times"
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


def load_typed(path: Path, shown: Path, model: type[M], *, docs: str) -> tuple[M, Any]:
    """Load a YAML file into a strict pydantic model: the project's one typed-document loader.

    Returns the model and the round-trip data (for line numbers). Raises ConfigError listing every
    problem of the file at once, each as ``file:line: key.path: what`` with a fix pointing at ``docs``.
    """
    data = yamlio.load_file(path, shown)
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping at the top level", where=str(shown), fix=f"see {docs}")
    try:
        return model.model_validate(yamlio.plain(data)), data
    except ValidationError as exc:
        raise ConfigError.of(_validation_problems(shown, data, exc, docs)) from None


def load_env(repo: Path, env: str) -> EnvConfig:
    """Load and validate one environment's config; raises ConfigError listing every problem."""
    path = _check_env_name(repo, env)
    cfg, _ = load_typed(
        path,
        path.relative_to(repo),
        EnvConfig,
        docs="README: Environment config, and environments/dev/config.yaml",
    )
    cfg._name = env
    cfg._path = path.relative_to(repo)
    raise_if(_semantic_problems(cfg), ConfigError)
    return cfg


def _cross_env_problems(
    repo: Path, configs: dict[str, EnvConfig], selected: list[str], all_envs: list[str]
) -> list[Problem]:
    problems = []
    for name, cfg in configs.items():
        if name not in selected:
            continue
        where = str(cfg.path)
        source = cfg.promotion.source
        if source is not None and source != name and source not in all_envs:
            problems.append(
                Problem(
                    where,
                    f"promotion.from names unknown environment {source!r} (known: {', '.join(all_envs)})",
                    "name an existing environment, or remove promotion.from",
                )
            )
        spec = modelcars_dir(repo) / f"{cfg.serving.model}.yaml"
        if not spec.is_file():
            problems.append(
                Problem(
                    where,
                    f"serving.model {cfg.serving.model!r} has no modelcar spec at modelcars/{spec.name}",
                    "add the spec under modelcars/, or name an existing one",
                )
            )
    # promotion chains must not loop
    for name in configs:
        if name not in selected:
            continue
        seen = [name]
        cur = configs[name].promotion.source
        while cur is not None and cur in configs:
            if cur in seen:
                problems.append(
                    Problem(
                        str(configs[name].path),
                        f"promotion.from forms a loop: {' -> '.join([*seen, cur])}",
                        "promotion must flow one way (e.g. dev -> staging -> prod)",
                    )
                )
                break
            seen.append(cur)
            cur = configs[cur].promotion.source
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
    configs: dict[str, EnvConfig] = {}
    problems: list[Problem] = []
    for env in selected:
        _check_env_name(repo, env)
    # load every env (cross-references need them), report on the selected ones
    for env in all_envs:
        try:
            cfg = load_env(repo, env)
        except ConfigError as err:
            if env in selected:
                problems.extend(err.problems)
            continue
        configs[env] = cfg
    problems.extend(_cross_env_problems(repo, configs, selected, all_envs))
    return {k: v for k, v in configs.items() if k in selected}, problems
