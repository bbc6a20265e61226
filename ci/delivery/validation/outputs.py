"""Writers of validation results, one per format: text, JSON and JUnit XML.

- text: every finding (then every warning, prefixed ``warning:``) on stderr as ``Finding.render``
  shows it (``file: resource: [rule] at path what`` / ``  fix: …``), and one summary line per
  environment on stdout;
- JSON: one document ``{ok, findings, resources, warnings, environments: [...]}`` (``findings`` and
  ``warnings`` count; each environment lists them in full);
- JUnit XML: one testsuite per environment, one testcase per resource (files and repo-level findings
  get their own testcase).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import click

from delivery.core import console
from delivery.core.fsutil import atomic_write_text
from delivery.validation.findings import Finding, Report, Status


def failures(reports: Sequence[Report]) -> int:
    """How many findings fail validation, over all reports."""
    return sum(len(r.findings) for r in reports)


def summary_line(report: Report) -> str:
    """``ok   dev: 42 resources, 0 finding(s)[, 2 warning(s)]`` (``FAIL`` when a finding fails it)."""
    state = "FAIL" if report.status is Status.FAILURE else "ok  "
    warned = f", {len(report.warnings)} warning(s)" if report.warnings else ""
    return f"{state} {report.env}: {report.resources} resources, {len(report.findings)} finding(s){warned}"


def write_text(reports: Sequence[Report]) -> None:
    """The findings and warnings on stderr, then one summary line per environment on stdout."""
    for report in reports:
        for finding in report.findings:
            click.echo(finding.render(), err=True)
        for warning in report.warnings:
            click.echo(f"warning: {warning.render()}", err=True)
        click.echo(summary_line(report))


def json_document(reports: Sequence[Report]) -> dict[str, Any]:
    failed = failures(reports)
    return {
        "ok": not failed,
        "findings": failed,
        "resources": sum(r.resources for r in reports),
        "warnings": sum(len(r.warnings) for r in reports),
        "environments": [r.as_dict() for r in reports],
    }


def write_json(reports: Sequence[Report]) -> None:
    """The JSON document on stdout."""
    console.print_json(json_document(reports))


def junit_xml(reports: Sequence[Report]) -> str:
    """JUnit XML: one testsuite per environment, one testcase per resource (policy and file findings too)."""
    suites = ElementTree.Element("testsuites", name="deliver validate")
    total_tests = total_failures = 0
    for report in reports:
        by_case: dict[tuple[str, str], list[Finding]] = {case: [] for case in report.checked}
        for finding in report.findings:
            by_case.setdefault((finding.file, finding.resource), []).append(finding)
        suite = ElementTree.SubElement(suites, "testsuite", name=report.env)
        failed = 0
        for (file, resource), found in sorted(by_case.items()):
            case = ElementTree.SubElement(
                suite, "testcase", classname=f"{report.env}.{file}", name=resource or file
            )
            if found:
                failed += 1
                failure = ElementTree.SubElement(
                    case, "failure", message=found[0].what, type=",".join(sorted({f.rule for f in found}))
                )
                failure.text = "\n".join(f.render() for f in found)
        suite.set("tests", str(len(by_case)))
        suite.set("failures", str(failed))
        suite.set("errors", "0")
        suite.set("skipped", "0")
        total_tests += len(by_case)
        total_failures += failed
    suites.set("tests", str(total_tests))
    suites.set("failures", str(total_failures))
    ElementTree.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(suites, encoding="unicode") + "\n"
    )


def write_junit(reports: Sequence[Report], path: Path) -> None:
    """The JUnit XML report, written atomically to ``path``."""
    atomic_write_text(path, junit_xml(reports))
