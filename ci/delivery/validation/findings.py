"""The vocabulary of validation results: one ``Finding`` (file, resource, rule, message, path, fix) and
the ``Report`` of one environment."""

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Finding:
    """One problem in one resource: ``check`` is "kubeconform" or a policy rule id.

    ``file`` is relative to the repo; ``resource`` is ``Kind/namespace/name``; ``path`` is the JSON
    path inside the resource when known (e.g. ``/spec/template/spec/containers/0/image``).
    """

    file: str
    resource: str
    check: str
    message: str
    path: str = ""

    def render(self) -> str:
        where = f"{self.file}: {self.resource}" if self.resource else self.file
        at = f" at {self.path}" if self.path else ""
        return f"{where}: [{self.check}]{at} {self.message}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Report:
    """The result of validating one environment: how many resources were checked and what failed."""

    env: str
    resources: int
    findings: list[Finding] = field(default_factory=list)
    # allowed but visible (e.g. an unpublished modelcar); they do not fail validation
    warnings: list[Finding] = field(default_factory=list)
    # every resource checked, as (file, resource), for per-resource reports such as JUnit
    checked: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "ok": self.ok,
            "resources": self.resources,
            "findings": [f.as_dict() for f in self.findings],
            "warnings": [w.as_dict() for w in self.warnings],
        }
