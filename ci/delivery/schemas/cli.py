"""``deliver schemas``: build (or reuse) the hermetic schema bundle, optionally export it."""

from __future__ import annotations

from pathlib import Path

import click

from delivery import config as envconfig
from delivery.core import console
from delivery.core.cliutil import env_option, json_option, resolved_repo
from delivery.core.console import ProgressReporter
from delivery.schemas import bundle as schemas
from delivery.schemas.sources import CATALOG_COMMIT, KUBERNETES_VALIDATE, SOURCE_DIR_ENV

source_option = click.option(
    "--source",
    "source_dir",
    # a mistyped directory is an error, never silently a download instead
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help=f"Hermetic copy of the pinned upstream files (default: ${SOURCE_DIR_ENV} "
    "or ../shared/kube-schemas next to the repo).",
)
offline_option = click.option(
    "--offline", is_flag=True, help="Never download: use the hermetic copy or the cache only."
)


@click.command("schemas")
@env_option(required=False)
@offline_option
@source_option
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also copy the bundle to DIR (replaced atomically).",
)
@click.option(
    "--save-sources",
    "save_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write the pinned upstream files into DIR, laid out as a hermetic copy "
    "(for --source DIR on a machine without network).",
)
@json_option
@click.pass_context
def schemas_cmd(
    ctx: click.Context,
    env: str | None,
    offline: bool,
    source_dir: Path | None,
    output: Path | None,
    save_dir: Path | None,
    as_json: bool,
) -> None:
    """Build (or reuse from the cache) the schema bundle kubeconform validates against.

    Sources: --source DIR, else $DELIVER_KUBE_SCHEMAS, else ../shared/kube-schemas beside the repo;
    then the download cache; then (unless --offline) the pinned URLs, or $DELIVER_SCHEMA_MIRROR
    (a base URL serving <host>/<path> of each), every file checked against its sha256 pin.
    """
    repo = resolved_repo(ctx)
    envs = [env] if env else envconfig.list_envs(repo)
    minors = sorted({envconfig.load_env(repo, name).cluster.kubernetes_version for name in envs})
    saved = None
    if save_dir is not None:
        count = schemas.save_sources(repo, save_dir.resolve(), source_dir=source_dir, offline=offline)
        saved = {"path": str(save_dir.resolve()), "files": count}
    with ProgressReporter(quiet=as_json) as progress:
        bundle = schemas.ensure_bundle(
            repo, minors, source_dir=source_dir, offline=offline, progress=progress
        )
    if output is not None:
        bundle = schemas.export_bundle(bundle, output.resolve())
    if as_json:
        console.print_json({"ok": True, **bundle.summary(), **({"savedSources": saved} if saved else {})})
        return
    if saved:
        click.echo(f"saved {saved['files']} pinned schema sources to {saved['path']} (use: --source DIR)")
    info = bundle.summary()
    core = ", ".join(f"{m}: {n}" for m, n in info["schemas"]["kubernetes"].items())
    click.echo(f"schema bundle {bundle.key}: {bundle.root}")
    click.echo(f"  Kubernetes ({KUBERNETES_VALIDATE} {info['kubernetesValidate']}): {core} kinds")
    click.echo(f"  CRDs from the catalog at {CATALOG_COMMIT}: {info['schemas']['catalog']}")
    converted = ", ".join(sorted(info["schemas"]["converted"]))
    click.echo(f"  converted from CRD YAML: {converted}")
