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
from ssdns import worker as _worker
from ssdns.dnsclient import DnsClient
from ssdns.dnsquery import Lookup
from ssdns.expected import expected_pods
from ssdns.names import SrvRecord, dashed_name, reverse_name
from ssdns.target import Target

if TYPE_CHECKING:
    from ssdns.httpprobe import HttpObservation

POD_FLOWS = 1024  # pods observed at once (each: its A/AAAA, PTRs and one HTTP request). A flow waiting for
# the worker's HTTP answer is a suspended coroutine: the sockets are bounded elsewhere (128 DNS queries, 64
# HTTP requests), and more flows let DNS run ahead of HTTP instead of waiting on it (1,000 pods: 256 -> 512
# flows 1.59 -> 1.20 s; 512 -> 1,024 1.21 -> 1.10 s, medians of 3 alternating; the worker holds at most 128
# of them as tasks, so 5,000 pods stay at ~91 MiB for both processes)


def srv_records(lookup: Lookup | None) -> list[SrvRecord]:
    """The SRV records of a lookup, none when it failed."""
    return names.srv_records(lookup.values) if lookup is not None and lookup.ok else []


def pod_from_fqdn(target: Target, fqdn: str) -> str | None:
    return names.pod_from_fqdn(target.service_fqdn, fqdn)


@dataclass
class PodObservation:
    """What DNS (and HTTP) said about one pod."""

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
    """What DNS and HTTP said in one run."""

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
                  api_port: int | None = None, memo: dict | None = None, worker: Any = None) -> Observations:
    """api_port: the pods' port from the API (EndpointSlice), when it was read. memo: parsed answers to share
    with the resolver legs (resolvers.py). worker: a worker.Worker shared by several observations (check
    --all), used and left open; without one, a large check starts its own."""
    start = time.monotonic()
    if expected is None:
        expected = expected_pods(target)
    warn_if_short(len(expected), target, deadline - time.monotonic())
    # Closes the worker, the DNS sockets and the HTTP session however the run ends, after cancelling what
    # is still in flight when the run is cut off at the deadline.
    async with contextlib.AsyncExitStack() as stack:
        run = _Run(target, deadline, len(expected), memo)
        await run.open(stack, api_port, worker)
        stack.callback(run.cancel)
        await run.walk(expected)
        return run.observations(start)


