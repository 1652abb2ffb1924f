"""DNS observations: one classified answer per (name, type), over real sockets.

Every query is for a fully qualified name (no search list), goes out over UDP with EDNS0,
and is retried over TCP when the answer comes back truncated. Each (name, type) is asked
once per run: concurrent askers share one in-flight query.

Transport: the question bytes are built here (a 12-byte header, the name, an OPT record: no
protocol logic), all queries to one nameserver share one connected UDP socket, and a reply is
taken only when it is a response (QR set, opcode QUERY) whose ID *and* question match an
outstanding query; anything else (a late or forged reply, an echoed query, garbage) is ignored and
counted. Every name and record in a reply is parsed by dnspython: the common answer (NOERROR, only
records of the type asked, owned by the name asked) through its wire parser, record by record
(`_plain`: 5-9x cheaper than building a Message); any other reply through `dns.message.from_wire`,
imported only then.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
from dataclasses import dataclass, replace
from enum import StrEnum
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import dns.exception
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.wire

from ssdns.target import Nameserver

if TYPE_CHECKING:
    import dns.message

EDNS_PAYLOAD = 1232  # the DNS Flag Day 2020 size: no IP fragmentation
ATTEMPT_TIMEOUT = 2.0  # per send (a server gets TRIES_PER_SERVER sends); well under the 5 s conntrack-race stall (dns-spec.md §6.4)
TRIES_PER_SERVER = 2
MAX_CNAME_CHAIN = 8
TCP_IN_FLIGHT = 16  # TCP connections open at once per client
MAX_REOPENS = 64  # pipelined TCP: connections a client re-opens after the server closed one


class Outcome(StrEnum):
    OK = "ok"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    SERVFAIL = "servfail"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    ERROR = "error"  # any other rcode, a malformed or oversized reply, a CNAME loop


# The rcodes by which a nameserver says something about the *name* (it looked it up: found it, found
# nothing, or tried and failed). REFUSED, FORMERR and NOTIMP reject the *question* (not its zone, not its
# protocol): a run where no nameserver said anything about any name could not run (exit 3).
ANSWERING_RCODES = frozenset({"NOERROR", "NXDOMAIN", "SERVFAIL"})


@dataclass(frozen=True)
class Lookup:
    """What one (name, type) question got, from the nameserver that settled it. (A docstring also spares
    dataclasses from building one with inspect.signature at import.)"""

    name: str
    rdtype: str
    outcome: Outcome
    values: tuple[str, ...] = ()  # rdata in presentation form, lower-cased names
    ttl: int | None = None
    server: str | None = None
    tcp: bool = False
    elapsed_ms: float = 0.0
    detail: str = ""
    rcode: str | None = None  # the reply's rcode; None when no usable reply came

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def answered(self) -> bool:
        """A nameserver answered about this name (see ANSWERING_RCODES): DNS findings follow from it."""
        return self.rcode in ANSWERING_RCODES

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
MAX_MESSAGE = 65535  # a DNS message over TCP: a 16-bit length
# Wire bytes per record with name compression (the owner a 2-byte pointer): an A record 16, an SRV record
# to a pod name ~59 (the SRV set passes 64 KiB above ~1,110 pods, the A set above ~4,090).
_RECORD_BYTES = {"A": 16, "AAAA": 28, "SRV": 59, "PTR": 45}
_QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "TXT": 16, "AAAA": 28, "SRV": 33}
_RDTYPES = {v: dns.rdatatype.RdataType.make(v) for v in _QTYPES.values()}
_OPT = b"\x00\x00\x29" + struct.pack("!H", EDNS_PAYLOAD) + b"\x00\x00\x00\x00\x00\x00"  # EDNS0, DO=0


_PARENTS: dict[str, bytes] = {}  # a parent name -> its wire labels: a run's names share a few parents


def question_bytes(name: str, rdtype: str) -> bytes:
    """The question section for an absolute name (trailing dot) in class IN, names lower-cased. Every question of
    every resolver leg is built here (16,000 at 1,000 pods): the first label is encoded, its parent looked up."""
    text = name.lower()
    head, _, parent = text.rstrip(".").partition(".")
    tail = _PARENTS.get(parent)
    if tail is None:
        tail = _labels(parent)
        if tail is not None and len(_PARENTS) < 4096:
            _PARENTS[parent] = tail
    out = None
    if tail is not None and 0 < len(head) < 64 and head.isascii():
        out = bytes((len(head),)) + head.encode("ascii") + tail
        if len(out) > 254:
            out = None
    if out is None and name in (".", ""):
        out = b""  # the root (a single dot) as before; an empty name is the root too
    if out is None:  # IDN, escapes, odd lengths: let dnspython say what it is
        out = (dns.name.from_text(name).to_wire() or b"\x00")[:-1]
    qtype = _QTYPES.get(rdtype) or dns.rdatatype.from_text(rdtype)
    return out + b"\x00" + struct.pack("!HH", qtype, 1)


def _labels(parent: str) -> bytes | None:
    """A name's wire labels without the root (b"" for none), or None when it needs dnspython."""
    if not parent:
        return b""
    labels = parent.split(".")
    if not parent.isascii() or any(not 0 < len(lb) < 64 for lb in labels):
        return None
    return b"".join(bytes((len(lb),)) + lb.encode("ascii") for lb in labels)


