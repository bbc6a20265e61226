"""The steps of a promotion, each one verb with typed inputs and a typed result (Kargo's step model).

resolve -> gate -> copy -> update -> validate -> commit -> push. Nothing before ``commit`` writes to
the working tree: ``update`` and ``validate`` run in a scratch copy of the repo's data, so a refusal
or a failed validation leaves git and the tree as they were. Registries only ever gain blobs and
then manifests whose blobs are all there (``copy``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from delivery.config import EnvConfig, check, load_env
from delivery.core import git
from delivery.core.console import ProgressReporter
from delivery.core.errors import ConfigError, DeliveryError, Problem, UsageError, ValidationFailed, raise_if
from delivery.core.fsutil import atomic_directory, scratch_repo
from delivery.core.paths import refuse_symlinked_dir
from delivery.gitops import load_pins
from delivery.gitops.artifacts import deployed_images, promoted_repository
from delivery.gitops.render import render_layers
from delivery.oci.auth import Credentials
from delivery.oci.reference import ImageRef
from delivery.promotion.copy import CopyReport, copy_image
from delivery.promotion.gates import Decision, GateInput, evaluate
from delivery.release import (
    Artifact,
    Change,
    Entry,
    Release,
    append,
    new_id,
    protected_tag,
    read_ledger,
    read_release,
)
from delivery.release.ledger import DEPLOYING, ledger_path
from delivery.release.model import release_path, render, write_release
from delivery.schemas.bundle import ensure_bundle
from delivery.schemas.sources import default_source_dir
from delivery.validation.validate import validate_envs

CredentialsFor = Callable[[str], Credentials]  # registry host -> credentials


class PromotionRefused(DeliveryError):
    """A gate refused the promotion (exit 1): nothing was copied, written or committed."""


# --------------------------------------------------------------------------- resolve


@dataclass(frozen=True)
class Resolved:
    target: EnvConfig
    upstream: EnvConfig
    artifacts: dict[str, Artifact]  # what moves, as upstream has it
    current: Release  # the target's release now (empty when it has none)


def upstream_artifacts(repo: Path, upstream: EnvConfig) -> dict[str, Artifact]:
    """What the upstream env runs that moves by promotion: its release (+ the pins, for an entry env)."""
    release = read_release(repo, upstream.name)
    artifacts = dict(release.artifacts) if release else {}
    if upstream.promotion.source is None:
        # its images are what it deploys: an import at the pinned digest, else the pin; an import
        # of an older pin, or of an image no longer pinned, is not what runs there
        artifacts = {n: a for n, a in artifacts.items() if a.kind != "image"}
        for name, ref in deployed_images(repo, upstream, load_pins(repo)).items():
            artifacts[name] = Artifact(kind="image", ref=ref)
    elif release is None:
        raise UsageError(
            f"upstream environment {upstream.name!r} has no release yet",
            where=str(release_path(repo, upstream.name).relative_to(repo)),
            fix=f"promote into it first: deliver promote --to {upstream.name}",
        )
    return artifacts


def resolve(repo: Path, to: str, only: Sequence[str] = ()) -> Resolved:
    """Read the upstream release; every reference is by digest (the release model enforces it).

    The target's config is checked with the others first (a promotion loop, an unknown upstream).
    """
    _configs, problems = check(repo, [to])
    raise_if(problems, ConfigError)
    target = load_env(repo, to)
    if target.promotion.source is None:
        raise UsageError(
            f"{to!r} is an entry environment (no promotion.from): it takes new artifacts, not promotions",
            where=str(target.path),
            fix=f"publish into it (deliver modelcar publish NAME --env {to}), or promote an env below it",
        )
    upstream = load_env(repo, target.promotion.source)
    artifacts = upstream_artifacts(repo, upstream)
    if only:
        unknown = sorted(set(only) - set(artifacts))
        if unknown:
            raise UsageError(
                f"--only names {', '.join(unknown)}, which {upstream.name} does not run "
                f"(it runs: {', '.join(sorted(artifacts)) or 'nothing'})",
                fix="name artifacts of the upstream release (deliver status shows them)",
            )
        artifacts = {k: v for k, v in artifacts.items() if k in only}
    if not artifacts:
        raise UsageError(
            f"upstream environment {upstream.name!r} runs nothing to promote",
            where=str(release_path(repo, upstream.name).relative_to(repo)),
            fix=f"publish into the entry env first: deliver modelcar publish NAME --env {upstream.name}",
        )
    return Resolved(target, upstream, artifacts, read_release(repo, to) or Release(env=to))


def target_artifact(target: EnvConfig, artifact: Artifact) -> Artifact:
    """The same artifact, by the same digest, in the target env's own registry."""
    ref = f"{promoted_repository(target.registry, artifact.ref)}@{artifact.digest}"
    return Artifact(kind=artifact.kind, ref=ref, source=artifact.source)


