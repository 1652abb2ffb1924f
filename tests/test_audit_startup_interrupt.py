"""Ctrl-C while the executable starts: one line and exit code 130, never Python's traceback.

cli.main installs ssdns's signal handlers, but only once its modules are imported; a Ctrl-C before that (the
first ~50 ms of every run) was Python's KeyboardInterrupt traceback. The executable is run as it is installed
(the console script pyproject.toml declares, as pip writes it) and as `python -m ssdns`, each stopped in the
import of one module until the test has sent SIGINT: the interrupt lands in that very import, every time,
with no sleep guessing when start-up is where."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MARK = "ssdns-test-paused-in "

# Stop the import of one module (sys.argv[1]) until a signal comes: a KeyboardInterrupt raised there is one
# raised at that moment of start-up. The rest is the program under test.
PAUSE = f"""
import os, sys, time
class _Pause:
    def __init__(self, name):
        self.name = name
    def find_spec(self, name, path=None, target=None):
        if name == self.name:
            sys.meta_path.remove(self)
            os.write(2, ({MARK!r} + name + "\\n").encode())  # not sys.stderr: a signal in its Python code
            time.sleep(60)
        return None
sys.meta_path.insert(0, _Pause(sys.argv.pop(1)))
"""


def console_script() -> str:
    """The `ssdns` script pip installs for pyproject.toml's [project.scripts] entry (its template)."""
    entry = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["ssdns"]
    module, func = entry.split(":")
    return (f"import re\nimport sys\nfrom {module} import {func}\nif __name__ == '__main__':\n"
            f"    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n    sys.exit({func}())\n")


MODULE = "import runpy; runpy.run_module('ssdns', run_name='__main__', alter_sys=True)\n"


# Modules imported at successive moments of a run: before cli.main (the command line's own imports, then
# cli.run's helpers), while main parses and builds the options, and once the check runs.
MOMENTS = ["ssdns.cli", "argparse", "ssdns.gcpace", "ssdns.errors", "ssdns.streams", "ssdns.sizing",
           "ssdns.commands", "ssdns.options", "ssdns.check", "ssdns.smallcheck", "ssdns.dnssync", "ssdns.report",
           "ssdns.termination"]


def interrupted_in(module: str, program: str, args: list[str], tmp_path: Path,
                   sig: signal.Signals = signal.SIGINT) -> tuple[int, str]:
    script = tmp_path / "ssdns"
    script.write_text(PAUSE + program)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(script), module, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    try:
        assert proc.stderr is not None
        marker, seen = f"{MARK}{module}\n".encode(), b""
        while marker not in seen and (chunk := os.read(proc.stderr.fileno(), 4096)):
            seen += chunk  # the event: start-up is inside that import now
        assert marker in seen, f"{module} was not imported: {seen!r}"
        proc.send_signal(sig)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = seen.replace(marker, b"") + rest
    return proc.returncode, err.decode(errors="replace")


@pytest.mark.parametrize("module", MOMENTS)
@pytest.mark.parametrize("program", [console_script(), MODULE], ids=["console-script", "python-m"])
def test_ctrl_c_while_starting_is_one_line_and_exit_130(module, program, sandbox, tmp_path):
    """A 3-pod DNS-only check of the sandbox, as a CronJob runs it, interrupted at each moment."""
    args = [*sandbox.args("--no-http", "--replicas", "3", "--timeout", "20"), "--termination-log", str(tmp_path / "log")]
    code, err = interrupted_in(module, program, args, tmp_path)
    assert "Traceback" not in err, err
    assert err.splitlines() == ["ssdns: interrupted by SIGINT: the run stopped before it finished"], err
    assert code == 130


@pytest.mark.parametrize("module", MOMENTS)
def test_sigterm_while_starting_is_one_line_and_exit_143(module, sandbox, tmp_path):
    """A CronJob's deadline or a rollout (SIGTERM) in the same moments: the process died of the signal without
    a word before cli.main had its handlers."""
    args = [*sandbox.args("--no-http", "--replicas", "3", "--timeout", "20"), "--termination-log", str(tmp_path / "log")]
    code, err = interrupted_in(module, console_script(), args, tmp_path, signal.SIGTERM)
    assert err.splitlines() == ["ssdns: interrupted by SIGTERM: the run stopped before it finished"], err
    assert code == 143


@pytest.mark.parametrize("program", [console_script(), MODULE], ids=["console-script", "python-m"])
def test_ctrl_c_while_a_failed_run_writes_its_outputs_is_one_more_line(program, tmp_path):
    """No nameserver answers: main says so and writes the could-not-run outputs; a Ctrl-C then (cli's handler
    raises Interrupted inside main's error handler, where nothing caught it) was a two-traceback exit 1."""
    args = ["check", "web", "--nameserver", "127.0.0.1:9", "--api", "off", "--no-http", "--timeout", "20",
            "--termination-log", str(tmp_path / "log")]
    code, err = interrupted_in("ssdns.termination", program, args, tmp_path)
    assert "Traceback" not in err, err
    assert err.splitlines() == [
        "ssdns: error: no nameserver answered about the names (127.0.0.1:9: nothing listens there (port "
        "unreachable)); check --nameserver", "ssdns: interrupted by SIGINT: the run stopped before it finished"], err
    assert code == 130


# The signal arrives while a weakref callback runs (as the import system's module-lock cleanup does at any
# import): its handler raises there, where Python prints "Exception ignored" and goes on. The callback runs
# when the import of sys.argv[1] starts; it sends sys.argv[2] to the process and keeps running bytecode, so
# the handler runs inside it, every time.
SWALLOW = """
import os, signal, sys, weakref
class _Swallow:
    def __init__(self, name, sig):
        self.name, self.sig = name, sig
    def find_spec(self, name, path=None, target=None):
        if name == self.name:
            sys.meta_path.remove(self)
            held = [type("Held", (), {})()]
            def callback(_ref):
                os.kill(os.getpid(), self.sig)
                for _ in range(100000):  # the handler runs in here
                    pass
            self.ref = weakref.ref(held[0], callback)
            held.clear()
        return None
sys.meta_path.insert(0, _Swallow(sys.argv.pop(1), int(sys.argv.pop(1))))
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("module", ["ssdns.cli", "ssdns.commands", "ssdns.dnssync"])
def test_a_signal_inside_a_callback_python_ignores_still_stops_the_run(module, sig, sandbox, tmp_path):
    """Before cli's handlers (Python's KeyboardInterrupt, the entry's SIGTERM), under them while the options are
    built, and in the check: the run stopped with its one line and code. It went on to exit 0 (CI saw the
    worker test's run finish its checks instead)."""
    script = tmp_path / "ssdns"
    script.write_text(SWALLOW + console_script())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    args = [*sandbox.args("--no-http", "--replicas", "3", "--timeout", "20"), "--termination-log", str(tmp_path / "log")]
    proc = subprocess.run([sys.executable, str(script), module, str(int(sig)), *args], capture_output=True,
                          env=env, cwd=tmp_path, timeout=30)
    err = proc.stderr.decode(errors="replace")
    assert err.splitlines() == [f"ssdns: interrupted by {sig.name}: the run stopped before it finished"], err
    assert proc.returncode == 128 + sig
