"""``deliver promote``, ``rollback``, ``hold release`` and ``verify-release`` as plain functions.

Each one reads git, decides through the gates (pure), changes registries only by adding, and
lands as exactly one commit (with its ledger entry) or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from delivery.config import load_env
from delivery.core import git
from delivery.core.console import ProgressReporter
from delivery.core.errors import UsageError
from delivery.promotion.copy import CopyReport
from delivery.promotion.gates import Decision, GateInput, freeze, hold
from delivery.promotion.steps import (
    Commit,
    CredentialsFor,
    Resolved,
    commit,
    copy,
    gate,
    ledger_entry,
    push,
    raise_refused,
    resolve,
    target_artifact,
    update_and_validate,
    write_update,
)
from delivery.release import Artifact, Change, Entry, Release, read_ledger, read_release
from delivery.release.ledger import DEPLOYING


@dataclass
class Outcome:
    """What a promotion (or rollback) decided and did."""

    kind: str
    env: str
    upstream: str | None
    decisions: list[Decision]
    changes: dict[str, Change]
    copies: list[CopyReport] = field(default_factory=list)
    commit: Commit | None = None
    ledger_id: str = ""
    pushed: bool = False
    dry_run: bool = False
    review_branch: str = ""

    @property
    def ok(self) -> bool:
        return all(d.passed for d in self.decisions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok or bool(self.review_branch),
            "kind": self.kind,
            "env": self.env,
            "from": self.upstream,
            "dryRun": self.dry_run,
            "gates": [d.as_dict() for d in self.decisions],
            "artifacts": {k: {"old": c.old, "new": c.new} for k, c in sorted(self.changes.items())},
            "copies": [c.as_dict() for c in self.copies],
            "commit": self.commit.commit if self.commit else None,
            "branch": self.commit.branch if self.commit else None,
            "reviewBranch": self.review_branch or None,
            "ledgerId": self.ledger_id or None,
            "pushed": self.pushed,
        }


def _moves(resolved: Resolved) -> dict[str, tuple[Artifact, Artifact]]:
    """Artifact -> (upstream, target) for everything whose digest the target does not run yet."""
    moves = {}
    for name, artifact in resolved.artifacts.items():
        dest = target_artifact(resolved.target, artifact)
        if resolved.current.artifacts.get(name) != dest:
            moves[name] = (artifact, dest)
    return moves


def _short(ref: str) -> str:
    return ref.rpartition("@sha256:")[2][:12]


def _land(
    repo: Path,
    *,
    kind: str,
    env: str,
    release: Release,
    changes: dict[str, Change],
    decisions: Sequence[Decision],
    now: datetime,
    actor: str,
    source: str | None,
    note: str,
    branch: str,
    do_push: bool,
) -> tuple[Commit, Entry, bool]:
    """update -> validate -> commit (-> push) of a new release for ``env``."""
    update = update_and_validate(repo, load_env(repo, env), release)
    entry = ledger_entry(
        repo,
        kind=kind,
        env=env,
        now=now,
        actor=actor,
        changes=changes,
        decisions=decisions,
        source=source,
        note=note,
    )
    paths = write_update(repo, env, update)
    verb = {"promote": f"Promote {source} -> {env}", "rollback": f"Roll back {env}"}[kind]
    subject = f"{verb}: " + ", ".join(f"{k}@{_short(c.new)}" for k, c in sorted(changes.items()))
    trailers = (
        [("Promoted-From", source or env), ("Promoted-To", env)]
        if kind == "promote"
        else [("Rolled-Back", env)]
    )
    trailers += [("Artifact", f"{k}@{c.new.rpartition('@')[2]}") for k, c in sorted(changes.items())]
    trailers.append(("Ledger-Id", entry.id))
    done = commit(repo, paths=paths, entry=entry, subject=subject, trailers=trailers, branch=branch)
    pushed = False
    if do_push:
        push(repo, done.branch)
        pushed = True
    return done, entry, pushed


def promote(
    repo: Path,
    to: str,
    *,
    now: datetime,
    credentials_for: CredentialsFor,
    only: Sequence[str] = (),
    approved_by: str = "",
    break_glass: str = "",
    dry_run: bool = False,
    do_push: bool = False,
    reporter: ProgressReporter | None = None,
) -> Outcome:
    """Promote the upstream env's release into ``to`` as one unit (or the ``only`` artifacts)."""
    resolved = resolve(repo, to, only)  # bad input (unknown env, an entry env, --only) first
    if not dry_run:
        repo = git.top_level(repo)
        git.require_clean(repo, "deliver promote")
    decisions = gate(repo, resolved, now, approved_by=approved_by, break_glass=break_glass)
    moves = _moves(resolved)
    changes = {
        name: Change(
            resolved.current.artifacts[name].ref if name in resolved.current.artifacts else None, dest.ref
        )
        for name, (_src, dest) in moves.items()
    }
    outcome = Outcome("promote", to, resolved.upstream.name, decisions, changes, dry_run=dry_run)
    if dry_run:
        return outcome
    raise_refused(to, decisions)
    if not moves:
        return outcome  # the target already runs exactly this: nothing to copy, write or commit
    outcome.copies = copy(moves, credentials_for, reporter)
    needs_review = any(d.route == "branch" and not d.passed for d in decisions)
    # the review branch is named after the modelcar that moves (else the first artifact by name)
    lead = min(moves, key=lambda n: (moves[n][1].kind != "modelcar", n))
    digest = changes[lead].new
    branch = f"promote/{to}/{_short(digest)}" if needs_review else ""
    release = resolved.current.with_artifacts({name: dest for name, (_src, dest) in moves.items()})
    done, entry, pushed = _land(
        repo,
        kind="promote",
        env=to,
        release=release,
        changes=changes,
        decisions=decisions,
        now=now,
        actor=approved_by or git.author(repo),
        source=resolved.upstream.name,
        note=f"break-glass: {break_glass}" if break_glass else "",
        branch=branch,
        do_push=do_push,
    )
    outcome.commit, outcome.ledger_id, outcome.pushed, outcome.review_branch = done, entry.id, pushed, branch
    return outcome


