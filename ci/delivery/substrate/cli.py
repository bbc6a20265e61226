"""``deliver plan``, ``deliver apply`` and ``deliver substrate-check``."""

from __future__ import annotations

from pathlib import Path

import click

from delivery import config as envconfig
from delivery.core import console
from delivery.core.cliutil import env_option, fail_reported, json_option, resolved_repo
from delivery.core.errors import DeliveryError, Problem
from delivery.substrate import checks, inputs, mirror, policy, runner
from delivery.substrate.hcl import located
from delivery.substrate.tool import BINARY_ENV_VAR, find_tool

binary_option = click.option(
    "--binary",
    "binary",
    envvar=BINARY_ENV_VAR,
    metavar="NAME|PATH",
    default=None,
    help=f"tofu, terraform or a path (env: {BINARY_ENV_VAR}; default: tofu if found, else terraform).",
)
mirror_option = click.option(
    "--provider-mirror",
    "provider_mirror",
    envvar=mirror.MIRROR_ENV_VAR,
    metavar="DIR",
    type=click.Path(path_type=Path),
    default=None,
    help="Take providers from this filesystem mirror, not a registry; runs in a scratch copy "
    f"(env: {mirror.MIRROR_ENV_VAR}).",
)

OFFLINE_BANNER = (
    "OFFLINE PLAN: made against an empty local state, without refresh, credentials or network. "
    "It shows what a first apply would create; it CANNOT be applied (deliver apply refuses it)."
)


@click.command("plan")
@env_option()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for plan.tfplan, plan.json and the inputs (default: out/tofu/ENV).",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Plan in a scratch copy against an empty local state: no refresh, no credentials, no network "
    "(what a first apply would create; never applicable). Providers: --provider-mirror or the registry.",
)
@click.option(
    "--destroy",
    is_flag=True,
    help="Plan the destruction of everything in ENV's state but its secret declarations and what "
    "they need (saved in out/tofu/ENV.destroy); apply needs every address approved.",
)
@click.option(
    "--destroy-secrets",
    is_flag=True,
    help="With --destroy: destroy the Secret Manager secrets too (their values, written "
    "out-of-band, go with them).",
)
@mirror_option
@binary_option
@json_option
@click.pass_context
def plan_cmd(
    ctx: click.Context,
    env: str,
    out_dir: Path | None,
    offline: bool,
    destroy: bool,
    destroy_secrets: bool,
    provider_mirror: Path | None,
    binary: str | None,
    as_json: bool,
) -> None:
    """Plan the substrate of ENV: policy, fmt, init, plan -out, and a summary of the changes."""
    repo = resolved_repo(ctx)
    envconfig.load_env(repo, env)  # an unknown env fails before anything else
    mode = runner.Mode(mirror.from_option(provider_mirror), offline)
    tool = find_tool(binary, repo)
    if offline:
        click.echo(OFFLINE_BANNER, err=True)  # also with --json (whose document says "offline": true)
    with console.ProgressReporter(quiet=as_json) as reporter:
        outcome = runner.plan(
            repo,
            env,
            tool,
            out_dir=out_dir,
            reporter=reporter,
            mode=mode,
            destroy=destroy,
            destroy_secrets=destroy_secrets,
        )
    if as_json:
        console.print_json({"ok": True, **outcome.as_dict()})
        return
    click.echo(outcome.summary.table(), nl=False)
    click.echo(f"saved: {outcome.plan_file}  (summary: {runner.sidecar_path(outcome.plan_file)})")
    if offline:
        click.echo(OFFLINE_BANNER)
        return
    destructive = outcome.summary.destructive
    approvals = " ".join(f"--approve-delete '{c.address}'" for c in destructive)
    command = f"deliver apply --env {env} --plan {outcome.plan_file} {approvals}".rstrip()
    click.echo(f"review, then: {command}")
    if destroy:
        kept = outcome.binding.get("kept") or []
        if kept:
            click.echo(
                f"kept: {len(kept)} secret declaration(s) and what they need (--destroy-secrets: them too)"
            )
        click.echo(f"DESTROY PLAN: it deletes {len(destructive)} resource(s) of {env}. To approve them all")
        all_of_them = f"deliver apply --env {env} --plan {outcome.plan_file} --approve-all-deletes"
        click.echo(f"at once (the list is printed before it runs): {all_of_them}")


