"""A DNS server over real UDP and TCP sockets that answers as CoreDNS does for the sandbox.

Authoritative for the cluster zone and the reverse zones; NXDOMAIN with the SOA for unknown
names, NODATA with the SOA for a known name without the asked type, TC=1 (question kept, no
answers) when a UDP answer does not fit 512 bytes or the client's EDNS payload, the pods'
A records in the Additional section of an SRV answer, REFUSED outside its zones.

Like CoreDNS, it lags the API: it answers from the records as they were `world.dns_delay` seconds
ago (CoreDNS learns of EndpointSlice changes through its watch and serves them from its cache).
Every world change is rendered at once and held back until it is due; the state at start is served
at once (CoreDNS syncs before it serves), and `catch_up()` (what Sandbox.sync() calls after a test
changed the world by hand) serves the current state at once. With the fault dns-stuck it serves
what it served when the fault was applied, forever.

In front of it, when the world asks for one, sits a caching resolver (ResolverCache) as NodeLocal
DNSCache or an application's own cache does: an NXDOMAIN is kept for `negative_ttl` seconds (the
SOA minimum, RFC 2308), even after the name exists; a positive answer for `stale_for` seconds, so
an old IP outlives its pod. Only names that were asked are cached, as in a real cache.
"""

from __future__ import annotations

import asyncio
import math
import struct
import time
from collections import deque
from collections.abc import Callable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from ssdns.sandbox.records import Records, records
from ssdns.sandbox.world import World

MAX_UDP = 4096
MAX_PENDING = 4096  # world changes waiting out dns_delay; beyond that the oldest is skipped
MAX_CACHED = 100_000  # resolver cache entries; past this the expired ones go, then all


class ResolverCache:
    """A caching resolver's memory: (answer RRset or None, NXDOMAIN) per name and type."""

    def __init__(self, world: World):
        self.world = world
        self._entries: dict[tuple, tuple[float, tuple]] = {}

    def through(self, qname: dns.name.Name, qtype: int, fresh: tuple) -> tuple:
        """The answer a client gets: a cached one while it lives, else `fresh` (remembered)."""
        w = self.world
        if w.negative_ttl <= 0 and w.stale_for <= 0:
            return fresh
        now = time.monotonic()
        for key in ((qname, None), (qname, qtype)):  # an NXDOMAIN covers every type of the name (RFC 2308)
            hit = self._entries.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        rrset, nx = fresh
        if len(self._entries) >= MAX_CACHED:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) >= MAX_CACHED:
                self._entries.clear()
        if nx and w.negative_ttl > 0:
            self._entries[(qname, None)] = (now + w.negative_ttl, fresh)
        elif rrset is not None and w.stale_for > 0:
            self._entries[(qname, qtype)] = (now + w.stale_for, fresh)
        return fresh


