"""The demo's promotion: the embedded model moves dev -> staging between two loopback registries.

Everything happens in the demo's scratch repo (a git repo of its own, with a bare remote under
``--output``), never in the platform repo. Two things differ from a real platform repo, and the demo
says so in its output:

- staging's ``promotion.soak`` (24h in the repo) is set to ``0s`` in the scratch config: the demo
  promotes what it has just published, and it does not fake the clock to do so;
- only the embedded model is promoted (``only=[model]``): the images pinned in clusters/pins.yaml
  (vllm, vllm-cpu) live on docker.io, which the demo does not need and may not reach.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from delivery.core import git, yamlio
from delivery.core.console import ProgressReporter
from delivery.core.errors import DeliveryError
from delivery.core.fsutil import REPO_DATA_DIRS, atomic_write_text
from delivery.oci import ImageRef, RegistryClient
from delivery.oci.auth import ANONYMOUS, Credentials
from delivery.promotion.promote import Outcome, promote
from delivery.promotion.report import Cell, status

DEMO_NAME = "deliver demo"
DEMO_EMAIL = "demo@deliver.invalid"
UPSTREAM, TARGET = "dev", "staging"
# what the scratch repo holds: what the promotion reads, renders, validates and commits
SCRATCH_FILES = ("pyproject.toml", ".gitattributes")
SCRATCH_IGNORE = ".cache/\n.terraform/\n*.tfplan\n"
NOTES = (
    f"{TARGET}'s promotion.soak is set to 0s in the scratch repo's config (the repo says 24h): "
    "the demo promotes what it has just published and does not fake the clock",
    "only the embedded model is promoted (--only): the images pinned in clusters/pins.yaml "
    "(vllm, vllm-cpu) are on docker.io, which the demo does not use",
)


def copy_repo_data(repo: Path, scratch: Path) -> None:
    """The platform repo's data (what promotion reads and writes) into a fresh ``scratch``."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    for name in SCRATCH_FILES:
        if (repo / name).is_file():
            shutil.copy2(repo / name, scratch / name)
    ignore = shutil.ignore_patterns(".terraform", "*.tfplan", ".*.tmp", ".*.old-*")
    for name in REPO_DATA_DIRS:
        if (repo / name).is_dir():
            shutil.copytree(repo / name, scratch / name, symlinks=True, ignore=ignore)
    atomic_write_text(scratch / ".gitignore", SCRATCH_IGNORE)


def point_scratch(scratch: Path, dev_registry: str, staging_registry: str) -> None:
    """dev on registry A, staging on registry B, staging's soak 0s (see the module docstring)."""
    envs = scratch / "environments"
    yamlio.set_path(envs / UPSTREAM / "config.yaml", ["registry"], f"{dev_registry}/modelcars")
    yamlio.set_path(envs / TARGET / "config.yaml", ["registry"], f"{staging_registry}/modelcars")
    yamlio.set_path(envs / TARGET / "config.yaml", ["promotion", "soak"], "0s")


def init_git(scratch: Path, remote: Path) -> None:
    """Make ``scratch`` a git repo (as the demo identity) with a bare clone of it as ``origin``."""
    git.git(scratch, "init", "-q", "-b", "main")
    for key, value in (("user.name", DEMO_NAME), ("user.email", DEMO_EMAIL), ("commit.gpgsign", "false")):
        git.git(scratch, "config", key, value)
    commit_all(scratch, "Demo: scratch copy of the platform repo's data")
    shutil.rmtree(remote, ignore_errors=True)
    git.git(scratch, "clone", "-q", "--bare", str(scratch), str(remote))
    git.git(scratch, "remote", "add", "origin", str(remote))


def commit_all(scratch: Path, message: str) -> str:
    git.git(scratch, "add", "-A")
    git.git(scratch, "commit", "-q", "-m", message)
    return git.head(scratch)


def _anonymous(_host: str) -> Credentials:
    return ANONYMOUS  # both registries are throwaway loopback registries without auth


@dataclass
class Promoted:
    """What the demo's promotion did and what it read back."""

    outcome: Outcome
    uri: str  # oci:// of the model in the staging registry
    remote_head: str
    cells: list[Cell]

    def status_dicts(self) -> list[dict[str, Any]]:
        return [c.as_dict() for c in self.cells]


def promote_model(
    scratch: Path, remote: Path, model: str, digest: str, reporter: ProgressReporter
) -> Promoted:
    """Promote ``model`` dev -> staging (commit + push), then check registry B, the remote and status."""
    for note in NOTES:
        reporter.line("note: " + note)
    outcome = promote(
        scratch,
        TARGET,
        now=datetime.now(UTC),
        credentials_for=_anonymous,
        only=[model],
        do_push=True,
        reporter=reporter,
    )
    change = outcome.changes.get(model)
    if outcome.commit is None or change is None:
        raise DeliveryError(
            f"the promotion into {TARGET} changed nothing",
            where=str(scratch),
            fix="this is a bug: the scratch repo's staging has no release before the demo promotes",
        )
    ref = ImageRef.parse(change.new)
    with RegistryClient(ref.registry, ANONYMOUS) as client:
        manifest = client.get_manifest(ref.repository, ref.digest or "")
    if manifest.digest != digest:
        raise DeliveryError(
            f"the {TARGET} registry serves {manifest.digest}, dev has {digest}",
            where=ref.oci_uri,
            fix="this is a bug: promotion must preserve the digest",
        )
    remote_head = git.out(remote, "rev-parse", "refs/heads/main")
    if remote_head != outcome.commit.commit:
        raise DeliveryError(
            f"the bare remote's main is {remote_head[:12]}, the promotion committed "
            f"{outcome.commit.commit[:12]}",
            where=str(remote),
            fix="this is a bug: the promotion was pushed with do_push",
        )
    reporter.line(
        f"promoted {model} {UPSTREAM} -> {TARGET}: {ref.oci_uri} (same digest), commit "
        f"{outcome.commit.commit[:12]} (ledger {outcome.ledger_id}) pushed to {remote}"
    )
    return Promoted(outcome, ref.oci_uri, remote_head, status(scratch, datetime.now(UTC)))
