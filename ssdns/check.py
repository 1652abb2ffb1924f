"""One check run: target -> observations -> comparison -> result."""

from __future__ import annotations

import asyncio
import time

from ssdns.compare import compare
from ssdns.dnsquery import Outcome
from ssdns.errors import CannotRun
from ssdns.model import Result
from ssdns.observe import expected_pod_names, observe
from ssdns.target import Target

GRACE = 0.5  # every operation stops at the deadline by itself; this only guards against a bug


async def run_check(target: Target) -> Result:
    started = time.monotonic()
    deadline = started + target.timeout
    expected = expected_pod_names(target)
    try:
        async with asyncio.timeout(target.timeout + GRACE):
            obs = await observe(target, deadline, expected)
    except TimeoutError:
        raise CannotRun(f"the run did not finish within --timeout {target.timeout:g} s; raise it") from None
    if not any(lk.outcome not in (Outcome.TIMEOUT, Outcome.ERROR) for lk in obs.lookups):
        tried = ", ".join(str(ns) for ns in target.nameservers)
        detail = obs.service_a.detail or obs.service_a.outcome.value
        raise CannotRun(f"no nameserver answered (tried {tried}: {detail}); check --nameserver")
    findings, pods = compare(target, obs, expected)
    notes = list(target.notes)
    discovered = sorted({p.source for p in pods} - {"expected"})
    if discovered:
        notes.append(f"pods discovered from DNS ({' and '.join(s.upper() for s in discovered)}); "
                     "give --statefulset and --replicas to check an exact set")
    if obs.srv is None:
        notes.append("SRV not checked: give --port-name NAME (the Service's named port)")
    return Result(
        target=_target_dict(target, obs.http_port),
        service={"name": target.service_fqdn, "ips": obs.service_ips,
                 "a": obs.service_a.outcome.value, "aaaa": obs.service_aaaa.outcome.value},
        pods=pods,
        findings=findings,
        notes=notes,
        stats={"elapsed_ms": round((time.monotonic() - started) * 1000, 1),
               "dns_queries": obs.dns_queries, "http_requests": obs.http_requests,
               "nameservers": [str(ns) for ns in target.nameservers]},
        lookups=[lk.to_dict() for lk in obs.lookups],
    )


def _target_dict(t: Target, http_port: int | None) -> dict:
    return {"service": t.service, "namespace": t.namespace, "zone": t.zone, "statefulset": t.statefulset,
            "replicas": t.replicas, "port_name": t.port_name, "http": t.http, "http_port": http_port,
            "path": t.path, "expect": t.expect, "match": t.match, "timeout": t.timeout}
