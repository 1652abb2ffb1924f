"""Gather what DNS and HTTP say about a target; no judgement here (see ssdns/checks/).

The flow per run: the Service's A/AAAA, SRV and the schema TXT go out at once with every
expected pod name; discovery (SRV targets, PTR of the Service's IPs) adds pod names; each pod
name's IPs then get a PTR query and one HTTP request. Every (name, type) is asked once.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
from collections.abc import Awaitable
from typing import Any

from ssdns import worker as _worker
from ssdns.dnsclient import DnsClient
from ssdns.expected import expected_pods
from ssdns.names import reverse_name
from ssdns.observations import (
    Observations,
    PodObservation,
    asks_aaaa,
    found_by_ptr,
    found_by_srv,
    service_ips,
    srv_port,
    warn_if_short,
)
from ssdns.target import Target

POD_FLOWS = 1024  # pods observed at once (each: its A/AAAA, PTRs and one HTTP request). A flow waiting for
# the worker's HTTP answer is a suspended coroutine: the sockets are bounded elsewhere (128 DNS queries, 64
# HTTP requests), and more flows let DNS run ahead of HTTP instead of waiting on it (1,000 pods: 256 -> 512
# flows 1.59 -> 1.20 s; 512 -> 1,024 1.21 -> 1.10 s, medians of 3 alternating; the worker holds at most 128
# of them as tasks, so 5,000 pods stay at ~91 MiB for both processes)


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
            self.http_port.set_result(srv_port(self.srv_lookup))
        self.service_ips = service_ips(await self.svc_a, await self.svc_aaaa)
        for found in found_by_srv(self.target, self.srv_lookup, self.service_ips):
            await self.spawn(found, "srv")
        ptrs = await asyncio.gather(*(self.dns.lookup(reverse_name(ip), "PTR") for ip in self.service_ips))
        for found in found_by_ptr(self.target, ptrs):
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
        if asks_aaaa(t, await self.svc_aaaa):
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
