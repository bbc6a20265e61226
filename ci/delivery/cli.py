"""The ``deliver`` command line: the same entry point for people, CI and the Dagger module.

Each step lives in its own module and registers its commands here. Errors are printed once
(what, where, how to fix) and give a non-zero exit; ``--json`` prints machine-readable results.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from delivery import config as envconfig
from delivery import console, profiles
from delivery.errors import DeliveryError
from delivery.fsutil import atomic_write_text
from delivery.paths import REPO_ENV_VAR, find_repo_root

F = TypeVar("F", bound=Callable[..., Any])

_json_mode = {"on": False}


def _set_json(_ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        _json_mode["on"] = True
    return value


json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    callback=_set_json,
    expose_value=True,
    help="Print machine-readable JSON.",
)


def env_option(required: bool = True) -> Callable[[F], F]:
    """The ``--env`` option shared by every environment-scoped command."""
    return click.option(
        "--env", "env", required=required, metavar="ENV", help="Environment (environments/ENV)."
    )


class LazyGroup(click.Group):
    """A group whose step commands are imported on first use, so a command loads only its own step."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, _, attr = self.lazy[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)


# Each step's commands live in the step's own module: name -> "module:attribute".
STEP_COMMANDS = {
    "modelcar": "delivery.modelcar.cli:modelcar_group",
    "plan": "delivery.substrate.commands:plan_cmd",
    "apply": "delivery.substrate.commands:apply_cmd",
    "substrate-check": "delivery.substrate.commands:substrate_check_cmd",
    "schemas": "delivery.validate_commands:schemas_cmd",
    "validate": "delivery.validate_commands:validate_cmd",
    "layers": "delivery.layers_cli:layers_group",
}


@click.group(cls=LazyGroup, lazy=STEP_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
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
    ctx.ensure_object(dict)["repo"] = repo.resolve() if repo else None


def resolved_repo(ctx: click.Context) -> Path:
    """Resolve the repo lazily so ``--help`` works anywhere."""
    obj = ctx.find_root().ensure_object(dict)
    if obj.get("repo") is None or not (obj["repo"] / "environments").is_dir():
        obj["repo"] = find_repo_root(obj.get("repo"))
    root: Path = obj["repo"]
    return root


@main_group.group("config")
def config_group() -> None:
    """Environment config (environments/<env>/config.yaml)."""


@config_group.command("check")
@env_option(required=False)
@json_option
@click.pass_context
def config_check(ctx: click.Context, env: str | None, as_json: bool) -> None:
    """Check every environment's config (or one with --env); all problems at once."""
    repo = resolved_repo(ctx)
    configs, problems = envconfig.check(repo, [env] if env else None)
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
        failed = {p.where.split(":")[0] for p in problems}
        for name in sorted(configs):
            if str(configs[name].path) not in failed:
                click.echo(f"ok  {name}  ({configs[name].path})")
    if problems:
        if not as_json:
            click.echo(f"{len(problems)} problem(s) found", err=True)
        sys.exit(2)


@main_group.command("root")
@env_option()
@click.option(
    "--profile",
    type=click.Choice(list(profiles.PROFILES)),
    default=None,
    help="Profile to select (default: the environment's).",
)
@click.option("--write", is_flag=True, help="Write clusters/<env>/root.yaml instead of printing.")
@click.option("--check", "check_only", is_flag=True, help="Fail if the written root differs from config.")
@click.pass_context
def root_cmd(ctx: click.Context, env: str, profile: str | None, write: bool, check_only: bool) -> None:
    """Print (or write) the root Argo CD Applications selecting the profile's layers."""
    repo = resolved_repo(ctx)
    cfg = envconfig.load_env(repo, env)
    chosen = profile if profile and profile != cfg.profile else None
    text = profiles.render_root(cfg, chosen)  # type: ignore[arg-type]
    target = profiles.root_path(repo, cfg, chosen)  # type: ignore[arg-type]
    if check_only:
        stale = profiles.stale_root(repo, cfg, chosen)  # type: ignore[arg-type]
        if stale is not None:
            raise DeliveryError.of([stale])
        click.echo(f"up to date: {target.relative_to(repo)}")
    elif write:
        atomic_write_text(target, text)
        click.echo(f"wrote {target.relative_to(repo)}")
    else:
        click.echo(text, nl=False)


@main_group.command("demo")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out/demo"),
    show_default=True,
    help="Where the demo writes (OCI layout, base, scratch repo, registry data).",
)
@json_option
@click.pass_context
def demo_cmd(ctx: click.Context, output: Path, as_json: bool) -> None:
    """Run the main job on the embedded default model, locally (no cloud account needed)."""
    from delivery.demo import run_demo

    repo = resolved_repo(ctx)
    out = output if output.is_absolute() else repo / output
    with console.ProgressReporter(quiet=as_json) as reporter:
        result = run_demo(repo, out, reporter)
    if as_json:
        console.print_json(result.as_dict())
    else:
        click.echo(result.published)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run, print errors once, exit with their code."""
    _json_mode["on"] = False  # per invocation (main may run several times in one process)
    try:
        main_group.main(args=argv, prog_name="deliver", standalone_mode=False)
    except DeliveryError as err:
        if _json_mode["on"]:
            console.print_json({"ok": False, **err.as_dict()})
        click.echo(f"error: {err.render()}", err=True)
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        if _json_mode["on"] or "--json" in (argv if argv is not None else sys.argv[1:]):
            problem = {"where": "command line", "what": err.format_message(), "fix": "see --help"}
            console.print_json({"ok": False, "error": "UsageError", "problems": [problem]})
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    sys.exit(0)
