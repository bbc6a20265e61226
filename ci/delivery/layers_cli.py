"""`deliver layers render`: the Argo CD layers of an environment from its config and clusters/pins.yaml."""

from __future__ import annotations

import click

from delivery import config as envconfig
from delivery import console, layers
from delivery.errors import UsageError, ValidationFailed
from delivery.paths import layers_dir


def _set_json(_ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        from delivery import cli  # the entry point module (imported lazily: it imports this module)

        cli._json_mode["on"] = True
    return value


def _repo(ctx: click.Context) -> object:
    from delivery.cli import resolved_repo

    return resolved_repo(ctx)


@click.group("layers")
def layers_group() -> None:
    """The Argo CD layers (clusters/<env>/layers/), rendered from environments/<env>/config.yaml."""


@layers_group.command("render")
@click.option("--env", "env", required=True, metavar="ENV", help="Environment (environments/ENV).")
@click.option("--write", is_flag=True, help="Replace clusters/<env>/layers/ with the rendering (atomic).")
@click.option("--check", "check_only", is_flag=True, help="Fail if the committed layers differ (drift).")
@click.option("--json", "as_json", is_flag=True, callback=_set_json, help="Print machine-readable JSON.")
@click.pass_context
def render_cmd(ctx: click.Context, env: str, write: bool, check_only: bool, as_json: bool) -> None:
    """Render the env's layers: print them, --write them, or --check the committed ones."""
    from pathlib import Path

    repo = Path(str(_repo(ctx)))
    if write and check_only:
        raise UsageError("--write and --check exclude each other", fix="pass one of them")
    cfg = envconfig.load_env(repo, env)
    base = layers_dir(repo, env).relative_to(repo)
    if check_only:
        problems = layers.drift(repo, cfg)
        if as_json:
            console.print_json({"ok": not problems, "env": env, "problems": [p.as_dict() for p in problems]})
        if problems:
            raise ValidationFailed.of(problems)
        if not as_json:
            click.echo(f"up to date: {base}")
        return
    files = layers.render_layers(repo, cfg)
    for warning in layers.modelcar_warnings(layers.modelcar_for(repo, cfg, layers.load_pins(repo))):
        console.info(f"warning: {warning}")
    if write:
        written = layers.write_layers(repo, cfg, files)
        if as_json:
            console.print_json({"ok": True, "env": env, "written": written})
        else:
            click.echo(f"wrote {len(written)} files under {base}")
    elif as_json:
        console.print_json({"ok": True, "env": env, "files": {f"{base}/{k}": v for k, v in files.items()}})
    else:
        for rel, text in files.items():
            click.echo(f"# ---- {base}/{rel}")
            click.echo(text, nl=False)
