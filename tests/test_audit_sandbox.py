"""`ssdns sandbox` as a user stops it: into `| head -1` (a traceback, and the sandbox gone) and with Ctrl-C while
it starts (the signal swallowed). Real processes, real sockets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import dns.exception
import dns.message
import dns.query
import pytest


def _dns_answers(port: int, proc: subprocess.Popen, deadline: float) -> bool:
    """The sandbox's nameserver answers web-0's name (polled while it starts in another process)."""
    q = dns.message.make_query("web-0.nginx.default.svc.cluster.local.", "A")
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            r = dns.query.udp(q, "127.54.0.1", port=port, timeout=0.5)
            return bool(r.answer)
        except (dns.exception.Timeout, OSError):
            time.sleep(0.1)
    return False


def _ctrl_c_once_it_answers(proc: subprocess.Popen, port: int, still_running: bool = False) -> None:
    """SIGINT as soon as the sandbox's nameserver answers; it must stop, exit 0, with nothing on stderr."""
    try:
        assert _dns_answers(port, proc, time.monotonic() + 20), "the sandbox's nameserver did not answer"
        if still_running:
            assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, err) == (0, ""), err


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.54.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("api", [True, False])
def test_sandbox_into_a_closed_pipe_keeps_serving_and_stops_cleanly(tmp_path, api):
    """`ssdns sandbox | head -1`: head took the headline and left; the sandbox went on writing its other lines
    into the closed pipe, died of a BrokenPipeError traceback (exit 1), and took the nameserver just printed
    with it. Its lines are advice: the sandbox keeps serving until it is stopped, and stops cleanly."""
    port = _free_udp_port()
    read, write = os.pipe()
    os.close(read)
    extra = ["--kubeconfig-out", str(tmp_path / "kc")] if api else ["--no-api"]
    try:
        proc = subprocess.Popen([sys.executable, "-m", "ssdns", "sandbox", "--dns-port", str(port), *extra],
                                stdout=write, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write)
    _ctrl_c_once_it_answers(proc, port, still_running=True)


def test_a_signal_while_the_sandbox_starts_stops_it(tmp_path):
    """Ctrl-C as soon as the sandbox's nameserver answers (its API still starting): the signal was raised inside
    a callback of the starting servers ("Fatal write error on datagram transport"), swallowed there, and the
    sandbox then served on, deaf to that Ctrl-C. It stops, exit 0, one way or the other."""
    port = _free_udp_port()
    proc = subprocess.Popen([sys.executable, "-m", "ssdns", "sandbox", "--dns-port", str(port), "--kubeconfig-out",
                             str(tmp_path / "kc")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _ctrl_c_once_it_answers(proc, port)


def test_a_kubeconfig_out_that_is_a_fifo_is_refused_at_once(tmp_path):
    """`sandbox --kubeconfig-out FIFO`: the check that the path can be written opened it, and waited for a reader
    for ever (--duration did not count yet). Refused before anything starts: exit 2, one line."""
    fifo = tmp_path / "kubeconfig"
    os.mkfifo(fifo)
    proc = subprocess.run([sys.executable, "-m", "ssdns", "sandbox", "--kubeconfig-out", str(fifo), "--duration",
                           "1"], capture_output=True, text=True, timeout=20)
    assert proc.returncode == 2, proc
    assert "is a FIFO" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert fifo.is_fifo()
