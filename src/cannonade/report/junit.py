"""``--junit FILE``: a run's thresholds as JUnit XML, so a CI system shows each one as
a test (passed, or failed with what was measured) without parsing our own formats.

The shape is the common denominator CI systems read (Jenkins, GitLab, GitHub actions
that parse JUnit): ``<testsuites>`` holding one ``<testsuite>`` with counts, and one
``<testcase>`` per threshold whose ``<failure>`` carries the measured value. A run
without thresholds is a suite of zero tests; a run that failed as a whole (no agents, a
broken scenario) says so in ``<system-err>``, since no threshold stands for it.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from cannonade.model.summary import Summary
from cannonade.model.thresholds import ThresholdResult
from cannonade.report.outputs import write_atomic
from cannonade.report.text import measured_text


def testcase_name(r: ThresholdResult) -> str:
    """``http_req_duration: p(95)<200``: the selector and the condition, as the
    summary's THRESHOLDS section groups them."""
    return f"{r.threshold.selector}: {r.threshold.condition}"


def _seconds(x: float) -> str:
    return f"{x:.3f}" if math.isfinite(x) else "0"


def junit_element(summary: Summary) -> ET.Element:
    info = summary.info
    tests = len(summary.thresholds)
    failures = len(summary.failed_thresholds)
    counts = {
        "tests": str(tests),
        "failures": str(failures),
        "errors": "1" if info.error else "0",
        "skipped": "0",
        "time": _seconds(info.duration),
    }
    root = ET.Element("testsuites", {"name": "cannonade", **counts})
    name = f"cannonade {info.scenario or 'run'}" + (f" {info.run_id}" if info.run_id else "")
    suite = ET.SubElement(
        root,
        "testsuite",
        {
            "name": name,
            **counts,
            # JUnit's timestamp is ISO 8601 without a zone; ours is UTC.
            "timestamp": datetime.fromtimestamp(info.started, UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    props = ET.SubElement(suite, "properties")
    for key, value in (
        ("run_id", info.run_id),
        ("scenario", info.scenario),
        ("verdict", summary.verdict),
        ("interrupted", str(info.interrupted).lower()),
        ("requests", str(summary.totals.requests)),
    ):
        ET.SubElement(props, "property", {"name": key, "value": value})
    for r in summary.thresholds:
        t = r.threshold
        case = ET.SubElement(
            suite,
            "testcase",
            # classname groups the cases by metric in CI views, as the summary does.
            {"classname": f"thresholds.{t.metric}", "name": testcase_name(r), "time": "0"},
        )
        if not r.passed:
            measured = measured_text(r)
            failure = ET.SubElement(case, "failure", {"message": measured, "type": "threshold"})
            # The message is what the summary prints; the body repeats the expression.
            failure.text = f"threshold '{t.source}' failed: {measured}"
    if info.error:
        ET.SubElement(suite, "system-err").text = info.error
    return root


def junit_xml(summary: Summary) -> bytes:
    root = junit_element(summary)
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def write_junit(summary: Summary, path: Path) -> None:
    write_atomic(path, junit_xml(summary))
