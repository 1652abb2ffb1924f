"""Judge observations against what the Kubernetes DNS specification (schema 1.1.0) expects.

Pure: no sockets, no clock. Input is a Target and Observations; output is findings and pod views.
"""

from __future__ import annotations

import re
from collections import defaultdict

from ssdns.dnsquery import Lookup, Outcome
from ssdns.model import Finding, PodView, Status
from ssdns.observe import Observations, dashed_name, pod_from_fqdn, srv_records
from ssdns.target import Target

SCHEMA_VERSION = "1.1.0"

_WHY_MISSING = {
    Outcome.NXDOMAIN: "no such name (NXDOMAIN): the pod is gone, not Ready, or its subdomain does not match the Service",
    Outcome.NODATA: "the name exists but has no address (NODATA)",
    Outcome.SERVFAIL: "the nameserver failed (SERVFAIL); CoreDNS answers this before it has synced",
    Outcome.REFUSED: "the nameserver refused the query (REFUSED): is it the cluster DNS?",
    Outcome.TIMEOUT: "no answer in time (timeout)",
    Outcome.ERROR: "unusable answer",
}


def ordinal(name: str, statefulset: str | None) -> int | None:
    if statefulset and name.startswith(statefulset + "-"):
        tail = name[len(statefulset) + 1 :]
        if tail.isdigit() and (tail == "0" or not tail.startswith("0")):
            return int(tail)
    if not statefulset:
        m = re.fullmatch(r".+-(0|[1-9][0-9]*)", name)
        return int(m.group(1)) if m else None
    return None


def why(lookup: Lookup) -> str:
    text = _WHY_MISSING.get(lookup.outcome, lookup.outcome.value)
    return f"{text} [{lookup.detail}]" if lookup.detail and lookup.outcome is Outcome.ERROR else text


def expected_body(target: Target, pod: str, ordinal_: int | None) -> str:
    fields = {"pod": pod, "fqdn": target.pod_fqdn(pod).rstrip("."), "ordinal": "" if ordinal_ is None else ordinal_,
              "service": target.service, "namespace": target.namespace,
              "statefulset": target.statefulset or ""}
    if target.match == "regex":
        fields = {k: re.escape(str(v)) for k, v in fields.items()}
    return target.expect.format(**fields)


def body_matches(target: Target, expected: str, body: str) -> bool:
    if target.match == "exact":
        return body.strip() == expected
    if target.match == "contains":
        return expected in body
    return re.search(expected, body) is not None


class Findings(list):
    def add(self, check: str, status: Status, subject: str, message: str, /, **details) -> None:
        self.append(Finding(check, status, subject, message, details))


