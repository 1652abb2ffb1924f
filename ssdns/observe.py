"""Gather what DNS and HTTP say about a target; no judgement here (see ssdns/checks/).

The flow per run: the Service's A/AAAA, SRV and the schema TXT go out at once with every
expected pod name; discovery (SRV targets, PTR of the Service's IPs) adds pod names; each pod
name's IPs then get a PTR query and one HTTP request. Every (name, type) is asked once.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
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

POD_FLOWS = 256  # pods observed at once (each: its A/AAAA, PTRs and one HTTP request)


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


# What a full check costs per pod on a small machine (2 cores, bench/RESULTS.md at 5,000 pods, with room
# for a loaded node): used only to warn before a run that its deadline looks too short.
SECONDS_PER_POD = {True: 0.0016, False: 0.0011}  # with HTTP, DNS only


def warn_if_short(pods: int, target: Target, left: float) -> None:
    need = 0.5 + pods * SECONDS_PER_POD[target.http]
    if pods >= 500 and need > 0.8 * left:
        print(f"ssdns: note: {pods} pods may take about {need:.0f} s, close to or past --timeout "
              f"{target.timeout:g}; give --timeout {max(need * 2, target.timeout * 2):.0f} if the run stops at "
              "the deadline", file=sys.stderr, flush=True)


async def observe(target: Target, deadline: float, expected: list[str] | None = None,
                  api_port: int | None = None, memo: dict | None = None) -> Observations:
    """api_port: the pods' port from the API (EndpointSlice), when it was read. memo: parsed answers to share
    with the resolver legs (resolvers.py)."""
    start = time.monotonic()
    transport = "tcp" if target.resolvers.transport == "tcp" else "udp"  # --transport both: UDP here, TCP after
    dns = DnsClient(target.nameservers, deadline, transport=transport, memo=memo)
    stack = contextlib.AsyncExitStack()
    stack.callback(dns.close)  # its sockets, however the run ends
    svc = target.service_fqdn
    if expected is None:
        expected = expected_pods(target)
    n = len(expected)
    warn_if_short(n, target, deadline - time.monotonic())
    # With many pods the Service's A set and the SRV set cannot fit in one UDP answer (~20 SRV records
    # fit in 1232 bytes): the client asks them over TCP at once instead of getting a truncated UDP reply first.
    svc_a, svc_aaaa = dns.lookup(svc, "A", records=n), dns.lookup(svc, "AAAA")
    srv = dns.lookup(target.srv_name, "SRV", records=n) if target.srv_name else None
    version = dns.lookup(f"dns-version.{target.zone}.", "TXT")

    prober = None
    if target.http:
        from ssdns import httpworker
        from ssdns.httpobs import HttpRequest

        if httpworker.wanted(n):  # a second core sends the requests (httpworker.py)
            prober = await stack.enter_async_context(httpworker.WorkerProber(target.path, deadline))
        else:
            # aiohttp costs ~80 ms to import: only when HTTP is checked, and in a thread, so that the DNS
            # queries above go out and their answers are read meanwhile.
            httpprobe = await asyncio.to_thread(importlib.import_module, "ssdns.httpprobe")
            prober = await stack.enter_async_context(httpprobe.HttpProber(target.path, deadline))
    http_port: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
    if target.port is not None or api_port is not None:  # known now: HTTP need not wait for SRV
        http_port.set_result(target.port if target.port is not None else api_port)

    pods: dict[str, asyncio.Task[PodObservation]] = {}

    async def pod_flow(name: str, source: str) -> PodObservation:
        fqdn = target.pod_fqdn(name)
        obs = PodObservation(name, source, await dns.lookup(fqdn, "A"))
        if target.ipv6 or (await svc_aaaa).ok:  # AAAA per pod only when the Service is (also) IPv6
            obs.aaaa = await dns.lookup(fqdn, "AAAA")
        ips = obs.ips
        jobs: list[Awaitable[Any]] = [dns.lookup(reverse_name(ip), "PTR") for ip in ips]
        port = await http_port if prober is not None and ips else None
        if prober is not None and port is not None:
            jobs.append(prober.probe(HttpRequest(name, ips[0], port, fqdn.rstrip("."))))
        done = await asyncio.gather(*jobs)
        if prober is not None and port is not None:
            obs.http = done[-1]
        return obs

    # Pods in flight at once: 20,000 pods are not 20,000 tasks, so a run cut off at the deadline
    # has little to cancel and ends at once.
    in_flight = asyncio.Semaphore(POD_FLOWS)

    async def bounded_flow(name: str, source: str) -> PodObservation:
        try:
            return await pod_flow(name, source)
        finally:
            in_flight.release()

    async def spawn(name: str, source: str) -> None:
        if name not in pods:
            await in_flight.acquire()
            if time.monotonic() >= deadline:  # pods never asked cannot be judged: the run could not finish
                in_flight.release()
                raise TimeoutError(f"the deadline passed with {name} and more not asked yet")
            pods[name] = asyncio.ensure_future(bounded_flow(name, source))

    async with stack:  # closes the DNS sockets and the HTTP session however the run ends
        # Cut off at the deadline: what is still in flight is cancelled, not left to run on.
        stack.callback(lambda: [t.cancel() for t in (*pods.values(), *dns.pending())])
        for name in expected:
            await spawn(name, "expected")
        srv_lookup = await srv if srv is not None else None
        if not http_port.done():
            http_port.set_result(_srv_port(srv_lookup))
        service_ips = [*((await svc_a).values if (await svc_a).ok else ()),
                       *((await svc_aaaa).values if (await svc_aaaa).ok else ())]
        # An endpoint without a hostname gets a dashed-IP name (CoreDNS): that is no pod name.
        dashed = {dashed_name(ip) for ip in service_ips}
        for rec in srv_records(srv_lookup):
            if (found := pod_from_fqdn(target, rec[3])) is not None and found not in dashed:
                await spawn(found, "srv")
        ptrs = await asyncio.gather(*(dns.lookup(reverse_name(ip), "PTR") for ip in service_ips))
        for ptr in ptrs:
            for value in ptr.values:
                if (found := pod_from_fqdn(target, value)) is not None:
                    await spawn(found, "ptr")
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


def _srv_port(srv: Lookup | None) -> int | None:
    """The one port SRV gives, else unknown: guessing 80 would report every pod as refusing."""
    ports = {rec[2] for rec in srv_records(srv)}
    return ports.pop() if len(ports) == 1 else None

