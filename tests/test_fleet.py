"""check --all / -l / -A / --exclude: the real CLI against one sandbox serving several StatefulSets (and
namespaces) over real sockets: one summary, details of the failing ones, JSON, JUnit, metrics, exit codes."""

from __future__ import annotations

import json
import time

import pytest
from conftest import run_cli

from ssdns.sandbox import apply_fault
from ssdns.sandbox.world import add_neighbour


@pytest.fixture
def cluster(sandbox_factory, tmp_path):
    """web (3 pods, default) + db (2, default) + cache (2, namespace other), healthy; returns (sandbox, args)."""
    sb = sandbox_factory()

    def grow(w):
        add_neighbour(w, "db", 2)
        add_neighbour(w, "cache", 2, namespace="other")

    sb.change(grow)
    kubeconfig = sb.sandbox.write_kubeconfig(tmp_path / "kubeconfig")

    def args(*extra: str) -> list[str]:
        return ["check", *extra, "--kubeconfig", str(kubeconfig), "--nameserver", str(sb.sandbox.nameserver),
                "--cluster-domain", sb.world.zone, "--timeout", "10"]
    return sb, args


def neighbour(sb, name):
    return next(n for n in sb.world.neighbours if n.statefulset == name)


def run_json(argv):
    code, out, err = run_cli([*argv, "-o", "json"])
    assert out, err
    return code, json.loads(out)


def test_all_checks_every_statefulset_of_the_namespace(cluster):
    sb, args = cluster
    code, doc = run_json(args("--all"))
    assert code == 0 and doc["ok"] is True and doc["schema"] == "ssdns.fleet/v1"
    assert [(r["target"]["namespace"], r["target"]["statefulset"]) for r in doc["results"]] == [
        ("default", "db"), ("default", "web")]
    for r in doc["results"]:  # each in the single check's schema, API cross-check included
        assert r["schema"] == "ssdns.check/v1" and r["ok"] and r["target"]["api"] == "on"
    assert doc["summary"] == {"statefulsets": 2, "pass": 2, "warn": 0, "fail": 0, "error": 0, "skipped": 0,
                              "exit_code": 0}
    assert {r["target"]["service"] for r in doc["results"]} == {"nginx", "db"}
    assert doc["stats"]["http_requests"] == 5


def test_one_report_summary_then_details_of_the_failing_only_worst_exit_code(cluster):
    sb, args = cluster

    def break_db(w):
        apply_fault(neighbour(sb, "db"), "no-service")
        add_neighbour(w, "queue", 2)
        apply_fault(neighbour(sb, "queue"), "not-headless")
    sb.change(break_db)
    code, out, err = run_cli(args("--all"))
    assert code == 1, err
    lines = out.splitlines()
    assert lines[0].startswith("ssdns check: 3 StatefulSets in namespace 'default': 2 failed")
    header = lines[2].split()
    assert header == ["NAMESPACE", "STATEFULSET", "SERVICE", "PODS", "VERDICT", "WORST", "FINDING"]
    rows = {line.split()[1]: line for line in lines[3:6]}
    assert "FAIL" in rows["db"] and "api.service db: the Service 'db' does not exist" in rows["db"]
    assert "FAIL" in rows["queue"] and "not headless" in rows["queue"]
    assert rows["web"].split()[3:5] == ["3/3", "ok"]
    assert "=== default/db ===" in out and "=== default/queue ===" in out and "=== default/web ===" not in out
    assert lines[-1].startswith("FAIL: 3 StatefulSets in namespace 'default': 2 failed") and "(exit 1)" in lines[-1]


def test_selector_picks_statefulsets_by_label(cluster):
    sb, args = cluster
    code, doc = run_json(args("-l", "app=db"))
    assert code == 0 and [r["target"]["statefulset"] for r in doc["results"]] == ["db"]
    assert doc["selection"]["selector"] == "app=db"


