"""Writers of validation results: JUnit XML (one testcase per resource)."""

from collections.abc import Sequence
from xml.etree import ElementTree

from delivery.validation.findings import Finding, Report


def junit_xml(reports: Sequence[Report]) -> str:
    """JUnit XML: one testsuite per environment, one testcase per resource (policy and file findings too)."""
    suites = ElementTree.Element("testsuites", name="deliver validate")
    total_tests = total_failures = 0
    for report in reports:
        by_case: dict[tuple[str, str], list[Finding]] = {case: [] for case in report.checked}
        for finding in report.findings:
            by_case.setdefault((finding.file, finding.resource), []).append(finding)
        suite = ElementTree.SubElement(suites, "testsuite", name=report.env)
        failures = 0
        for (file, resource), found in sorted(by_case.items()):
            case = ElementTree.SubElement(
                suite, "testcase", classname=f"{report.env}.{file}", name=resource or file
            )
            if found:
                failures += 1
                failure = ElementTree.SubElement(
                    case, "failure", message=found[0].message, type=",".join(sorted({f.check for f in found}))
                )
                failure.text = "\n".join(f.render() for f in found)
        suite.set("tests", str(len(by_case)))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
        suite.set("skipped", "0")
        total_tests += len(by_case)
        total_failures += failures
    suites.set("tests", str(total_tests))
    suites.set("failures", str(total_failures))
    ElementTree.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(suites, encoding="unicode") + "\n"
    )
