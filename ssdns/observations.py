"""What DNS and HTTP said about a target in one run (the Observations), and the rules both front ends follow to
gather it: observe.py (asyncio, any size) and smallcheck.py (blocking, a small DNS-only check)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ssdns import names
from ssdns.dnsquery import Lookup
from ssdns.names import SrvRecord
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


def srv_port(srv: Lookup | None) -> int | None:
    """The one port SRV gives, else unknown: guessing 80 would report every pod as refusing."""
    ports = {rec[2] for rec in srv_records(srv)}
    return ports.pop() if len(ports) == 1 else None


# The rules of discovery, the same for both front ends.

def service_ips(a: Lookup, aaaa: Lookup) -> list[str]:
    return [*(a.values if a.ok else ()), *(aaaa.values if aaaa.ok else ())]


def found_by_srv(target: Target, srv: Lookup | None, service: list[str]) -> list[str]:
    """The pods SRV names, in its order. An endpoint without a hostname gets a dashed-IP name (CoreDNS): that is
    no pod name."""
    dashed = {names.dashed_name(ip) for ip in service}
    return [found for rec in srv_records(srv)
            if (found := pod_from_fqdn(target, rec[3])) is not None and found not in dashed]


def found_by_ptr(target: Target, ptrs: list[Lookup]) -> list[str]:
    """The pods the PTRs of the Service's IPs name, in their order."""
    return [found for ptr in ptrs for value in ptr.values if (found := pod_from_fqdn(target, value)) is not None]


def asks_aaaa(target: Target, service_aaaa: Lookup) -> bool:
    """AAAA per pod only when the Service is (also) IPv6."""
    return target.ipv6 or service_aaaa.ok
