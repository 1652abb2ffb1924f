"""Every resolver (issue 12): each DNS replica, the path and listed resolvers asked the same questions,
over real sockets: the sandbox's replicas (kube-system/kube-dns in its API) and independent knotd
servers serving different versions of the zone."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from conftest import failures, run_cli, run_json
from knotdns import KnotServer, Pod, headless_zones, knotd_available

ROOT = Path(__file__).resolve().parent.parent


def by_check(report: dict, check: str) -> dict[str, dict]:
    return {f["subject"]: f for f in report["findings"] if f["check"] == check}


def replica_args(sb, tmp_path, *extra: str) -> list[str]:
    return sb.api_args(tmp_path, "--no-http", "--resolvers", "all", *extra)


def test_a_stale_replica_is_named_by_pod_ip_and_node_against_the_api(sandbox_factory, tmp_path):
    sb = sandbox_factory(faults=["stale-replica:1"])
    stale = sb.world.dns_replicas[1]
    old_ip = stale.frozen["web-2.nginx.default.svc.cluster.local."]["A"][0]
    code, report = run_json(replica_args(sb, tmp_path))
    assert code == 1
    got = by_check(report, "dns.resolver")
    msg = got[stale.name]["message"]
    assert got[stale.name]["status"] == "fail"
    assert msg.startswith(f"{stale.name} (127.54.1.2 on node-1) answers ")
    assert f"web-2 A with {old_ip}, a stale IP (the API says {sb.world.pod('web-2').ip}); the other 3 are right" in msg
    ok = {r.name for r in sb.world.dns_replicas} - {stale.name} | {"path"}
    assert {s for s, f in got.items() if f["status"] == "pass"} == ok
    # JSON: every resolver, per transport, with its answers; the path's queries are not double counted
    legs = report["resolvers"]["legs"]
    assert [leg["resolver"] for leg in legs] == ["path", *[r.name for r in sb.world.dns_replicas]]
    questions = legs[0]["questions"]
    assert all(leg["questions"] == questions and leg["answered"] == questions for leg in legs)
    assert report["stats"]["dns_queries"] >= 4 * questions
    differing = {leg["resolver"]: leg["differing"] for leg in legs}
    assert ("web-2.nginx.default.svc.cluster.local.", [old_ip]) in [(lk["name"], lk["values"])
                                                                    for lk in differing[stale.name]]
    assert {lk["type"] for lk in differing[stale.name]} == {"A", "PTR"}  # its pod name, Service name, reverse
    assert all(not d for label, d in differing.items() if label != stale.name)


def test_the_table_shows_a_column_per_resolver_only_when_they_disagree(sandbox_factory, tmp_path):
    sb = sandbox_factory(faults=["replica-nxdomain:2:web-0"])
    code, out, _ = run_cli([*replica_args(sb, tmp_path), "--color", "never"])
    assert code == 1
    header = next(line for line in out.splitlines() if line.startswith("POD"))
    names = [r.name for r in sb.world.dns_replicas]
    assert "path" in header and all(n in header for n in names)
    row = next(line for line in out.splitlines() if line.startswith("web-0 "))
    assert "NXDOMAIN" in row
    healthy = sandbox_factory()
    code, out, _ = run_cli([*replica_args(healthy, tmp_path), "--color", "never"])
    assert code == 0
    header = next(line for line in out.splitlines() if line.startswith("POD"))
    assert not any(r.name in header for r in healthy.world.dns_replicas)


def test_a_replica_that_is_down_is_a_finding_and_the_run_still_judges(sandbox_factory, tmp_path):
    sb = sandbox_factory(faults=["replica-down:0"])
    started = time.monotonic()
    code, report = run_json(replica_args(sb, tmp_path))
    assert code == 1 and time.monotonic() - started < 5 + 1
    down = sb.world.dns_replicas[0]
    [fail] = failures(report, "dns.resolver")
    assert fail["subject"] == down.name and "does not answer" in fail["message"]
    assert "127.54.1.1 on node-0" in fail["message"]


def test_udp_and_tcp_are_compared_with_transport_both(sandbox_factory, tmp_path):
    sb = sandbox_factory(faults=["tcp-differs"])
    code, report = run_json(replica_args(sb, tmp_path, "--transport", "both"))
    assert code == 1
    got = by_check(report, "dns.transport")
    assert set(got) == {"path", *(r.name for r in sb.world.dns_replicas)}
    last = sb.world.pods[-1].ip
    assert all(f["status"] == "fail" and f"the Service name A (only over UDP: {last})" in f["message"]
               for f in got.values())
    assert {leg["transport"] for leg in report["resolvers"]["legs"]} == {"udp", "tcp"}


def test_a_dns_service_without_tcp_is_named_with_transport_both(sandbox_factory, tmp_path):
    sb = sandbox_factory(faults=["udp-only"])
    code, report = run_json(sb.args("--no-http", "--transport", "both"))
    assert code == 1
    [fail] = failures(report, "dns.transport")
    assert fail["subject"] == "path" and "answers over UDP but not over TCP" in fail["message"]


def test_transport_tcp_asks_everything_over_tcp(sandbox, tmp_path):
    code, report = run_json(sandbox.args("--no-http", "--transport", "tcp"))
    assert code == 0
    assert report["lookups"] and all(lk["tcp"] for lk in report["lookups"])


def test_without_the_grant_all_degrades_to_the_path_with_a_warning_naming_it(sandbox_factory, tmp_path):
    sb = sandbox_factory(faults=["dns-forbidden"])
    code, report = run_json(replica_args(sb, tmp_path))
    assert code == 0
    warn = by_check(report, "dns.resolver")["kube-system/kube-dns"]
    assert warn["status"] == "warn"
    assert "403" in warn["message"] or "forbidden" in warn["message"].lower()
    assert "k8s/resolvers/" in warn["message"] and "list on endpointslices.discovery.k8s.io" in warn["message"]
    assert [r["label"] for r in report["resolvers"]["resolvers"]] == ["path"]


def test_an_unknown_dns_service_is_a_warning_not_a_traceback(sandbox, tmp_path):
    code, report = run_json(replica_args(sandbox, tmp_path, "--dns-service", "kube-system/nope"))
    assert code == 0
    warn = by_check(report, "dns.resolver")["kube-system/nope"]
    assert warn["status"] == "warn" and "no ready endpoints" in warn["message"]


def test_a_slow_replica_shows_the_conntrack_race_signature(sandbox_factory, tmp_path):
    sb = sandbox_factory(faults=["slow-replica:2"])
    code, report = run_json([*replica_args(sb, tmp_path), "--timeout", "9"])
    assert code == 0, failures(report)
    slow = by_check(report, "dns.latency")[sb.world.dns_replicas[2].name]
    assert slow["status"] == "warn" and "took over 4.5 s" in slow["message"]
    assert slow["details"]["slow"] == slow["details"]["answers"] > 0
    assert by_check(report, "dns.latency")["path"]["status"] == "pass"


def test_demo_shows_a_stale_replica():
    code, out, err = run_cli(["demo", "--no-http", "--resolvers", "all", "--fault", "stale-replica:1",
                              "--color", "never"])
    assert code == 1, err
    assert "dns.resolver" in out and "a stale IP" in out and "on node-1" in out


# --- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("value, says", [
    ("bogus", "is not an IP address"),
    ("127.0.0.1,127.0.0.1:53", "listed twice"),
    ("127.0.0.1,,127.0.0.2", "give path, all, or HOST[:PORT]"),
    ("127.0.0.1:99999", "out of range"),
])
def test_a_bad_resolver_list_is_one_line(sandbox, value, says):
    code, out, err = run_cli([*sandbox.args("--no-http"), "--resolvers", value])
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and says in err


@pytest.mark.parametrize("args, says", [
    (["--dns-service", "kube-dns"], "give NAMESPACE/NAME"),
    (["--transport", "quic"], "invalid choice"),
    (["--nodelocal", "localhost"], "is not an IP address"),
])
def test_bad_resolver_options_are_one_line(sandbox, args, says):
    code, out, err = run_cli([*sandbox.args("--no-http"), "--resolvers", "all", *args])
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and says in err


def test_listed_resolvers_that_refuse_or_are_no_dns_server_are_findings(sandbox, tmp_path):
    import socket

    junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a UDP port that answers nothing
    junk.bind(("127.0.0.1", 0))
    try:
        silent = f"127.0.0.1:{junk.getsockname()[1]}"
        started = time.monotonic()
        code, report = run_json([*sandbox.args("--no-http", "--timeout", "3"), "--resolvers", silent])
        assert time.monotonic() - started < 3 + 1
    finally:
        junk.close()
    assert code == 1
    [fail] = failures(report, "dns.resolver")
    assert fail["subject"] == silent and "does not answer" in fail["message"]


def test_the_run_exits_3_only_when_no_resolver_answers(sandbox):
    args = sandbox.args("--no-http", "--timeout", "2")
    args[args.index("--nameserver") + 1] = "127.0.0.1:9"  # nothing listens: port unreachable
    code, out, err = run_cli([*args, "--resolvers", "127.0.0.1:7"])
    assert code == 3 and "no resolver answered" in err and len(err.strip().splitlines()) == 1
    code, report = run_json([*args, "--resolvers", str(sandbox.sandbox.nameserver)])
    assert code == 1  # the path does not answer (findings), the listed resolver does
    assert by_check(report, "dns.resolver")["path"]["status"] == "fail"


# --- independent servers ------------------------------------------------------------------------

knot = pytest.mark.skipif(not knotd_available(), reason="knotd not installed (apt-get install knot)")


@knot
def test_knotd_servers_with_different_zone_versions_name_the_stale_one(sandbox):
    """Three real servers: two serve the zone as it is, one as it was before web-1 moved."""
    pods = [Pod(p.name, p.ip) for p in sandbox.world.pods]
    moved = [Pod(p.name, "127.30.9.9" if p.name == "web-1" else p.ipv4) for p in pods]
    zones, old = headless_zones(pods, port=sandbox.world.port), headless_zones(moved, port=sandbox.world.port)
    with KnotServer(zones, "127.53.0.11") as a, KnotServer(old, "127.53.0.12") as b, \
            KnotServer(zones, "127.53.0.13") as c:
        args = sandbox.args("--no-http", "--transport", "both")
        args[args.index("--nameserver") + 1] = f"{a.host}:{a.port}"
        code, report = run_json([*args, "--resolvers", f"{b.host}:{b.port},{c.host}:{c.port}"])
    assert code == 1
    got = by_check(report, "dns.resolver")
    stale = got[f"{b.host}:{b.port}"]
    assert stale["status"] == "fail"
    assert "web-1 A with 127.30.9.9 (the others say " in stale["message"]
    assert got["path"]["status"] == got[f"{c.host}:{c.port}"]["status"] == "pass"
    assert all(f["status"] == "pass" for f in by_check(report, "dns.transport").values())


# --- RBAC: the resolvers Role grants exactly what --resolvers all uses --------------------------

def test_the_resolvers_role_grants_exactly_the_recorded_calls_in_kube_system(sandbox, tmp_path):
    before = len(sandbox.sandbox.api.requests)
    code, _ = run_json(replica_args(sandbox, tmp_path))
    assert code == 0
    calls = [r for r in sandbox.sandbox.api.requests[before:] if r.rule and r.namespace == "kube-system"]
    assert {r.rule for r in calls} == {("discovery.k8s.io", "endpointslices", "list")}
    docs = [d for d in yaml.safe_load_all((ROOT / "k8s/resolvers/rbac.yaml").read_text()) if d]
    [role] = [d for d in docs if d["kind"] == "Role"]
    [binding] = [d for d in docs if d["kind"] == "RoleBinding"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "kube-system"
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
               for v in rule["verbs"]}
    assert granted == {r.rule for r in calls}
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    main_ns = yaml.safe_load((ROOT / "k8s/kustomization.yaml").read_text())["namespace"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ssdns", "namespace": main_ns}]
    # the read-only Role of k8s/rbac.yaml lives in the app's namespace: it cannot cover kube-system
    assert all(d["metadata"].get("namespace") in (None, main_ns)
               for d in yaml.safe_load_all((ROOT / "k8s/rbac.yaml").read_text()) if d)


def test_metrics_and_junit_carry_each_resolver_with_bounded_labels(sandbox_factory, tmp_path):
    import re

    sb = sandbox_factory(faults=["stale-replica:1"])
    prom, xml = tmp_path / "ssdns.prom", tmp_path / "ssdns.xml"
    code, _ = run_json([*replica_args(sb, tmp_path), "--metrics-file", str(prom), "--junit", str(xml)])
    assert code == 1
    text = prom.read_text()
    ok = {m[0]: m[1] for m in re.findall(r'^ssdns_resolver_ok\{[^}]*resolver="([^"]+)"[^}]*\} (\S+)$', text, re.M)}
    assert ok == {"path": "1.0", "replica-0": "1.0", "replica-1": "0.0", "replica-2": "1.0"}
    assert re.search(r'^ssdns_resolver_latency_seconds\{[^}]*quantile="0.99"[^}]*resolver="replica-2"', text, re.M) \
        or re.search(r'^ssdns_resolver_latency_seconds\{[^}]*resolver="replica-2"[^}]*quantile="0.99"', text, re.M)
    labels = set(re.findall(r'resolver="([^"]+)"', text))
    assert labels == {"path", "replica-0", "replica-1", "replica-2"}  # slots: no pod names, no IPs
    junit = xml.read_text()
    stale = sb.world.dns_replicas[1].name
    assert f'classname="dns.resolver" name="{stale}"' in junit or f'name="{stale}" classname="dns.resolver"' in junit


def test_the_plan_asks_each_server_once_and_finds_nodelocal_in_resolv_conf():
    from ssdns.resolvers import Resolver, plan
    from ssdns.target import Nameserver, ResolverChoice

    path = (Nameserver("10.96.0.10"),)
    replicas = [Resolver("coredns-a", "replica", (Nameserver("10.244.1.3"),), "coredns-a", "node-a"),
                Resolver("coredns-b", "replica", (Nameserver("10.96.0.10"),), "coredns-b", "node-b")]
    got = plan(path, ResolverChoice("all"), replicas, (Nameserver("169.254.20.10"),))
    assert [(r.label, r.slot) for r in got] == [("path", "path"), ("coredns-a", "replica-0"),
                                                ("nodelocal", "nodelocal")]  # coredns-b is the path's server
    assert [r.label for r in plan(path, ResolverChoice("all"), [], (Nameserver("10.0.0.1"),))] == ["path"]
    given = plan(path, ResolverChoice("all", nodelocal=Nameserver("127.0.0.9", 5353)), [])
    assert given[-1].describe() == "NodeLocal DNSCache (127.0.0.9:5353)"
    listed = plan(path, ResolverChoice("list", (Nameserver("10.0.0.1"), Nameserver("10.0.0.2", 5353))), replicas)
    assert [(r.label, r.slot) for r in listed] == [("path", "path"), ("10.0.0.1:53", "listed-0"),
                                                   ("10.0.0.2:5353", "listed-1")]


def test_the_resolvers_kustomization_renders_only_its_role_in_kube_system():
    import shutil
    import subprocess

    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed, so `kubectl kustomize k8s/resolvers` cannot render")
    out = subprocess.run(["kubectl", "kustomize", str(ROOT / "k8s/resolvers")], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    objs = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert sorted((o["kind"], o["metadata"]["name"], o["metadata"]["namespace"]) for o in objs) == [
        ("Role", "ssdns-resolvers", "kube-system"), ("RoleBinding", "ssdns-resolvers", "kube-system")]


def test_nodelocal_given_is_asked_and_named(sandbox, tmp_path):
    import socket

    junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a NodeLocal that has stopped answering
    junk.bind(("127.0.0.1", 0))
    try:
        where = f"127.0.0.1:{junk.getsockname()[1]}"
        code, report = run_json(replica_args(sandbox, tmp_path, "--nodelocal", where, "--timeout", "3"))
    finally:
        junk.close()
    assert code == 1
    assert [(r["label"], r["kind"]) for r in report["resolvers"]["resolvers"]][-1] == ("nodelocal", "nodelocal")
    [fail] = failures(report, "dns.resolver")
    assert fail["subject"] == "nodelocal"
    assert fail["message"].startswith(f"NodeLocal DNSCache ({where}) does not answer")


@knot
def test_a_resolver_that_refuses_is_named_with_what_it_said(sandbox):
    """A real server for another zone answers REFUSED: the resolver is named, the run still judges."""
    other = headless_zones([Pod("web-0", "127.30.0.1")], zone="example.local", port=sandbox.world.port)
    with KnotServer(other, "127.53.0.14") as k:
        code, report = run_json([*sandbox.args("--no-http"), "--resolvers", f"{k.host}:{k.port}"])
    assert code == 1
    fail = by_check(report, "dns.resolver")[f"{k.host}:{k.port}"]
    # it refuses the cluster zone (7 questions) and knows 127.in-addr.arpa (its own): PTR says NXDOMAIN there
    assert "did not answer 7 of 10 questions" in fail["message"] and "REFUSED" in fail["message"]
    split = by_check(report, "dns.resolver")["nginx.default.svc.cluster.local"]["message"]
    assert "the resolvers disagree on 3 name(s) and neither the API nor a majority says which is right" in split


def test_tcp_legs_share_a_connection_and_reopen_when_the_server_closes_it(sandbox_factory):
    """The sandbox's server closes a TCP connection after 100 queries: ~300 questions need reopens, and every
    answer still arrives (a query in flight when the connection closed is sent again: counted)."""
    sb = sandbox_factory(pods=150)
    code, report = run_json([*sb.args("--no-http", "--timeout", "20"), "--transport", "both"])
    assert code == 0, failures(report)
    legs = report["resolvers"]["legs"]
    [tcp] = [leg for leg in legs if leg["transport"] == "tcp"]
    assert tcp["answered"] == tcp["questions"] > 300 and tcp["differing"] == []
    single = run_json(sb.args("--no-http", "--timeout", "20"))[1]
    extra = report["stats"]["dns_queries"] - single["stats"]["dns_queries"] - tcp["questions"]
    assert 0 <= extra <= 3 * 32  # at most the queries in flight (32) at each of the ~3 closes


def test_dns_service_without_all_is_one_line_and_all_without_the_api_warns(sandbox):
    code, out, err = run_cli([*sandbox.args("--no-http"), "--dns-service", "kube-system/kube-dns"])
    assert code == 2 and out == "" and "--dns-service is used only with --resolvers all" in err
    code, report = run_json([*sandbox.args("--no-http"), "--resolvers", "all"])  # sandbox.args: --api off
    assert code == 0
    warn = by_check(report, "dns.resolver")["kube-system/kube-dns"]
    assert warn["status"] == "warn" and "found through the Kubernetes API, which this run does not use" in warn["message"]


def test_what_counts_as_an_answer_is_named_by_outcome():
    """said_something compares with Outcome's values (no import in a hot path): they must stay Outcome's."""
    from ssdns.dnsquery import Lookup, Outcome
    from ssdns.resolvers import said_something

    said = {o for o in Outcome if said_something(Lookup("web-0.example.", "A", o))}
    assert said == {Outcome.OK, Outcome.NXDOMAIN, Outcome.NODATA, Outcome.SERVFAIL}


def test_a_memoised_answer_given_by_another_server_is_a_new_lookup_naming_that_server():
    from dataclasses import fields, replace

    from ssdns.dnsquery import Lookup, Outcome, elsewhere

    seen = Lookup("web-0.nginx.default.svc.cluster.local.", "A", Outcome.OK, ("127.0.0.1",), 5, "127.0.0.2:53",
                  False, 1.5, "", "NOERROR")
    moved = elsewhere(seen, "127.0.0.3:53", True)
    assert moved == replace(seen, server="127.0.0.3:53", tcp=True)
    assert [f.name for f in fields(moved)] == list(vars(moved))  # every field, none extra
    object.__setattr__(moved, "elapsed_ms", 9.0)  # as _lookup sets its time
    assert seen.elapsed_ms == 1.5 and seen.server == "127.0.0.2:53" and not seen.tcp
