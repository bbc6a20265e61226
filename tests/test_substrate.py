"""`deliver plan` / `deliver apply` with the real binaries: tofu always, terraform too where installed.

The fixture root (tests/fixtures/tofu/basic) has only the built-in terraform_data resource and a
local backend. It is copied to tofu/envs/<env> of a repo copy, so it runs through exactly the code
path of a real environment: inputs from environments/<env>/config.yaml, policy, fmt, init, plan,
show -json, binding, gate, apply. Config edits drive every kind of change:
cluster.name -> update, gpu.maxNodes -> update, gpu.type -> replace, features.demos=false -> delete.

Every test taking ``binary`` runs once per binary (ids ``[tofu]``, ``[terraform]``): tofu is the
mission's binary and is required (missing, it skips locally and fails with CI=true); terraform runs
too where it is installed. ``require_binary`` and ``BINARIES`` are shared with tests/test_tofu_*.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import IN_CI, REPO, Result
from delivery.core import yamlio
from delivery.core.errors import ToolError
from delivery.substrate import destroy, inputs, mirror, runner
from delivery.substrate.tool import Tool, identify, installed
from delivery.substrate.tool import find_tool as find_substrate_tool

FIXTURES = REPO / "tests" / "fixtures" / "tofu"
Deliver = Callable[..., Result]
INSTALLED = installed(REPO)  # once per session: {"tofu": Tool, "terraform": Tool} as found
BINARIES = ["tofu", *(["terraform"] if "terraform" in INSTALLED else [])]
TOFU_VERSION = re.search(r"^TOFU_VERSION=v(\S+)$", (REPO / ".ci/install").read_text(), re.M)


def require_binary(kind: str) -> str:
    """The path of the real ``kind`` binary; skips locally, fails in CI, when it is missing."""
    tool = INSTALLED.get(kind)
    if tool is not None:
        return tool.path
    msg = f"{kind} not found (on PATH, .cache/bin, ~/.cache/llm-platform/bin): `bash .ci/install` builds tofu"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(params=BINARIES)
def binary(request: pytest.FixtureRequest) -> str:
    return require_binary(request.param)


@pytest.fixture(autouse=True)
def _no_mirror_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """These fixture roots take no providers; a mirror exported by the caller must not change them."""
    monkeypatch.delenv(mirror.MIRROR_ENV_VAR, raising=False)


@pytest.fixture
def repo(repo_copy: Path) -> Path:
    """A repo copy whose dev and staging roots are the terraform_data fixture."""
    for env in ("dev", "staging"):
        use_root(repo_copy, env, "basic")
    return repo_copy


def use_root(repo: Path, env: str, fixture: str) -> Path:
    root = inputs.root_dir(repo, env)
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(FIXTURES / fixture, root)
    return root


def set_config(repo: Path, env: str, keypath: list[str], value: object) -> None:
    assert yamlio.set_path(repo / "environments" / env / "config.yaml", keypath, value)


def plan(deliver: Deliver, repo: Path, binary: str, env: str = "dev", *extra: str) -> Result:
    return deliver("plan", "--env", env, "--binary", binary, *extra, repo=repo)


def apply(deliver: Deliver, repo: Path, binary: str, env: str = "dev", *extra: str) -> Result:
    plan_file = repo / "out" / "tofu" / env / "plan.tfplan"
    return deliver("apply", "--env", env, "--binary", binary, "--plan", str(plan_file), *extra, repo=repo)


def summary(repo: Path, env: str = "dev") -> dict[str, object]:
    data = json.loads((repo / "out" / "tofu" / env / "plan.json").read_text())
    result: dict[str, object] = data["summary"]
    return result


def state_addresses(repo: Path, env: str = "dev") -> list[str]:
    state = json.loads((inputs.root_dir(repo, env) / "terraform.tfstate").read_text())
    return sorted(
        f"{r['type']}.{r['name']}" + (f"[{i['index_key']}]" if "index_key" in i else "")
        for r in state["resources"]
        for i in r["instances"]
    )


def plan_and_apply(deliver: Deliver, repo: Path, binary: str, *approve: str) -> None:
    assert plan(deliver, repo, binary).code == 0
    args = [a for address in approve for a in ("--approve-delete", address)]
    result = apply(deliver, repo, binary, "dev", *args)
    assert result.code == 0, result.err


# --------------------------------------------------------------------------- plan


def test_first_plan_creates_everything_and_saves_plan_summary_and_inputs(
    deliver: Deliver, repo: Path, binary: str
) -> None:
    result = plan(deliver, repo, binary)
    assert result.code == 0, result.err
    assert "create    terraform_data.cluster" in result.out
    assert "Plan: 3 to create, 0 to update, 0 to replace, 0 to delete" in result.out
    assert "deliver apply --env dev --plan" in result.out
    out = repo / "out" / "tofu" / "dev"
    assert sorted(p.name for p in out.iterdir()) == ["inputs.tfvars.json", "plan.json", "plan.tfplan"]
    assert stat.S_IMODE((out / "plan.tfplan").stat().st_mode) == 0o600
    s = summary(repo)
    assert s["creates"] == ["terraform_data.cluster", "terraform_data.demos[0]", "terraform_data.gpu_pool"]
    assert s["counts"] == {"create": 3, "update": 0, "replace": 0, "delete": 0, "forget": 0}
    binding = json.loads((out / "plan.json").read_text())
    assert binding["env"] == "dev" and binding["root"] == "tofu/envs/dev"
    assert binding["tool"] == identify(binary).kind
    # inputs are the root's declared variables, valued from environments/dev/config.yaml
    values = json.loads((out / "inputs.tfvars.json").read_text())
    assert values == {
        "environment": "dev",
        "cluster_name": "llm-dev",
        "gpu_type": "nvidia-l4",
        "gpu_max_nodes": 1,
        "features": {"llm_d": False, "kserve": True, "autoscaling": True, "demos": True},
    }
    assert "fmt: ok" in result.err and "init: ok" in result.err


def test_no_change_plan_after_apply(deliver: Deliver, repo: Path, binary: str) -> None:
    plan_and_apply(deliver, repo, binary)
    assert state_addresses(repo) == [
        "terraform_data.cluster",
        "terraform_data.demos[0]",
        "terraform_data.gpu_pool",
    ]
    result = plan(deliver, repo, binary)
    assert result.code == 0, result.err
    assert "No resource changes." in result.out
    s = summary(repo)
    assert s["changes"] is False and s["resources"] == []


def test_updates_are_detected_and_applied_without_approval(deliver: Deliver, repo: Path, binary: str) -> None:
    plan_and_apply(deliver, repo, binary)
    set_config(repo, "dev", ["gpu", "maxNodes"], 2)
    set_config(repo, "dev", ["cluster", "name"], "llm-dev-2")
    result = plan(deliver, repo, binary)
    assert result.code == 0, result.err
    s = summary(repo)
    assert s["updates"] == ["terraform_data.cluster", "terraform_data.gpu_pool"]
    assert s["creates"] == s["deletes"] == s["replaces"] == []
    applied = apply(deliver, repo, binary, "dev", "--json")
    assert applied.code == 0, applied.err
    data = json.loads(applied.out)
    assert data["ok"] is True and data["outputs"] == {"cluster_name": "llm-dev-2"}
    assert data["applied"]["updates"] == ["terraform_data.cluster", "terraform_data.gpu_pool"]


def test_replace_and_delete_are_detected_and_each_needs_approval(
    deliver: Deliver, repo: Path, binary: str
) -> None:
    plan_and_apply(deliver, repo, binary)
    set_config(repo, "dev", ["gpu", "type"], "nvidia-tesla-t4")  # triggers_replace
    set_config(repo, "dev", ["features", "demos"], False)  # count 1 -> 0
    result = plan(deliver, repo, binary)
    assert result.code == 0, result.err
    s = summary(repo)
    assert s["replaces"] == ["terraform_data.gpu_pool"] and s["deletes"] == ["terraform_data.demos[0]"]
    assert "--approve-delete 'terraform_data.gpu_pool'" in result.out

    refused = apply(deliver, repo, binary)
    assert refused.code == 1
    assert "plan would replace terraform_data.gpu_pool and that was not approved" in refused.err
    assert "plan would delete terraform_data.demos[0] and that was not approved" in refused.err
    assert "--approve-delete" in refused.err
    half = apply(deliver, repo, binary, "dev", "--approve-delete", "terraform_data.gpu_pool")
    assert half.code == 1 and "terraform_data.demos[0]" in half.err and "gpu_pool" not in half.err
    assert "terraform_data.demos[0]" in state_addresses(repo)  # nothing was applied

    ok = apply(
        deliver,
        repo,
        binary,
        "dev",
        "--approve-delete",
        "terraform_data.gpu_pool",
        "--approve-delete",
        "terraform_data.demos[0]",
    )
    assert ok.code == 0, ok.err
    assert state_addresses(repo) == ["terraform_data.cluster", "terraform_data.gpu_pool"]
    assert "No resource changes." in plan(deliver, repo, binary).out


def test_approving_an_address_the_plan_does_not_destroy_is_refused(
    deliver: Deliver, repo: Path, binary: str
) -> None:
    assert plan(deliver, repo, binary).code == 0
    result = apply(deliver, repo, binary, "dev", "--approve-delete", "terraform_data.cluster")
    assert result.code == 2  # a wrong argument, not a gate that holds
    assert "approved address 'terraform_data.cluster' is not deleted or replaced" in result.err
    assert not (inputs.root_dir(repo, "dev") / "terraform.tfstate").exists()


# --------------------------------------------------------------------------- stale plans


def test_plan_made_stale_by_another_apply_gets_a_replan_error(
    deliver: Deliver, repo: Path, binary: str
) -> None:
    first, second = repo / "out" / "first", repo / "out" / "second"
    assert plan(deliver, repo, binary, "dev", "--out", str(first)).code == 0
    assert plan(deliver, repo, binary, "dev", "--out", str(second)).code == 0
    ok = deliver(
        "apply", "--env", "dev", "--binary", binary, "--plan", str(second / "plan.tfplan"), repo=repo
    )
    assert ok.code == 0, ok.err
    stale = deliver(
        "apply", "--env", "dev", "--binary", binary, "--plan", str(first / "plan.tfplan"), repo=repo
    )
    assert stale.code == 1
    assert "plan is stale: the state changed since it was made" in stale.err
    assert "re-plan: deliver plan --env dev" in stale.err
    assert stale.err.count("error:") == 1


def test_plan_older_than_the_config_is_stale(deliver: Deliver, repo: Path, binary: str) -> None:
    assert plan(deliver, repo, binary).code == 0
    set_config(repo, "dev", ["gpu", "maxNodes"], 3)
    result = apply(deliver, repo, binary)
    assert result.code == 1
    assert "plan is stale" in result.err and "environments/dev/config.yaml changed" in result.err
    assert "re-plan" in result.err
    assert not (inputs.root_dir(repo, "dev") / "terraform.tfstate").exists()


# --------------------------------------------------------------------------- bad inputs, one clear error each


def test_unknown_env_is_one_clear_error(deliver: Deliver, repo: Path, binary: str) -> None:
    for command in (["plan"], ["apply", "--plan", str(repo / "x.tfplan")]):
        result = deliver(*command, "--env", "nope", "--binary", binary, repo=repo)
        assert result.code == 2
        assert "unknown environment 'nope' (known: dev, prod, staging)" in result.err
        assert result.err.count("error:") == 1
    assert not (repo / "out").exists()


def test_env_without_root_is_refused(deliver: Deliver, repo: Path, binary: str) -> None:
    shutil.rmtree(inputs.root_dir(repo, "prod"))
    result = plan(deliver, repo, binary, "prod")
    assert result.code == 2 and "environment 'prod' has no OpenTofu root" in result.err


def test_missing_plan_is_refused(deliver: Deliver, repo: Path, binary: str) -> None:
    result = apply(deliver, repo, binary)
    assert result.code == 2
    assert "plan file not found" in result.err and "run: deliver plan --env dev" in result.err


def test_apply_needs_the_plan_option(deliver: Deliver, repo: Path, binary: str) -> None:
    result = deliver("apply", "--env", "dev", "--binary", binary, repo=repo)
    assert result.code == 2 and "--plan" in result.err


def test_plan_not_saved_by_deliver_is_refused(deliver: Deliver, repo: Path, binary: str) -> None:
    root = inputs.root_dir(repo, "dev")
    env = identify(binary).environment()
    subprocess.run(
        [binary, "init", "-input=false"], cwd=root, env=env, check=True, capture_output=True, timeout=300
    )
    raw = repo / "raw" / "plan.tfplan"
    raw.parent.mkdir()
    features = '{"llm_d": false, "kserve": true, "autoscaling": true, "demos": true}'
    variables = ["cluster_name=x", "gpu_type=y", "gpu_max_nodes=1", "environment=dev", f"features={features}"]
    subprocess.run(
        [binary, "plan", "-input=false", f"-out={raw}", *(f"-var={v}" for v in variables)],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    result = deliver("apply", "--env", "dev", "--binary", binary, "--plan", str(raw), repo=repo)
    assert result.code == 2
    assert "not a plan saved by `deliver plan`: plan.json is missing beside it" in result.err
    assert not (root / "terraform.tfstate").exists()


def test_plan_from_another_env_is_refused(deliver: Deliver, repo: Path, binary: str) -> None:
    assert plan(deliver, repo, binary, "staging").code == 0
    staging_plan = repo / "out" / "tofu" / "staging" / "plan.tfplan"
    result = deliver("apply", "--env", "dev", "--binary", binary, "--plan", str(staging_plan), repo=repo)
    assert result.code == 2
    assert "plan was made for environment 'staging', not 'dev'" in result.err
    assert "apply it with --env staging" in result.err
    assert not (inputs.root_dir(repo, "dev") / "terraform.tfstate").exists()


def test_tampered_plan_is_refused(deliver: Deliver, repo: Path, binary: str) -> None:
    assert plan(deliver, repo, binary).code == 0
    plan_file = repo / "out" / "tofu" / "dev" / "plan.tfplan"
    plan_file.chmod(0o600)
    with plan_file.open("ab") as fh:
        fh.write(b"\0")
    result = apply(deliver, repo, binary)
    assert result.code == 2  # the plan file given cannot work as it is
    assert "plan file was modified after `deliver plan` saved it" in result.err
    assert not (inputs.root_dir(repo, "dev") / "terraform.tfstate").exists()


def test_plan_made_by_the_other_tool_is_refused(deliver: Deliver, repo: Path, binary: str) -> None:
    assert plan(deliver, repo, binary).code == 0
    sidecar = repo / "out" / "tofu" / "dev" / "plan.json"
    data = json.loads(sidecar.read_text())
    other = "terraform" if data["tool"] == "tofu" else "tofu"
    data["tool"] = other
    sidecar.write_text(json.dumps(data))
    result = apply(deliver, repo, binary)
    assert result.code == 2
    assert f"plan was made with {other}" in result.err and f"--binary {other}" in result.err


def test_broken_root_reports_the_tools_error_and_writes_nothing(
    deliver: Deliver, repo: Path, binary: str
) -> None:
    use_root(repo, "dev", "broken")
    result = plan(deliver, repo, binary)
    assert result.code == 1
    assert "`validate` failed (exit 1)" in result.err
    assert "Reference to undeclared resource" in result.err
    assert result.err.count("error:") == 1
    assert not (repo / "out" / "tofu" / "dev").exists()


def test_a_failed_replan_keeps_the_previous_plan(deliver: Deliver, repo: Path, binary: str) -> None:
    assert plan(deliver, repo, binary).code == 0
    before = (repo / "out" / "tofu" / "dev" / "plan.json").read_text()
    root = inputs.root_dir(repo, "dev")
    (root / "broken.tf").write_text('resource "terraform_data" "x" {\n  input = terraform_data.nope.id\n}\n')
    assert plan(deliver, repo, binary).code == 1
    assert (repo / "out" / "tofu" / "dev" / "plan.json").read_text() == before


def test_unformatted_root_fails_the_fmt_check(deliver: Deliver, repo: Path, binary: str) -> None:
    main = inputs.root_dir(repo, "dev") / "main.tf"
    main.write_text(main.read_text().replace("  input = var.cluster_name", "input    =   var.cluster_name"))
    result = plan(deliver, repo, binary)
    assert result.code == 1
    assert "tofu/envs/dev/main.tf: not formatted" in result.err and "fmt" in result.err
    assert not (repo / "out").exists()


def test_init_is_readonly_once_a_lock_file_exists(deliver: Deliver, repo: Path, binary: str) -> None:
    lock = inputs.root_dir(repo, "dev") / ".terraform.lock.hcl"
    text = (
        'provider "registry.terraform.io/hashicorp/null" {\n  version = "3.2.3"\n'
        '  hashes = ["h1:I0Um8UkrMUb81Fxq/dxbr3HLP2cecTH2WMJiwKSrwQY="]\n}\n'
    )
    lock.write_text(text)  # a lock that no longer matches the root: a writable init would rewrite it
    result = plan(deliver, repo, binary)
    assert result.code == 1
    assert "`init` failed" in result.err and "Provider dependency changes detected" in result.err
    assert lock.read_text() == text


def test_out_dir_holding_other_files_is_refused(deliver: Deliver, repo: Path, binary: str) -> None:
    out = repo / "notes"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = plan(deliver, repo, binary, "dev", "--out", str(out))
    assert result.code == 2 and "holds other files" in result.err
    assert (out / "keep.txt").read_text() == "mine"


def test_plan_json_output(deliver: Deliver, repo: Path, binary: str) -> None:
    result = plan(deliver, repo, binary, "dev", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["ok"] is True and data["env"] == "dev" and data["plan"].endswith("plan.tfplan")
    assert data["summary"]["counts"]["create"] == 3
    bad = deliver("apply", "--env", "dev", "--binary", binary, "--plan", "/nonexistent", "--json", repo=repo)
    assert bad.code == 2 and json.loads(bad.out)["ok"] is False


# --------------------------------------------------------------------------- the binary


def test_tofu_is_the_pinned_opentofu_and_each_binary_is_what_its_id_says(binary: str) -> None:
    tofu = identify(require_binary("tofu"))
    assert tofu.kind == "tofu", f"{tofu.path} is {tofu.label}, not OpenTofu"
    assert TOFU_VERSION and tofu.version == TOFU_VERSION.group(1), f"{tofu.label}: .ci/install pins another"
    tool = identify(binary)
    assert tool.kind in BINARIES and Path(binary) == Path(INSTALLED[tool.kind].path)


def test_each_binary_plans_and_applies(deliver: Deliver, repo: Path, binary: str) -> None:
    tool = identify(binary)
    plan_and_apply(deliver, repo, binary)
    data = json.loads((repo / "out" / "tofu" / "dev" / "plan.json").read_text())
    assert data["tool"] == tool.kind, f"{tool.label} made a plan recorded as {data['tool']}"
    assert state_addresses(repo) == [
        "terraform_data.cluster",
        "terraform_data.demos[0]",
        "terraform_data.gpu_pool",
    ]


def test_tool_detection_and_automation_environment(
    binary: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TF_CLI_ARGS_plan", "-refresh=false")
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(tmp_path / "missing.tfrc"))
    monkeypatch.delenv("TF_PLUGIN_CACHE_DIR", raising=False)
    tool = find_substrate_tool(binary)
    assert tool.kind in {"tofu", "terraform"} and tool.version[0].isdigit()
    env = tool.environment()
    assert env["TF_IN_AUTOMATION"] == "1" and env["TF_INPUT"] == "0"
    assert env["TF_PLUGIN_CACHE_DIR"] == str(tmp_path / "cache" / "llm-platform" / "tofu-plugins")
    assert Path(env["TF_PLUGIN_CACHE_DIR"]).is_dir()
    assert "TF_CLI_ARGS_plan" not in env and "TF_CLI_CONFIG_FILE" not in env
    monkeypatch.setenv("DELIVER_TOFU", binary)
    assert find_substrate_tool().path == binary
    assert isinstance(tool, Tool)


def test_unknown_binary_is_one_clear_error(deliver: Deliver, repo: Path) -> None:
    result = deliver("plan", "--env", "dev", "--binary", "no-such-tofu", repo=repo)
    assert result.code == 2 and "binary 'no-such-tofu' not found" in result.err
    not_tofu = deliver("plan", "--env", "dev", "--binary", shutil.which("true") or "/bin/true", repo=repo)
    assert not_tofu.code == 1 and "neither OpenTofu nor Terraform" in not_tofu.err


def test_gcs_backend_bucket_and_prefix_come_from_config(repo: Path) -> None:
    cfg = runner.envconfig.load_env(repo, "staging")
    assert inputs.backend_config(cfg, "gcs") == [
        f"-backend-config=bucket={cfg.cluster.project_id}-tofu-state",
        "-backend-config=prefix=llm-platform/staging",
    ]
    assert inputs.backend_config(cfg, "local") == []


def test_auto_detection_prefers_tofu_and_falls_back_to_terraform(
    binary: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for var in ("XDG_CACHE_HOME", "GOPATH"):
        monkeypatch.setenv(var, str(tmp_path / "empty"))
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("DELIVER_TOFU", raising=False)
    real = identify(binary)
    (bin_dir / "terraform").symlink_to(binary)
    assert find_substrate_tool(repo=tmp_path).path == str(bin_dir / "terraform")
    (bin_dir / "tofu").symlink_to(binary)
    found = find_substrate_tool(repo=tmp_path)
    assert found.path == str(bin_dir / "tofu")
    assert found.kind == real.kind  # told apart by `version`, not by the file name
    (bin_dir / "tofu").unlink()
    (bin_dir / "terraform").unlink()
    with pytest.raises(ToolError, match="neither tofu nor terraform was found"):
        find_substrate_tool(repo=tmp_path)


def test_the_plan_carries_the_lock_file_and_apply_uses_it(deliver: Deliver, repo: Path, binary: str) -> None:
    lock = inputs.root_dir(repo, "dev") / ".terraform.lock.hcl"
    text = "# This file is maintained automatically by init.\n# Manual edits may be lost.\n"
    lock.write_text(text)  # no providers to lock: the built-in one needs none
    assert plan(deliver, repo, binary).code == 0
    assert (repo / "out" / "tofu" / "dev" / ".terraform.lock.hcl").read_text() == text
    lock.unlink()  # e.g. the apply runs in a fresh container, or the lock was never committed
    result = apply(deliver, repo, binary)
    assert result.code == 0, result.err
    assert lock.read_text() == text and "using the plan's .terraform.lock.hcl" in result.err
    assert plan(deliver, repo, binary).code == 0  # re-planning into the same directory is fine


# --------------------------------------------------------------------------- offline plans, time limits


def test_an_offline_plan_runs_in_a_scratch_copy_and_can_never_be_applied(
    deliver: Deliver, repo: Path, binary: str
) -> None:
    result = plan(deliver, repo, binary, "dev", "--offline")
    assert result.code == 0, result.err
    assert "OFFLINE PLAN" in result.err and "it CANNOT be applied" in result.out
    assert "deliver apply" not in result.out.replace("deliver apply refuses it", "")  # no apply hint
    out = repo / "out" / "tofu" / "dev.offline"  # beside the real plan directory, never replacing it
    binding = json.loads((out / "plan.json").read_text())
    assert binding["offline"] is True and binding["provider_mirror"] is None
    assert binding["summary"]["counts"]["create"] == 3
    root = inputs.root_dir(repo, "dev")
    assert sorted(p.name for p in root.iterdir()) == ["main.tf"]  # no .terraform, state or override here
    refused = deliver(
        "apply", "--env", "dev", "--binary", binary, "--plan", str(out / "plan.tfplan"), repo=repo
    )
    assert refused.code == 2
    assert "this is an offline plan" in refused.err and "can never be applied" in refused.err
    assert refused.err.count("error:") == 1 and "fix: plan against the real state" in refused.err
    assert not (root / "terraform.tfstate").exists()


def test_a_mirror_run_of_a_root_with_local_state_is_refused(
    deliver: Deliver, repo: Path, binary: str, tmp_path: Path
) -> None:
    fake = tmp_path / "mirror" / "registry.opentofu.org/hashicorp/null/3.2.3/linux_amd64"
    fake.mkdir(parents=True)
    (fake / "terraform-provider-null_v3.2.3").write_bytes(b"not run")
    result = plan(deliver, repo, binary, "dev", "--provider-mirror", str(tmp_path / "mirror"))
    assert result.code == 2
    assert "keeps its state in a local file" in result.err and "--offline" in result.err
    assert not (repo / "out").exists()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(lambda d: d / "missing", "is not a directory", id="missing"),
        pytest.param(lambda d: d, "holds no provider package", id="empty"),
    ],
)
@pytest.mark.parametrize("how", ["option", "env"])
def test_a_bad_provider_mirror_is_one_clear_error(
    deliver: Deliver,
    repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make: Callable[[Path], Path],
    expected: str,
    how: str,
) -> None:
    bad = make(tmp_path)
    args = ["--provider-mirror", str(bad)] if how == "option" else []
    if how == "env":
        monkeypatch.setenv(mirror.MIRROR_ENV_VAR, str(bad))
    for command in (["plan", "--env", "dev"], ["substrate-check"], ["apply", "--env", "dev", "--plan", "x"]):
        result = deliver(*command, *args, repo=repo)
        assert result.code == 2, (command, result.err)
        assert expected in result.err and "$DELIVER_PROVIDER_MIRROR" in result.err
        assert result.err.count("error:") == 1 and "HOST/NAMESPACE/TYPE/VERSION/OS_ARCH" in result.err


def test_a_run_that_outlives_its_time_limit_is_stopped(binary: str, tmp_path: Path) -> None:
    """A real plan waiting for a state lock that never frees: interrupted at the limit, not left running."""
    tool = identify(binary)
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.tf").write_text('terraform {\n  backend "local" {}\n}\nresource "terraform_data" "x" {}\n')
    assert tool.run(["init", "-input=false"], root).code == 0
    state = os.open(root / "terraform.tfstate", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.lockf(state, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the local backend's lock, held by "someone"
        info = {"ID": "held-by-test", "Operation": "OperationTypeApply", "Who": "test", "Path": "x"}
        (root / ".terraform.tfstate.lock.info").write_text(json.dumps(info))
        started = time.monotonic()
        with pytest.raises(ToolError, match=r"did not finish within 3s \(stopped\)") as err:
            tool.run(["plan", "-input=false", "-lock-timeout=90s"], root, timeout=3)
        assert time.monotonic() - started < 30  # SIGINT stopped it; no wait for the kill
        assert f"`{tool.kind} plan`" in str(err.value)
    finally:
        os.close(state)


def test_ctrl_c_reaches_the_binary_and_it_stops_before_deliver_does(binary: str, tmp_path: Path) -> None:
    """tofu runs in its own session: a Ctrl-C of deliver is passed on, not left running behind us."""
    tool = identify(binary)
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.tf").write_text('terraform {\n  backend "local" {}\n}\nresource "terraform_data" "x" {}\n')
    assert tool.run(["init", "-input=false"], root).code == 0
    state = os.open(root / "terraform.tfstate", os.O_RDWR | os.O_CREAT)
    started: list[subprocess.Popen[str]] = []
    real_popen = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[str]:
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        fcntl.lockf(state, fcntl.LOCK_EX | fcntl.LOCK_NB)
        info = {"ID": "held-by-test", "Operation": "OperationTypeApply", "Who": "test", "Path": "x"}
        (root / ".terraform.tfstate.lock.info").write_text(json.dumps(info))
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(subprocess, "Popen", popen)
            signal.alarm(3)  # "Ctrl-C" while the plan waits for the lock
            with pytest.raises(KeyboardInterrupt):
                tool.run(["plan", "-input=false", "-lock-timeout=90s"], root, timeout=60)
        assert started and started[-1].poll() is not None  # the binary stopped, not left running
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        os.close(state)


# --------------------------------------------------------------------------- provider mirrors and locks


def _fake_mirror(base: Path) -> mirror.Mirror:
    """A mirror directory holding one (tiny, never run) provider package for both hosts."""
    for host in mirror.HOSTS:
        pkg = base / host / "hashicorp" / "google" / "7.37.0" / "linux_amd64"
        pkg.mkdir(parents=True)
        (pkg / "terraform-provider-google_v7.37.0").write_bytes(b"a local build, not the release\n")
    return mirror.load(base)


def test_the_runner_owns_an_existing_cli_config_for_a_mirror(
    binary: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    found = _fake_mirror(tmp_path / "mirror")
    assert found.sources() == [
        "registry.opentofu.org/hashicorp/google",
        "registry.terraform.io/hashicorp/google",
    ]
    own = tmp_path / "own.tfrc"
    own.write_text("provider_installation {\n  direct {}\n}\n")  # the user's own: not used with a mirror
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(own))
    tool = runner.Mode(found).tool(identify(binary))
    config = Path(tool.environment()["TF_CLI_CONFIG_FILE"])
    assert config.is_file() and config.is_relative_to(tmp_path / "cache" / "llm-platform" / "tofu-cli")
    text = config.read_text()
    assert f'path    = "{found.path}"' in text
    assert '"registry.opentofu.org/hashicorp/google", "registry.terraform.io/hashicorp/google"' in text
    assert 'exclude = ["registry.opentofu.org/*/*", "registry.terraform.io/*/*"]' in text
    assert runner.Mode(found).tool(identify(binary)).cli_config == str(
        config
    )  # stable, rewritten only if changed
    # the binary reads it: a provider the mirror lacks fails at once, without reaching a registry
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.tf").write_text(
        'terraform {\n  required_providers {\n    random = {\n      source = "hashicorp/random"\n'
        "    }\n  }\n}\n"
    )
    result = tool.run(["init", "-input=false", "-no-color"], root)
    assert result.code == 1 and "hashicorp/random" in result.stderr, result.stderr
    assert "Unable to open CLI configuration file" not in result.stdout + result.stderr


def test_apply_refuses_to_copy_a_lock_written_with_a_mirror_build_into_the_tree(
    deliver: Deliver, repo: Path, binary: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert plan(deliver, repo, binary).code == 0
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # where .ci/install puts the mirror
    found = _fake_mirror(tmp_path / "cache" / "llm-platform" / "tofu-mirror")
    h1 = found.packages[0].h1()
    assert h1 == found.packages[1].h1() and h1.startswith("h1:")
    lock = (
        'provider "registry.opentofu.org/hashicorp/google" {\n  version = "7.37.0"\n'
        f'  hashes = [\n    "{h1}",\n  ]\n}}\n'
    )
    (repo / "out" / "tofu" / "dev" / ".terraform.lock.hcl").write_text(lock)
    result = apply(deliver, repo, binary)
    assert result.code == 1, result.err
    assert "written with the provider mirror's own build of hashicorp/google 7.37.0" in result.err
    assert "it is not copied into tofu/envs/dev" in result.err and result.err.count("error:") == 1
    root = inputs.root_dir(repo, "dev")
    assert not (root / ".terraform.lock.hcl").exists() and not (root / "terraform.tfstate").exists()
    # the same lock with the release's hash (not the mirror's) is the plan's lock: apply takes it
    (repo / "out" / "tofu" / "dev" / ".terraform.lock.hcl").write_text(
        lock.replace(h1, "h1:" + "A" * 43 + "=")
    )
    assert "it is not copied" not in apply(deliver, repo, binary).err
    assert (root / ".terraform.lock.hcl").is_file()


# --------------------------------------------------------------------------- destroy plans

ALL = ["terraform_data.cluster", "terraform_data.demos[0]", "terraform_data.gpu_pool"]


def test_a_destroy_plan_is_applied_only_with_every_address_approved(
    deliver: Deliver, repo: Path, binary: str
) -> None:
    plan_and_apply(deliver, repo, binary)
    result = plan(deliver, repo, binary, "dev", "--destroy")
    assert result.code == 0, result.err
    out = repo / "out" / "tofu" / "dev.destroy"  # beside the real plan directory, never replacing it
    assert (
        "DESTROY PLAN: it deletes 3 resource(s) of dev" in result.out
        and "--approve-all-deletes" in result.out
    )
    binding = json.loads((out / "plan.json").read_text())
    assert binding["destroy"] is True and binding["summary"]["deletes"] == ALL
    plan_file = str(out / "plan.tfplan")

    def apply_destroy(*extra: str) -> Result:
        return deliver("apply", "--env", "dev", "--binary", binary, "--plan", plan_file, *extra, repo=repo)

    held = apply_destroy("--approve-delete", "terraform_data.cluster")
    assert held.code == 1 and held.err.count("that was not approved") == 2
    assert "terraform_data.cluster and that" not in held.err and state_addresses(repo) == ALL
    both = apply_destroy("--approve-all-deletes", "--approve-delete", "terraform_data.cluster")
    assert both.code == 2 and "with no --approve-delete" in both.err and state_addresses(repo) == ALL

    done = apply_destroy("--approve-all-deletes", "--json")
    assert done.code == 0, done.err
    listed = done.err.index("--approve-all-deletes approves these 3 address(es):")
    assert all(done.err.index(f"  delete  {a}") > listed for a in ALL)  # the list comes first
    assert done.err.index("apply: ok") > max(done.err.index(f"  delete  {a}") for a in ALL)
    assert json.loads(done.out)["applied"]["deletes"] == ALL
    assert state_addresses(repo) == []


def test_approve_all_deletes_is_only_for_destroy_plans(deliver: Deliver, repo: Path, binary: str) -> None:
    plan_and_apply(deliver, repo, binary)
    set_config(repo, "dev", ["features", "demos"], False)  # a normal plan that deletes one resource
    assert plan(deliver, repo, binary).code == 0
    result = apply(deliver, repo, binary, "dev", "--approve-all-deletes")
    assert result.code == 2 and "--approve-all-deletes is only for a destroy plan" in result.err
    assert "fix: name each address" in result.err and "terraform_data.demos[0]" in state_addresses(repo)
    offline = plan(deliver, repo, binary, "dev", "--destroy", "--offline")
    assert offline.code == 2 and "--destroy and --offline do not go together" in offline.err


SECRETS_ALL = [
    "terraform_data.apis",
    "terraform_data.cluster",
    "terraform_data.secret",
    "terraform_data.secret_reader",
]


def test_a_destroy_plan_keeps_the_secret_declarations_and_what_they_need_unless_asked(
    deliver: Deliver, repo: Path, binary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stand-in for google_secret_manager_secret (which needs GCP to exist): terraform_data.secret.
    monkeypatch.setattr(
        destroy, "is_secret_declaration", lambda address, _type: address == "terraform_data.secret"
    )
    use_root(repo, "dev", "secrets")
    plan_and_apply(deliver, repo, binary)
    assert state_addresses(repo) == SECRETS_ALL
    result = plan(deliver, repo, binary, "dev", "--destroy")
    assert result.code == 0, result.err
    assert "keeping 2 secret declaration(s) and what they need" in result.err
    assert "kept: 2 secret declaration(s)" in result.out
    out = repo / "out" / "tofu" / "dev.destroy"
    binding = json.loads((out / "plan.json").read_text())
    # the secret and the API it needs stay; its reader (which depends on it) and the cluster go
    assert binding["kept"] == ["terraform_data.apis", "terraform_data.secret"]
    assert binding["summary"]["deletes"] == ["terraform_data.cluster", "terraform_data.secret_reader"]
    plan_file = str(out / "plan.tfplan")
    done = deliver(
        "apply", "--env", "dev", "--binary", binary, "--plan", plan_file, "--approve-all-deletes", repo=repo
    )
    assert done.code == 0, done.err
    assert state_addresses(repo) == ["terraform_data.apis", "terraform_data.secret"]

    # only secrets left: a destroy plan says so, and --destroy-secrets destroys them too
    nothing = plan(deliver, repo, binary, "dev", "--destroy")
    assert nothing.code == 2 and "nothing to destroy in dev but its secret declarations (2)" in nothing.err
    assert "--destroy-secrets" in nothing.err
    everything = plan(deliver, repo, binary, "dev", "--destroy", "--destroy-secrets")
    assert everything.code == 0, everything.err
    binding = json.loads((out / "plan.json").read_text())
    assert binding["kept"] == [] and binding["summary"]["deletes"] == [
        "terraform_data.apis",
        "terraform_data.secret",
    ]
    wrong = plan(deliver, repo, binary, "dev", "--destroy-secrets")
    assert wrong.code == 2 and "--destroy-secrets is only for a destroy plan" in wrong.err


READER = 'google_secret_manager_secret_iam_member.eso_read["key"]'


def test_the_destroy_scope_is_closed_under_dependencies() -> None:
    state = {
        "values": {
            "root_module": {
                "child_modules": [
                    {
                        "resources": [
                            {
                                "address": 'module.gke.google_project_service.cluster["iam"]',
                                "type": "google_project_service",
                            },
                            {
                                "address": 'module.gke.google_project_service.cluster["secretmanager"]',
                                "type": "google_project_service",
                            },
                            {
                                "address": 'module.gke.google_secret_manager_secret.this["key"]',
                                "type": "google_secret_manager_secret",
                                "depends_on": ["module.gke.google_project_service.cluster"],
                            },
                            {
                                "address": f"module.gke.{READER}",
                                "type": "google_secret_manager_secret_iam_member",
                                "depends_on": ["module.gke.google_secret_manager_secret.this"],
                            },
                            {
                                "address": "module.gke.google_container_cluster.this",
                                "type": "google_container_cluster",
                            },
                            {
                                "address": "module.gke.data.google_client_config.this",
                                "type": "x",
                                "mode": "data",
                            },
                        ]
                    }
                ]
            }
        }
    }
    found = destroy.scope(destroy.state_resources(state))
    assert found.kept == (
        'module.gke.google_project_service.cluster["iam"]',
        'module.gke.google_project_service.cluster["secretmanager"]',
        'module.gke.google_secret_manager_secret.this["key"]',
    )
    assert found.targets == (
        "module.gke.google_container_cluster.this",
        f"module.gke.{READER}",
    )
    assert destroy.scope(destroy.state_resources(state), lambda _a, _t: False) == destroy.DestroyScope((), ())