@click.command("apply")
@env_option()
@click.option(
    "--plan",
    "plan_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The plan.tfplan saved by `deliver plan --env ENV` (never applies without one).",
)
@click.option(
    "--approve-delete",
    "approve_delete",
    multiple=True,
    metavar="ADDRESS",
    help="Allow the plan to delete or replace this resource address (repeat for each one).",
)
@click.option(
    "--approve-all-deletes",
    "approve_all_deletes",
    is_flag=True,
    help="For a destroy plan only: approve every address it deletes (the list is printed first).",
)
@mirror_option
@binary_option
@json_option
@click.pass_context
def apply_cmd(
    ctx: click.Context,
    env: str,
    plan_file: Path,
    approve_delete: tuple[str, ...],
    approve_all_deletes: bool,
    provider_mirror: Path | None,
    binary: str | None,
    as_json: bool,
) -> None:
    """Apply a plan saved by `deliver plan` for ENV; deletes and replaces need --approve-delete."""
    repo = resolved_repo(ctx)
    envconfig.load_env(repo, env)
    mode = runner.Mode(mirror.from_option(provider_mirror))
    tool = find_tool(binary, repo)
    # the list --approve-all-deletes approves is always shown (on stderr, also with --json)
    with console.ProgressReporter(quiet=as_json and not approve_all_deletes) as reporter:
        outcome = runner.apply(
            repo,
            env,
            tool,
            plan_file,
            approve_delete=approve_delete,
            approve_all_deletes=approve_all_deletes,
            reporter=reporter,
            mode=mode,
        )
    if as_json:
        console.print_json({"ok": True, **outcome.as_dict()})
        return
    click.echo(outcome.summary.table(), nl=False)
    click.echo(f"applied: {outcome.plan_file}")
    for name, value in sorted(outcome.outputs.items()):
        click.echo(f"  {name} = {value}")


@click.command("substrate-check")
@env_option(required=False)
@mirror_option
@binary_option
@json_option
@click.pass_context
def substrate_check_cmd(
    ctx: click.Context, env: str | None, provider_mirror: Path | None, binary: str | None, as_json: bool
) -> None:
    """Check every env's root offline: inputs from config, GCS backend, HCL policy, fmt -check; with
    --provider-mirror also validate and the modules' tests (`tofu test`) with each env's values."""
    repo = resolved_repo(ctx)
    if env:
        envconfig.load_env(repo, env)  # an unknown or broken env is bad input (exit 2), not a finding
    envs = [env] if env else envconfig.list_envs(repo)
    mode = runner.Mode(mirror.from_option(provider_mirror))
    tool = find_tool(binary, repo)
    problems: list[Problem] = []
    checked: list[str] = []
    deeper: dict[str, checks.CheckOutcome] = {}
    for name in envs:
        try:
            prepared = runner.prepare(repo, name)
            if prepared.module.backend != "gcs":
                problems.append(
                    Problem(
                        located(*prepared.module.backend_at, repo)
                        if prepared.module.backend_at
                        else prepared.root_rel,
                        f"root has backend {prepared.module.backend or 'none'!r}, "
                        'not an empty backend "gcs" {}',
                        f'declare backend "gcs" {{}}: bucket {inputs.state_bucket(prepared.cfg)} and prefix '
                        "are passed by deliver from config",
                    )
                )
            runner.check_format(tool, prepared)
            if mode.mirror is not None:
                with console.ProgressReporter(quiet=True) as quiet:
                    deeper[name] = checks.validate_and_test(tool, prepared, mode, quiet)
            checked.append(name)
        except DeliveryError as err:
            problems.extend(err.problems)
    if as_json:
        document = {"ok": not problems, "checked": checked, "problems": [p.as_dict() for p in problems]}
        if mode.mirror is not None:
            document["validated"] = {name: outcome.as_dict() for name, outcome in deeper.items()}
        console.print_json(document)
    else:
        for p in problems:
            click.echo(p.render(), err=True)
        failed = {p.where for p in problems}
        for name in checked:
            if not any(w.file.startswith(str(inputs.root_dir(repo, name).relative_to(repo))) for w in failed):
                extra = ""
                if name in deeper:
                    tests = deeper[name].tests
                    runs = ", ".join(f"{m} {n} runs" for m, n in tests.items()) or "no module tests"
                    extra = f", validate, tests: {runs}"
                click.echo(
                    f"ok  {name}  (tofu/envs/{name}, {len(policy.MODULE_RULES) + 1} policies, fmt{extra})"
                )
    if problems:
        fail_reported(
            f"{len(problems)} substrate problem(s) found",
            fix="fix each problem above (its fix line says how), then run: deliver substrate-check",
        )
