"""`ssdns sandbox --statefulsets N` and `ssdns demo --statefulsets N`: several StatefulSets to try check --all on,
a fault aimed at one of them, and the printed command that checks them all (run from another process)."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys

import pytest
from conftest import run_cli

from ssdns.sandbox import make_world
from ssdns.sandbox.fleet import add_statefulsets, apply_fleet_fault, fleet_name


def test_sandbox_statefulsets_prints_check_all_that_works_from_another_process(tmp_path):
    kubeconfig = tmp_path / "sandbox.kubeconfig"
    sb = subprocess.Popen([sys.executable, "-m", "ssdns", "sandbox", "--statefulsets", "3", "--pods", "2",
                           "--fault", "web-b/selector-mismatch", "--duration", "60", "--kubeconfig-out",
                           str(kubeconfig)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [sb.stdout.readline() for _ in range(6)]
        assert "3 StatefulSets in namespace default (web, web-b, web-c;" in lines[0] and "2 pods each" in lines[0]
        assert lines[2].startswith("check them all")
        cmd = shlex.split(lines[3])
        assert cmd[:3] == ["ssdns", "check", "--all"] and "--kubeconfig" in cmd
        assert lines[4].startswith("or one of them") and shlex.split(lines[5])[:2] == ["ssdns", "check"]
        check = subprocess.run([sys.executable, "-m", "ssdns", *cmd[1:], "--output", "json"],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 1, check.stderr
        doc = json.loads(check.stdout)
        verdicts = {r["target"]["statefulset"]: r["ok"] for r in doc["results"]}
        assert verdicts == {"web": True, "web-b": False, "web-c": True}
        web_b = next(r for r in doc["results"] if r["target"]["statefulset"] == "web-b")
        assert any(f["check"] == "wiring.selector" and f["status"] == "fail" for f in web_b["findings"])
    finally:
        sb.send_signal(signal.SIGTERM)
        assert sb.wait(timeout=10) == 0


def test_demo_statefulsets_shows_the_fleet_summary_with_the_failing_row():
    code, out, err = run_cli(["demo", "--statefulsets", "3", "--fault", "web-c/not-headless", "--color", "never"])
    assert code == 1, err
    lines = out.splitlines()
    assert lines[0].startswith("ssdns check: 3 StatefulSets in namespace 'default': 1 failed")
    rows = {line.split()[1]: line.split() for line in lines[3:6]}
    assert rows["web"][4] == "ok" and rows["web-b"][4] == "ok" and rows["web-c"][4] == "FAIL"
    assert "=== default/web-c ===" in out and "not headless" in out


def test_a_fault_naming_a_pod_breaks_that_pods_statefulset():
    code, out, err = run_cli(["demo", "--statefulsets", "2", "--fault", "no-http:web-b-1", "-o", "json"])
    doc = json.loads(out)
    assert code == 1 and doc["schema"] == "ssdns.fleet/v1"
    failed = {r["target"]["statefulset"]: [(f["check"], f["subject"]) for f in r["findings"] if f["status"] == "fail"]
              for r in doc["results"]}
    assert failed == {"web": [], "web-b": [("http.identity", "web-b-1")]}


def test_one_statefulset_is_as_before():
    code, out, err = run_cli(["demo", "--fault", "web/no-http:web-1", "-o", "json"])
    doc = json.loads(out)
    assert code == 1 and doc["schema"] == "ssdns.check/v1"
    assert [f["subject"] for f in doc["findings"] if f["status"] == "fail"] == ["web-1"]


@pytest.mark.parametrize("argv, words", [
    (["demo", "--statefulsets", "3", "--no-api"], "drop --no-api"),
    (["sandbox", "--statefulsets", "2", "--no-api", "--duration", "1"], "drop --no-api"),
    (["demo", "--statefulsets", "0"], "from 1 to 100"),
    (["demo", "--statefulsets", "101"], "from 1 to 100"),
    (["demo", "--statefulsets", "2", "--fault", "web-q/not-headless"], "no StatefulSet 'web-q' in the sandbox (it has "
     "web, web-b)"),
    (["demo", "--statefulsets", "2", "--fault", "web-b/replica-down:1"], "the whole sandbox's"),
    (["demo", "--statefulsets", "2", "--fault", "web-b/no-http:web-9"], "no pod 'web-9'"),
    (["demo", "--statefulsets", "2", "--fault", "no-http:web-b-7"], "no pod 'web-b-7'"),
    (["demo", "--statefulsets", "2", "--pods", "1001"], "at most 1000 pods each"),
])
def test_bad_input_is_one_line_exit_2(argv, words):
    code, out, err = run_cli(argv)
    assert (code, out) == (2, "") and words in err and len(err.strip().splitlines()) == 1


def test_names_read_as_statefulsets_not_ordinals():
    assert [fleet_name(i) for i in (0, 1, 2, 25, 26, 27)] == ["web", "web-b", "web-c", "web-z", "web-ba", "web-bb"]
    world = make_world(2)
    added = add_statefulsets(world, 30, 2)
    names = [world.statefulset, *(n.statefulset for n in added)]
    assert len(set(names)) == 30 and all(n.service == n.statefulset for n in added)
    ips = [p.ip for w in [world, *added] for p in w.pods]
    assert len(set(ips)) == len(ips) == 60  # each on its own addresses
    apply_fleet_fault(world, "web-bd/not-headless")
    assert [n.statefulset for n in added if n.svc is not None and n.svc.cluster_ip] == ["web-bd"]