class Answerer:
    """Builds replies from the world's records as of `world.dns_delay` seconds ago."""

    def __init__(self, world: World, view: Callable[[World], Records] | None = None,
                 lag: Callable[[], float] | None = None):
        self.world = world
        # how late it follows the world: dns_delay, or a replica's own (lagging-replica), read at each change
        self.lag = lag or (lambda: world.dns_delay)
        # the records this server serves: the world's (looked up when called), or a replica's own (replicas.py)
        self.view = view or (lambda w: records(w))
        self._version = -1  # the world version the served view was rendered from
        self._rrsets: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = {}
        self._names: set[dns.name.Name] = set()
        self._pending: deque = deque(maxlen=MAX_PENDING)  # (due, version, records), oldest first
        self._frozen = False  # dns-stuck: the served view no longer changes
        self._live = True  # no change is waiting out the lag: serve the world itself
        self._fresh = False  # in live mode, the served view was rendered by a query (not ahead of one)
        self._started = False
        self.queries = 0
        self.cache = ResolverCache(world)

    # --- the lagging view ------------------------------------------------------------------

    def start(self) -> None:
        """Serve the world as it is now, then follow its changes with the lag."""
        self._serve(self.view(self.world), self.world.version)
        self._frozen = self.world.dns_stuck
        self._live, self._fresh = True, False
        self._started = True
        self.world.listeners.append(self._on_change)

    def stop(self) -> None:
        if self._on_change in self.world.listeners:
            self.world.listeners.remove(self._on_change)
        self._started = False

    def _on_change(self) -> None:
        w = self.world
        if self._frozen:
            return
        if w.dns_stuck:  # the fault was just applied: what is served now stays
            self._advance()
            self._frozen = True
            self._pending.clear()
            return
        lag = self.lag()
        if lag > 0:
            # What is served now (the world before this change: live mode never lets the world
            # change unseen) is kept until the change is due.
            self._live = False
            self._pending.append((time.monotonic() + lag, w.version, self.view(w)))

    def catch_up(self) -> None:
        """Serve the current world at once (not with dns-stuck)."""
        if not self._frozen and self._started:
            self._pending.clear()
            self._serve(self.view(self.world), self.world.version)
            self._live, self._fresh = True, False

    def _advance(self) -> None:
        w = self.world
        if self._frozen or not self._started:
            return
        if self._live or self.lag() <= 0:  # follow the world itself, rendered when asked
            self._pending.clear()
            if self._version != w.version or not self._fresh or not self._live:
                self._serve(self.view(w), w.version)
            self._live = self._fresh = True
            return
        due = None
        now = time.monotonic()
        while self._pending and self._pending[0][0] <= now:
            due = self._pending.popleft()
        if due is not None and due[1] != self._version:
            self._serve(due[2], due[1])

    def _serve(self, recs, version: int) -> None:
        w = self.world
        self._rrsets, self._names = {}, set()
        for owner, types in recs.items():
            name = dns.name.from_text(owner)
            self._names.add(name)
            for rdtype, values in types.items():
                ttl = 28800 if rdtype == "TXT" else w.ttl
                self._rrsets[(name, dns.rdatatype.from_text(rdtype))] = dns.rrset.from_text_list(
                    name, ttl, "IN", rdtype, values)
        self.zone = dns.name.from_text(w.zone + ".")
        self.soa = dns.rrset.from_text(
            self.zone, w.ttl, "IN", "SOA",
            f"ns.dns.{w.zone}. hostmaster.{w.zone}. {version + 1} 7200 1800 86400 {self._minimum()}")
        self._version = version

    def _minimum(self) -> int:
        """The SOA minimum: how long resolvers may cache an NXDOMAIN (the negative cache's, when on)."""
        return max(1, math.ceil(self.world.negative_ttl)) if self.world.negative_ttl > 0 else self.world.ttl

    def _refresh(self) -> None:
        if not self._started:  # answering without start(): the world as it is (no lag)
            if self._version != self.world.version:
                self._serve(self.view(self.world), self.world.version)
            return
        self._advance()

    def _apex(self, qname: dns.name.Name) -> dns.name.Name | None:
        for apex in (self.zone, dns.name.from_text("in-addr.arpa."), dns.name.from_text("ip6.arpa.")):
            if qname.is_subdomain(apex):
                return apex
        return None

    def reply(self, wire: bytes, max_size: int | None) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None  # CoreDNS drops what it cannot parse
        self.queries += 1
        self._refresh()
        resp = dns.message.make_response(query)
        resp.flags |= dns.flags.AA
        if len(query.question) != 1:
            resp.set_rcode(dns.rcode.FORMERR)
            return resp.to_wire()
        q = query.question[0]
        if self.world.dns_servfail and self._apex(q.name) is not None:
            resp.flags &= ~dns.flags.AA
            resp.set_rcode(dns.rcode.SERVFAIL)
            return resp.to_wire()
        apex = self._apex(q.name)
        if apex is None or q.rdclass != dns.rdataclass.IN:
            resp.flags &= ~dns.flags.AA
            resp.set_rcode(dns.rcode.REFUSED)
        else:
            rrset = self._rrsets.get((q.name, q.rdtype))
            if rrset is not None and max_size is None and self.world.tcp_differs and len(rrset) > 1:
                rrset = _without_last(rrset)  # fault tcp-differs: TCP answers lack one address
            nx = rrset is None and q.name not in self._names and not self._has_children(q.name)
            rrset, nx = self.cache.through(q.name, q.rdtype, (rrset, nx))
            if rrset is not None:
                resp.answer.append(rrset)
                if q.rdtype == dns.rdatatype.SRV:
                    for rd in rrset:
                        extra = self._rrsets.get((rd.target, dns.rdatatype.A))
                        if extra is not None:
                            resp.additional.append(extra)
            else:
                if nx:
                    resp.set_rcode(dns.rcode.NXDOMAIN)
                resp.authority.append(self._soa_for(apex))
        # TCP: the whole answer up to 64 KiB (dnspython would otherwise cap at the EDNS payload).
        limit = 65535 if max_size is None else (max(512, min(query.payload, MAX_UDP)) if query.edns >= 0 else 512)
        try:
            return resp.to_wire(max_size=limit)
        except dns.exception.TooBig:
            pass
        if max_size is None and resp.additional:
            # As CoreDNS (miekg/dns Truncate) does: drop the Additional section before truncating.
            resp.additional = []
            try:
                return resp.to_wire(max_size=limit)
            except dns.exception.TooBig:
                pass
        tc = dns.message.make_response(query)
        tc.flags |= dns.flags.AA | dns.flags.TC
        return tc.to_wire()

    def _has_children(self, name: dns.name.Name) -> bool:
        # An empty non-terminal (e.g. svc.cluster.local.) exists: NODATA, not NXDOMAIN.
        return any(n.is_subdomain(name) for n in self._names)

    def _soa_for(self, apex: dns.name.Name) -> dns.rrset.RRset:
        if apex == self.zone:
            return self.soa
        return dns.rrset.from_text(apex, self.world.ttl, "IN", "SOA",
                                   f"ns.dns.{self.world.zone}. hostmaster.{self.world.zone}. 1 7200 1800 86400 {self.world.ttl}")


