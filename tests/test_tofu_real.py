"""The real GKE roots and module against the real google provider (the version the roots pin), offline.

No registry is reachable here, so the provider comes from a filesystem mirror: ``$DELIVER_PROVIDER_MIRROR``
when set, else the one ``bash .ci/install`` unpacks from ../shared/tofu-providers into
``~/.cache/llm-platform/tofu-mirror``. Without it these tests skip locally and fail with CI=true.
Each runs with tofu and, where installed, terraform (``[tofu]`` / ``[terraform]`` in the test id).

Layers, each run on its own so the table below shows what each one catches:
- ``policy``: our HCL policy (``deliver substrate-check``, before any binary runs);
- ``validate``: ``init -backend=false`` + ``validate`` (the provider's schema);
- ``test``: ``tofu test`` of tofu/modules/gke/tests/*.tftest.hcl (mock_provider; the env's values);
- ``plan``: a real, unmocked, create-only plan (``deliver plan --offline``: empty local state, no
  refresh, dummy token, no network) — the provider's own validation of every value;
- ``plan policy``: our policy over that plan's planned values (``planpolicy``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import IN_CI, REPO, Result
from delivery import config as envconfig
from delivery.core import yamlio
from delivery.core.console import ProgressReporter
from delivery.core.errors import DeliveryError, ToolError, UsageError, ValidationFailed
from delivery.substrate import checks, inputs, mirror, policy, runner
from delivery.substrate.hcl import load_module
from delivery.substrate.tool import identify
from test_substrate import BINARIES, require_binary

Deliver = Callable[..., Result]
ENVS = ("dev", "prod", "staging")
MODULE = Path("tofu/modules/gke")
_PIN = re.search(r'version = "(\d+\.\d+\.\d+)"', (REPO / "tofu/envs/dev/main.tf").read_text())
GOOGLE_VERSION = _PIN.group(1) if _PIN else "?"


def mirror_dir() -> Path:
    """The provider mirror holding the pinned google provider (skip locally / fail in CI without)."""
    path = Path(os.environ.get(mirror.MIRROR_ENV_VAR) or mirror.default_dir())
    try:
        found = mirror.load(path)
    except UsageError as err:
        found = None
        why = err.problems[0].what
    if found is not None:
        versions = {(p.type, p.version) for p in found.packages}
        if ("google", GOOGLE_VERSION) in versions:
            return found.path
        why = f"{path} has no google {GOOGLE_VERSION} (has {sorted(versions)})"
    msg = f"no provider mirror: {why}; run `bash .ci/install` (needs ../shared/tofu-providers)"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(params=BINARIES)
def binary(request: pytest.FixtureRequest) -> str:
    return require_binary(request.param)


@pytest.fixture
def provider_mirror() -> Path:
    return mirror_dir()


def tree(path: Path) -> dict[str, int]:
    """Every file under ``path`` with its mtime: a scratch run must not change one."""
    return {str(p.relative_to(path)): p.stat().st_mtime_ns for p in sorted(path.rglob("*"))}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} not found once in {path}"
    path.write_text(text.replace(old, new))


def expected_creates(cfg: envconfig.EnvConfig) -> list[str]:
    """Every resource a first apply of the env creates, from the module's design and the env config."""
    gke = "module.gke"
    services = {
        "artifactregistry",
        "binaryauthorization",
        "compute",
        "container",
        "iam",
        "iamcredentials",
        "secretmanager",
    }
    if cfg.gpu.image_streaming:
        services.add("containerfilesystem")
    secrets = ("litellm-master-key", "litellm-salt-key", "vllm-api-key")
    fixed = [
        "google_artifact_registry_repository.modelcars",
        "google_artifact_registry_repository_iam_member.nodes_read",
        "google_compute_firewall.deny_ingress",
        "google_compute_network.this",
        "google_compute_router.nat",
        "google_compute_router_nat.nat",
        "google_compute_subnetwork.nodes",
        "google_container_cluster.this",
        "google_container_node_pool.gpu",
        "google_container_node_pool.platform",
        "google_project_iam_member.nodes",
        "google_service_account.eso",
        "google_service_account.nodes",
        "google_service_account_iam_member.eso_workload_identity",
        *(f'google_project_service.cluster["{s}.googleapis.com"]' for s in services),
        *(f'google_secret_manager_secret.this["{s}"]' for s in secrets),
        *(f'google_secret_manager_secret_iam_member.eso_read["{s}"]' for s in secrets),
    ]
    if inputs.artifact_registry(cfg).project != cfg.cluster.project_id:
        fixed.append("google_project_service.registry[0]")
    return sorted(f"{gke}.{a}" for a in fixed)


