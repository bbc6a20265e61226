"""Scratch copies of a root: where offline runs and runs with a provider mirror happen.

Such a run never writes into the tree: its ``.terraform/``, its lock file, its state and the
offline backend override all live in a temporary copy of the root and of the local modules it
calls (same layout relative to the repo, so ``source = "../../modules/gke"`` still resolves), and
go away with it.

An *offline* run plans against an empty local state (``backend_override.tf``), with
``-refresh=false``, a dummy access token and no way out: the credentials in the environment are
dropped, and HTTP(S) goes to a closed loopback port. The google provider calls no API for a
create-only plan, so the plan is real (the provider's own schema and validation) but shows only what
a first apply would create, and can never be applied.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from delivery.core.errors import UsageError
from delivery.substrate.hcl import Module

LOCK_FILE = ".terraform.lock.hcl"
OVERRIDE_FILE = "backend_override.tf"
LOCAL_BACKEND = 'terraform {\n  backend "local" {\n    path = "terraform.tfstate"\n  }\n}\n'
# Never copied into a scratch root: what init, plan and apply write there.
_LEFT_OUT = (".terraform", "terraform.tfstate", "terraform.tfstate.backup", ".terraform.tfstate.lock.info")
_CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens, a request fails at once
OFFLINE_ENV = {
    "GOOGLE_OAUTH_ACCESS_TOKEN": "dummy",
    "HTTPS_PROXY": _CLOSED,
    "HTTP_PROXY": _CLOSED,
    "https_proxy": _CLOSED,
    "http_proxy": _CLOSED,
}
OFFLINE_DROP = (
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CREDENTIALS",
    "GOOGLE_CLOUD_KEYFILE_JSON",
    "GCLOUD_KEYFILE_JSON",
    "GOOGLE_IMPERSONATE_SERVICE_ACCOUNT",
    "GOOGLE_BACKEND_CREDENTIALS",
    "NO_PROXY",
    "no_proxy",
)


def _inside(repo: Path, path: Path) -> Path:
    repo = repo.resolve()
    if not path.resolve().is_relative_to(repo):
        raise UsageError(
            "a local module outside the repository cannot be copied into a scratch directory",
            where=str(path),
            fix="keep the root's local modules under tofu/ (or use a registry/git module source)",
        )
    return path.resolve().relative_to(repo)


@contextlib.contextmanager
def scratch_root(repo: Path, root: Module, *, keep_lock: bool, offline: bool) -> Iterator[Path]:
    """A temporary copy of ``root`` and its local modules; yields the copied root's directory.

    ``keep_lock`` copies the root's committed ``.terraform.lock.hcl`` (never with a mirror of local
    builds, whose hashes cannot match it); ``offline`` adds the local backend override.
    """
    with tempfile.TemporaryDirectory(prefix="deliver-tofu-") as tmp:
        base = Path(tmp)
        ignore = shutil.ignore_patterns(*_LEFT_OUT, LOCK_FILE)
        for module in root.walk():
            shutil.copytree(module.path, base / _inside(repo, module.path), ignore=ignore, dirs_exist_ok=True)
        copied = base / _inside(repo, root.path)
        if keep_lock and (root.path / LOCK_FILE).is_file():
            shutil.copy2(root.path / LOCK_FILE, copied / LOCK_FILE)
        if offline:
            (copied / OVERRIDE_FILE).write_text(LOCAL_BACKEND, encoding="utf-8")
        yield copied


def module_dir(scratch: Path, repo: Path, root: Module, module: Module) -> Path:
    """Where ``module`` (one of ``root.walk()``) sits in the scratch copy made from ``root``."""
    base = scratch
    for _ in _inside(repo, root.path).parts:
        base = base.parent
    return base / _inside(repo, module.path)
