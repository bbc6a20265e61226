"""``deliver validate``: kubeconform against the hermetic schemas, then the policy rules, per environment."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from delivery.core import console
from delivery.core.cliutil import env_option, json_option, resolved_repo
from delivery.core.fsutil import atomic_write_text
from delivery.schemas.cli import offline_option, source_option
from delivery.validation.outputs import junit_xml
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
        atomic_write_text(junit, junit_xml(reports))
    failed = sum(len(r.findings) for r in reports)
    if as_json:
        console.print_json(
            {
                "ok": not failed,
                "findings": failed,
                "resources": sum(r.resources for r in reports),
                "warnings": sum(len(r.warnings) for r in reports),
                "environments": [r.as_dict() for r in reports],
            }
        )
    else:
        for report in reports:
            for finding in report.findings:
                click.echo(finding.render(), err=True)
            for warning in report.warnings:
                click.echo(f"warning: {warning.render()}", err=True)
            state = "ok  " if report.ok else "FAIL"
            warned = f", {len(report.warnings)} warning(s)" if report.warnings else ""
            click.echo(
                f"{state} {report.env}: {report.resources} resources, {len(report.findings)} finding(s)"
                + warned
            )
    if failed:
        if not as_json:
            click.echo(f"{failed} finding(s)", err=True)
        sys.exit(1)
