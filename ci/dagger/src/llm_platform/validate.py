"""Validation containers: the toolbox plus kubeconform (copied from its digest-pinned image) and
the hermetic schema bundle, running the same `deliver schemas` / `deliver validate` as everywhere.

Schemas come, in order of preference, from a prebuilt bundle directory (`deliver schemas --output`
or the `schemas` function), from a hermetic copy of the pinned upstream files (built offline, as
the tests do), or are built in the container from the pinned URLs (each file checked against its
sha256) into a cache volume keyed by the bundle's content address.
"""

from __future__ import annotations

import dagger
from dagger import dag

from . import images
from .toolbox import WORKDIR, deliver, toolbox

KUBECONFORM_PATH = "/usr/local/bin/kubeconform"
KUBECONFORM_IN_IMAGE = "/kubeconform"  # where the upstream image keeps the binary
BUNDLE_DIR = "/schemas/bundle"
SOURCES_DIR = "/schemas/sources"
SCHEMA_CACHE = "/root/.cache/llm-platform/schemas"
OUT_DIR = "/out"

# `sh -c REPORT_SCRIPT OUT_DIR deliver …`: findings make deliver exit 1 but still write both reports;
# any other exit (2: a usage or tool error, e.g. no kubeconform) or an empty report fails the function.
REPORT_SCRIPT = 'mkdir -p "$0"; "$@" > "$0/report.json"; rc=$?; [ "$rc" -le 1 ] && test -s "$0/report.json"'


def validate_toolbox(source: dagger.Directory, sources: dagger.Directory | None = None) -> dagger.Container:
    """Toolbox + kubeconform + a schema cache volume (+ the hermetic upstream copy, if given)."""
    kubeconform = dag.container().from_(images.KUBECONFORM).file(KUBECONFORM_IN_IMAGE)
    ctr = (
        toolbox(source)
        .with_file(KUBECONFORM_PATH, kubeconform, permissions=0o755)
        .with_env_variable("KUBECONFORM", KUBECONFORM_PATH)
        .with_mounted_cache(SCHEMA_CACHE, dag.cache_volume("llm-platform-schemas"))
        .with_env_variable("DELIVER_SCHEMA_CACHE", SCHEMA_CACHE)
    )
    if sources is not None:
        ctr = ctr.with_directory(SOURCES_DIR, sources).with_env_variable("DELIVER_KUBE_SCHEMAS", SOURCES_DIR)
    return ctr


def _schema_args(sources: dagger.Directory | None) -> list[str]:
    return ["--offline"] if sources is not None else []


def bundle(source: dagger.Directory, env: str, sources: dagger.Directory | None) -> dagger.Directory:
    """`deliver schemas [--env ENV] --output DIR`: the schema bundle as a directory."""
    args = ["schemas", *(["--env", env] if env else []), *_schema_args(sources), "--output", OUT_DIR]
    return deliver(validate_toolbox(source, sources), *args).directory(OUT_DIR)


def _validate_args(env: str, schemas: dagger.Directory | None, sources: dagger.Directory | None) -> list[str]:
    args = ["validate", *(["--env", env] if env else [])]
    if schemas is not None:
        return [*args, "--schemas", BUNDLE_DIR]
    return [*args, *_schema_args(sources)]


def _validating(
    source: dagger.Directory, schemas: dagger.Directory | None, sources: dagger.Directory | None
) -> dagger.Container:
    ctr = validate_toolbox(source, sources)
    return ctr.with_directory(BUNDLE_DIR, schemas) if schemas is not None else ctr


def run(
    source: dagger.Directory,
    env: str,
    schemas: dagger.Directory | None,
    sources: dagger.Directory | None,
) -> dagger.Container:
    """`deliver validate [--env ENV] --json`: fails (non-zero exit) on any finding."""
    ctr = _validating(source, schemas, sources)
    return deliver(ctr, *_validate_args(env, schemas, sources), "--json")


def report(
    source: dagger.Directory,
    env: str,
    schemas: dagger.Directory | None,
    sources: dagger.Directory | None,
) -> dagger.Directory:
    """report.json and junit.xml of `deliver validate`, written whether or not it passes."""
    ctr = _validating(source, schemas, sources)
    args = [*_validate_args(env, schemas, sources), "--json", "--junit", f"{OUT_DIR}/junit.xml"]
    return ctr.with_exec(["sh", "-c", REPORT_SCRIPT, OUT_DIR, "deliver", "--repo", WORKDIR, *args]).directory(
        OUT_DIR
    )
