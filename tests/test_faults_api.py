"""Fault catalogue, the Kubernetes API half: an API server of the tests' own (tests/badapi.py) that
hangs, trickles, refuses, answers every error status, an empty 200, JSON of another shape, HTML, a
redirect, a reset, or TLS with a self-signed certificate. Each case runs the real executable and
asserts the exit code, one line on stderr that says what failed, no traceback, nothing stored changed
and a wall time within --timeout + 1.5 s."""

from __future__ import annotations

import json
import socket

import pytest
from badapi import BadApi, self_signed
from conftest import ThreadedSandbox
from faultkit import assert_within, digests, run_ssdns

from ssdns.sandbox import make_world

T = 2.0  # --timeout of the cases: the API reads get half of it


@pytest.fixture(scope="module")
def dns():
    """The sandbox's DNS and pods: what the --api auto cases check once the API is given up."""
    sb = ThreadedSandbox(make_world(3))
    yield sb
    sb.stop()


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return self_signed(tmp_path_factory.mktemp("tls"))


def check_args(kubeconfig, nameserver: str, api: str = "on", timeout: float = T) -> list[str]:
    return ["check", "--service", "nginx", "--statefulset", "web", "--replicas", "3", "--port-name", "web",
            "--nameserver", nameserver, "--api", api, "--kubeconfig", str(kubeconfig), "--timeout", str(timeout)]


# mode -> what the one line says (with --api on: exit 4)
ON_CASES = {
    "hang": "did not answer in time",
    "trickle": "did not answer in time",
    "lying-length": "did not answer in time",
    "401": "does not accept the credentials",
    "403": "grant verb 'get' on 'statefulsets'",
    "404": "StatefulSet default/web does not exist (HTTP 404): check the name and --namespace",
    "409": "(HTTP 409: the test server says 409)",
    "500": "(HTTP 500: the test server says 500): the API server at",
    "503": "(HTTP 503: the test server says 503): the API server at",
    "empty": "an empty answer",
    "array": "JSON of another shape: a list, not an object",
    "string": "JSON of another shape: a str, not an object",
    "null": "JSON of another shape: a NoneType, not an object",
    "not-json": "not JSON (application/json)",
    "html": "HTML, not JSON",
    "wrong-kind": "JSON of another shape: a ConfigMap, not StatefulSet web",
    "other-statefulset": "JSON of another shape: a StatefulSet db, not StatefulSet web",
    "bad-types": "JSON of another shape",
    "redirect": "a redirect to http://127.0.0.1:9/login",
    "reset": "is unreachable (connection reset by peer)",
    "close": "is unreachable (remote end closed connection without response)",
}


@pytest.mark.parametrize("mode", sorted(ON_CASES))
def test_api_on_fault_is_one_line_and_exit_4(mode, tmp_path):
    with BadApi(mode) as api:
        kc = api.kubeconfig(tmp_path / "kc")
        before = digests(kc)
        run = run_ssdns(*check_args(kc, "127.0.0.1:9"))
        assert run.returncode == 4, run
        line = run.one_line()
        assert line.startswith("ssdns: error: ") and ON_CASES[mode] in line, line
        assert "grant verb" not in line or mode == "403", line  # only 403 is about permissions
        assert run.stdout == "" and digests(kc) == before
        assert_within(run, T)
        assert len(set(api.requests)) == len(api.requests), api.requests  # no retries behind ssdns's back


