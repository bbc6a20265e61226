"""`deliver plan` / `deliver apply` with the real tofu (or terraform) binary.

The fixture root (tests/fixtures/tofu/basic) has only the built-in terraform_data resource and a
local backend. It is copied to tofu/envs/<env> of a repo copy, so it runs through exactly the code
path of a real environment: inputs from environments/<env>/config.yaml, policy, fmt, init, plan,
show -json, binding, gate, apply. Config edits drive every kind of change:
cluster.name -> update, gpu.maxNodes -> update, gpu.type -> replace, features.demos=false -> delete.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import REPO, Result, find_tool
from delivery.core import yamlio
from delivery.core.errors import ToolError
from delivery.substrate import inputs, runner
from delivery.substrate.tool import Tool, identify
from delivery.substrate.tool import find_tool as find_substrate_tool

FIXTURES = REPO / "tests" / "fixtures" / "tofu"
Deliver = Callable[..., Result]


@pytest.fixture
def binary(tools: Callable[[str], str]) -> str:
    return tools("tofu")  # tofu, or terraform when only that is installed


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
    subprocess.run([binary, "init", "-input=false"], cwd=root, env=env, check=True, capture_output=True)
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


def _installed() -> list[str]:
    """Every real binary on this machine by its own name (tofu and/or terraform)."""
    found = [p for name in ("tofu", "terraform") if (p := find_tool(name)) and Path(p).name == name]
    return found or [""]  # none: the test asks tools("tofu"), which skips locally and fails in CI


@pytest.mark.parametrize("installed", _installed())
def test_each_installed_binary_plans_and_applies(
    deliver: Deliver, repo: Path, installed: str, tools: Callable[[str], str]
) -> None:
    binary = installed or tools("tofu")
    tool = identify(binary)
    plan_and_apply(deliver, repo, binary)
    assert json.loads((repo / "out" / "tofu" / "dev" / "plan.json").read_text())["tool"] == tool.kind
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