# --------------------------------------------------------------------------- gate


def gate(
    repo: Path,
    resolved: Resolved,
    now: datetime,
    *,
    approved_by: str = "",
    break_glass: str = "",
    rollback: bool = False,
) -> list[Decision]:
    """Every gate's decision for this promotion (pure: the ledgers and ``now`` are its inputs)."""
    upstream_ledger = read_ledger(repo, resolved.upstream.name)
    if resolved.upstream.promotion.source is None:
        upstream_ledger = sorted(
            [
                *upstream_ledger,
                *pinned_entries(repo, resolved.upstream.name, resolved.artifacts, upstream_ledger),
            ],
            key=lambda e: e.time,
        )
    inp = GateInput(
        target=resolved.target,
        upstream=resolved.upstream.name,
        moving={k: a.ref for k, a in resolved.artifacts.items()},
        upstream_ledger=upstream_ledger,
        target_ledger=read_ledger(repo, resolved.target.name),
        now=now,
        approved_by=approved_by,
        break_glass=break_glass,
        rollback=rollback,
    )
    return evaluate(inp)


def pinned_entries(
    repo: Path, env: str, artifacts: Mapping[str, Artifact], ledger: Sequence[Entry]
) -> list[Entry]:
    """An entry env runs the images of clusters/pins.yaml from the commit that pinned them: that
    commit's time is when they went live there (a ``publish``-like entry for the soak gate)."""
    recorded = {(name, c.new) for e in ledger if e.kind in DEPLOYING for name, c in e.artifacts.items()}
    found = []
    for name, artifact in sorted(artifacts.items()):
        if artifact.kind != "image" or (name, artifact.ref) in recorded:
            continue
        proc = git.git(
            repo,
            "log",
            "-1",
            "--format=%H %ct",
            "-S",
            artifact.digest,
            "--",
            "clusters/pins.yaml",
            check=False,
        )
        if proc.returncode != 0 or not proc.stdout.strip():
            continue  # not committed: the soak gate refuses it, naming it
        commit, _, seconds = proc.stdout.strip().partition(" ")
        when = datetime.fromtimestamp(int(seconds), UTC)
        found.append(
            Entry(
                id=f"pin-{commit[:12]}-{name}",
                time=when,
                actor="clusters/pins.yaml",
                kind="publish",
                env=env,
                artifacts={name: Change(None, artifact.ref)},
                upstream_commit=commit,
                note="pinned in clusters/pins.yaml",
            )
        )
    return found


def raise_refused(env: str, decisions: Sequence[Decision]) -> None:
    refused = [d for d in decisions if not d.passed and d.route != "branch"]
    if refused:
        raise PromotionRefused.of(
            Problem(f"gate {d.gate}", f"promotion into {env} refused: {d.reason}", _gate_fix(d, env))
            for d in refused
        )


def _gate_fix(decision: Decision, env: str) -> str:
    if decision.gate == "freeze":
        return "wait for the window to end, or pass --break-glass REASON (recorded in the ledger)"
    if decision.gate == "soak":
        return "wait for the soak time to pass (deliver status shows what remains)"
    if decision.gate == "hold":
        return f"after the cause of the rollback is fixed: deliver hold release --env {env}"
    if decision.gate == "verified":
        return "run the upstream smoke test and record it with deliver verify-release"
    return "see the gate's reason"


# --------------------------------------------------------------------------- copy


