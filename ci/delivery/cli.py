"""The ``deliver`` command line: the same entry point for people, CI and the Dagger module.

Each package owns its commands in its own ``cli.py``; this module only lists them (imported on first
use) and applies the one exit policy (``delivery.core.errors``): 0 ok, 1 a step failed or found
problems, 2 bad input or usage. Every failure ends with the same ``error:`` / ``fix:`` lines on
stderr, click's usage errors included; with ``--json`` a failure also prints one JSON document.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from delivery.core import console
from delivery.core.cliutil import JSON_KEY, REPO_KEY, LazyGroup, Reported
from delivery.core.errors import EXIT_BAD_INPUT, EXIT_OK, DeliveryError, Problem
from delivery.core.paths import REPO_ENV_VAR

# Each package's commands: name -> "module:attribute" (the package's cli.py).
COMMANDS = {
    "config": "delivery.config.cli:config_group",
    "root": "delivery.gitops.cli:root_cmd",
    "layers": "delivery.gitops.cli:layers_group",
    "schemas": "delivery.schemas.cli:schemas_cmd",
    "validate": "delivery.validation.cli:validate_cmd",
    "modelcar": "delivery.modelcar.cli:modelcar_group",
    "plan": "delivery.substrate.cli:plan_cmd",
    "apply": "delivery.substrate.cli:apply_cmd",
    "substrate-check": "delivery.substrate.cli:substrate_check_cmd",
    "promote": "delivery.promotion.cli:promote_cmd",
    "import-images": "delivery.promotion.cli:import_images_cmd",
    "rollback": "delivery.promotion.cli:rollback_cmd",
    "hold": "delivery.promotion.cli:hold_group",
    "verify-release": "delivery.promotion.cli:verify_release_cmd",
    "status": "delivery.promotion.cli:status_cmd",
    "history": "delivery.promotion.cli:history_cmd",
    "demo": "delivery.demo.cli:demo_cmd",
    "fork-init": "delivery.fork.cli:fork_init_cmd",
}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=REPO_ENV_VAR,
    help="Platform repo root (default: found from the current directory).",
)
@click.version_option(package_name="llm-platform-delivery")
@click.pass_context
def main_group(ctx: click.Context, repo: Path | None) -> None:
    """Deliver the LLM-inference platform: modelcars, substrate, layers and promotion."""
    ctx.ensure_object(dict)[REPO_KEY] = repo.resolve() if repo else None


def _print_error(err: DeliveryError) -> None:
    for problem in err.problems:
        where = str(problem.where)
        click.echo(f"error: {where}: {problem.what}" if where else f"error: {problem.what}", err=True)
        if problem.fix:
            click.echo(f"  fix: {problem.fix}", err=True)


def _usage_problem(err: click.ClickException) -> Problem:
    command = "deliver"
    if isinstance(err, click.UsageError) and err.ctx is not None:
        command = err.ctx.command_path
    return Problem("command line", err.format_message(), f"see `{command} --help`")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run one invocation, print a failure once, exit by the policy."""
    args = list(sys.argv[1:] if argv is None else argv)
    obj: dict[str, Any] = {JSON_KEY: False}
    try:
        main_group.main(args=args, prog_name="deliver", standalone_mode=False, obj=obj)
    except Reported as err:
        _print_error(err)  # the command printed its result (and its JSON document) already
        sys.exit(err.exit_code)
    except DeliveryError as err:
        if obj[JSON_KEY]:
            console.print_json({"ok": False, **err.as_dict()})
        _print_error(err)
        sys.exit(err.exit_code)
    except click.exceptions.NoArgsIsHelpError as err:
        click.echo(err.ctx.get_help() if err.ctx else "", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        problem = _usage_problem(err)
        usage = DeliveryError.of([problem])
        if obj[JSON_KEY] or "--json" in args:
            console.print_json({"ok": False, "error": "UsageError", "problems": [problem.as_dict()]})
        _print_error(usage)
        sys.exit(EXIT_BAD_INPUT)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    sys.exit(EXIT_OK)
