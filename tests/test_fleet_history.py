"""`ssdns history` on the state `check --all --state F` writes (ssdns.fleet-state/v1): a summary table, every
StatefulSet's timeline, one picked with --statefulset, JSON, and one line (exit 2) for what it cannot show.
Every state file here is written by real `check --all` runs against the sandbox."""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import run_cli
from test_fleet import cluster, neighbour  # noqa: F401 - the fixture: web, db (default) and cache (other)


@pytest.fixture
def fleet_state(cluster, tmp_path):  # noqa: F811 - the fixture imported above
    """Two real `check -A --state` runs, web-1 restarted between them; returns (sandbox, args, state path)."""
    sb, args = cluster
    state = tmp_path / "fleet.json"
    assert run_cli(args("-A", "--state", str(state)))[0] == 0
    sb.change(lambda w: w.replace_pod("web-1"))
    assert run_cli(args("-A", "--state", str(state)))[0] == 0
    return sb, args, state


def test_history_of_a_fleet_state_is_a_summary_then_each_timeline(fleet_state):
    sb, args, state = fleet_state
    code, out, err = run_cli(["history", "--state", str(state)])
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"ssdns history: 3 StatefulSets in state file {state} (ssdns.fleet-state/v1)"
    assert lines[2].split() == ["STATEFULSET", "RUNS", "LAST", "RUN", "VERDICT", "CHANGES", "BROKE"]
    rows = {line.split()[0]: line.split() for line in lines[3:6]}
    assert set(rows) == {"default/db", "default/web", "other/cache"}
    assert [rows["default/web"][i] for i in (1, 3, 4, 5)] == ["2", "PASS", "1", "0"]  # web-1's restart
    assert [rows["default/db"][i] for i in (1, 3, 4, 5)] == ["2", "PASS", "0", "0"]
    # then each StatefulSet's timeline, as history shows a single check's
    assert out.index("=== default/db ===") < out.index("=== default/web ===") < out.index("=== other/cache ===")
    web = out[out.index("=== default/web ==="):out.index("=== other/cache ===")]
    assert f"ssdns history: default/web in state file {state} [default/web], 2 of 2 snapshots" in web
    assert "web-1 restarted (uid" in web and "new IP" in web


def test_last_cuts_each_timeline_not_the_summary(fleet_state):
    sb, args, state = fleet_state
    code, out, _ = run_cli(["history", "--state", str(state), "--last", "1"])
    assert code == 0 and out.count("1 of 2 snapshots") == 3
    assert [line.split()[1] for line in out.splitlines()[3:6]] == ["2", "2", "2"]


def test_statefulset_picks_one_by_name_and_namespace_or_ns_slash_name(fleet_state):
    sb, args, state = fleet_state
    code, out, _ = run_cli(["history", "--state", str(state), "--statefulset", "web"])
    assert code == 0 and out.startswith(f"ssdns history: default/web in state file {state} [default/web], 2 of 2")
    assert "STATEFULSET" not in out and "=== " not in out and "web-1 restarted" in out
    code, out, _ = run_cli(["history", "--state", str(state), "--statefulset", "cache", "-n", "other"])
    assert code == 0 and out.startswith("ssdns history: other/cache in")
    code, out, _ = run_cli(["history", "--state", str(state), "--statefulset", "other/cache", "-o", "json"])
    doc = json.loads(out)
    assert code == 0 and doc["schema"] == "ssdns.state/v1" and doc["target"]["statefulset"] == "cache"
    assert len(doc["history"]) == 2


def test_json_of_a_fleet_state_has_every_history_and_a_summary(fleet_state):
    sb, args, state = fleet_state
    code, out, _ = run_cli(["history", "--state", str(state), "-o", "json"])
    doc = json.loads(out)
    assert code == 0 and doc["schema"] == "ssdns.fleet-state/v1" and doc["unreadable"] == {}
    assert sorted(doc["statefulsets"]) == ["default/db", "default/web", "other/cache"]
    assert doc["summary"]["default/web"] == {"runs": 2, "last_run": doc["statefulsets"]["default/web"]["history"][-1][
        "taken_at"], "last_ok": True, "changes": 1, "broken": 0}


