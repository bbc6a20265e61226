"""Modelcar containers: the toolbox with the HF cache and the deliver cache as cache volumes.

Weights are downloaded inside the engine into a cache volume (never part of a layer), so a second
build of the same revision downloads nothing; the digest cache and pulled base blobs live in a
second volume. The HF token and the registry password enter only as secrets (environment
variables the CLI reads: HF_TOKEN, DELIVER_REGISTRY_PASSWORD), never as arguments.

A publish also writes the entry env's release and a ledger entry whose actor is git's ``user.name``
(``delivery.release.entry.record``), so it runs in the promotion functions' toolbox with git and the
author configured for the container (``promotion.git_toolbox``), over the repo without ``.git``.
"""

from __future__ import annotations

import time

import dagger
from dagger import dag

from . import promotion
from .toolbox import changes, deliver, toolbox

HF_HOME = "/root/.cache/huggingface"
DELIVER_CACHE = "/root/.cache/deliver"
LAYOUT_DIR = "/out/layout"


def modelcar_toolbox(source: dagger.Directory, hf_token: dagger.Secret | None) -> dagger.Container:
    """Toolbox + HF cache volume + deliver cache volume (+ the HF token as a secret variable)."""
    return with_caches(toolbox(source), hf_token)


def with_caches(ctr: dagger.Container, hf_token: dagger.Secret | None) -> dagger.Container:
    """``ctr`` + HF cache volume + deliver cache volume (+ the HF token as a secret variable)."""
    ctr = (
        ctr.with_mounted_cache(HF_HOME, dag.cache_volume("llm-platform-hf-cache"))
        .with_env_variable("HF_HOME", HF_HOME)
        .with_env_variable("HF_HUB_DISABLE_TELEMETRY", "1")
        .with_mounted_cache(DELIVER_CACHE, dag.cache_volume("llm-platform-deliver-cache"))
        .with_env_variable("DELIVER_CACHE_DIR", DELIVER_CACHE)
    )
    if hf_token is not None:
        ctr = ctr.with_secret_variable("HF_TOKEN", hf_token)
    return ctr


def built(source: dagger.Directory, name: str, hf_token: dagger.Secret | None) -> dagger.Container:
    """`deliver modelcar build NAME`: the container holding the layout and the repo with the new lock.

    ``build`` and ``lock`` read from this same pipeline, so the engine runs the build once for both.
    """
    ctr = modelcar_toolbox(source, hf_token)
    return deliver(ctr, "modelcar", "build", name, "--output", LAYOUT_DIR, "--json")


def build(source: dagger.Directory, name: str, hf_token: dagger.Secret | None) -> dagger.Directory:
    """The OCI image layout directory of ``deliver modelcar build NAME``."""
    return built(source, name, hf_token).directory(LAYOUT_DIR)


def lock(source: dagger.Directory, name: str, hf_token: dagger.Secret | None) -> dagger.Changeset:
    """What ``deliver modelcar build NAME`` changed in the repo: modelcars/NAME.lock.yaml."""
    return changes(source, built(source, name, hf_token))


def publish(
    source: dagger.Directory,
    name: str,
    env: str,
    hf_token: dagger.Secret | None,
    username: str,
    password: dagger.Secret | None,
    *,
    author_name: str,
    author_email: str,
) -> dagger.Container:
    """`deliver modelcar publish NAME --env ENV --json` (never replayed from the engine's cache).

    Run with git and ``user.name``/``user.email`` set for the container: the CLI records the ledger
    entry's actor from them (without git it would push the image, then fail to record it).
    """
    ctr = promotion.git_toolbox(source, author_name=author_name, author_email=author_email)
    ctr = with_caches(ctr, hf_token).with_env_variable("DELIVER_RUN_ID", str(time.time_ns()))
    if password is not None:
        ctr = ctr.with_secret_variable("DELIVER_REGISTRY_PASSWORD", password)
    args = ["modelcar", "publish", name, "--env", env, "--json"]
    if username:
        args += ["--username", username]
    return deliver(ctr, *args)
