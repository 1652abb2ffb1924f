"""Gather what DNS and HTTP say about a target; no judgement here (see ssdns/checks/).

The flow per run: the Service's A/AAAA, SRV and the schema TXT go out at once with every
expected pod name; discovery (SRV targets, PTR of the Service's IPs) adds pod names; each pod
name's IPs then get a PTR query and one HTTP request. Every (name, type) is asked once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ssdns import names
from ssdns.dnsquery import DnsClient, Lookup
from ssdns.expected import expected_pods
from ssdns.names import SrvRecord, dashed_name, reverse_name
from ssdns.target import Target

if TYPE_CHECKING:
    from ssdns.httpprobe import HttpObservation


def srv_records(lookup: Lookup | None) -> list[SrvRecord]:
    """The SRV records of a lookup, none when it failed."""
    return names.srv_records(lookup.values) if lookup is not None and lookup.ok else []


def pod_from_fqdn(target: Target, fqdn: str) -> str | None:
    return names.pod_from_fqdn(target.service_fqdn, fqdn)


@dataclass
class PodObservation:
    name: str
    source: str
    a: Lookup
    aaaa: Lookup | None = None
    http: HttpObservation | None = None  # when HTTP was checked

    @property
    def ips(self) -> list[str]:
        out = list(self.a.values) if self.a.ok else []
        if self.aaaa is not None and self.aaaa.ok:
            out += self.aaaa.values
        return out


@dataclass
class Observations:
    service_a: Lookup
    service_aaaa: Lookup
    srv: Lookup | None
    version: Lookup
    pods: dict[str, PodObservation]
    ptr: dict[str, Lookup]  # ip -> PTR lookup, for every Service and pod IP
    http_port: int | None
    dns_queries: int = 0
    http_requests: int = 0
    elapsed_ms: float = 0.0
    lookups: list[Lookup] = field(default_factory=list)

    @property
    def service_ips(self) -> list[str]:
        return [*(self.service_a.values if self.service_a.ok else ()),
                *(self.service_aaaa.values if self.service_aaaa.ok else ())]


async def observe(target: Target, deadline: float, expected: list[str] | None = None) -> Observations:
    start = time.monotonic()
    dns = DnsClient(target.nameservers, deadline)
    svc = target.service_fqdn
    svc_a, svc_aaaa = dns.lookup(svc, "A"), dns.lookup(svc, "AAAA")
    srv = dns.lookup(target.srv_name, "SRV") if target.srv_name else None
    version = dns.lookup(f"dns-version.{target.zone}.", "TXT")

    stack = contextlib.AsyncExitStack()
    prober = None
    if target.http:
        # aiohttp costs ~190 ms to import: only when HTTP is checked
        from ssdns.httpprobe import HttpProber, HttpRequest

        prober = await stack.enter_async_context(HttpProber(target.path, deadline))
    http_port: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    pods: dict[str, asyncio.Task[PodObservation]] = {}

    async def pod_flow(name: str, source: str) -> PodObservation:
        fqdn = target.pod_fqdn(name)
        obs = PodObservation(name, source, await dns.lookup(fqdn, "A"))
        if target.ipv6 or (await svc_aaaa).ok:  # AAAA per pod only when the Service is (also) IPv6
            obs.aaaa = await dns.lookup(fqdn, "AAAA")
        ips = obs.ips
        jobs: list[Awaitable[Any]] = [dns.lookup(reverse_name(ip), "PTR") for ip in ips]
        if prober is not None and ips:
            jobs.append(prober.probe(HttpRequest(name, ips[0], await http_port, fqdn.rstrip("."))))
        done = await asyncio.gather(*jobs)
        if prober is not None and ips:
            obs.http = done[-1]
        return obs

    def spawn(name: str, source: str) -> None:
        if name not in pods:
            pods[name] = asyncio.ensure_future(pod_flow(name, source))

    async with stack:  # closes the HTTP session however the run ends
        for name in expected if expected is not None else expected_pods(target):
            spawn(name, "expected")
        srv_lookup = await srv if srv is not None else None
        http_port.set_result(_http_port(target, srv_lookup))
        service_ips = [*((await svc_a).values if (await svc_a).ok else ()),
                       *((await svc_aaaa).values if (await svc_aaaa).ok else ())]
        # An endpoint without a hostname gets a dashed-IP name (CoreDNS): that is no pod name.
        dashed = {dashed_name(ip) for ip in service_ips}
        for rec in srv_records(srv_lookup):
            if (found := pod_from_fqdn(target, rec[3])) is not None and found not in dashed:
                spawn(found, "srv")
        ptrs = await asyncio.gather(*(dns.lookup(reverse_name(ip), "PTR") for ip in service_ips))
        for ptr in ptrs:
            for value in ptr.values:
                if (found := pod_from_fqdn(target, value)) is not None:
                    spawn(found, "ptr")
        pod_obs = dict(zip(pods, await asyncio.gather(*pods.values()), strict=True))
        await version

    ptr_by_ip = {}
    for ip in {*service_ips, *(ip for p in pod_obs.values() for ip in p.ips)}:
        ptr_by_ip[ip] = dns.lookup(reverse_name(ip), "PTR").result()
    return Observations(
        service_a=svc_a.result(), service_aaaa=svc_aaaa.result(), srv=srv_lookup,
        version=version.result(), pods=pod_obs, ptr=ptr_by_ip,
        http_port=http_port.result() if target.http else None,
        dns_queries=dns.queries_sent, http_requests=prober.requests_sent if prober else 0,
        elapsed_ms=(time.monotonic() - start) * 1000, lookups=dns.lookups(),
    )


def _http_port(target: Target, srv: Lookup | None) -> int:
    if target.port is not None:
        return target.port
    ports = {rec[2] for rec in srv_records(srv)}
    return ports.pop() if len(ports) == 1 else 80

