"""Where the platform repo is, and the well-known places inside it."""

from __future__ import annotations

import os
from pathlib import Path

from delivery.core.errors import UsageError

REPO_ENV_VAR = "DELIVER_REPO"


def find_repo_root(start: Path | None = None) -> Path:
    """The platform repo root: ``$DELIVER_REPO``, else the nearest parent holding environments/."""
    override = os.environ.get(REPO_ENV_VAR)
    if override:
        root = Path(override).resolve()
        if not (root / "environments").is_dir():
            raise UsageError(
                f"{REPO_ENV_VAR}={override} has no environments/ directory",
                fix=f"point {REPO_ENV_VAR} (or --repo) at the platform repo root",
            )
        return root
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "environments").is_dir() and (candidate / "pyproject.toml").is_file():
            return candidate
    raise UsageError(
        f"no platform repo found at or above {here}",
        fix="run inside the repo, or pass --repo PATH (or set DELIVER_REPO)",
    )


def environments_dir(repo: Path) -> Path:
    return repo / "environments"


def env_config_path(repo: Path, env: str) -> Path:
    return environments_dir(repo) / env / "config.yaml"


def layers_dir(repo: Path, env: str) -> Path:
    return repo / "clusters" / env / "layers"


def modelcars_dir(repo: Path) -> Path:
    return repo / "modelcars"


def inside_repo(repo: Path, path: Path) -> Path:
    """``path`` resolved, refusing one that leaves the repo (the repo's one rule for symlinks).

    A symlink whose target stays inside the repo is followed; one that resolves outside it (a
    config, spec, release, ledger or manifest that is really some other file) is a UsageError
    naming both, so nothing outside the checkout is ever read as if it were part of it.
    """
    root = repo.resolve()
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        try:
            shown = path.relative_to(repo)
        except ValueError:
            shown = path
        raise UsageError(
            f"{shown} resolves to {resolved}, outside the repo",
            where=str(shown),
            fix="replace the symlink with the file itself (symlinks may point only inside the repo)",
        )
    return resolved


def refuse_symlinked_dir(repo: Path, path: Path) -> None:
    """A directory the pipeline replaces whole (e.g. clusters/<env>/layers) must not be a symlink."""
    if path.is_symlink():
        shown = path.relative_to(repo) if path.is_relative_to(repo) else path
        raise UsageError(
            f"{shown} is a symlink; it is generated and replaced whole, so it must be a real directory",
            where=str(shown),
            fix=f"remove the symlink (rm {shown}) and render again",
        )