def copy(
    moves: Mapping[str, tuple[Artifact, Artifact]],
    credentials_for: CredentialsFor,
    reporter: ProgressReporter | None,
) -> list[CopyReport]:
    """Make each artifact exist in the target registry with the same digest (a no-op when it does)."""
    reports = []
    for _name, (source, dest) in sorted(moves.items()):
        src = ImageRef.parse(source.ref)
        dst = ImageRef.parse(dest.ref)
        reports.append(
            copy_image(
                src,
                dst,
                source_credentials=credentials_for(src.registry),
                target_credentials=credentials_for(dst.registry),
                reporter=reporter,
                protect=protected_tag,  # what the release deploys: kept by registry cleanup
            )
        )
    return reports


# --------------------------------------------------------------------------- update + validate


@dataclass
class Update:
    """The target env's new files, rendered and validated in a scratch copy (not yet in the tree)."""

    release: Release
    release_text: str
    layers: dict[str, str]
    resources: int = 0


def scratch_copy(repo: Path) -> AbstractContextManager[Path]:
    """A throwaway copy of the repo's data directories (what rendering and validation read)."""
    return scratch_repo(repo, "deliver-promote-")


def update_and_validate(repo: Path, target: EnvConfig, release: Release) -> Update:
    """Render the target's layers from its new release and validate them, all in a scratch copy.

    A finding raises ValidationFailed (exit 1) naming it; the real tree is untouched either way.
    """
    bundle = ensure_bundle(repo, [target.cluster.kubernetes_version], source_dir=default_source_dir(repo))
    with scratch_copy(repo) as scratch:
        path = release_path(scratch, target.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(release), encoding="utf-8")
        cfg = load_env(scratch, target.name)
        files = render_layers(scratch, cfg)
        base = scratch / "clusters" / target.name / "layers"
        shutil.rmtree(base, ignore_errors=True)
        for rel, text in files.items():
            (base / rel).parent.mkdir(parents=True, exist_ok=True)
            (base / rel).write_text(text, encoding="utf-8")
        (report,) = validate_envs(scratch, [target.name], schemas=bundle.root)
    if report.findings:
        raise ValidationFailed.of(
            Problem(
                f.file, f"{f.resource}: [{f.check}] {f.message}", "the promoted release does not validate"
            )
            for f in report.findings
        )
    return Update(release, render(release), files, report.resources)


# --------------------------------------------------------------------------- commit + push


@dataclass(frozen=True)
class Commit:
    commit: str
    branch: str
    paths: tuple[str, ...] = field(default=())


def write_update(repo: Path, env: str, update: Update) -> list[Path]:
    """Put the validated release and layers into the tree (each atomically); returns what changed."""
    write_release(repo, update.release)
    layers = repo / "clusters" / env / "layers"
    refuse_symlinked_dir(repo, layers)
    with atomic_directory(layers) as staging:
        for rel, text in update.layers.items():
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            (staging / rel).write_text(text, encoding="utf-8")
    return [release_path(repo, env), layers]


def branch_exists(repo: Path, branch: str) -> bool:
    return git.git(repo, "rev-parse", "-q", "--verify", f"refs/heads/{branch}", check=False).returncode == 0


def attached_branch(repo: Path, what: str) -> str:
    """The checked-out branch; a detached HEAD (common in CI) is refused: a promotion lands on a branch."""
    proc = git.git(repo, "symbolic-ref", "-q", "--short", "HEAD", check=False)
    if proc.returncode != 0:
        raise UsageError(
            f"HEAD is detached; {what} commits onto a branch",
            where=str(repo),
            fix="check out the branch the environment tracks first (e.g. git checkout main)",
        )
    return proc.stdout.strip()