class _Run:
    """One observation: the clients, the lookups asked at once, the pod flows in flight."""

    def __init__(self, target: Target, deadline: float, pods: int, memo: dict | None) -> None:
        self.target, self.deadline, self.n, self.memo = target, deadline, pods, memo
        self.pods: dict[str, asyncio.Task[PodObservation]] = {}
        # Pods in flight at once: 20,000 pods are not 20,000 tasks, so a run cut off at the deadline
        # has little to cancel and ends at once.
        self.in_flight = asyncio.Semaphore(POD_FLOWS)
        self.prober: Any = None
        self.http_sent = 0
        self.http_port: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

    async def open(self, stack: contextlib.AsyncExitStack, api_port: int | None, worker: Any) -> None:
        """The clients, and the questions that do not depend on any answer."""
        t, n = self.target, self.n
        if worker is None and _worker.wanted(n):  # a second core: HTTP requests and large answers (worker.py)
            worker = await stack.enter_async_context(_worker.Worker(t.path, self.deadline, http=t.http))
        transport = "tcp" if t.resolvers.transport == "tcp" else "udp"  # --transport both: UDP here, TCP after
        # The large answers are parsed by the child only when it has no HTTP to do: with HTTP it is the one
        # that ends last, and a 1,000-record SRV answer is ~60 ms of its time before its first request.
        offload = worker.classify if worker is not None and not t.http else None
        self.dns = dns = DnsClient(t.nameservers, self.deadline, transport=transport, memo=self.memo, offload=offload)
        stack.callback(dns.close)  # its sockets
        # With many pods the Service's A set and the SRV set cannot fit in one UDP answer (~20 SRV records
        # fit in 1232 bytes): the client asks them over TCP at once instead of getting a truncated UDP reply first.
        self.svc_a, self.svc_aaaa = dns.lookup(t.service_fqdn, "A", records=n), dns.lookup(t.service_fqdn, "AAAA")
        self.srv = dns.lookup(t.srv_name, "SRV", records=n) if t.srv_name else None
        self.version = dns.lookup(f"dns-version.{t.zone}.", "TXT")
        if t.http:
            self.prober = worker if worker is not None else await stack.enter_async_context(await self._prober())
        if t.port is not None or api_port is not None:  # known now: HTTP need not wait for SRV
            self.http_port.set_result(t.port if t.port is not None else api_port)

    async def _prober(self) -> Any:
        # aiohttp costs ~80 ms to import: only when HTTP is checked, and in a thread, so that the DNS
        # queries above go out and their answers are read meanwhile.
        httpprobe = await asyncio.to_thread(importlib.import_module, "ssdns.httpprobe")
        return httpprobe.HttpProber(self.target.path, self.deadline)

    def cancel(self) -> None:
        for task in (*self.pods.values(), *self.dns.pending()):
            task.cancel()

    async def walk(self, expected: list[str]) -> None:
        """Every expected pod, then the pods that SRV and the PTRs of the Service's IPs name."""
        for name in expected:
            await self.spawn(name, "expected")
        self.srv_lookup = await self.srv if self.srv is not None else None
        if not self.http_port.done():
            self.http_port.set_result(_srv_port(self.srv_lookup))
        a, aaaa = await self.svc_a, await self.svc_aaaa
        self.service_ips = [*(a.values if a.ok else ()), *(aaaa.values if aaaa.ok else ())]
        # An endpoint without a hostname gets a dashed-IP name (CoreDNS): that is no pod name.
        dashed = {dashed_name(ip) for ip in self.service_ips}
        for rec in srv_records(self.srv_lookup):
            if (found := pod_from_fqdn(self.target, rec[3])) is not None and found not in dashed:
                await self.spawn(found, "srv")
        ptrs = await asyncio.gather(*(self.dns.lookup(reverse_name(ip), "PTR") for ip in self.service_ips))
        for value in (v for ptr in ptrs for v in ptr.values):
            if (found := pod_from_fqdn(self.target, value)) is not None:
                await self.spawn(found, "ptr")
        self.pod_obs = dict(zip(self.pods, await asyncio.gather(*self.pods.values()), strict=True))
        await self.version

    async def spawn(self, name: str, source: str) -> None:
        if name not in self.pods:
            await self.in_flight.acquire()
            if time.monotonic() >= self.deadline:  # pods never asked cannot be judged: the run could not finish
                self.in_flight.release()
                raise TimeoutError(f"the deadline passed with {name} and more not asked yet")
            self.pods[name] = asyncio.ensure_future(self._bounded(name, source))

    async def _bounded(self, name: str, source: str) -> PodObservation:
        try:
            return await self._pod(name, source)
        finally:
            self.in_flight.release()

    async def _pod(self, name: str, source: str) -> PodObservation:
        t, dns = self.target, self.dns
        fqdn = t.pod_fqdn(name)
        obs = PodObservation(name, source, await dns.lookup(fqdn, "A"))
        if t.ipv6 or (await self.svc_aaaa).ok:  # AAAA per pod only when the Service is (also) IPv6
            obs.aaaa = await dns.lookup(fqdn, "AAAA")
        ips = obs.ips
        jobs: list[Awaitable[Any]] = [dns.lookup(reverse_name(ip), "PTR") for ip in ips]
        port = await self.http_port if self.prober is not None and ips else None
        if port is not None:
            from ssdns.httpobs import HttpRequest  # (imported once; --no-http never needs it)

            jobs.append(self.prober.probe(HttpRequest(name, ips[0], port, fqdn.rstrip("."))))
        done = await asyncio.gather(*jobs)
        if port is not None:
            obs.http = done[-1]
            self.http_sent += obs.http.sent  # counted here: a worker may be shared with other observations
        return obs

    def observations(self, start: float) -> Observations:
        dns = self.dns
        ptr_by_ip = {}
        for ip in {*self.service_ips, *(ip for p in self.pod_obs.values() for ip in p.ips)}:
            ptr_by_ip[ip] = dns.lookup(reverse_name(ip), "PTR").result()
        return Observations(
            service_a=self.svc_a.result(), service_aaaa=self.svc_aaaa.result(), srv=self.srv_lookup,
            version=self.version.result(), pods=self.pod_obs, ptr=ptr_by_ip,
            http_port=self.http_port.result() if self.target.http else None,
            dns_queries=dns.queries_sent, http_requests=self.http_sent,
            elapsed_ms=(time.monotonic() - start) * 1000, lookups=dns.lookups(),
        )


def _srv_port(srv: Lookup | None) -> int | None:
    """The one port SRV gives, else unknown: guessing 80 would report every pod as refusing."""
    ports = {rec[2] for rec in srv_records(srv)}
    return ports.pop() if len(ports) == 1 else None

