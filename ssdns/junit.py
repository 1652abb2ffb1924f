"""Render a Result as a JUnit XML report, for CI systems that show test results.

Rendering only: nothing is recomputed. The layout:

- one ``<testsuite name="ssdns">`` (inside ``<testsuites name="ssdns">``) with the properties
  ``service``, ``namespace`` and ``statefulset`` (empty when pods were discovered);
- one ``<testcase>`` per distinct (check, subject), in the order findings first name them:
  ``classname`` is the check id (``http.identity``), ``name`` the subject (``web-1``), cases in the
  check registry's order;
- ``time`` of a case: how long the evidence it judged took to gather, in seconds (the pod's HTTP
  request for ``http.identity``, the pod's DNS lookups for per-pod DNS checks, the API read for ``api.*``,
  the whole DNS observation for Service-wide checks, the slowest step of the pod's convergence for
  ``restart.converged``; judging itself takes microseconds, so it would say nothing). The suite's
  ``time`` is the run's wall time;
- status ``fail``: the case has ``<failure message=... type=CHECK>``; several findings for the same
  (check, subject) make one case whose message joins the failing messages with ``"; "``; the failure
  text lists every failing message with its details, one per line;
- status ``warn``: the case passes (a warning does not fail the run, as with exit code 0), and the
  warning stays visible as ``<system-out>`` text ``WARN: <message>``, one line per warning (also on a
  case that fails for another finding);
- status ``pass``: a plain case.

The file is written atomically: a temporary file in the same directory, then ``os.replace``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile

from junitparser import Failure, JUnitXml, TestCase, TestSuite

from ssdns.errors import CannotRun
from ssdns.model import Finding, Result, Status

# XML 1.0 cannot carry most control characters, even escaped: drop them (a pod's body can hold anything),
# nor a lone surrogate (JSON's "\ud800", from an API answer: written as &#55296;, which no XML reader takes).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", str(text))


def _grouped(result: Result) -> dict[tuple[str, str], list[Finding]]:
    groups: dict[tuple[str, str], list[Finding]] = {}
    for f in result.findings:
        groups.setdefault((f.check, f.subject), []).append(f)
    return groups


def _case(check: str, subject: str, findings: list[Finding]) -> TestCase:
    times = [f.elapsed_ms for f in findings if f.elapsed_ms is not None]
    case = TestCase(name=_clean(subject), classname=_clean(check), time=round(max(times, default=0.0) / 1000, 6))
    failed = [f for f in findings if f.status is Status.FAIL]
    warned = [f for f in findings if f.status is Status.WARN]
    if failed:
        failure = Failure(message=_clean("; ".join(f.message for f in failed)), type_=_clean(check))
        lines = []
        for f in failed:
            lines.append(f.message)
            if f.details:
                lines.append("  details: " + json.dumps(f.details, sort_keys=True, default=str))
        failure.text = _clean("\n".join(lines))
        case.result = [failure]
    if warned:
        case.system_out = _clean("\n".join(f"WARN: {f.message}" for f in warned))
    return case


def build_junit(result: Result) -> JUnitXml:
    """The JUnit document for a Result (write_junit writes it)."""
    t = result.target
    suite = TestSuite("ssdns")
    suite.add_property("service", _clean(t.service or result.service.name))
    suite.add_property("namespace", _clean(t.namespace or ""))
    suite.add_property("statefulset", _clean(t.statefulset or ""))
    for (check, subject), findings in _grouped(result).items():
        suite.add_testcase(_case(check, subject, findings))
    xml = JUnitXml("ssdns")
    xml.add_testsuite(suite)
    xml.update_statistics()
    # The run's wall time, not the sum of the cases (update_statistics): their evidence was gathered at once.
    suite.time = xml.time = round(result.stats.elapsed_ms / 1000, 6)
    return xml


def write_junit(result: Result, path: str | os.PathLike) -> None:
    """Write the Result as JUnit XML to path, atomically (tmp file in the same directory + os.replace).

    A file that cannot be written (a missing directory, no permission) raises CannotRun with one line.
    """
    path = os.fspath(path)
    xml = build_junit(result)
    target = os.path.realpath(path)  # a symlink stays one: its target is replaced
    directory = os.path.dirname(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".ssdns-junit-", suffix=".xml.tmp", dir=directory)
    except OSError as exc:
        raise CannotRun(f"cannot write the JUnit report {path}: {exc.strerror or exc}; "
                        "check that its directory exists and is writable") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            xml.write(fh)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise CannotRun(f"cannot write the JUnit report {path}: {exc.strerror or exc}") from None
        raise