def query_bytes(qid: int, question: bytes) -> bytes:
    # ID, flags RD, QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, ARCOUNT 1 (the OPT record)
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1) + question + _OPT


def _matches(reply: bytes, question: bytes) -> bool:
    """A response (QR set, opcode QUERY) whose question section is ours (case-insensitively: a server may
    echo 0x20 case). Our own query reflected back (QR clear) is not an answer."""
    end = 12 + len(question)
    return (len(reply) >= end and reply[2] & 0xF8 == 0x80 and reply[4:6] == b"\x00\x01"
            and reply[12:end - 4].lower() == question[:-4] and reply[end - 4:end] == question[-4:])


def _free_id(waiting: dict[int, Any]) -> int:
    """A random query ID no outstanding query on the socket or connection uses."""
    for _ in range(100):
        qid = random.getrandbits(16)
        if qid not in waiting:
            return qid
    raise RuntimeError("no free query ID")  # unreachable: outstanding queries are bounded far below 65536


class _UdpChannel:
    """One connected UDP socket to one nameserver, shared by every query to it: a non-blocking socket of its own,
    read with add_reader and drained at each wake-up (asyncio's datagram transport reads one datagram per loop
    iteration, so on the standard loop a thousand replies waiting took a thousand iterations)."""

    @classmethod
    def to(cls, server: Nameserver) -> _UdpChannel:
        # Only IP addresses (target.parse_nameserver): no name is looked up here.
        family, _, _, _, addr = socket.getaddrinfo(server.host, server.port, type=socket.SOCK_DGRAM,
                                                   flags=socket.AI_NUMERICHOST)[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect(addr)
        except OSError:
            sock.close()
            raise
        return cls(sock)

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock  # connected, non-blocking
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.sock.fileno(), self._readable)
        self.waiting: dict[int, tuple[bytes, asyncio.Future[bytes]]] = {}
        self.ignored = 0  # datagrams that answered no outstanding question
        self.closed = False
        self._unsent: list[bytes] = []  # datagrams the socket's buffer had no room for, sent when it has

    def _readable(self) -> None:
        for _ in range(256):  # bounded: the loop's other work runs between bursts
            try:
                data = self.sock.recv(MAX_MESSAGE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ICMP port unreachable on a connected socket: ConnectionRefusedError
                self._error(exc)
                return
            entry = self.waiting.get(int.from_bytes(data[:2], "big")) if len(data) >= 12 else None
            if entry is None or not _matches(data, entry[0]) or entry[1].done():
                self.ignored += 1
                continue
            entry[1].set_result(data)

    def _error(self, exc: OSError) -> None:
        # Nothing listens there (or the host is unreachable): every waiter learns it now.
        for _, fut in self.waiting.values():
            if not fut.done():
                fut.set_exception(exc)

    def send(self, wire: bytes) -> None:
        if self.closed:
            return
        if self._unsent:  # keep the order
            self._unsent.append(wire)
            return
        try:
            self.sock.send(wire)
        except (BlockingIOError, InterruptedError):
            self._unsent.append(wire)
            self.loop.add_writer(self.sock.fileno(), self._writable)
        except OSError as exc:
            self._error(exc)

    def _writable(self) -> None:
        while self._unsent and not self.closed:
            try:
                self.sock.send(self._unsent[0])
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._error(exc)
            del self._unsent[0]
        self.loop.remove_writer(self.sock.fileno())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.sock.fileno())
            self.loop.remove_writer(self.sock.fileno())
            self.sock.close()

    def new_id(self) -> int:
        return _free_id(self.waiting)


