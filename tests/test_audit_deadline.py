"""A --timeout too short for the API's turn: the one line blames the deadline, not an exec credential plugin the
kubeconfig does not have."""

from __future__ import annotations

import os

import pytest
from conftest import ThreadedSandbox
from faultkit import run_ssdns

from ssdns.sandbox import make_world


@pytest.fixture(scope="module")
def sb():
    s = ThreadedSandbox(make_world(2))
    yield s
    s.stop()


def test_a_deadline_too_short_for_the_api_blames_the_deadline_not_a_plugin(sb, tmp_path):
    """--timeout shorter than the start-up: the one line blamed "an exec credential plugin that hangs" for a
    kubeconfig that has no plugin (the sandbox's: a bearer token), sending the user to debug the wrong thing."""
    kubeconfig = sb.sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    run = run_ssdns(*sb.sandbox.check_args(), "--kubeconfig", str(kubeconfig), "--api", "on", "--timeout", "0.01")
    assert run.returncode in (3, 4), run
    line = run.one_line()
    assert "plugin" not in line and "raise --timeout" in line, line


def test_the_demo_with_a_tiny_timeout_never_blames_a_plugin():
    """The demo writes its own kubeconfig (a token): whatever runs out first, no exec plugin is to blame."""
    for timeout in ("0.2", "0.5"):
        run = run_ssdns("demo", "--timeout", timeout)
        assert "Traceback" not in run.stderr, run.stderr
        assert "plugin" not in run.stdout + run.stderr, (run.stdout, run.stderr)


def test_a_kubeconfig_that_is_a_fifo_is_one_line_within_the_deadline(tmp_path):
    """KUBECONFIG naming a FIFO: the kubernetes package's loader waited for a writer until the deadline, and the
    line blamed an exec credential plugin. It says what the file is, at once."""
    from faultkit import assert_within

    fifo = tmp_path / "kubeconfig"
    os.mkfifo(fifo)
    run = run_ssdns("check", "--statefulset", "web", "--nameserver", "127.0.0.1:9", "--no-http", "--api", "on",
                    "--timeout", "3", env={"KUBECONFIG": str(fifo)}, timeout=20)
    assert run.returncode == 4, run
    line = run.one_line()
    assert f"({fifo}): it is a FIFO" in line and "plugin" not in line, line
    assert_within(run, 3)
