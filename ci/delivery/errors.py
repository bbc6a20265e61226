"""One error family for the whole pipeline.

Every error says what went wrong, where, and how to fix it. The CLI prints it (never a traceback)
and exits non-zero; nothing is written when one is raised before a side effect.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One finding: where it is, what is wrong, and how to fix it."""

    where: str
    what: str
    fix: str = ""

    def render(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        return f"{text}\n  fix: {self.fix}" if self.fix else text

    def as_dict(self) -> dict[str, str]:
        return {"where": self.where, "what": self.what, "fix": self.fix}


class DeliveryError(Exception):
    """Base of every error the pipeline raises on purpose."""

    exit_code = 1

    def __init__(self, what: str, *, where: str = "", fix: str = "") -> None:
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

    exit_code = 2


class UsageError(DeliveryError):
    """The command was called with arguments that cannot work (unknown env, missing file...)."""

    exit_code = 2


class ToolError(DeliveryError):
    """An external tool (kubeconform, tofu, git...) is missing or failed."""


class ValidationFailed(DeliveryError):
    """Manifests, policies or images did not pass a check."""


class RegistryError(DeliveryError):
    """An OCI registry refused or broke a request."""


class SourceError(DeliveryError):
    """Model weights or another input source is missing, unsafe or does not match its pin."""


def raise_if(problems: Sequence[Problem], kind: type[DeliveryError] = DeliveryError) -> None:
    """Raise ``kind`` with all problems at once if there are any."""
    if problems:
        raise kind.of(problems)
