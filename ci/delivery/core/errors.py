"""One error family for the whole pipeline, and the one exit policy.

Every problem says what went wrong, where (a typed ``Location``: file, line, key) and how to fix it.
The CLI prints it once as ``error: …`` / ``fix: …`` (never a traceback) and exits with the error's
code; nothing is written when one is raised before a side effect.

Exit policy of every command, one rule:
- ``EXIT_OK`` (0): all is well.
- ``EXIT_BAD_INPUT`` (2): what the command was given cannot work as it is (its arguments, an
  environment config, a spec, a plan file, a source directory, a file it must read), so running it
  again unchanged can only fail the same way. It is refused before the step changes anything.
- ``EXIT_FAILED`` (1): the input was usable and the step ran, but it failed or found problems
  (validation findings, drift, a gate that holds, a plan the state has moved past, a file changed
  while read, a tool, a registry or the network failing).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


@dataclass(frozen=True)
class Location:
    """Where a problem is: a file (or another named place, e.g. ``$VAR`` or ``command line``), an
    optional 1-based line, and an optional key path inside the document."""

    file: str = ""
    line: int | None = None
    key: str = ""

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}" if self.line else self.file
        if self.key:
            return f"{text}: {self.key}" if text else self.key
        return text

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "key": self.key}


def at(where: Location | str) -> Location:
    """``where`` as a Location (a plain string names a place without a line)."""
    return where if isinstance(where, Location) else Location(where)


class Problem:
    """One problem: where it is, what is wrong, and how to fix it (immutable)."""

    __slots__ = ("fix", "what", "where")

    where: Location
    what: str
    fix: str

    def __init__(self, where: Location | str, what: str, fix: str = "") -> None:
        object.__setattr__(self, "where", at(where))
        object.__setattr__(self, "what", what)
        object.__setattr__(self, "fix", fix)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Problem is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Problem):
            return NotImplemented
        return (self.where, self.what, self.fix) == (other.where, other.what, other.fix)

    def __hash__(self) -> int:
        return hash((self.where, self.what, self.fix))

    def __repr__(self) -> str:
        return f"Problem({self.where!r}, {self.what!r}, {self.fix!r})"

    def render(self) -> str:
        where = str(self.where)
        text = f"{where}: {self.what}" if where else self.what
        return f"{text}\n  fix: {self.fix}" if self.fix else text

    def as_dict(self) -> dict[str, object]:
        return {
            "where": str(self.where),
            "location": self.where.as_dict(),
            "what": self.what,
            "fix": self.fix,
        }


class DeliveryError(Exception):
    """Base of every error the pipeline raises on purpose."""

    exit_code = EXIT_FAILED

    def __init__(self, what: str, *, where: Location | str = "", fix: str = "") -> None:
        self.problems: tuple[Problem, ...] = (Problem(where, what, fix),)
        super().__init__(self.render())

    @classmethod
    def of(cls, problems: Iterable[Problem]) -> DeliveryError:
        """Build one error carrying several problems (all findings of a file, reported at once)."""
        found = tuple(problems)
        if not found:
            raise ValueError("an error needs at least one problem")
        err = cls(found[0].what, where=found[0].where, fix=found[0].fix)
        err.problems = found
        err.args = (err.render(),)
        return err

    def render(self) -> str:
        return "\n".join(p.render() for p in self.problems)

    def as_dict(self) -> dict[str, object]:
        return {"error": type(self).__name__, "problems": [p.as_dict() for p in self.problems]}


class ConfigError(DeliveryError):
    """An environment config (or a spec file) is invalid."""

    exit_code = EXIT_BAD_INPUT


class UsageError(DeliveryError):
    """The command was called with arguments that cannot work (unknown env, missing file...)."""

    exit_code = EXIT_BAD_INPUT


class ToolError(DeliveryError):
    """An external tool (kubeconform, tofu, git...) is missing or failed."""


class ValidationFailed(DeliveryError):
    """Manifests, policies or images did not pass a check."""


class RegistryError(DeliveryError):
    """An OCI registry refused or broke a request."""


class SourceError(DeliveryError):
    """Model weights or another input source could not be fetched or read, or changed while read."""


class BadSourceError(SourceError):
    """The source given cannot be used as it is: unsafe, unreadable, empty, damaged or not found.

    Bad input (exit 2): running again unchanged can only fail the same way; the source (or the spec
    that points at it) must be fixed first.
    """

    exit_code = EXIT_BAD_INPUT


def raise_if(problems: Sequence[Problem], kind: type[DeliveryError] = DeliveryError) -> None:
    """Raise ``kind`` with all problems at once if there are any."""
    if problems:
        raise kind.of(problems)
