"""Fault catalogue, the state half: state files of every bad kind, a held lock, and what `check` and
`history` do with them. A state ssdns did not write (or cannot read) is reported and left untouched:
its sha256 is the same after the run; only a state that does not exist is started afresh."""

from __future__ import annotations

import fcntl
import json

import pytest
from conftest import ThreadedSandbox
from faultkit import assert_within, digests, run_ssdns

from ssdns.sandbox import make_world

T = 2.0


@pytest.fixture(scope="module")
def sb():
    s = ThreadedSandbox(make_world(3))
    yield s
    s.stop()


def args(sb, *extra: str) -> list[str]:
    return [*sb.sandbox.check_args(), "--api", "off", "--no-http", "--timeout", str(T), *extra]


def good_doc() -> dict:
    pod = {"name": "web-0", "uid": None, "ips": ["127.10.0.1"], "dns_ips": ["127.10.0.1"], "node": None,
           "identity": "web-0", "volumes": {}, "seen_at": "2026-11-30T10:00:00Z"}
    snap = {"taken_at": "2026-11-30T10:00:00Z", "ok": True, "replicas": 3, "service_ips": ["127.10.0.1"],
            "pods": {"0": pod}}
    return {"schema": "ssdns.state/v1", "target": {"namespace": "default", "statefulset": "web", "service": "nginx"},
            "history": [snap]}


def without(path: list, doc: dict | None = None) -> bytes:
    doc = doc or good_doc()
    node = doc
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return json.dumps(doc).encode()


def with_value(path: list, value) -> bytes:
    doc = good_doc()
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return json.dumps(doc).encode()