class _TcpPipe:
    """One TCP connection to one nameserver carrying many queries (RFC 7766 pipelining), for a client that
    asks one server thousands of questions (the --resolvers legs): replies are taken in any order, by ID and
    question, as over UDP. A connection the server closes fails what waits on it (they retry on their own)."""

    def __init__(self) -> None:
        self.writer: asyncio.StreamWriter | None = None
        self.waiting: dict[int, tuple[bytes, asyncio.Future[bytes]]] = {}
        self.closed = False
        self._reading: asyncio.Task[None] | None = None
        # The queries sent in this loop iteration, written together when it ends: a write per query was ~7% of
        # an every-resolver run (a syscall each); PER_LEG_TCP askers send in the same iteration.
        self._out: list[bytes] = []

    async def open(self, server: Nameserver) -> _TcpPipe:
        reader, self.writer = await asyncio.open_connection(server.host, server.port)
        self._reading = asyncio.ensure_future(self._read(reader))
        return self

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                (size,) = struct.unpack("!H", await reader.readexactly(2))
                wire = await reader.readexactly(size)
                entry = self.waiting.get(int.from_bytes(wire[:2], "big")) if len(wire) >= 12 else None
                if entry is not None and _matches(wire, entry[0]) and not entry[1].done():
                    entry[1].set_result(wire)
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            self._fail("the server closed the connection")

    def _fail(self, why: str) -> None:
        self.closed = True
        self._out.clear()
        for _, fut in self.waiting.values():
            if not fut.done():
                fut.set_exception(ConnectionResetError(why))

    def send(self, qid: int, question: bytes) -> asyncio.Future[bytes]:
        """Queue a query for this iteration's write; the future fails with ConnectionResetError if the connection
        closes before its reply comes (the caller re-sends on a new one)."""
        if self.closed or self.writer is None or self.writer.is_closing() or qid in self.waiting:
            raise ConnectionResetError("the connection is closed")
        loop = asyncio.get_running_loop()
        if not self._out:
            loop.call_soon(self._flush)
        msg = query_bytes(qid, question)
        self._out.append(struct.pack("!H", len(msg)) + msg)
        fut: asyncio.Future[bytes] = loop.create_future()
        self.waiting[qid] = (question, fut)
        return fut

    def _flush(self) -> None:
        if not self._out or self.closed:
            return  # closed meanwhile: _fail has failed every query
        data = b"".join(self._out)
        self._out.clear()
        writer = self.writer
        assert writer is not None
        if writer.is_closing():  # closed under us (the standard loop would drop the write silently)
            self._fail("the connection is closed")
            return
        try:
            writer.write(data)
        except RuntimeError:  # uvloop raises on a transport the server closed before our reader saw it
            self._fail("the connection is closed")

    def close(self) -> None:
        self._fail("the connection is closed")  # here: a reader cancelled before it started runs no finally
        if self.writer is not None:
            self.writer.close()
        if self._reading is not None:
            self._reading.cancel()


def _elsewhere(seen: Lookup, server: str, tcp: bool) -> Lookup:
    """A memoised answer as another server gave it: replace(seen, server=..., tcp=...) without __init__ (0.6 us
    instead of 4.4: a copy per memo hit, ~14,000 with every resolver at 1,000 pods). A new object: _lookup sets
    its time in place."""
    new = object.__new__(Lookup)
    fields = new.__dict__
    fields.update(seen.__dict__)
    fields["server"], fields["tcp"] = server, tcp
    return new


