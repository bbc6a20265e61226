"""The toolbox container: a pinned Python base with the project installed, running the same CLI."""

from __future__ import annotations

import dagger
from dagger import dag

from . import images

# Paths never sent to the engine with the repo (caches, venvs, build output).
SOURCE_IGNORE = [
    ".git",
    ".venv",
    "**/__pycache__",
    ".cache",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    "bench/out",
    "out",
    "ci/dagger/sdk",
    "**/.terraform",
]

WORKDIR = "/repo"


def toolbox(source: dagger.Directory) -> dagger.Container:
    """Python base (pinned) + the project installed from ``source``; workdir is the repo."""
    return (
        dag.container()
        .from_(images.PYTHON)
        .with_env_variable("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .with_env_variable("PYTHONDONTWRITEBYTECODE", "1")
        .with_mounted_cache("/root/.cache/pip", dag.cache_volume("llm-platform-pip"))
        .with_directory(WORKDIR, source)
        .with_workdir(WORKDIR)
        .with_exec(["pip", "install", "--quiet", "."])
    )


def deliver(ctr: dagger.Container, *args: str) -> dagger.Container:
    """Run ``deliver ARGS`` in the toolbox, against the mounted repo."""
    return ctr.with_exec(["deliver", "--repo", WORKDIR, *args])
