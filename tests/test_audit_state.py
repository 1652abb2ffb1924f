"""--state's lock beside it (PATH.lock) as it may be found: a FIFO or a directory. The run ends by its deadline,
the state is left as it was, and the finding names the lock."""

from __future__ import annotations

import json
import os

import pytest
from conftest import ThreadedSandbox
from faultkit import assert_within, digests, run_ssdns

from ssdns.sandbox import make_world

T = 2.0


@pytest.fixture(scope="module")
def sb():
    s = ThreadedSandbox(make_world(2))
    yield s
    s.stop()


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_lock_that_is_not_a_file_is_a_finding_within_the_deadline(sb, tmp_path, kind):
    """A FIFO at PATH.lock: opening it to write waited for a reader for ever, and the run hung past --timeout
    (a CronJob's pod until its activeDeadlineSeconds). A directory there was reported as the state file being
    a directory."""
    state = tmp_path / "state.json"
    first = run_ssdns(*sb.sandbox.check_args(), "--api", "off", "--no-http", "--timeout", str(T), "--state",
                      str(state))
    assert first.returncode == 0, first
    before = digests(state)
    lock = tmp_path / "state.json.lock"
    lock.unlink()
    os.mkfifo(lock) if kind == "fifo" else lock.mkdir()
    run = run_ssdns(*sb.sandbox.check_args(), "--api", "off", "--no-http", "--timeout", str(T), "--state",
                    str(state), "--output", "json", timeout=20)
    assert (run.returncode, run.stderr) == (1, ""), run
    [f] = [f for f in json.loads(run.stdout)["findings"] if f["check"] == "state.store"]
    assert f"its lock {lock} is" in f["message"], f
    assert digests(state) == before
    assert_within(run, T)