def test_all_namespaces_exclude_and_the_opt_out_annotation(cluster):
    sb, args = cluster
    sb.change(lambda w: neighbour(sb, "db").sts.annotations.update({"ssdns/skip": "true"}))
    code, doc = run_json(args("-A", "--exclude", "default/web"))
    assert code == 0
    assert [(r["target"]["namespace"], r["target"]["statefulset"]) for r in doc["results"]] == [("other", "cache")]
    assert doc["skipped"] == [{"namespace": "default", "statefulset": "db", "reason": 'annotation ssdns/skip: "true"'},
                              {"namespace": "default", "statefulset": "web", "reason": "--exclude"}]


def test_junit_has_one_suite_per_statefulset_and_metrics_are_labelled_by_it(cluster, tmp_path):
    sb, args = cluster
    sb.change(lambda w: apply_fault(neighbour(sb, "db"), "no-http:db-1"))
    junit, prom = tmp_path / "j.xml", tmp_path / "m.prom"
    code, out, err = run_cli(args("--all", "--junit", str(junit), "--metrics-file", str(prom)))
    assert code == 1, err
    from junitparser import JUnitXml

    suites = {s.name: s for s in JUnitXml.fromfile(str(junit))}
    assert set(suites) == {"default/db", "default/web"}
    assert suites["default/db"].failures == 1 and suites["default/web"].failures == 0
    text = prom.read_text()
    assert 'ssdns_statefulset_ok{namespace="default",statefulset="db"} 0.0' in text
    assert 'ssdns_statefulset_ok{namespace="default",statefulset="web"} 1.0' in text
    assert 'ssdns_check_ok{check="http.identity",namespace="default",statefulset="db"} 0.0' in text
    assert 'ordinal=' not in text  # bounded: no per-pod series across a fleet


@pytest.mark.parametrize("extra, code, words", [
    (("-l", "app=nothing"), 5, "no StatefulSet in namespace 'default', selector 'app=nothing' matches"),
    (("--all", "-n", "nope"), 5, "no StatefulSet in namespace 'nope': nothing to check (does the namespace exist?"),
    (("-l", "app in (db"), 2, "--selector 'app in (db' does not parse"),
    (("--all", "--exclude", "default/web", "--exclude", "db"), 5, "all 2 StatefulSets in namespace 'default' are "
     "excluded"),
    (("--all", "--api", "off"), 2, "drop --api off"),
    (("--all", "--statefulset", "web"), 2, "drop --statefulset"),
    (("-A", "-n", "default"), 2, "-A checks every namespace"),
    (("--exclude", "default/web"), 2, "give one of those"),
    (("--all", "--nodelocal", "127.0.0.1"), 2, "--nodelocal is used only with --resolvers all"),
])
def test_bad_input_is_one_line_with_its_exit_code(cluster, extra, code, words):
    sb, args = cluster
    got, out, err = run_cli(args(*extra))
    assert (got, out) == (code, "") and words in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_nothing_to_check_is_said_in_the_unattended_outputs_too(cluster, tmp_path):
    """Exit 5 is not a pass: a CronJob whose StatefulSets are gone must not keep showing the last good run's
    metrics (ssdns_run_ok 1) or termination message; the outputs say what the one line says."""
    sb, args = cluster
    term, junit, prom = tmp_path / "termination-log", tmp_path / "j.xml", tmp_path / "m.prom"
    term.write_text("")
    outputs = ("--termination-log", str(term), "--junit", str(junit), "--metrics-file", str(prom))
    assert run_cli(args("--all", *outputs))[0] == 0
    assert "\nssdns_run_ok 1.0" in prom.read_text()
    code, out, err = run_cli(args("-l", "app=gone", *outputs))
    assert (code, out) == (5, "") and len(err.strip().splitlines()) == 1 and "nothing to check" in err
    assert term.read_text().startswith("ssdns could not run (exit 5): no StatefulSet in namespace 'default', "
                                       "selector 'app=gone' matches")
    text = prom.read_text()
    assert "ssdns_run_ok{" in text and "ssdns_run_ok 1.0" not in text
    assert 'ssdns_check_ok{check="ssdns.run"' in text and "} 0.0" in text
    assert "nothing to check" in junit.read_text() and "<failure" in junit.read_text()


