"""What every fault-catalogue case asserts: the exit code, one line on stderr, no traceback, nothing
stored changed, and a wall time bounded by the deadline (a bound on --timeout, not a speed figure)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SLACK = 1.5  # seconds past --timeout a run may take: start-up, flushing outputs, a loaded CI machine


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    elapsed: float

    def one_line(self) -> str:
        """The one stderr line of a run that could not do its job (asserted, then returned)."""
        assert "Traceback" not in self.stderr, self.stderr
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{self.stderr}"
        return lines[0]


# `python -m ssdns`, except that the interpreter first writes the moment it is up (CLOCK_MONOTONIC, one
# clock for every process here) on stderr: a run is timed from there, as its --timeout counts, and not
# from the fork, which on a loaded machine can take a second before any ssdns code runs.
_MARK = "ssdns-test-started-at "
_LAUNCH = (f"import sys, time; sys.stderr.write('{_MARK}%r\\n' % time.monotonic()); sys.stderr.flush(); "
           "import runpy; runpy.run_module('ssdns', run_name='__main__', alter_sys=True)")


def run_ssdns(*args: str, timeout: float = 30, env: dict | None = None, stdin: str | None = None,
              cwd: str | os.PathLike | None = None) -> Run:
    """The real executable in a subprocess (`python -m ssdns`), timed from the interpreter's start to exit."""
    forked = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _LAUNCH, *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, input=stdin,
                          cwd=cwd, errors="replace")
    ended = time.monotonic()
    first, _, rest = proc.stderr.partition("\n")
    started = float(first[len(_MARK):]) if first.startswith(_MARK) else forked
    return Run(proc.returncode, proc.stdout, rest if first.startswith(_MARK) else proc.stderr, ended - started)


def digests(*paths: str | os.PathLike) -> dict[str, str | None]:
    """sha256 of each file (None when it does not exist): compare before and after a run."""
    out: dict[str, str | None] = {}
    for p in paths:
        path = Path(p)
        out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
    return out


def assert_within(run: Run, deadline: float) -> None:
    assert run.elapsed <= deadline + SLACK, f"took {run.elapsed:.2f} s against --timeout {deadline:g}"
