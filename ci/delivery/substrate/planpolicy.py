"""Policy over a saved plan's ``show -json``: what tofu *will* create, values resolved.

The HCL policy (``policy``) reads the source before tofu runs and is strict about literals; this one
reads the planned values after the provider has accepted them, so it also sees values that arrive
through variables, locals and expressions. Both hold the same platform rules:
- no Secret Manager secret version (a value in state) and nothing managed inside the cluster;
- a GPU node pool scales to zero (minimum 0, no initial or fixed nodes), carries the
  ``nvidia.com/gpu`` NO_SCHEDULE taint and lets GKE install the driver (DEFAULT or LATEST);
- a cluster has Workload Identity, Dataplane V2, private nodes and no control plane open to all;
- every node pool has Secure Boot and integrity monitoring;
- a registry's cleanup never deletes a release: with any DELETE policy there is a KEEP of the
  protected tag prefix (``config.PROTECTED_TAG_PREFIX``), and no DELETE policy can match such a tag.
Deleted resources are the apply gate's business (``runner.gate``), not this policy's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from delivery.config import PROTECTED_TAG_PREFIX
from delivery.core.errors import Location, Problem
from delivery.substrate.policy import (
    DRIVER_VERSIONS,
    GPU_TAINT_KEY,
    IN_CLUSTER_PROVIDERS,
    OPEN_NETWORKS,
    SECRET_VALUE_TYPES,
)


def _first(value: Any) -> dict[str, Any]:
    """The single nested block of a planned value (``[{…}]``), or ``{}``."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return value[0]
    return value if isinstance(value, dict) else {}


def _blocks(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def planned(plan_json: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(address, type, planned values) of each managed resource the plan creates or changes."""
    for rc in plan_json.get("resource_changes") or []:
        change = rc.get("change") or {}
        actions = tuple(change.get("actions") or ())
        if rc.get("mode", "managed") != "managed" or not ("create" in actions or actions == ("update",)):
            continue
        yield str(rc.get("address", "")), str(rc.get("type", "")), change.get("after") or {}


def _gpu_pool(values: dict[str, Any]) -> list[str]:
    found = []
    scaling = _blocks(values.get("autoscaling"))
    mins = [s[k] for s in scaling for k in ("min_node_count", "total_min_node_count") if s.get(k) is not None]
    if not mins or any(m != 0 for m in mins):
        found.append(f"GPU node pool minimum is {', '.join(map(str, mins)) or 'unset'}, not 0")
    if values.get("initial_node_count") not in (None, 0):
        found.append(f"GPU node pool starts with {values['initial_node_count']} nodes")
    if isinstance(values.get("node_count"), int) and values["node_count"] != 0:
        found.append(f"GPU node pool has a fixed node_count of {values['node_count']}")
    config = _first(values.get("node_config"))
    taints = _blocks(config.get("taint"))
    if not any(t.get("key") == GPU_TAINT_KEY and t.get("effect") == "NO_SCHEDULE" for t in taints):
        shown = ", ".join(f"{t.get('key')}:{t.get('effect')}" for t in taints) or "none"
        found.append(f"GPU node pool lacks the {GPU_TAINT_KEY} NO_SCHEDULE taint (taints: {shown})")
    for acc in _blocks(config.get("guest_accelerator")):
        version = _first(acc.get("gpu_driver_installation_config")).get("gpu_driver_version")
        if version not in DRIVER_VERSIONS:
            wanted = " or ".join(DRIVER_VERSIONS)
            found.append(f"GPU driver installation is {version or 'unset'}, not {wanted}")
    return found


def _cluster(values: dict[str, Any]) -> list[str]:
    found = []
    if not _first(values.get("workload_identity_config")).get("workload_pool"):
        found.append("cluster has no Workload Identity pool")
    if values.get("datapath_provider") != "ADVANCED_DATAPATH":
        found.append(f"cluster datapath is {values.get('datapath_provider')}, not ADVANCED_DATAPATH")
    if _first(values.get("private_cluster_config")).get("enable_private_nodes") is not True:
        found.append("cluster nodes are not private")
    networks = _first(values.get("master_authorized_networks_config"))
    if not networks:
        found.append("control plane has no authorized networks (open to every network)")
    for block in _blocks(networks.get("cidr_blocks")):
        if block.get("cidr_block") in OPEN_NETWORKS:
            found.append(f"control plane is open to the whole internet ({block['cidr_block']})")
    if networks and networks.get("gcp_public_cidrs_access_enabled") is not False:
        found.append("control plane admits every Compute Engine public IP")
    return found


def _shielded(values: dict[str, Any]) -> list[str]:
    shielded = _first(_first(values.get("node_config")).get("shielded_instance_config"))
    return [
        f"node pool does not turn on {what}"
        for key, what in (
            ("enable_secure_boot", "Secure Boot"),
            ("enable_integrity_monitoring", "integrity monitoring"),
        )
        if shielded.get(key) is not True
    ]


def _overlaps_protected(prefix: str) -> bool:
    return prefix.startswith(PROTECTED_TAG_PREFIX) or PROTECTED_TAG_PREFIX.startswith(prefix)


def _registry_cleanup(values: dict[str, Any]) -> list[str]:
    found = []
    policies = _blocks(values.get("cleanup_policies"))
    keeps_releases = any(
        p.get("action") == "KEEP"
        and _first(p.get("condition")).get("tag_state") in ("TAGGED", "ANY")
        and PROTECTED_TAG_PREFIX in (_first(p.get("condition")).get("tag_prefixes") or [])
        for p in policies
    )
    deletes = [p for p in policies if p.get("action") == "DELETE"]
    if deletes and not keeps_releases:
        found.append(f"registry cleanup deletes versions but does not KEEP the {PROTECTED_TAG_PREFIX}* tags")
    for p in deletes:
        condition = _first(p.get("condition"))
        state, prefixes = condition.get("tag_state"), condition.get("tag_prefixes") or []
        if state == "UNTAGGED":
            continue
        if state not in ("TAGGED", "UNTAGGED") or not prefixes:
            name = p.get("id")
            found.append(f"registry cleanup policy {name!r} deletes tagged versions of any tag ({state})")
        for prefix in prefixes:
            if _overlaps_protected(prefix):
                found.append(
                    f"registry cleanup policy {p.get('id')!r} deletes tags {prefix}*, "
                    f"which can be {PROTECTED_TAG_PREFIX}* (a release)"
                )
    return found


def check(plan_json: dict[str, Any], where: str) -> list[Problem]:
    """Every rule over the plan's created and updated resources; ``where`` names the plan."""
    found: list[Problem] = []
    fix = "fix the module (the HCL policy and `deliver plan` say where), then plan again"
    for address, type_, values in planned(plan_json):
        messages: list[str] = []
        if type_ in SECRET_VALUE_TYPES:
            messages.append("the plan writes a secret value into state (a secret version)")
        if type_.split("_", 1)[0] in IN_CLUSTER_PROVIDERS:
            messages.append("the plan manages an object inside the cluster (that is Argo CD's)")
        if type_ == "google_container_node_pool":
            if _blocks(_first(values.get("node_config")).get("guest_accelerator")):
                messages += _gpu_pool(values)
            messages += _shielded(values)
        if type_ == "google_container_cluster":
            messages += _cluster(values)
        if type_ == "google_artifact_registry_repository":
            messages += _registry_cleanup(values)
        found += [Problem(Location(where, key=address), f"planned: {m}", fix) for m in messages]
    return found
