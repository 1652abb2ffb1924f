"""SRV and PTR: the Service's SRV records name each pod once on its port; each pod IP's PTR names the pod."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from ssdns.checks.registry import Verdict, check, failed, fix, passed, warned
from ssdns.checks.words import NameKind, why
from ssdns.dnsquery import Outcome
from ssdns.evidence import Evidence, Need
from ssdns.names import SrvRecord, dashed_name, pod_from_fqdn, srv_records


@check("dns.srv", place=30, needs=(Need.DNS, Need.SRV), column="SRV",
       title="the SRV records name each pod with an address once, on the expected port")
def srv(ev: Evidence) -> Iterator[Verdict]:
    lookup = ev.dns.srv
    assert lookup is not None  # Need.SRV
    subject = lookup.name.rstrip(".")
    if lookup.outcome is Outcome.NXDOMAIN and ev.none_ready:
        yield warned(subject, "NXDOMAIN, as expected with no ready pods")
        return
    if not lookup.ok:
        yield failed(subject, f"no SRV records: {why(lookup, NameKind.SRV)}", outcome=lookup.outcome.value)
        return
    by_pod: dict[str, list[SrvRecord]] = defaultdict(list)
    dashed = {dashed_name(ip) for ip in ev.dns.service_ips}
    svc = ev.target.service_fqdn
    for rec in srv_records(lookup.values):
        pod = pod_from_fqdn(svc, rec.target)
        if pod is not None and pod in dashed:
            yield failed(rec.target.rstrip("."),
                         f"SRV target {rec.target} is an endpoint without a hostname (CoreDNS names it by its IP): "
                         "that pod has no per-pod name; its spec.subdomain must equal the Service name",
                         record=str(rec))
        elif pod is None or pod not in ev.dns.pods:
            yield failed(rec.target.rstrip("."), f"SRV target {rec.target} is not a pod of {svc}", record=str(rec))
        else:
            by_pod[pod].append(rec)
    for name in ev.pods:
        yield from _srv_of_pod(ev, name, subject, by_pod.get(name, []))


def _srv_of_pod(ev: Evidence, name: str, srv_name: str, recs: list[SrvRecord]) -> Iterator[Verdict]:
    port = ev.target.port
    if not recs:
        if ev.dns.pods[name].ips:
            yield failed(name, f"{name} has an address but is not an SRV target of {srv_name}")
    elif len(recs) > 1:
        yield failed(name, f"{name} is an SRV target {len(recs)} times; expected once per port")
    elif port is not None and recs[0].port != port:
        yield failed(name, f"SRV gives port {recs[0].port} for {name}, expected {port}")
    else:
        yield passed(name, f"SRV target, port {recs[0].port}")


@check("dns.ptr", place=31, needs=(Need.DNS,), column="PTR", title="each pod IP's PTR record names that pod")
def ptr(ev: Evidence) -> Iterator[Verdict]:
    svc = ev.target.service_fqdn
    for name in ev.pods:
        want = ev.target.pod_fqdn(name)
        for ip in ev.dns.pods[name].ips:
            lookup = ev.dns.ptr[ip]
            if not lookup.ok:
                yield failed(name, f"PTR for {ip}: {why(lookup, NameKind.REVERSE)}", ip=ip,
                             outcome=lookup.outcome.value)
            elif _elsewhere(ev, name, ip):
                continue  # dns.ptr-count says why (the pod is behind another Service too)
            elif list(lookup.values) != [want]:
                others = [o for v in lookup.values if (o := pod_from_fqdn(svc, v)) and o != name]
                what = f"another pod's name ({', '.join(others)})" if others else "something else"
                yield failed(name, f"PTR for {ip} names {what}: {', '.join(lookup.values)}; expected {want}",
                             ip=ip, ptr=list(lookup.values), other_pods=others)
            else:
                yield passed(name, f"{ip} -> {want}")


def _elsewhere(ev: Evidence, name: str, ip: str) -> bool:
    """The IP's PTR records name the pod and, besides, only names outside this Service: it is also an
    endpoint of another Service. (Another pod of this Service named is dns.ptr's: a shared IP.)"""
    values = ev.dns.ptr[ip].values
    svc = ev.target.service_fqdn
    return (ev.target.pod_fqdn(name) in values and len(values) > 1
            and all(v == ev.target.pod_fqdn(name) or pod_from_fqdn(svc, v) is None for v in values))


@check("dns.ptr-count", place=32, needs=(Need.DNS,),
       title="each pod IP has one PTR record (more: the pod is also behind another Service)")
def ptr_count(ev: Evidence) -> Iterator[Verdict]:
    for name in ev.pods:
        want = ev.target.pod_fqdn(name)
        for ip in ev.dns.pods[name].ips:
            if _elsewhere(ev, name, ip):
                values = list(ev.dns.ptr[ip].values)
                others = [v for v in values if v != want]
                yield fix(failed(name, f"{ip} has {len(values)} PTR records: {', '.join(values)}; the pod is also "
                                 f"behind another headless Service ({', '.join(others)}), so a reverse lookup of "
                                 "its IP gives either name", ip=ip, ptr=values),
                          "give the other Service a selector that does not match this StatefulSet's pods (or "
                          "make it a ClusterIP Service)")
