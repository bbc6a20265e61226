"""The GKE module and env roots, checked offline: HCL policy (python-hcl2), inputs from config, fmt.

Providers cannot be downloaded here, so the real roots are never planned in these tests (the Dagger
function `tofu-plan` does that where providers are reachable). Each policy is shown to catch a
violation planted in a copy of the real module.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, Result
from delivery import config as envconfig
from delivery.core import yamlio
from delivery.core.errors import ConfigError, ValidationFailed
from delivery.substrate import inputs, planpolicy, policy
from delivery.substrate.hcl import load_module

Deliver = Callable[..., Result]
MODULE = Path("tofu/modules/gke")
ENVS = ("dev", "prod", "staging")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} not found once in {path}"
    path.write_text(text.replace(old, new))


def problems_of(repo: Path, env: str = "dev") -> list[str]:
    _, found = policy.check_root(inputs.root_dir(repo, env), repo)
    return [p.render() for p in found]


@pytest.fixture
def check(deliver: Deliver, tools: Callable[[str], str]) -> Callable[..., Result]:
    binary = tools("tofu")

    def run(repo: Path, *args: str) -> Result:
        return deliver("substrate-check", "--binary", binary, *args, repo=repo)

    return run


def test_committed_roots_pass_every_policy_and_fmt(check: Callable[..., Result], repo_copy: Path) -> None:
    result = check(repo_copy)
    assert result.code == 0, result.err
    for env in ENVS:
        assert f"ok  {env}  (tofu/envs/{env}" in result.out
    data = json.loads(check(repo_copy, "--json").out)
    assert data == {"ok": True, "checked": list(ENVS), "problems": []}


def test_every_env_has_a_root_whose_variables_all_come_from_config() -> None:
    assert sorted(p.name for p in (REPO / "tofu" / "envs").iterdir()) == sorted(envconfig.list_envs(REPO))
    for env in ENVS:
        root = load_module(inputs.root_dir(REPO, env))
        assert root.backend == "gcs"
        assert set(root.variables) <= inputs.INPUT_NAMES
        module = root.children["gke"]
        # every module input without a default is passed by the root, from a root variable
        required = {n for n, b in module.variables.items() if "default" not in b.body}
        call = next(b for b in root.of_kind("module") if b.labels == ("gke",))
        assert required <= set(call.body)
        assert all(call.body[n] == f"${{var.{n}}}" for n in required)


def test_root_variables_are_valued_from_config() -> None:
    cfg = envconfig.load_env(REPO, "dev")
    values = inputs.root_variables(cfg, inputs.INPUT_NAMES)
    assert values["project_id"] == cfg.cluster.project_id
    assert values["region"] == cfg.cluster.region and values["location"] == cfg.cluster.location
    location, project, repository = (values[f"registry_{k}"] for k in ("location", "project", "repository"))
    assert f"{location}-docker.pkg.dev/{project}/{repository}" == cfg.registry
    assert values["gpu_max_nodes"] == cfg.gpu.max_nodes and values["gpu_spot"] is cfg.gpu.spot
    assert inputs.root_variables(cfg, {"cluster_name"}) == {"cluster_name": cfg.cluster.name}


def test_the_layers_read_only_secrets_and_a_service_account_the_module_declares() -> None:
    # ESO may read only the secrets tofu declares (secretAccessor per secret), through the KSA bound
    # by Workload Identity: an ExternalSecret naming an undeclared secret would never sync.
    gke = load_module(REPO / MODULE).variables
    declared = set(gke["secret_ids"].body["default"])
    bound_ksa = gke["eso_kubernetes_service_account"].body["default"]
    for env in ENVS:
        read: set[str] = set()
        eso_ksas: set[str] = set()
        for path in sorted((REPO / "clusters" / env / "layers").rglob("*.yaml")):
            for doc in yamlio.load_all_file(path):
                if not isinstance(doc, dict):
                    continue
                spec = doc.get("spec") or {}
                if doc.get("kind") == "ExternalSecret":
                    assert spec["secretStoreRef"]["name"] == "gcp-secret-manager", path
                    read |= {d["remoteRef"]["key"] for d in spec.get("data", [])}
                    read |= {d["extract"]["key"] for d in spec.get("dataFrom", []) if "extract" in d}
                if doc.get("kind") == "Application" and doc["metadata"]["name"] == "external-secrets":
                    values = spec["source"]["helm"]["valuesObject"]
                    eso_ksas.add(f"{spec['destination']['namespace']}/{values['serviceAccount']['name']}")
        assert read, f"{env}: no ExternalSecret found"
        assert read <= declared, f"{env}: secrets read but not declared in tofu: {sorted(read - declared)}"
        assert eso_ksas == {bound_ksa}, env


def test_a_registry_that_is_not_artifact_registry_is_a_config_error(repo_copy: Path) -> None:
    path = repo_copy / "environments" / "dev" / "config.yaml"
    cfg = envconfig.load_env(repo_copy, "dev")
    edit(path, cfg.registry, "ghcr.io/example/modelcars")
    with pytest.raises(ConfigError, match="not an Artifact Registry docker repository"):
        inputs.root_variables(envconfig.load_env(repo_copy, "dev"), inputs.INPUT_NAMES)


# ------------------------------------------------------------------------ each policy catches its violation


def test_gpu_pool_minimum_above_zero_is_caught(repo_copy: Path) -> None:
    edit(repo_copy / MODULE / "cluster.tf", "min_node_count = 0", "min_node_count = 1")
    found = problems_of(repo_copy)
    assert len(found) == 1
    assert "tofu/modules/gke/cluster.tf:" in found[0]
    assert "google_container_node_pool.gpu: GPU node pool minimum is 1, not 0" in found[0]


def test_gpu_pool_with_fixed_or_initial_nodes_is_caught(repo_copy: Path) -> None:
    edit(
        repo_copy / MODULE / "cluster.tf",
        "initial_node_count = 0\n",
        "initial_node_count = 2\n  node_count = 1\n",
    )
    found = "\n".join(problems_of(repo_copy))
    assert "GPU node pool starts with 2 nodes" in found and "fixed node_count" in found


def test_gpu_pool_without_autoscaling_is_caught(repo_copy: Path) -> None:
    edit(
        repo_copy / MODULE / "cluster.tf",
        "  autoscaling {\n    min_node_count = 0\n    max_node_count = var.gpu_max_nodes\n  }\n",
        "",
    )
    assert any("no autoscaling block" in p for p in problems_of(repo_copy))


def test_gpu_pool_without_the_gpu_taint_is_caught(repo_copy: Path) -> None:
    edit(repo_copy / MODULE / "cluster.tf", 'key    = "nvidia.com/gpu"', 'key    = "dedicated"')
    found = problems_of(repo_copy)
    assert len(found) == 1 and "lacks the nvidia.com/gpu NO_SCHEDULE taint" in found[0]


def test_gpu_pool_without_driver_installation_is_caught(repo_copy: Path) -> None:
    edit(
        repo_copy / MODULE / "cluster.tf",
        '      gpu_driver_installation_config {\n        gpu_driver_version = "DEFAULT"\n      }\n',
        "",
    )
    found = problems_of(repo_copy)
    assert len(found) == 1 and "gpu_driver_installation_config" in found[0]


@pytest.mark.parametrize("version", ["INSTALLATION_DISABLED", "R535", "${var.driver}"])
def test_gpu_pool_with_a_driver_gke_does_not_install_is_caught(repo_copy: Path, version: str) -> None:
    edit(
        repo_copy / MODULE / "cluster.tf",
        'gpu_driver_version = "DEFAULT"',
        f'gpu_driver_version = "{version}"',
    )
    found = problems_of(repo_copy)
    assert len(found) == 1 and f"gpu_driver_version is {version}, not DEFAULT or LATEST" in found[0], found


def test_cluster_without_dataplane_v2_or_workload_identity_is_caught(repo_copy: Path) -> None:
    cluster = repo_copy / MODULE / "cluster.tf"
    edit(cluster, '  datapath_provider = "ADVANCED_DATAPATH"\n', "")
    edit(cluster, "  workload_identity_config {\n    workload_pool = local.workload_pool\n  }\n", "")
    found = "\n".join(problems_of(repo_copy))
    assert "not on Dataplane V2" in found and "no Workload Identity" in found


def test_cluster_without_dcgm_metrics_is_caught(repo_copy: Path) -> None:
    cluster = repo_copy / MODULE / "cluster.tf"
    edit(
        cluster,
        '    enable_components = ["SYSTEM_COMPONENTS", "DCGM"]\n',
        '    enable_components = ["SYSTEM_COMPONENTS"]\n',
    )
    found = problems_of(repo_copy)
    assert len(found) == 1 and "does not enable GKE's DCGM metrics" in found[0]


@pytest.mark.parametrize(
    ("where", "snippet", "expected"),
    [
        ("module", 'provider "kubernetes" {}\n', "provider.kubernetes: in-cluster provider configured"),
        ("root", 'resource "helm_release" "argo" {}\n', "helm_release.argo: in-cluster resource"),
        (
            "root-versions",
            'terraform {\n  required_providers {\n    kubectl = {\n      source = "gavinbunney/kubectl"\n'
            "    }\n  }\n}\n",
            "required provider kubectl (gavinbunney/kubectl) manages objects in the cluster",
        ),
        (
            "module",
            'data "kubernetes_namespace" "x" {}\n',
            "data.kubernetes_namespace.x: in-cluster resource",
        ),
    ],
)
def test_kubernetes_and_helm_are_caught(repo_copy: Path, where: str, snippet: str, expected: str) -> None:
    target = repo_copy / (MODULE if where == "module" else Path("tofu/envs/dev")) / "extra.tf"
    target.write_text(snippet)
    found = problems_of(repo_copy)
    assert len(found) == 1 and expected in found[0], found
    assert found[0].startswith(f"{target.relative_to(repo_copy)}:")
    assert "Argo CD" in found[0]


@pytest.mark.parametrize("kind", ["resource", "data"])
def test_secret_versions_are_caught(repo_copy: Path, kind: str) -> None:
    (repo_copy / MODULE / "extra.tf").write_text(
        f'{kind} "google_secret_manager_secret_version" "key" {{\n  secret = "x"\n}}\n'
    )
    found = problems_of(repo_copy)
    assert len(found) == 1 and "secret values must not be managed by tofu" in found[0]
    assert "tofu/modules/gke/extra.tf:1" in found[0]


def test_a_root_variable_not_fed_from_config_is_caught(repo_copy: Path) -> None:
    (repo_copy / "tofu/envs/dev/extra.tf").write_text('variable "machine_type" {\n  type = string\n}\n')
    found = problems_of(repo_copy)
    assert len(found) == 1
    assert (
        "tofu/envs/dev/extra.tf:1: variable.machine_type: variable is not fed from environment config"
        in found[0]
    )


def test_a_literal_value_in_a_root_is_caught(repo_copy: Path) -> None:
    edit(repo_copy / "tofu/envs/dev/main.tf", "gpu_max_nodes       = var.gpu_max_nodes", "gpu_max_nodes = 4")
    found = problems_of(repo_copy)
    assert len(found) == 1 and "argument gpu_max_nodes = 4 is a literal value" in found[0]


def test_all_violations_are_reported_at_once(check: Callable[..., Result], repo_copy: Path) -> None:
    edit(repo_copy / MODULE / "cluster.tf", "min_node_count = 0", "min_node_count = 1")
    (repo_copy / MODULE / "extra.tf").write_text('provider "helm" {}\n')
    (repo_copy / "tofu/envs/staging/extra.tf").write_text('variable "zone" {\n  type = string\n}\n')
    result = check(repo_copy)
    assert result.code == 1
    assert "minimum is 1" in result.err and "provider.helm" in result.err and "variable.zone" in result.err
    # the shared module is wrong for every env; staging's own variable only for staging
    assert result.err.count("provider.helm") == 3 and result.err.count("variable.zone") == 1


def test_substrate_check_wants_a_gcs_backend_and_formatted_files(
    check: Callable[..., Result], repo_copy: Path
) -> None:
    edit(repo_copy / "tofu/envs/prod/main.tf", 'backend "gcs" {}', 'backend "local" {}')
    edit(repo_copy / MODULE / "registry.tf", '  format        = "DOCKER"', 'format = "DOCKER"')
    edit(
        repo_copy / MODULE / "tests/gke.tftest.hcl",
        "    gpu_image_streaming = false\n",
        "gpu_image_streaming=false\n",
    )
    result = check(repo_copy)
    assert result.code == 1
    assert "tofu/modules/gke/tests/gke.tftest.hcl: not formatted" in result.err  # the module's tests too
    assert (
        "tofu/envs/prod/main.tf:11: root has backend 'local', not an empty backend \"gcs\" {}" in result.err
    )
    assert "llm-platform-prod-tofu-state" in result.err
    assert "tofu/modules/gke/registry.tf: not formatted" in result.err


def test_plan_refuses_a_root_that_breaks_policy_before_running_tofu(
    deliver: Deliver, repo_copy: Path, tools: Callable[[str], str]
) -> None:
    root = inputs.root_dir(repo_copy, "dev")
    shutil.rmtree(root)
    shutil.copytree(REPO / "tests/fixtures/tofu/basic", root)
    (root / "k8s.tf").write_text('resource "kubernetes_namespace" "serving" {}\n')
    result = deliver("plan", "--env", "dev", "--binary", tools("tofu"), repo=repo_copy)
    assert result.code == 1
    assert "kubernetes_namespace.serving: in-cluster resource" in result.err
    assert not (root / ".terraform").exists() and not (repo_copy / "out").exists()


def test_unparsable_hcl_is_one_clear_error(repo_copy: Path) -> None:
    (repo_copy / MODULE / "extra.tf").write_text('resource "x" "y" {\n  a = \n')
    with pytest.raises(ValidationFailed, match="not valid HCL") as err:
        policy.check_root(inputs.root_dir(repo_copy, "dev"), repo_copy)
    assert "extra.tf" in err.value.render()


# ------------------------------------------------------------------------ the cluster is private by config


def test_cluster_with_public_nodes_is_caught(repo_copy: Path) -> None:
    edit(
        repo_copy / MODULE / "cluster.tf", "enable_private_nodes    = true", "enable_private_nodes    = false"
    )
    found = problems_of(repo_copy)
    assert len(found) == 1 and "google_container_cluster.this: cluster nodes get public IP" in found[0]
    assert found[0].startswith("tofu/modules/gke/cluster.tf:")


def test_a_node_pool_opting_out_of_private_nodes_is_caught(repo_copy: Path) -> None:
    edit(
        repo_copy / MODULE / "cluster.tf",
        "  initial_node_count = 0\n",
        "  initial_node_count = 0\n  network_config {\n    enable_private_nodes = false\n  }\n",
    )
    found = problems_of(repo_copy)
    assert (
        len(found) == 1 and "google_container_node_pool.gpu: node pool opts out of private nodes" in found[0]
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "  master_authorized_networks_config {\n",
            "  master_authorized_networks_config {\n    cidr_blocks {\n"
            '      cidr_block = "0.0.0.0/0"\n    }\n',
            "control plane is open to the whole internet (cidr_blocks 0.0.0.0/0)",
            id="literal-0.0.0.0/0",
        ),
        pytest.param(
            "  master_authorized_networks_config {\n",
            "  master_authorized_networks_config {\n    cidr_blocks {\n"
            '      cidr_block = "10.0.0.0/8"\n    }\n',
            "authorized network 10.0.0.0/8 is a literal in the module, not from config",
            id="literal-network",
        ),
        pytest.param(
            "      for_each = var.authorized_networks\n",
            "      for_each = concat(var.authorized_networks, "
            '[{ cidr_block = "0.0.0.0/0", display_name = "all" }])\n',
            "authorized networks come from '${concat(var.authorized_networks",
            id="variable-plus-literal",
        ),
        pytest.param(
            "gcp_public_cidrs_access_enabled = false",
            "gcp_public_cidrs_access_enabled = true",
            "control plane admits every Compute Engine public IP",
            id="gce-public-ips",
        ),
        pytest.param(
            "      allow_external_traffic = false\n",
            "      allow_external_traffic = true\n",
            "the control plane's DNS endpoint admits traffic from anywhere",
            id="dns-endpoint-open",
        ),
    ],
)
def test_control_plane_open_beyond_config_is_caught(
    repo_copy: Path, old: str, new: str, expected: str
) -> None:
    edit(repo_copy / MODULE / "cluster.tf", old, new)
    found = problems_of(repo_copy)
    assert len(found) == 1 and f"google_container_cluster.this: {expected}" in found[0], found


def test_control_plane_without_authorized_networks_is_caught(repo_copy: Path) -> None:
    cluster = repo_copy / MODULE / "cluster.tf"
    text = cluster.read_text()
    start = text.index("  master_authorized_networks_config {\n")
    end = text.index("\n  }\n", start) + len("\n  }\n")
    cluster.write_text(text[:start] + text[end:])
    found = problems_of(repo_copy)
    assert len(found) == 1 and "open to every network (no master_authorized_networks_config)" in found[0]


def test_authorized_networks_from_a_defaulted_variable_are_caught(repo_copy: Path) -> None:
    # a default would let a root that does not pass the variable open the control plane silently
    variables = repo_copy / MODULE / "variables.tf"
    edit(
        variables,
        '    error_message = "authorized_networks:',
        '  }\n  default = [{ cidr_block = "0.0.0.0/0", display_name = "all" }]\n  validation {\n'
        '    condition     = true\n    error_message = "authorized_networks:',
    )
    found = problems_of(repo_copy)
    assert (
        len(found) == 1
        and "var.authorized_networks, which is not a module input without a default" in found[0]
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "      issue_client_certificate = false\n",
            "      issue_client_certificate = true\n",
            "client certificate authentication is not explicitly off",
            id="client-certificate-on",
        ),
        pytest.param(
            "  master_auth {\n    client_certificate_config {\n"
            "      issue_client_certificate = false\n    }\n  }\n",
            "",
            "client certificate authentication is not explicitly off",
            id="client-certificate-unset",
        ),
        pytest.param(
            "enable_legacy_abac    = false",
            "enable_legacy_abac    = true",
            "legacy ABAC is on",
            id="legacy-abac",
        ),
    ],
)
def test_client_certificates_and_legacy_abac_are_caught(
    repo_copy: Path, old: str, new: str, expected: str
) -> None:
    edit(repo_copy / MODULE / "cluster.tf", old, new)
    found = problems_of(repo_copy)
    assert len(found) == 1 and f"google_container_cluster.this: {expected}" in found[0], found


@pytest.mark.parametrize("pool", ["platform", "gpu"])
@pytest.mark.parametrize(
    ("key", "what"),
    [("enable_secure_boot", "Secure Boot"), ("enable_integrity_monitoring", "integrity monitoring")],
)
def test_a_node_pool_without_secure_boot_or_integrity_monitoring_is_caught(
    repo_copy: Path, pool: str, key: str, what: str
) -> None:
    cluster = repo_copy / MODULE / "cluster.tf"
    text = cluster.read_text()
    start = text.index(f'resource "google_container_node_pool" "{pool}"')
    at = text.index(f"{key}", start)
    line_end = text.index("\n", at)
    cluster.write_text(text[:at] + text[at:line_end].replace("true", "false") + text[line_end:])
    found = problems_of(repo_copy)
    assert len(found) == 1, found
    assert f"google_container_node_pool.{pool}: node pool does not turn on {what} ({key} = true)" in found[0]


def test_a_node_pool_without_shielded_instance_config_is_caught(repo_copy: Path) -> None:
    cluster = repo_copy / MODULE / "cluster.tf"
    text = cluster.read_text()
    block = (
        "    shielded_instance_config {\n      enable_secure_boot          = true\n"
        "      enable_integrity_monitoring = true\n    }\n"
    )
    assert text.count(block) == 2
    cluster.write_text(text.replace(block, "", 1))  # the platform pool comes first
    found = "\n".join(problems_of(repo_copy))
    assert "google_container_node_pool.platform: node pool does not turn on Secure Boot" in found
    assert "google_container_node_pool.platform: node pool does not turn on integrity monitoring" in found
    assert "google_container_node_pool.gpu" not in found


def test_shielded_nodes_off_and_an_unshielded_inline_pool_are_caught(repo_copy: Path) -> None:
    edit(
        repo_copy / MODULE / "cluster.tf",
        "enable_shielded_nodes = true",
        'enable_shielded_nodes = false\n  node_pool {\n    name = "inline"\n  }',
    )
    found = "\n".join(problems_of(repo_copy))
    assert "google_container_cluster.this: Shielded GKE Nodes are off" in found
    assert "google_container_cluster.this: inline node_pool does not turn on Secure Boot" in found


def test_the_private_cluster_rules_check_every_env_root(
    check: Callable[..., Result], repo_copy: Path
) -> None:
    edit(
        repo_copy / MODULE / "cluster.tf", "enable_private_nodes    = true", "enable_private_nodes    = false"
    )
    result = check(repo_copy)
    assert result.code == 1
    assert result.err.count("cluster nodes get public IP addresses") == 3


# ------------------------------------------------------------------------ the same rules over planned values


def _planned() -> dict[str, object]:
    """The shape of `show -json` for the module's cluster and pools (values as the real plan has them)."""

    def shielded() -> list[dict[str, bool]]:
        return [{"enable_secure_boot": True, "enable_integrity_monitoring": True}]

    gpu = {
        "autoscaling": [{"min_node_count": 0, "max_node_count": 2, "total_min_node_count": None}],
        "initial_node_count": 0,
        "node_count": None,
        "node_config": [
            {
                "shielded_instance_config": shielded(),
                "taint": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}],
                "guest_accelerator": [
                    {
                        "type": "nvidia-l4",
                        "count": 1,
                        "gpu_driver_installation_config": [{"gpu_driver_version": "DEFAULT"}],
                    }
                ],
            }
        ],
    }
    cluster = {
        "datapath_provider": "ADVANCED_DATAPATH",
        "workload_identity_config": [{"workload_pool": "p.svc.id.goog"}],
        "private_cluster_config": [{"enable_private_nodes": True}],
        "master_authorized_networks_config": [
            {"cidr_blocks": [{"cidr_block": "203.0.113.0/24"}], "gcp_public_cidrs_access_enabled": False}
        ],
    }

    def rc(address: str, type_: str, after: object, actions: list[str] | None = None) -> dict[str, object]:
        return {
            "address": address,
            "type": type_,
            "mode": "managed",
            "change": {"actions": actions or ["create"], "after": after},
        }

    return {
        "resource_changes": [
            rc("module.gke.google_container_node_pool.gpu", "google_container_node_pool", gpu),
            rc(
                "module.gke.google_container_node_pool.platform",
                "google_container_node_pool",
                {"node_config": [{"shielded_instance_config": shielded()}]},
                ["update"],
            ),
            rc(
                "module.gke.google_container_cluster.this",
                "google_container_cluster",
                cluster,
                ["delete", "create"],
            ),
        ]
    }