def test_all_without_api_access_exits_4(sandbox, tmp_path):
    code, out, err = run_cli(["check", "--all", "--nameserver", str(sandbox.sandbox.nameserver)])
    assert code == 4 and "need the Kubernetes API" in err and len(err.strip().splitlines()) == 1
    sandbox.change(lambda w: w.api_forbidden.add("statefulsets"))
    kubeconfig = sandbox.sandbox.write_kubeconfig(tmp_path / "kc")
    code, out, err = run_cli(["check", "--all", "--kubeconfig", str(kubeconfig), "--nameserver",
                              str(sandbox.sandbox.nameserver)])
    assert code == 4 and "grant verb 'list' on 'statefulsets' to ssdns's ServiceAccount (k8s/rbac.yaml)" in err
    assert err.count("grant verb") == 1, err  # said once (it was said twice)


def test_one_deadline_for_the_whole_run(sandbox_factory, tmp_path):
    """Forty StatefulSets whose pods all hang on HTTP: the run ends at --timeout, not forty times it."""
    sb = sandbox_factory()

    def grow(w):
        for i in range(40):
            n = add_neighbour(w, f"s{i}", 2)
            for pod in n.pods:
                pod.http_hang = True
    sb.change(grow)
    kubeconfig = sb.sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    start = time.monotonic()
    code, out, err = run_cli(["check", "--all", "--kubeconfig", str(kubeconfig), "--nameserver",
                              str(sb.sandbox.nameserver), "--timeout", "3", "-o", "json"])
    took = time.monotonic() - start
    assert took < 3 + 2.0, took
    doc = json.loads(out)
    assert code in (1, 3) and doc["summary"]["statefulsets"] == 41
    assert doc["summary"]["pass"] <= 1  # web's pods answer; every s* pod hangs until the deadline


def test_state_keeps_one_history_per_statefulset_in_one_store(cluster, tmp_path):
    sb, args = cluster
    state = tmp_path / "fleet-state.json"
    code, doc = run_json(args("--all", "--state", str(state)))
    assert code == 0
    stored = json.loads(state.read_text())
    assert stored["schema"] == "ssdns.fleet-state/v1"
    assert sorted(stored["statefulsets"]) == ["default/db", "default/web"]
    assert all(len(s["history"]) == 1 for s in stored["statefulsets"].values())
    sb.change(lambda w: w.replace_pod("web-1"))  # web-1 restarts on a new IP: identity holds
    code, doc = run_json(args("--all", "--state", str(state)))
    assert code == 0, [f for r in doc["results"] for f in r["findings"] if f["status"] == "fail"]
    web = next(r for r in doc["results"] if r["target"]["statefulset"] == "web")
    held = {f["subject"]: f for f in web["findings"] if f["check"] == "identity.held"}
    assert "restarted" in held["web-1"]["message"] and held["web-1"]["status"] == "pass"
    stored = json.loads(state.read_text())
    assert [len(s["history"]) for s in stored["statefulsets"].values()] == [2, 2]
    # -l app=db keeps web's history as it was
    run_json(args("-l", "app=db", "--state", str(state)))
    stored = json.loads(state.read_text())
    assert len(stored["statefulsets"]["default/db"]["history"]) == 3
    assert len(stored["statefulsets"]["default/web"]["history"]) == 2


def test_a_single_check_state_is_not_taken_for_a_fleet_one(cluster, tmp_path):
    sb, args = cluster
    state = tmp_path / "one.json"
    state.write_text('{"schema": "ssdns.state/v1", "target": {}, "history": []}')
    before = state.read_bytes()
    code, doc = run_json(args("--all", "--state", str(state)))
    assert code == 1 and state.read_bytes() == before
    for r in doc["results"]:
        [f] = [f for f in r["findings"] if f["check"] == "state.store"]
        assert "is not a state of check --all" in f["message"]


