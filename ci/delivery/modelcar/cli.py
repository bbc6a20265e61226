"""``deliver modelcar ...``: build, publish and verify modelcar images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from delivery.core import console
from delivery.core.cliutil import json_option, resolved_repo
from delivery.core.errors import UsageError
from delivery.core.secrets import registry_password
from delivery.modelcar.build import build_layout
from delivery.modelcar.busybox import build_busybox_index
from delivery.modelcar.pipeline import BuildOptions, BuiltImage
from delivery.modelcar.publish import publish
from delivery.modelcar.verify import verify

F = TypeVar("F", bound=Callable[..., Any])


def source_options(fn: F) -> F:
    """Options that say where the weights and caches are (shared by build/publish/verify)."""
    options = [
        click.option(
            "--source",
            "source_dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Build from this local directory instead of the Hugging Face cache/hub.",
        ),
        click.option(
            "--hf-cache",
            type=click.Path(file_okay=False, path_type=Path),
            help="Hugging Face hub cache (default: $HF_HUB_CACHE or ~/.cache/huggingface/hub).",
        ),
        click.option(
            "--offline",
            is_flag=True,
            default=None,
            help="Never contact the hub; serve from the HF cache (also: HF_HUB_OFFLINE=1).",
        ),
        click.option(
            "--hf-token-file",
            type=click.Path(dir_okay=False, path_type=Path),
            help="File holding the HF token (default: $HF_TOKEN_FILE or $HF_TOKEN).",
        ),
        click.option(
            "--cache-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Base-image blobs and the digest cache (default: $DELIVER_CACHE_DIR or ~/.cache/deliver).",
        ),
        click.option("--no-cache", is_flag=True, help="Read every byte again (ignore the digest cache)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _options(kw: dict[str, Any]) -> BuildOptions:
    return BuildOptions(
        source_dir=kw["source_dir"],
        hf_cache=kw["hf_cache"],
        offline=kw["offline"],
        token_file=kw["hf_token_file"],
        cache_dir=kw["cache_dir"],
        use_digest_cache=not kw["no_cache"],
    )


def _summary(image: BuiltImage) -> dict[str, Any]:
    return {
        "name": image.spec.name,
        "digest": image.digest,
        "mediaType": image.media_type,
        "source": {
            "repo": image.spec.source.repo,
            "revision": image.spec.source.revision,
            "from": image.source.kind,
            "verified": image.source.verified,
        },
        "files": len(image.source.files),
        "bytes": image.source.total_size,
        "layers": [{"digest": layer.digest, "size": layer.tar.size} for layer in image.layers],
    }


def _modelcar() -> None:
    """Modelcar images: Hugging Face weights at a pinned commit -> digest-pinned KServe images."""


modelcar_group: click.Group = click.group("modelcar")(_modelcar)


@modelcar_group.command("build")
@click.argument("name")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="OCI layout directory to write (default: out/modelcars/NAME); replaced atomically.",
)
@source_options
@json_option
@click.pass_context
def build_cmd(ctx: click.Context, /, name: str, output: Path | None, as_json: bool, **kw: Any) -> None:
    """Build modelcar NAME into an OCI image layout and update modelcars/NAME.lock.yaml."""
    repo = resolved_repo(ctx)
    with console.ProgressReporter(quiet=as_json) as reporter:
        result = build_layout(repo, name, output, _options(kw), reporter)
    if as_json:
        console.print_json({"ok": True, **_summary(result.image), "output": str(result.output)})
    else:
        click.echo(f"{result.image.digest}  {result.output}")
        click.echo(f"lock {'written' if result.lock_written else 'unchanged'}: modelcars/{name}.lock.yaml")


@modelcar_group.command("publish")
@click.argument("name")
@click.option("--env", "env", required=True, metavar="ENV", help="Push to this environment's registry.")
@click.option("--username", help="Registry user (default: docker config / gcloud / anonymous).")
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File with the registry password (default: $DELIVER_REGISTRY_PASSWORD).",
)
@click.option(
    "--parallel",
    type=click.IntRange(1, 32),
    default=4,
    show_default=True,
    help="Blobs uploaded at once (each layer starts as soon as it is hashed).",
)
@click.option(
    "--allow-unverified-source",
    is_flag=True,
    help="Publish a --source directory that cannot be checked against the hub's listing of the "
    "pinned revision (no listing in the HF cache); the image, lock and release say it is unverified.",
)
@source_options
@json_option
@click.pass_context
def publish_cmd(
    ctx: click.Context,
    /,
    name: str,
    env: str,
    username: str | None,
    password_file: Path | None,
    parallel: int,
    allow_unverified_source: bool,
    as_json: bool,
    **kw: Any,
) -> None:
    """Build modelcar NAME and push it to ENV's registry; prints the oci://...@sha256 reference."""
    repo = resolved_repo(ctx)
    password, origin = registry_password(username, password_file, "modelcar publish")
    with console.ProgressReporter(quiet=as_json) as reporter:
        result = publish(
            repo,
            name,
            env,
            _options(kw),
            reporter,
            username=username,
            password=password,
            password_origin=origin,
            parallel=parallel,
            allow_unverified_source=allow_unverified_source,
        )
    if as_json:
        console.print_json(
            {
                "ok": True,
                **_summary(result.image),
                "env": env,
                "uri": result.uri,
                "bytesSent": result.bytes_sent,
                "blobs": result.blobs,
                "ledgerId": result.ledger_id,
            }
        )
    else:
        click.echo(result.uri)


