"""Engine-free checks of the substrate's Dagger pipeline: what tofu-plan and tofu-apply would run.

No engine runs here: each pipeline is sent to test_dagger_module's fake engine (``await obj.id()``)
and its steps read back there: the tofu binary comes from the pinned minimal image, credentials are a
mounted Secret, every run is cache-busted, and the exec is the same `deliver plan` / `deliver apply`
the tests run for real. Cache policies are read from the module's registration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The harness puts ci/dagger/src on sys.path and imports the SDK the way the module's runtime has it.
from test_dagger_module import dagger, functions, images, query, substrate, toolbox


def steps(obj: Any) -> list[tuple[str, dict[str, Any]]]:
    return query(obj).steps()


def execs(obj: Any) -> list[list[str]]:
    return query(obj).execs()


def _install_input(args: dict[str, Any]) -> bool:
    """A file the toolbox installs the project from (test_dagger_module checks those)."""
    return str(args["path"]).startswith(f"{toolbox.PROJECT_DIR}/")


def test_tofu_comes_from_the_pinned_minimal_image() -> None:
    assert images.OPENTOFU.startswith("ghcr.io/opentofu/opentofu:1.12.6-minimal@sha256:")
    ctr = substrate.tofu_toolbox(dagger.dag.directory(), dagger.dag.set_secret("gcp", "x"))
    copied = [args for name, args in steps(ctr) if name == "withFile" and not _install_input(args)]
    assert copied and copied[0]["path"] == "/usr/local/bin/tofu" and copied[0]["permissions"] == 0o755
    source_file = copied[0]["source"]
    addresses = [args.get("address") for name, args in source_file.steps() if name == "from"]
    assert addresses == [images.OPENTOFU]
    env = {a["name"]: a["value"] for n, a in steps(ctr) if n == "withEnvVariable"}
    assert env["DELIVER_TOFU"] == "/usr/local/bin/tofu"
    assert env["GOOGLE_APPLICATION_CREDENTIALS"] == substrate.CREDENTIALS_PATH
    assert [a["path"] for n, a in steps(ctr) if n == "withMountedSecret"] == [substrate.CREDENTIALS_PATH]


def test_plan_runs_deliver_plan_and_returns_the_plan_directory() -> None:
    directory = substrate.plan(dagger.dag.directory(), "staging", dagger.dag.set_secret("gcp", "x"))
    assert isinstance(directory, dagger.Directory)
    assert execs(directory)[-1] == [
        "deliver",
        "--repo",
        "/repo",
        "plan",
        "--env",
        "staging",
        "--out",
        "/plan",
    ]
    assert steps(directory)[-1] == ("directory", {"path": "/plan"})


def test_apply_runs_deliver_apply_on_the_saved_plan_with_each_approval() -> None:
    ctr = substrate.apply(
        dagger.dag.directory(),
        "prod",
        dagger.dag.directory(),
        dagger.dag.set_secret("gcp", "x"),
        ["module.gke.google_container_node_pool.gpu"],
    )
    assert execs(ctr)[-1] == [
        "deliver",
        "--repo",
        "/repo",
        "apply",
        "--env",
        "prod",
        "--plan",
        "/plan/plan.tfplan",
        "--approve-delete",
        "module.gke.google_container_node_pool.gpu",
        "--json",
    ]
    assert ("withDirectory", "/plan") in [(n, a.get("path")) for n, a in steps(ctr)]


def test_plan_passes_destroy_and_offline_and_an_offline_plan_mounts_no_credentials() -> None:
    secret = dagger.dag.set_secret("gcp", "x")
    destroy = substrate.plan(dagger.dag.directory(), "dev", secret, destroy=True, destroy_secrets=True)
    assert execs(destroy)[-1][-2:] == ["--destroy", "--destroy-secrets"]
    assert [a["path"] for n, a in steps(destroy) if n == "withMountedSecret"] == [substrate.CREDENTIALS_PATH]
    offline = substrate.plan(dagger.dag.directory(), "dev", secret, offline=True)
    assert execs(offline)[-1][-1] == "--offline"
    assert not [a for n, a in steps(offline) if n == "withMountedSecret"]
    env_names = {a["name"] for n, a in steps(offline) if n == "withEnvVariable"}
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in env_names


def test_apply_passes_approve_all_deletes() -> None:
    ctr = substrate.apply(
        dagger.dag.directory(),
        "dev",
        dagger.dag.directory(),
        dagger.dag.set_secret("gcp", "x"),
        [],
        approve_all_deletes=True,
    )
    assert execs(ctr)[-1][-2:] == ["--approve-all-deletes", "--json"]


def test_every_plan_and_apply_is_cache_busted() -> None:
    def run_ids() -> list[str]:
        built = [
            substrate.plan(dagger.dag.directory(), "dev", dagger.dag.set_secret("gcp", "x")),
            substrate.apply(
                dagger.dag.directory(), "dev", dagger.dag.directory(), dagger.dag.set_secret("gcp", "x"), []
            ),
        ]
        return [
            a["value"]
            for obj in built
            for n, a in steps(obj)
            if n == "withEnvVariable" and a["name"] == "DELIVER_RUN_ID"
        ]

    first, second = run_ids(), run_ids()
    assert len(first) == 2 and len(set(first + second)) == 4


def test_module_functions_are_never_cached() -> None:
    for name in ("tofu_plan", "tofu_apply"):
        assert functions()[name].cache == ("Never", None), name


def test_module_functions_take_credentials_as_secrets() -> None:
    # a plan may run --offline (no credentials at all); an apply always needs them
    for name, kind in (("tofu_plan", "Secret?"), ("tofu_apply", "Secret")):
        assert functions()[name].args["credentials"].type == kind, name
        assert functions()[name].required()[:1] == ["env"], name
    assert functions()["tofu_apply"].args["plan"].type == "Directory"


def test_the_cli_accepts_exactly_the_arguments_the_module_passes() -> None:
    from delivery import cli

    secret = dagger.dag.set_secret("gcp", "x")
    plan_args = execs(substrate.plan(dagger.dag.directory(), "dev", secret))[-1]
    apply_args = execs(
        substrate.apply(dagger.dag.directory(), "dev", dagger.dag.directory(), secret, ["a.b"])
    )[-1]
    destroy_args = execs(
        substrate.plan(dagger.dag.directory(), "dev", secret, destroy=True, destroy_secrets=True)
    )[-1]
    offline_args = execs(substrate.plan(dagger.dag.directory(), "dev", None, offline=True))[-1]
    all_args = execs(
        substrate.apply(
            dagger.dag.directory(), "dev", dagger.dag.directory(), secret, [], approve_all_deletes=True
        )
    )[-1]

    def parse(args: list[str]) -> dict[str, Any]:
        """The parameters ``deliver`` parses from one exec of the module (its subcommand's)."""
        ctx = cli.main_group.make_context("deliver", args[1:], resilient_parsing=True)
        command = cli.main_group.get_command(ctx, args[3])
        assert command is not None
        return command.make_context(args[3], args[4:], parent=ctx).params

    for args in (destroy_args, offline_args, all_args):
        params = parse(args)
        assert params["env"] == "dev"
        if args[3] == "plan":
            assert params["destroy"] is params["destroy_secrets"] is (args is destroy_args)
            assert params["offline"] is (args is offline_args)
        else:
            assert params["approve_all_deletes"] is True
    parsed = {args[3]: parse(args) for args in (plan_args, apply_args)}
    assert parsed["plan"]["env"] == "dev" and parsed["plan"]["out_dir"] == Path("/plan")
    assert parsed["apply"]["plan_file"] == Path("/plan/plan.tfplan")
    assert parsed["apply"]["approve_delete"] == ("a.b",) and parsed["apply"]["as_json"] is True


def test_substrate_check_needs_no_credentials() -> None:
    ctr = substrate.check(dagger.dag.directory(), "prod")
    assert execs(ctr)[-1] == ["deliver", "--repo", "/repo", "substrate-check", "--json", "--env", "prod"]
    assert not [a for n, a in steps(ctr) if n == "withMountedSecret"]
    assert [a["path"] for n, a in steps(ctr) if n == "withFile" and not _install_input(a)] == [
        "/usr/local/bin/tofu"
    ]