# --------------------------------------------------------------------------- (a) + (b): validate, tofu test


def test_substrate_check_validates_and_runs_the_module_tests_for_every_env(
    deliver: Deliver, repo_copy: Path, binary: str, provider_mirror: Path
) -> None:
    before = tree(repo_copy / "tofu")
    result = deliver(
        "substrate-check",
        "--binary",
        binary,
        "--provider-mirror",
        str(provider_mirror),
        "--json",
        repo=repo_copy,
    )
    assert result.code == 0, f"{identify(binary).label}:\n{result.err}\n{result.out}"
    data = json.loads(result.out)
    assert data["ok"] is True and data["checked"] == list(ENVS)
    assert data["validated"] == {
        env: {"env": env, "validated": True, "tests": {"tofu/modules/gke": 6}} for env in ENVS
    }
    assert tree(repo_copy / "tofu") == before  # scratch copies only: no .terraform/, no lock in the tree
    text = deliver("substrate-check", "--env", "prod", "--binary", binary, repo=repo_copy)
    assert text.code == 0 and "validate" not in text.out  # without a mirror: policy and fmt only


def test_a_failing_module_test_fails_substrate_check_and_names_the_run(
    deliver: Deliver, repo_copy: Path, provider_mirror: Path
) -> None:
    binary = require_binary("tofu")
    # a value the HCL policy does not look at (Spot) but the module test asserts against config
    edit(repo_copy / MODULE / "cluster.tf", "spot            = var.gpu_spot", "spot            = true")
    result = deliver(
        "substrate-check", "--env", "prod", "--binary", binary, "--provider-mirror", str(provider_mirror),
        repo=repo_copy,
    )  # fmt: skip
    assert result.code == 1, result.err
    kind = identify(binary).kind
    assert f"`{kind} test` of tofu/modules/gke failed with prod's values" in result.err
    assert "the GPU pool must use Spot VMs exactly when gpu.spot is true" in result.err
    assert "substrate problem(s) found" in result.err


# --------------------------------------------------------------------------- (c): real create-only plans


def _plan_params() -> list[object]:
    """Every env (and dev with image streaming off) with tofu; dev with terraform, when installed."""
    params: list[object] = [pytest.param("tofu", e, id=f"tofu-{e}") for e in (*ENVS, "dev-no-streaming")]
    if "terraform" in BINARIES:
        params.append(pytest.param("terraform", "dev", id="terraform-dev"))
    return params