@modelcar_group.command("verify")
@click.argument("name")
@source_options
@json_option
@click.pass_context
def verify_cmd(ctx: click.Context, /, name: str, as_json: bool, **kw: Any) -> None:
    """Rebuild modelcar NAME from its source (every byte read again); fail if the digest changed."""
    repo = resolved_repo(ctx)
    kw["no_cache"] = True
    with console.ProgressReporter(quiet=as_json) as reporter:
        result = verify(repo, name, _options(kw), reporter)
    if as_json:
        console.print_json({"ok": True, **_summary(result.image), "expected": result.expected})
    else:
        click.echo(f"ok  {name}  {result.image.digest}")


@modelcar_group.command("busybox-base")
@click.option(
    "--busybox",
    "binaries",
    type=click.Path(dir_okay=False, path_type=Path),
    multiple=True,
    help="A static busybox binary (Debian: busybox-static); one per --platform, in the same order "
    "[default: /bin/busybox].",
)
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option(
    "--platform",
    "platforms",
    multiple=True,
    type=click.Choice(["linux/amd64", "linux/arm64"]),
    help="Platform of the matching --busybox; several give a multi-arch index [default: linux/amd64].",
)
@json_option
@click.pass_context
def busybox_base_cmd(
    ctx: click.Context, binaries: tuple[Path, ...], output: Path, platforms: tuple[str, ...], as_json: bool
) -> None:
    """Write a minimal busybox base image (OCI layout) for air-gapped builds; prints the spec ref.

    The ref is repo-relative when the layout is inside the repo (write it under the repo, e.g.
    --output bases/busybox, so specs and locks mean the same on every machine)."""
    platforms = platforms or ("linux/amd64",)
    binaries = binaries or (Path("/bin/busybox"),)
    if len(binaries) != len(platforms) or len(set(platforms)) != len(platforms):
        raise UsageError(
            f"{len(platforms)} distinct --platform value(s) need as many --busybox binaries, "
            f"got {len(binaries)} for {', '.join(platforms)}",
            where="busybox-base",
            fix="pass --platform P --busybox PATH once per platform",
        )
    base = build_busybox_index(dict(zip(platforms, binaries, strict=True)), output.resolve())
    try:
        repo: Path | None = resolved_repo(ctx)
    except UsageError:
        repo = None  # outside a platform repo: only this machine's path can name it
    ref = base.spec_ref_in(repo)
    if ref == base.spec_ref:
        click.echo(
            f"note: {output} is outside the platform repo, so this base: reference only works on this "
            "machine; write the layout under the repo for a reference every clone can use",
            err=True,
        )
    if as_json:
        console.print_json({"ok": True, "ref": ref, "index": base.index_digest, "manifests": base.manifests})
    else:
        click.echo(ref)
