"""The vocabulary of validation results: a ``Status``, one ``Finding`` and the ``Report`` of one environment.

A finding is a ``Problem`` (``delivery.core.errors``) of one resource: where it is (a core ``Location``:
the repo-relative file, the line when known, and the JSON path inside the resource as its key), the
resource, the rule that found it, what is wrong and how to fix it, and whether it fails validation
(``Status.FAILURE``) or only has to stay visible (``Status.WARNING``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from delivery.core.errors import Location, Problem


class Status(StrEnum):
    """How a result counts: ``OK`` passes, ``WARNING`` passes but is shown, ``FAILURE`` fails validation."""

    OK = "ok"
    WARNING = "warning"
    FAILURE = "failure"


@dataclass(frozen=True)
class Finding:
    """One problem in one resource, found by ``rule`` ("kubeconform", "yaml" or a policy rule id).

    ``resource`` is ``Kind/namespace/name`` (or another named thing, e.g. an OpenTofu address; empty
    for a whole file or directory). ``check``, ``message``, ``file`` and ``path`` are the names the
    JSON document uses for ``rule``, ``what``, ``where.file`` and ``where.key``.
    """

    where: Location
    resource: str
    rule: str
    what: str
    fix: str = ""
    status: Status = Status.FAILURE

    @classmethod
    def at(
        cls,
        file: str,
        resource: str,
        rule: str,
        what: str,
        fix: str = "",
        *,
        path: str = "",
        line: int | None = None,
        status: Status = Status.FAILURE,
    ) -> Finding:
        """A finding in ``file`` (at ``line`` and JSON ``path`` when known)."""
        return cls(Location(file, line, path), resource, rule, what, fix, status)

    @property
    def file(self) -> str:
        return self.where.file

    @property
    def line(self) -> int | None:
        return self.where.line

    @property
    def path(self) -> str:
        return self.where.key

    @property
    def check(self) -> str:
        return self.rule

    @property
    def message(self) -> str:
        return self.what

    def problem(self) -> Problem:
        """The finding as a core ``Problem``: ``file[:line]: resource`` is where, ``[rule] at path what``."""
        place = f"{self.file}:{self.line}" if self.line else self.file
        if self.resource:
            place = f"{place}: {self.resource}" if place else self.resource
        at = f" at {self.path}" if self.path else ""
        return Problem(place, f"[{self.rule}]{at} {self.what}", self.fix)

    def render(self) -> str:
        """``file[:line]: resource: [rule] at path what``, then ``  fix: …`` (``Problem.render``)."""
        return self.problem().render()

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "resource": self.resource,
            "check": self.rule,
            "message": self.what,
            "path": self.path,
            "fix": self.fix,
            "status": str(self.status),
        }


@dataclass(frozen=True)
class Report:
    """The result of validating one environment: how many resources were checked and what was found.

    ``results`` holds every finding; ``findings`` are those that fail validation, ``warnings`` those
    that are allowed but visible (e.g. an unpublished modelcar).
    """

    env: str
    resources: int
    results: tuple[Finding, ...] = ()
    # every resource checked, as (file, resource), for per-resource reports such as JUnit
    checked: tuple[tuple[str, str], ...] = ()

    @property
    def findings(self) -> list[Finding]:
        return [f for f in self.results if f.status is Status.FAILURE]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.results if f.status is Status.WARNING]

    @property
    def status(self) -> Status:
        if self.findings:
            return Status.FAILURE
        return Status.WARNING if self.warnings else Status.OK

    @property
    def ok(self) -> bool:
        return self.status is not Status.FAILURE

    def as_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "ok": self.ok,
            "resources": self.resources,
            "findings": [f.as_dict() for f in self.findings],
            "warnings": [w.as_dict() for w in self.warnings],
        }
