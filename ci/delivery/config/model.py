"""The typed model of environments/<env>/config.yaml: the single source of an environment's values."""

from __future__ import annotations

import ipaddress
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
DURATION = re.compile(r"^(\d{1,6})([smhd])$")  # at most 999999d: timedelta's range, with room
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """Parse ``30m``, ``24h``, ``7d`` (one integer and one unit) into a timedelta."""
    m = DURATION.match(text)
    if not m:
        raise ValueError(f"expected a duration like 30m, 24h or 7d, got {text!r}")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


# GCP resource labels (https://cloud.google.com/compute/docs/labeling-resources): lowercase letters,
# digits, "_" and "-", at most 63 characters; keys start with a letter, values may be empty.
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
MAX_LABELS = 64  # per GCP resource
PART_OF = "llm-platform"
# Labels every cluster gets: env (the environment's name) and part-of, from here; managed-by from
# tofu/modules/gke. cluster.labels adds to them; env and managed-by cannot be overridden.
RESERVED_LABELS = ("env", "managed-by")
DEFAULT_LABELS = 3
# GKE's limit for master_authorized_networks_config.cidr_blocks on a public endpoint.
MAX_AUTHORIZED_NETWORKS = 50


class AuthorizedNetwork(Strict):
    """One network allowed to reach the control plane (GKE's ``cidr_blocks {cidr_block, display_name}``)."""

    cidr_block: Annotated[str, Field(alias="cidrBlock")]
    display_name: Annotated[str, Field(alias="displayName", min_length=1, max_length=100)]

    @field_validator("cidr_block")
    @classmethod
    def _ipv4_network(cls, value: str) -> str:
        if "/" not in value:
            raise ValueError(f"{value!r} has no prefix length: write a network, e.g. 203.0.113.0/24")
        try:
            net = ipaddress.ip_network(value, strict=True)
        except ValueError as err:  # host bits set, not an address, prefix out of range
            try:
                loose = ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"{value!r} is not a network in CIDR notation ({err})") from None
            raise ValueError(f"{value!r} has host bits set: the network is {str(loose)!r}") from None
        if net.version != 4:
            raise ValueError(f"{value!r} is IPv6: GKE authorized networks are IPv4 CIDRs")
        if str(net) != value:
            raise ValueError(f"{value!r} is not written canonically: write {str(net)!r}")
        return value

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.cidr_block)


