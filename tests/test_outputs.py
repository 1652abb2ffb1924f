"""Renderers for unattended use (JUnit XML, Prometheus metrics, termination log), against real sandbox runs."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest
from junitparser import Failure, JUnitXml

from ssdns.check import run_check
from ssdns.model import Finding, Result, Status


def run(sb, **overrides) -> Result:
    """One real check of a sandbox (on its own thread) from a fresh loop in the test thread."""
    return asyncio.run(run_check(sb.sandbox.target(**overrides)))


@pytest.fixture
def swapped(sandbox_factory) -> Result:
    result = run(sandbox_factory(faults=["wrong-name:web-1=web-2"]))
    assert not result.ok
    return result


# --- JUnit -----------------------------------------------------------------------------------------

def test_junit_one_case_per_check_and_subject_with_the_swap_failing(swapped, tmp_path):
    from ssdns.junit import write_junit

    path = tmp_path / "ssdns.xml"
    write_junit(swapped, path)
    xml = JUnitXml.fromfile(str(path))
    [suite] = list(xml)
    assert suite.name == "ssdns"
    props = {p.name: p.value for p in suite.properties()}
    assert props == {"service": "nginx", "namespace": "default", "statefulset": "web"}
    cases = list(suite)
    assert len(cases) == len({(f.check, f.subject) for f in swapped.findings}) == suite.tests
    failing = [c for c in cases if not c.is_passed]
    assert [(c.classname, c.name) for c in failing] == [("http.identity", "web-1")]
    [failure] = failing[0].result
    assert isinstance(failure, Failure) and failure.type == "http.identity"
    assert "web-2" in failure.message and suite.failures == 1
    assert all(float(c.time) == 0 for c in cases)
    # plain XML readers see the same thing
    root = ET.parse(path).getroot()
    assert len(root.findall(".//testcase")) == len(cases)
    assert [p.name for p in tmp_path.iterdir()] == ["ssdns.xml"]  # no temporary file left behind


def test_junit_merges_findings_and_keeps_warnings_visible(sandbox, tmp_path):
    from ssdns.junit import write_junit

    base = run(sandbox)
    assert base.ok
    extra = [
        Finding("dns.srv", Status.FAIL, "other.example.", "not a pod of the Service"),
        Finding("dns.srv", Status.FAIL, "other.example.", "port 81, expected 80", {"port": 81}),
        Finding("dns.schema", Status.WARN, "dns-version.cluster.local", "TXT is \"1.0.0\"\x00"),
    ]
    result = Result(base.target, base.service, base.pods, base.findings + extra, stats=base.stats)
    path = tmp_path / "out.xml"
    write_junit(result, path)
    [suite] = list(JUnitXml.fromfile(str(path)))
    cases = {(c.classname, c.name): c for c in suite}
    assert len(cases) == len({(f.check, f.subject) for f in result.findings})
    srv = cases[("dns.srv", "other.example.")]
    [failure] = srv.result
    assert failure.message == "not a pod of the Service; port 81, expected 80"
    schema = cases[("dns.schema", "dns-version.cluster.local")]
    assert schema.is_passed and schema.system_out.startswith("WARN: TXT is")
    assert suite.failures == 1


# --- termination log -------------------------------------------------------------------------------

def test_termination_log_is_one_short_line(swapped, tmp_path):
    from ssdns.termination import write_termination_log

    path = tmp_path / "termination-log"
    path.write_text("")  # Kubernetes creates the file; ssdns only writes into an existing one
    assert write_termination_log(swapped, str(path)) is True
    data = path.read_bytes()
    assert 0 < len(data) <= 4096
    text = data.decode()
    assert len(text.splitlines()) == 1 and text.startswith("ssdns FAIL")
    assert "http.identity web-1" in text


def test_termination_log_truncates_to_4096_bytes(swapped, tmp_path):
    from ssdns.termination import write_termination_log

    long = Finding("http.identity", Status.FAIL, "web-0", "é\n" * 5000)
    result = Result(swapped.target, {"name": "x" * 5000}, swapped.pods, [long], stats=swapped.stats)
    path = tmp_path / "termination-log"
    path.write_text("old content " * 1000)
    assert write_termination_log(result, str(path)) is True
    data = path.read_bytes()
    assert len(data) <= 4096 and len(data.decode().splitlines()) == 1


def test_termination_log_skipped_silently(swapped, tmp_path):
    from ssdns.termination import write_termination_log

    assert write_termination_log(swapped, str(tmp_path / "no-such-dir" / "termination-log")) is False
    assert write_termination_log(swapped, str(tmp_path / "absent")) is False
    assert not (tmp_path / "absent").exists()  # never created: only Kubernetes creates it
    assert write_termination_log(swapped, str(tmp_path)) is False  # a directory
