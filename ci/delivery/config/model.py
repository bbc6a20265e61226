"""The typed model of environments/<env>/config.yaml: the single source of an environment's values."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import Field, field_validator

from delivery.core.documents import LocatedDocument, Strict

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
    require_verified: Annotated[bool, Field(alias="requireVerified")] = False

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
