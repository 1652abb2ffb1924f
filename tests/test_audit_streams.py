"""The standard streams as a caller may leave them: closed (`>&-`, `2>&-`, a bare cron or init) or a pipe whose
reader went away (`2>&1 | head -1`). The run's exit code and files are what they would be; never a traceback,
an abort, or an error line printed on stdout. Real processes (the executable), the sandbox over real sockets."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import ThreadedSandbox

from ssdns.sandbox import make_world


@pytest.fixture(scope="module")
def sb():
    s = ThreadedSandbox(make_world(2))
    yield s
    s.stop()


def run(args: list[str], closed: str, **kw) -> subprocess.CompletedProcess:
    """The executable with `closed` (stdout, stderr, stdin) closed, or stderr a pipe nobody reads ("stderr-pipe")."""
    fd = {"stdin": 0, "stdout": 1, "stderr": 2}.get(closed)
    streams = {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    read = write = None
    if closed == "stderr-pipe":
        read, write = os.pipe()
        os.close(read)
        streams["stderr"] = write
    try:
        return subprocess.run([sys.executable, "-m", "ssdns", *args], **streams, timeout=60, text=True,
                              preexec_fn=None if fd is None else (lambda: os.close(fd)), **kw)
    finally:
        if write is not None:
            os.close(write)


@pytest.mark.parametrize("closed", ["stdin", "stdout", "stderr", "stderr-pipe"])
def test_a_check_with_a_closed_stream_writes_its_files_and_exits_with_its_verdict(sb, tmp_path, closed):
    """stdout closed: an AttributeError traceback, exit 1, no metrics. stderr closed: exit 1 for a run that
    passed (the interpreter's flush at exit failed)."""
    prom = tmp_path / "out.prom"
    proc = run(sb.args("--metrics-file", str(prom)), closed)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "ssdns_run_ok" in prom.read_text() and "Traceback" not in (proc.stderr or "")
    if closed != "stdout":
        assert "PASS" in proc.stdout


@pytest.mark.parametrize("closed", ["stderr", "stderr-pipe"])
def test_the_error_line_never_lands_on_stdout_and_the_exit_code_is_kept(closed):
    """A usage error with stderr closed printed its line on stdout (print(file=None)), where a script reads the
    report, and exited 1; into a stderr pipe nobody reads it exited 1 as well. Exit 2, stdout empty."""
    proc = run(["check", "--statefulset", "web", "--bogus"], closed)
    assert (proc.returncode, proc.stdout) == (2, ""), proc


def test_restart_test_with_stdout_closed_does_not_abort(sb, tmp_path):
    """With descriptor 1 closed the run's first socket took it, and uvloop aborted closing it (SIGABRT, a core
    dump) where restart-test refuses to delete without --yes. Exit 2 and its one line."""
    kubeconfig = sb.sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    args = sb.sandbox.check_args()[1:]
    i = args.index("--replicas")
    cmd = ["restart-test", *args[:i], *args[i + 2:], "--kubeconfig", str(kubeconfig), "--ordinal", "1", "--timeout", "20"]
    proc = run(cmd, "stdout")
    assert proc.returncode == 2, proc.stderr
    assert "restart-test deletes pods" in proc.stderr and "Traceback" not in proc.stderr


def _full(args: list[str], stream: str) -> subprocess.CompletedProcess:
    """The executable with stdout or stderr on /dev/full: every write fails (ENOSPC), as on a full disk."""
    with open("/dev/full", "w") as full:
        streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, stream: full}
        return subprocess.run([sys.executable, "-m", "ssdns", *args], stdin=subprocess.DEVNULL, timeout=60,
                              text=True, **streams)


@pytest.mark.parametrize("args, code", [
    (["check", "--statefulset", "web", "--bogus"], 2),
    (["check", "web", "--nameserver", "127.0.0.1:9", "--api", "off", "--no-http", "--timeout", "5"], 3),
], ids=["usage", "could-not-run"])
def test_a_stderr_that_cannot_be_written_keeps_the_exit_code(args, code):
    """`2>/dev/full` (a log file on a full disk): the error line could not be written, it raised in the middle of
    the error boundary, and a run that could not run exited 0; a usage error exited 1."""
    proc = _full(args, "stderr")
    assert (proc.returncode, proc.stdout) == (code, ""), proc



@pytest.mark.parametrize("output", ["text", "json"])
def test_a_report_that_cannot_be_written_is_one_line_and_exit_3(sb, tmp_path, output):
    """`ssdns check ... > report` on a full disk: an OSError traceback, exit 1, and no metrics. The report is
    lost, so the run could not do its job: one line that says so, exit 3, the outputs say could not run."""
    prom = tmp_path / "out.prom"
    proc = _full(sb.args("--metrics-file", str(prom), "-o", output), "stdout")
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.splitlines() == ["ssdns: error: cannot write the report to stdout (No space left on device): "
                                        "free space where it goes, or redirect it elsewhere"], proc.stderr
    assert re.search(r"^ssdns_run_ok\{[^}]*\} 0\.0$", prom.read_text(), re.M), prom.read_text()


# A signal that lands just after stderr's bytes went out, before the write call returned: the buffered layer
# under sys.stderr still held them and wrote them again at the next flush (the one line said twice). Here the
# signal is raised inside os.write itself, once the bytes are written: that very moment, every time.
SIGNAL_IN_WRITE = """
import os, signal, sys
from ssdns.streams import make_safe
make_safe()
write = os.write
def written_then_signal(fd, data):
    n = write(fd, data)
    if fd == 2 and bytes(data).startswith(b"ssdns: error"):
        os.write = write
        signal.raise_signal(signal.SIGINT)
    return n
os.write = written_then_signal
try:
    print("ssdns: error: one line", file=sys.stderr, flush=True)
except KeyboardInterrupt:
    pass
print("ssdns: interrupted", file=sys.stderr, flush=True)
"""


def test_a_signal_just_after_the_error_line_went_out_does_not_say_it_twice():
    proc = subprocess.run([sys.executable, "-c", SIGNAL_IN_WRITE], capture_output=True, text=True, timeout=30)
    assert proc.stderr.splitlines() == ["ssdns: error: one line", "ssdns: interrupted"], proc.stderr