def test_api_refusing_connections(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the block ends
    from ssdns.sandbox.api import kubeconfig_text

    kc = tmp_path / "kc"
    kc.write_text(kubeconfig_text(f"http://127.0.0.1:{port}", "default"))
    run = run_ssdns(*check_args(kc, "127.0.0.1:9"))
    assert run.returncode == 4 and "is unreachable (connection refused)" in run.one_line()
    assert_within(run, T)


def test_api_with_a_self_signed_certificate(cert, tmp_path):
    with BadApi("403", tls=cert) as api:
        run = run_ssdns(*check_args(api.kubeconfig(tmp_path / "kc"), "127.0.0.1:9"))
    assert run.returncode == 4, run
    line = run.one_line()
    assert "TLS with the Kubernetes API at https://127.0.0.1:" in line and "self-signed certificate" in line, line
    assert_within(run, T)


# With --api auto the check goes on with DNS and HTTP: one api.access warning names what was lost.
AUTO_CASES = {
    "hang": "did not answer in time",
    "trickle": "did not answer in time",
    "500": "the API server at",
    "html": "HTML, not JSON",
    "401": "does not accept the credentials",
}


@pytest.mark.parametrize("mode", sorted(AUTO_CASES))
def test_api_auto_fault_degrades_to_dns_and_http(mode, dns, tmp_path):
    with BadApi(mode) as api:
        run = run_ssdns(*check_args(api.kubeconfig(tmp_path / "kc"), str(dns.sandbox.nameserver), api="auto"),
                        "--output", "json")
    assert run.returncode == 0, run
    assert "Traceback" not in run.stderr and run.stderr == ""
    report = json.loads(run.stdout)
    warnings = [f for f in report["findings"] if f["check"] == "api.access"]
    # The API unusable as a whole is one warning; a server error is one per read it failed (the
    # StatefulSet, the Service, its EndpointSlices and its Endpoints object).
    assert len(warnings) == (4 if mode == "500" else 1), warnings
    for w in warnings:
        assert w["status"] == "warn" and AUTO_CASES[mode] in w["message"], w
    assert any(f["check"] == "http.identity" and f["status"] == "pass" for f in report["findings"])
    assert_within(run, T)


def test_api_auto_with_the_self_signed_certificate(cert, dns, tmp_path):
    with BadApi("403", tls=cert) as api:
        run = run_ssdns(*check_args(api.kubeconfig(tmp_path / "kc"), str(dns.sandbox.nameserver), api="auto"),
                        "--output", "json")
    assert run.returncode == 0, run
    [warning] = [f for f in json.loads(run.stdout)["findings"] if f["check"] == "api.access"]
    assert "self-signed certificate" in warning["message"] and "checked DNS and HTTP only" in warning["message"]


def test_api_auto_without_a_service_cannot_run(tmp_path):
    with BadApi("hang") as api:
        args = check_args(api.kubeconfig(tmp_path / "kc"), "127.0.0.1:9", api="auto")
        i = args.index("--service")
        run = run_ssdns(*(args[:i] + args[i + 2:]))
    assert run.returncode == 4 and "so the Service is unknown" in run.one_line()
    assert_within(run, T)


def test_configmap_state_against_a_hanging_api(dns, tmp_path):
    """State in a ConfigMap, API hanging: the check runs, state.store fails, all within the deadline.
    4 s, not T: the hanging reads take half of it, and on a loaded 2-core machine the kubernetes import
    plus DNS and HTTP did not always fit in what 2 s left (exit 3: the run did not finish)."""
    with BadApi("hang") as api:
        run = run_ssdns(*check_args(api.kubeconfig(tmp_path / "kc"), str(dns.sandbox.nameserver), api="auto",
                                    timeout=4), "--state", "configmap:ssdns-state", "--output", "json")
    assert run.returncode == 1, run
    assert run.stderr == ""
    [store] = [f for f in json.loads(run.stdout)["findings"] if f["check"] == "state.store"]
    assert "did not answer in time" in store["message"]
    assert_within(run, 4)


def test_history_against_a_hanging_api_has_a_deadline(tmp_path):
    with BadApi("hang") as api:
        run = run_ssdns("history", "--state", "configmap:ssdns-state", "--kubeconfig",
                        str(api.kubeconfig(tmp_path / "kc")), "--timeout", str(T))
    assert run.returncode == 3, run
    assert "did not answer in time" in run.one_line()
    assert_within(run, T)


@pytest.mark.parametrize("text, says", [
    ("{{{: [", "cannot load Kubernetes credentials"),
    ("\x00\x01\x02binary", "cannot load Kubernetes credentials"),
    ("", "cannot load Kubernetes credentials"),
    ("apiVersion: v1\nkind: Config\nclusters: []\n", "cannot load Kubernetes credentials"),
    ("- just\n- a list\n", "cannot load Kubernetes credentials"),
])
def test_kubeconfig_that_is_not_one(text, says, tmp_path):
    kc = tmp_path / "kc"
    kc.write_text(text)
    before = digests(kc)
    run = run_ssdns(*check_args(kc, "127.0.0.1:9"))
    assert run.returncode == 4, run
    assert says in run.one_line() and str(kc) in run.one_line()
    assert digests(kc) == before
    assert_within(run, T)


def test_history_with_a_kubeconfig_that_is_not_one(tmp_path):
    kc = tmp_path / "kc"
    kc.write_text("{{{: [")
    run = run_ssdns("history", "--state", "configmap:ssdns-state", "--kubeconfig", str(kc), "--timeout", str(T))
    assert run.returncode == 3, run
    line = run.one_line()
    assert "cannot read ConfigMap" in line and "cannot load Kubernetes credentials" in line
    assert_within(run, T)


def hanging_exec_kubeconfig(kc):
    kc.write_text("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                  "contexts:\n- name: c\n  context: {cluster: k, user: u}\n"
                  "clusters:\n- name: k\n  cluster: {server: 'http://127.0.0.1:9'}\n"
                  "users:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
                  "      command: sleep\n      args: ['30']\n      interactiveMode: Never\n")
    return kc


def test_kubeconfig_whose_exec_plugin_hangs(tmp_path):
    """An exec credential plugin that never returns: loading the credentials is bounded too."""
    run = run_ssdns(*check_args(hanging_exec_kubeconfig(tmp_path / "kc"), "127.0.0.1:9"))
    assert run.returncode == 4, run
    assert "did not finish in time" in run.one_line()
    assert_within(run, T)


def watch_args(kubeconfig) -> list[str]:
    return ["watch", "--statefulset", "web", "--listen", "127.0.0.1:0", "--nameserver", "127.0.0.1:9",
            "--kubeconfig", str(kubeconfig), "--timeout", str(T)]


def test_watch_start_up_with_an_exec_plugin_that_hangs_is_bounded(tmp_path):
    """ssdns watch's start-up has --timeout as its deadline: loading the credentials too (it took the
    plugin's 30 s before)."""
    run = run_ssdns(*watch_args(hanging_exec_kubeconfig(tmp_path / "kc")))
    assert run.returncode == 4, run
    assert "did not finish in time" in run.one_line()
    assert_within(run, T)


@pytest.mark.parametrize("mode", ["hang", "trickle"])
def test_watch_start_up_against_a_hanging_api_is_bounded(mode, tmp_path):
    with BadApi(mode) as api:
        run = run_ssdns(*watch_args(api.kubeconfig(tmp_path / "kc")))
    assert run.returncode == 4, run
    line = run.one_line()
    assert "ssdns watch needs the StatefulSet" in line and "did not answer in time" in line, line
    assert_within(run, T)


@pytest.mark.parametrize("given", ["deadline", "call_timeout"])
def test_watch_rereads_are_bounded_by_the_full_check_or_the_watch_timeout(given, tmp_path):
    """ssdns watch's re-read of the StatefulSet before a full check ends by that check's deadline, and
    a re-list without one by the watch's --timeout (call_timeout), not a constant of its own."""
    import asyncio
    import time

    from faultkit import SLACK

    from ssdns import kube
    from ssdns.podwatch import PodWatcher
    from ssdns.target import ApiOptions

    with BadApi("hang") as api:
        client = kube.api_client(ApiOptions("on", str(api.kubeconfig(tmp_path / "kc"))))
        logs: list[str] = []
        watcher = PodWatcher(client, "default", "web", lambda change: None, logs.append,
                             call_timeout=60.0 if given == "deadline" else 0.5)
        started = time.monotonic()
        asyncio.run(watcher.refresh(started + 0.5 if given == "deadline" else None))
        elapsed = time.monotonic() - started
        client.close()
    assert elapsed < 0.5 + SLACK, elapsed
    assert len(logs) == 1 and "cannot read the StatefulSet" in logs[0] and "did not answer in time" in logs[0], logs


def test_a_watch_stream_that_trickles_is_given_up_at_its_bound(tmp_path, monkeypatch):
    """Each byte resets the read timeout, so only a bound on the whole stream ends it: timeoutSeconds
    plus the slack (1 + 1 s here), then ssdns watch reconnects."""
    import asyncio
    import time

    from faultkit import SLACK

    from ssdns import kube
    from ssdns.errors import ApiError
    from ssdns.podwatch import PodWatcher
    from ssdns.target import ApiOptions

    monkeypatch.setattr(kube, "WATCH_SECONDS", 1)
    monkeypatch.setattr(kube, "WATCH_READ_SLACK", 1.0)
    with BadApi("trickle") as api:
        client = kube.api_client(ApiOptions("on", str(api.kubeconfig(tmp_path / "kc"))))
        watcher = PodWatcher(client, "default", "web", lambda change: None, lambda line: None)
        watcher.selector, watcher.version = "app=web", "1"
        started = time.monotonic()
        with pytest.raises(ApiError) as caught:
            asyncio.run(watcher._stream(asyncio.Event()))
        elapsed = time.monotonic() - started
        client.close()
    assert caught.value.kind == "timeout" and "the stream did not end within 2 s" in str(caught.value)
    assert elapsed < 2 + SLACK, elapsed


# An answer of another kind, or another object, to the get of the state's ConfigMap: not the state's, and not
# "a ConfigMap that is not ssdns's" (exit 2, left untouched) either: the API sent what no API sends for it.
@pytest.mark.parametrize("mode, says", [
    ("bad-types", "JSON of another shape: a StatefulSet web, not ConfigMap ssdns-state"),
    ("other-configmap", "JSON of another shape: a ConfigMap someone-else, not ConfigMap ssdns-state"),
])
def test_history_given_another_object_than_its_configmap(mode, says, tmp_path):
    with BadApi(mode) as api:
        run = run_ssdns("history", "--state", "configmap:ssdns-state", "--kubeconfig",
                        str(api.kubeconfig(tmp_path / "kc")), "--timeout", str(T))
    assert run.returncode == 3, run
    line = run.one_line()
    assert line.startswith("ssdns: error: cannot read ConfigMap default/ssdns-state: ") and says in line, line
    assert "check that --kubeconfig/--context point at the API server" in line
    assert run.stdout == ""
    assert_within(run, T)


@pytest.mark.parametrize("mode", ["bad-types", "other-configmap"])
def test_check_state_given_another_object_than_its_configmap_writes_nothing(mode, dns, tmp_path):
    with BadApi(mode) as api:
        run = run_ssdns(*check_args(api.kubeconfig(tmp_path / "kc"), str(dns.sandbox.nameserver), api="auto",
                                    timeout=4), "--state", "configmap:ssdns-state", "--output", "json")
        requests = list(api.requests)
    assert run.returncode == 1, run
    [store] = [f for f in json.loads(run.stdout)["findings"] if f["check"] == "state.store"]
    assert "JSON of another shape" in store["message"] and "not ConfigMap ssdns-state" in store["message"]
    assert {r.split()[0] for r in requests} == {"GET"}  # read, and nothing written over what it is