def _without_last(rrset: dns.rrset.RRset) -> dns.rrset.RRset:
    values = sorted(rd.to_text() for rd in rrset)[:-1]
    return dns.rrset.from_text_list(rrset.name, rrset.ttl, "IN", dns.rdatatype.to_text(rrset.rdtype), values)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, answerer: Answerer, delay: float = 0.0):
        self.answerer = answerer
        self.delay = delay

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        out = self.answerer.reply(data, MAX_UDP)
        if out is not None:
            if self.delay:  # slow-replica: the answer leaves `delay` seconds later
                asyncio.get_running_loop().call_later(self.delay, self.transport.sendto, out, addr)
            else:
                self.transport.sendto(out, addr)


class DnsServer:
    def __init__(self, world: World, host: str = "127.54.0.1", port: int = 0,
                 view: Callable[[World], Records] | None = None, delay: float = 0.0,
                 lag: Callable[[], float] | None = None):
        self.answerer = Answerer(world, view, lag)
        self.host, self.port = host, port
        self.delay = delay  # seconds every answer is held back (slow-replica)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.StreamWriter] = set()  # the TCP connections open now

    async def start(self) -> None:
        self.answerer.start()
        loop = asyncio.get_running_loop()
        for _ in range(5):  # port 0: UDP picks a port, TCP must then get the same one
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self.answerer, self.delay), local_addr=(self.host, self.port))
            self._udp = udp
            port = udp.get_extra_info("sockname")[1]
            if self.answerer.world.udp_only:  # fault udp-only: nothing listens on TCP
                self.port = port
                return
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.host, port)
            except OSError:
                udp.close()
                if self.port:
                    raise
                continue
            self.port = port
            return
        raise OSError(f"could not bind UDP and TCP on one port at {self.host}")

    async def stop(self) -> None:
        self.answerer.stop()
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            for writer in list(self._conns):  # from Python 3.12, wait_closed() also waits for every connection:
                writer.close()  # a client's idle one held a stop (and demo's end) for the 5 s read timeout
            await self._tcp.wait_closed()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns.add(writer)
        try:
            for _ in range(100):  # bounded: a client may pipeline a few queries per connection
                head = await asyncio.wait_for(reader.readexactly(2), 5)
                wire = await asyncio.wait_for(reader.readexactly(struct.unpack("!H", head)[0]), 5)
                out = self.answerer.reply(wire, None)
                if out is None:
                    break
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            self._conns.discard(writer)
            writer.close()
