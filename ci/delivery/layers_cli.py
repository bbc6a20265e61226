"""`deliver layers render`: the Argo CD layers of an environment from its config and clusters/pins.yaml."""

from __future__ import annotations

import sys

import click

from delivery import config as envconfig
from delivery import console, layers
from delivery.cli import env_option, json_option, resolved_repo
from delivery.errors import UsageError, ValidationFailed
from delivery.paths import layers_dir


@click.group("layers")
def layers_group() -> None:
    """The Argo CD layers (clusters/<env>/layers/), rendered from environments/<env>/config.yaml."""


@layers_group.command("render")
@env_option()
@click.option("--write", is_flag=True, help="Replace clusters/<env>/layers/ with the rendering (atomic).")
@click.option("--check", "check_only", is_flag=True, help="Fail if the committed layers differ (drift).")
@json_option
@click.pass_context
def render_cmd(ctx: click.Context, env: str, write: bool, check_only: bool, as_json: bool) -> None:
    """Render the env's layers: print them, --write them, or --check the committed ones."""
    repo = resolved_repo(ctx)
    if write and check_only:
        raise UsageError("--write and --check exclude each other", fix="pass one of them")
    cfg = envconfig.load_env(repo, env)
    base = layers_dir(repo, env).relative_to(repo)
    if check_only:
        problems = layers.drift(repo, cfg)
        if as_json:
            # one JSON document on stdout, drift or not (exit 1 on drift, like the text form)
            console.print_json({"ok": not problems, "env": env, "problems": [p.as_dict() for p in problems]})
            if problems:
                sys.exit(ValidationFailed.exit_code)
            return
        if problems:
            raise ValidationFailed.of(problems)
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
