"""Wait for a pod's identity to come back after it was deleted, and time each step:
Ready (a new UID with an IP), DNS right (its name gives the new IP, the Service has it and no longer
has the old one), HTTP identity right (the new IP answers with the pod's own name)."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from ssdns.dnsclient import DnsClient
from ssdns.dnsquery import Lookup
from ssdns.target import Target

if TYPE_CHECKING:
    from ssdns.httpprobe import HttpProber



@dataclass
class Convergence:
    pod: str
    ordinal: int | None
    old_uid: str
    old_ips: list[str]
    new_uid: str | None = None
    new_ips: list[str] = field(default_factory=list)
    ready_s: float | None = None
    dns_s: float | None = None
    http_s: float | None = None
    stale: list[str] = field(default_factory=list)  # stale answers seen on the way, with when
    error: str | None = None

    @property
    def converged(self) -> bool:
        return None not in (self.ready_s, self.dns_s, self.http_s)

    def to_dict(self) -> dict[str, Any]:
        return {"pod": self.pod, "ordinal": self.ordinal, "old_uid": self.old_uid, "new_uid": self.new_uid,
                "old_ips": self.old_ips, "new_ips": self.new_ips, "ready_s": self.ready_s, "dns_s": self.dns_s,
                "http_s": self.http_s, "stale_seen": len(self.stale), "stale": self.stale[:20],
                "converged": self.converged, "error": self.error}


class Progress:
    """Progress lines on stderr while waiting (results stay on stdout)."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.enabled, self.stream, self.start = enabled, stream or sys.stderr, time.monotonic()

    def __call__(self, text: str) -> None:
        if self.enabled:
            print(f"[{time.monotonic() - self.start:6.1f}s] {text}", file=self.stream, flush=True)


class _Watch:
    """One pod coming back: each look advances the steps it can (Ready, then DNS, then HTTP)."""

    def __init__(self, api: Any, target: Target, conv: Convergence, t0: float, deadline: float,
                 progress: Progress, prober: HttpProber) -> None:
        from ssdns.checks.http import expected_body

        self.api, self.target, self.conv, self.t0, self.deadline = api, target, conv, t0, deadline
        self.progress, self.prober = progress, prober
        self.fqdn = target.pod_fqdn(conv.pod)
        self.want_body = expected_body(target, conv.pod, conv.ordinal)

    def step(self) -> str:
        c = self.conv
        return "Ready" if c.ready_s is None else ("DNS" if c.dns_s is None else "HTTP identity")

    async def look(self) -> bool:
        if self.conv.ready_s is None:
            await self._pod()
        await self._dns()
        if self.conv.dns_s is not None and self.conv.http_s is None:
            await self._http()
        if self.conv.converged:
            self.conv.error = None
        return self.conv.converged

    async def _pod(self) -> None:
        from ssdns import kube

        c = self.conv
        try:
            pod = await kube.read_pod(self.api, self.target.namespace, c.pod, self.deadline)
        except Exception as exc:  # noqa: BLE001 - a blip of the API: look again next round
            c.error = f"reading the pod: {type(exc).__name__}"
            return
        if pod is not None and pod.uid != c.old_uid and pod.ready and pod.ips:
            c.ready_s, c.new_uid, c.new_ips = time.monotonic() - self.t0, pod.uid, list(pod.ips)
            self.progress(f"{c.pod}: Ready again (uid {pod.uid[:8]}, {', '.join(pod.ips)})")

    async def _dns(self) -> None:
        """Ask the pod's name and the Service's for the families the pod has (before it is Ready
        again, the ones it had), with a fresh client: no answer reuse. Stale answers are noted."""
        c, now = self.conv, time.monotonic()
        dns = DnsClient(self.target.nameservers, min(self.deadline, now + 2.0))
        types = _families(c.new_ips or c.old_ips)
        names = (self.fqdn, self.target.service_fqdn)
        try:
            answers = await asyncio.gather(*(dns.lookup(n, t) for t in types for n in names))
        finally:
            dns.close()  # its UDP socket: a round's client is never used again (one left open per round before)
        mine, service = _values(answers[0::2]), _values(answers[1::2])
        old_seen = [ip for ip in c.old_ips if ip in mine | service and ip not in c.new_ips]
        if old_seen:
            c.stale.append(f"{now - self.t0:.1f}s: {', '.join(old_seen)}")
        want = set(c.new_ips)
        right = mine == want and want <= service and not old_seen
        if c.ready_s is not None and c.dns_s is None and right:
            c.dns_s = now - self.t0
            self.progress(f"{c.pod}: DNS right ({', '.join(sorted(want))})")

    async def _http(self) -> None:
        from ssdns.checks.http import body_matches
        from ssdns.httpprobe import HttpRequest

        c = self.conv
        obs = await self.prober.probe(HttpRequest(c.pod, c.new_ips[0], self.target.port or 80, self.fqdn.rstrip(".")))
        if obs.status is not None and 200 <= obs.status < 300 and body_matches(
                self.target, self.want_body, obs.body or "", obs.truncated):
            c.http_s = time.monotonic() - self.t0
            self.progress(f"{c.pod}: HTTP identity right")


def _values(lookups: list[Lookup]) -> set[str]:
    return {v for lk in lookups for v in lk.values}


def _families(ips: list[str]) -> list[str]:
    """The record types to ask for a pod with these IPs (A when it has none yet)."""
    types = [t for t, v6 in (("A", False), ("AAAA", True)) if any((":" in ip) == v6 for ip in ips)]
    return types or ["A"]


async def wait_for_identity(api: Any, target: Target, name: str, ordinal: int | None, old_uid: str,
                            old_ips: list[str], t0: float, deadline: float, progress: Progress) -> Convergence:
    from ssdns.disrupt import poll_until
    from ssdns.httpprobe import HttpProber

    conv = Convergence(name, ordinal, old_uid, list(old_ips))
    async with HttpProber(target.path, deadline, concurrency=1) as prober:
        watch = _Watch(api, target, conv, t0, deadline, progress, prober)
        if not await poll_until(watch.look, deadline, progress, lambda: f"{name}: still waiting for {watch.step()}"):
            conv.error = f"{watch.step()} not reached before the deadline"
    return conv
