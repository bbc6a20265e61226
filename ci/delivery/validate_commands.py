"""``deliver schemas`` and ``deliver validate``: the hermetic schema bundle and layer validation."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from delivery import config as envconfig
from delivery import console, schemas
from delivery.cli import env_option, json_option, resolved_repo
from delivery.console import ProgressReporter
from delivery.fsutil import atomic_write_text
from delivery.validate import junit_xml, validate_envs

_source_option = click.option(
    "--source",
    "source_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Hermetic copy of the pinned upstream files (default: ${schemas.SOURCE_DIR_ENV} "
    "or ../shared/kube-schemas next to the repo).",
)
_offline_option = click.option(
    "--offline", is_flag=True, help="Never download: use the hermetic copy or the cache only."
)


@click.command("schemas")
@env_option(required=False)
@_offline_option
@_source_option
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also copy the bundle to DIR (replaced atomically).",
)
@json_option
@click.pass_context
def schemas_cmd(
    ctx: click.Context,
    env: str | None,
    offline: bool,
    source_dir: Path | None,
    output: Path | None,
    as_json: bool,
) -> None:
    """Build (or reuse from the cache) the schema bundle kubeconform validates against."""
    repo = resolved_repo(ctx)
    envs = [env] if env else envconfig.list_envs(repo)
    minors = sorted({envconfig.load_env(repo, name).cluster.kubernetes_version for name in envs})
    with ProgressReporter(quiet=as_json) as progress:
        bundle = schemas.ensure_bundle(
            repo, minors, source_dir=source_dir, offline=offline, progress=progress
        )
    if output is not None:
        bundle = schemas.export_bundle(bundle, output.resolve())
    if as_json:
        console.print_json({"ok": True, **bundle.summary()})
        return
    info = bundle.summary()
    core = ", ".join(f"{m}: {n}" for m, n in info["schemas"]["kubernetes"].items())
    click.echo(f"schema bundle {bundle.key}: {bundle.root}")
    click.echo(f"  Kubernetes ({schemas.KUBERNETES_VALIDATE} {info['kubernetesValidate']}): {core} kinds")
    click.echo(f"  CRDs from the catalog at {schemas.CATALOG_COMMIT}: {info['schemas']['catalog']}")
    converted = ", ".join(sorted(info["schemas"]["converted"]))
    click.echo(f"  converted from CRD YAML: {converted}")


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
@_offline_option
@_source_option
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


COMMANDS: tuple[click.Command, ...] = (schemas_cmd, validate_cmd)
