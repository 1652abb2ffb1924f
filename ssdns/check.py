"""One check run: target -> (API facts) -> expected records -> observations -> comparison -> result."""

from __future__ import annotations

import asyncio
import time

from ssdns.compare import compare
from ssdns.dnsquery import Outcome
from ssdns.errors import ApiUnavailable, CannotRun, UsageError
from ssdns.model import Finding, Result
from ssdns.observe import expected_pod_names, observe
from ssdns.target import ApiOptions, Target

GRACE = 0.5  # every operation stops at the deadline by itself; this only guards against a bug


async def run_check(target: Target, api: ApiOptions = ApiOptions()) -> Result:
    started = time.monotonic()
    deadline = started + target.timeout
    notes: list[str] = []
    facts = None
    if api.mode != "off":
        facts, target = await _read_api(target, api, deadline, notes)
    if not target.service:
        if facts is not None and facts.problems:
            p = facts.problems[0]
            status = f"HTTP {p.status}" if p.status else "unreachable"
            raise ApiUnavailable(f"cannot {p.verb} {p.resource} ({status}: {p.message}), so the Service is "
                                 "unknown: fix API access, or give --service NAME to check without it")
        raise UsageError("no Service: give --service NAME, or --statefulset NAME with API access "
                         "(its serviceName is read from the API)")
    want, absent_ok = {}, frozenset()
    if facts is not None:
        from ssdns.expected import expect, pod_names

        expected = pod_names(facts) if facts.statefulset else expected_pod_names(target)
        # Without the pod list there is nothing to expect per pod: judge DNS on its own, as without the API.
        if "pods" not in {p.resource for p in facts.problems}:
            want = expect(facts, target.service)
            absent_ok = frozenset(n for n, e in want.items() if not e.has_name)
    else:
        expected = expected_pod_names(target)
    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic()) + GRACE):
            obs = await observe(target, deadline, expected)
    except TimeoutError:
        raise CannotRun(f"the run did not finish within --timeout {target.timeout:g} s; raise it") from None
    if not any(lk.outcome not in (Outcome.TIMEOUT, Outcome.ERROR) for lk in obs.lookups):
        tried = ", ".join(str(ns) for ns in target.nameservers)
        detail = obs.service_a.detail or obs.service_a.outcome.value
        raise CannotRun(f"no nameserver answered (tried {tried}: {detail}); check --nameserver")
    owners = {ip: p.name for p in facts.pods.values() for ip in p.ips} if facts is not None else None
    findings, pods = compare(target, obs, expected, absent_ok, owners)
    if facts is not None:
        from ssdns.compare_api import compare_api

        findings += compare_api(target, facts, want, obs)
        for view in pods:
            view.api = facts.pod_view(view.name)
    discovered = sorted({p.source for p in pods} - {"expected"})
    if discovered:
        notes.append(f"pods discovered from DNS ({' and '.join(s.upper() for s in discovered)}); "
                     "give --statefulset and --replicas to check an exact set")
    if obs.srv is None:
        notes.append("SRV not checked: give --port-name NAME (the Service's named port)")
    stats = {"elapsed_ms": round((time.monotonic() - started) * 1000, 1),
             "dns_queries": obs.dns_queries, "http_requests": obs.http_requests,
             "nameservers": [str(ns) for ns in target.nameservers]}
    if facts is not None:
        stats["api_ms"] = round(facts.elapsed_ms, 1)
    return Result(
        target=_target_dict(target, obs.http_port, api.mode if facts is not None else "off"),
        service={"name": target.service_fqdn, "ips": obs.service_ips,
                 "a": obs.service_a.outcome.value, "aaaa": obs.service_aaaa.outcome.value},
        pods=pods, findings=_order(findings), notes=notes, stats=stats,
        lookups=[lk.to_dict() for lk in obs.lookups],
    )


async def _read_api(target: Target, api: ApiOptions, deadline: float, notes: list[str]):
    """Facts from the API, and the target refined by them. With --api auto, missing credentials or
    a refused read degrade to a DNS-only check that says what it lacks; with --api on they are errors."""
    from ssdns import kube

    if api.mode == "auto" and not kube.credentials_available(api):
        notes.append("API not used: no in-cluster service account and no kubeconfig (--api auto); "
                     "checked DNS and HTTP only")
        return None, target
    if not target.statefulset and not target.service:
        raise UsageError("give --statefulset NAME (or --service NAME) to check")
    try:
        client = kube.api_client(api)
    except ApiUnavailable as exc:
        if api.mode == "on":
            raise
        notes.append(f"API not used: {exc}")
        return None, target
    try:
        async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
            facts = await kube.load_facts(client, target.namespace, target.statefulset, target.service)
    except TimeoutError:
        raise CannotRun("the Kubernetes API did not answer before the deadline; raise --timeout") from None
    finally:
        client.close()
    if api.mode == "on" and facts.problems:
        p = facts.problems[0]
        status = f"HTTP {p.status}" if p.status else "unreachable"
        raise ApiUnavailable(f"cannot {p.verb} {p.resource} ({status}: {p.message}); grant verb {p.verb!r} on "
                             f"{p.resource!r}, or use --api auto to check without it")
    changes = {}
    sts = facts.statefulset
    if sts is not None:
        changes["replicas"], changes["first_ordinal"] = sts.replicas, sts.first_ordinal
        if not target.service:
            changes["service"] = sts.service_name
    svc = facts.service
    if (svc is not None and "IPv6" in svc.ip_families) or any(":" in ip for p in facts.pods.values() for ip in p.ips):
        changes["ipv6"] = True  # then a missing AAAA is a finding, not a single-stack Service
    if svc is not None and svc.exists and not target.port_name:
        named = [(n, proto) for n, _, proto in svc.ports if n]
        if named:
            changes["port_name"], changes["proto"] = named[0][0], named[0][1].lower()
            notes.append(f"SRV checked for the Service's port {named[0][0]!r} (from the API)")
    return facts, target.with_(**changes)


_CHECK_ORDER = ["api.access", "api.statefulset", "api.service"]


def _order(findings: list[Finding]) -> list[Finding]:
    """Configuration and access findings first: they explain the rest."""
    return sorted(findings, key=lambda f: _CHECK_ORDER.index(f.check) if f.check in _CHECK_ORDER else len(_CHECK_ORDER))


def _target_dict(t: Target, http_port: int | None, api: str) -> dict:
    return {"service": t.service, "namespace": t.namespace, "zone": t.zone, "statefulset": t.statefulset,
            "replicas": t.replicas, "port_name": t.port_name, "http": t.http, "http_port": http_port,
            "path": t.path, "expect": t.expect, "match": t.match, "timeout": t.timeout, "api": api}

