"""``deliver status`` and ``deliver history``: the screens people live in, as data and as text."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from delivery.config import EnvConfig, list_envs, load_env
from delivery.core.errors import ToolError
from delivery.promotion.gates import GateInput, evaluate, live_since
from delivery.promotion.steps import pinned_entries, upstream_artifacts
from delivery.release import Entry, read_ledger, read_release
from delivery.release.ledger import utc_text
from delivery.release.model import short_digest


def ordered_envs(repo: Path) -> list[EnvConfig]:
    """Environments in promotion order: each entry env, then what promotes from it, depth first."""
    configs = {name: load_env(repo, name) for name in list_envs(repo)}
    children: dict[str | None, list[str]] = {}
    for name, cfg in configs.items():
        children.setdefault(cfg.promotion.source, []).append(name)
    out: list[EnvConfig] = []

    def walk(parent: str | None) -> None:
        for name in sorted(children.get(parent, [])):
            if configs[name] not in out:
                out.append(configs[name])
                walk(name)

    walk(None)
    return out


@dataclass(frozen=True)
class Cell:
    env: str
    artifact: str
    ref: str | None
    since: datetime | None
    upstream_ref: str | None
    pending: str  # "" when in step with upstream; else the blocking gate, or "ready"

    def as_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "artifact": self.artifact,
            "ref": self.ref,
            "since": utc_text(self.since) if self.since else None,
            "upstream": self.upstream_ref,
            "pending": self.pending or None,
        }


def _env_refs(repo: Path, cfg: EnvConfig) -> dict[str, str]:
    if cfg.promotion.source is not None and read_release(repo, cfg.name) is None:
        return {}  # a promoted env without a release runs nothing yet (a broken one is an error)
    return {k: a.ref for k, a in upstream_artifacts(repo, cfg).items()}


def _ledger(repo: Path, cfg: EnvConfig) -> list[Entry]:
    """The env's ledger; for an entry env with the commits that pinned its images (their live-since)."""
    ledger = read_ledger(repo, cfg.name)
    if cfg.promotion.source is None:
        try:
            artifacts = upstream_artifacts(repo, cfg)
            ledger = sorted(
                [*ledger, *pinned_entries(repo, cfg.name, artifacts, ledger)], key=lambda e: e.time
            )
        except ToolError:
            pass  # outside git: the pinned images just show no "since"
    return ledger


def status(repo: Path, now: datetime) -> list[Cell]:
    """Every environment × artifact: what runs, since when, what upstream has, what blocks it.

    Each pending artifact is gated on its own here (a promotion moves the release as one unit, so
    ``deliver promote --dry-run`` shows the decision for all of them together).
    """
    envs = ordered_envs(repo)
    refs = {cfg.name: _env_refs(repo, cfg) for cfg in envs}
    ledgers = {cfg.name: _ledger(repo, cfg) for cfg in envs}
    names = sorted({name for r in refs.values() for name in r})
    cells: list[Cell] = []
    for cfg in envs:
        upstream = cfg.promotion.source
        mine = refs[cfg.name]
        theirs = refs.get(upstream, {}) if upstream else {}
        for name in names:
            ref = mine.get(name)
            since = live_since(ledgers[cfg.name], name, ref) if ref else None
            pending = ""
            if upstream and name in theirs:
                if short_digest(theirs[name]) == short_digest(ref):
                    pending = "in step"
                else:
                    inp = GateInput(
                        cfg, upstream, {name: theirs[name]}, ledgers[upstream], ledgers[cfg.name], now
                    )
                    refused = [d for d in evaluate(inp) if not d.passed]
                    pending = (
                        "; ".join(d.reason for d in refused)
                        if refused
                        else f"ready: deliver promote --to {cfg.name}"
                    )
            elif upstream is None and ref:
                pending = "entry: takes new artifacts"
            cells.append(Cell(cfg.name, name, ref, since, theirs.get(name), pending))
    return cells


def status_table(cells: list[Cell]) -> str:
    """One row per env × artifact; the pending column says what a promotion would do now."""
    rows = [("ENV", "ARTIFACT", "DEPLOYED", "SINCE", "UPSTREAM", "PENDING")]
    for c in cells:
        since = utc_text(c.since) if c.since else "-"
        upstream = short_digest(c.upstream_ref) if c.upstream_ref else "-"
        rows.append((c.env, c.artifact, short_digest(c.ref) or "-", since, upstream, c.pending or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "".join(
        "  ".join(col.ljust(widths[i]) for i, col in enumerate(r[:5])) + "  " + r[5] + "\n" for r in rows
    )


def history(repo: Path, env: str) -> list[Entry]:
    load_env(repo, env)  # an unknown env is bad input
    return read_ledger(repo, env)


def history_table(entries: list[Entry]) -> str:
    rows = [("TIME", "KIND", "ARTIFACTS", "FROM", "ACTOR", "ID")]
    for e in entries:
        arts = ", ".join(
            f"{k} {short_digest(c.old) or '-'} -> {short_digest(c.new)}"
            for k, c in sorted(e.artifacts.items())
        )
        if e.kind in ("verify", "release-hold", "hold"):
            arts = e.note or e.kind
        rows.append((utc_text(e.time), e.kind, arts or "-", e.source or "-", e.actor, e.id))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join("  ".join(col.ljust(widths[i]) for i, col in enumerate(r)).rstrip() + "\n" for r in rows)


__all__ = ["Cell", "history", "history_table", "ordered_envs", "status", "status_table"]
