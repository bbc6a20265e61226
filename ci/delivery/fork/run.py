"""``fork_init``: the steps of a fork, in the order that keeps the tree whole.

1. **refuse** what cannot work: outside a git work tree, uncommitted changes, a config that does not
   check, generated files out of date with their config, envs naming different platform repos;
2. **edit** each env's config in memory (five keys, comments and layout kept: ``core.yamlio``);
3. **derive** the roots and layers from the new configs with the project's renderers, and the
   OpenTofu inputs; **check** the configs and **validate** every env, all in a scratch copy;
4. **rewrite** the owned files that hold an old value, and list the rest (``scan``);
5. **write** every change together, or nothing (``write``); with ``dry_run``, write nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from delivery import config as envconfig
from delivery.config import EnvConfig
from delivery.core import git, yamlio
from delivery.core.errors import ConfigError, DeliveryError, Problem, UsageError, ValidationFailed, raise_if
from delivery.core.paths import env_config_path
from delivery.fork.derive import (
    disagreeing_repo_urls,
    generated,
    on_disk,
    overlay,
    scratch,
    stale,
    tofu_inputs,
    validate,
)
from delivery.fork.request import ForkRequest
from delivery.fork.scan import Hit, Rewriter, rewrite_owned
from delivery.fork.values import EnvValues, current, replacements, wanted
from delivery.fork.write import Change, write_all
from delivery.validation import Report

COMMAND = "deliver fork-init"


@dataclass
class EnvResult:
    """One environment: its values before and after, its validation and its OpenTofu inputs."""

    before: EnvValues
    after: EnvValues
    report: Report
    tofu: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "before": self.before.as_dict(),
            "after": self.after.as_dict(),
            "changed": self.before.changed(self.after),
            "validation": {
                "ok": self.report.ok,
                "resources": self.report.resources,
                "findings": len(self.report.findings),
                "warnings": len(self.report.warnings),
            },
            "tofu": self.tofu,
        }


@dataclass
class ForkResult:
    """What a run changed (or, with ``dry_run``, would change), what it left, and each env's checks."""

    changes: list[Change]
    left: list[Hit]
    envs: dict[str, EnvResult]
    dry_run: bool

    @property
    def written(self) -> bool:
        return bool(self.changes) and not self.dry_run

    def diff(self) -> str:
        return "".join(c.diff() for c in self.changes)

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "ok": True,
            "dryRun": self.dry_run,
            "written": self.written,
            "changed": [{"file": c.path, "why": c.why} for c in self.changes],
            "notOwned": [h.as_dict() for h in self.left],
            "environments": {env: r.as_dict() for env, r in self.envs.items()},
        }
        if self.dry_run:
            doc["diff"] = self.diff()
        return doc


def _text(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


def refuse_unfit(repo: Path) -> dict[str, EnvConfig]:
    """The configs of a tree fork-init can work on; refuses (exit 2) any other, naming the files."""
    try:
        git.top_level(repo)
    except UsageError:
        raise UsageError(
            "not inside a git work tree: fork-init rewrites tracked files and needs git to show (and "
            "undo) what it changed",
            where=str(repo),
            fix="run it in a clone of your fork (git clone URL), or make this directory one first: "
            "git init && git add -A && git commit -m 'Platform'",
        ) from None
    git.require_clean(repo, COMMAND)
    configs, problems = envconfig.check(repo)
    raise_if(problems, ConfigError)
    problems = disagreeing_repo_urls(configs)
    for cfg in configs.values():
        problems += stale(repo, cfg)
    if problems:
        raise UsageError.of(
            [
                *problems,
                Problem(
                    str(repo),
                    "the tree was inconsistent before fork-init started (the files above); it changes "
                    "nothing until they agree with config",
                    "fix each file as its fix: line says and commit; then run deliver fork-init again",
                ),
            ]
        )
    return configs


def _edited(repo: Path, cfg: EnvConfig, after: EnvValues) -> str:
    shown = str(cfg.path)
    return yamlio.edit_text(_text(env_config_path(repo, cfg.name)), after.edits(), shown)


def _bad_values(problems: Sequence[Problem]) -> DeliveryError:
    """A config the new values make invalid is the values' fault (exit 2, nothing written)."""
    return UsageError.of(
        Problem(p.where, f"{p.what} (with the values fork-init was given)", p.fix or "pass other values")
        for p in problems
    )


def fork_init(
    repo: Path,
    request: ForkRequest,
    *,
    dry_run: bool = False,
    offline: bool = False,
    source_dir: Path | None = None,
) -> ForkResult:
    """Fork the platform to ``request``'s values (see the module docstring); returns what changed."""
    old = refuse_unfit(repo)
    after = {env: wanted(env, current(cfg), request) for env, cfg in old.items()}
    files: dict[str, str | None] = {}
    why: dict[str, str] = {}
    for env, cfg in old.items():
        rel = str(cfg.path)
        files[rel] = _edited(repo, cfg, after[env])
        why[rel] = "config: " + (", ".join(current(cfg).changed(after[env])) or "unchanged")
    old_configs = set(files)
    with scratch(repo, files) as copy:
        new, problems = envconfig.check(copy)
        if problems:
            raise _bad_values(problems)
        tofu: dict[str, dict[str, Any]] = {}
        for env, cfg in new.items():
            try:
                tofu[env] = tofu_inputs(copy, cfg)
            except ConfigError as err:
                raise _bad_values(err.problems) from None
            rendered = generated(copy, cfg)
            for rel in on_disk(repo, env) - set(rendered):
                files[rel], why[rel] = None, "generated: no longer rendered"
            for rel, text in rendered.items():
                files[rel], why[rel] = text, "generated"
        overlay(copy, {rel: text for rel, text in files.items() if rel not in old_configs})
        reports = validate(
            repo,
            copy,
            sorted(new),
            [c.cluster.kubernetes_version for c in new.values()],
            offline=offline,
            source_dir=source_dir,
        )
    findings = [f.problem() for r in reports for f in r.findings]
    if findings:
        raise ValidationFailed.of(
            [
                *findings,
                Problem(
                    "fork-init",
                    f"{len(findings)} finding(s) in the environments as the fork would make them; "
                    "nothing was written",
                    "fix what each finding names (or pass other values), then run deliver fork-init again",
                ),
            ]
        )
    rewriter = Rewriter(replacements({env: (old[env], new[env]) for env in old}))
    generated_text = {rel: text for rel, text in files.items() if text is not None}
    rewritten, left = rewrite_owned(repo, rewriter, generated_text)
    changes = _changes(repo, files, why, rewritten)
    by_env = {r.env: r for r in reports}
    envs = {
        env: EnvResult(current(old[env]), current(new[env]), by_env[env], tofu[env]) for env in sorted(old)
    }
    if changes and not dry_run:
        write_all(repo, changes)
    return ForkResult(changes, left, envs, dry_run)


def _changes(
    repo: Path, files: dict[str, str | None], why: dict[str, str], rewritten: dict[str, tuple[str, str]]
) -> list[Change]:
    changes = []
    for rel, after in sorted(files.items()):
        path = repo / rel
        before = _text(path) if path.is_file() else None
        if before != after:
            changes.append(Change(rel, before, after, why[rel]))
    for rel, (before_text, after_text) in sorted(rewritten.items()):
        changes.append(Change(rel, before_text, after_text, "old values rewritten"))
    return sorted(changes, key=lambda c: c.path)