def compare(target: Target, obs: Observations, expected: list[str],
            absent_ok: frozenset[str] = frozenset(),
            ip_owner: dict[str, str] | None = None) -> tuple[list[Finding], list[PodView]]:
    """DNS and HTTP against the spec. `absent_ok` names pods the API says are rightly not in DNS
    (not Ready, terminating): their missing records are reported by compare_api, not failed here.
    `ip_owner` (from the API, when used) names the pod an unclaimed Service IP belongs to."""
    f = Findings()
    svc = target.service_fqdn.rstrip(".")
    names = _ordered(obs.pods, target.statefulset)
    # No pod should be in DNS (none wanted, or the API says none is ready): NXDOMAIN is then right.
    none_ready = (not expected and target.replicas == 0) or bool(expected) and all(n in absent_ok for n in expected)

    # The Service name: the set of ready pod IPs.
    a, aaaa = obs.service_a, obs.service_aaaa
    if a.ok or aaaa.ok:
        f.add("dns.service", Status.PASS, svc, f"resolves to {len(obs.service_ips)} address(es)")
    elif a.outcome is Outcome.NXDOMAIN and none_ready:
        f.add("dns.service", Status.WARN, svc, "NXDOMAIN, as the spec requires with no ready pods")
    else:
        f.add("dns.service", Status.FAIL, svc, f"no addresses: {why(a)}", outcome=a.outcome.value)
    if aaaa.outcome in (Outcome.SERVFAIL, Outcome.REFUSED, Outcome.TIMEOUT, Outcome.ERROR):
        f.add("dns.service", Status.WARN, svc, f"AAAA query failed: {why(aaaa)}", outcome=aaaa.outcome.value)

    # Each pod name: exactly one IP per family, its own.
    claimed: dict[str, list[str]] = defaultdict(list)
    for name in names:
        p = obs.pods[name]
        for lookup in (p.a, p.aaaa):
            if lookup is None:
                continue
            family = "IPv4" if lookup.rdtype == "A" else "IPv6"
            if lookup.ok and len(lookup.values) > 1:
                f.add("dns.pod", Status.FAIL, name,
                      f"{lookup.name} has {len(lookup.values)} {family} addresses ({', '.join(lookup.values)}); "
                      "a pod name must resolve to exactly one", ips=list(lookup.values))
        if not p.ips and name in absent_ok:
            pass
        elif not p.ips:
            f.add("dns.pod", Status.FAIL, name, f"{p.a.name}: {why(p.a)}", outcome=p.a.outcome.value)
        elif not any(lk is not None and lk.ok and len(lk.values) > 1 for lk in (p.a, p.aaaa)):
            f.add("dns.pod", Status.PASS, name, f"resolves to {', '.join(p.ips)}")
        for ip in p.ips:
            claimed[ip].append(name)

    for ip, owners in claimed.items():
        if len(owners) > 1:
            for name in owners:
                others = [o for o in owners if o != name]
                f.add("dns.unique-ip", Status.FAIL, name,
                      f"{name} resolves to {ip}, as does {', '.join(others)}: two pods cannot share an IP",
                      ip=ip, other_pods=others)

    # The Service's set must equal the union of the pod names' IPs.
    service_ips = set(obs.service_ips)
    if a.ok or aaaa.ok:
        for name in names:
            p = obs.pods[name]
            missing = [ip for ip in p.ips if ip not in service_ips]
            if missing:
                f.add("dns.service-members", Status.FAIL, name,
                      f"{name}'s address {', '.join(missing)} is missing from {svc}", ips=missing)
            elif p.ips:
                f.add("dns.service-members", Status.PASS, name, f"{name}'s address is in {svc}")
        for ip in sorted(service_ips - set(claimed)):
            ptr = obs.ptr.get(ip)
            owner = (ip_owner or {}).get(ip)
            if owner:
                hint = f"; the API says it is {owner}'s, which has no per-pod name"
            elif ptr is not None and ptr.ok:
                hint = f"; its PTR says {', '.join(ptr.values)}"
            else:
                hint = ""
            kind = "" if owner else " (a stale or foreign endpoint)"
            f.add("dns.service-members", Status.FAIL, svc,
                  f"{svc} answers {ip}, which no pod name resolves to{kind}{hint}", ip=ip,
                  **({"pod": owner} if owner else {}))

    _check_srv(f, target, obs, names, none_ready)
    _check_ptr(f, target, obs, names)
    _check_ordinals(f, target, obs, names, expected, absent_ok)
    _check_schema(f, target, obs)
    _check_http(f, target, obs, names)
    return list(f), _pod_views(target, obs, names)


def _check_srv(f: Findings, target: Target, obs: Observations, names: list[str], none_ready: bool) -> None:
    if obs.srv is None:
        return
    subject = obs.srv.name.rstrip(".")
    if obs.srv.outcome is Outcome.NXDOMAIN and none_ready:
        f.add("dns.srv", Status.WARN, subject, "NXDOMAIN, as expected with no ready pods")
        return
    if not obs.srv.ok:
        f.add("dns.srv", Status.FAIL, subject, f"no SRV records: {why(obs.srv)}", outcome=obs.srv.outcome.value)
        return
    by_pod: dict[str, list[tuple[int, int, int, str]]] = defaultdict(list)
    dashed = {dashed_name(ip) for ip in obs.service_ips}
    for rec in srv_records(obs.srv):
        pod = pod_from_fqdn(target, rec[3])
        if pod is not None and pod in dashed:
            f.add("dns.srv", Status.FAIL, rec[3].rstrip("."),
                  f"SRV target {rec[3]} is an endpoint without a hostname (CoreDNS names it by its IP): "
                  "that pod has no per-pod name; its spec.subdomain must equal the Service name",
                  record=" ".join(map(str, rec)))
        elif pod is None or pod not in obs.pods:
            f.add("dns.srv", Status.FAIL, rec[3].rstrip("."),
                  f"SRV target {rec[3]} is not a pod of {target.service_fqdn}", record=" ".join(map(str, rec)))
        else:
            by_pod[pod].append(rec)
    for name in names:
        recs = by_pod.get(name, [])
        ports = sorted({r[2] for r in recs})
        if not recs:
            if obs.pods[name].ips:
                f.add("dns.srv", Status.FAIL, name, f"{name} has an address but is not an SRV target of {subject}")
        elif len(recs) > 1:
            f.add("dns.srv", Status.FAIL, name, f"{name} is an SRV target {len(recs)} times; expected once per port")
        elif target.port is not None and ports != [target.port]:
            f.add("dns.srv", Status.FAIL, name, f"SRV gives port {ports[0]} for {name}, expected {target.port}")
        else:
            f.add("dns.srv", Status.PASS, name, f"SRV target, port {ports[0]}")


