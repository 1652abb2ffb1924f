"""Pure logic without sockets: what DNS should say given API facts, and how differences are judged."""

from __future__ import annotations

from ssdns.compare_api import compare_api
from ssdns.dnsquery import Lookup, Outcome
from ssdns.expected import expect
from ssdns.facts import ClusterFacts, EndpointFacts, PodFacts, PvcFacts, ServiceFacts, StatefulSetFacts
from ssdns.model import Status
from ssdns.observe import Observations, PodObservation
from ssdns.target import Nameserver, Target

T = Target(service="nginx", namespace="default", zone="cluster.local", nameservers=(Nameserver("127.0.0.1"),),
           statefulset="web", replicas=3)


def facts(**pod_changes) -> ClusterFacts:
    f = ClusterFacts("default", StatefulSetFacts("web", 3, "nginx", "app=nginx", claim_templates=["www"]),
                     ServiceFacts("nginx", ports=[("web", 80, "TCP")]))
    for i in range(3):
        name = f"web-{i}"
        pod = PodFacts(name, f"uid-{i}", [f"10.0.0.{i + 1}"], True, False, "Running", "node-a", 0, name, "nginx")
        for k, v in pod_changes.get(name, {}).items():
            setattr(pod, k, v)
        f.pods[name] = pod
        f.endpoints.append(EndpointFacts(pod.ips, name if pod.subdomain == "nginx" else None, pod.ready,
                                         pod.ready, pod.terminating, name))
        f.pvcs[f"www-{name}"] = PvcFacts(f"www-{name}", "Bound", f"pv-{i}")
    return f


def observed(dns: dict[str, list[str]], service: list[str]) -> Observations:
    def a(name, ips):
        return Lookup(name, "A", Outcome.OK if ips else Outcome.NXDOMAIN, tuple(ips))
    pods = {n: PodObservation(n, "expected", a(T.pod_fqdn(n), ips)) for n, ips in dns.items()}
    return Observations(a(T.service_fqdn, service), Lookup(T.service_fqdn, "AAAA", Outcome.NODATA), None,
                        Lookup("dns-version.cluster.local.", "TXT", Outcome.OK, ('"1.1.0"',)), pods, {}, None)


def judge(f, dns, service):
    return compare_api(T, f, expect(f, "nginx"), observed(dns, service))


def by(findings, check, status=None):
    return {x.subject: x for x in findings if x.check == check and (status is None or x.status is status)}


