"""Pure logic without sockets: what DNS should say given API facts, and how differences are judged."""

from __future__ import annotations

from evidence_kit import T, by, evidence, facts, judge as judge_evidence, observed

from ssdns.dnsquery import Lookup, Outcome
from ssdns.expected import expect
from ssdns.model import Status


def judge(f, dns, service, t=T):
    return judge_evidence(evidence(observed(dns, service, t=t), t=t, f=f))


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
    obs = observed({f"web-{i}": [f"10.0.0.{i + 1}"] for i in range(3)}, ["10.0.0.1", "10.0.0.2", "10.0.0.3"], t=t)
    for p in obs.pods.values():  # AAAA was asked (the API says IPv6) and DNS has none
        p.aaaa = Lookup(t.pod_fqdn(p.name), "AAAA", Outcome.NODATA)
    out = judge_evidence(evidence(obs, t=t, f=f))
    assert "DNS lacks fd00::2 for web-1" in by(out, "api.dns", Status.FAIL)["web-1"].message
    members = [x for x in out if x.check == "api.service-members" and x.status is Status.FAIL]
    assert {x.details["ip"] for x in members} == {"fd00::1", "fd00::2", "fd00::3"}


def scale_order(gone, came, policy):
    from ssdns.change_evidence import ScaleEvidence

    f = facts()
    scale = ScaleEvidence("web", policy, 3, 1, ["web-1", "web-2"], gone, came, {}, {}, f)
    return [x for x in judge_evidence(evidence(scale=scale)) if x.check.startswith("scale.order")]


def test_scale_order_is_judged_per_pod_management_policy():
    good = scale_order(["web-2", "web-1"], ["web-1", "web-2"], "OrderedReady")
    assert [f.status for f in good] == [Status.PASS, Status.PASS]
    bad = scale_order(["web-1", "web-2"], ["web-2", "web-1"], "OrderedReady")
    assert [(f.check, f.status, f.details["expected"]) for f in bad] == [
        ("scale.order-down", Status.FAIL, ["web-2", "web-1"]), ("scale.order-up", Status.FAIL, ["web-1", "web-2"])]
    parallel = scale_order(["web-1", "web-2"], ["web-2", "web-1"], "Parallel")
    assert [f.status for f in parallel] == [Status.PASS, Status.PASS]
