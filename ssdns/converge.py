"""Wait for a pod's identity to come back after it was deleted, and time each step:
Ready (a new UID with an IP), DNS right (its name gives the new IP, the Service has it and no longer
has the old one), HTTP identity right (the new IP answers with the pod's own name)."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field

from ssdns.dnsquery import DnsClient
from ssdns.target import Target

POLL = 0.25  # seconds between looks; each look is one pod read, two DNS queries and maybe one GET


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

    def to_dict(self) -> dict:
        return {"pod": self.pod, "ordinal": self.ordinal, "old_uid": self.old_uid, "new_uid": self.new_uid,
                "old_ips": self.old_ips, "new_ips": self.new_ips, "ready_s": self.ready_s, "dns_s": self.dns_s,
                "http_s": self.http_s, "stale_seen": len(self.stale), "stale": self.stale[:20],
                "converged": self.converged, "error": self.error}


class Progress:
    """Progress lines on stderr while waiting (results stay on stdout)."""

    def __init__(self, enabled: bool = True, stream=None):
        self.enabled, self.stream, self.start = enabled, stream or sys.stderr, time.monotonic()

    def __call__(self, text: str) -> None:
        if self.enabled:
            print(f"[{time.monotonic() - self.start:6.1f}s] {text}", file=self.stream, flush=True)


async def wait_for_identity(api, target: Target, name: str, ordinal: int | None, old_uid: str,
                            old_ips: list[str], t0: float, deadline: float, progress: Progress) -> Convergence:
    from ssdns import kube
    from ssdns.checks.http import body_matches, expected_body
    from ssdns.httpprobe import HttpProber, HttpRequest

    conv = Convergence(name, ordinal, old_uid, list(old_ips))
    fqdn, svc = target.pod_fqdn(name), target.service_fqdn
    want_body = expected_body(target, name, ordinal)
    port = target.port or 80
    last_note = time.monotonic()
    async with HttpProber(target.path, deadline, concurrency=1) as prober:
        for _ in range(int((deadline - time.monotonic()) / POLL) + 2):  # bounded by the deadline
            now = time.monotonic()
            if now >= deadline:
                break
            try:
                pod = await asyncio.to_thread(kube.read_pod, api, target.namespace, name)
            except Exception as exc:  # a blip of the API: look again next round
                pod, conv.error = None, f"reading the pod: {type(exc).__name__}"
            if conv.ready_s is None and pod is not None and pod.uid != old_uid and pod.ready and pod.ips:
                conv.ready_s, conv.new_uid, conv.new_ips = now - t0, pod.uid, list(pod.ips)
                progress(f"{name}: Ready again (uid {pod.uid[:8]}, {', '.join(pod.ips)})")
            dns = DnsClient(target.nameservers, min(deadline, now + 2.0))  # a fresh client: no answer reuse
            # Ask the families the pod has (before it is Ready again, the ones it had).
            ips = conv.new_ips or old_ips
            types = [t for t, v6 in (("A", False), ("AAAA", True)) if any((":" in ip) == v6 for ip in ips)] or ["A"]
            answers = await asyncio.gather(*(dns.lookup(n, t) for t in types for n in (fqdn, svc)))
            mine = {v for lk in answers[0::2] for v in lk.values}
            service = {v for lk in answers[1::2] for v in lk.values}
            old_seen = [ip for ip in old_ips if ip in mine | service and ip not in conv.new_ips]
            if old_seen:
                conv.stale.append(f"{now - t0:.1f}s: {', '.join(old_seen)}")
            if conv.ready_s is not None and conv.dns_s is None:
                want = set(conv.new_ips)
                if mine == want and want <= service and not old_seen:
                    conv.dns_s = now - t0
                    progress(f"{name}: DNS right ({', '.join(sorted(want))})")
            if conv.dns_s is not None and conv.http_s is None:
                obs = await prober.probe(HttpRequest(name, conv.new_ips[0], port, fqdn.rstrip(".")))
                if obs.status is not None and 200 <= obs.status < 300 and body_matches(target, want_body, obs.body or "", obs.truncated):
                    conv.http_s = time.monotonic() - t0
                    progress(f"{name}: HTTP identity right")
            if conv.converged:
                conv.error = None
                return conv
            if time.monotonic() - last_note >= 5:
                last_note = time.monotonic()
                step = "Ready" if conv.ready_s is None else ("DNS" if conv.dns_s is None else "HTTP identity")
                progress(f"{name}: still waiting for {step}")
            await asyncio.sleep(POLL)
    step = "Ready" if conv.ready_s is None else ("DNS" if conv.dns_s is None else "HTTP identity")
    conv.error = f"{step} not reached before the deadline"
    return conv