class Cluster(Strict):
    name: Annotated[str, Field(pattern=r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")]
    project_id: Annotated[str, Field(alias="projectID", pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")]
    location: Annotated[str, Field(pattern=r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")]
    kubernetes_version: Annotated[str, Field(alias="kubernetesVersion", pattern=r"^1\.(2[5-9]|3[0-7])$")]
    # Who may reach the control plane's public endpoint; required (non-empty) in a production env.
    authorized_networks: Annotated[
        tuple[AuthorizedNetwork, ...],
        Field(alias="authorizedNetworks", strict=False, max_length=MAX_AUTHORIZED_NETWORKS),
    ] = ()
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("authorized_networks")
    @classmethod
    def _distinct(cls, value: tuple[AuthorizedNetwork, ...]) -> tuple[AuthorizedNetwork, ...]:
        seen: set[str] = set()
        for net in value:
            if net.cidr_block in seen:
                raise ValueError(f"{net.cidr_block} is listed twice")
            seen.add(net.cidr_block)
        return value

    @field_validator("labels")
    @classmethod
    def _gcp_labels(cls, value: dict[str, str]) -> dict[str, str]:
        wrong = [
            f"key {k!r} (a lowercase letter, then up to 62 of [a-z0-9_-])"
            for k in value
            if not LABEL_KEY.match(k)
        ]
        wrong += [
            f"value {v!r} of {k!r} (up to 63 of [a-z0-9_-])"
            for k, v in value.items()
            if not LABEL_VALUE.match(v)
        ]
        wrong += [
            f"key {k!r} is set for you (env: the environment's name, managed-by: the tofu module)"
            for k in value
            if k in RESERVED_LABELS
        ]
        if wrong:
            raise ValueError("not a GCP label: " + "; ".join(wrong))
        if len(value) > MAX_LABELS - DEFAULT_LABELS:
            raise ValueError(
                f"{len(value)} labels: GCP allows {MAX_LABELS} per resource, "
                f"{DEFAULT_LABELS} of them are the defaults"
            )
        return value

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
    # GKE image streaming on the GPU pool (cold start: pods start while the image is fetched)
    image_streaming: bool = Field(default=True, alias="imageStreaming")

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


# Every image an environment's release deploys, or its ledger could roll back to, carries a tag with
# this prefix in that environment's registry (publish and promotion put it there: release-sha256-<hex>);
# the registry's cleanup policies keep every version so tagged, whatever else they delete.
PROTECTED_TAG_PREFIX = "release-"
# Artifact Registry tag syntax (and so the prefixes a cleanup policy may name).
TAG_PREFIX = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$"
MIN_UNTAGGED_AGE = timedelta(days=1)


class DeleteTagged(Strict):
    """Also delete tagged versions older than ``olderThan`` whose tag starts with one of ``tagPrefixes``."""

    older_than: Annotated[str, Field(alias="olderThan", pattern=DURATION.pattern)]
    tag_prefixes: Annotated[
        tuple[Annotated[str, Field(pattern=TAG_PREFIX)], ...],
        Field(alias="tagPrefixes", min_length=1, strict=False),
    ]

    @field_validator("tag_prefixes")
    @classmethod
    def _never_protected(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for prefix in value:
            if prefix.startswith(PROTECTED_TAG_PREFIX) or PROTECTED_TAG_PREFIX.startswith(prefix):
                raise ValueError(
                    f"tag prefix {prefix!r} could match {PROTECTED_TAG_PREFIX}* tags, which mark what a "
                    "release deploys or could roll back to: cleanup never deletes them; name a prefix "
                    f"that cannot start a {PROTECTED_TAG_PREFIX!r} tag"
                )
        return value

    @property
    def older_than_seconds(self) -> int:
        return int(parse_duration(self.older_than).total_seconds())


class RegistryCleanup(Strict):
    """Artifact Registry cleanup policies of the environment's modelcar repository.

    Always kept: every version tagged ``release-*`` (what a release deploys or could roll back to) and
    the ``keepRecent`` most recent versions. Deleted: untagged versions older than
    ``deleteUntaggedOlderThan`` and, if set, ``deleteTagged``. ``dryRun``: the registry only reports
    what it would delete (the default: a fork opts in to deleting)."""

    dry_run: Annotated[bool, Field(alias="dryRun")] = True
    keep_recent: Annotated[int, Field(alias="keepRecent", ge=1, le=10_000)] = 10
    delete_untagged_older_than: Annotated[
        str, Field(alias="deleteUntaggedOlderThan", pattern=DURATION.pattern)
    ] = "30d"
    delete_tagged: Annotated[DeleteTagged | None, Field(alias="deleteTagged")] = None

    @field_validator("delete_untagged_older_than")
    @classmethod
    def _not_too_young(cls, value: str) -> str:
        if parse_duration(value) < MIN_UNTAGGED_AGE:
            raise ValueError(
                f"{value} is too young: an image is untagged between its manifest's push and its tag's "
                "(publish, promotion), so cleanup could delete it midway; use 1d or more"
            )
        return value

    @property
    def delete_untagged_older_than_seconds(self) -> int:
        return int(parse_duration(self.delete_untagged_older_than).total_seconds())


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
    registry_cleanup: Annotated[RegistryCleanup, Field(alias="registryCleanup")] = RegistryCleanup()

    @property
    def production(self) -> bool:
        """A production environment is one whose promotions need a manual approval
        (``promotion.approvalRequired: true``): no env name is special, a fork's are its own."""
        return self.promotion.approval_required

    @property
    def cluster_labels(self) -> dict[str, str]:
        """The cluster's labels: ``env`` and ``part-of`` by default, plus ``cluster.labels``."""
        return {"env": self.name, "part-of": PART_OF, **self.cluster.labels}
