"""``deliver root`` and ``deliver layers render``: the root Applications and the Argo CD layers."""

from __future__ import annotations

import click

from delivery.config import load_env
from delivery.core import console
from delivery.core.cliutil import env_option, fail_reported, json_option, resolved_repo
from delivery.core.errors import UsageError, ValidationFailed
from delivery.core.fsutil import atomic_write_text
from delivery.core.paths import layers_dir
from delivery.gitops.artifacts import modelcar_for, modelcar_warnings
from delivery.gitops.conventions import PROFILES
from delivery.gitops.pins import load_pins
from delivery.gitops.render import drift, render_layers, write_layers
from delivery.gitops.root import render_root, root_path, stale_root


@click.command("root")
@env_option()
@click.option(
    "--profile",
    type=click.Choice(list(PROFILES)),
    default=None,
    help="Profile to select (default: the environment's).",
)
@click.option("--write", is_flag=True, help="Write clusters/<env>/root.yaml instead of printing.")
@click.option("--check", "check_only", is_flag=True, help="Fail if the written root differs from config.")
@json_option
@click.pass_context
def root_cmd(
    ctx: click.Context, env: str, profile: str | None, write: bool, check_only: bool, as_json: bool
) -> None:
    """Print (or write) the root Argo CD Applications selecting the profile's layers."""
    repo = resolved_repo(ctx)
    if write and check_only:
        raise UsageError("--write and --check exclude each other", fix="pass one of them")
    cfg = load_env(repo, env)
    chosen = profile if profile and profile != cfg.profile else None
    text = render_root(cfg, chosen)
    target = root_path(repo, cfg, chosen)
    shown = str(target.relative_to(repo))
    if check_only:
        stale = stale_root(repo, cfg, chosen)
        if stale is not None:
            raise ValidationFailed.of([stale])
        result = {"ok": True, "env": env, "file": shown, "upToDate": True}
        console.print_json(result) if as_json else click.echo(f"up to date: {shown}")
    elif write:
        atomic_write_text(target, text)
        console.print_json({"ok": True, "env": env, "written": [shown]}) if as_json else click.echo(
            f"wrote {shown}"
        )
    elif as_json:
        console.print_json({"ok": True, "env": env, "files": {shown: text}})
    else:
        click.echo(text, nl=False)


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
    cfg = load_env(repo, env)
    base = layers_dir(repo, env).relative_to(repo)
    if check_only:
        problems = drift(repo, cfg)
        if as_json:
            console.print_json({"ok": not problems, "env": env, "problems": [p.as_dict() for p in problems]})
        elif problems:
            for p in problems:
                click.echo(p.render(), err=True)
        else:
            click.echo(f"up to date: {base}")
        if problems:
            fail_reported(
                f"{len(problems)} file(s) under {base} differ from what the config renders",
                fix=f"run: deliver layers render --env {env} --write",
            )
        return
    files = render_layers(repo, cfg)
    for warning in modelcar_warnings(modelcar_for(repo, cfg, load_pins(repo))):
        console.info(f"warning: {warning}")
    if write:
        written = write_layers(repo, cfg, files)
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
