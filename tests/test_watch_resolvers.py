"""ssdns watch through every resolver (--resolvers all|LIST, --transport), and an IP change under the same
UID, against the sandbox over real loopback sockets: each CoreDNS replica of kube-system/kube-dns gets its
own probe per replacement, a replica that lags shows up as the late one (events, spread, metrics, page,
history), replicas are re-discovered by every full check, one that stops answering is reported and not
fatal; the kubelet recreating a pod's sandbox (same UID, new IP) is timed as cause ip-changed.

Times are asserted as orderings and bounds with slack, never as exact values; every wait is a bounded poll on
an observable event."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("kubernetes")
pytest.importorskip("prometheus_client")

import test_watch
from test_watch import INTERVAL, SLACK, delete, until

from ssdns.target import Nameserver, ResolverChoice

watching = test_watch.watching  # the fixture: a Watch on its own loop, stopped at teardown

ROOT = Path(__file__).resolve().parent.parent
ALL = ResolverChoice("all")


def events_of(w, pod: str, n: int, timeout: float = 15.0):
    """The n events of one replacement of `pod` (one per resolver and transport), once all have ended."""
    return until(lambda: len(w.events(pod)) >= n and w.events(pod), timeout)


def by_resolver(events) -> dict:
    return {(ev.resolver, ev.transport): ev for ev in events}


def test_a_lagging_replica_is_the_late_one_in_events_spread_metrics_and_page(sandbox_factory, watching):
    from prometheus_client.parser import text_string_to_metric_families

    lag = 1.5
    sb = sandbox_factory(faults=[f"lagging-replica:1:{lag}"], terminate_delay=0.1, start_delay=0.05,
                         ready_delay=0.2, dns_delay=0.2)
    replicas = sb.world.dns_replicas
    w = watching(sb, resolvers=ALL)
    until(lambda: w.get("/readyz")[0] == 200)
    assert len(w.watch.resolvers.probes()) == 4  # the path, then each replica, discovered through the API
    assert any(line.startswith("watch: each replacement is probed through the resolv.conf path")
               and f"{replicas[1].name} (127.54.1.2 on node-1) [replica-1]" in line for line in w.lines), w.lines
    delete(sb, "web-1")
    got = by_resolver(events_of(w, "web-1", 4))
    assert set(got) == {("path", "udp"), *((r.name, "udp") for r in replicas)}
    assert all(ev.ok and ev.cause == "replaced" for ev in got.values()), [e.to_dict() for e in got.values()]
    late = got[(replicas[1].name, "udp")]
    others = [ev for key, ev in got.items() if key[0] != replicas[1].name]
    assert late.via == f"{replicas[1].name} (127.54.1.2 on node-1)"
    for stage in ("dns", "old_ip_gone"):
        # the lagging replica learns each change lag - dns_delay later than the others (less a round)
        assert late.stages[stage] >= max(ev.stages[stage] for ev in others) + (lag - 0.2) - INTERVAL - 0.1, \
            (stage, late.stages, [ev.stages for ev in others])
    # and no later than its lag allows: old IP gone lag after the delete, the new one in after Ready + lag
    assert late.stages["old_ip_gone"] <= lag + INTERVAL + SLACK, late.stages
    assert late.stages["dns"] <= 0.1 + 0.2 + lag + INTERVAL + SLACK, late.stages
    # HTTP does not go through a resolver: asked once, by the path's probe
    assert got[("path", "udp")].stages["http"] is not None and "http" not in late.stages

    spread = until(lambda: w.watch.spreads and w.watch.spreads[-1])
    dns = spread.stages["dns"]
    assert dns[0] == late.via and dns[1] == "replica-1" and dns[4] >= lag - 0.2 - INTERVAL - 0.1, dns
    assert any(f"slowest {late.via}" in line for line in w.lines)

    families = {f.name: f for f in text_string_to_metric_families(w.get("/metrics")[1])}
    counts = {(s.labels["resolver"], s.labels["stage"]): s.value for s in families["ssdns_convergence_seconds"].samples
              if s.name.endswith("_count")}
    assert {r for r, _ in counts} == {"path", "replica-0", "replica-1", "replica-2"}  # slots: bounded, no pod names
    assert counts[("replica-1", "dns")] == 1 and counts[("path", "http")] == 1 and ("replica-1", "http") not in counts
    slowest = {(s.labels["resolver"], s.labels["stage"]): s.value
               for s in families["ssdns_watch_slowest_resolver"].samples if s.name.endswith("_total")}
    assert slowest[("replica-1", "dns")] == 1 and slowest[("replica-1", "old_ip_gone")] == 1
    spread_count = [s.value for s in families["ssdns_convergence_spread_seconds"].samples
                    if s.name.endswith("_count") and s.labels["stage"] == "dns"]
    assert spread_count == [1]
    info = {s.labels["resolver"]: s.labels["resolver_name"] for s in families["ssdns_watch_resolver_info"].samples}
    assert info == {"path": "path", **{f"replica-{k}": r.name for k, r in enumerate(replicas)}}

    page = w.get("/")[1]
    assert "<th>resolver</th>" in page and late.via in page and "id='spreads'" in page


def test_history_shows_each_resolvers_event(sandbox_factory, watching, tmp_path):
    from conftest import run_cli

    state = str(tmp_path / "state.json")
    sb = sandbox_factory(terminate_delay=0.1, ready_delay=0.1, dns_delay=0.1)
    listed = Nameserver(sb.world.dns_replicas[2].ip, sb.sandbox.dns.port)
    w = watching(sb, interval=0.5, state=state, resolvers=ResolverChoice("list", (listed,), "both"))
    until(lambda: w.get("/readyz")[0] == 200)
    delete(sb, "web-2")
    events_of(w, "web-2", 4)  # the path and the listed resolver, each over UDP and TCP
    until(lambda: Path(state).exists() and len(json.loads(Path(state).read_text()).get("events", [])) == 4)
    code, out, err = run_cli(["history", "--state", state])
    assert code == 0, err
    lines = [x for x in out.splitlines() if "watch  web-2 replaced" in x]
    assert len(lines) == 4 and all("CONV" in x for x in lines), out
    assert sum(f"through {listed}" in x for x in lines) == 2 and sum("over TCP" in x for x in lines) == 2
    stored = json.loads(Path(state).read_text())["events"]
    assert sorted((e["resolver"], e["transport"]) for e in stored) == sorted(
        [("path", "udp"), ("path", "tcp"), (str(listed), "udp"), (str(listed), "tcp")])


def test_replicas_are_rediscovered_and_one_that_stops_answering_is_reported_not_fatal(sandbox_factory, watching):
    sb = sandbox_factory(faults=["replica-down:2"], terminate_delay=0.1, ready_delay=0.1, dns_delay=0.1)
    down = sb.world.dns_replicas[2]
    w = watching(sb, interval=0.3, resolvers=ALL)
    until(lambda: w.get("/readyz")[0] == 200)
    delete(sb, "web-0")
    until(lambda: len([ev for ev in w.events("web-0") if ev.ok]) == 3)  # the path and the two that answer
    assert not any(ev.resolver == down.name for ev in w.events("web-0"))  # still probing: it does not answer
    assert w.watch.probes and all(key[1] == down.name for key in w.watch.probes)

    # the replica leaves the DNS Service (its pod deleted): the next full check finds it gone
    sb.change(lambda world: world.dns_replicas.remove(down))
    ev = until(lambda: next((e for e in w.events("web-0") if e.resolver == down.name), None))
    assert ev.outcome == "resolver-gone" and not ev.ok and "left the DNS Service's endpoints" in ev.still_wrong[0]
    assert ev.stages.get("dns") is None and ev.rounds >= 1 and ev.elapsed > 0
    assert any(f"{down.name} (127.54.1.3 on node-2) is no longer an endpoint" in line for line in w.lines)
    assert [r.label for r in w.watch.resolvers.known] == ["path", *(r.name for r in sb.world.dns_replicas)]
    assert 'resolver_name="' + down.name not in w.get("/metrics")[1]

    # the watch goes on: the next replacement is probed through the resolvers there are now
    delete(sb, "web-1")
    got = events_of(w, "web-1", 3)
    assert len(got) == 3 and all(e.ok for e in got), [e.to_dict() for e in got]


def test_a_replica_added_later_gets_a_new_slot_and_slots_stay_bounded(sandbox_factory, watching):
    from ssdns.sandbox.world import dns_replica

    sb = sandbox_factory(terminate_delay=0.1, ready_delay=0.1, dns_delay=0.1)
    w = watching(sb, interval=0.3, resolvers=ALL)
    until(lambda: w.get("/readyz")[0] == 200)
    first = sb.world.dns_replicas[0]
    slot_of = {r.label: w.watch.resolvers.slot(r) for r in w.watch.resolvers.known}
    assert slot_of == {"path": "path", **{r.name: f"replica-{k}" for k, r in enumerate(sb.world.dns_replicas)}}

    def roll(world):  # CoreDNS rolled: replica 0's pod replaced by a new one (a new name) at the end
        world.dns_replicas.remove(first)
        world.dns_replicas.append(dns_replica(7))
    sb.change(roll)
    new = sb.world.dns_replicas[-1].name
    until(lambda: new in [r.label for r in w.watch.resolvers.known])
    slots = {r.label: w.watch.resolvers.slot(r) for r in w.watch.resolvers.known}
    # the others keep theirs; the new pod takes the slot the gone one freed
    assert slots[new] == "replica-0" and all(slots[k] == v for k, v in slot_of.items() if k in slots)


def test_an_ip_change_under_the_same_uid_converges_and_times_its_stages(sandbox_factory, watching):
    sb = sandbox_factory(terminate_delay=0.1, start_delay=0.05, ready_delay=0.4, dns_delay=0.3)
    w = watching(sb)
    until(lambda: w.get("/readyz")[0] == 200)
    old = sb.world.pod("web-1")
    old_uid, old_ip = old.uid, old.ip

    async def recreate():  # the kubelet recreates web-1's pod sandbox (a CNI restart)
        sb.sandbox.controller.recreate_sandbox("web-1")
    sb.call(recreate())
    ev = until(lambda: w.events("web-1"))[0]
    pod = sb.world.pod("web-1")
    assert pod.uid == old_uid and pod.ip != old_ip and pod.restart_count == 1
    assert ev.cause == "ip-changed" and ev.outcome == "converged" and ev.ok, ev.to_dict()
    assert ev.old_uid == ev.new_uid == old_uid and ev.old_ips == [old_ip] and ev.new_ips == [pod.ip]
    # DNS drops the old IP dns_delay after the change (the pod turned not Ready), and gives the new one once
    # it is Ready again (ready_delay) plus dns_delay; HTTP answers at the new IP at once (the echo pod moved)
    assert 0.3 - 0.05 <= ev.stages["old_ip_gone"] <= 0.3 + INTERVAL + SLACK, ev.stages
    for stage in ("dns", "ptr", "srv"):
        assert 0.7 - 0.05 <= ev.stages[stage] <= 0.7 + INTERVAL + SLACK, (stage, ev.stages)
    assert ev.stages["http"] <= INTERVAL + SLACK, ev.stages
    assert ev.nxdomain_window is not None and 0.4 - INTERVAL - 0.05 <= ev.nxdomain_window <= 0.4 + INTERVAL + SLACK
    assert ev.wrong == 0 and any("web-1 ip-changed" in line for line in w.lines)


def test_the_ip_change_fault_gives_a_running_pod_a_new_ip_keeping_its_uid(sandbox_factory):
    from conftest import run_json

    sb = sandbox_factory(faults=["ip-change:web-0:0.3"], ready_delay=0.2, dns_delay=0.1)
    before = sb.world.pod("web-0")
    uid, ip = before.uid, before.ip
    until(lambda: sb.world.pod("web-0").ip != ip, 5)
    assert sb.world.pod("web-0").uid == uid and sb.world.pod("web-0").restart_count == 1
    until(lambda: sb.world.pod("web-0").ready, 5)
    # DNS and the echo pod follow: a check passes with the new IP (polled: DNS is dns_delay behind)
    until(lambda: run_json(sb.args())[0] == 0, 10)
    code, report = run_json(sb.args())
    assert code == 0 and {p["name"]: p["ips"] for p in report["pods"]}["web-0"] == [sb.world.pod("web-0").ip]


@pytest.mark.parametrize("spec, says", [
    ("ip-change:web-9", "no pod 'web-9'"),
    ("ip-change:web-0:x", "give a number of seconds"),
    ("lagging-replica:5", "from 0 to 2"),
    ("lagging-replica:1:-2", "lagging-replica:K[:SECONDS]"),
])
def test_bad_fault_arguments_are_one_line(spec, says):
    from ssdns.errors import UsageError
    from ssdns.sandbox import apply_fault, make_world

    with pytest.raises(UsageError, match=re.escape(says)):
        apply_fault(make_world(3), spec)


def test_watch_takes_the_resolver_options_as_check_does():
    """The same parsing (resolvers.py through commands.resolver_choice): bad values are one line, exit 2."""
    from test_watch import _ssdns

    base = ["watch", "--statefulset", "web", "--service", "nginx", "--nameserver", "127.0.0.1:53"]
    for args, says in ((["--resolvers", "a,,b"], "--resolvers 'a,,b'"),
                       (["--resolvers", "10.0.0.1,10.0.0.1"], "listed twice"),
                       (["--transport", "sctp"], "invalid choice"),
                       (["--nodelocal", "10.0.0.9"], "--nodelocal is used only with --resolvers all"),
                       (["--metric-label", "resolver=x"], "set by ssdns watch itself")):
        proc = _ssdns(*base, *args)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 2 and out == "", err
        assert says in err and "Traceback" not in err, err


def test_without_the_grant_the_watch_probes_the_path_and_says_what_to_apply(sandbox_factory, watching):
    sb = sandbox_factory(faults=["dns-forbidden"], terminate_delay=0.1, ready_delay=0.1, dns_delay=0.1)
    w = watching(sb, resolvers=ALL)
    until(lambda: w.get("/readyz")[0] == 200)
    assert [r.label for r in w.watch.resolvers.known] == ["path"]
    assert any("endpointslices" in line and "kubectl apply -k k8s/watch-resolvers" in line for line in w.lines), w.lines
    delete(sb, "web-1")
    [ev] = until(lambda: w.events("web-1"))
    assert ev.ok and ev.resolver == "path"


def _rendered(directory: str) -> list[dict]:
    import shutil
    import subprocess

    import yaml

    if shutil.which("kubectl") is None:
        pytest.skip(f"kubectl not installed, so `kubectl kustomize {directory}` cannot render")
    out = subprocess.run(["kubectl", "kustomize", str(ROOT / directory)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _roles_by_namespace(objs: list[dict], account: str) -> dict[str, list[dict]]:
    """The Roles bound to the ServiceAccount, per namespace the binding grants them in."""
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs if o["kind"] == "Role"}
    out: dict[str, list[dict]] = {}
    for b in (o for o in objs if o["kind"] == "RoleBinding"):
        if any(s["kind"] == "ServiceAccount" and s["name"] == account for s in b["subjects"]):
            ns = b["metadata"]["namespace"]
            out.setdefault(ns, []).append(roles[(ns, b["roleRef"]["name"])])
    return out


@pytest.mark.parametrize("directory, account, state", [
    ("k8s/watch-resolvers", "ssdns-watch", "configmap:ssdns-watch-state"),
    ("k8s/watch-per-node-resolvers", "ssdns-watch-per-node", None),
])
def test_the_watch_resolvers_opt_in_grants_exactly_the_calls_of_a_watch_asking_every_resolver(
        sandbox_factory, watching, directory, account, state):
    """Recorded against the sandbox's API: a watch with --resolvers all through start-up discovery, full checks
    (each discovering again) and a replacement; the rendered opt-in grants exactly those calls, per namespace
    (the kube-system Role only the EndpointSlice list), and removing any verb leaves one uncovered."""
    from test_rbac import granted, uncovered, without

    objs = _rendered(directory)
    workload = next(o for o in objs if o["kind"] in ("Deployment", "DaemonSet"))
    args = workload["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--resolvers") + 1] == "all"
    sb = sandbox_factory(terminate_delay=0.1, ready_delay=0.1, dns_delay=0.1)
    w = watching(sb, interval=0.3, state=state, resolvers=ALL)
    until(lambda: w.watch.checks >= 2)
    delete(sb, "web-1")
    events_of(w, "web-1", 4)
    w.stop()
    calls = [r for r in sb.sandbox.api.requests if r.rule]
    roles = _roles_by_namespace(objs, account)
    assert set(roles) == {"default", "kube-system"}
    for ns, ns_roles in roles.items():
        in_ns = [r for r in calls if r.namespace == ns]
        assert not uncovered(in_ns, ns_roles), ns
        assert granted(ns_roles) == {r.rule for r in in_ns}, f"{ns}: granted but never used"
        for group, resource, verb in sorted(granted(ns_roles)):
            assert uncovered(in_ns, without(ns_roles, group, resource, verb)), (ns, group, resource, verb)
    assert granted(roles["kube-system"]) == {("discovery.k8s.io", "endpointslices", "list")}
    assert {r.namespace for r in calls} == {"default", "kube-system"}
    # the kube-system Role is k8s/resolvers' own (reused, not copied); the check's binding is not included
    [role] = roles["kube-system"]
    assert role["metadata"]["name"] == "ssdns-resolvers"
    assert not [o for o in objs if o["kind"] == "RoleBinding" and o["metadata"]["name"] == "ssdns-resolvers"]
    binding = next(o for o in objs if o["kind"] == "RoleBinding" and o["metadata"]["namespace"] == "kube-system")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": workload["metadata"]["namespace"]}]


def test_a_replica_that_never_answers_gives_up_naming_what_it_said_and_the_others_converge(sandbox_factory,
                                                                                          watching):
    sb = sandbox_factory(faults=["replica-down:0"], terminate_delay=0.1, ready_delay=0.1, dns_delay=0.1)
    down = sb.world.dns_replicas[0]
    w = watching(sb, give_up=2.0, resolvers=ALL)
    until(lambda: w.get("/readyz")[0] == 200)
    delete(sb, "web-2")
    got = by_resolver(events_of(w, "web-2", 4))
    dead = got[(down.name, "udp")]
    assert dead.outcome == "gave-up" and not dead.ok and dead.stages["dns"] is None, dead.to_dict()
    # nothing listens there: loopback says so at once (a real replica that hangs gives TIMEOUT)
    assert dead.still_wrong and dead.still_wrong[0].startswith("dns: web-2.nginx.default.svc.cluster.local. gives ")
    assert re.search(r"gives (ERROR|TIMEOUT) \(.+\), not ", dead.still_wrong[0]), dead.still_wrong
    assert all(ev.ok for key, ev in got.items() if key[0] != down.name)
    spread = until(lambda: w.watch.spreads and w.watch.spreads[-1])
    assert spread.stages["dns"][0] == dead.via and spread.stages["dns"][2] is None  # slowest: it never did
    assert any(f"dns: {dead.via} never got it right" in line for line in w.lines)
    row = re.search(r"<tr class='fail'><td>[^<]*</td><td>web-2</td><td>replaced</td><td>dns</td><td>([^<]*)</td>"
                    r"<td>never</td>", w.get("/")[1])
    assert row and row.group(1) == dead.via


def test_the_command_line_watch_with_resolvers_all_probes_every_replica(sandbox_factory, tmp_path):
    """`ssdns watch ... --resolvers all` as a person runs it (a process, SIGTERM to stop): each replica's
    probe lands in the histogram under its slot, and the log names the slowest."""
    import signal
    import socket
    import urllib.request

    from test_watch import _ssdns

    sb = sandbox_factory(faults=["lagging-replica:2:1"], terminate_delay=0.1, ready_delay=0.1, dns_delay=0.1)
    kubeconfig = sb.sandbox.write_kubeconfig(tmp_path / "kc")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [a for a in sb.sandbox.check_args()[1:] if a not in ("--replicas", "3")]
    proc = _ssdns("watch", *args, "--kubeconfig", str(kubeconfig), "--listen", f"127.0.0.1:{port}", "--settle", "0.5",
                  "--resolvers", "all", "--interval", "600")

    def metrics() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                return r.read().decode()
        except OSError:
            assert proc.poll() is None, proc.communicate()
            return ""
    try:
        until(lambda: _ready(port) or proc.poll() is not None, 20)
        assert proc.poll() is None, proc.communicate()
        delete(sb, "web-0")
        done = re.compile(r'ssdns_convergence_spread_seconds_count\{[^}]*stage="dns"[^}]*\} 1\.0')
        text = until(lambda: (t := metrics()) and done.search(t) and t, 20)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    slots = set(re.findall(r'ssdns_convergence_seconds_count\{[^}]*resolver="([^"]+)"[^}]*stage="dns"', text))
    assert slots == {"path", "replica-0", "replica-1", "replica-2"}, text
    assert re.search(r'ssdns_watch_slowest_resolver_total\{[^}]*resolver="replica-2",stage="dns"[^}]*\} 1\.0', text), text
    lagging = sb.world.dns_replicas[2]
    assert f"dns: slowest {lagging.name} (127.54.1.3 on node-2)" in err, err


def _ready(port: int) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.mark.parametrize("listed, transport, legs", [(0, "udp", 1), (0, "both", 2), (2, "udp", 3), (5, "both", 12)])
def test_the_state_keeps_as_many_replacements_whatever_the_resolvers(listed, transport, legs):
    """Each replacement is an event per (resolver, transport; the path and each one listed): the state keeps
    EVENTS_KEPT events per leg (200 replacements), up to MAX_KEPT events (a ConfigMap holds 1 MiB)."""
    from ssdns import watch as watch_mod
    from ssdns.target import ApiOptions, Target
    from ssdns.watchprobe import ProbeOptions

    servers = tuple(Nameserver(f"127.0.0.{i + 1}", 53) for i in range(listed))
    choice = ResolverChoice("list", servers, transport) if listed else ResolverChoice("path", (), transport)
    target = Target(service="nginx", namespace="default", zone="cluster.local",
                    nameservers=(Nameserver("127.0.0.53", 53),), resolvers=choice)
    w = watch_mod.Watch(watch_mod.WatchSettings(target, ApiOptions("off"), ProbeOptions()), log=lambda _: None)
    assert len(w.resolvers.probes()) == legs
    assert w.kept() == min(watch_mod.MAX_KEPT, watch_mod.EVENTS_KEPT * legs)
