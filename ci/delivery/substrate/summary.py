"""A saved plan's ``show -json`` turned into what a reviewer needs: what is created, changed, destroyed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