@pytest.mark.parametrize(("kind", "env"), _plan_params())
def test_an_offline_plan_of_each_env_is_create_only_and_passes_our_summary_and_policy(
    deliver: Deliver, repo_copy: Path, kind: str, provider_mirror: Path, env: str, tmp_path: Path
) -> None:
    binary = require_binary(kind)
    name = env.removesuffix("-no-streaming")
    if env != name:
        assert yamlio.set_path(
            repo_copy / "environments" / name / "config.yaml", ["gpu", "imageStreaming"], False
        )
    cfg = envconfig.load_env(repo_copy, name)
    before = tree(repo_copy / "tofu")
    out = tmp_path / "plan"
    args = ["--env", name, "--offline", "--provider-mirror", str(provider_mirror), "--out", str(out)]
    result = deliver("plan", *args, "--binary", binary, "--json", repo=repo_copy)
    assert result.code == 0, f"{identify(binary).label}:\n{result.err}"
    assert "OFFLINE PLAN" in result.err and "it CANNOT be applied" in result.err
    data = json.loads(result.out)
    assert data["offline"] is True and data["provider_mirror"] == str(provider_mirror)
    summary = data["summary"]
    assert summary["counts"] == {
        "create": len(expected_creates(cfg)),
        "update": 0,
        "replace": 0,
        "delete": 0,
        "forget": 0,
    }
    assert summary["creates"] == expected_creates(cfg)
    assert not [a for a in summary["creates"] if "secret_version" in a]
    assert tree(repo_copy / "tofu") == before
    assert sorted(p.name for p in out.iterdir()) == ["inputs.tfvars.json", "plan.json", "plan.tfplan"]
    for extra in ([], ["--provider-mirror", str(provider_mirror)]):  # never applicable, mirror or not
        refused = deliver("apply", "--env", name, "--plan", str(out / "plan.tfplan"), *extra, repo=repo_copy)
        assert refused.code == 2 and "this is an offline plan" in refused.err, refused.err

    # the planned values themselves (show -json of the saved plan, read in a fresh scratch init)
    prepared = runner.prepare(repo_copy, name)
    mode = runner.Mode(mirror.load(provider_mirror), offline=True)
    tool = mode.tool(identify(binary))
    with ProgressReporter(quiet=True) as quiet, runner.workspace(prepared, mode, keep_lock=False) as work:
        runner.init(tool, work, quiet, mode=mode)
        plan_json = runner.show_json(tool, work, out / "plan.tfplan")
    after = {rc["address"]: rc["change"]["after"] for rc in plan_json["resource_changes"]}
    gpu = after["module.gke.google_container_node_pool.gpu"]
    node = gpu["node_config"][0]
    assert gpu["autoscaling"][0]["min_node_count"] == 0 and gpu["initial_node_count"] == 0
    assert gpu["autoscaling"][0]["max_node_count"] == cfg.gpu.max_nodes
    assert node["spot"] is cfg.gpu.spot and node["machine_type"] == cfg.gpu.machine_type
    assert node["gcfs_config"] == [{"enabled": cfg.gpu.image_streaming}]
    assert node["taint"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]
    assert node["guest_accelerator"][0]["gpu_driver_installation_config"] == [
        {"gpu_driver_version": "DEFAULT"}
    ]
    cluster = after["module.gke.google_container_cluster.this"]
    networks = cluster["master_authorized_networks_config"][0]["cidr_blocks"]  # a set: any order
    assert sorted(networks, key=json.dumps) == sorted(
        (
            {"cidr_block": n.cidr_block, "display_name": n.display_name}
            for n in cfg.cluster.authorized_networks
        ),
        key=json.dumps,
    )


# --------------------------------------------------------------------------- planted values: who catches what

