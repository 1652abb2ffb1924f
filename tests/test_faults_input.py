"""Fault catalogue, the input half: options a new user might type, and sandbox start-up problems.
Each is one line on stderr, exit 2 (3 when the machine, not the input, is the problem), no
traceback, at once."""

from __future__ import annotations

import os

import socket

import pytest
from faultkit import assert_within, run_ssdns

CHECK = ["check", "nginx", "--nameserver", "127.0.0.1:9", "--api", "off", "--timeout", "1"]

BAD_INPUT = [
    (["--expect", "{ordinal:>99999999999}"], "widths and precisions go up to 1000"),
    (["--expect", "{pod.__class__}"], "is not a field (a template names fields, nothing else)"),
    (["--expect", "{pod.__class__.__mro__}"], "is not a field"),
    (["--expect", "{pod[0]}"], "is not a field"),
    (["--expect", "{}"], "{} is not a field"),
    (["--expect", "{0}"], "{0} is not a field"),
    (["--expect", "{pod!r}"], "conversions are not supported"),
    (["--expect", "{pod:{ordinal}}"], "is not a format spec"),
    (["--expect", "{pod:d}"], "Unknown format code 'd'"),
    (["--expect", "{pod"], "is not a valid template"),
    (["--expect", "pod}"], "is not a valid template"),
    (["--expect", "{ordinal:.99999}"], "widths and precisions go up to 1000"),
    (["--path", "/a\r\nX-Injected: 1"], "holds '\\r'"),
    (["--path", "/a\nb"], "holds '\\n'"),
    (["--path", "/a b"], "holds ' '"),
    (["--path", "/a\tb"], "holds '\\t'"),
    (["--path", "/a\x7fb"], "holds '\\x7f'"),
    (["--path", "x"], "must start with '/'"),
    (["--state", ""], "--state needs a file path or configmap:NAME"),
    (["--timeout", "0"], "out of range"),
    (["--timeout", "nan"], "out of range"),
    (["--timeout", "inf"], "out of range"),
    (["--timeout", "1e309"], "out of range"),
    (["--replicas", "-1", "--statefulset", "web"], "is not a whole number"),
    (["--replicas", "1e3", "--statefulset", "web"], "is not a whole number"),
    (["--nameserver", "127.0.0.1:0"], "out of range"),
    (["--nameserver", "[::1"], "missing ']'"),
    (["--nameserver", ""], "is not an IP address"),
    (["--kubeconfig", "/nonexistent/kc", "--api", "on"], "no such file"),
    (["--kubeconfig", "/dev/null", "--api", "on"], "'/dev/null': it is a character device, not a kubeconfig file"),
    (["--kubeconfig", "/", "--api", "on"], "'/': it is a directory, not a kubeconfig file"),
]


@pytest.mark.parametrize("extra, says", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_check_input_is_one_line_and_exit_2(extra, says):
    run = run_ssdns(*CHECK, *extra)
    assert run.returncode == 2, run
    line = run.one_line()
    assert line.startswith("ssdns: error: ") and says in line, line
    assert run.stdout == ""
    assert_within(run, 1)


def test_kubeconfig_that_is_a_fifo_says_so(tmp_path):
    """A FIFO was 'no such file': it exists, it is just not a file (a shell's <(...) is one, and reading it
    is all ssdns could do with it once)."""
    fifo = tmp_path / "kc"
    os.mkfifo(fifo)
    run = run_ssdns(*CHECK, "--kubeconfig", str(fifo), "--api", "on")
    assert run.returncode == 2, run
    assert run.one_line() == (f"ssdns: error: --kubeconfig {str(fifo)!r}: it is a FIFO (named pipe), not a kubeconfig "
                              "file: give the path of a kubeconfig file")
    assert_within(run, 1)


def test_history_without_timeout_value_and_with_a_bad_one():
    run = run_ssdns("history", "--state", "/nonexistent/s.json", "--timeout", "-3")
    assert run.returncode == 2 and "out of range" in run.one_line()


@pytest.mark.parametrize("extra, says", [
    (["--dns-host", "nope"], "is not an IP address"),
    (["--dns-host", "10.1.2.3"], "loopback only"),
    (["--kubeconfig-out", "/nonexistent-dir/kc"], "cannot write it (No such file or directory)"),
    (["--kubeconfig-out", "/tmp"], "is a directory"),
    (["--dns-port", "70000"], "out of range"),
])
def test_bad_sandbox_input_is_one_line_and_exit_2(extra, says):
    run = run_ssdns("sandbox", "--duration", "1", *extra)
    assert run.returncode == 2, run
    assert says in run.one_line() and run.stdout == ""
    assert_within(run, 1)


def test_sandbox_port_in_use_is_one_line_and_exit_3(tmp_path):
    with socket.socket() as s:
        s.bind(("127.54.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        run = run_ssdns("sandbox", "--dns-port", str(port), "--duration", "1",
                        "--kubeconfig-out", str(tmp_path / "kc"))
    assert run.returncode == 3, run
    line = run.one_line()
    assert "address already in use" in line and "pick another --dns-port" in line
    assert not (tmp_path / "kc").exists()
    assert_within(run, 1)


@pytest.fixture(scope="module")
def sb():
    from conftest import ThreadedSandbox

    from ssdns.sandbox import make_world

    s = ThreadedSandbox(make_world(3))
    yield s
    s.stop()


def _replicas(sb, n: int, *extra: str) -> list[str]:
    args = [*sb.sandbox.check_args(), "--api", "off", "--no-http", "--color", "never", *extra]
    args[args.index("--replicas") + 1] = str(n)
    return args


def test_20000_replicas_end_at_the_deadline_with_exit_3(sb):
    run = run_ssdns(*_replicas(sb, 20000, "--timeout", "2"))
    assert run.returncode == 3, run
    assert "Traceback" not in run.stderr
    note, error = run.stderr.strip().splitlines()  # the note before the run says the count looks too large
    assert note.startswith("ssdns: note: 20000 pods may take") and "did not finish within --timeout 2 s" in error
    assert run.stdout == ""
    assert_within(run, 2)


def test_many_pods_are_summarised_unless_asked(sb):
    run = run_ssdns(*_replicas(sb, 300, "--timeout", "20"))
    assert run.returncode == 1 and run.stderr == ""
    lines = run.stdout.splitlines()
    assert len(lines) < 250 and max(map(len, lines)) < 400
    assert "... and 200 more pods not shown (--rows all, or -o json, lists every pod)" in run.stdout
    assert "297 of 300 expected pods have no DNS name: web-3, web-4," in run.stdout and "and 277 more" in run.stdout
    every = run_ssdns(*_replicas(sb, 300, "--timeout", "20", "--rows", "all"))
    assert "more pods not shown" not in every.stdout and "web-299 " in every.stdout


def test_replicas_0_means_zero_pods(sb):
    run = run_ssdns(*_replicas(sb, 0, "--timeout", "5", "-o", "json"))
    import json

    report = json.loads(run.stdout)
    assert report["target"]["replicas"] == 0
    assert not any("give --statefulset and --replicas" in n for n in report["notes"])
    extra = [f for f in report["findings"] if f["check"] == "pods.ordinals" and f["status"] == "warn"]
    assert {f["subject"] for f in extra} == {"web-0", "web-1", "web-2"}  # in DNS, but none is wanted
