"""Evidence built by hand, for judging without sockets: a healthy three-pod StatefulSet `web` behind the
headless Service `nginx`, which a test then breaks in one place."""

from __future__ import annotations

from ssdns import checks
from ssdns.dnsquery import Lookup, Outcome
from ssdns.evidence import ApiEvidence, Evidence
from ssdns.expected import expect
from ssdns.facts import ClusterFacts, EndpointFacts, PodFacts, PvcFacts, ServiceFacts, StatefulSetFacts
from ssdns.httpprobe import HttpObservation
from ssdns.model import Finding, Status
from ssdns.names import reverse_name
from ssdns.observations import Observations, PodObservation
from ssdns.target import Nameserver, Target

NOW = 1_800_000_000.0  # when the API was read (ClusterFacts.read_at): ages count to it

T = Target(service="nginx", namespace="default", zone="cluster.local", nameservers=(Nameserver("127.0.0.1"),),
           statefulset="web", replicas=3, http=False)


def facts(**pod_changes) -> ClusterFacts:
    f = ClusterFacts("default", StatefulSetFacts("web", 3, "nginx", "app=nginx", claim_templates=["www"],
                                                      current_revision="web-1", update_revision="web-1",
                                                      template_labels={"app": "nginx"}),
                     ServiceFacts("nginx", ports=[("web", 80, "TCP")], selector={"app": "nginx"}), read_at=NOW)
    for i in range(3):
        name = f"web-{i}"
        pod = PodFacts(name, f"uid-{i}", [f"10.0.0.{i + 1}"], True, False, "Running", "node-a", 0, name, "nginx",
                       labels={"app": "nginx", "controller-revision-hash": "web-1"}, containers=["nginx"],
                       ready_since=NOW - 3600, revision="web-1")
        for k, v in pod_changes.get(name, {}).items():
            setattr(pod, k, v)
        f.pods[name] = pod
        f.endpoints.append(EndpointFacts(pod.ips, name if pod.subdomain == "nginx" else None, pod.ready,
                                         pod.ready, pod.terminating, name))
        f.pvcs[f"www-{name}"] = PvcFacts(f"www-{name}", "Bound", f"pv-{i}")
    return f


def lookup(name: str, rdtype: str, values: list[str] | tuple[str, ...] = (),
           outcome: Outcome | None = None) -> Lookup:
    if outcome is None:
        outcome = Outcome.OK if values else Outcome.NXDOMAIN
    return Lookup(name, rdtype, outcome, tuple(values), elapsed_ms=1.0)


def observed(dns: dict[str, list[str]] | None = None, service: list[str] | None = None, *, t: Target = T,
             srv: list[str] | None = None, ptr: dict[str, list[str]] | None = None,
             http: dict[str, str] | None = None, version: str = '"1.1.0"') -> Observations:
    """What DNS (and HTTP) said. Defaults: three healthy pods; every IP's PTR names its pod; bodies are
    the pod's name when `http` is None and the target checks HTTP."""
    if dns is None:
        dns = {f"web-{i}": [f"10.0.0.{i + 1}"] for i in range(3)}
    if service is None:
        service = [ip for ips in dns.values() for ip in ips]
    pods = {n: PodObservation(n, "expected", lookup(t.pod_fqdn(n), "A", ips)) for n, ips in dns.items()}
    ptrs = {ip: lookup(reverse_name(ip), "PTR", [t.pod_fqdn(n)]) for n, ips in dns.items() for ip in ips}
    for ip, names in (ptr or {}).items():
        ptrs[ip] = lookup(reverse_name(ip), "PTR", names)
    for ip in service:
        ptrs.setdefault(ip, lookup(reverse_name(ip), "PTR"))
    if t.http:
        bodies = http if http is not None else {n: n for n in dns}
        for n, p in pods.items():
            if p.ips and n in bodies:
                p.http = HttpObservation(n, f"http://{p.ips[0]}:80/", 200, bodies[n], elapsed_ms=2.0)
    srv_lookup = None
    if srv is not None:
        srv_lookup = lookup(f"_web._tcp.{t.service_fqdn}", "SRV", srv)
    return Observations(lookup(t.service_fqdn, "A", service), lookup(t.service_fqdn, "AAAA", outcome=Outcome.NODATA),
                        srv_lookup, lookup(f"dns-version.{t.zone}.", "TXT", [version]), pods, ptrs,
                        80 if t.http else None, elapsed_ms=5.0)


def evidence(obs: Observations | None = None, *, t: Target = T, f: ClusterFacts | None = None,
             expected: list[str] | None = None, **parts) -> Evidence:
    obs = obs if obs is not None else observed(t=t)
    if expected is None:
        expected = [f"web-{i}" for i in range(t.replicas or 0)] if t.statefulset and t.replicas is not None else []
    api = ApiEvidence(f, expect(f, t.service or "")) if f is not None else None
    return Evidence(t, obs, tuple(expected), api, **parts)


def judge(ev: Evidence) -> list[Finding]:
    return checks.judge(ev).findings


def by(findings: list[Finding], check: str, status: Status | None = None) -> dict[str, Finding]:
    """subject -> finding, for one check (the last one when a subject has several)."""
    return {x.subject: x for x in findings if x.check == check and (status is None or x.status is status)}


def statuses(findings: list[Finding], check: str) -> dict[str, str]:
    """subject -> worst status of one check."""
    rank = {"pass": 0, "warn": 1, "fail": 2}
    out: dict[str, str] = {}
    for x in findings:
        if x.check == check and rank[x.status.value] >= rank.get(out.get(x.subject, "pass"), 0):
            out[x.subject] = x.status.value
    return out