def _expire(fut: asyncio.Future[bytes]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


class _Failed(Exception):
    """A try that ended without a usable reply; its message says why."""

    def __init__(self, outcome: Outcome, detail: str, tcp: bool = False):
        super().__init__(detail)
        self.outcome, self.detail, self.tcp = outcome, detail, tcp


class DnsClient:
    """Asks the configured nameservers, in order, until one gives a usable answer."""

    def __init__(self, nameservers: tuple[Nameserver, ...], deadline: float, concurrency: int = 128,
                 transport: str = "udp", patience: float = ATTEMPT_TIMEOUT * TRIES_PER_SERVER,
                 memo: dict[bytes, Lookup] | None = None, pipeline: bool = False,
                 offload: Callable[[bytes, str, str, str, bool], Awaitable[Lookup]] | None = None):
        self.nameservers = nameservers
        # offload: classify_wire's twin that parses large answers elsewhere (worker.Worker.classify)
        self.offload = offload
        self.deadline = deadline  # time.monotonic() value
        # udp: UDP, and TCP when the answer is truncated (as a glibc client); tcp: every query over TCP
        self.transport = transport
        self.patience = patience  # seconds one nameserver gets per question (less when less time is left)
        # reply bytes (all but the ID) -> its classification: clients asking several servers the same questions
        # (--resolvers) parse an answer once, however many servers give it byte for byte
        self.memo = memo
        # pipeline: TCP queries share one connection per server (see _TcpPipe), re-opened at most MAX_REOPENS times
        self.pipeline = pipeline
        self._pipes: dict[Nameserver, asyncio.Future[_TcpPipe]] = {}
        self._reopens = 0
        self._sem = asyncio.Semaphore(concurrency)  # bounds the outstanding queries (and IDs per socket)
        # TCP: each query is a connection; a burst of connects past a server's listen backlog loses SYNs, and
        # each lost one costs the 1 s SYN retransmit (knotd: p99 1.2 s at 64 connects at once).
        self._tcp_sem = asyncio.Semaphore(TCP_IN_FLIGHT)
        self._cache: dict[tuple[str, str], asyncio.Task[Lookup]] = {}
        self._channels: dict[Nameserver, _UdpChannel] = {}
        self.queries_sent = 0

    def lookup(self, name: str, rdtype: str, records: int = 0) -> asyncio.Task[Lookup]:
        """records: how many records the answer is expected to hold. A large answer goes over TCP at once
        (no UDP try that would come back truncated), and a SERVFAIL for one too large for DNS is named so."""
        key = (name.lower(), rdtype)
        task = self._cache.get(key)
        if task is None:
            size = records * _RECORD_BYTES.get(rdtype, 16)
            tcp_first = size > EDNS_PAYLOAD or self.transport == "tcp"
            task = self._cache[key] = asyncio.ensure_future(self._lookup(*key, tcp_first, size))
        return task

    async def ask(self, name: str, rdtype: str, records: int = 0) -> Lookup:
        """lookup() without its task and its cache, for a caller that asks each question once and awaits it
        there (a resolver leg's askers: a task per question was ~8% of an every-resolver run); not in lookups()."""
        size = records * _RECORD_BYTES.get(rdtype, 16)
        return await self._lookup(name.lower(), rdtype, size > EDNS_PAYLOAD or self.transport == "tcp", size)

    def pending(self) -> list[asyncio.Task[Lookup]]:
        """The lookups not answered yet (to cancel when the run is cut off)."""
        return [t for t in self._cache.values() if not t.done()]

    def lookups(self) -> list[Lookup]:
        return [t.result() for t in self._cache.values() if t.done() and not t.cancelled()]

    def close(self) -> None:
        for chan in self._channels.values():
            chan.close()
        for pipe in self._pipes.values():
            if pipe.done() and not pipe.cancelled() and pipe.exception() is None:
                pipe.result().close()

    async def _lookup(self, name: str, rdtype: str, tcp_first: bool, size: int) -> Lookup:
        try:
            question = question_bytes(name, rdtype)
        except (dns.exception.DNSException, ValueError) as exc:
            return Lookup(name, rdtype, Outcome.ERROR, detail=f"cannot ask {name!r}: {exc}")
        said: list[Lookup] = []
        async with self._sem:
            start = time.monotonic()  # the answer's time, not the wait for a slot (dns.latency judges it)
            for i, server in enumerate(self.nameservers):
                left = self.deadline - time.monotonic()
                if left <= 0.01:
                    said.append(Lookup(name, rdtype, Outcome.TIMEOUT, server=str(server),
                                       detail=f"{server}: not asked, deadline reached"))
                    break
                # A silent server may not eat the time the next ones need: share what is left.
                budget = min(self.patience, left / (len(self.nameservers) - i))
                result = await self._ask(name, rdtype, question, server, budget, tcp_first, size)
                assert result is not None
                said.append(result)
                # A definite answer ends the search; SERVFAIL, REFUSED, errors and silence try the next server.
                if result.outcome in (Outcome.OK, Outcome.NXDOMAIN, Outcome.NODATA):
                    break
        best = next((r for r in said if r.outcome in (Outcome.OK, Outcome.NXDOMAIN, Outcome.NODATA)), None)
        best = best or next((r for r in said if r.answered), None)
        if best is None:
            # Nobody answered about the name: name what each nameserver said.
            best = replace(said[-1], detail="; ".join(r.detail or f"{r.server}: {r.outcome.value}" for r in said))
        # `best` was made for this lookup and is not shared yet: set its time in place (replace() costs
        # more than the rest of the bookkeeping of a lookup).
        object.__setattr__(best, "elapsed_ms", (time.monotonic() - start) * 1000)
        return best

    async def _ask(self, name: str, rdtype: str, question: bytes, server: Nameserver, timeout: float,
                   tcp_first: bool, size: int) -> Lookup:
        where = str(server)
        tcp = tcp_first
        try:
            if not tcp_first:
                wire = await self._udp(question, server, timeout)
                if wire[2] & 0x02 == 0:  # TC clear: the whole answer
                    return self._classify(wire, name, rdtype, where, False)
                tcp = True
                timeout = max(0.01, min(ATTEMPT_TIMEOUT, self.deadline - time.monotonic()))
            wire = await self._tcp(question, server, timeout)
            if self.offload is not None and self.memo is None:  # the large answers come over TCP
                reply = await self.offload(wire, name, rdtype, where, True)
            else:
                reply = self._classify(wire, name, rdtype, where, True)
            if wire[2] & 0x02:
                return replace(reply, outcome=Outcome.ERROR, values=(),
                               detail=f"{where}: the answer is larger than DNS can carry (truncated even over "
                                      "TCP: more than 64 KiB)")
            if reply.outcome is Outcome.SERVFAIL and (not tcp_first or size > MAX_MESSAGE):
                # knotd's answer to a set over 64 KiB; not "CoreDNS has not synced".
                why = (f"about {size // 1024} KiB of records expected" if size > MAX_MESSAGE
                       else "the answer did not fit in UDP")
                return replace(reply, outcome=Outcome.ERROR,
                               detail=f"{where}: SERVFAIL over TCP, {why}: most likely the answer is larger "
                                      "than DNS can carry (64 KiB)")
            return reply
        except _Failed as exc:
            return Lookup(name, rdtype, exc.outcome, server=where, tcp=tcp or exc.tcp, detail=exc.detail)

    def _classify(self, wire: bytes, name: str, rdtype: str, where: str, tcp: bool) -> Lookup:
        if self.memo is None:
            return classify_wire(wire, name, rdtype, where, tcp)
        seen = self.memo.get(wire[2:])
        if seen is None:
            seen = classify_wire(wire, name, rdtype, where, tcp)
            if seen.detail:  # worded for this server: not shared
                return seen
            self.memo[wire[2:]] = seen
        return _elsewhere(seen, where, tcp)

    def _channel(self, server: Nameserver) -> _UdpChannel:
        chan = self._channels.get(server)
        if chan is None:
            try:
                chan = self._channels[server] = _UdpChannel.to(server)
            except OSError as exc:
                raise _Failed(Outcome.ERROR, f"{server}: cannot send: {exc.strerror or exc}") from None
        return chan

    async def _udp(self, question: bytes, server: Nameserver, budget: float) -> bytes:
        """Send, and resend at even steps of the budget (UDP loses datagrams) under the same ID, so a late
        answer to an earlier send still counts. One timer at a time per query, which resends and at the end
        fails the reply's future (no asyncio.timeout, no timer per resend): this runs for every question
        (thousands per run, and once more per resolver leg)."""
        chan = self._channel(server)
        qid = chan.new_id()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bytes] = loop.create_future()
        chan.waiting[qid] = (question, fut)
        wire = query_bytes(qid, question)
        begun = loop.time()
        timer: list[asyncio.TimerHandle] = []

        def step(k: int) -> None:  # the k-th of TRIES_PER_SERVER even steps of the budget has passed
            if fut.done():
                return
            if k >= TRIES_PER_SERVER:
                fut.set_exception(TimeoutError())
                return
            if not chan.closed:
                self.queries_sent += 1
                chan.send(wire)
            timer[0] = loop.call_at(begun + budget * (k + 1) / TRIES_PER_SERVER, step, k + 1)

        try:
            self.queries_sent += 1
            chan.send(wire)
            timer.append(loop.call_at(begun + budget / TRIES_PER_SERVER, step, 1))
            return await fut
        except TimeoutError:
            extra = f" ({chan.ignored} replies ignored: not an answer to any question asked)" if chan.ignored else ""
            raise _Failed(Outcome.TIMEOUT, f"no reply from {server}{extra}") from None
        except ConnectionRefusedError:
            raise _Failed(Outcome.ERROR, f"{server}: nothing listens there (port unreachable)") from None
        except OSError as exc:
            raise _Failed(Outcome.ERROR, f"{server}: {exc.strerror or exc}") from None
        finally:
            if timer:
                timer[0].cancel()
            del chan.waiting[qid]

    async def _tcp(self, question: bytes, server: Nameserver, timeout: float) -> bytes:
        if self.pipeline:
            until = time.monotonic() + timeout
            for _ in range(2):  # the server closed the shared connection: once more on a new one
                try:
                    return await self._piped(question, server, until)
                except TimeoutError:
                    raise _Failed(Outcome.TIMEOUT, f"no complete reply from {server} over TCP", tcp=True) from None
                except OSError:
                    continue
            timeout = max(0.01, until - time.monotonic())  # then a connection of its own, in what is left
        return await self._tcp_alone(question, server, timeout)

    async def _piped(self, question: bytes, server: Nameserver, until: float) -> bytes:
        """The reply over the server's shared connection, by `until` (time.monotonic()) or TimeoutError: one timer
        for the reply (no asyncio.timeout per query), and a timeout only while the connection is being opened."""
        fut = self._pipes.get(server)
        if fut is not None and fut.done() and (fut.cancelled() or fut.exception() is not None or fut.result().closed):
            if self._reopens >= MAX_REOPENS:
                raise ConnectionResetError("too many closed connections")
            self._reopens += 1
            fut = None
        if fut is None:
            fut = self._pipes[server] = asyncio.ensure_future(_TcpPipe().open(server))
        if not fut.done():  # being opened (once per server, and after a close): shared, so shielded
            async with asyncio.timeout(max(0.01, until - time.monotonic())):
                await asyncio.shield(fut)
        pipe = fut.result()
        qid = _free_id(pipe.waiting)
        self.queries_sent += 1
        reply = pipe.send(qid, question)
        timer = asyncio.get_running_loop().call_later(max(0.01, until - time.monotonic()), _expire, reply)
        try:
            return await reply
        finally:
            timer.cancel()
            pipe.waiting.pop(qid, None)

    async def _tcp_alone(self, question: bytes, server: Nameserver, timeout: float) -> bytes:
        writer = None
        got = 0
        try:
            async with asyncio.timeout(timeout), self._tcp_sem:
                reader, writer = await asyncio.open_connection(server.host, server.port)
                qid = random.getrandbits(16)
                msg = query_bytes(qid, question)
                self.queries_sent += 1
                writer.write(struct.pack("!H", len(msg)) + msg)
                while True:  # a reply that is not ours (wrong ID or question) is skipped, as over UDP
                    (size,) = struct.unpack("!H", await reader.readexactly(2))
                    wire = await reader.readexactly(size)
                    got += size
                    if len(wire) >= 12 and int.from_bytes(wire[:2], "big") == qid and _matches(wire, question):
                        return wire
        except TimeoutError:
            read = f" after {got} bytes" if got else ""
            raise _Failed(Outcome.TIMEOUT, f"no complete reply from {server} over TCP{read}", tcp=True) from None
        except asyncio.IncompleteReadError as exc:
            raise _Failed(Outcome.ERROR, f"{server}: TCP connection closed mid-answer ({len(exc.partial)} of "
                                         f"{exc.expected} bytes)", tcp=True) from None
        except ConnectionRefusedError:
            why = "nothing listens" if self.transport == "tcp" else "the answer was truncated over UDP and nothing listens"
            raise _Failed(Outcome.ERROR, f"{server}: {why} on TCP (connection refused)", tcp=True) from None
        except OSError as exc:
            raise _Failed(Outcome.ERROR, f"{server}: TCP: {exc.strerror or exc}", tcp=True) from None
        finally:
            if writer is not None:
                writer.close()