def release_at(ledger: Sequence[Entry], last: str | None) -> dict[str, str]:
    """The artifacts an env ran right after ledger entry ``last`` (all entries when None)."""
    state: dict[str, str] = {}
    for entry in ledger:
        if entry.kind in DEPLOYING:
            state.update({k: c.new for k, c in entry.artifacts.items()})
        if entry.id == last:
            break
    return state


def rollback(
    repo: Path,
    env: str,
    *,
    now: datetime,
    to: str = "",
    break_glass: str = "",
    do_push: bool = False,
) -> Outcome:
    """Bring back the previous release of ``env`` (or the one right after ledger entry ``to``).

    Freeze windows still apply (``break_glass``), soak does not; afterwards ``env`` is on hold until
    ``deliver hold release``. The references were in the env's registry before, so nothing is copied.
    """
    cfg = load_env(repo, env)
    repo = git.top_level(repo)
    git.require_clean(repo, "deliver rollback")
    ledger = read_ledger(repo, env)
    deploying = [e for e in ledger if e.kind in DEPLOYING]
    if to:
        if to not in {e.id for e in deploying}:
            raise UsageError(
                f"{env}'s ledger has no deploying entry {to!r}",
                fix=f"pick an id from: deliver history --env {env}",
            )
        wanted = release_at(ledger, to)
    else:
        if len(deploying) < 2:
            raise UsageError(
                f"{env} has no previous release to roll back to ({len(deploying)} deploying ledger entries)",
                fix=f"see deliver history --env {env}",
            )
        wanted = release_at(ledger, deploying[-2].id)
    current = read_release(repo, env) or Release(env=env)
    inp = GateInput(
        cfg, cfg.promotion.source or env, {}, (), ledger, now, break_glass=break_glass, rollback=True
    )
    decisions = [freeze(inp)]
    raise_refused(env, decisions)
    changes: dict[str, Change] = {}
    artifacts = dict(current.artifacts)
    for name, ref in sorted(wanted.items()):
        old = current.artifacts.get(name)
        if old is None or old.ref != ref:
            kind = old.kind if old else "modelcar"
            artifacts[name] = Artifact(kind=kind, ref=ref, source=old.source if old else None)
            changes[name] = Change(old.ref if old else None, ref)
    outcome = Outcome("rollback", env, None, decisions, changes)
    if not changes:
        raise UsageError(
            f"{env} already runs that release", fix=f"pick another entry: deliver history --env {env}"
        )
    done, entry, pushed = _land(
        repo,
        kind="rollback",
        env=env,
        release=Release(env=env, artifacts=artifacts),
        changes=changes,
        decisions=decisions,
        now=now,
        actor=git.author(repo),
        source=None,
        note=f"break-glass: {break_glass}" if break_glass else f"rollback to {to or deploying[-2].id}",
        branch="",
        do_push=do_push,
    )
    outcome.commit, outcome.ledger_id, outcome.pushed = done, entry.id, pushed
    return outcome


def record_only(
    repo: Path, env: str, kind: str, *, now: datetime, note: str, do_push: bool = False
) -> tuple[Entry, Commit, bool]:
    """A ledger-only change (``verify``, ``release-hold``) as its own commit."""
    cfg = load_env(repo, env)
    repo = git.top_level(repo)
    git.require_clean(repo, f"deliver {kind}")
    release = read_release(repo, env)
    if kind == "release-hold":
        decision = hold(GateInput(cfg, env, {}, (), read_ledger(repo, env), now))
        if decision.passed:
            raise UsageError(f"{env} is not on hold", fix="nothing to release")
    if kind == "verify" and release is None and cfg.promotion.source is not None:
        raise UsageError(
            f"{env} has no release to verify", fix=f"promote into it first: deliver promote --to {env}"
        )
    refs = release.refs() if release else {}
    changes = {k: Change(v, v) for k, v in refs.items()}
    entry = ledger_entry(
        repo, kind=kind, env=env, now=now, actor=git.author(repo), changes=changes, note=note
    )
    subject = {"verify": f"Verify {env}: {note}", "release-hold": f"Release the hold on {env}"}[kind]
    done = commit(repo, paths=[], entry=entry, subject=subject, trailers=[("Ledger-Id", entry.id)])
    pushed = False
    if do_push:
        push(repo, done.branch)
        pushed = True
    return entry, done, pushed
