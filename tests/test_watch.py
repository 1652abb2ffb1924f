"""ssdns watch against the sandbox's StatefulSet controller, over real loopback sockets: a replacement is
detected and timed within the sandbox's configured delays plus one probe interval; negative caching
shows as an NXDOMAIN window; the watch survives cut streams and 410 Gone; the endpoints serve parseable
metrics with the convergence histogram and the same report `check -o json` prints; SIGTERM stops it.

Every wait is a bounded poll on an observable event (an HTTP endpoint, a recorded event)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

pytest.importorskip("kubernetes")
pytest.importorskip("prometheus_client")

from conftest import run_json  # noqa: E402
from conftest import until as poll  # noqa: E402

from ssdns.target import ApiOptions  # noqa: E402
from ssdns.watch import Watch, WatchSettings  # noqa: E402
from ssdns.watchprobe import ProbeOptions  # noqa: E402

INTERVAL = 0.25  # --probe-interval in these tests
SLACK = 0.4  # scheduling on a shared, loaded machine: an upper bound's slack, not a speed figure
ROOT = Path(__file__).resolve().parent.parent


def until(fn, timeout: float = 10.0):
    return poll(fn, timeout, every=0.05)


class Running:
    """A Watch on its own loop in a thread, stopped by the test (or at teardown)."""

    def __init__(self, sb, tmp_path, *, interval: float = 30.0, settle: float = 0.5, give_up: float = 20.0,
                 state: str | None = None, labels: dict | None = None, **target: object):
        kubeconfig = sb.sandbox.write_kubeconfig(tmp_path / "kubeconfig")
        target = sb.sandbox.target(timeout=5.0, replicas=None).with_(**target)
        self.settings = WatchSettings(target, ApiOptions("on", str(kubeconfig)), ProbeOptions(INTERVAL, settle, give_up),
                                      interval, ("127.0.0.1", 0), state, 20, 5.0, labels or {})
        self.lines: list[str] = []
        self.watch = Watch(self.settings, self.lines.append)
        self.port = 0
        self.error: BaseException | None = None
        self.loop = asyncio.new_event_loop()
        self.stop_event = asyncio.Event()
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        until(lambda: self.started.is_set() or self.error, 10)
        assert self.error is None, self.error

    def _run(self) -> None:
        def ready(port: int) -> None:
            self.port = port
            self.started.set()

        try:
            self.loop.run_until_complete(self.watch.run(self.stop_event, ready))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.loop.close()

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:  # noqa: S310
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def events(self, pod: str | None = None):
        return [e for e in list(self.watch.recent) if pod is None or e.pod == pod]

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stop_event.set)
            self.thread.join(10)


@pytest.fixture
def watching(tmp_path):
    made: list[Running] = []

    def start(sb, **kw) -> Running:
        w = Running(sb, tmp_path, **kw)
        made.append(w)
        return w

    yield start
    for w in made:
        w.stop()


def delete(sb, name: str) -> None:
    """An eviction: the pod is deleted through the controller (as the API's delete does), on the sandbox's loop."""
    async def go():
        sb.sandbox.controller.delete_pod(name)
    sb.call(go())


def test_a_replacement_is_timed_within_the_configured_delays(sandbox_factory, watching):
    sb = sandbox_factory(terminate_delay=0.2, start_delay=0.05, ready_delay=0.3, dns_delay=0.3)
    w = watching(sb)
    until(lambda: w.get("/readyz")[0] == 200)
    old = sb.world.pod("web-1")
    deleted = time.time()
    delete(sb, "web-1")
    ev = until(lambda: w.events("web-1"))[0]
    assert ev.outcome == "converged" and ev.ok and ev.cause == "replaced", ev.to_dict()
    assert ev.old_uid == old.uid and ev.old_ips == [old.ip]
    new = sb.world.pod("web-1")
    assert ev.new_uid == new.uid and ev.new_ips == [new.ip] and new.ip != old.ip
    # t0 is when the watch saw the deletion: a little after the delete (the event's way to the watch).
    lag = datetime.fromisoformat(ev.seen_at.replace("Z", "+00:00")).timestamp() - deleted
    assert -0.01 <= lag <= SLACK, lag

    def within(stage_s: float | None, after_delete: float) -> bool:
        """The sandbox's delay after the delete, seen from t0: never before it (a stage is timed by the
        reply that showed it), at most a round later."""
        return stage_s is not None and after_delete - lag - 0.05 <= stage_s <= after_delete - lag + INTERVAL + SLACK

    # The new pod is Ready after terminate + ready delay; DNS shows it dns_delay later.
    dns_at = 0.2 + 0.3 + 0.3
    for stage in ("dns", "ptr", "srv"):
        assert within(ev.stages[stage], dns_at), (stage, ev.stages, lag)
    # The old IP left DNS dns_delay after the old pod turned terminating (its endpoint not ready).
    assert within(ev.stages["old_ip_gone"], 0.3), (ev.stages, lag)
    # The new pod answers HTTP once it runs: terminate + start delay.
    assert within(ev.stages["http"], 0.2 + 0.05), (ev.stages, lag)
    # NXDOMAIN from the old name's removal (0.3 s) until the new one is served (0.8 s).
    assert ev.nxdomain_window is not None and dns_at - 0.3 - INTERVAL - 0.05 <= ev.nxdomain_window <= \
        dns_at - 0.3 + INTERVAL + SLACK, ev.nxdomain_window
    assert ev.wrong == 0 and ev.still_wrong == []


def test_without_port_name_the_probe_asks_srv_for_the_port_the_api_names(sandbox_factory, watching):
    sb = sandbox_factory(terminate_delay=0.1, ready_delay=0.1, dns_delay=0.1)
    w = watching(sb, port_name=None, service=None)  # as `ssdns watch --statefulset web` alone
    until(lambda: w.get("/readyz")[0] == 200)
    delete(sb, "web-0")
    ev = until(lambda: w.events("web-0"))[0]
    assert ev.ok and ev.stages["srv"] is not None and ev.stages["ptr"] is not None, ev.to_dict()


def test_negative_caching_shows_as_the_nxdomain_window(sandbox_factory, watching):
    sb = sandbox_factory(terminate_delay=0.1, start_delay=0.05, ready_delay=0.2, dns_delay=0.1, negative_ttl=1.5)
    w = watching(sb)
    until(lambda: w.get("/readyz")[0] == 200)
    delete(sb, "web-2")
    ev = until(lambda: w.events("web-2"), 15)[0]
    assert ev.ok, ev.to_dict()
    # The name was asked while absent (from 0.1 s on): that NXDOMAIN is served for the SOA minimum.
    assert 1.5 - 0.05 <= ev.nxdomain_window <= 1.5 + INTERVAL + SLACK, ev.to_dict()
    assert ev.stages["dns"] >= 1.5 and ev.stages["dns"] <= 0.1 + 1.5 + INTERVAL + SLACK + INTERVAL


def test_a_stale_old_ip_is_timed_until_it_is_gone(sandbox_factory, watching):
    sb = sandbox_factory(terminate_delay=0.1, start_delay=0.05, ready_delay=0.2, dns_delay=0.5)
    w = watching(sb)
    until(lambda: w.get("/readyz")[0] == 200)

    async def cache():  # from now on: what the full check asked is not cached, the probe's first round is
        sb.world.stale_for = 1.5
    sb.call(cache())
    delete(sb, "web-0")
    ev = until(lambda: w.events("web-0"), 15)[0]
    assert ev.ok, ev.to_dict()
    # The first round asked while DNS still served the old IP (for 0.5 s): the cache keeps it 1.5 s.
    assert 1.5 - 0.1 <= ev.stages["old_ip_gone"] <= 1.5 + INTERVAL + SLACK, ev.stages


@pytest.mark.parametrize("fault, counter", [("watch_drop_after", "reconnects"), ("watch_expire_after", "relists")])
def test_the_watch_survives_cut_streams_and_410_gone(sandbox_factory, watching, fault, counter):
    sb = sandbox_factory(terminate_delay=0.1, start_delay=0.05, ready_delay=0.1, dns_delay=0.1, **{fault: 0.4})
    w = watching(sb)
    until(lambda: w.watch.watcher is not None and getattr(w.watch.watcher, counter) >= 2, 15)
    delete(sb, "web-1")
    ev = until(lambda: w.events("web-1"), 15)[0]
    assert ev.ok and ev.cause == "replaced", ev.to_dict()
    assert ev.new_uid == sb.world.pod("web-1").uid
    verbs = [r.verb for r in sb.sandbox.api.requests if r.resource == "pods"]
    assert verbs.count("watch") >= 3 and verbs.count("list") >= (3 if counter == "relists" else 1)


def test_a_replacement_that_never_answers_as_itself_is_a_failure_naming_what_is_wrong(sandbox_factory, watching):
    sb = sandbox_factory(faults=["replacement-wrong-name:web-1=web-2"], terminate_delay=0.1, ready_delay=0.1,
                         dns_delay=0.1)
    w = watching(sb, give_up=1.5)
    until(lambda: w.get("/readyz")[0] == 200)
    delete(sb, "web-1")
    ev = until(lambda: w.events("web-1"), 15)[0]
    assert not ev.ok and ev.outcome == "gave-up"
    assert [s.split(":")[0] for s in ev.still_wrong] == ["http"] and "web-2" in ev.still_wrong[0]
    assert ev.wrong > 0 and any("answered as web-2" in s for s in ev.wrong_seen)
    assert ev.stages["dns"] is not None and ev.stages["http"] is None


def test_metrics_parse_and_carry_the_convergence_histogram(sandbox_factory, watching):
    from prometheus_client.parser import text_string_to_metric_families

    sb = sandbox_factory(terminate_delay=0.1, ready_delay=0.1, dns_delay=0.1)
    w = watching(sb, labels={"node": "node-a"})  # --metric-label node=node-a, as the DaemonSet sets it
    until(lambda: w.get("/readyz")[0] == 200)
    assert w.get("/healthz")[0] == 200
    delete(sb, "web-0")
    until(lambda: w.events("web-0"))
    status, text = w.get("/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    hist = families["ssdns_convergence_seconds"]
    assert hist.type == "histogram"
    counts = {s.labels["stage"]: s.value for s in hist.samples if s.name.endswith("_count")}
    assert counts["dns"] == 1 and counts["http"] == 1 and counts["old_ip_gone"] == 1 and counts["ptr"] == 1
    assert all(s.labels["namespace"] == "default" and s.labels["statefulset"] == "web" for s in hist.samples)
    assert families["ssdns_watch_replacements"].samples[0].value >= 0
    converged = [s for s in families["ssdns_watch_replacements"].samples
                 if s.labels.get("outcome") == "converged" and s.name.endswith("_total")]
    assert converged[0].value == 1
    assert {s.labels["check"] for s in families["ssdns_check_ok"].samples} >= {"dns.pod", "http.identity"}
    labels = {k for f in families.values() for s in f.samples for k in s.labels}
    assert labels <= {"namespace", "statefulset", "node", "check", "ordinal", "stage", "outcome", "status", "le",
                      "resolver", "transport", "resolver_name", "resolver_node"}
    assert {(s.labels["resolver"], s.labels["transport"]) for s in hist.samples} == {("path", "udp")}
    assert all(s.labels.get("node") == "node-a" for f in families.values() for s in f.samples)


def _stable(report: dict) -> dict:
    """A report without what differs between two runs of the same world (timings, counts of queries)."""
    report = json.loads(json.dumps(report))
    stats = report.pop("stats")
    report["stats"] = {k: stats[k] for k in ("dns_queries", "http_requests", "nameservers")}
    for lk in report["lookups"]:
        lk.pop("elapsed_ms")
    report["lookups"].sort(key=lambda lk: (lk["name"], lk["type"]))
    for pod in report["pods"]:
        if pod.get("http"):
            pod["http"].pop("elapsed_ms", None)
        pod.pop("dns_ms", None)
    return report


def test_report_is_what_check_json_prints_for_the_same_world(sandbox_factory, watching, tmp_path):
    sb = sandbox_factory(faults=["wrong-name:web-2=web-0"])
    w = watching(sb)
    until(lambda: w.get("/readyz")[0] == 200)
    status, body = w.get("/report")
    assert status == 200
    served = json.loads(body)
    kubeconfig = sb.sandbox.write_kubeconfig(tmp_path / "kc")
    args = [a for a in sb.sandbox.check_args() if a != "--replicas" and a != "3"]
    code, printed = run_json([*args, "--timeout", "5", "--api", "on", "--kubeconfig", str(kubeconfig)])
    assert code == 1 and served["ok"] is False
    assert _stable(served) == _stable(printed)
    page = w.get("/")[1]
    assert "FAIL" in page and "web-2" in page and "http.identity" in page


def test_events_go_into_the_state_and_ssdns_history_shows_them(sandbox_factory, watching, tmp_path):
    from conftest import run_cli

    state = str(tmp_path / "state.json")
    sb = sandbox_factory(terminate_delay=0.1, ready_delay=0.1, dns_delay=0.1)
    w = watching(sb, interval=0.5, state=state)
    until(lambda: w.get("/readyz")[0] == 200)
    delete(sb, "web-1")
    until(lambda: w.events("web-1"))
    until(lambda: Path(state).exists() and json.loads(Path(state).read_text()).get("events"))
    doc = json.loads(Path(state).read_text())
    assert doc["history"] and doc["events"][0]["pod"] == "web-1" and doc["events"][0]["ok"] is True
    code, out, err = run_cli(["history", "--state", state])
    assert code == 0, err
    line = next(x for x in out.splitlines() if "watch" in x)
    assert "web-1 replaced: identity back (dns 0." in line and "CONV" in line and "old_ip_gone" in line


def _ssdns(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "ssdns", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT, **kw)


def test_sigterm_ends_the_probe_in_flight_flushes_state_and_exits_0(sandbox_factory, tmp_path):
    import socket

    sb = sandbox_factory(faults=["replacement-wrong-name:web-1=web-2"], terminate_delay=0.1, ready_delay=0.1,
                         dns_delay=0.1)
    kubeconfig = sb.sandbox.write_kubeconfig(tmp_path / "kc")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    state = tmp_path / "state.json"
    args = [a for a in sb.sandbox.check_args()[1:] if a not in ("--replicas", "3")]
    proc = _ssdns("watch", *args, "--kubeconfig", str(kubeconfig), "--listen", f"127.0.0.1:{port}",
                  "--state", str(state), "--interval", "600", "--give-up", "600")
    try:
        def ready():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:  # noqa: S310
                    return r.status == 200
            except OSError:
                assert proc.poll() is None, proc.communicate()
                return False
        until(ready, 20)
        delete(sb, "web-1")  # its replacement never answers as itself: a probe stays in flight
        until(lambda: "web-1 replaced" in _page(port), 10)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert took < 2.0 + 0.5, took  # the probe in flight ends at once; the state write is bounded
    doc = json.loads(state.read_text())
    ev = doc["events"][-1]
    assert ev["pod"] == "web-1" and ev["outcome"] == "stopped" and ev["ok"] is False


def _page(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:  # noqa: S310
            text = r.read().decode()
    except OSError:
        return ""
    return "web-1 replaced" if "ssdns_watch_probes_in_flight" in text and \
        'ssdns_watch_probes_in_flight{namespace="default",statefulset="web"} 1.0' in text else ""


@pytest.mark.parametrize("args, code, says", [
    (["--interval", "0"], 2, "--interval: 0 is out of range"),
    (["--probe-interval", "-1"], 2, "--probe-interval"),
    (["--listen", "nowhere:x"], 2, "--listen 'nowhere:x'"),
    (["--listen", "127.0.0.1:70000"], 2, "give HOST:PORT"),
    (["--api", "off"], 2, "drop --api off"),
    (["--metric-label", "node"], 2, "give KEY=VALUE"),
    (["--metric-label", "stage=x"], 2, "set by ssdns watch itself"),
    (["--metric-label", "9x=y"], 2, "not a valid Prometheus label name"),
])
def test_bad_watch_options_are_one_line(args, code, says):
    proc = _ssdns("watch", "--statefulset", "web", "--service", "nginx", "--nameserver", "127.0.0.1:53", *args)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == code and out == "", err
    assert len(err.strip().splitlines()) == 1 and says in err, err


def test_listen_in_use_and_no_api_access_are_one_line(sandbox_factory, tmp_path):
    import socket

    sb = sandbox_factory(faults=["api-forbidden:pods"])
    kubeconfig = sb.sandbox.write_kubeconfig(tmp_path / "kc")
    args = [a for a in sb.sandbox.check_args()[1:] if a not in ("--replicas", "3")]
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = _ssdns("watch", *args, "--kubeconfig", str(kubeconfig), "--listen", f"127.0.0.1:{port}")
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2 and "cannot listen there" in err and len(err.strip().splitlines()) == 1, err
    t0 = time.monotonic()
    proc = _ssdns("watch", *args, "--kubeconfig", str(kubeconfig), "--listen", "127.0.0.1:0", "--timeout", "3")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 4, err
    assert "grant verb 'list' on 'pods'" in err and len(err.strip().splitlines()) == 1, err
    assert time.monotonic() - t0 < 3 + 5  # within --timeout (plus the interpreter's start)


def test_a_deleted_statefulset_is_reported_and_its_return_watched(sandbox_factory, watching):
    sb = sandbox_factory(terminate_delay=0.1, ready_delay=0.1, dns_delay=0.1)
    w = watching(sb, interval=0.3)
    until(lambda: w.get("/readyz")[0] == 200)

    async def delete_sts():
        sb.world.delete_statefulset()
    sb.call(delete_sts())
    until(lambda: w.watch.watcher.sts_missing and w.watch.last_error)
    assert 'ssdns_watch_statefulset_present{namespace="default",statefulset="web"} 0.0' in w.get("/metrics")[1]
    status, text = w.get("/report")
    assert status == 503 and "could not run" in text
    assert any("was deleted; watching for it to come back" in line for line in w.lines)
    until(lambda: not sb.world.pods)  # the garbage collector took its pods

    async def create_sts():
        sb.world.create_statefulset()
        sb.sandbox.controller.kick()
    sb.call(create_sts())
    until(lambda: len(w.events()) == 3, 20)  # each ordinal came back: timed from when its pod went
    assert all(ev.ok and ev.cause == "replaced" for ev in w.events()), [e.to_dict() for e in w.events()]
    until(lambda: not w.watch.watcher.sts_missing and w.get("/report")[0] == 200)
    assert any(" is back" in line for line in w.lines)


def test_the_watch_roles_grant_exactly_the_calls_a_watch_makes(sandbox_factory, watching):
    """Recorded against the sandbox's API: a watch with ConfigMap state through a replacement and a few
    full checks (k8s/watch), and one without state (k8s/watch-per-node)."""
    from test_rbac import granted, roles_for, uncovered, without

    sb = sandbox_factory(terminate_delay=0.1, ready_delay=0.1, dns_delay=0.1)
    w = watching(sb, interval=0.3, state="configmap:ssdns-watch-state")
    until(lambda: w.watch.checks >= 2)
    delete(sb, "web-1")
    until(lambda: w.events("web-1"))
    until(lambda: "events" in json.loads(sb.world.configmaps["ssdns-watch-state"].data["state.json"]))
    w.stop()
    calls = [r for r in sb.sandbox.api.requests if r.rule]
    roles = roles_for("ssdns-watch", "k8s/watch/rbac.yaml")
    assert not uncovered(calls, roles)
    assert granted(roles) == {r.rule for r in calls}, "granted but never used"
    for group, resource, verb in sorted(granted(roles)):
        assert uncovered(calls, without(roles, group, resource, verb)), (group, resource, verb)
    assert ("", "pods", "watch") in granted(roles)

    sb2 = sandbox_factory(terminate_delay=0.1, ready_delay=0.1, dns_delay=0.1)
    w2 = watching(sb2, interval=0.3)
    until(lambda: w2.watch.checks >= 1 and w2.watch.watcher.connected)
    w2.stop()
    calls = [r for r in sb2.sandbox.api.requests if r.rule]
    roles = roles_for("ssdns-watch-per-node", "k8s/watch-per-node/rbac.yaml")
    assert not uncovered(calls, roles) and granted(roles) == {r.rule for r in calls}


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--no-proxy-server"]


def test_the_page_renders_in_a_real_headless_browser(sandbox_factory, watching, tmp_path):
    """Debian's chromium loads / from the watch and builds the DOM a person sees behind port-forward."""
    import shutil
    from html.parser import HTMLParser

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (.ci/deps installs Debian's chromium)")
    sb = sandbox_factory(faults=["wrong-name:web-2=web-0"], terminate_delay=0.1, ready_delay=0.1, dns_delay=0.1)
    w = watching(sb)
    until(lambda: w.get("/readyz")[0] == 200)
    delete(sb, "web-1")
    until(lambda: w.events("web-1"))
    proc = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                           f"http://127.0.0.1:{w.port}/"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]

    class Cells(HTMLParser):
        """The text of every table cell, per table id; and the verdict paragraph."""

        def __init__(self):
            super().__init__()
            self.tables: dict[str, list[list[str]]] = {}
            self.where: list[str] = []
            self.verdict = ""
            self._in: str | None = None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "table":
                self.where.append(a.get("id", ""))
                self.tables[self.where[-1]] = []
            elif tag == "tr" and self.where:
                self.tables[self.where[-1]].append([])
            elif tag in ("td", "th") and self.where:
                self.tables[self.where[-1]][-1].append("")
                self._in = "cell"
            elif tag == "p" and a.get("id") == "verdict":
                self._in = "verdict"

        def handle_endtag(self, tag):
            if tag == "table" and self.where:
                self.where.pop()
            if tag in ("td", "th", "p"):
                self._in = None

        def handle_data(self, data):
            if self._in == "cell":
                self.tables[self.where[-1]][-1][-1] += data
            elif self._in == "verdict":
                self.verdict += data

    dom = Cells()
    dom.feed(proc.stdout)
    assert dom.verdict.startswith("FAIL: last full check at"), dom.verdict
    findings = dom.tables["findings"]
    assert ["FAIL", "http.identity", "web-2"] in [row[:3] for row in findings]
    pods = {row[0]: row[2] for row in dom.tables["pods"][1:]}
    assert pods["web-2"] == "FAIL" and pods["web-0"] == "PASS"
    events = dom.tables["events"]
    header, rows = events[0], events[1:]
    row = dict(zip(header, rows[0], strict=True))
    assert row["pod"] == "web-1" and row["outcome"] == "converged" and row["dns"].endswith(" s")


