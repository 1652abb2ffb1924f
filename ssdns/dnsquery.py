"""DNS observations: one classified answer per (name, type), over real sockets.

Every query is for a fully qualified name (no search list), goes out over UDP with EDNS0,
and is retried over TCP when the answer comes back truncated. Each (name, type) is asked
once per run: concurrent askers share one in-flight query.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from ssdns.target import Nameserver

EDNS_PAYLOAD = 1232  # the DNS Flag Day 2020 size: no IP fragmentation
ATTEMPT_TIMEOUT = 2.0  # per try; well under the 5 s conntrack-race stall (dns-spec.md §6.4)
TRIES_PER_SERVER = 2


class Outcome(StrEnum):
    OK = "ok"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    SERVFAIL = "servfail"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    ERROR = "error"  # any other rcode or a malformed reply


@dataclass(frozen=True)
class Lookup:
    name: str
    rdtype: str
    outcome: Outcome
    values: tuple[str, ...] = ()  # rdata in presentation form, lower-cased names
    ttl: int | None = None
    server: str | None = None
    tcp: bool = False
    elapsed_ms: float = 0.0
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "type": self.rdtype,
            "outcome": self.outcome.value,
            "values": list(self.values),
            "ttl": self.ttl,
            "server": self.server,
            "tcp": self.tcp,
            "elapsed_ms": round(self.elapsed_ms, 2),
        }


_RCODES = {
    dns.rcode.NXDOMAIN: Outcome.NXDOMAIN,
    dns.rcode.SERVFAIL: Outcome.SERVFAIL,
    dns.rcode.REFUSED: Outcome.REFUSED,
}


class DnsClient:
    """Asks the configured nameservers, in order, until one gives a usable answer."""

    def __init__(self, nameservers: tuple[Nameserver, ...], deadline: float, concurrency: int = 128):
        self.nameservers = nameservers
        self.deadline = deadline  # time.monotonic() value
        self._sem = asyncio.Semaphore(concurrency)
        self._cache: dict[tuple[str, str], asyncio.Task[Lookup]] = {}
        self.queries_sent = 0

    def lookup(self, name: str, rdtype: str) -> asyncio.Task[Lookup]:
        key = (name.lower(), rdtype)
        task = self._cache.get(key)
        if task is None:
            task = self._cache[key] = asyncio.ensure_future(self._lookup(*key))
        return task

    def lookups(self) -> list[Lookup]:
        return [t.result() for t in self._cache.values() if t.done() and not t.cancelled()]

    async def _lookup(self, name: str, rdtype: str) -> Lookup:
        qname = dns.name.from_text(name)  # absolute: the caller gives FQDNs with a trailing dot
        qtype = dns.rdatatype.from_text(rdtype)
        start = time.monotonic()
        last = Lookup(name, rdtype, Outcome.TIMEOUT, detail="no nameserver answered")
        async with self._sem:
            for server in self.nameservers:
                for _ in range(TRIES_PER_SERVER):
                    left = self.deadline - time.monotonic()
                    if left <= 0.01:
                        return _finish(last, start, detail="deadline reached")
                    result = await self._ask(qname, qtype, server, min(ATTEMPT_TIMEOUT, left))
                    last = result
                    if result.outcome is not Outcome.TIMEOUT:
                        break
                # A definite answer ends the search; SERVFAIL, REFUSED and silence try the next server.
                if last.outcome in (Outcome.OK, Outcome.NXDOMAIN, Outcome.NODATA):
                    break
        return _finish(last, start)

    async def _ask(self, qname, qtype, server: Nameserver, timeout: float) -> Lookup:
        query = dns.message.make_query(qname, qtype, use_edns=0, payload=EDNS_PAYLOAD)
        name, rdtype, where = qname.to_text().lower(), dns.rdatatype.to_text(qtype), str(server)
        tcp = False
        try:
            self.queries_sent += 1
            reply = await dns.asyncquery.udp(query, server.host, timeout=timeout, port=server.port,
                                             ignore_unexpected=True)
            if reply.flags & dns.flags.TC:
                tcp = True
                self.queries_sent += 1
                reply = await dns.asyncquery.tcp(query, server.host, timeout=timeout, port=server.port)
                if reply.flags & dns.flags.TC:  # over 64 KiB: what came is not the whole answer
                    return Lookup(name, rdtype, Outcome.ERROR, server=where, tcp=True,
                                  detail=f"{where}: truncated even over TCP (the answer exceeds 64 KiB)")
        except dns.exception.Timeout:
            return Lookup(name, rdtype, Outcome.TIMEOUT, server=where, tcp=tcp, detail=f"no reply from {where}")
        except (OSError, EOFError, dns.exception.DNSException) as exc:
            # ConnectionRefused over TCP, a malformed reply: the server is there but unusable.
            return Lookup(name, rdtype, Outcome.ERROR, server=where, tcp=tcp, detail=f"{where}: {exc}")
        return classify(reply, qname, qtype, where, tcp)


def classify(reply: dns.message.Message, qname, qtype, server: str, tcp: bool) -> Lookup:
    name, rdtype = qname.to_text().lower(), dns.rdatatype.to_text(qtype)
    rcode = reply.rcode()
    if rcode != dns.rcode.NOERROR:
        outcome = _RCODES.get(rcode, Outcome.ERROR)
        detail = "" if outcome is not Outcome.ERROR else dns.rcode.to_text(rcode)
        return Lookup(name, rdtype, outcome, server=server, tcp=tcp, detail=detail)
    # Follow a CNAME chain inside the answer (a headless name should have none, but be exact).
    owner, values, ttl = qname, [], None
    for _ in range(8):
        rrset = reply.get_rrset(reply.answer, owner, dns.rdataclass.IN, qtype)
        if rrset is not None:
            values = [rd.to_text().lower() for rd in rrset]
            ttl = rrset.ttl
            break
        cname = reply.get_rrset(reply.answer, owner, dns.rdataclass.IN, dns.rdatatype.CNAME)
        if cname is None:
            break
        owner = cname[0].target
    if not values:
        return Lookup(name, rdtype, Outcome.NODATA, server=server, tcp=tcp)
    return Lookup(name, rdtype, Outcome.OK, tuple(sorted(values)), ttl, server, tcp)


def _finish(lookup: Lookup, start: float, detail: str | None = None) -> Lookup:
    changes: dict[str, Any] = {"elapsed_ms": (time.monotonic() - start) * 1000}
    if detail and lookup.outcome is Outcome.TIMEOUT:
        changes["detail"] = detail
    return replace(lookup, **changes)

