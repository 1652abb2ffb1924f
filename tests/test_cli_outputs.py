"""The CLI writes JUnit, metrics and the termination log from the same run it prints."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from prometheus_client.parser import text_string_to_metric_families

from conftest import run_cli, run_json


def test_junit_metrics_and_termination_log_from_one_run(sandbox_factory, tmp_path):
    sb = sandbox_factory(faults=["wrong-name:web-1=web-2"])
    junit, prom, term = tmp_path / "r.xml", tmp_path / "m.prom", tmp_path / "termination-log"
    term.write_text("")  # Kubernetes creates the file; ssdns only writes to it when it exists
    code, report = run_json(sb.args("--junit", str(junit), "--metrics-file", str(prom),
                                    "--termination-log", str(term)))
    assert code == 1
    cases = ET.parse(junit).getroot().iter("testcase")
    failed = [(c.get("classname"), c.get("name")) for c in cases if c.find("failure") is not None]
    assert failed == [("http.identity", "web-1")]
    samples = {(s.name, s.labels.get("check"), s.labels.get("ordinal")): s.value
               for fam in text_string_to_metric_families(prom.read_text()) for s in fam.samples}
    assert samples[("ssdns_check_ok", "http.identity", "1")] == 0
    assert samples[("ssdns_check_ok", "http.identity", "0")] == 1
    assert samples[("ssdns_run_ok", None, None)] == 0
    assert samples[("ssdns_run_dns_queries", None, None)] == report["stats"]["dns_queries"]
    line = term.read_text()
    assert line.startswith("ssdns FAIL") and "web-1" in line and line.count("\n") == 1


def test_termination_log_is_not_created_when_absent(sandbox, tmp_path):
    code, _, _ = run_cli(sandbox.args("--termination-log", str(tmp_path / "absent")))
    assert code == 0 and not (tmp_path / "absent").exists()


def test_unwritable_junit_path_is_one_line_exit_3_after_the_report(sandbox, tmp_path):
    code, out, err = run_cli(sandbox.args("--junit", str(tmp_path / "no" / "such" / "dir" / "x.xml")))
    assert code == 3 and "PASS" in out
    assert len(err.strip().splitlines()) == 1 and err.startswith("ssdns: error:")


def test_colour_only_when_asked_or_on_a_terminal(sandbox, monkeypatch):
    _, out, _ = run_cli(sandbox.args("--color", "always"))
    assert "\x1b[32m" in out
    _, out, _ = run_cli(sandbox.args())  # stdout is not a terminal here
    assert "\x1b[" not in out
    from ssdns.commands import use_colour

    class Tty:
        def isatty(self):
            return True
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_colour("auto", Tty()) is True
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_colour("auto", Tty()) is False
