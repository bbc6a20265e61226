"""A saved plan's ``show -json`` turned into what a reviewer needs: what is created, changed, destroyed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from delivery.core.errors import Problem, UsageError, ValidationFailed, raise_if

# resource_changes[].change.actions -> our action name (see OpenTofu's JSON output format)
_ACTIONS: dict[tuple[str, ...], str] = {
    ("create",): "create",
    ("update",): "update",
    ("delete",): "delete",
    ("delete", "create"): "replace",
    ("create", "delete"): "replace",
    ("forget",): "forget",
}
ORDER = ("create", "update", "replace", "delete", "forget")
DESTRUCTIVE = ("replace", "delete")


@dataclass(frozen=True)
class Change:
    """One resource the plan would touch."""

    action: str
    address: str
    reason: str = ""

    def as_dict(self) -> dict[str, str]:
        out = {"action": self.action, "address": self.address}
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class PlanSummary:
    """Changes of a plan, grouped by action."""

    changes: tuple[Change, ...] = ()
    output_changes: tuple[str, ...] = field(default=())

    def addresses(self, action: str) -> list[str]:
        return [c.address for c in self.changes if c.action == action]

    @property
    def destructive(self) -> list[Change]:
        """Changes that destroy something (deletes and both orders of replace)."""
        return [c for c in self.changes if c.action in DESTRUCTIVE]

    @property
    def has_changes(self) -> bool:
        return bool(self.changes or self.output_changes)

    def counts(self) -> dict[str, int]:
        return {a: len(self.addresses(a)) for a in ORDER}

    def as_dict(self) -> dict[str, Any]:
        return {
            "changes": self.has_changes,
            "counts": self.counts(),
            **{f"{a}s": self.addresses(a) for a in ORDER},
            "resources": [c.as_dict() for c in self.changes],
            "output_changes": list(self.output_changes),
        }

    def table(self) -> str:
        """A fixed-width table of the changes and a one-line count (for people and CI logs)."""
        if not self.changes:
            note = f" ({len(self.output_changes)} output(s) change)" if self.output_changes else ""
            return f"No resource changes.{note}\n"
        width = max(len(c.address) for c in self.changes)
        lines = [f"{'ACTION':<8}  {'ADDRESS':<{width}}  REASON"]
        for c in self.changes:
            lines.append(f"{c.action:<8}  {c.address:<{width}}  {c.reason}".rstrip())
        counts = self.counts()
        lines.append("Plan: " + ", ".join(f"{counts[a]} to {a}" for a in ORDER if counts[a] or a != "forget"))
        return "\n".join(lines) + "\n"


def summarize(plan_json: dict[str, Any]) -> PlanSummary:
    """Summarize ``tofu show -json PLAN`` (managed resources only; reads and no-ops are left out)."""
    changes = []
    for rc in plan_json.get("resource_changes") or []:
        if rc.get("mode", "managed") != "managed":
            continue
        actions = tuple(rc.get("change", {}).get("actions") or ())
        action = _ACTIONS.get(actions)
        if action is None:
            continue  # no-op, read
        changes.append(Change(action, str(rc.get("address", "")), str(rc.get("action_reason", ""))))
    changes.sort(key=lambda c: (ORDER.index(c.action), c.address))
    outputs = tuple(
        sorted(
            name
            for name, oc in (plan_json.get("output_changes") or {}).items()
            if tuple(oc.get("actions") or ()) not in {("no-op",), ()}
        )
    )
    return PlanSummary(tuple(changes), outputs)


def gate(summary: PlanSummary, approved: Iterable[str], where: str) -> None:
    """Every delete and replace needs its address approved; approvals must name such a change.

    An approval of an address the plan does not delete or replace is a wrong argument (exit 2,
    with every other problem listed too); unapproved deletes alone are the gate holding (exit 1).
    """
    destructive = {c.address: c.action for c in summary.destructive}
    approved_set = set(approved)
    wrong = [
        Problem(
            where,
            f"approved address {a!r} is not deleted or replaced by this plan",
            "approve only addresses the plan deletes or replaces (see plan.json)",
        )
        for a in sorted(approved_set - set(destructive))
    ]
    held = [
        Problem(
            where,
            f"plan would {destructive[a]} {a} and that was not approved",
            f"review the plan; to allow it pass --approve-delete '{a}'",
        )
        for a in sorted(set(destructive) - approved_set)
    ]
    raise_if(wrong + held, UsageError if wrong else ValidationFailed)
