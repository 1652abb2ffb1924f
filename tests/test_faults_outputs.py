"""Fault catalogue, the outputs: stdout whose reader went away (`ssdns check ... | head -1`), and the files
a run writes (--metrics-file, --junit, --state) at paths that are not regular files. Each case: the exit
code, one line on stderr at most, no traceback, nothing stored changed, within the deadline."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import pytest
from conftest import ThreadedSandbox
from faultkit import SLACK, assert_within, digests, run_ssdns

from ssdns.sandbox import make_world
from ssdns.sandbox.fleet import add_statefulsets

T = 5.0


@pytest.fixture(scope="module")
def sb():
    world = make_world(2)
    add_statefulsets(world, 2, 2)
    s = ThreadedSandbox(world)
    yield s
    s.stop()


def check_args(sb) -> list[str]:
    return [*sb.sandbox.check_args(), "--api", "off", "--timeout", str(T)]


def fleet_args(sb, tmp_path) -> list[str]:
    kubeconfig = sb.sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    return [*sb.sandbox.fleet_check_args(), "--kubeconfig", str(kubeconfig), "--timeout", str(T)]


def run_into_closed_pipe(*args: str) -> tuple[int, str, float]:
    """The real executable with its stdout a pipe nobody reads any more (the reader end is closed, as
    after `| head -1` took its line): every write to it fails with EPIPE."""
    read, write = os.pipe()
    os.close(read)
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "ssdns", *args], stdout=write, stderr=subprocess.PIPE,
                              text=True, timeout=30)
    finally:
        os.close(write)
    return proc.returncode, proc.stderr, time.monotonic() - started


@pytest.mark.parametrize("output", ["text", "json"])
def test_check_into_a_closed_pipe_still_writes_its_files_and_exits_with_its_verdict(sb, tmp_path, output):
    prom, junit = tmp_path / "out.prom", tmp_path / "out.xml"
    code, err, took = run_into_closed_pipe(*check_args(sb), "-o", output, "--metrics-file", str(prom),
                                           "--junit", str(junit))
    assert (code, err) == (0, ""), err
    assert 'ssdns_run_ok{namespace="default",statefulset="web"} 1.0' in prom.read_text() and "<testsuite" in junit.read_text()
    assert took <= T + SLACK


@pytest.mark.parametrize("output", ["text", "json"])
def test_check_all_into_a_closed_pipe_still_writes_its_files(sb, tmp_path, output):
    prom = tmp_path / "out.prom"
    code, err, took = run_into_closed_pipe(*fleet_args(sb, tmp_path), "-o", output, "--metrics-file", str(prom))
    assert (code, err) == (0, ""), err
    assert "\nssdns_run_ok 1.0" in prom.read_text() and "ssdns_statefulset_ok" in prom.read_text()
    assert took <= T + SLACK


@pytest.mark.parametrize("output", ["text", "json"])
def test_history_into_a_closed_pipe_is_quiet_and_leaves_the_state(sb, tmp_path, output):
    state = tmp_path / "state.json"
    first = subprocess.run([sys.executable, "-m", "ssdns", *check_args(sb), "--state", str(state)],
                           capture_output=True, timeout=30)
    assert first.returncode == 0, first.stderr
    before = digests(state)
    code, err, _ = run_into_closed_pipe("history", "--state", str(state), "-o", output)
    assert (code, err) == (0, ""), err
    assert digests(state) == before
    assert json.loads(state.read_text())["history"]


def special_files(tmp_path) -> dict[str, os.PathLike]:
    """Paths that are not regular files: a FIFO nobody writes or reads, and (as root) a node of /dev/zero's
    kind, which never ends when read, and of /dev/full's, which takes no byte."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    out = {"fifo": fifo}
    if os.geteuid() == 0:
        for name, minor in (("zero", 5), ("full", 7)):
            os.mknod(tmp_path / name, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
            out[name] = tmp_path / name
    return out


def kinds(tmp_path) -> dict[str, int]:
    return {str(p): os.stat(p).st_mode for p in tmp_path.iterdir()}


@pytest.mark.parametrize("flag", ["--state", "--metrics-file", "--junit"])
def test_an_output_that_is_not_a_file_is_refused_before_the_run_and_left_as_it_is(sb, tmp_path, flag):
    for name, path in special_files(tmp_path).items():
        before = kinds(tmp_path)
        run = run_ssdns(*check_args(sb), flag, str(path))
        assert run.returncode == 2, (name, run)
        line = run.one_line()
        assert line.startswith(f"ssdns: error: {flag} ") and "not a file: give the path of a file" in line, line
        assert kinds(tmp_path) == before, name  # still a FIFO, still a device: nothing renamed over it
        assert_within(run, T)


def test_history_of_a_state_that_is_not_a_file_is_one_line_not_a_hang(tmp_path):
    for name, path in special_files(tmp_path).items():
        run = run_ssdns("history", "--state", str(path), "--timeout", "2")
        assert run.returncode == 2, (name, run)
        assert "is a" in run.one_line() and "not a file" in run.one_line()
        assert_within(run, 2)


def test_a_termination_log_that_is_a_fifo_nobody_reads_does_not_hold_the_exit(sb, tmp_path):
    fifo = special_files(tmp_path)["fifo"]
    run = run_ssdns(*check_args(sb), "--termination-log", str(fifo))
    assert (run.returncode, run.stderr) == (0, ""), run
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert_within(run, T)


def test_a_symlinked_state_and_outputs_stay_links_and_their_targets_are_written(sb, tmp_path):
    (tmp_path / "data").mkdir()
    links = {}
    for name in ("state.json", "out.prom", "out.xml"):
        (tmp_path / name).symlink_to(tmp_path / "data" / name)
        links[name] = tmp_path / name
    for _ in range(2):  # the first run creates the targets, the second replaces them
        run = run_ssdns(*check_args(sb), "--state", str(links["state.json"]), "--metrics-file",
                        str(links["out.prom"]), "--junit", str(links["out.xml"]))
        assert (run.returncode, run.stderr) == (0, ""), run
    assert all(p.is_symlink() for p in links.values())
    assert len(json.loads((tmp_path / "data" / "state.json").read_text())["history"]) == 2
    assert "ssdns_run_ok" in (tmp_path / "data" / "out.prom").read_text()
    assert "<testsuite" in (tmp_path / "data" / "out.xml").read_text()


def test_text_that_utf8_cannot_carry_is_escaped_on_stdout_not_a_traceback(tmp_path):
    """JSON may hold a lone surrogate ("\\ud800": a state file edited by hand, a forged API answer); printed
    as it is, stdout's UTF-8 refused it with a traceback. It is written escaped, as JSON escapes it."""
    pod = {"name": "web-0", "uid": None, "ips": ["127.10.0.1"], "dns_ips": ["127.10.0.1"], "node": None,
           "identity": "web-0", "volumes": {}, "seen_at": "2026-11-30T10:00:00Z"}
    snap = {"taken_at": "2026-11-30T10:00:00Z", "ok": True, "replicas": 1, "service_ips": ["127.10.0.1"],
            "pods": {"0": pod}}
    entry = {"schema": "ssdns.state/v1", "target": {"namespace": "default", "statefulset": "web", "service": "nginx"},
             "history": [snap]}
    state = tmp_path / "fleet.json"
    state.write_text(json.dumps({"schema": "ssdns.fleet-state/v1", "statefulsets": {"default/w\ud800": entry}}))
    before = digests(state)
    run = run_ssdns("history", "--state", str(state))
    assert (run.returncode, run.stderr) == (0, ""), run.stderr
    assert "default/w\\ud800" in run.stdout
    assert digests(state) == before


def test_a_state_far_larger_than_any_ssdns_writes_is_not_read_whole(sb, tmp_path):
    """A 64 MiB file given as --state (a log, by mistake): reading it whole could take a CronJob pod's memory;
    it is reported from its first READ_CAP bytes and left as it is."""
    state = tmp_path / "big.json"
    with state.open("wb") as f:
        f.truncate(64 << 20)  # sparse: no disk used
    before = digests(state)
    run = run_ssdns(*check_args(sb), "--state", str(state), "-o", "json")
    assert (run.returncode, run.stderr) == (1, ""), run
    [f] = [f for f in json.loads(run.stdout)["findings"] if f["check"] == "state.store"]
    assert "is larger than 16 MiB" in f["message"] and "left untouched" in f["message"], f
    history = run_ssdns("history", "--state", str(state))
    assert history.returncode == 2 and "is larger than 16 MiB" in history.one_line()
    assert digests(state) == before
    assert_within(run, T)
