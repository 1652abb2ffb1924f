"""Fault catalogue, signals mid-run: SIGTERM (a Job deleted, a deadline hit) and SIGINT (Ctrl-C) end
the run at once with one line, exit 143 or 130, and the unattended outputs written with a
"could not run: interrupted" verdict. The signal is sent when the run is provably mid-run: the
test's own API server has received its first request (an event, not a sleep)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from badapi import ApiProxy, BadApi
from conftest import ThreadedSandbox
from faultkit import SLACK, assert_within, digests, run_ssdns

from ssdns.sandbox import make_world


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_run_is_one_line_and_the_outputs_say_could_not_run(sig, code, tmp_path):
    term = tmp_path / "termination-log"
    term.write_text("")  # Kubernetes creates it; ssdns only writes into one that exists
    junit, prom = tmp_path / "out.xml", tmp_path / "out.prom"
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"schema": "ssdns.state/v1", "target": {}, "history": []}))
    before = digests(state)
    with BadApi("hang") as api:
        kc = api.kubeconfig(tmp_path / "kc")
        proc = subprocess.Popen(
            [sys.executable, "-m", "ssdns", "check", "--service", "nginx", "--statefulset", "web",
             "--nameserver", "127.0.0.1:9", "--api", "on", "--kubeconfig", str(kc), "--timeout", "30",
             "--state", str(state), "--termination-log", str(term), "--junit", str(junit), "--metrics-file",
             str(prom)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ)
        try:
            assert api.got_request.wait(20), "the run never reached the API"
            sent = time.monotonic()
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=10)
            took = time.monotonic() - sent
        finally:
            proc.kill()
    assert proc.returncode == code, (out, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0] == f"ssdns: interrupted by {sig.name}: the run stopped before it finished"
    assert took <= SLACK, f"took {took:.2f} s to stop after {sig.name}"
    assert term.read_text().startswith(f"ssdns could not run (exit {code}): interrupted by {sig.name}")
    assert "could not run: interrupted" in junit.read_text()
    assert "ssdns_run_ok" in prom.read_text() and 'ssdns_check_ok{check="ssdns.run"' in prom.read_text()
    assert digests(state) == before


def test_could_not_run_also_writes_the_outputs(tmp_path):
    """Exit 3 (no nameserver answered): the termination log and the metrics say so, not nothing."""
    term = tmp_path / "termination-log"
    term.write_text("")
    prom = tmp_path / "out.prom"
    proc = subprocess.run([sys.executable, "-m", "ssdns", "check", "nginx", "--nameserver", "127.0.0.1:9",
                           "--api", "off", "--timeout", "1", "--termination-log", str(term), "--metrics-file",
                           str(prom)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 3 and len(proc.stderr.strip().splitlines()) == 1
    assert term.read_text().startswith("ssdns could not run (exit 3): no nameserver answered")
    assert "ssdns_run_ok" in prom.read_text()


def test_hanging_pushgateway_is_bounded_by_the_deadline(tmp_path):
    """The Pushgateway accepts and never answers: the report is printed, then one line and exit 3,
    within the deadline; the push is tried once."""
    sb = ThreadedSandbox(make_world(3))
    try:
        with BadApi("hang") as gateway:
            run = run_ssdns(*sb.sandbox.check_args(), "--api", "off", "--timeout", "2", "--pushgateway",
                            gateway.url)
        assert run.returncode == 3, run
        assert "cannot push metrics to the Pushgateway" in run.one_line() and "PASS" in run.stdout
        assert len(gateway.requests) == 1
        assert_within(run, 2)
    finally:
        sb.stop()



def disrupt(command: str, kubeconfig, nameserver, *more: str) -> subprocess.Popen:
    """restart-test or scale-test against the sandbox, in its own process, to be signalled mid-run."""
    args = [sys.executable, "-m", "ssdns", command, "--statefulset", "web", *more, "--yes",
            "--kubeconfig", str(kubeconfig), "--nameserver", str(nameserver), "--timeout", "60"]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ)


def test_sigterm_mid_scale_test_restores_the_replicas_and_exits_143(sandbox_factory, tmp_path):
    """A Job killed while scale-test has scaled down: the count is restored, one line says why, 143."""
    sb = sandbox_factory(ready_delay=1.0, terminate_delay=0.5)
    kc = sb.sandbox.write_kubeconfig(tmp_path / "kc")
    proc = disrupt("scale-test", kc, sb.sandbox.nameserver, "--to", "1")
    try:
        api = sb.sandbox.api
        for _ in range(400):  # until the scale-down has reached the API (bounded: 20 s)
            if any(r.subresource == "scale" and r.verb == "patch" for r in list(api.requests)):
                break
            time.sleep(0.05)
        else:
            pytest.fail("scale-test never scaled")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 143, (out, err)
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "ssdns: interrupted by SIGTERM: the run stopped before it finished"
    assert sb.world.sts.replicas == 3  # restored before exiting


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_restart_test_ends_at_once_and_says_what_was_deleted(sandbox_factory, tmp_path, sig, code):
    """Interrupted while the replacement is awaited (its reads in flight): no call is waited for, and
    the progress says which pod was deleted before the interrupt's one line."""
    sb = sandbox_factory(ready_delay=30)
    kc = sb.sandbox.write_kubeconfig(tmp_path / "kc")
    proc = disrupt("restart-test", kc, sb.sandbox.nameserver, "--ordinal", "2")
    try:
        api = sb.sandbox.api
        for _ in range(400):  # until the delete has reached the API (bounded: 20 s)
            if any(r.verb == "delete" for r in list(api.requests)):
                break
            time.sleep(0.05)
        else:
            pytest.fail("restart-test never deleted")
        sent = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
        took = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"ssdns: interrupted by {signal.Signals(sig).name}"), err
    # The delete reached the API: either its answer came (deleted) or the interrupt came first (maybe deleted).
    assert ("stopped; before that, deleted web-2 (uid" in lines[-2] and "not seen back yet" in lines[-2]) or \
        ("stopped; before that, the delete of web-2 (uid" in lines[-2] and "may have been done" in lines[-2]), err
    assert took < SLACK  # at once: not at --timeout 60, nor after a call's own bound


def test_sigterm_with_the_delete_unanswered_says_it_may_have_been_done(sandbox_factory, tmp_path):
    """The delete reached an API that has not answered yet when SIGTERM comes: ssdns cannot know whether
    the pod was deleted, and says so, with the command that tells."""
    sb = sandbox_factory()
    with ApiProxy(sb.sandbox.api_url, lambda m, path, seen: "hang" if m == "DELETE" else "pass") as proxy:
        kc = proxy.kubeconfig(tmp_path / "kc")
        proc = disrupt("restart-test", kc, sb.sandbox.nameserver, "--ordinal", "2")
        try:
            if not proxy.faulted.wait(20):  # the DELETE has reached the proxy, which holds it
                pytest.fail("restart-test never deleted")
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20)
        finally:
            proc.kill()
    assert proc.returncode == 143 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert "the delete of web-2 (uid" in lines[-2] and "may have been done" in lines[-2], err
    assert "kubectl get pod web-2 -n default" in lines[-2]