TAINT_PROVIDER = (
    'expected node_config.0.taint.0.effect to be one of ["NO_SCHEDULE" "PREFER_NO_SCHEDULE" "NO_EXECUTE"], '
    "got NoSchedule"
)
DRIVER_PROVIDER = "gpu_driver_installation_config.0.gpu_driver_version to be one of"
TAINT_ASSERT = "the GPU pool must carry exactly the taint nvidia.com/gpu=present with effect NO_SCHEDULE"
DRIVER_ASSERT = "the driver installed by GKE (DEFAULT or LATEST)"
# plant: (file, old, new, {layer: what it reports, or None: it lets the plant through}); "test" per
# binary where they differ (tofu's mock validates planned values with the provider, terraform's not).
LEAK = (
    '\nresource "google_secret_manager_secret_version" "leak" {\n'
    '  secret      = google_secret_manager_secret.this["vllm-api-key"].id\n'
    '  secret_data = "sk-in-state"\n}\n'
)
PLANTS: dict[str, tuple[str, str, str, dict[str, object]]] = {
    "taint-NoSchedule": (
        "cluster.tf",
        'effect = "NO_SCHEDULE"',
        'effect = "NoSchedule"',
        {
            "policy": "lacks the nvidia.com/gpu NO_SCHEDULE taint",
            "validate": None,
            "test": {"tofu": TAINT_PROVIDER, "terraform": TAINT_ASSERT},
            "plan": TAINT_PROVIDER,
            "plan policy": "(not reached: the plan failed)",
        },
    ),
    "gpu-min-1": (
        "cluster.tf",
        "min_node_count = 0",
        "min_node_count = 1",
        {
            "policy": "GPU node pool minimum is 1, not 0",
            "validate": None,
            "test": "the GPU pool must scale to zero (autoscaling min_node_count = 0)",
            "plan": None,
            "plan policy": "planned: GPU node pool minimum is 1, not 0",
        },
    ),
    "driver-R535": (
        "cluster.tf",
        'gpu_driver_version = "DEFAULT"',
        'gpu_driver_version = "R535"',
        {
            "policy": "gpu_driver_version is R535, not DEFAULT or LATEST",
            "validate": None,
            "test": {"tofu": DRIVER_PROVIDER, "terraform": DRIVER_ASSERT},
            "plan": DRIVER_PROVIDER,
            "plan policy": "(not reached: the plan failed)",
        },
    ),
    "driver-disabled": (  # a value the provider accepts: only our own checks stop it
        "cluster.tf",
        'gpu_driver_version = "DEFAULT"',
        'gpu_driver_version = "INSTALLATION_DISABLED"',
        {
            "policy": "gpu_driver_version is INSTALLATION_DISABLED, not DEFAULT or LATEST",
            "validate": None,
            "test": DRIVER_ASSERT,
            "plan": None,
            "plan policy": "planned: GPU driver installation is INSTALLATION_DISABLED, not DEFAULT or LATEST",
        },
    ),
    # the provider takes any prefix: the module test and our plan policy stop it
    "cleanup-keeps-no-release": (
        "registry.tf",
        "tag_prefixes = [var.registry_cleanup.protected_tag_prefix]",
        'tag_prefixes = ["keep-"]',
        {
            "policy": None,
            "validate": None,
            "test": "the repository must KEEP every version tagged with the protected prefix",
            "plan": None,
            "plan policy": "registry cleanup deletes versions but does not KEEP the release-* tags",
        },
    ),
    "cleanup-deletes-any-tag": (
        "registry.tf",
        'tag_state  = "UNTAGGED"',
        'tag_state  = "ANY"',
        {
            "policy": None,
            "validate": None,
            "test": "a DELETE policy may match only untagged versions or tags outside the protected prefix",
            "plan": None,
            "plan policy": "policy 'delete-untagged' deletes tagged versions of any tag (ANY)",
        },
    ),
    "secret-version": (  # a secret value in state: the provider and the module test have no objection
        "secrets.tf",
        "  member    = google_service_account.eso.member\n}\n",
        "  member    = google_service_account.eso.member\n}\n" + LEAK,
        {
            "policy": "secret values must not be managed by tofu",
            "validate": None,
            "test": None,
            "plan": None,
            "plan policy": "secret_version.leak: planned: the plan writes a secret value",
        },
    ),
}


def _layers(repo: Path, binary: str, provider_mirror: Path, out: Path) -> dict[str, str | None]:
    """Run each layer on its own over the (planted) dev root; what each reported, None if it passed."""
    caught: dict[str, str | None] = {}
    root = inputs.root_dir(repo, "dev")
    _, problems = policy.check_root(root, repo)
    caught["policy"] = "\n".join(p.render() for p in problems) or None
    module = load_module(root)  # past the policy, as if it had missed the plant
    cfg = envconfig.load_env(repo, "dev")
    prepared = runner.Prepared(
        repo, cfg, root, module, inputs.root_variables(cfg, set(module.variables)), "planted"
    )
    mode = runner.Mode(mirror.load(provider_mirror), offline=True)
    tool = mode.tool(identify(binary))
    with ProgressReporter(quiet=True) as quiet, runner.workspace(prepared, mode, keep_lock=False) as work:
        runner.init(tool, work, quiet, mode=mode)
        steps: list[tuple[str, Callable[[], object]]] = [
            ("validate", lambda: runner.validate(tool, work)),
            ("test", lambda: checks.module_tests(tool, work, quiet)),
        ]
        for layer, step in steps:
            try:
                step()
                caught[layer] = None
            except DeliveryError as err:
                caught[layer] = err.render()
        try:
            runner.plan_in(tool, work, mode, out, quiet)
            caught["plan"] = caught["plan policy"] = None
        except ToolError as err:  # the provider refused a value: the plan failed before our policy
            caught["plan"], caught["plan policy"] = err.render(), "(not reached: the plan failed)"
        except ValidationFailed as err:  # the plan was made; our policy over it refused it
            caught["plan"], caught["plan policy"] = None, err.render()
    return caught