# name -> (bytes in the state file, what the message says)
BAD_STATES = {
    "null": (b"null", "holds JSON null, not an ssdns state"),
    "array": (b"[]", "holds JSON an array, not an ssdns state"),
    "number": (b"42", "holds JSON a number"),
    "empty-file": (b"", "is not valid JSON"),
    "truncated": (json.dumps(good_doc()).encode()[:-7], "is not valid JSON"),
    "not-utf8": (b'{"schema": "ssdns.state/v1", "x": "\xff\xfe"}', "is not UTF-8 text (byte"),
    "latin1": ("{\"schema\": \"caf\u00e9\"}".encode("latin-1"), "is not UTF-8 text"),
    "deep": (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
    "other-schema": (with_value(["schema"], "ssdns.state/v0"), "is not an ssdns state (ssdns.state/v1)"),
    "no-history": (without(["history"]), "is not an ssdns state"),
    "no-target": (without(["target"]), "has no target"),
    "snapshot-not-object": (with_value(["history", 0], "yesterday"), "snapshot 1 of 1 is a string, not an object"),
    "snapshot-no-taken-at": (without(["history", 0, "taken_at"]), "snapshot 1 of 1 has no 'taken_at'"),
    "snapshot-no-pods": (without(["history", 0, "pods"]), "snapshot 1 of 1 has no 'pods'"),
    "pod-no-ips": (without(["history", 0, "pods", "0", "ips"]), "pod 0 has no 'ips'"),
    "pod-no-name": (without(["history", 0, "pods", "0", "name"]), "pod 0 has no 'name'"),
    "pod-ips-wrong-type": (with_value(["history", 0, "pods", "0", "ips"], "127.10.0.1"), "pod 0 has a 'ips' of the wrong type"),
    "ordinal-not-a-number": (with_value(["history", 0, "pods", "x"], {}), "has a pod 'x' that is not an ordinal"),
    "changes-wrong-shape": (with_value(["history", 0, "changes"], {"0": "restarted"}), "has 'changes' of the wrong shape"),
    "foreign-target": (with_value(["target", "statefulset"], "db"), "holds the history of"),
}


@pytest.mark.parametrize("name", sorted(BAD_STATES))
def test_check_reports_a_bad_state_and_leaves_it_untouched(name, sb, tmp_path):
    data, says = BAD_STATES[name]
    state = tmp_path / "state.json"
    state.write_bytes(data)
    before = digests(state)
    run = run_ssdns(*args(sb, "--state", str(state), "--output", "json"))
    assert run.returncode == 1, run
    assert run.stderr == "", run.stderr
    report = json.loads(run.stdout)
    [f] = [f for f in report["findings"] if f["check"] == "state.store"]
    assert f["status"] == "fail" and says in f["message"] and "left untouched" in f["message"], f
    assert not any("identity is compared from the next run on" in n for n in report["notes"])
    assert digests(state) == before
    assert_within(run, T)


@pytest.mark.parametrize("name", sorted(BAD_STATES))
def test_history_reports_a_bad_state_in_one_line(name, tmp_path):
    data, says = BAD_STATES[name]
    state = tmp_path / "state.json"
    state.write_bytes(data)
    before = digests(state)
    run = run_ssdns("history", "--state", str(state), "--timeout", str(T))
    expected = 0 if name == "foreign-target" else 2  # history shows any target's history
    assert run.returncode == expected, run
    if expected:
        line = run.one_line()
        assert line.startswith("ssdns: error: ") and says in line, line
    assert digests(state) == before


def test_held_lock_is_waited_for_until_the_deadline_and_not_longer(sb, tmp_path):
    state = tmp_path / "state.json"
    first = run_ssdns(*args(sb, "--state", str(state)))
    assert first.returncode == 0
    before = digests(state)
    with open(str(state) + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        run = run_ssdns(*args(sb, "--state", str(state), "--output", "json"))
    assert run.returncode == 1 and run.stderr == ""
    [f] = [f for f in json.loads(run.stdout)["findings"] if f["check"] == "state.store"]
    assert "another process holds its lock" in f["message"] and "not saved" in f["message"]
    assert digests(state) == before
    assert_within(run, T)


def test_state_under_a_file_cannot_be_written_and_says_so(sb, tmp_path):
    """The state's directory is a file (as unwritable as a read-only one, also for root)."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    before = digests(blocker)
    run = run_ssdns(*args(sb, "--state", str(blocker / "s.json"), "--output", "json"))
    assert run.returncode == 1 and run.stderr == ""
    report = json.loads(run.stdout)
    [f] = [f for f in report["findings"] if f["check"] == "state.store"]
    assert "cannot read" in f["message"] and "Not a directory" in f["message"], f
    assert not any("identity is compared from the next run on" in n for n in report["notes"])
    assert digests(blocker) == before


def test_state_file_in_a_missing_directory_is_started(sb, tmp_path):
    state = tmp_path / "new" / "deeper" / "state.json"
    run = run_ssdns(*args(sb, "--state", str(state), "--output", "json"))
    assert run.returncode == 0, run
    report = json.loads(run.stdout)
    assert any("identity is compared from the next run on" in n for n in report["notes"])
    assert len(json.loads(state.read_text())["history"]) == 1


@pytest.mark.parametrize("spec, says", [
    ("", "--state needs a file path or configmap:NAME"),
    ("   ", "--state needs a file path or configmap:NAME"),
    ("configmap:", "give configmap:NAME"),
    ("configmap:Bad_Name", "not a valid DNS label"),
])
def test_bad_state_option_is_one_line_and_exit_2(spec, says, sb, tmp_path):
    api = ["--api", "auto"] if spec.startswith("configmap:") else []
    for argv in (args(sb, "--state", spec, *api), ["history", "--state", spec]):
        run = run_ssdns(*argv)
        assert run.returncode == 2, run
        assert says in run.one_line()


def test_state_that_is_a_directory_is_one_line_and_exit_2(sb, tmp_path):
    run = run_ssdns(*args(sb, "--state", str(tmp_path)))
    assert run.returncode == 2 and "is a directory" in run.one_line()
