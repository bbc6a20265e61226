"""``substrate-check`` with providers at hand (``--provider-mirror``): validate and module tests.

In a scratch copy of each env root (the tree is never written):
- ``init -backend=false`` + ``validate``: the root and its modules against the real provider schema;
- for every local module with test files (``tests/*.tftest.hcl``): ``init`` + ``test`` with the
  values that env's config gives (``-var-file``), so each environment's inputs are planned through
  the module under ``mock_provider`` and its assertions (the ecosystem's own module tests).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from delivery.core.console import ProgressReporter
from delivery.core.errors import ToolError, ValidationFailed
from delivery.substrate import inputs, runner, scratch
from delivery.substrate.hcl import Module
from delivery.substrate.tool import Tool

TEST_SUFFIX = ".tftest.hcl"
_SUMMARY = re.compile(r"(Success|Failure)! (\d+) passed, (\d+) failed")


def test_files(module: Module) -> list[Path]:
    """A module's test files: ``*.tftest.hcl`` in the module and in its ``tests/`` directory."""
    return sorted([*module.path.glob(f"*{TEST_SUFFIX}"), *(module.path / "tests").glob(f"*{TEST_SUFFIX}")])


@dataclass
class CheckOutcome:
    """What ``validate_and_test`` ran for one env."""

    env: str
    validated: bool = False
    tests: dict[str, int] = field(default_factory=dict)  # module (repo-relative) -> runs passed

    def as_dict(self) -> dict[str, object]:
        return {"env": self.env, "validated": self.validated, "tests": self.tests}


def validate_and_test(
    tool: Tool, prepared: runner.Prepared, mode: runner.Mode, reporter: ProgressReporter
) -> CheckOutcome:
    """Validate the env's root and run its modules' tests with the env's values, in a scratch copy."""
    outcome = CheckOutcome(prepared.cfg.name)
    tool = mode.tool(tool)
    with runner.workspace(prepared, mode, keep_lock=mode.mirror is None) as work:
        runner.init(tool, work, reporter, mode=mode, backend=False)
        runner.validate(tool, work)
        outcome.validated = True
        outcome.tests = module_tests(tool, work, reporter)
    return outcome


def module_tests(tool: Tool, work: runner.Prepared, reporter: ProgressReporter) -> dict[str, int]:
    """``test`` of every local module of a scratch copy (``work.workdir``) that has test files."""
    if work.workdir is None:
        raise ValueError("module tests run in a scratch copy (init writes into the module directory)")
    passed: dict[str, int] = {}
    for module in work.module.walk():
        if not test_files(module):
            continue
        rel = str(module.path.relative_to(work.repo.resolve()))
        where = scratch.module_dir(work.cwd, work.repo, work.module, module)
        passed[rel] = _test(tool, work, module, where, rel)
        reporter.line(f"test: {rel} ok with {work.cfg.name}'s values ({passed[rel]} runs)")
    return passed


def _test(tool: Tool, prepared: runner.Prepared, module: Module, where: Path, rel: str) -> int:
    env = prepared.cfg.name
    init = tool.run(["init", "-input=false", "-no-color", "-backend=false"], where)
    if init.code != 0:
        raise ToolError(
            f"`{tool.kind} init` of {rel} (for its tests) failed (exit {init.code}):\n{init.tail()}",
            where=rel,
            fix="check the module's required_providers and the provider mirror",
        )
    values = inputs.root_variables(prepared.cfg, set(module.variables))
    vars_file = where / f".deliver-{env}.tfvars.json"
    vars_file.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    result = tool.run(["test", "-no-color", f"-var-file={vars_file}"], where)
    summary = _SUMMARY.search(result.stdout)
    if result.code != 0 or not summary or summary.group(1) != "Success":
        raise ValidationFailed(
            f"`{tool.kind} test` of {rel} failed with {env}'s values (exit {result.code}):\n"
            + "\n".join((result.stdout + "\n" + result.stderr).strip().splitlines()[-40:]),
            where=f"{rel}/tests",
            fix=f"read the failed run's assertion above; fix the module (or the test), then run: "
            f"deliver substrate-check --env {env} --provider-mirror DIR",
        )
    return int(summary.group(2))