@pytest.mark.parametrize("argv, words", [
    (("--statefulset", "nope"), "holds no history of default/nope (it holds default/db, default/web, other/cache)"),
    (("--statefulset", "web", "-n", "other"), "holds no history of other/web"),
    (("--statefulset", "Bad_Name"), "StatefulSet name"),
    (("--statefulset", "x/y/z"), "namespace"),
    (("--statefulset", ""), "StatefulSet name ''"),
])
def test_a_statefulset_not_in_the_state_is_one_line_exit_2(fleet_state, argv, words):
    sb, args, state = fleet_state
    code, out, err = run_cli(["history", "--state", str(state), *argv])
    assert (code, out) == (2, "") and words in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_one_corrupt_entry_shows_the_others_and_is_said_in_one_line_left_untouched(fleet_state):
    sb, args, state = fleet_state
    doc = json.loads(state.read_text())
    del doc["statefulsets"]["default/db"]["history"][0]["pods"]
    state.write_text(json.dumps(doc))
    code, out, err = run_cli(["history", "--state", str(state)])
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"state file {state} [default/db]: snapshot 1 of 2 has no 'pods'" in err
    assert "delete this entry from the state to start its history afresh" in err
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:6]}
    assert rows["default/db"][3] == "UNREADABLE" and rows["default/web"][3] == "PASS"
    assert "web-1 restarted" in out and "3 StatefulSets" in out.splitlines()[0] and "1 unreadable" in out
    code, out, err = run_cli(["history", "--state", str(state), "-o", "json"])
    shown = json.loads(out)
    assert code == 2 and sorted(shown["statefulsets"]) == ["default/web", "other/cache"]
    assert "has no 'pods'" in shown["unreadable"]["default/db"]
    code, out, err = run_cli(["history", "--state", str(state), "--statefulset", "db"])
    assert (code, out) == (2, "") and "has no 'pods'" in err
    # check --all reports it on db alone and keeps it byte for byte; web and cache go on being recorded
    before = hashlib.sha256(json.dumps(json.loads(state.read_text())["statefulsets"]["default/db"]).encode())
    code, out, err = run_cli(args("-A", "--state", str(state), "-o", "json"))
    results = {r["target"]["statefulset"]: r for r in json.loads(out)["results"]}
    store = [f for f in results["db"]["findings"] if f["check"] == "state.store"]
    assert code == 1 and store and "delete this entry" in store[0]["message"]
    assert not [f for f in results["web"]["findings"] if f["check"] == "state.store" and f["status"] == "fail"]
    after = json.loads(state.read_text())["statefulsets"]
    assert hashlib.sha256(json.dumps(after["default/db"]).encode()).digest() == before.digest()
    assert len(after["default/web"]["history"]) == 3


def test_a_fleet_state_given_to_a_single_check_says_what_it_is(fleet_state):
    sb, args, state = fleet_state
    before = state.read_bytes()
    code, out, err = run_cli(args("--statefulset", "web", "--state", str(state), "-o", "json"))
    [f] = [f for f in json.loads(out)["findings"] if f["check"] == "state.store"]
    assert code == 1 and "is the state of check --all/--selector/-A" in f["message"]
    assert state.read_bytes() == before


def test_statefulset_on_a_single_check_state(cluster, tmp_path):  # noqa: F811
    sb, args = cluster
    state = tmp_path / "one.json"
    assert run_cli(args("--statefulset", "web", "--state", str(state)))[0] == 0
    code, out, _ = run_cli(["history", "--state", str(state), "--statefulset", "web"])
    assert code == 0 and out.startswith("ssdns history: default/web in")
    code, out, err = run_cli(["history", "--state", str(state), "--statefulset", "db"])
    assert (code, out) == (2, "") and "holds the history of default/web, not default/db" in err


def test_an_empty_fleet_state_shows_an_empty_table(tmp_path):
    state = tmp_path / "empty.json"
    state.write_text('{"schema": "ssdns.fleet-state/v1", "statefulsets": {}}')
    code, out, _ = run_cli(["history", "--state", str(state)])
    assert code == 0 and "0 StatefulSets" in out and "no StatefulSet has a history yet" in out
    state.write_text('{"schema": "ssdns.fleet-state/v1", "statefulsets": []}')
    code, out, err = run_cli(["history", "--state", str(state)])
    assert (code, out) == (2, "") and "without its 'statefulsets' object" in err


