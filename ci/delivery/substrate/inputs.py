"""Everything a root receives comes from environment config: its directory, variables and backend.

- The root of environment E is ``tofu/envs/E`` (``root_dir``); tests copy fixture roots there, so
  they run through exactly the code path of a real environment.
- Each variable a root may declare is mapped from one config key (``INPUTS``); ``deliver plan``
  writes the values it declares to a tfvars JSON file and passes it with ``-var-file``.
- A ``backend "gcs" {}`` block stays empty in HCL: bucket and prefix are derived here
  (``<projectID>-tofu-state``, ``llm-platform/<env>``) and passed with ``-backend-config``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from delivery.config import PROTECTED_TAG_PREFIX, EnvConfig
from delivery.core.errors import ConfigError

TOFU_DIR = "tofu"
STATE_PREFIX = "llm-platform"
_ARTIFACT_REGISTRY = re.compile(
    r"^(?P<location>[a-z0-9-]+)-docker\.pkg\.dev/(?P<project>[^/]+)/(?P<repo>[^/]+)$"
)


def root_dir(repo: Path, env: str) -> Path:
    """The OpenTofu root of an environment."""
    return repo / TOFU_DIR / "envs" / env


def state_bucket(cfg: EnvConfig) -> str:
    """The GCS bucket holding the environment's state (created out-of-band, versioning on)."""
    return f"{cfg.cluster.project_id}-tofu-state"


def backend_config(cfg: EnvConfig, backend_type: str | None) -> list[str]:
    """``-backend-config`` arguments for the root's backend (nothing for a local backend)."""
    if backend_type == "gcs":
        return [
            f"-backend-config=bucket={state_bucket(cfg)}",
            f"-backend-config=prefix={STATE_PREFIX}/{cfg.name}",
        ]
    return []


@dataclass(frozen=True)
class Registry:
    """An Artifact Registry docker repository, split from ``registry`` in the env config."""

    location: str
    project: str
    repository: str


def artifact_registry(cfg: EnvConfig) -> Registry:
    """Split ``registry`` (``<location>-docker.pkg.dev/<project>/<repository>``)."""
    m = _ARTIFACT_REGISTRY.match(cfg.registry)
    if not m:
        raise ConfigError(
            f"registry: {cfg.registry!r} is not an Artifact Registry docker repository "
            "(<location>-docker.pkg.dev/<project>/<repository>), which the substrate creates",
            where=str(cfg.path),
            fix="set registry to e.g. europe-west4-docker.pkg.dev/<projectID>/modelcars",
        )
    return Registry(m.group("location"), m.group("project"), m.group("repo"))


@dataclass(frozen=True)
class Input:
    """One root variable and the config key it comes from."""

    variable: str
    source: str
    value: Callable[[EnvConfig], object]


INPUTS: tuple[Input, ...] = (
    Input("environment", "(environment name)", lambda c: c.name),
    Input("project_id", "cluster.projectID", lambda c: c.cluster.project_id),
    Input("cluster_name", "cluster.name", lambda c: c.cluster.name),
    Input("location", "cluster.location", lambda c: c.cluster.location),
    Input("region", "cluster.location (region part)", lambda c: c.cluster.region),
    Input("kubernetes_version", "cluster.kubernetesVersion", lambda c: c.cluster.kubernetes_version),
    Input(
        "authorized_networks",
        "cluster.authorizedNetworks",
        lambda c: [
            {"cidr_block": net.cidr_block, "display_name": net.display_name}
            for net in c.cluster.authorized_networks
        ],
    ),
    Input("labels", "cluster.labels (plus env and part-of)", lambda c: c.cluster_labels),
    Input("registry_location", "registry (location)", lambda c: artifact_registry(c).location),
    Input("registry_project", "registry (project)", lambda c: artifact_registry(c).project),
    Input("registry_repository", "registry (repository)", lambda c: artifact_registry(c).repository),
    Input("gpu_type", "gpu.type", lambda c: c.gpu.type),
    Input("gpu_machine_type", "gpu.machineType", lambda c: c.gpu.machine_type),
    Input("gpu_per_node", "gpu.perNode", lambda c: c.gpu.per_node),
    Input("gpu_max_nodes", "gpu.maxNodes", lambda c: c.gpu.max_nodes),
    Input("gpu_spot", "gpu.spot", lambda c: c.gpu.spot),
    Input("gpu_image_streaming", "gpu.imageStreaming", lambda c: c.gpu.image_streaming),
    Input(
        "registry_cleanup",
        "registryCleanup",
        lambda c: {
            "dry_run": c.registry_cleanup.dry_run,
            "keep_recent": c.registry_cleanup.keep_recent,
            "delete_untagged_older_than": f"{c.registry_cleanup.delete_untagged_older_than_seconds}s",
            "delete_tagged": None
            if c.registry_cleanup.delete_tagged is None
            else {
                "older_than": f"{c.registry_cleanup.delete_tagged.older_than_seconds}s",
                "tag_prefixes": list(c.registry_cleanup.delete_tagged.tag_prefixes),
            },
            "protected_tag_prefix": PROTECTED_TAG_PREFIX,
        },
    ),
    Input(
        "features",
        "features",
        lambda c: {
            "llm_d": c.features.llm_d,
            "kserve": c.features.kserve,
            "autoscaling": c.features.autoscaling,
            "demos": c.features.demos,
        },
    ),
)
INPUT_NAMES = frozenset(i.variable for i in INPUTS)


def root_variables(cfg: EnvConfig, declared: set[str] | frozenset[str]) -> dict[str, object]:
    """Values of the variables a root declares, from ``cfg`` (policy has checked they are known)."""
    return {i.variable: i.value(cfg) for i in INPUTS if i.variable in declared}