def classify_wire(wire: bytes, name: str, rdtype: str, server: str, tcp: bool) -> Lookup:
    """wire: a reply whose question matched ours (_matches)."""
    qtype = _QTYPES.get(rdtype) or dns.rdatatype.from_text(rdtype)
    try:
        plain = _plain(wire, qtype)
    except (dns.exception.DNSException, IndexError, struct.error):
        plain = None  # malformed: from_wire says how
    if plain is None:
        return classify_message(wire, name, rdtype, server, tcp)
    outcome, ttl, values = plain
    return Lookup(name, rdtype, outcome, values, ttl, server, tcp, rcode="NOERROR")


def classify_message(wire: bytes, name: str, rdtype: str, server: str, tcp: bool) -> Lookup:
    """Any reply, read whole by dns.message.from_wire (imported only when a reply needs it: ~15 ms)."""
    from dns.message import from_wire

    try:
        reply = from_wire(wire, ignore_trailing=True)
    except dns.exception.DNSException as exc:
        return Lookup(name, rdtype, Outcome.ERROR, server=server, tcp=tcp,
                      detail=f"{server}: malformed reply ({type(exc).__name__}: {exc})")
    return classify(reply, name, rdtype, server, tcp)


_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")  # type, class, TTL, rdata length
_TO_QUESTION = b"\xc0\x0c"  # a compression pointer to the question's name (offset 12)


