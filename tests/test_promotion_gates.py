"""The promotion gates are pure functions of (config, ledgers, what moves, now): each decision tested."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from delivery.config import EnvConfig, load_env
from delivery.config.model import Promotion
from delivery.promotion.gates import GateInput, approval, evaluate, freeze, hold, live_since, soak, verified
from delivery.release import Change, Entry

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
REF_A = "reg.example/dev/m@sha256:" + "a" * 64
REF_B = "reg.example/dev/m@sha256:" + "b" * 64


def staging(**promotion: Any) -> EnvConfig:
    cfg = load_env(REPO, "staging")
    return cfg.model_copy(update={"promotion": Promotion.model_validate({"from": "dev", **promotion})})


def entry(kind: str, when: datetime, env: str = "dev", ref: str = REF_A, note: str = "", n: int = 0) -> Entry:
    return Entry(
        id=f"{when:%Y%m%dT%H%M%SZ}-{env}-{n:08x}",
        time=when,
        actor="t",
        kind=kind,
        env=env,
        artifacts={"m": Change(None, ref)},
        note=note,
    )


def inp(cfg: EnvConfig, upstream: list[Entry] = (), target: list[Entry] = (), **kw: Any) -> GateInput:  # type: ignore[assignment]
    return GateInput(cfg, "dev", {"m": REF_A}, list(upstream), list(target), NOW, **kw)


def test_soak_counts_from_the_entry_that_brought_the_digest() -> None:
    cfg = staging(soak="24h")
    fresh = [entry("publish", NOW - timedelta(hours=3))]
    decision = soak(inp(cfg, fresh))
    assert not decision.passed
    assert decision.until == NOW + timedelta(hours=21)
    assert "21h00m remaining" in decision.reason
    assert soak(inp(cfg, [entry("publish", NOW - timedelta(hours=25))])).passed


def test_soak_restarts_when_the_digest_left_and_came_back() -> None:
    cfg = staging(soak="24h")
    ledger = [
        entry("publish", NOW - timedelta(days=5), n=1),
        entry("publish", NOW - timedelta(days=4), ref=REF_B, n=2),
        entry("rollback", NOW - timedelta(hours=2), n=3),
    ]
    assert live_since(ledger, "m", REF_A) == NOW - timedelta(hours=2)
    assert not soak(inp(cfg, ledger)).passed


def test_soak_refuses_a_digest_upstream_does_not_run() -> None:
    decision = soak(inp(staging(soak="1h"), [entry("publish", NOW - timedelta(days=3), ref=REF_B)]))
    assert not decision.passed and "no dev ledger entry brought" in decision.reason


def test_soak_does_not_apply_to_a_rollback() -> None:
    assert soak(inp(staging(soak="24h"), [], rollback=True)).passed


WINDOW = {"start": "2026-12-01T00:00:00Z", "end": "2026-12-03T00:00:00Z", "reason": "year-end freeze"}


def test_freeze_refuses_inside_a_window_and_says_when_it_ends() -> None:
    decision = freeze(inp(staging(freezeWindows=[WINDOW])))
    assert not decision.passed
    assert decision.reason == "frozen until 2026-12-03T00:00:00Z: year-end freeze"
    assert decision.until == datetime(2026, 12, 3, tzinfo=UTC)


def test_freeze_break_glass_passes_and_is_recorded() -> None:
    decision = freeze(inp(staging(freezeWindows=[WINDOW]), break_glass="sev1 fix"))
    assert decision.passed and decision.override == "sev1 fix"
    assert decision.as_dict()["override"] == "sev1 fix"


def test_freeze_outside_every_window_passes() -> None:
    later = {**WINDOW, "start": "2026-12-20T00:00:00Z", "end": "2026-12-27T00:00:00Z"}
    assert freeze(inp(staging(freezeWindows=[later]))).passed


def test_approval_routes_to_a_branch_without_an_approver() -> None:
    decision = approval(inp(staging(approvalRequired=True)))
    assert not decision.passed and decision.route == "branch"
    assert approval(inp(staging(approvalRequired=True), approved_by="alice")).passed
    assert approval(inp(staging())).passed


def test_verified_needs_a_verification_after_the_last_deploy() -> None:
    cfg = staging(requireVerified=True)
    deployed = entry("publish", NOW - timedelta(hours=5), n=1)
    assert not verified(inp(cfg, [deployed])).passed
    ok = [deployed, entry("verify", NOW - timedelta(hours=4), note="https://ci/run/1", n=2)]
    decision = verified(inp(cfg, ok))
    assert decision.passed and "https://ci/run/1" in decision.reason
    stale = [entry("verify", NOW - timedelta(hours=6), n=3), deployed]
    assert not verified(inp(cfg, stale)).passed
    assert verified(inp(staging(), [deployed])).passed  # not required


def test_hold_after_a_rollback_until_released() -> None:
    cfg = staging()
    rolled = [entry("rollback", NOW - timedelta(hours=1), env="staging", n=1)]
    decision = hold(inp(cfg, target=rolled))
    assert not decision.passed and "deliver hold release --env staging" in decision.reason
    released = [*rolled, entry("release-hold", NOW - timedelta(minutes=5), env="staging", n=2)]
    assert hold(inp(cfg, target=released)).passed


def test_evaluate_reports_every_gate_in_order() -> None:
    decisions = evaluate(inp(staging(soak="1h"), [entry("publish", NOW - timedelta(hours=2))]))
    assert [d.gate for d in decisions] == ["hold", "freeze", "soak", "verified", "approval"]
    assert all(d.passed for d in decisions)


@pytest.mark.parametrize("bad", ["not-a-time", "2026-12-02T10:00:00"])
def test_cli_clock_override_is_checked(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from delivery.core.errors import UsageError
    from delivery.promotion.cli import _now

    monkeypatch.setenv("DELIVER_NOW", bad)
    with pytest.raises(UsageError):
        _now()