def commit(
    repo: Path,
    *,
    entry: Entry,
    subject: str,
    trailers: Sequence[tuple[str, str]],
    write: Callable[[], Sequence[Path]] = lambda: (),
    branch: str = "",
) -> Commit:
    """One commit holding what ``write`` puts into the tree and the ledger entry, on the current branch
    or on a new ``branch`` (the checkout returns to the current branch afterwards).

    Any failure, an interrupt included, puts the tree back as it was at HEAD.
    """
    original = attached_branch(repo, "this command")
    if branch and branch_exists(repo, branch):
        raise UsageError(
            f"branch {branch} already exists (an earlier promotion waiting for review)",
            where=str(repo),
            fix=f"review it, then land it with --approved-by NAME, or delete it: git branch -D {branch}",
        )
    message = subject + "\n\n" + "".join(f"{k}: {v}\n" for k, v in trailers)
    created = False
    rel: list[str] = [str(ledger_path(repo, entry.env).relative_to(repo))]
    try:
        rel += [str(p.relative_to(repo)) for p in write()]
        append(repo, [entry])
        if branch:
            git.git(repo, "checkout", "-q", "-b", branch)
            created = True
        git.git(repo, "add", "-A", "--", *rel)
        git.git(repo, "commit", "-q", "-m", message)
        sha = git.head(repo)
    except BaseException:
        _restore(repo, original, rel, branch if created else "")
        raise
    if branch:
        git.git(repo, "checkout", "-q", original)
    return Commit(sha, branch or original, tuple(rel))


def _restore(repo: Path, original: str, paths: Sequence[str], branch: str) -> None:
    """Put the tree back as it was at HEAD (the commit failed); drop ``branch`` (this call made it)."""
    git.git(repo, "reset", "-q", "--", *paths, check=False)
    git.git(repo, "checkout", "-q", "--", *paths, check=False)
    git.git(repo, "clean", "-q", "-fd", "--", *paths, check=False)
    if branch:
        git.git(repo, "checkout", "-q", "-f", original, check=False)
        git.git(repo, "branch", "-q", "-D", branch, check=False)


PUSH_ATTEMPTS = 5


def push_once(repo: Path, branch: str, remote: str = "origin") -> bool:
    """Push ``branch``; False when the remote moved meanwhile (a race), an error for anything else.

    A race is told by the remote's branch, not by git's wording (two pushes at once can also fail
    on the remote's ref lock): after a failed push the branch is fetched, and if its tip is not in
    our history, someone else landed first.
    """
    proc = git.git(repo, "push", remote, f"refs/heads/{branch}:refs/heads/{branch}", check=False)
    if proc.returncode == 0:
        return True
    fetched = git.git(repo, "fetch", "-q", remote, branch, check=False)
    moved = fetched.returncode == 0 and (
        git.git(repo, "merge-base", "--is-ancestor", f"{remote}/{branch}", "HEAD", check=False).returncode
        != 0
    )
    if moved:
        return False
    stderr = git.redact_url(proc.stderr).strip().splitlines()
    reason = next(
        (line for line in stderr if "rejected" in line or "denied" in line), stderr[-1] if stderr else ""
    )
    raise DeliveryError(
        f"git push to {remote} failed: {reason or 'no output'}",
        where=str(repo),
        fix="check the remote, your credentials and the branch's protection, then push: git push",
    )


def catch_up(repo: Path, base: str, branch: str, remote: str = "origin") -> None:
    """Drop the local commit made on top of ``base`` and fast-forward to the remote's ``branch``.

    What the remote gained meanwhile is then decided on again (gates, update, validation): a commit
    is never rebased blindly over a change nobody validated it against.
    """
    git.git(repo, "reset", "-q", "--hard", base)
    git.git(repo, "fetch", "-q", remote, branch)
    merged = git.git(repo, "merge", "-q", "--ff-only", f"{remote}/{branch}", check=False)
    if merged.returncode != 0:
        raise DeliveryError(
            f"{branch} has local commits that are not on {remote}",
            where=str(repo),
            fix=f"push or drop them first (git log {remote}/{branch}..{branch}), then run the command again",
        )


def ledger_entry(
    repo: Path,
    *,
    kind: str,
    env: str,
    now: datetime,
    actor: str,
    changes: Mapping[str, Change],
    decisions: Sequence[Decision] = (),
    source: str | None = None,
    note: str = "",
) -> Entry:
    return Entry(
        id=new_id(env, now),
        time=now,
        actor=actor,
        kind=kind,
        env=env,
        source=source,
        artifacts=dict(changes),
        gates=tuple(d.as_dict() for d in decisions),
        upstream_commit=git.head(repo),
        note=note,
    )