def _plain(wire: bytes, qtype: int) -> tuple[Outcome, int | None, tuple[str, ...]] | None:
    """The common reply's (outcome, TTL, values), read with dnspython's wire parser, names and rdata classes,
    without building a Message: NOERROR; in the answer section only records of the type asked, in class IN,
    owned by the name asked (a pointer to the question), or none at all (NODATA); the authority and additional
    records (a NODATA's SOA, an SRV answer's addresses) parsed and set aside, with at most one OPT (no extended
    rcode, no options). None for any other reply: classify_message reads it in full. What comes back is what
    classify() makes of the same reply: each value once, sorted, lower-cased; the smallest TTL."""
    _id, flags, _qd, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    if flags & 0x780F:  # an opcode other than QUERY (from_wire reads an UPDATE otherwise), an rcode
        return None
    at = 12
    while wire[at]:  # the question's name: uncompressed, it matched ours byte for byte
        at += wire[at] + 1
    parser = dns.wire.Parser(wire, at + 5)
    rdtype = _RDTYPES.get(qtype) or dns.rdatatype.RdataType.make(qtype)  # make() costs ~3 us a reply
    values: set[str] = set()
    ttl = 0xFFFFFFFF
    for _ in range(ancount):
        if parser.get_bytes(2) != _TO_QUESTION:
            return None
        rtype, rclass, rttl, rdlen = parser.get_struct(_RR.format)
        if rtype != qtype or rclass != 1:
            return None
        with parser.restrict_to(rdlen):
            values.add(dns.rdata.from_wire_parser(dns.rdataclass.IN, rdtype, parser).to_text().lower())
        ttl = min(ttl, 0 if rttl > 0x7FFFFFFF else rttl)  # RFC 2181 §8, as dnspython reads it
    if not _set_aside(parser, nscount, False) or not _set_aside(parser, arcount, True):
        return None
    if not values:
        return Outcome.NODATA, None, ()
    return Outcome.OK, ttl, tuple(sorted(values))


