"""Fault catalogue, the outputs: stdout whose reader went away (`ssdns check ... | head -1`), and the files
a run writes (--metrics-file, --junit, --state) at paths that are not regular files. Each case: the exit
code, one line on stderr at most, no traceback, nothing stored changed, within the deadline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import ThreadedSandbox
from faultkit import SLACK, digests

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
