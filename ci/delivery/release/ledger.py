"""The ledger: clusters/<env>/ledger.jsonl, an append-only record of everything that changed a release.

One JSON object per line (sorted keys, compact), never rewritten, unbounded. Two promotions that
append at once on different clones merge cleanly: ``.gitattributes`` gives the file git's ``union``
merge, so both lines are kept; readers order entries by time (equal times in file order).

An entry: ``id``, ``time`` (UTC), ``actor``, ``kind`` (publish, import, promote, rollback, verify, hold,
release-hold), ``env``, ``from`` (the upstream env, for promote), ``artifacts`` (name -> old and new
reference), ``gates`` (every gate's decision), ``upstreamCommit``, ``note`` (evidence, a reason, the
break-glass reason) and, for a rollback, ``restores`` (the entry whose release it brought back).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from delivery.core.errors import ConfigError, DeliveryError, Location
from delivery.core.paths import inside_repo

LEDGER_NAME = "ledger.jsonl"
MAX_LEDGER_BYTES = 64 << 20  # far above years of entries; a larger file is refused, not read
MAX_LINE_BYTES = 1 << 20
Kind = Literal["publish", "import", "promote", "rollback", "verify", "hold", "release-hold"]
KINDS: tuple[str, ...] = ("publish", "import", "promote", "rollback", "verify", "hold", "release-hold")
# kinds that change what an environment runs
DEPLOYING: tuple[str, ...] = ("publish", "import", "promote", "rollback")


def ledger_path(repo: Path, env: str) -> Path:
    return repo / "clusters" / env / LEDGER_NAME


def utc_text(when: datetime) -> str:
    """``2026-12-02T03:30:00Z``: the one timestamp form the ledger writes."""
    return when.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no timezone")
    return value.astimezone(UTC)


@dataclass(frozen=True)
class Change:
    """One artifact's reference before and after an entry (``old`` is None when it was new)."""

    old: str | None
    new: str


@dataclass(frozen=True)
class Entry:
    """One ledger line."""

    id: str
    time: datetime
    actor: str
    kind: str
    env: str
    source: str | None = None
    artifacts: Mapping[str, Change] = field(default_factory=dict)
    gates: tuple[Mapping[str, Any], ...] = ()
    upstream_commit: str | None = None
    note: str = ""
    restores: str | None = None  # a rollback: the entry whose release it brought back

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": utc_text(self.time),
            "actor": self.actor,
            "kind": self.kind,
            "env": self.env,
            "from": self.source,
            "artifacts": {k: {"old": c.old, "new": c.new} for k, c in sorted(self.artifacts.items())},
            "gates": [dict(g) for g in self.gates],
            "upstreamCommit": self.upstream_commit,
            "note": self.note,
            **({"restores": self.restores} if self.restores else {}),
        }

    def line(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":")) + "\n"


def new_id(env: str, when: datetime) -> str:
    """A unique, sortable id: ``<UTC time>-<env>-<8 random hex>``."""
    return f"{when.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}-{env}-{secrets.token_hex(4)}"


def _entry(data: Any, where: Location) -> Entry:
    def bad(what: str) -> ConfigError:
        return ConfigError(
            f"ledger entry is malformed: {what}",
            where=where,
            fix="the ledger is machine-written: restore the line from git history (git log -p on the file)",
        )

    if not isinstance(data, dict):
        raise bad("not a JSON object")
    try:
        artifacts = {
            str(name): Change(None if c.get("old") is None else str(c["old"]), str(c["new"]))
            for name, c in (data.get("artifacts") or {}).items()
        }
        entry = Entry(
            id=str(data["id"]),
            time=parse_time(str(data["time"])),
            actor=str(data["actor"]),
            kind=str(data["kind"]),
            env=str(data["env"]),
            source=None if data.get("from") is None else str(data["from"]),
            artifacts=artifacts,
            gates=tuple(dict(g) for g in data.get("gates") or ()),
            upstream_commit=None if data.get("upstreamCommit") is None else str(data["upstreamCommit"]),
            note=str(data.get("note") or ""),
            restores=None if data.get("restores") is None else str(data["restores"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise bad(str(err)) from None
    if entry.kind not in KINDS:
        raise bad(f"unknown kind {entry.kind!r}")
    return entry


def read_ledger(repo: Path, env: str) -> list[Entry]:
    """Every entry of the env's ledger, oldest first by (time, id); [] when there is no ledger yet."""
    path = ledger_path(repo, env)
    shown = str(path.relative_to(repo))
    if path.is_symlink():
        inside_repo(repo, path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return []
    if size > MAX_LEDGER_BYTES:
        raise ConfigError(
            f"ledger is {size} bytes, over the {MAX_LEDGER_BYTES} byte limit",
            where=shown,
            fix="the ledger is append-only and small; a file this large is not ours: restore it from git",
        )
    entries = []
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            where = Location(shown, number)
            if len(raw) > MAX_LINE_BYTES:
                raise ConfigError(
                    "ledger line is over 1 MiB", where=where, fix="restore the file from git history"
                )
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
            except ValueError as err:
                raise ConfigError(
                    f"ledger line is not JSON ({err})",
                    where=where,
                    fix="keep both lines whole when resolving a merge (git's union driver merges it)",
                ) from None
            entries.append(_entry(data, where))
    seen: set[str] = set()
    for entry in entries:
        if entry.id in seen:
            raise ConfigError(
                f"ledger has entry {entry.id} twice", where=shown, fix="remove the duplicate line"
            )
        seen.add(entry.id)
    return sorted(entries, key=lambda e: e.time)  # stable: equal times keep the file's order


def append(repo: Path, entries: Sequence[Entry]) -> list[Path]:
    """Append entries to their envs' ledgers (one write per file, fsynced); returns the files touched."""
    touched: list[Path] = []
    for env in sorted({e.env for e in entries}):
        path = ledger_path(repo, env)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(e.line() for e in entries if e.env == env).encode("utf-8")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:
            raise DeliveryError(
                f"cannot append to the ledger: {err.strerror or err}", where=str(path), fix="make it writable"
            ) from None
        touched.append(path)
    return touched