def _set_aside(parser: dns.wire.Parser, count: int, additional: bool) -> bool:
    """Read count records as from_wire reads them (a malformed one makes the reply malformed) and drop them;
    False for what only from_wire judges: an OPT out of place, with options or extended rcode bits, a TSIG."""
    opt = False
    for _ in range(count):
        owner = parser.get_name(None, True)
        rtype, rclass, ttl, rdlen = parser.get_struct(_RR.format)
        if rtype == 41:  # OPT
            if not additional or opt or len(owner) != 1 or ttl >> 24 or rdlen:
                return False
            opt = True
        elif rtype == 250:  # TSIG
            return False
        else:
            with parser.restrict_to(rdlen):
                dns.rdata.from_wire_parser(rclass, rtype, parser)
    return True


def classify(reply: dns.message.Message, name: str, rdtype: str, server: str, tcp: bool) -> Lookup:
    """name: the absolute name asked, lower-cased, with its trailing dot; rdtype: its type's mnemonic."""
    rcode = reply.rcode()
    rtext = dns.rcode.to_text(rcode)
    if rcode != dns.rcode.NOERROR:
        outcome = _RCODES.get(rcode, Outcome.ERROR)
        detail = "" if outcome in (Outcome.NXDOMAIN, Outcome.SERVFAIL) else f"{server}: {rtext}"
        return Lookup(name, rdtype, outcome, server=server, tcp=tcp, detail=detail, rcode=rtext)
    # The question matched ours byte for byte, so the parsed question name is the one asked.
    qname = reply.question[0].name if reply.question else dns.name.from_text(name)
    qtype = _QTYPES.get(rdtype) or dns.rdatatype.from_text(rdtype)
    answer = reply.answer
    one = answer[0] if len(answer) == 1 else None
    if one is not None and one.rdtype == qtype and one.rdclass == dns.rdataclass.IN and one.name == qname:
        rrset, problem = one, ""  # the common case: one RRset, the one asked for
    else:
        rrset, problem = _follow_cnames(answer, qname, qtype)
    if problem:
        return Lookup(name, rdtype, Outcome.ERROR, server=server, tcp=tcp, rcode=rtext, detail=f"{server}: {problem}")
    if rrset is None:
        return Lookup(name, rdtype, Outcome.NODATA, server=server, tcp=tcp, rcode=rtext)
    return Lookup(name, rdtype, Outcome.OK, tuple(sorted(rd.to_text().lower() for rd in rrset)), rrset.ttl,
                  server, tcp, rcode=rtext)

def _follow_cnames(answer: list, qname: dns.name.Name, qtype: int) -> tuple[Any, str]:
    """The RRset of the type asked at the end of the answer's CNAME chain from qname (None when the chain
    ends without one), or what is wrong with the chain: a loop, or one longer than MAX_CNAME_CHAIN."""
    by_owner: dict = {}
    for rrset in answer:
        if rrset.rdclass == dns.rdataclass.IN:
            by_owner.setdefault(rrset.name, {})[rrset.rdtype] = rrset
    owner, seen = qname, [qname]
    for _ in range(MAX_CNAME_CHAIN + 1):
        sets = by_owner.get(owner, {})
        if qtype in sets:
            return sets[qtype], ""
        cname = sets.get(dns.rdatatype.CNAME)
        if cname is None:
            return None, ""
        owner = cname[0].target
        if owner in seen:
            return None, "CNAME loop (" + " -> ".join(n.to_text() for n in [*seen, owner]) + ")"
        seen.append(owner)
    return None, f"CNAME chain longer than {MAX_CNAME_CHAIN}"