def _at(plan: dict[str, object], address: str) -> dict[str, Any]:
    changes = plan["resource_changes"]
    assert isinstance(changes, list)
    return next(c["change"]["after"] for c in changes if c["address"] == address)


GPU = "module.gke.google_container_node_pool.gpu"
PLATFORM = "module.gke.google_container_node_pool.platform"
CLUSTER = "module.gke.google_container_cluster.this"


@pytest.mark.parametrize(
    ("address", "mutate", "expected"),
    [
        (GPU, lambda v: v["autoscaling"][0].update(min_node_count=1), "GPU node pool minimum is 1, not 0"),
        (GPU, lambda v: v.update(autoscaling=[]), "GPU node pool minimum is unset, not 0"),
        (GPU, lambda v: v.update(initial_node_count=2), "GPU node pool starts with 2 nodes"),
        (GPU, lambda v: v.update(node_count=1), "GPU node pool has a fixed node_count of 1"),
        (
            GPU,
            lambda v: v["node_config"][0]["taint"][0].update(effect="NO_EXECUTE"),
            "lacks the nvidia.com/gpu",
        ),
        (
            GPU,
            lambda v: v["node_config"][0]["guest_accelerator"][0].update(gpu_driver_installation_config=[]),
            "GPU driver installation is unset",
        ),
        (
            PLATFORM,
            lambda v: v["node_config"][0]["shielded_instance_config"][0].update(enable_secure_boot=False),
            "node pool does not turn on Secure Boot",
        ),
        (CLUSTER, lambda v: v.update(datapath_provider="LEGACY_DATAPATH"), "datapath is LEGACY_DATAPATH"),
        (CLUSTER, lambda v: v.update(workload_identity_config=[]), "no Workload Identity pool"),
        (CLUSTER, lambda v: v["private_cluster_config"][0].update(enable_private_nodes=False), "not private"),
        (
            CLUSTER,
            lambda v: v["master_authorized_networks_config"][0]["cidr_blocks"].append(
                {"cidr_block": "0.0.0.0/0"}
            ),
            "open to the whole internet (0.0.0.0/0)",
        ),
        (
            CLUSTER,
            lambda v: v["master_authorized_networks_config"][0].update(gcp_public_cidrs_access_enabled=True),
            "admits every Compute Engine public IP",
        ),
        (CLUSTER, lambda v: v.update(master_authorized_networks_config=[]), "no authorized networks"),
    ],
)
def test_the_plan_policy_catches_each_rule_in_planned_values(
    address: str, mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    plan = _planned()
    assert planpolicy.check(plan, "tofu/envs/dev") == []
    mutate(_at(plan, address))
    found = [p.render() for p in planpolicy.check(plan, "tofu/envs/dev")]
    assert len(found) == 1 and found[0].startswith(f"tofu/envs/dev: {address}: planned: "), found
    assert expected in found[0], found


@pytest.mark.parametrize(
    ("type_", "expected"),
    [
        ("google_secret_manager_secret_version", "writes a secret value into state"),
        ("kubernetes_namespace", "manages an object inside the cluster"),
    ],
)
def test_the_plan_policy_refuses_secret_values_and_in_cluster_objects(type_: str, expected: str) -> None:
    plan = _planned()
    changes = plan["resource_changes"]
    assert isinstance(changes, list)
    changes.append({"address": f"{type_}.x", "type": type_, "change": {"actions": ["create"], "after": {}}})
    changes.append(
        {"address": f"{type_}.gone", "type": type_, "change": {"actions": ["delete"], "after": None}}
    )
    found = [p.render() for p in planpolicy.check(plan, "root")]
    assert found == [f"root: {type_}.x: planned: the plan {expected}" + found[0].split(expected, 1)[1]], found