def test_the_watch_line_the_sandbox_prints_works_and_sees_a_kubectl_delete(tmp_path):
    """`ssdns sandbox` prints how to watch it; that line runs, and `kubectl delete pod` (a real client)
    through the sandbox's API makes a replacement the watch times."""
    import shutil
    import socket

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (.ci/deps installs it)")
    sandbox = _ssdns("sandbox", "--pods", "2", "--duration", "60", "--kubeconfig-out", str(tmp_path / "kc"),
                     "--terminate-delay", "0.1", "--ready-delay", "0.1", "--dns-delay", "0.1")
    watch = None
    try:
        lines: list[str] = []
        for _ in range(12):  # bounded: the banner is a few lines, the watch line last
            lines.append(sandbox.stdout.readline())
            if len(lines) >= 2 and lines[-2].startswith("or watch every restart"):
                break
        line = lines[-1].split()
        assert line[:2] == ["ssdns", "watch"], lines
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        line[line.index("--listen") + 1] = f"127.0.0.1:{port}"
        watch = _ssdns(*line[1:], "--settle", "0.5")
        url = f"http://127.0.0.1:{port}"

        def get(path: str) -> str:
            try:
                with urllib.request.urlopen(url + path, timeout=2) as r:  # noqa: S310 - loopback
                    return r.read().decode() if r.status == 200 else ""
            except OSError:
                assert watch.poll() is None, watch.communicate()
                return ""
        until(lambda: get("/readyz"), 20)
        subprocess.run([kubectl, "--kubeconfig", str(tmp_path / "kc"), "delete", "pod", "web-1", "--wait=false"],
                       check=True, capture_output=True, timeout=30)
        done = 'ssdns_watch_replacements_total{namespace="default",outcome="converged",statefulset="web"} 1.0'
        until(lambda: done in get("/metrics"), 20)
    finally:
        for proc in (watch, sandbox):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.communicate(timeout=10)
    assert watch.returncode == 0
