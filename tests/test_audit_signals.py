"""A signal that lands while asyncio runs a callback (a server accepting, a transport writing): cli's handler
raised Interrupted there, asyncio's callback guard logged it as a traceback and swallowed it, and the run went
on to a verdict as if nobody had pressed Ctrl-C. Commands that run a loop let it cancel the run instead."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest


@pytest.mark.parametrize("demo", [["demo"], ["demo", "--statefulsets", "3"]], ids=["check", "check --all"])
def test_sigterm_at_any_moment_of_the_demo_stops_it_with_one_line(demo):
    """The demo starts servers and runs a check (or check --all) in one loop: a sweep of moments across its run
    (the window that swallowed the signal is a callback's, so the sweep is what finds it)."""
    seen = []
    for delay in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.4):
        proc = subprocess.Popen([sys.executable, "-m", "ssdns", *demo, "--timeout", "20"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert "Traceback" not in err, (delay, err)
        seen.append(proc.returncode)
        if proc.returncode == 0:  # the demo may have finished before the signal came: then it printed a verdict
            assert "PASS" in out and not err, (delay, out, err)
        else:
            assert proc.returncode in (143, -signal.SIGTERM), (delay, proc.returncode, err)
    assert any(rc != 0 for rc in seen), f"every run ended before its signal: {seen}"
