"""``deliver validate``: kubeconform against the hermetic schemas, then the policy rules, per environment."""

from __future__ import annotations

from pathlib import Path

import click

from delivery.core.cliutil import env_option, fail_reported, json_option, resolved_repo
from delivery.schemas.cli import offline_option, source_option
from delivery.validation.outputs import failures, write_json, write_junit, write_text
from delivery.validation.validate import validate_envs


@click.command("validate")
@env_option(required=False)
@click.option(
    "--schemas",
    "schemas_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A prebuilt schema bundle (deliver schemas --output DIR); default: the cached bundle.",
)
@click.option(
    "--junit",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write a JUnit XML report (one testcase per resource) to FILE.",
)
@offline_option
@source_option
@json_option
@click.pass_context
def validate_cmd(
    ctx: click.Context,
    env: str | None,
    schemas_dir: Path | None,
    junit: Path | None,
    offline: bool,
    source_dir: Path | None,
    as_json: bool,
) -> None:
    """Validate every layer of every environment (or one): kubeconform -strict and policy checks."""
    repo = resolved_repo(ctx)
    reports = validate_envs(
        repo,
        [env] if env else None,
        schemas=schemas_dir.resolve() if schemas_dir else None,
        offline=offline,
        source_dir=source_dir,
    )
    if junit is not None:
        write_junit(reports, junit)
    if as_json:
        write_json(reports)
    else:
        write_text(reports)
    failed = failures(reports)
    if failed:
        again = f"deliver validate --env {env}" if env else "deliver validate"
        each = (
            "each finding's `fix` in the JSON document" if as_json else "the fix: line of each finding above"
        )
        fail_reported(f"{failed} finding(s)", fix=f"apply {each}, then run `{again}` again")
