"""``deliver config check``: every environment's config and the references between them."""

from __future__ import annotations

import click

from delivery.config.loader import check
from delivery.core import console
from delivery.core.cliutil import env_option, fail_reported, json_option, resolved_repo
from delivery.core.errors import EXIT_BAD_INPUT


@click.group("config")
def config_group() -> None:
    """Environment config (environments/<env>/config.yaml)."""


@config_group.command("check")
@env_option(required=False)
@json_option
@click.pass_context
def config_check(ctx: click.Context, env: str | None, as_json: bool) -> None:
    """Check every environment's config (or one with --env); all problems at once."""
    repo = resolved_repo(ctx)
    configs, problems = check(repo, [env] if env else None)
    if as_json:
        console.print_json(
            {
                "ok": not problems,
                "environments": sorted(configs),
                "problems": [p.as_dict() for p in problems],
            }
        )
    else:
        for p in problems:
            click.echo(p.render(), err=True)
        failed = {p.where.file for p in problems}
        for name in sorted(configs):
            if str(configs[name].path) not in failed:
                click.echo(f"ok  {name}  ({configs[name].path})")
    if problems:
        fail_reported(
            f"{len(problems)} problem(s) in environment config",
            fix="fix each problem above (its fix line says how), then run: deliver config check",
            exit_code=EXIT_BAD_INPUT,
        )
