"""Renderers for unattended use (JUnit XML, Prometheus metrics, termination log), against real sandbox runs."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import ipaddress
import re
import socket
import threading
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from junitparser import Failure, JUnitXml

from ssdns.check import run_check
from ssdns.converge import Convergence
from ssdns.errors import CannotRun, UsageError
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
    # each case's time is how long its evidence took: the pod's HTTP request for http.identity
    web1 = next(p for p in swapped.pods if p.name == "web-1")
    assert float(failing[0].time) == pytest.approx(web1.http.elapsed_ms / 1000, abs=1e-6) and web1.http.elapsed_ms > 0
    assert all(float(c.time) > 0 for c in cases)
    assert float(suite.time) == pytest.approx(swapped.stats.elapsed_ms / 1000, abs=1e-6)
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
        # A lone surrogate (JSON's "\ud800", from a forged API answer): XML 1.0 has no place for it either
        Finding("http.identity", Status.FAIL, "web-\ud800", "answers as x\udfffy"),
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
    assert cases[("http.identity", "web-\ufffd")].result[0].message == "answers as x\ufffdy"
    ET.parse(path)  # a strict XML reader takes it (a character reference to a surrogate is no XML)
    assert suite.failures == 2


def test_junit_unwritable_path_is_one_line(swapped, tmp_path):
    from ssdns.junit import write_junit

    with pytest.raises(CannotRun) as exc:
        write_junit(swapped, tmp_path / "missing" / "ssdns.xml")
    assert "\n" not in str(exc.value) and "ssdns.xml" in str(exc.value)
    target = tmp_path / "is-a-dir"
    target.mkdir()
    with pytest.raises(CannotRun):
        write_junit(swapped, target)
    assert [p.name for p in tmp_path.iterdir()] == ["is-a-dir"]  # the temporary file is cleaned up


# --- Prometheus metrics ----------------------------------------------------------------------------

def parse_metrics(text: str) -> dict[str, list]:
    from prometheus_client.parser import text_string_to_metric_families

    return {fam.name: fam.samples for fam in text_string_to_metric_families(text)}


def sample(families, name, **labels):
    [value] = [s.value for s in families[name] if all(s.labels.get(k) == v for k, v in labels.items())]
    return value


def assert_bounded_labels(families) -> None:
    ipv4 = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
    for samples in families.values():
        for s in samples:
            for key, value in s.labels.items():
                assert not any(c.isspace() for c in value), (s.name, key, value)
                assert not ipv4.search(value), (s.name, key, value)
                try:
                    ipaddress.ip_address(value)
                except ValueError:
                    pass
                else:
                    raise AssertionError(f"IP address as label value: {s.name}{{{key}={value!r}}}")
            assert set(s.labels) <= {"namespace", "statefulset", "service", "check", "ordinal", "status",
                                     "cluster"}, s.labels


def test_metrics_file_renders_the_swap(swapped, tmp_path):
    from ssdns.metrics import write_metrics_file

    path = tmp_path / "ssdns.prom"
    restarted = [Convergence("web-0", 0, "u0", [], ready_s=3.5, dns_s=4.25),
                 Convergence("web-1", 1, "u1", [], http_s=6.0)]
    swapped = dataclasses.replace(swapped, stats=dataclasses.replace(swapped.stats, restart=restarted))
    write_metrics_file(swapped, path, extra={"cluster": "kind"}, timestamp=1700000000.5)
    assert [p.name for p in tmp_path.iterdir()] == ["ssdns.prom"]  # atomic: no temporary file left
    fams = parse_metrics(path.read_text())
    assert_bounded_labels(fams)
    ident = {"namespace": "default", "statefulset": "web", "cluster": "kind"}
    for s in (s for samples in fams.values() for s in samples):
        assert {k: s.labels.get(k) for k in ident} == ident

    checks = {(s.labels["check"], s.labels["ordinal"]): s.value for s in fams["ssdns_check_ok"]}
    assert checks[("http.identity", "1")] == 0
    assert all(v == 1 for k, v in checks.items() if k != ("http.identity", "1"))
    assert len(checks) == len({(f.check, f.subject) for f in swapped.findings})
    assert checks[("dns.service", "")] == 1 and checks[("pods.ordinals", "")] == 1

    assert sample(fams, "ssdns_run_ok") == 0
    assert sample(fams, "ssdns_findings", status="fail") == 1
    assert sample(fams, "ssdns_findings", status="warn") == 0
    assert sample(fams, "ssdns_findings", status="pass") == swapped.count(Status.PASS)
    assert sample(fams, "ssdns_run_dns_queries") == swapped.stats.dns_queries
    assert sample(fams, "ssdns_run_http_requests") == swapped.stats.http_requests == 3
    assert sample(fams, "ssdns_run_duration_seconds") == pytest.approx(swapped.stats.elapsed_ms / 1000)
    assert sample(fams, "ssdns_last_run_timestamp_seconds") == 1700000000.5
    for pod in swapped.pods:
        o = str(pod.ordinal)
        assert sample(fams, "ssdns_http_latency_seconds", ordinal=o) == pytest.approx(pod.http.elapsed_ms / 1000, abs=1e-6)
        [lk] = [lk for lk in swapped.lookups if lk.name == pod.fqdn and lk.rdtype == "A"]
        assert sample(fams, "ssdns_dns_latency_seconds", ordinal=o) == pytest.approx(lk.elapsed_ms / 1000, abs=1e-6)
    assert {s.labels["ordinal"]: s.value for s in fams["ssdns_restart_ready_seconds"]} == {"0": 3.5}
    assert {s.labels["ordinal"]: s.value for s in fams["ssdns_restart_dns_seconds"]} == {"0": 4.25}
    assert {s.labels["ordinal"]: s.value for s in fams["ssdns_restart_http_seconds"]} == {"1": 6.0}


def test_metrics_without_statefulset_use_service_and_skip_missing_values(sandbox, tmp_path):
    from ssdns.metrics import write_metrics_file

    result = run(sandbox, statefulset=None, replicas=None, http=False)
    path = tmp_path / "m.prom"
    write_metrics_file(result, path)
    fams = parse_metrics(path.read_text())
    assert_bounded_labels(fams)
    assert sample(fams, "ssdns_run_ok", service="nginx", namespace="default") == 1
    assert all("statefulset" not in s.labels for samples in fams.values() for s in samples)
    assert "ssdns_http_latency_seconds" not in fams and "ssdns_restart_ready_seconds" not in fams
    assert {s.labels["ordinal"] for s in fams["ssdns_dns_latency_seconds"]} == {"0", "1", "2"}
    assert all(s.value == 1 for s in fams["ssdns_check_ok"])


def test_metrics_file_errors_are_one_line(swapped, tmp_path):
    from ssdns.metrics import write_metrics_file

    with pytest.raises(CannotRun) as exc:
        write_metrics_file(swapped, tmp_path / "missing" / "m.prom")
    assert "\n" not in str(exc.value) and "m.prom" in str(exc.value)
    for bad in ({"bad label": "x"}, {"check": "x"}, {"cluster": "has space"}, {"__x": "y"}):
        with pytest.raises(UsageError):
            write_metrics_file(swapped, tmp_path / "m.prom", extra=bad)


class Gateway:
    """A tiny Pushgateway stand-in on 127.0.0.1: records each request, answers with `status`."""

    def __init__(self, status: int = 200):
        self.requests: list[dict] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                gateway.requests.append({"method": self.command, "path": self.path,
                                         "headers": dict(self.headers), "body": body.decode()})
                self.send_response(gateway.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PUT = do_POST = _any

            def log_message(self, *args):
                pass

        self.status = status
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def gateway():
    gw = Gateway()
    yield gw
    gw.close()


def test_push_to_a_gateway(swapped, gateway):
    from ssdns.metrics import push_metrics

    push_metrics(swapped, gateway.url, timeout=5)
    [req] = gateway.requests
    assert req["method"] == "PUT"
    assert req["path"] == "/metrics/job/ssdns/namespace/default/statefulset/web"
    fams = parse_metrics(req["body"])
    assert_bounded_labels(fams)
    assert sample(fams, "ssdns_check_ok", check="http.identity", ordinal="1") == 0
    assert sample(fams, "ssdns_run_ok") == 0


def test_push_with_job_extra_labels_and_basic_auth(swapped, gateway):
    from ssdns.metrics import push_metrics

    url = gateway.url.replace("http://", "http://ci:s%40cret@") + "/"
    push_metrics(swapped, url, job="nightly", extra={"cluster": "kind"}, timeout=5)
    [req] = gateway.requests
    assert req["path"] == "/metrics/job/nightly/cluster/kind/namespace/default/statefulset/web"
    assert req["headers"]["Authorization"] == "Basic " + base64.b64encode(b"ci:s@cret").decode()


def test_push_failures_are_cannot_run_with_one_line(swapped):
    from ssdns.metrics import push_metrics

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    refusing = Gateway(status=400)
    try:
        cases = {
            f"http://127.0.0.1:{closed}": "refused",
            f"http://user:hunter2@127.0.0.1:{closed}": "refused",
            f"user:hunter2@127.0.0.1:{closed}": "refused",
            refusing.url: "HTTP 400",
            "http://[::1": "Invalid IPv6",
            "ftp://127.0.0.1/": "only http:// and https://",
            "http://127.0.0.1:notaport/": "Port",
        }
        for url, why in cases.items():
            with pytest.raises(CannotRun) as exc:
                push_metrics(swapped, url, timeout=3)
            message = str(exc.value)
            assert "\n" not in message and why in message, message
            assert message.startswith("cannot push metrics to the Pushgateway at ")
            assert "hunter2" not in message
        assert len(refusing.requests) == 1
    finally:
        refusing.close()


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
    service = dataclasses.replace(swapped.service, name="x" * 5000)
    result = Result(swapped.target, service, swapped.pods, [long], stats=swapped.stats)
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


def test_text_report_shows_the_restart_and_scale_sections(swapped):
    from ssdns.model import ScaleSummary
    from ssdns.report import render_text

    restarted = [Convergence("web-2", 2, "u2", [], ready_s=1.25, dns_s=2.5, stale=["1.0s: 10.0.0.3"]),
                 Convergence("web-1", 1, "u1", [], error="Ready not reached before the deadline")]
    stats = dataclasses.replace(swapped.stats, restart=restarted, scale=ScaleSummary(3, 1, ["web-2", "web-1"], []))
    text = render_text(dataclasses.replace(swapped, stats=stats))
    lines = text.splitlines()
    i = lines.index("Restart:")
    assert lines[i + 2].split() == ["web-2", "1.2", "s", "2.5", "s", "-", "1"]
    assert lines[i + 3].split() == ["web-1", "-", "-", "-", "0"]
    assert "Scale: 3 -> 1 -> 3; removed web-2, web-1; returned -" in lines


def test_fleet_junit_of_a_statefulset_not_checked_is_xml_whatever_the_error_quotes(tmp_path):
    """The error of a StatefulSet that could not be checked quotes the API (its Status message): a control
    character or a lone surrogate there is replaced, so strict XML readers take the file."""
    from ssdns.fleet import Entry, FleetResult, Selection
    from ssdns.fleet_report import write_fleet_junit

    fr = FleetResult(Selection("default"), [Entry("default", "web", "nginx", 3, error="API says \x1b[31m\ud800 no",
                                                  exit_code=4)], [])
    path = tmp_path / "fleet.xml"
    write_fleet_junit(fr, str(path))
    [failure] = ET.parse(path).getroot().iter("failure")
    assert failure.get("message") == "not checked: API says \ufffd[31m\ufffd no"
