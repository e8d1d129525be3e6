"""The JUnit XML report of a validation run, for CI systems.

Each check is a test case: a failed error-severity check is a ``<failure>``, a skipped check
is ``<skipped>``, and a failed warning stays a passing test case with its message in
``<system-out>`` (JUnit has no warnings, and a warning must not fail a CI build).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from warroom.deployment.checks import FAILED, SKIPPED
from warroom.deployment.runner import ValidationReport

__all__ = ["junit_xml"]


def junit_xml(report: ValidationReport) -> bytes:
    failures = sum(1 for result in report.results if result.blocking)
    skipped = sum(1 for result in report.results if result.status == SKIPPED)
    suite = ET.Element(
        "testsuite",
        name="warroom deployment validation",
        tests=str(len(report.results)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        time=f"{report.duration_seconds:.3f}",
        timestamp=report.started_at.isoformat(),
    )
    properties = ET.SubElement(suite, "properties")
    for key, value in (("version", report.version), ("git_commit", report.git_commit)):
        if value:
            ET.SubElement(properties, "property", name=key, value=value)
    for result in report.results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"warroom.deployment.{result.severity}",
            name=result.name,
            time=f"{result.duration_seconds:.3f}",
        )
        if result.blocking:
            ET.SubElement(case, "failure", message=result.message, type="CheckFailed")
        elif result.status == SKIPPED:
            ET.SubElement(case, "skipped", message=result.message)
        elif result.status == FAILED:
            ET.SubElement(case, "system-out").text = f"WARNING: {result.message}"
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"