def test_json_is_streamed_result_by_result_as_the_whole_document_would_read(cluster):
    """-o json writes one StatefulSet's result at a time (bounded memory); the text is exactly the whole
    document's, laid out by jsonout as render_fleet_json does."""
    from ssdns import jsonout
    from ssdns.fleet_report import FLEET_EXPAND

    sb, args = cluster
    sb.change(lambda w: apply_fault(neighbour(sb, "db"), "no-http:db-1"))
    code, out, err = run_cli(args("-A", "-o", "json"))
    doc = json.loads(out)
    assert code == 1 and len(doc["results"]) == 3 and out == jsonout.dumps(doc, expand=FLEET_EXPAND) + "\n"
    assert '\n      "findings": [\n        {"check": ' in out  # a finding per line, as a single check's
    assert list(doc) == ["schema", "ok", "summary", "selection", "results", "errors", "skipped", "notes", "stats"]
    code, out, err = run_cli(args("-A", "-o", "json", "--exclude", "default/web", "--exclude", "default/db",
                                  "--exclude", "other/cache", "--exclude", "other/nope"))
    assert (code, out) == (5, "") and "note: --exclude other/nope: no such StatefulSet" in err


def test_notes_for_an_exclude_that_names_nothing_and_an_odd_opt_out_value(cluster):
    sb, args = cluster
    sb.change(lambda w: neighbour(sb, "db").sts.annotations.update({"ssdns/skip": "yes"}))
    code, out, err = run_cli(args("--all", "--exclude", "wbe", "--color", "never"))
    assert code == 0, err
    assert "note: default/db has annotation ssdns/skip: 'yes', which is neither \"true\" nor \"false\": checked; " \
        "to leave it out: kubectl annotate sts db -n default --overwrite ssdns/skip=true" in out
    assert "note: --exclude default/wbe: no such StatefulSet in namespace 'default' (a typo?" in out
    code, doc = run_json(args("--all", "--exclude", "wbe"))
    assert [r["target"]["statefulset"] for r in doc["results"]] == ["db", "web"] and len(doc["notes"]) == 2
    for value, skipped in (("True", True), (" true ", True), ("false", False), ("", False)):
        sb.change(lambda w, v=value: neighbour(sb, "db").sts.annotations.update({"ssdns/skip": v}))
        code, doc = run_json(args("--all"))
        assert (doc["skipped"] != []) is skipped and doc["notes"] == [], value


def test_a_refused_read_of_a_statefulsets_objects_is_its_exit_4_naming_the_grant(cluster):
    sb, args = cluster
    sb.change(lambda w: w.api_forbidden.add("pods"))
    code, doc = run_json(args("-A"))
    assert code == 4 and doc["summary"]["error"] == 3 and doc["results"] == []
    for e in doc["errors"]:
        assert e["exit_code"] == 4 and "cannot list pods" in e["message"]
        assert "with -A: the ClusterRole in k8s/cluster-wide/" in e["message"]
    code, doc = run_json(args("--all"))
    assert code == 4 and all("(k8s/rbac.yaml)" in e["message"] for e in doc["errors"])


def test_all_namespaces_without_the_clusterrole_is_one_line_exit_4(cluster):
    sb, args = cluster
    sb.change(lambda w: w.api_forbidden.add("statefulsets"))
    code, out, err = run_cli(args("-A"))
    assert (code, out) == (4, "") and len(err.strip().splitlines()) == 1
    assert "grant verb 'list' on 'statefulsets' in every namespace to ssdns's ServiceAccount (the ClusterRole in " \
        "k8s/cluster-wide/)" in err
    assert err.count("grant verb") == 1 and "rbac.yaml" not in err, err  # not the namespace's Role's advice too


def test_text_output_is_bounded_when_every_statefulset_fails(sandbox_factory, tmp_path):
    """A cluster-wide failure: the table has every row, the full reports stop at 20 and say how many more."""
    sb = sandbox_factory(faults=["no-http:web-1"])

    def grow(w):
        for i in range(24):
            apply_fault(add_neighbour(w, f"s{i:02d}", 2), f"no-http:s{i:02d}-0")
    sb.change(grow)
    kubeconfig = sb.sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    argv = ["check", "--all", "--kubeconfig", str(kubeconfig), "--nameserver", str(sb.sandbox.nameserver),
            "--timeout", "10", "--color", "never"]
    code, out, err = run_cli(argv)
    assert code == 1, err
    assert out.count("\n=== default/") == 20 and sum(" FAIL " in line for line in out.splitlines()[3:28]) == 25
    assert "... and the reports of 5 more failing StatefulSets, not shown" in out
    code, out, err = run_cli([*argv, "--rows", "all"])
    assert out.count("\n=== default/") == 25 and "more failing StatefulSets" not in out
