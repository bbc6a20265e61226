"""``deliver promote``, ``import-images``, ``rollback``, ``hold release`` and ``verify-release`` as plain
functions.

Each one reads git, decides through the gates (pure), changes registries only by adding, and
lands as exactly one commit (with its ledger entry) or not at all. With ``--push``, a push that
loses a race does not rebase blindly: the local commit is dropped, the branch fast-forwards to the
remote, and the whole decision runs again on what is there now (Kargo's git-push step integrates
and retries; we also re-gate and re-validate what we integrate).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from delivery.config import EnvConfig, load_env
from delivery.core import git
from delivery.core.console import ProgressReporter
from delivery.core.errors import DeliveryError, UsageError
from delivery.gitops import PINS_FILE, load_pins
from delivery.promotion.copy import CopyReport
from delivery.promotion.gates import Decision, GateInput, freeze, hold
from delivery.promotion.steps import (
    PUSH_ATTEMPTS,
    Commit,
    CredentialsFor,
    Resolved,
    attached_branch,
    branch_exists,
    catch_up,
    commit,
    copy,
    gate,
    ledger_entry,
    push_once,
    raise_refused,
    resolve,
    target_artifact,
    update_and_validate,
    upstream_artifacts,
    write_update,
)
from delivery.release import Artifact, Change, Entry, Release, read_ledger, read_release
from delivery.release.ledger import DEPLOYING
from delivery.release.model import short_digest


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
    attempts: int = 1

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
            "attempts": self.attempts,
        }


def _landing(repo: Path, what: str) -> tuple[Path, str, str]:
    """The work tree, its branch and HEAD, checked before anything runs (clean, on a branch)."""
    top = git.top_level(repo)
    git.require_clean(top, what)
    return top, attached_branch(top, what), git.head(top)


def _with_push(repo: Path, branch: str, base: str, do_push: bool, once: Callable[[], Outcome]) -> Outcome:
    """Run ``once``; with ``do_push`` push what it committed, deciding again after a lost race."""
    for attempt in range(1, PUSH_ATTEMPTS + 1):
        outcome = once()
        outcome.attempts = attempt
        if not do_push or outcome.commit is None:
            return outcome
        if push_once(repo, outcome.commit.branch):
            outcome.pushed = True
            return outcome
        if outcome.review_branch:
            git.git(repo, "branch", "-q", "-D", outcome.review_branch)
        catch_up(repo, base, branch)
        base = git.head(repo)
    raise DeliveryError(
        f"the remote's {branch} moved {PUSH_ATTEMPTS} times while this command ran",
        where=str(repo),
        fix="run the command again later",
    )


def _moves(resolved: Resolved) -> dict[str, tuple[Artifact, Artifact]]:
    """Artifact -> (upstream, target) for everything whose digest the target does not run yet."""
    moves = {}
    for name, artifact in resolved.artifacts.items():
        dest = target_artifact(resolved.target, artifact)
        if resolved.current.artifacts.get(name) != dest:
            moves[name] = (artifact, dest)
    return moves


def _trailers(
    kind: str, env: str, source: str | None, changes: dict[str, Change], entry: Entry
) -> list[tuple[str, str]]:
    trailers = {
        "promote": [("Promoted-From", source or env), ("Promoted-To", env)],
        "import": [("Imported-Into", env)],
    }.get(kind, [("Rolled-Back", env)])
    trailers += [("Artifact", f"{k}@{c.new.rpartition('@')[2]}") for k, c in sorted(changes.items())]
    trailers.append(("Ledger-Id", entry.id))
    return trailers


def _land(repo: Path, target: EnvConfig, release: Release, entry: Entry, subject: str, branch: str) -> Commit:
    """update -> validate (in a scratch copy) -> commit of a new release for the target env."""
    update = update_and_validate(repo, target, release)
    changes = dict(entry.artifacts)
    return commit(
        repo,
        entry=entry,
        subject=subject + ", ".join(f"{k}@{short_digest(c.new)}" for k, c in sorted(changes.items())),
        trailers=_trailers(entry.kind, target.name, entry.source, changes, entry),
        write=lambda: write_update(repo, target.name, update),
        branch=branch,
    )


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
    if dry_run:
        decisions = gate(repo, resolved, now, approved_by=approved_by, break_glass=break_glass)
        changes = _changes(resolved, _moves(resolved))
        return Outcome("promote", to, resolved.upstream.name, decisions, changes, dry_run=True)
    top, branch, base = _landing(repo, "deliver promote")

    def once() -> Outcome:
        resolved = resolve(top, to, only)
        decisions = gate(top, resolved, now, approved_by=approved_by, break_glass=break_glass)
        moves = _moves(resolved)
        changes = _changes(resolved, moves)
        outcome = Outcome("promote", to, resolved.upstream.name, decisions, changes)
        if not moves:
            return outcome  # the target already runs exactly this: nothing to copy, write or commit
        raise_refused(to, decisions)
        needs_review = any(d.route == "branch" and not d.passed for d in decisions)
        # the review branch is named after the modelcar that moves (else the first artifact by name)
        lead = min(moves, key=lambda n: (moves[n][1].kind != "modelcar", n))
        review = f"promote/{to}/{short_digest(changes[lead].new)}" if needs_review else ""
        if review and branch_exists(top, review):
            raise UsageError(
                f"branch {review} already exists (this promotion is waiting for review)",
                where=str(top),
                fix=f"land it with --approved-by NAME after review, or delete it: git branch -D {review}",
            )
        outcome.copies = copy(moves, credentials_for, reporter)
        release = resolved.current.with_artifacts({name: dest for name, (_src, dest) in moves.items()})
        entry = ledger_entry(
            top,
            kind="promote",
            env=to,
            now=now,
            actor=approved_by or git.author(top),
            changes=changes,
            decisions=decisions,
            source=resolved.upstream.name,
            note=f"break-glass: {break_glass}" if break_glass else "",
        )
        subject = f"Promote {resolved.upstream.name} -> {to}: "
        outcome.commit = _land(top, resolved.target, release, entry, subject, review)
        outcome.ledger_id, outcome.review_branch = entry.id, review
        return outcome

    return _with_push(top, branch, base, do_push, once)


def _import_moves(repo: Path, cfg: EnvConfig, only: Sequence[str]) -> dict[str, tuple[Artifact, Artifact]]:
    """Pinned image -> (as pinned upstream, the same digest in the env's registry), for those the env's
    release does not hold at that digest yet."""
    pins = load_pins(repo)
    unknown = sorted(set(only) - set(pins.images))
    if unknown:
        raise UsageError(
            f"--only names {', '.join(unknown)}, not an image of {PINS_FILE}",
            where="--only",
            fix=f"name images of {PINS_FILE}: {', '.join(sorted(pins.images))}",
        )
    current = read_release(repo, cfg.name) or Release(env=cfg.name)
    moves = {}
    for name in sorted(only or pins.images):
        pinned = Artifact(kind="image", ref=pins.image(name))
        dest = target_artifact(cfg, pinned)
        if current.artifacts.get(name) != dest:
            moves[name] = (pinned, dest)
    return moves


def import_images(
    repo: Path,
    env: str,
    *,
    now: datetime,
    credentials_for: CredentialsFor,
    only: Sequence[str] = (),
    dry_run: bool = False,
    do_push: bool = False,
    reporter: ProgressReporter | None = None,
) -> Outcome:
    """Copy the images pinned in clusters/pins.yaml into entry env ``env``'s own registry by digest
    (each with its protected tag), record them in its release and land one commit.

    An entry environment then pulls every image from its own registry, as promoted ones do: GKE image
    streaming serves only Artifact Registry images, and an upstream registry's outage or rate limit
    no longer reaches a cold start. Downstream environments promote them from there."""
    cfg = load_env(repo, env)
    if cfg.promotion.source is not None:
        raise UsageError(
            f"{env} is promoted from {cfg.promotion.source}: its images arrive by promotion, not by import",
            where=f"environments/{env}/config.yaml: promotion.from",
            fix=f"deliver promote --to {env}",
        )
    if dry_run:
        moves = _import_moves(repo, cfg, only)
        current = read_release(repo, env) or Release(env=env)
        changes = {n: Change(current.artifacts[n].ref if n in current.artifacts else None, d.ref)
                   for n, (_s, d) in moves.items()}  # fmt: skip
        return Outcome("import", env, None, [], changes, dry_run=True)
    top, branch, base = _landing(repo, "deliver import-images")

    def once() -> Outcome:
        target = load_env(top, env)
        moves = _import_moves(top, target, only)
        current = read_release(top, env) or Release(env=env)
        changes = {n: Change(current.artifacts[n].ref if n in current.artifacts else None, d.ref)
                   for n, (_s, d) in moves.items()}  # fmt: skip
        outcome = Outcome("import", env, None, [], changes)
        if not moves:
            return outcome  # every pinned image is in the env's registry at its digest already
        outcome.copies = copy(moves, credentials_for, reporter)
        release = current.with_artifacts({name: dest for name, (_src, dest) in moves.items()})
        entry = ledger_entry(top, kind="import", env=env, now=now, actor=git.author(top), changes=changes)
        outcome.commit = _land(top, target, release, entry, f"Import into {env}: ", "")
        outcome.ledger_id = entry.id
        return outcome

    return _with_push(top, branch, base, do_push, once)


def _changes(resolved: Resolved, moves: dict[str, tuple[Artifact, Artifact]]) -> dict[str, Change]:
    current = resolved.current.artifacts
    return {
        name: Change(current[name].ref if name in current else None, dest.ref)
        for name, (_src, dest) in moves.items()
    }


def release_at(ledger: Sequence[Entry], last: str) -> dict[str, str]:
    """The artifacts an env ran right after ledger entry ``last``."""
    state: dict[str, str] = {}
    for entry in ledger:
        if entry.kind in DEPLOYING:
            state.update({k: c.new for k, c in entry.artifacts.items()})
        if entry.id == last:
            break
    return state


def previous_release(ledger: Sequence[Entry]) -> Entry | None:
    """The deploying entry whose release came before the one running now.

    A rollback stands for the entry it restored, so rolling back twice walks further back instead
    of bringing back what the first rollback undid.
    """
    deploying = [e for e in ledger if e.kind in DEPLOYING]
    index = {e.id: i for i, e in enumerate(deploying)}
    current = len(deploying) - 1
    while current >= 0 and deploying[current].kind == "rollback" and deploying[current].restores in index:
        current = index[str(deploying[current].restores)]
    return deploying[current - 1] if current >= 1 else None


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
    top, branch, base = _landing(repo, "deliver rollback")

    def once() -> Outcome:
        ledger = read_ledger(top, env)
        deploying = {e.id: e for e in ledger if e.kind in DEPLOYING}
        if to:
            if to not in deploying:
                raise UsageError(
                    f"{env}'s ledger has no deploying entry {to!r}",
                    fix=f"pick an id from: deliver history --env {env}",
                )
            target_entry: Entry | None = deploying[to]
        else:
            target_entry = previous_release(ledger)
            if target_entry is None:
                raise UsageError(
                    f"{env} has no previous release to roll back to",
                    fix=f"see deliver history --env {env}",
                )
        assert target_entry is not None
        wanted = release_at(ledger, target_entry.id)
        current = read_release(top, env) or Release(env=env)
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
        if not changes:
            raise UsageError(
                f"{env} already runs that release", fix=f"pick another entry: deliver history --env {env}"
            )
        entry = ledger_entry(
            top,
            kind="rollback",
            env=env,
            now=now,
            actor=git.author(top),
            changes=changes,
            decisions=decisions,
            note=f"break-glass: {break_glass}" if break_glass else "",
        )
        entry = replace(entry, restores=target_entry.id)
        outcome = Outcome("rollback", env, None, decisions, changes)
        outcome.commit = _land(
            top, cfg, Release(env=env, artifacts=artifacts), entry, f"Roll back {env}: ", ""
        )
        outcome.ledger_id = entry.id
        return outcome

    return _with_push(top, branch, base, do_push, once)


def record_only(
    repo: Path, env: str, kind: str, *, now: datetime, note: str, do_push: bool = False
) -> tuple[Entry, Commit, bool]:
    """A ledger-only change (``verify``, ``release-hold``) as its own commit."""
    cfg = load_env(repo, env)
    top, branch, base = _landing(repo, f"deliver {kind}")
    entries: list[Entry] = []

    def once() -> Outcome:
        if kind == "release-hold" and hold(GateInput(cfg, env, {}, (), read_ledger(top, env), now)).passed:
            raise UsageError(f"{env} is not on hold", fix="nothing to release")
        if kind == "verify" and cfg.promotion.source is not None and read_release(top, env) is None:
            raise UsageError(
                f"{env} has no release to verify", fix=f"promote into it first: deliver promote --to {env}"
            )
        refs = {k: a.ref for k, a in upstream_artifacts(top, cfg).items()} if kind == "verify" else {}
        entry = ledger_entry(
            top,
            kind=kind,
            env=env,
            now=now,
            actor=git.author(top),
            changes={k: Change(v, v) for k, v in refs.items()},
            note=note,
        )
        subject = {"verify": f"Verify {env}: {note}", "release-hold": f"Release the hold on {env}"}[kind]
        done = commit(top, entry=entry, subject=subject, trailers=[("Ledger-Id", entry.id)])
        entries.append(entry)
        outcome = Outcome(kind, env, None, [], {}, commit=done, ledger_id=entry.id)
        return outcome

    outcome = _with_push(top, branch, base, do_push, once)
    assert outcome.commit is not None
    return entries[-1], outcome.commit, outcome.pushed
