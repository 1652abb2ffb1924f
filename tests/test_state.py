"""State across runs with a file store: identity held or broken, bounded history, no lost writes."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import run_cli, run_json


def held(report, pod):
    return next(f for f in report["findings"] if f["check"] == "identity.held" and f["subject"] == pod)


def test_first_run_starts_history_then_a_restart_with_a_new_ip_holds(sandbox, tmp_path):
    state = tmp_path / "state.json"
    code, report = run_json(sandbox.args("--state", str(state)))
    assert code == 0 and any("first run" in n for n in report["notes"])
    doc = json.loads(state.read_text())
    assert doc["schema"] == "ssdns.state/v1" and len(doc["history"]) == 1
    assert doc["history"][0]["pods"]["1"]["identity"] == "web-1"

    old = sandbox.world.pod("web-1").ip
    sandbox.change(lambda w: setattr(w.pod("web-1"), "ip", w.allocate_ip()))  # DNS and HTTP move together
    code, report = run_json(sandbox.args("--state", str(state)))
    assert code == 0
    f = held(report, "web-1")
    assert f["status"] == "pass" and f"new IP ({old} -> " in f["message"] and "identity held" in f["message"]
    assert held(report, "web-0")["message"] == "unchanged: same pod, same identity"


def test_stale_dns_after_a_change_fails(sandbox, tmp_path):
    state = str(tmp_path / "s.json")
    run_json(sandbox.args("--state", state))
    old = sandbox.world.pod("web-2").ip

    def move_but_keep_dns(w):
        p = w.pod("web-2")
        p.dns_ip, p.ip = p.ip, w.allocate_ip()
    sandbox.change(move_but_keep_dns)
    # Without the API, ssdns sees the pod's IP only through DNS, so report the swap the HTTP way:
    # the old IP no longer answers (nothing listens there).
    code, report = run_json(sandbox.args("--state", state))
    assert code == 1
    failed = [(f["check"], f["subject"]) for f in report["findings"] if f["status"] == "fail"]
    assert failed == [("http.identity", "web-2")]
    http = next(f for f in report["findings"] if f["check"] == "http.identity" and f["subject"] == "web-2")
    assert http["details"]["url"].startswith(f"http://{old}:") and "cannot connect" in http["message"]


def test_identity_swap_after_restart_fails(sandbox, tmp_path):
    state = str(tmp_path / "s.json")
    run_json(sandbox.args("--state", state))
    sandbox.change(lambda w: setattr(w.pod("web-0"), "answer_as", "web-1"))
    code, report = run_json(sandbox.args("--state", state))
    assert code == 1
    f = held(report, "web-0")
    assert f["status"] == "fail" and "answers as 'web-1'" in f["message"]


def test_ordinal_gone_fails_and_history_shows_the_timeline(sandbox, tmp_path):
    state = str(tmp_path / "s.json")
    run_json(sandbox.args("--state", state))
    sandbox.change(lambda w: setattr(w.pod("web-2"), "in_dns", False))
    code, report = run_json(sandbox.args("--state", state))
    assert code == 1 and held(report, "web-2")["status"] == "fail" and "gone" in held(report, "web-2")["message"]
    code, out, _ = run_cli(["history", "--state", state])
    assert code == 0
    lines = out.strip().splitlines()
    assert "2 of 2 snapshots" in lines[0]
    assert lines[-2].split()[1:3] == ["PASS", "3"]
    assert lines[-1].split()[1] == "FAIL" and "web-2 gone" in lines[-1] and "identity broke: web-2" in lines[-1]


def test_history_is_bounded(sandbox, tmp_path):
    state = str(tmp_path / "s.json")
    for _ in range(5):
        run_json(sandbox.args("--state", state, "--history", "3"))
    assert len(json.loads(open(state).read())["history"]) == 3


def test_corrupt_or_foreign_state_is_reported_and_left_untouched(sandbox, tmp_path):
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{not json")
    code, report = run_json(sandbox.args("--state", str(corrupt)))
    assert code == 1
    [f] = [f for f in report["findings"] if f["check"] == "state.store"]
    assert f["status"] == "fail" and "not valid JSON" in f["message"]
    assert corrupt.read_text() == "{not json"

    foreign = tmp_path / "foreign.json"
    doc = {"schema": "ssdns.state/v1", "target": {"namespace": "prod", "statefulset": "db", "service": "db"},
           "history": [{"taken_at": "x", "ok": True, "pods": {}}]}
    foreign.write_text(json.dumps(doc))
    before = foreign.read_bytes()
    code, report = run_json(sandbox.args("--state", str(foreign)))
    assert code == 1 and "holds the history of" in next(
        f["message"] for f in report["findings"] if f["check"] == "state.store")
    assert foreign.read_bytes() == before


def test_overlapping_runs_lose_no_history(sandbox, tmp_path):
    state = str(tmp_path / "s.json")
    cmd = [sys.executable, "-m", "ssdns", *sandbox.args("--state", state, "--no-http", "--output", "json")]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(6)]
    for p in procs:
        assert p.wait(timeout=60) == 0, p.stderr.read()
    assert len(json.loads(open(state).read())["history"]) == 6
    assert not list(tmp_path.glob(".s.json.*.tmp"))


def test_overlapping_runs_sharing_one_configmap_lose_no_history(sandbox, tmp_path):
    """Six runs at once against one ConfigMap: resourceVersion conflicts are retried, none overwrites another."""
    # Six processes starting at once on a 2-core machine: the deadline is not what this test is about.
    args = sandbox.api_args(tmp_path, "--state", "configmap:ssdns-state", "--no-http", "--output", "json",
                            "--timeout", "30")
    cmd = [sys.executable, "-m", "ssdns", *args]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(6)]
    for p in procs:
        assert p.wait(timeout=60) == 0, p.stderr.read()
    code, out, _ = run_cli(["history", "--state", "configmap:ssdns-state", "--kubeconfig",
                            str(tmp_path / "kubeconfig"), "--output", "json"])
    assert code == 0 and len(json.loads(out)["history"]) == 6
    puts = [r for r in sandbox.sandbox.api.requests if r.resource == "configmaps" and r.verb in ("create", "update")]
    assert len([r for r in puts if r.status < 300]) == 6  # one successful write per run
    assert len(puts) >= 6  # more than six when runs collided and retried


def test_configmap_that_is_not_ours_is_left_untouched(sandbox, tmp_path):
    from ssdns.sandbox.world import SandboxConfigMap

    sandbox.change(lambda w: w.create_configmap(SandboxConfigMap(name="app-config", data={"key": "value"})))
    code, report = run_json(sandbox.api_args(tmp_path, "--state", "configmap:app-config"))
    assert code == 1
    [f] = [f for f in report["findings"] if f["check"] == "state.store"]
    assert "is not ssdns's" in f["message"]
    assert sandbox.world.configmaps["app-config"].data == {"key": "value"}


def test_with_the_api_a_restart_is_seen_by_uid_and_stale_dns_fails(sandbox, tmp_path):
    from ssdns.sandbox import apply_fault

    state = str(tmp_path / "s.json")
    code, _ = run_json(sandbox.api_args(tmp_path, "--state", state))
    assert code == 0
    old_uid, old_ip = sandbox.world.pod("web-1").uid, sandbox.world.pod("web-1").ip
    sandbox.change(lambda w: apply_fault(w, "stale-dns:web-1"))  # replaced: new uid and IP, DNS keeps the old
    code, report = run_json(sandbox.api_args(tmp_path, "--state", state))
    assert code == 1
    f = held(report, "web-1")
    assert f["status"] == "fail" and f"restarted (uid {old_uid[:8]} -> " in f["message"]
    assert f"DNS still serves the old IP {old_ip}" in f["message"]
    snap = json.loads(open(state).read())["history"][-1]
    assert snap["pods"]["1"]["uid"] == sandbox.world.pod("web-1").uid and snap["broken"] == ["web-1"]


def test_with_the_api_a_changed_volume_fails(sandbox, tmp_path):
    state = str(tmp_path / "s.json")
    run_json(sandbox.api_args(tmp_path, "--state", state))
    old = sandbox.world.pvcs[2].volume_name
    sandbox.change(lambda w: setattr(w.pvcs[2], "volume_name", "pvc-brand-new"))
    code, report = run_json(sandbox.api_args(tmp_path, "--state", state))
    assert code == 1
    f = held(report, "web-2")
    assert f["status"] == "fail" and f"www-web-2 is bound to a different volume ({old} -> pvc-brand-new)" in f["message"]


def test_history_is_trimmed_to_fit_a_configmap():
    from ssdns.state import MAX_BYTES, append, new_doc

    big = {"taken_at": "t", "pods": {str(i): {"name": f"web-{i}", "pad": "x" * 1000} for i in range(100)}}
    doc = new_doc({"namespace": "default", "statefulset": "web", "service": "nginx"})
    for _ in range(20):
        doc = append(doc, big, keep=50)
    assert 1 <= len(doc["history"]) < 20 and len(json.dumps(doc)) <= MAX_BYTES