def _check_ptr(f: Findings, target: Target, obs: Observations, names: list[str]) -> None:
    for name in names:
        want = target.pod_fqdn(name)
        for ip in obs.pods[name].ips:
            ptr = obs.ptr[ip]
            if not ptr.ok:
                f.add("dns.ptr", Status.FAIL, name, f"PTR for {ip}: {why(ptr)}", ip=ip, outcome=ptr.outcome.value)
            elif list(ptr.values) != [want]:
                others = [o for v in ptr.values if (o := pod_from_fqdn(target, v)) and o != name]
                what = f"another pod's name ({', '.join(others)})" if others else "something else"
                f.add("dns.ptr", Status.FAIL, name, f"PTR for {ip} names {what}: {', '.join(ptr.values)}; "
                      f"expected {want}", ip=ip, ptr=list(ptr.values), other_pods=others)
            else:
                f.add("dns.ptr", Status.PASS, name, f"{ip} -> {want}")


def _check_ordinals(f: Findings, target: Target, obs: Observations, names: list[str], expected: list[str],
                    absent_ok: frozenset[str]) -> None:
    sts = target.statefulset
    if expected:
        missing = [n for n in expected if not obs.pods[n].ips and n not in absent_ok]
        subject = sts or target.service_fqdn.rstrip(".")
        if missing:
            f.add("pods.ordinals", Status.FAIL, subject,
                  f"{len(missing)} of {len(expected)} expected pods have no DNS name: {', '.join(missing)}",
                  missing=missing)
        else:
            absent = sorted(absent_ok & set(expected))
            msg = f"all {len(expected)} expected pods have DNS names"
            if absent:
                msg = (f"{len(expected) - len(absent)} of {len(expected)} pods have DNS names; "
                       f"{', '.join(absent)} rightly absent (see api.dns)")
            f.add("pods.ordinals", Status.PASS, subject, msg)
        for name in names:
            if name not in expected:
                f.add("pods.ordinals", Status.WARN, name,
                      f"{name} is in DNS ({obs.pods[name].source}) but is not one of the {len(expected)} expected pods")
        return
    ords = sorted(o for n in names if (o := ordinal(n, sts)) is not None)
    if ords:
        gaps = sorted(set(range(target.first_ordinal, ords[-1] + 1)) - set(ords))
        subject = sts or target.service_fqdn.rstrip(".")
        if gaps:
            f.add("pods.ordinals", Status.WARN, subject,
                  f"ordinals {', '.join(map(str, gaps))} are missing below {ords[-1]}; give --replicas to check exactly",
                  missing_ordinals=gaps)


def _check_schema(f: Findings, target: Target, obs: Observations) -> None:
    v = obs.version
    subject = v.name.rstrip(".")
    if v.ok and f'"{SCHEMA_VERSION}"' in v.values:
        f.add("dns.schema", Status.PASS, subject, f"DNS schema version {SCHEMA_VERSION}")
    elif v.ok:
        f.add("dns.schema", Status.WARN, subject, f"DNS schema version {', '.join(v.values)}, expected {SCHEMA_VERSION}")
    else:
        f.add("dns.schema", Status.WARN, subject,
              f"no schema version TXT ({why(v)}): is {target.zone} the cluster domain?")


def _check_http(f: Findings, target: Target, obs: Observations, names: list[str]) -> None:
    if not target.http:
        return
    # Who claims to be whom: a body that is another pod's name is an identity swap.
    for name in names:
        p = obs.pods[name]
        h = p.http
        if h is None:
            continue
        ord_ = ordinal(name, target.statefulset)
        want = expected_body(target, name, ord_)
        if h.error:
            f.add("http.identity", Status.FAIL, name, f"{h.url}: {h.error}", url=h.url)
        elif not 200 <= h.status < 300:
            f.add("http.identity", Status.FAIL, name, f"{h.url} answered HTTP {h.status}", url=h.url, status=h.status)
        elif body_matches(target, want, h.body):
            f.add("http.identity", Status.PASS, name, f"answered {_short(h.body)}")
        else:
            body = h.body.strip()
            other = body if body in obs.pods and body != name else None
            if other:
                msg = f"{name} answered as {other}: identity swap (the pod at {h.url} says it is {other})"
            else:
                msg = f"{name} answered {_short(h.body)}, expected {'' if target.match == 'exact' else target.match + ' '}{want!r}"
            f.add("http.identity", Status.FAIL, name, msg, url=h.url, body=_short(h.body, 200),
                  **({"other_pod": other} if other else {}))


def _short(body: str, limit: int = 60) -> str:
    text = body.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _ordered(pods: dict, statefulset: str | None) -> list[str]:
    return sorted(pods, key=lambda n: (ordinal(n, statefulset) is None, ordinal(n, statefulset) or 0, n))


def _pod_views(target: Target, obs: Observations, names: list[str]) -> list[PodView]:
    views = []
    for name in names:
        p = obs.pods[name]
        views.append(PodView(
            name=name, ordinal=ordinal(name, target.statefulset), fqdn=target.pod_fqdn(name), ips=p.ips,
            ptr={ip: list(obs.ptr[ip].values) for ip in p.ips},
            http=p.http.to_dict() if p.http is not None else None, source=p.source,
        ))
    return views
