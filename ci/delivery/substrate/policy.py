"""HCL-level policy for OpenTofu roots and the local modules they call (no providers needed).

Each rule returns every violation it finds, located at ``file:line`` with a fix:
- a GPU node pool scales to zero (autoscaling minimum 0, no fixed or initial nodes);
- a GPU node pool carries the ``nvidia.com/gpu`` NoSchedule taint and lets GKE install the driver;
- a GKE cluster has Workload Identity and Dataplane V2;
- no kubernetes/helm/kubectl provider or resource (the substrate stops at the cluster: what runs
  inside it is Argo CD's);
- no Secret Manager secret *versions* (their values would sit in state in plain text);
- every variable of a root is fed from environment config (``inputs.INPUTS``), and module calls in
  a root pass variables, never literal values (a value is typed once, in config.yaml).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from delivery.core.errors import Problem
from delivery.substrate import inputs
from delivery.substrate.hcl import Block, Module, load_module, located, nested, problem

GPU_TAINT_KEY = "nvidia.com/gpu"
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
            if not drivers or not all(d.get("gpu_driver_version") in {"DEFAULT", "LATEST"} for d in drivers):
                found.append(
                    problem(
                        pool,
                        "guest_accelerator lacks gpu_driver_installation_config (no GKE driver install)",
                        'add gpu_driver_installation_config { gpu_driver_version = "DEFAULT" }',
                        repo,
                    )
                )
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
