"""``deliver validate``: kubeconform against the hermetic schemas, then the policy rules, per environment."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import click

from delivery.core.cliutil import env_option, fail_reported, json_option, resolved_repo
from delivery.schemas.cli import offline_option, source_option
from delivery.validation.findings import Report
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
        fix = f"apply {each}, then run `{again}` again"
        stale = _regenerate(reports)
        if stale:
            fix = f"{stale}; then apply {each.replace(' above', ' left')} and run `{again}` again"
        fail_reported(f"{failed} finding(s)", fix=fix)


# The finding that means "a generated file disagrees with its config": a config edit never rendered.
_RENDERED_CHECKS = ("repo-branch",)
_ROOT = re.compile(r"^clusters/(?P<env>[^/]+)/root(-(?P<profile>[a-z-]+))?\.yaml$")
_LAYERS = re.compile(r"^clusters/(?P<env>[^/]+)/layers/")


def _regenerate(reports: Sequence[Report]) -> str:
    """The commands that re-render the generated files the findings name ("" when none do).

    After a config edit that was never rendered (a new repoURL or branch), every Application of the
    env disagrees with it: one cause, many findings. This names the cause and its commands once.
    """
    commands: dict[str, None] = {}
    count = 0
    for finding in (f for r in reports for f in r.findings if f.check in _RENDERED_CHECKS):
        if root := _ROOT.match(finding.file):
            profile = f" --profile {root['profile']}" if root["profile"] else ""
            commands[f"deliver root --env {root['env']}{profile} --write"] = None
        elif layers := _LAYERS.match(finding.file):
            commands[f"deliver layers render --env {layers['env']} --write"] = None
        else:
            continue
        count += 1
    if not commands:
        return ""
    return (
        f"{count} finding(s) are generated files that disagree with environments/<env>/config.yaml "
        f"(a config change never rendered): run `{'` and `'.join(commands)}` (after a fork, "
        "`deliver fork-init` does all of it: docs/fork.md)"
    )
