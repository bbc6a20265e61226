"""Substrate containers: the toolbox plus the tofu binary from the official minimal image.

Here providers and the GCS backend are reachable, so `deliver plan` runs the full init / fmt /
policy / plan / show on the real GKE roots; `deliver apply` applies only the plan directory that
`tofu-plan` returned (the CLI checks its binding, sha256 and the delete gate).
"""

from __future__ import annotations

import time

import dagger
from dagger import dag

from . import images
from .toolbox import deliver, toolbox

TOFU_PATH = "/usr/local/bin/tofu"  # where the minimal image keeps the binary
PLUGIN_CACHE = "/root/.cache/llm-platform/tofu-plugins"
CREDENTIALS_PATH = "/run/secrets/gcp-credentials.json"
PLAN_DIR = "/plan"


def tofu_toolbox(source: dagger.Directory, credentials: dagger.Secret | None) -> dagger.Container:
    """Toolbox + tofu (copied from the pinned minimal image) + provider cache + GCP credentials."""
    tofu = dag.container().from_(images.OPENTOFU).file(TOFU_PATH)
    ctr = (
        toolbox(source)
        .with_file(TOFU_PATH, tofu, permissions=0o755)
        .with_mounted_cache(PLUGIN_CACHE, dag.cache_volume("llm-platform-tofu-plugins"))
        .with_env_variable("TF_PLUGIN_CACHE_DIR", PLUGIN_CACHE)
        .with_env_variable("DELIVER_TOFU", TOFU_PATH)
    )
    if credentials is None:
        return ctr
    return ctr.with_mounted_secret(CREDENTIALS_PATH, credentials).with_env_variable(
        "GOOGLE_APPLICATION_CREDENTIALS", CREDENTIALS_PATH
    )


def check(source: dagger.Directory, env: str) -> dagger.Container:
    """`deliver substrate-check [--env ENV] --json`: offline policy + fmt, no credentials needed."""
    args = ["substrate-check", "--json"] + (["--env", env] if env else [])
    return deliver(tofu_toolbox(source, None), *args)


def _fresh(ctr: dagger.Container) -> dagger.Container:
    """Bust the engine's cache: plan and apply talk to live cloud state, never replay them."""
    return ctr.with_env_variable("DELIVER_RUN_ID", str(time.time_ns()))


def plan(
    source: dagger.Directory,
    env: str,
    credentials: dagger.Secret | None,
    *,
    destroy: bool = False,
    destroy_secrets: bool = False,
    offline: bool = False,
) -> dagger.Directory:
    """`deliver plan --env ENV [--destroy [--destroy-secrets]] [--offline]`: the directory with
    plan.tfplan, plan.json (summary) and inputs. ``--offline`` needs no credentials (and mounts none)."""
    flags = (["--destroy"] if destroy else []) + (["--destroy-secrets"] if destroy_secrets else [])
    flags += ["--offline"] if offline else []
    ctr = _fresh(tofu_toolbox(source, None if offline else credentials))
    return deliver(ctr, "plan", "--env", env, "--out", PLAN_DIR, *flags).directory(PLAN_DIR)


def apply(
    source: dagger.Directory,
    env: str,
    plan_dir: dagger.Directory,
    credentials: dagger.Secret,
    approve_delete: list[str],
    *,
    approve_all_deletes: bool = False,
) -> dagger.Container:
    """`deliver apply --env ENV --plan PLAN_DIR/plan.tfplan [--approve-delete ADDRESS ...]
    [--approve-all-deletes] --json` (the CLI allows the last for a destroy plan only)."""
    approvals = [arg for address in approve_delete for arg in ("--approve-delete", address)]
    approvals += ["--approve-all-deletes"] if approve_all_deletes else []
    ctr = _fresh(tofu_toolbox(source, credentials).with_directory(PLAN_DIR, plan_dir))
    return deliver(ctr, "apply", "--env", env, "--plan", f"{PLAN_DIR}/plan.tfplan", *approvals, "--json")
