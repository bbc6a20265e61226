"""New artifacts enter the pipeline only through an entry environment (one without ``promotion.from``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from delivery.config import EnvConfig, load_env
from delivery.core import git
from delivery.core.errors import UsageError
from delivery.release.ledger import Change, Entry, append, new_id
from delivery.release.model import Artifact, Release, read_release, write_release


def entry_env(repo: Path, cfg: EnvConfig) -> str:
    """The entry environment upstream of ``cfg`` (``cfg`` itself when it has no ``promotion.from``)."""
    seen = {cfg.name}
    current = cfg
    while current.promotion.source is not None:
        current = load_env(repo, current.promotion.source)
        if current.name in seen:
            break  # a loop is config check's finding; stop here
        seen.add(current.name)
    return current.name


def require_entry(repo: Path, cfg: EnvConfig, command: str) -> None:
    """Refuse to put a new artifact straight into an environment that takes artifacts by promotion.

    ``command`` is what the user ran, without ``--env`` (e.g. ``deliver modelcar publish NAME``).
    """
    if cfg.promotion.source is None:
        return
    entry = entry_env(repo, cfg)
    raise UsageError(
        f"environment {cfg.name!r} takes artifacts only by promotion from {cfg.promotion.source!r}",
        where=str(cfg.path),
        fix=f"run `{command} --env {entry}`, then `deliver promote --to ENV` for each environment from "
        f"{entry} down to {cfg.name}",
    )


def record(
    repo: Path, env: str, name: str, artifact: Artifact, *, kind: str = "publish", now: datetime | None = None
) -> Entry | None:
    """Put ``artifact`` into ``env``'s release and append the ledger entry; None when it was already there."""
    release = read_release(repo, env) or Release(env=env)
    old = release.artifacts.get(name)
    if old == artifact:
        return None
    when = now or datetime.now(UTC)
    entry = Entry(
        id=new_id(env, when),
        time=when,
        actor=git.author(repo),
        kind=kind,
        env=env,
        artifacts={name: Change(old.ref if old else None, artifact.ref)},
    )
    write_release(repo, release.with_artifacts({name: artifact}))
    append(repo, [entry])
    return entry
