"""``deliver demo``: the main job on the embedded default model, locally."""

from __future__ import annotations

from pathlib import Path

import click

from delivery.core import console
from delivery.core.cliutil import json_option, resolved_repo


@click.command("demo")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out/demo"),
    show_default=True,
    help="Where the demo writes (OCI layout, base, scratch git repo, its bare remote, registry data).",
)
@click.option(
    "--schema-source",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Hermetic copy of the pinned schema sources (default: $DELIVER_KUBE_SCHEMAS or "
    "../shared/kube-schemas next to the repo; else the cache, else downloaded and sha256-checked).",
)
@click.option(
    "--offline", is_flag=True, help="Never download schema sources: the hermetic copy or the cache only."
)
@json_option
@click.pass_context
def demo_cmd(
    ctx: click.Context, output: Path, schema_source: Path | None, offline: bool, as_json: bool
) -> None:
    """Run the main job on the embedded default model, locally (no cloud account needed).

    Builds and publishes it into dev (a local registry), promotes it to staging (a second one) in a
    scratch git repo with a bare remote, and prints the status table. The schema bundle comes from
    where `deliver schemas` finds it; with network access a fresh clone downloads the pinned
    sources (or from $DELIVER_SCHEMA_MIRROR), each checked against its sha256.
    """
    from delivery.demo.run import run_demo
    from delivery.demo.schemas import SchemaSource

    repo = resolved_repo(ctx)
    out = output if output.is_absolute() else repo / output
    source = SchemaSource(schema_source.resolve() if schema_source else None, offline)
    with console.ProgressReporter(quiet=as_json) as reporter:
        result = run_demo(repo, out, reporter, source)
    if as_json:
        console.print_json(result.as_dict())
    else:
        click.echo(result.published)
        click.echo(
            f"promoted to staging: {result.promoted} (commit {result.commit[:12]}, pushed to {result.remote})"
        )
        click.echo("")
        click.echo(result.table, nl=False)