def test_everything_agrees():
    dns = {f"web-{i}": [f"10.0.0.{i + 1}"] for i in range(3)}
    out = judge(facts(), dns, ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
    assert not [x for x in out if x.status is not Status.PASS]
    assert set(by(out, "api.dns")) == {"web-0", "web-1", "web-2"}
    assert by(out, "api.pvc")["web-0"].details["volume"] == "pv-0"


def test_not_ready_pod_is_rightly_absent_unless_published():
    f = facts(**{"web-1": {"ready": False}})
    want = expect(f, "nginx")
    assert not want["web-1"].has_name and "not Ready" in want["web-1"].reason
    dns = {"web-0": ["10.0.0.1"], "web-1": [], "web-2": ["10.0.0.3"]}
    out = judge(f, dns, ["10.0.0.1", "10.0.0.3"])
    assert by(out, "api.dns")["web-1"].status is Status.WARN
    assert not [x for x in out if x.status is Status.FAIL]
    f.service.publish_not_ready = True
    assert expect(f, "nginx")["web-1"].has_name
    out = judge(f, dns, ["10.0.0.1", "10.0.0.3"])
    assert "missing" in by(out, "api.dns", Status.FAIL)["web-1"].message


def test_stale_and_wrong_ips_are_told_apart():
    dns = {"web-0": ["10.0.0.1"], "web-1": ["10.0.0.99"], "web-2": ["10.0.0.1"]}
    out = judge(facts(), dns, ["10.0.0.1", "10.0.0.99"])
    fails = by(out, "api.dns", Status.FAIL)
    assert "stale" in fails["web-1"].message and fails["web-1"].details["ip"] == "10.0.0.99"
    assert "wrong IP" in fails["web-2"].message and fails["web-2"].details["other_pod"] == "web-0"
    members = [x for x in out if x.check == "api.service-members" and x.status is Status.FAIL]
    assert {x.details["ip"] for x in members} == {"10.0.0.99", "10.0.0.2", "10.0.0.3"}


def test_extra_record_for_a_terminating_pod():
    f = facts(**{"web-2": {"terminating": True, "ready": False}})
    dns = {f"web-{i}": [f"10.0.0.{i + 1}"] for i in range(3)}
    out = judge(f, dns, ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
    assert "extra" in by(out, "api.dns", Status.FAIL)["web-2"].message
    assert by(out, "api.pod")["web-2"].status is Status.WARN


def test_configuration_faults_explain_themselves():
    f = facts(**{"web-1": {"subdomain": "other"}})
    f.service.headless, f.service.cluster_ip = False, "10.96.0.7"
    out = judge(f, {"web-0": [], "web-1": [], "web-2": []}, ["10.96.0.7"])
    assert "not headless" in by(out, "api.service", Status.FAIL)["nginx"].message
    f = facts(**{"web-1": {"subdomain": "other"}})
    out = judge(f, {"web-0": ["10.0.0.1"], "web-1": [], "web-2": ["10.0.0.3"]}, ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
    ep = by(out, "api.endpoints", Status.FAIL)["web-1"]
    assert "hostname None" in ep.message and "'other'" in ep.message
    assert by(out, "api.dns")["web-1"].status is Status.WARN  # rightly absent: no hostname, no name


def test_pvc_not_bound_and_missing():
    f = facts()
    f.pvcs["www-web-1"].phase, f.pvcs["www-web-1"].volume = "Pending", None
    del f.pvcs["www-web-2"]
    out = judge(f, {f"web-{i}": [f"10.0.0.{i + 1}"] for i in range(3)}, ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
    pvc = by(out, "api.pvc", Status.FAIL)
    assert "Pending" in pvc["web-1"].message and "does not exist" in pvc["web-2"].message


def test_restart_probes_the_pods_port_not_the_services():
    from ssdns.restart import service_port

    f = facts()
    f.service.ports = [("web", 80, "TCP")]
    f.endpoint_ports = [("metrics", 9090, "TCP"), ("web", 8080, "TCP")]
    assert service_port(f, "web") == 8080
    assert service_port(f) == 9090
    f.endpoint_ports = []
    assert service_port(f) is None


def test_start_ordinal_shifts_the_pod_names():
    from ssdns.expected import pod_names
    from ssdns.restart import plan

    f = facts()
    f.statefulset.first_ordinal = 5
    assert pod_names(f)[:3] == ["web-5", "web-6", "web-7"]
    assert plan(f, None) == ["web-7", "web-6", "web-5"]
    import pytest

    from ssdns.errors import UsageError
    with pytest.raises(UsageError, match="ordinals 5..7"):
        plan(f, [0])


def test_dual_stack_pods_missing_their_aaaa_records_fail():
    f = facts()
    for i, pod in enumerate(f.pods.values()):
        pod.ips.append(f"fd00::{i + 1}")
    t = T.with_(ipv6=True)
    obs = observed({f"web-{i}": [f"10.0.0.{i + 1}"] for i in range(3)}, ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
    for p in obs.pods.values():  # AAAA was asked (the API says IPv6) and DNS has none
        p.aaaa = Lookup(t.pod_fqdn(p.name), "AAAA", Outcome.NODATA)
    out = compare_api(t, f, expect(f, "nginx"), obs)
    assert "DNS lacks fd00::2 for web-1" in by(out, "api.dns", Status.FAIL)["web-1"].message
    members = [x for x in out if x.check == "api.service-members" and x.status is Status.FAIL]
    assert {x.details["ip"] for x in members} == {"fd00::1", "fd00::2", "fd00::3"}


def test_scale_order_is_judged_per_pod_management_policy():
    from ssdns.scale import order_findings

    removed = ["web-1", "web-2"]
    good = order_findings("web", removed, ["web-2", "web-1"], ["web-1", "web-2"], "OrderedReady")
    assert [f.status for f in good] == [Status.PASS, Status.PASS]
    bad = order_findings("web", removed, ["web-1", "web-2"], ["web-2", "web-1"], "OrderedReady")
    assert [(f.check, f.status, f.details["expected"]) for f in bad] == [
        ("scale.order-down", Status.FAIL, ["web-2", "web-1"]), ("scale.order-up", Status.FAIL, ["web-1", "web-2"])]
    parallel = order_findings("web", removed, ["web-1", "web-2"], ["web-2", "web-1"], "Parallel")
    assert [f.status for f in parallel] == [Status.PASS, Status.PASS]
