"""``deliver fork-init``: point every environment at a fork's repo, projects, domains and registries."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from delivery import config as envconfig
from delivery.core import console
from delivery.core.cliutil import json_option, resolved_repo
from delivery.fork.request import parse_request
from delivery.fork.run import ForkResult, fork_init
from delivery.schemas.cli import offline_option, source_option

_GENERATED_WHY = "generated"


@click.command("fork-init")
@click.option("--repo-url", required=True, metavar="URL", help="The fork's git URL (every env's repoURL).")
@click.option("--branch", default=None, metavar="B", help="The branch Argo CD tracks (default: unchanged).")
@click.option(
    "--project", "projects", multiple=True, metavar="ENV=PROJECT", help="GCP project ID of ENV (repeatable)."
)
@click.option(
    "--domain", "domains", multiple=True, metavar="ENV=DOMAIN", help="DNS domain of ENV (repeatable)."
)
@click.option(
    "--registry",
    "registries",
    multiple=True,
    metavar="ENV=REGISTRY",
    help="Image registry of ENV (repeatable; default: the current one, following --project).",
)
@click.option("--dry-run", is_flag=True, help="Print the diff of every change; write nothing.")
@offline_option
@source_option
@json_option
@click.pass_context
def fork_init_cmd(
    ctx: click.Context,
    repo_url: str,
    branch: str | None,
    projects: tuple[str, ...],
    domains: tuple[str, ...],
    registries: tuple[str, ...],
    dry_run: bool,
    offline: bool,
    source_dir: Path | None,
    as_json: bool,
) -> None:
    """Make this clone a fork: edit each env's config, regenerate roots and layers, validate, then
    write every file together (or nothing); rewrite the docs and CI files holding old values and
    list the other files that do. Needs a clean git work tree. See docs/fork.md."""
    repo = resolved_repo(ctx)
    request = parse_request(envconfig.list_envs(repo), repo_url, branch, projects, domains, registries)
    result = fork_init(repo, request, dry_run=dry_run, offline=offline, source_dir=source_dir)
    if as_json:
        console.print_json(result.as_dict())
    else:
        _print(result)


def _print(result: ForkResult) -> None:
    if result.dry_run and result.changes:
        click.echo(result.diff(), nl=False)
    for env, r in result.envs.items():
        changed = ", ".join(r.before.changed(r.after)) or "no value changes"
        click.echo(f"{env}: {changed}")
        if r.tofu:
            click.echo(
                f"  tofu inputs ({r.tofu['root']}): project {r.after.project}, registry {r.after.registry}, "
                f"state bucket {r.tofu['stateBucket']}"
            )
        warned = f", {len(r.report.warnings)} warning(s)" if r.report.warnings else ""
        click.echo(f"  validated: {r.report.resources} resources, 0 finding(s){warned}")
    if not result.changes:
        click.echo("nothing to change: the tree already holds these values (config, generated files, docs)")
    else:
        verb = "would change" if result.dry_run else "changed"
        click.echo(f"{verb} {len(result.changes)} file(s):")
        generated = Counter(
            c.path.split("/layers/")[0] + "/layers/" for c in result.changes if "/layers/" in c.path
        )
        for change in result.changes:
            if "/layers/" not in change.path:
                click.echo(f"  {change.path}  ({change.why})")
        for base, count in sorted(generated.items()):
            click.echo(f"  {base}  ({count} {_GENERATED_WHY} file(s))")
    if result.left:
        click.echo(f"not rewritten ({len(result.left)}): they hold an old value, check each one:")
        for hit in result.left:
            click.echo(f"  {hit.file}:{hit.line}: {hit.value}  ({hit.why})")
    if result.written:
        click.echo(
            "next: review (git diff), then commit: git add -A && git commit -m 'Fork the platform'; "
            "docs/fork.md goes on from there"
        )
    elif result.dry_run and result.changes:
        click.echo("dry run: nothing written; run again without --dry-run to write these changes")