def test_history_of_a_fleet_state_in_a_configmap(cluster, tmp_path):  # noqa: F811
    """The CronJob's way: check --all --state configmap:NAME, then history through the API, one picked too."""
    sb, args = cluster
    assert run_cli(args("--all", "--state", "configmap:fleet-state"))[0] == 0
    assert run_cli(args("--all", "--state", "configmap:fleet-state"))[0] == 0
    kubeconfig = args()[args().index("--kubeconfig") + 1]
    base = ["history", "--state", "configmap:fleet-state", "--kubeconfig", kubeconfig]
    code, out, err = run_cli(base)
    assert code == 0, err
    assert out.startswith("ssdns history: 2 StatefulSets in ConfigMap default/fleet-state (ssdns.fleet-state/v1)")
    assert [line.split()[:2] for line in out.splitlines()[3:5]] == [["default/db", "2"], ["default/web", "2"]]
    code, out, err = run_cli([*base, "--statefulset", "db", "-o", "json"])
    assert code == 0 and json.loads(out)["target"] == {"namespace": "default", "statefulset": "db", "service": "db"}
    code, out, err = run_cli([*base, "-n", "other"])  # the ConfigMap is in the run's namespace, not there
    assert (code, out) == (2, "") and "ConfigMap other/fleet-state does not exist yet" in err


@pytest.mark.parametrize("corrupt", ["garbage", None, 7, [], {"schema": "ssdns.state/v1"},
                                     {"schema": "ssdns.state/v1", "target": {}, "history": "abc"},
                                     {"schema": "ssdns.state/v1", "target": {}, "history": [1, 2]}])
def test_check_all_saves_beside_corrupt_entries_and_leaves_them_as_they_are(cluster, tmp_path, corrupt):  # noqa: F811
    """A corrupt entry of a StatefulSet in the run (default/db) and of one that is not (other/gone): the run
    reports the first on its StatefulSet (state.store, exit 1), saves the others' snapshots, and keeps both
    byte for byte (once, the whole save failed with a traceback, or trimmed what it could not read)."""
    sb, args = cluster
    state = tmp_path / "fleet.json"
    assert run_cli(args("--all", "--state", str(state)))[0] == 0
    doc = json.loads(state.read_text())
    doc["statefulsets"]["default/db"] = doc["statefulsets"]["other/gone"] = corrupt
    state.write_text(json.dumps(doc))
    code, out, err = run_cli(args("--all", "--state", str(state), "-o", "json"))
    assert (code, err) == (1, ""), err
    results = {r["target"]["statefulset"]: r for r in json.loads(out)["results"]}
    [bad] = [f for f in results["db"]["findings"] if f["status"] == "fail"]
    assert bad["check"] == "state.store" and "left untouched" in bad["message"]
    assert results["web"]["ok"] is True
    after = json.loads(state.read_text())["statefulsets"]
    assert after["default/db"] == after["other/gone"] == corrupt
    assert len(after["default/web"]["history"]) == 2


def test_a_fleet_state_is_trimmed_to_fit_oldest_first_and_a_corrupt_entry_is_never_cut():
    from ssdns.fleet_state import _fit
    from ssdns.state import MAX_BYTES

    pod = {"name": "web-0", "uid": None, "ips": ["127.10.0.1"], "dns_ips": ["127.10.0.1"], "node": None,
           "identity": "web-0", "volumes": {}, "seen_at": "2026-11-30T10:00:00Z"}
    def snap(i: int) -> dict:
        return {"taken_at": f"2026-11-30T10:{i // 60:02d}:{i % 60:02d}Z", "ok": True, "replicas": 1,
                "service_ips": ["127.10.0.1"], "pods": {"0": dict(pod, node="n" * 2000)}}
    good = {"schema": "ssdns.state/v1", "target": {"namespace": "default", "statefulset": "web", "service": "nginx"},
            "history": [snap(i) for i in range(400)]}
    corrupt = {"schema": "ssdns.state/v1", "target": {}, "history": ["x" * 100] * 1000}  # not snapshots, and the most of them
    doc = _fit({"schema": "ssdns.fleet-state/v1", "statefulsets": {"default/web": good, "other/bad": corrupt}})
    kept = doc["statefulsets"]["default/web"]["history"]
    assert len(json.dumps(doc)) <= MAX_BYTES and 1 <= len(kept) < 400
    assert kept[-1]["taken_at"] == snap(399)["taken_at"]  # the newest stay
    assert doc["statefulsets"]["other/bad"] == corrupt