def _plant_params() -> list[object]:
    """Every plant with tofu; with terraform (when installed) the plants where its answer differs."""
    params: list[object] = [pytest.param("tofu", p, id=f"tofu-{p}") for p in PLANTS]
    if "terraform" in BINARIES:
        differs = [p for p, (*_, want) in PLANTS.items() if isinstance(want["test"], dict)]
        params += [pytest.param("terraform", p, id=f"terraform-{p}") for p in differs]
    return params


@pytest.mark.parametrize(("kind", "plant"), _plant_params())
def test_each_layer_catches_what_it_should(
    repo_copy: Path, kind: str, provider_mirror: Path, plant: str, tmp_path: Path
) -> None:
    binary = require_binary(kind)
    file, old, new, expected = PLANTS[plant]
    edit(repo_copy / MODULE / file, old, new)
    assert identify(binary).kind == kind
    caught = _layers(repo_copy, binary, provider_mirror, tmp_path / "plan")
    for layer, want in expected.items():
        wanted = want.get(kind) if isinstance(want, dict) else want
        got = caught[layer]
        if wanted is None:
            assert got is None, f"{kind}: {layer} was expected to let {plant} through, but reported:\n{got}"
        else:  # the binaries wrap long messages: compare with whitespace collapsed
            assert got is not None and " ".join(str(wanted).split()) in " ".join(got.split()), (
                f"{kind}: {layer} missed {plant}:\n{got}"
            )
    assert not (tmp_path / "plan").exists()  # a refused plan saves nothing


# --------------------------------------------------------------------------- the lock truth


def test_a_lock_written_with_the_mirror_never_stays_in_the_tree(
    deliver: Deliver,
    repo_copy: Path,
    binary: str,
    provider_mirror: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Someone points their own CLI config at the mirror and plans for real: init writes a lock
    with the mirror build's hash into the root; deliver removes it and fails."""
    root = inputs.root_dir(repo_copy, "dev")
    shutil.rmtree(root)
    root.mkdir()
    (root / "main.tf").write_text(
        'terraform {\n  backend "local" {}\n  required_providers {\n    google = {\n'
        f'      source  = "hashicorp/google"\n      version = "{GOOGLE_VERSION}"\n    }}\n  }}\n}}\n'
    )
    own = tmp_path / "own.tfrc"
    own.write_text(mirror.cli_config_text(mirror.load(provider_mirror)))
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(own))
    monkeypatch.setenv("TF_PLUGIN_CACHE_DIR", str(mirror.cache_home() / "tofu-plugins"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # default_dir() is now elsewhere...
    monkeypatch.delenv(mirror.MIRROR_ENV_VAR, raising=False)
    (tmp_path / "cache" / "llm-platform").mkdir(parents=True)
    (tmp_path / "cache" / "llm-platform" / "tofu-mirror").symlink_to(provider_mirror)  # ...and the same
    result = deliver("plan", "--env", "dev", "--binary", binary, repo=repo_copy)
    assert result.code == 1, result.err
    assert "written with the provider mirror's own build of" in result.err
    assert "init wrote it into the tree, so it was removed again" in result.err
    assert "never commit such a lock" in result.err
    assert not (root / ".terraform.lock.hcl").exists() and not (repo_copy / "out").exists()
