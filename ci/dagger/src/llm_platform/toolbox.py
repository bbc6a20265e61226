"""The toolbox container: the pinned Python base, the root lock's dependencies and the project, then
the repo mounted to run the same `deliver` CLI the tests run.

Layers, each keyed only on its own inputs (so a README or `ci/delivery` edit reuses the dependencies):

1. uv, pip-installed at the exact version the root pyproject requires, ``--require-hashes``;
2. the dependencies: ``uv sync --frozen --no-dev --no-install-project`` over ``pyproject.toml`` and
   ``uv.lock`` only (the ``dev`` extra and every dependency group stay out);
3. the project: ``README.md`` (hatchling reads ``readme`` to build it) and ``ci/delivery``, then
   ``uv sync --frozen --no-dev --no-editable`` (installs only the project: the rest is there);
4. the whole repo, mounted at ``/repo`` for running commands (never an install input).
"""

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

# uv, exactly the version the root pyproject requires ([tool.uv] required-version: any other uv refuses
# to run there). No uv image digest is known to us, so the PyPI wheels are pinned by sha256 instead:
# Linux x86_64 (manylinux_2_17) and aarch64 (manylinux_2_17 and manylinux_2_28), the platforms of
# images.PYTHON; pip keeps only the candidates whose hash is listed.
UV_VERSION = "0.13.9"
UV_WHEEL_SHA256 = (
    "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19",
    "5435c5ce14a56431208ca0996416d310f1598e8c2c8ba707688985a16bb82dbe",
    "ecb6028d79dc96fbeafffe5c8af62a7099487ebc05a701e76714eebcffd06375",
)
UV_REQUIREMENTS = "/tmp/uv-requirements.txt"
UV_INSTALL = ("pip", "install", "--no-cache-dir", "--no-deps", "--only-binary=:all:", "--require-hashes")

# The allow-list: the only repo paths the install layers see.
DEPENDENCY_FILES = ("pyproject.toml", "uv.lock")
PROJECT_FILES = ("README.md",)
PROJECT_DIRS = ("ci/delivery",)
UV_SYNC = ("uv", "sync", "--frozen", "--no-dev")

PROJECT_DIR = "/opt/llm-platform"  # the allow-listed copy the project is installed from
VENV = "/opt/venv"
UV_CACHE = "/root/.cache/uv"
PYTHON = "/usr/local/bin/python3"  # the base image's interpreter (uv never downloads one)
WORKDIR = "/repo"


def uv_requirements() -> str:
    """A pip requirements file pinning uv by version and wheel sha256."""
    hashes = " ".join(f"--hash=sha256:{digest}" for digest in UV_WHEEL_SHA256)
    return f"uv=={UV_VERSION} {hashes}\n"


def with_uv(ctr: dagger.Container) -> dagger.Container:
    """Install uv (exact version, hash-checked wheel) and point it at the venv and the base's Python."""
    return (
        ctr.with_env_variable("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .with_env_variable("PIP_ROOT_USER_ACTION", "ignore")
        .with_new_file(UV_REQUIREMENTS, uv_requirements())
        .with_exec([*UV_INSTALL, "-r", UV_REQUIREMENTS])
        .with_env_variable("UV_PROJECT_ENVIRONMENT", VENV)
        .with_env_variable("UV_PYTHON", PYTHON)
        .with_env_variable("UV_PYTHON_DOWNLOADS", "never")
        .with_env_variable("UV_COMPILE_BYTECODE", "1")
        .with_env_variable("UV_LINK_MODE", "copy")  # the cache is another mount: no hard links
        .with_env_variable("UV_CACHE_DIR", UV_CACHE)
        .with_mounted_cache(UV_CACHE, dag.cache_volume("llm-platform-uv"))
    )


def installed(source: dagger.Directory) -> dagger.Container:
    """The base + uv + the locked dependencies + the project, from the allow-listed paths only."""
    ctr = with_uv(dag.container().from_(images.PYTHON)).with_workdir(PROJECT_DIR)
    for path in DEPENDENCY_FILES:
        ctr = ctr.with_file(f"{PROJECT_DIR}/{path}", source.file(path))
    ctr = ctr.with_exec([*UV_SYNC, "--no-install-project"])
    for path in PROJECT_FILES:
        ctr = ctr.with_file(f"{PROJECT_DIR}/{path}", source.file(path))
    for path in PROJECT_DIRS:
        ctr = ctr.with_directory(f"{PROJECT_DIR}/{path}", source.directory(path))
    return (
        ctr.with_exec([*UV_SYNC, "--no-editable"])
        .with_env_variable("VIRTUAL_ENV", VENV)
        .with_env_variable("PATH", f"{VENV}/bin:${{PATH}}", expand=True)
    )


def mounted(ctr: dagger.Container, source: dagger.Directory) -> dagger.Container:
    """``ctr`` with the whole repo mounted at ``/repo`` (the workdir), to run commands against it."""
    return (
        ctr.with_env_variable("PYTHONDONTWRITEBYTECODE", "1")  # no __pycache__ in the repo's changesets
        .with_mounted_directory(WORKDIR, source)
        .with_workdir(WORKDIR)
    )


def toolbox(source: dagger.Directory) -> dagger.Container:
    """The installed toolbox with the whole repo mounted at ``/repo`` (the workdir)."""
    return mounted(installed(source), source)


def deliver(ctr: dagger.Container, *args: str) -> dagger.Container:
    """Run ``deliver ARGS`` in the toolbox, against the mounted repo."""
    return ctr.with_exec(["deliver", "--repo", WORKDIR, *args])


def changes(source: dagger.Directory, ctr: dagger.Container) -> dagger.Changeset:
    """What the commands run in ``ctr`` changed in the repo, as a changeset against ``source``."""
    return ctr.directory(WORKDIR).changes(source)
