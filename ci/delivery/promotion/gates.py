"""Promotion gates: pure functions of (the target's config, the ledgers, what moves, now) -> a Decision.

No gate reads a clock, a file or the network: ``now`` and the ledgers are given, so every decision
can be replayed and tested. A promotion runs when every gate passes; the approval gate's refusal is
not an error but sends the promotion to a review branch (``Decision.route == "branch"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from delivery.config import EnvConfig
from delivery.release.ledger import DEPLOYING, Entry, utc_text
from delivery.release.model import short_digest


@dataclass(frozen=True)
class Decision:
    """One gate's verdict: passed or not, why, and when it will pass (when that is known)."""

    gate: str
    passed: bool
    reason: str
    until: datetime | None = None
    override: str = ""  # set when --break-glass let a refused gate pass
    route: str = ""  # "branch": not refused, but committed for review instead of landing

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"gate": self.gate, "passed": self.passed, "reason": self.reason}
        if self.until is not None:
            out["until"] = utc_text(self.until)
        if self.override:
            out["override"] = self.override
        if self.route:
            out["route"] = self.route
        return out


@dataclass(frozen=True)
class GateInput:
    """Everything the gates of one promotion may look at."""

    target: EnvConfig
    upstream: str
    moving: Mapping[str, str]  # artifact -> the upstream reference being promoted
    upstream_ledger: Sequence[Entry]
    target_ledger: Sequence[Entry]
    now: datetime
    approved_by: str = ""
    break_glass: str = ""
    rollback: bool = False


def live_since(ledger: Sequence[Entry], artifact: str, ref: str) -> datetime | None:
    """Since when ``ref`` has run continuously as ``artifact`` in the ledger's env (None: it does not)."""
    current: str | None = None
    since: datetime | None = None
    for entry in ledger:
        if entry.kind not in DEPLOYING or artifact not in entry.artifacts:
            continue
        new = entry.artifacts[artifact].new
        if new != current:
            current, since = new, entry.time
    return since if current == ref else None


def _human(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


def soak(inp: GateInput) -> Decision:
    """Each reference has run in the upstream env for at least the target's ``promotion.soak``."""
    need = inp.target.promotion.soak_time
    if inp.rollback:
        return Decision("soak", True, "rollback: soak does not apply")
    latest: datetime | None = None
    for artifact, ref in sorted(inp.moving.items()):
        since = live_since(inp.upstream_ledger, artifact, ref)
        if since is None:
            return Decision(
                "soak", False, f"{artifact}: no {inp.upstream} ledger entry brought {_short(ref)} there"
            )
        ready = since + need
        if ready > inp.now and (latest is None or ready > latest):
            latest = ready
    if latest is not None:
        return Decision(
            "soak",
            False,
            f"soak {inp.target.promotion.soak} in {inp.upstream} not met: "
            f"{_human(latest - inp.now)} remaining",
            until=latest,
        )
    return Decision(
        "soak", True, f"every artifact has run in {inp.upstream} for at least {inp.target.promotion.soak}"
    )


def freeze(inp: GateInput) -> Decision:
    """No promotion into the target inside one of its freeze windows (``--break-glass`` overrides)."""
    for window in inp.target.promotion.freeze_windows:
        if window.start <= inp.now < window.end:
            reason = f"frozen until {utc_text(window.end)}: {window.reason}"
            if inp.break_glass:
                return Decision("freeze", True, reason, until=window.end, override=inp.break_glass)
            return Decision("freeze", False, reason, until=window.end)
    return Decision("freeze", True, "no freeze window is open")


def approval(inp: GateInput) -> Decision:
    """With ``approvalRequired``, a promotion lands only with an approver; otherwise it goes for review."""
    if not inp.target.promotion.approval_required:
        return Decision("approval", True, "approval not required")
    if inp.approved_by:
        return Decision("approval", True, f"approved by {inp.approved_by}")
    return Decision(
        "approval",
        False,
        f"{inp.target.name} requires approval: without --approved-by it goes to a review branch",
        route="branch",
    )


def verified(inp: GateInput) -> Decision:
    """With ``requireVerified``, the upstream release carries a verification since it was deployed."""
    if not inp.target.promotion.require_verified or inp.rollback:
        return Decision("verified", True, "verification not required")
    deployed = [e for e in inp.upstream_ledger if e.kind in DEPLOYING]
    last = deployed[-1].time if deployed else None
    for entry in reversed(inp.upstream_ledger):
        if entry.kind == "verify" and (last is None or entry.time >= last):
            refs = {k: c.new for k, c in entry.artifacts.items()}
            if all(refs.get(k) == v for k, v in inp.moving.items()):
                return Decision("verified", True, f"verified: {entry.note or entry.id}")
    return Decision(
        "verified",
        False,
        f"{inp.upstream}'s release has no verification: run deliver verify-release --env {inp.upstream} "
        "--evidence URL after its smoke test",
    )


def hold(inp: GateInput) -> Decision:
    """No promotion into an env on hold (put there by a rollback, lifted by ``deliver hold release``)."""
    for entry in reversed(inp.target_ledger):
        if entry.kind == "release-hold":
            break
        if entry.kind in ("hold", "rollback"):
            return Decision(
                "hold",
                False,
                f"{inp.target.name} is on hold since {utc_text(entry.time)} ({entry.kind} {entry.id}); "
                f"lift it with: deliver hold release --env {inp.target.name}",
            )
    return Decision("hold", True, "not on hold")


Gate = Callable[[GateInput], Decision]
GATES: tuple[tuple[str, Gate], ...] = (
    ("hold", hold),
    ("freeze", freeze),
    ("soak", soak),
    ("verified", verified),
    ("approval", approval),
)


def evaluate(inp: GateInput) -> list[Decision]:
    """Every gate's decision, in the order they are shown."""
    return [gate(inp) for _, gate in GATES]


def _short(ref: str) -> str:
    """``<last part of the repository>@<12 hex>``: enough to tell artifacts apart in a reason."""
    return f"{ref.rpartition('@')[0].rsplit('/', 1)[-1]}@{short_digest(ref)}" if short_digest(ref) else ref
