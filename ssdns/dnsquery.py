"""DNS observations: one classified answer per (name, type), over real sockets.

Every query is for a fully qualified name (no search list), goes out over UDP with EDNS0,
and is retried over TCP when the answer comes back truncated. Each (name, type) is asked
once per run: concurrent askers share one in-flight query.

The wire work is done here, not by dnspython, because a check of a large StatefulSet sends
thousands of small queries and dnspython's general machinery (a socket and a transport per
query, a full object model per message) cost about 0.4 ms of CPU per query (bench/RESULTS.md):
queries are built as bytes, all UDP queries to one nameserver share one connected socket
(replies are matched by query ID and question), and a reply is read with a small parser for
the types ssdns asks (A, AAAA, PTR, SRV, TXT, CNAME). Anything that parser does not take
(another type, an unusual label, a malformed message) is read by dnspython instead, so the
classification is the same as before. dnspython is then imported only when needed.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from dataclasses import dataclass, replace
from enum import StrEnum

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

    @property
    def answered(self) -> bool:
        """A server replied (whatever it said)."""
        return self.outcome not in (Outcome.TIMEOUT,)

    def describe(self) -> str:
        if self.outcome is Outcome.OK:
            return ", ".join(self.values)
        return self.outcome.value.upper() + (f" ({self.detail})" if self.detail else "")

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


# rcodes, types and classes by number (RFC 1035, 3596, 2782, 6891)
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
_RCODES = {NXDOMAIN: Outcome.NXDOMAIN, SERVFAIL: Outcome.SERVFAIL, REFUSED: Outcome.REFUSED}
_TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33}
_A, _CNAME, _PTR, _TXT, _AAAA, _SRV, _OPT = 1, 5, 12, 16, 28, 33, 41
_IN = 1
_QR, _TC = 0x8000, 0x0200
_FAST_TYPES = frozenset({_A, _AAAA, _PTR, _SRV, _TXT, _CNAME})
# Label bytes the fast path renders as themselves: dnspython would escape anything else.
_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*/")


class _Fallback(Exception):
    """The fast reader does not take this message: let dnspython read it."""


def rdtype_number(rdtype: str) -> int:
    number = _TYPES.get(rdtype.upper())
    if number is None:
        import dns.rdatatype

        number = int(dns.rdatatype.from_text(rdtype))
    return number


def encode_name(name: str) -> bytes:
    """`web-0.nginx.default.svc.cluster.local.` in wire form (absolute, as given, no search list)."""
    if "\\" in name or not name.isascii():
        import dns.name

        return dns.name.from_text(name).to_wire()
    labels = name.rstrip(".").split(".") if name not in (".", "") else []
    out = bytearray()
    for label in labels:
        raw = label.encode()
        if not 0 < len(raw) <= 63:
            raise ValueError(f"{name!r}: {'empty label' if not raw else 'label longer than 63 bytes'}")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > 255:
        raise ValueError(f"{name!r}: name longer than 255 bytes")
    return bytes(out)


def make_query(qid: int, qname_wire: bytes, qtype: int) -> bytes:
    """A standard query, RD set, one question, an EDNS0 OPT record offering EDNS_PAYLOAD bytes
    (what dns.message.make_query(..., use_edns=0, payload=1232) sends)."""
    return (struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1) + qname_wire + struct.pack("!HH", qtype, _IN)
            + b"\x00" + struct.pack("!HHIH", _OPT, EDNS_PAYLOAD, 0, 0))


def _read_name(wire: bytes, pos: int, end: int | None = None) -> tuple[bytes, int]:
    """(the name in lower-case wire form, the offset after it), read as dnspython 2.9 reads it:
    nothing at or past `end` (an rdata's end); a pointer goes strictly before the segment it is
    in, whose bytes the target may not reach; at most 16 pointers."""
    end = len(wire) if end is None else end
    out = bytearray()
    start, after = pos, None
    for _ in range(256):  # every label or pointer consumes at least one byte of the < 65,536
        if pos >= end:
            raise _Fallback
        length = wire[pos]
        pos += 1
        if length == 0:
            out.append(0)
            if len(out) > 255:
                raise _Fallback
            return bytes(out), (pos if after is None else after)
        if length >= 0xC0:
            if pos >= end:
                raise _Fallback
            target = ((length & 0x3F) << 8) | wire[pos]
            if after is None:
                after, hops = pos + 1, 0
            hops += 1
            if target >= start or hops > 16:
                raise _Fallback
            end, pos, start = start, target, target
            continue
        if length > 63 or pos + length > end:
            raise _Fallback
        out += wire[pos - 1 : pos + length].lower()
        pos += length
    raise _Fallback


def _name_text(name: bytes) -> str:
    if name == b"\x00":
        return "."
    labels, pos = [], 0
    while name[pos]:
        label = name[pos + 1 : pos + 1 + name[pos]]
        if not _PLAIN.issuperset(label):
            raise _Fallback  # dnspython escapes these; let it render them
        labels.append(label.decode())
        pos += 1 + name[pos]
    return ".".join(labels) + "."


def _txt_text(rdata: bytes) -> str:
    strings, pos = [], 0
    while pos < len(rdata):
        n = rdata[pos]
        s = rdata[pos + 1 : pos + 1 + n]
        if len(s) != n:
            raise _Fallback
        text = ""
        for c in s:
            if c in b'"\\':
                text += "\\" + chr(c)
            elif 0x20 <= c < 0x7F:
                text += chr(c)
            else:
                text += f"\\{c:03d}"
        strings.append(f'"{text}"')
        pos += 1 + n
    if not strings:
        raise _Fallback
    return " ".join(strings)


def _rdata_text(wire: bytes, rdtype: int, start: int, rdlen: int) -> str:
    end = start + rdlen
    if rdtype == _A:
        if rdlen != 4:
            raise _Fallback
        return "%d.%d.%d.%d" % tuple(wire[start:end])
    if rdtype == _AAAA:
        if rdlen != 16:
            raise _Fallback
        import dns.ipv6  # 1 ms; its text form (embedded IPv4, zero runs) is the reference

        return dns.ipv6.inet_ntoa(wire[start:end])
    if rdtype in (_PTR, _CNAME):
        name, after = _read_name(wire, start, end)
        if after != end:
            raise _Fallback
        return _name_text(name)
    if rdtype == _SRV:
        if rdlen < 7:
            raise _Fallback
        prio, weight, port = struct.unpack_from("!HHH", wire, start)
        name, after = _read_name(wire, start + 6, end)
        if after != end:
            raise _Fallback
        return f"{prio} {weight} {port} {_name_text(name)}"
    if rdtype == _TXT:
        return _txt_text(wire[start:end])
    raise _Fallback


@dataclass(slots=True)
class Reply:
    qid: int
    flags: int
    rcode: int  # with the EDNS extended bits
    question: tuple[bytes, int, int] | None  # (lower-case name wire, type, class)
    answer: list[tuple[bytes, int, int, int, int, int]]  # (owner, type, class, ttl, rdata offset, rdlen)
    wire: bytes


def parse_reply(wire: bytes) -> Reply:
    """Header, question and answer records of a reply; every record is checked as dnspython
    would read it (the OPT record gives the extended rcode). Raises
    _Fallback on anything else or odd, for dnspython to decide."""
    try:
        qid, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", wire, 0)
        if qd > 1 or flags & 0x7800:  # opcode other than QUERY: dnspython reads UPDATE sections apart
            raise _Fallback
        pos, question = 12, None
        if qd:
            qname, pos = _read_name(wire, pos)
            qtype, qclass = struct.unpack_from("!HH", wire, pos)
            pos += 4
            question = (qname, qtype, qclass)
        answer, rcode, opt_seen = [], flags & 0xF, False
        for i in range(an + ns + ar):
            owner, pos = _read_name(wire, pos)
            rtype, rclass, ttl, rdlen = struct.unpack_from("!HHIH", wire, pos)
            pos += 10
            if pos + rdlen > len(wire):
                raise _Fallback
            if i < an:
                if ttl > 0x7FFFFFFF:
                    ttl = 0  # RFC 2181 §8, as dnspython reads it
                if rtype in (_OPT, 250):  # OPT or TSIG in the answer section: malformed
                    raise _Fallback
                _check_rdata(wire, rtype, rclass, pos, rdlen)
                answer.append((owner, rtype, rclass, ttl, pos, rdlen))
            elif rtype == _OPT:
                if i < an + ns or opt_seen or owner != b"\x00":
                    raise _Fallback
                opt_seen = True
                rcode |= (ttl >> 20) & 0xFF0
                _check_options(wire, pos, rdlen)
            else:
                _check_rdata(wire, rtype, rclass, pos, rdlen)
            pos += rdlen
        if pos != len(wire):
            raise _Fallback  # trailing junk
    except (struct.error, IndexError):
        raise _Fallback from None
    return Reply(qid, flags, rcode, question, answer, wire)


def _check_options(wire: bytes, pos: int, rdlen: int) -> None:
    end = pos + rdlen
    for _ in range(rdlen // 4 + 1):
        if pos == end:
            return
        if pos + 4 > end:
            raise _Fallback
        pos += 4 + struct.unpack_from("!H", wire, pos + 2)[0]
        if pos > end:
            raise _Fallback
    raise _Fallback


def _check_rdata(wire: bytes, rtype: int, rclass: int, start: int, rdlen: int) -> None:
    """An authority or additional record, read as dnspython would: malformed raises _Fallback."""
    if rclass != _IN:
        raise _Fallback
    if rtype == 6:  # SOA: two names and five 32-bit numbers
        _, pos = _read_name(wire, start, start + rdlen)
        _, pos = _read_name(wire, pos, start + rdlen)
        if pos + 20 != start + rdlen:
            raise _Fallback
    elif rtype == 2:  # NS
        if _read_name(wire, start, start + rdlen)[1] != start + rdlen:
            raise _Fallback
    elif rtype in _FAST_TYPES:
        _rdata_text(wire, rtype, start, rdlen)
    else:
        raise _Fallback


def is_response(reply: Reply, qid: int, qname_wire: bytes, qtype: int) -> bool:
    """As dns.message.Message.is_response for a standard query."""
    if not reply.flags & _QR or reply.qid != qid or (reply.flags >> 11) & 0xF != 0:
        return False
    if reply.question is None:
        return reply.rcode in (FORMERR, SERVFAIL, NOTIMP, REFUSED)
    return reply.question == (qname_wire.lower(), qtype, _IN)


def classify_reply(reply: Reply, name: str, rdtype: str, qtype: int, server: str, tcp: bool) -> Lookup:
    """The outcome of a reply, as the dnspython-based classify() below would give it."""
    if reply.rcode != NOERROR:
        outcome = _RCODES.get(reply.rcode, Outcome.ERROR)
        if outcome is Outcome.ERROR:
            raise _Fallback  # dnspython names the rcode
        return Lookup(name, rdtype, outcome, server=server, tcp=tcp)
    if qtype not in _FAST_TYPES:
        raise _Fallback
    wire = reply.wire
    owner = encode_name(name).lower()  # the name asked (a reply to another question never gets here)
    values, ttl = [], None
    for _ in range(8):  # follow a CNAME chain inside the answer (a headless name has none)
        matched = [i for i, rr in enumerate(reply.answer) if rr[0] == owner and rr[1] == qtype]
        if matched:
            values = list(dict.fromkeys(_rdata_text(wire, qtype, reply.answer[i][4], reply.answer[i][5]).lower()
                                        for i in matched))  # duplicates merge, as in an rrset
            ttl = min(reply.answer[i][3] for i in matched)
            break
        cname = next((rr for rr in reply.answer if rr[0] == owner and rr[1] == _CNAME), None)
        if cname is None:
            break
        owner = _read_name(wire, cname[4], cname[4] + cname[5])[0]
    if not values:
        return Lookup(name, rdtype, Outcome.NODATA, server=server, tcp=tcp)
    return Lookup(name, rdtype, Outcome.OK, tuple(sorted(values)), ttl, server, tcp)


def classify_wire(wire: bytes, name: str, rdtype: str, qtype: int, server: str, tcp: bool) -> Lookup:
    """Classify a reply: the fast reader, else dnspython (exactly the behaviour before the fast reader)."""
    try:
        return classify_reply(parse_reply(wire), name, rdtype, qtype, server, tcp)
    except (_Fallback, IndexError, struct.error):
        pass
    import dns.exception
    import dns.message
    import dns.name

    try:
        reply = dns.message.from_wire(wire)
    except dns.exception.DNSException as exc:
        return Lookup(name, rdtype, Outcome.ERROR, server=server, tcp=tcp, detail=f"{server}: {exc}")
    return classify(reply, dns.name.from_text(name), qtype, server, tcp)


def classify(reply, qname, qtype, server: str, tcp: bool) -> Lookup:
    """Classify a dns.message.Message (the reference behaviour; the fast reader mirrors it)."""
    import dns.rcode
    import dns.rdataclass
    import dns.rdatatype

    name, rdtype = qname.to_text().lower(), dns.rdatatype.to_text(qtype)
    rcode = reply.rcode()
    if rcode != dns.rcode.NOERROR:
        outcome = _RCODES.get(rcode, Outcome.ERROR)
        detail = "" if outcome is not Outcome.ERROR else dns.rcode.to_text(rcode)
        return Lookup(name, rdtype, outcome, server=server, tcp=tcp, detail=detail)
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


class _UdpChannel:
    """One connected UDP socket to one nameserver, shared by every query in flight to it;
    replies are matched to queries by ID and question. Closed when nothing is in flight."""

    def __init__(self, loop: asyncio.AbstractEventLoop, server: Nameserver):
        self.loop = loop
        info = socket.getaddrinfo(server.host, server.port, type=socket.SOCK_DGRAM, flags=socket.AI_NUMERICHOST)
        family, _, _, _, addr = info[0]
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self.sock.setblocking(False)
            self.sock.connect(addr)  # the kernel then drops datagrams from any other address
            loop.add_reader(self.sock.fileno(), self._readable)
        except BaseException:
            self.sock.close()
            raise
        self.waiting: dict[int, tuple[asyncio.Future, bytes, int]] = {}
        self.users = 0

    def new_id(self) -> int:
        for _ in range(1000):  # at most `concurrency` of 65,536 IDs are taken
            qid = int.from_bytes(os.urandom(2), "big")
            if qid not in self.waiting:
                return qid
        raise RuntimeError("no free DNS query ID")

    async def ask(self, qid: int, qname_wire: bytes, qtype: int, query: bytes, timeout: float) -> Reply | bytes | None:
        """The matching reply (parsed, or raw bytes when the fast reader does not take it), or None on timeout."""
        fut = self.loop.create_future()
        self.waiting[qid] = (fut, qname_wire, qtype)
        timer = self.loop.call_later(timeout, _expire, fut)
        try:
            for attempt in range(2):
                try:
                    self.sock.send(query)
                    break
                except BlockingIOError:
                    await self.loop.sock_sendall(self.sock, query)
                    break
                except ConnectionRefusedError:
                    # An ICMP error left by an earlier datagram on this shared socket; one query per
                    # socket never saw it. Reading it cleared it: send again. Twice: silence, as before.
                    if attempt:
                        break
            return await fut
        finally:
            timer.cancel()
            self.waiting.pop(qid, None)

    def _readable(self) -> None:
        for _ in range(256):  # bounded: drain what is queued, then back to the loop
            try:
                data = self.sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # ICMP port unreachable and the like: treated as silence, as before
            if len(data) < 12:
                continue
            entry = self.waiting.get((data[0] << 8) | data[1])
            if entry is None:
                continue  # a late or unexpected reply: ignored
            fut, qname_wire, qtype = entry
            try:
                reply = parse_reply(data)
            except _Fallback:
                reply = _slow_response(data, qname_wire, qtype)
                if reply is None:
                    continue
            else:
                if not is_response(reply, reply.qid, qname_wire, qtype):
                    continue
            if not fut.done():
                fut.set_result(reply)

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


def _qid(data: bytes) -> int:
    return (data[0] << 8) | data[1]


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


def _slow_response(data: bytes, qname_wire: bytes, qtype: int) -> bytes | None:
    """A reply the fast reader does not take: is it ours? (dnspython decides, as before).
    Returns the raw bytes to classify, or None to keep waiting."""
    import dns.exception
    import dns.message
    import dns.name

    query = dns.message.make_query(dns.name.from_wire(qname_wire, 0)[0], qtype, use_edns=0, payload=EDNS_PAYLOAD)
    query.id = _qid(data)
    try:
        reply = dns.message.from_wire(data)
    except dns.exception.DNSException:
        return data  # malformed: an error, as dnspython's udp() raised it
    return data if query.is_response(reply) else None


class DnsClient:
    """Asks the configured nameservers, in order, until one gives a usable answer."""

    def __init__(self, nameservers: tuple[Nameserver, ...], deadline: float, concurrency: int = 128):
        self.nameservers = nameservers
        self.deadline = deadline  # time.monotonic() value
        self._sem = asyncio.Semaphore(concurrency)
        self._cache: dict[tuple[str, str], asyncio.Task[Lookup]] = {}
        self._channels: dict[Nameserver, _UdpChannel] = {}
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
        start = time.monotonic()
        try:
            qname_wire, qtype = encode_name(name), rdtype_number(rdtype)
        except Exception as exc:  # not a name or type that can be asked
            return Lookup(name, rdtype, Outcome.ERROR, detail=str(exc))
        last = Lookup(name, rdtype, Outcome.TIMEOUT, detail="no nameserver answered")
        async with self._sem:
            for server in self.nameservers:
                for _ in range(TRIES_PER_SERVER):
                    left = self.deadline - time.monotonic()
                    if left <= 0.01:
                        return _finish(last, start, detail="deadline reached")
                    result = await self._ask(name, rdtype, qname_wire, qtype, server, min(ATTEMPT_TIMEOUT, left))
                    last = result
                    if result.outcome is not Outcome.TIMEOUT:
                        break
                # A definite answer ends the search; SERVFAIL, REFUSED and silence try the next server.
                if last.outcome in (Outcome.OK, Outcome.NXDOMAIN, Outcome.NODATA):
                    break
        return _finish(last, start)

    async def _ask(self, name: str, rdtype: str, qname_wire: bytes, qtype: int, server: Nameserver,
                   timeout: float) -> Lookup:
        where = str(server)
        loop = asyncio.get_running_loop()
        channel = self._channels.get(server)
        try:
            if channel is None:
                channel = self._channels[server] = _UdpChannel(loop, server)
        except OSError as exc:
            return Lookup(name, rdtype, Outcome.ERROR, server=where, detail=f"{where}: {exc}")
        channel.users += 1
        try:
            qid = channel.new_id()
            query = make_query(qid, qname_wire, qtype)
            self.queries_sent += 1
            reply = await channel.ask(qid, qname_wire, qtype, query, timeout)
        except OSError as exc:
            return Lookup(name, rdtype, Outcome.ERROR, server=where, detail=f"{where}: {exc}")
        finally:
            channel.users -= 1
            if channel.users == 0 and self._channels.get(server) is channel:
                del self._channels[server]
                channel.close()
        if reply is None:
            return Lookup(name, rdtype, Outcome.TIMEOUT, server=where, detail=f"no reply from {where}")
        if isinstance(reply, Reply) and not reply.flags & _TC or isinstance(reply, bytes) and not _tc(reply):
            wire = reply.wire if isinstance(reply, Reply) else reply
            return classify_wire(wire, name, rdtype, qtype, where, False)
        # Truncated: the same question over TCP to the same server, within this try's time.
        self.queries_sent += 1
        left = min(ATTEMPT_TIMEOUT, self.deadline - time.monotonic())
        try:
            wire = await asyncio.wait_for(_tcp_exchange(server, make_query(qid, qname_wire, qtype)), max(left, 0.01))
        except (asyncio.TimeoutError, TimeoutError):
            return Lookup(name, rdtype, Outcome.TIMEOUT, server=where, tcp=True, detail=f"no reply from {where}")
        except (OSError, EOFError) as exc:
            # ConnectionRefused over TCP, a connection closed early: the server is there but unusable.
            return Lookup(name, rdtype, Outcome.ERROR, server=where, tcp=True, detail=f"{where}: {exc}")
        try:
            reply = parse_reply(wire)
            ours = is_response(reply, qid, qname_wire, qtype)
        except _Fallback:
            ours = _slow_response(wire, qname_wire, qtype) is not None
        if not ours:
            return Lookup(name, rdtype, Outcome.ERROR, server=where, tcp=True,
                          detail=f"{where}: a TCP reply that does not answer the query")
        return classify_wire(wire, name, rdtype, qtype, where, True)


def _tc(wire: bytes) -> bool:
    return len(wire) > 3 and bool(wire[2] & 0x02)


async def _tcp_exchange(server: Nameserver, query: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(struct.pack("!H", len(query)) + query)
        await writer.drain()
        try:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            return await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise EOFError("EOF") from None
    finally:
        writer.close()


def _finish(lookup: Lookup, start: float, detail: str | None = None) -> Lookup:
    changes = {"elapsed_ms": (time.monotonic() - start) * 1000}
    if detail and lookup.outcome is Outcome.TIMEOUT:
        changes["detail"] = detail
    return replace(lookup, **changes)
