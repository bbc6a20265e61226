"""HCL-level policy for OpenTofu roots and the local modules they call (no providers needed).

Each rule returns every violation it finds, located at ``file:line`` with a fix:
- a GPU node pool scales to zero (autoscaling minimum 0, no fixed or initial nodes);
- a GPU node pool carries the ``nvidia.com/gpu`` NoSchedule taint and lets GKE install the driver;
- a GKE cluster has Workload Identity and Dataplane V2;
- a GKE cluster is private by config: private nodes (no pool opts out), a control plane reachable
  only from the networks environment config lists (a variable, never a literal, never GCE's public
  IPs), no client certificates or legacy ABAC, and every node pool shielded with Secure Boot and
  integrity monitoring;
- no kubernetes/helm/kubectl provider or resource (the substrate stops at the cluster: what runs
  inside it is Argo CD's);
- no Secret Manager secret *versions* (their values would sit in state in plain text);
- every variable of a root is fed from environment config (``inputs.INPUTS``), and module calls in
  a root pass variables, never literal values (a value is typed once, in config.yaml).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from delivery.core.errors import Problem
from delivery.substrate import inputs
from delivery.substrate.hcl import Block, Module, load_module, located, nested, problem

GPU_TAINT_KEY = "nvidia.com/gpu"
DRIVER_VERSIONS = ("DEFAULT", "LATEST")  # GKE installs the driver (INSTALLATION_DISABLED: nobody does)
IN_CLUSTER_PROVIDERS = ("kubernetes", "helm", "kubectl")
SECRET_VALUE_TYPES = (
    "google_secret_manager_secret_version",
    "google_secret_manager_regional_secret_version",
    "google_secret_manager_secret_version_access",
    "google_secret_manager_regional_secret_version_access",
)
_META_ARGS = {"source", "version", "providers", "depends_on", "count", "for_each"}


def _is_zero(value: Any) -> bool:
    return bool(value == 0 or value == "0")


def _gpu_pools(module: Module) -> list[Block]:
    return [
        b
        for b in module.of_kind("resource")
        if b.labels[0] == "google_container_node_pool" and nested(b.body, "node_config", "guest_accelerator")
    ]


def gpu_pool_scales_to_zero(module: Module, repo: Path | None) -> list[Problem]:
    """GPU pools: autoscaling with a minimum of 0, no node_count, initial_node_count 0 or unset."""
    found = []
    fix = "set autoscaling { min_node_count = 0 } (or total_min_node_count = 0) and initial_node_count = 0"
    for pool in _gpu_pools(module):
        scaling = nested(pool.body, "autoscaling")
        mins = [s[k] for s in scaling for k in ("min_node_count", "total_min_node_count") if k in s]
        if not scaling:
            found.append(
                problem(pool, "GPU node pool has no autoscaling block (it cannot scale to zero)", fix, repo)
            )
        elif not mins or not all(_is_zero(m) for m in mins):
            shown = ", ".join(str(m) for m in mins) or "unset"
            found.append(
                problem(pool, f"GPU node pool minimum is {shown}, not 0 (idle GPUs cost money)", fix, repo)
            )
        if "node_count" in pool.body:
            found.append(problem(pool, "GPU node pool sets a fixed node_count", "remove node_count", repo))
        if "initial_node_count" in pool.body and not _is_zero(pool.body["initial_node_count"]):
            found.append(
                problem(pool, f"GPU node pool starts with {pool.body['initial_node_count']} nodes", fix, repo)
            )
    return found


def gpu_pool_tainted_with_driver(module: Module, repo: Path | None) -> list[Problem]:
    """GPU pools: the nvidia.com/gpu NoSchedule taint, and GKE-managed driver installation."""
    found = []
    for pool in _gpu_pools(module):
        taints = nested(pool.body, "node_config", "taint")
        if not any(t.get("key") == GPU_TAINT_KEY and t.get("effect") == "NO_SCHEDULE" for t in taints):
            found.append(
                problem(
                    pool,
                    f"GPU node pool lacks the {GPU_TAINT_KEY} NO_SCHEDULE taint (others would land on it)",
                    f'add node_config {{ taint {{ key = "{GPU_TAINT_KEY}", value = "present", '
                    'effect = "NO_SCHEDULE" }}',
                    repo,
                )
            )
        for acc in nested(pool.body, "node_config", "guest_accelerator"):
            drivers = nested(acc, "gpu_driver_installation_config")
            versions = [str(d.get("gpu_driver_version", "unset")) for d in drivers]
            if not drivers:
                what = "guest_accelerator lacks gpu_driver_installation_config (no GKE driver install)"
            elif not all(v in DRIVER_VERSIONS for v in versions):
                shown = ", ".join(versions)
                what = f"gpu_driver_version is {shown}, not DEFAULT or LATEST (GKE installs no driver)"
            else:
                continue
            fix = 'set gpu_driver_installation_config { gpu_driver_version = "DEFAULT" }'
            found.append(problem(pool, what, fix, repo))
    return found


def cluster_baseline(module: Module, repo: Path | None) -> list[Problem]:
    """GKE clusters: Workload Identity, Dataplane V2 (NetworkPolicy; creation-time only), DCGM metrics."""
    found = []
    for cluster in module.of_kind("resource"):
        if cluster.labels[0] != "google_container_cluster":
            continue
        pools = nested(cluster.body, "workload_identity_config")
        if not any(p.get("workload_pool") for p in pools):
            found.append(
                problem(
                    cluster,
                    "cluster has no Workload Identity",
                    'add workload_identity_config { workload_pool = "${var.project_id}.svc.id.goog" }',
                    repo,
                )
            )
        monitoring = nested(cluster.body, "monitoring_config")
        if not any("DCGM" in (m.get("enable_components") or []) for m in monitoring):
            found.append(
                problem(
                    cluster,
                    "cluster does not enable GKE's DCGM metrics (the GPU metrics the platform scrapes)",
                    'add monitoring_config { enable_components = ["SYSTEM_COMPONENTS", "DCGM"] '
                    "managed_prometheus { enabled = true } }",
                    repo,
                )
            )
        if cluster.body.get("datapath_provider") != "ADVANCED_DATAPATH":
            found.append(
                problem(
                    cluster,
                    "cluster is not on Dataplane V2 (NetworkPolicy would not be enforced)",
                    'set datapath_provider = "ADVANCED_DATAPATH" (only possible at creation)',
                    repo,
                )
            )
    return found


def _clusters(module: Module) -> list[Block]:
    return [b for b in module.of_kind("resource") if b.labels[0] == "google_container_cluster"]


def _pools(module: Module) -> list[Block]:
    return [b for b in module.of_kind("resource") if b.labels[0] == "google_container_node_pool"]


OPEN_NETWORKS = ("0.0.0.0/0", "::/0")
_VARIABLE = re.compile(r"^\$\{var\.([A-Za-z_][A-Za-z0-9_-]*)\}$")


def cluster_private_nodes(module: Module, repo: Path | None) -> list[Problem]:
    """GKE clusters: nodes have internal addresses only, and no node pool opts out of that."""
    found = []
    for cluster in _clusters(module):
        if not any(
            c.get("enable_private_nodes") is True for c in nested(cluster.body, "private_cluster_config")
        ):
            found.append(
                problem(
                    cluster,
                    "cluster nodes get public IP addresses "
                    "(no private_cluster_config { enable_private_nodes = true })",
                    "add private_cluster_config { enable_private_nodes = true, "
                    "enable_private_endpoint = false } (egress goes through Cloud NAT)",
                    repo,
                )
            )
    for pool in _pools(module):
        if any(n.get("enable_private_nodes") is False for n in nested(pool.body, "network_config")):
            found.append(
                problem(
                    pool,
                    "node pool opts out of private nodes (network_config.enable_private_nodes = false)",
                    "remove enable_private_nodes from the pool's network_config",
                    repo,
                )
            )
    return found


def control_plane_authorized_networks(module: Module, repo: Path | None) -> list[Problem]:
    """GKE clusters: the control plane answers only the networks config lists (cluster.authorizedNetworks).

    ``master_authorized_networks_config`` must exist, take its ``cidr_blocks`` from one dynamic block
    over a module variable without a default (so the root passes it, from config), list no literal
    network, and keep Compute Engine's public IPs (``gcp_public_cidrs_access_enabled``) out.
    """
    found = []
    fix = (
        "master_authorized_networks_config { gcp_public_cidrs_access_enabled = false, "
        'dynamic "cidr_blocks" { for_each = var.authorized_networks ... } }: the networks are '
        "cluster.authorizedNetworks in config.yaml"
    )
    variables = module.variables
    for cluster in _clusters(module):
        dns = nested(cluster.body, "control_plane_endpoints_config", "dns_endpoint_config")
        if any(d.get("allow_external_traffic") is True for d in dns):
            found.append(
                problem(
                    cluster,
                    "the control plane's DNS endpoint admits traffic from anywhere "
                    "(authorized networks do not apply to it)",
                    "set control_plane_endpoints_config { dns_endpoint_config { "
                    "allow_external_traffic = false } }",
                    repo,
                )
            )
        configs = nested(cluster.body, "master_authorized_networks_config")
        if not configs:
            found.append(
                problem(
                    cluster,
                    "control plane is open to every network (no master_authorized_networks_config)",
                    fix,
                    repo,
                )
            )
            continue
        for config in configs:
            if config.get("gcp_public_cidrs_access_enabled") is not False:
                found.append(
                    problem(
                        cluster,
                        "control plane admits every Compute Engine public IP "
                        "(gcp_public_cidrs_access_enabled is not false)",
                        "set gcp_public_cidrs_access_enabled = false",
                        repo,
                    )
                )
            for block in nested(config, "cidr_blocks"):
                cidr = str(block.get("cidr_block", ""))
                what = (
                    f"control plane is open to the whole internet (cidr_blocks {cidr})"
                    if cidr in OPEN_NETWORKS
                    else f"authorized network {cidr} is a literal in the module, not from config"
                )
                found.append(problem(cluster, what, fix, repo))
            dynamic = [d["cidr_blocks"] for d in nested(config, "dynamic") if "cidr_blocks" in d]
            sources = [str(d.get("for_each", "")) for d in dynamic if isinstance(d, dict)]
            if not sources:
                found.append(problem(cluster, "authorized networks do not come from a variable", fix, repo))
            for source in sources:
                m = _VARIABLE.match(source)
                if not m:
                    found.append(
                        problem(
                            cluster,
                            f"authorized networks come from {source!r}, not from one variable",
                            f"use for_each = var.<name> alone; {fix}",
                            repo,
                        )
                    )
                elif m.group(1) not in variables or "default" in variables[m.group(1)].body:
                    found.append(
                        problem(
                            cluster,
                            f"authorized networks come from var.{m.group(1)}, which is not a module input "
                            "without a default (the root must pass it, from config)",
                            "declare the variable without a default; the root passes "
                            "var.authorized_networks (from config)",
                            repo,
                        )
                    )
    return found


def no_client_certificates(module: Module, repo: Path | None) -> list[Problem]:
    """GKE clusters: no client certificates (they cannot be revoked), no legacy ABAC authorizer."""
    found = []
    for cluster in _clusters(module):
        certs = nested(cluster.body, "master_auth", "client_certificate_config")
        if not certs or not all(c.get("issue_client_certificate") is False for c in certs):
            found.append(
                problem(
                    cluster,
                    "client certificate authentication is not explicitly off",
                    "add master_auth { client_certificate_config { issue_client_certificate = false } }",
                    repo,
                )
            )
        if cluster.body.get("enable_legacy_abac") not in (None, False):
            found.append(
                problem(
                    cluster,
                    "legacy ABAC is on (static permissions beyond RBAC and IAM)",
                    "set enable_legacy_abac = false",
                    repo,
                )
            )
    return found


def node_pools_shielded(module: Module, repo: Path | None) -> list[Problem]:
    """Every node pool (and any inline ``node_pool`` of a cluster): Shielded VM with Secure Boot and
    integrity monitoring. GPU pools too: the NVIDIA driver GKE installs is signed."""
    found = []
    fix = (
        "add node_config { shielded_instance_config { enable_secure_boot = true, "
        "enable_integrity_monitoring = true } }"
    )
    pools = [(pool, "node pool", [pool.body]) for pool in _pools(module)]
    for cluster in _clusters(module):
        if cluster.body.get("enable_shielded_nodes") is False:
            found.append(
                problem(cluster, "Shielded GKE Nodes are off", "remove enable_shielded_nodes = false", repo)
            )
        if inline := nested(cluster.body, "node_pool"):
            pools.append((cluster, "inline node_pool", inline))
    for block, kind, bodies in pools:
        for body in bodies:
            shielded = nested(body, "node_config", "shielded_instance_config")
            for key, what in (
                ("enable_secure_boot", "Secure Boot"),
                ("enable_integrity_monitoring", "integrity monitoring"),
            ):
                if not shielded or not all(s.get(key) is True for s in shielded):
                    found.append(problem(block, f"{kind} does not turn on {what} ({key} = true)", fix, repo))
    return found


def no_in_cluster_providers(module: Module, repo: Path | None) -> list[Problem]:
    """No kubernetes/helm/kubectl providers or resources: Argo CD owns everything in the cluster."""
    found = []
    fix = "move in-cluster objects to clusters/<env>/layers (Argo CD), keep tofu to cloud resources"
    for name, (source, file, line) in module.required_providers.items():
        short = source.rsplit("/", 1)[-1]
        if name in IN_CLUSTER_PROVIDERS or short in IN_CLUSTER_PROVIDERS:
            what = f"required provider {name} ({source}) manages objects in the cluster"
            found.append(Problem(located(file, line, repo), what, fix))
    for block in module.of_kind("provider"):
        if block.labels[0] in IN_CLUSTER_PROVIDERS:
            found.append(problem(block, "in-cluster provider configured", fix, repo))
    for block in module.of_kind("resource") + module.of_kind("data"):
        if block.labels[0].split("_", 1)[0] in IN_CLUSTER_PROVIDERS:
            found.append(problem(block, "in-cluster resource", fix, repo))
    return found


def no_secret_values(module: Module, repo: Path | None) -> list[Problem]:
    """Secret Manager secrets may be declared; their versions (values) never: state is not a vault."""
    return [
        problem(
            block,
            "secret values must not be managed by tofu (the value would sit in state in plain text)",
            "declare only google_secret_manager_secret; add values out-of-band (gcloud secrets versions add)",
            repo,
        )
        for block in module.of_kind("resource") + module.of_kind("data")
        if block.labels[0] in SECRET_VALUE_TYPES
    ]


def variables_from_config(root: Module, repo: Path | None) -> list[Problem]:
    """A root's variables all come from env config; its module calls pass variables, not literals."""
    found = []
    known = ", ".join(sorted(inputs.INPUT_NAMES))
    for name, block in root.variables.items():
        if name not in inputs.INPUT_NAMES:
            found.append(
                problem(
                    block,
                    "variable is not fed from environment config",
                    f"use one of the config-fed variables ({known}), or map a config key to it in "
                    "ci/delivery/substrate/inputs.py",
                    repo,
                )
            )
    for call in root.of_kind("module"):
        for arg, value in call.body.items():
            if arg not in _META_ARGS and not (isinstance(value, str) and value.startswith("${")):
                found.append(
                    problem(
                        call,
                        f"argument {arg} = {value!r} is a literal value in an environment root",
                        "put the value in environments/<env>/config.yaml and pass var.<name>, "
                        "or make it a module default",
                        repo,
                    )
                )
    return found


MODULE_RULES: tuple[Callable[[Module, Path | None], list[Problem]], ...] = (
    gpu_pool_scales_to_zero,
    gpu_pool_tainted_with_driver,
    cluster_baseline,
    cluster_private_nodes,
    control_plane_authorized_networks,
    no_client_certificates,
    node_pools_shielded,
    no_in_cluster_providers,
    no_secret_values,
)


def check_module(root: Module, repo: Path | None = None) -> list[Problem]:
    """Every rule over a loaded root and all its local modules."""
    found = variables_from_config(root, repo)
    for module in root.walk():
        for rule in MODULE_RULES:
            found.extend(rule(module, repo))
    return found


def check_root(path: Path, repo: Path | None = None) -> tuple[Module, list[Problem]]:
    """Load the root at ``path`` and run every rule; returns the module and all problems."""
    root = load_module(path)
    return root, check_module(root, repo)
