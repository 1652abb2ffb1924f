"""DNS records of the Service and its pods, by the Kubernetes DNS specification (schema 1.1.0)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from ssdns.checks.registry import Verdict, check, failed, passed, warned
from ssdns.checks.words import NameKind, why
from ssdns.dnsquery import Outcome
from ssdns.evidence import Evidence, Need
from ssdns.names import family, ordinal

SCHEMA_VERSION = "1.1.0"


@check("dns.service", place=20, needs=(Need.DNS,),
       title="the Service name resolves (NXDOMAIN is right only when no pod is ready)")
def service_name(ev: Evidence) -> Iterator[Verdict]:
    svc = ev.target.service_fqdn.rstrip(".")
    a, aaaa = ev.dns.service_a, ev.dns.service_aaaa
    if a.ok or aaaa.ok:
        yield passed(svc, f"resolves to {len(ev.dns.service_ips)} address(es)")
    elif a.outcome is Outcome.NXDOMAIN and ev.none_ready:
        yield warned(svc, "NXDOMAIN, as the spec requires with no ready pods")
    else:
        yield failed(svc, f"no addresses: {why(a, NameKind.SERVICE)}", outcome=a.outcome.value)
    if aaaa.outcome in (Outcome.SERVFAIL, Outcome.REFUSED, Outcome.TIMEOUT, Outcome.ERROR):
        yield warned(svc, f"AAAA query failed: {why(aaaa, NameKind.SERVICE)}", outcome=aaaa.outcome.value)


@check("dns.pod", place=21, needs=(Need.DNS,), column="DNS",
       title="each pod name resolves to exactly one IP per family")
def pod_names(ev: Evidence) -> Iterator[Verdict]:
    for name in ev.pods:
        p = ev.dns.pods[name]
        several = [lk for lk in (p.a, p.aaaa) if lk is not None and lk.ok and len(lk.values) > 1]
        for lk in several:
            yield failed(name, f"{lk.name} has {len(lk.values)} {family(lk.values[0])} addresses "
                         f"({', '.join(lk.values)}); a pod name must resolve to exactly one", ips=list(lk.values))
        if not p.ips and name not in ev.absent_ok:
            yield failed(name, f"{p.a.name}: {why(p.a, NameKind.POD)}", outcome=p.a.outcome.value)
        elif p.ips and not several:
            yield passed(name, f"resolves to {', '.join(p.ips)}")


def _claims(ev: Evidence) -> dict[str, list[str]]:
    """IP -> the pod names that resolve to it."""
    claimed: dict[str, list[str]] = defaultdict(list)
    for name in ev.pods:
        for ip in ev.dns.pods[name].ips:
            claimed[ip].append(name)
    return claimed


@check("dns.unique-ip", place=22, needs=(Need.DNS,), title="no two pod names resolve to the same IP")
def unique_ips(ev: Evidence) -> Iterator[Verdict]:
    for ip, owners in _claims(ev).items():
        if len(owners) < 2:
            continue
        for name in owners:
            others = [o for o in owners if o != name]
            yield failed(name, f"{name} resolves to {ip}, as does {', '.join(others)}: two pods cannot share an IP",
                         ip=ip, other_pods=others)


@check("dns.service-members", place=23, needs=(Need.DNS,), column="SVC",
       title="the Service name's addresses are exactly the pod names' addresses")
def service_members(ev: Evidence) -> Iterator[Verdict]:
    obs = ev.dns
    if not (obs.service_a.ok or obs.service_aaaa.ok):
        return
    svc = ev.target.service_fqdn.rstrip(".")
    service_ips = set(obs.service_ips)
    for name in ev.pods:
        p = obs.pods[name]
        missing = [ip for ip in p.ips if ip not in service_ips]
        if missing:
            yield failed(name, f"{name}'s address {', '.join(missing)} is missing from {svc}", ips=missing)
        elif p.ips:
            yield passed(name, f"{name}'s address is in {svc}")
    claimed = _claims(ev)
    for ip in sorted(service_ips - set(claimed)):
        yield _unclaimed(ev, svc, ip)


def _unclaimed(ev: Evidence, svc: str, ip: str) -> Verdict:
    """A Service address no pod name gives: name its pod when the API knows it, else what PTR says."""
    owner = ev.api.owner_of(ip) if ev.api is not None else None
    if owner:
        return failed(svc, f"{svc} answers {ip}, which no pod name resolves to; the API says it is {owner}'s, "
                      "which has no per-pod name", ip=ip, pod=owner)
    ptr = ev.dns.ptr.get(ip)
    hint = f"; its PTR says {', '.join(ptr.values)}" if ptr is not None and ptr.ok else ""
    return failed(svc, f"{svc} answers {ip}, which no pod name resolves to (a stale or foreign endpoint){hint}",
                  ip=ip)


@check("pods.ordinals", place=40, needs=(Need.DNS,),
       title="every expected ordinal has a DNS name and no other pod is there (gaps, without --replicas)")
def ordinals(ev: Evidence) -> Iterator[Verdict]:
    t = ev.target
    subject = t.statefulset or t.service_fqdn.rstrip(".")
    if not ev.expected and t.replicas != 0:  # --replicas 0 means zero pods, not "unknown"
        yield from _gaps(ev, subject)
        return
    expected = list(ev.expected)
    missing = [n for n in expected if not _has_address(ev, n) and n not in ev.absent_ok]
    if missing:
        yield failed(subject, f"{len(missing)} of {len(expected)} expected pods have no DNS name: "
                     f"{some(missing)}", missing=missing)
    else:
        absent = sorted(ev.absent_ok & set(expected))
        msg = f"all {len(expected)} expected pods have DNS names" if expected else "no pods expected (0 replicas)"
        if absent:
            msg = (f"{len(expected) - len(absent)} of {len(expected)} pods have DNS names; "
                   f"{some(absent)} rightly absent (see api.dns)")
        yield passed(subject, msg)
    for name in ev.pods:
        if name not in expected:
            yield warned(name, f"{name} is in DNS ({ev.dns.pods[name].source}) but is not one of the "
                         f"{len(expected)} expected pods")


def _gaps(ev: Evidence, subject: str) -> Iterator[Verdict]:
    """Without an expected set: warn on ordinals missing below the highest one found."""
    t = ev.target
    found = sorted(o for n in ev.pods if (o := ordinal(n, t.statefulset)) is not None)
    gaps = sorted(set(range(t.first_ordinal, found[-1] + 1)) - set(found)) if found else []
    if gaps:
        yield warned(subject, f"ordinals {some(list(map(str, gaps)))} are missing below {found[-1]}; "
                     "give --replicas to check exactly", missing_ordinals=gaps)


def some(names: list[str], shown: int = 20) -> str:
    """A list for a message: the first few, then how many more (the details carry them all)."""
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more"


def _has_address(ev: Evidence, name: str) -> bool:
    p = ev.dns.pods.get(name)
    return p is not None and bool(p.ips)


@check("dns.schema", place=41, needs=(Need.DNS,), title="the DNS schema version TXT record says 1.1.0")
def schema(ev: Evidence) -> Iterator[Verdict]:
    v = ev.dns.version
    subject = v.name.rstrip(".")
    if v.ok and f'"{SCHEMA_VERSION}"' in v.values:
        yield passed(subject, f"DNS schema version {SCHEMA_VERSION}")
    elif v.ok:
        yield warned(subject, f"DNS schema version {', '.join(v.values)}, expected {SCHEMA_VERSION}")
    else:
        yield warned(subject, f"no schema version TXT ({why(v, NameKind.SCHEMA)}): is {ev.target.zone} the "
                     "cluster domain?")
