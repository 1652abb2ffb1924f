"""The asyncio DNS client: every question of a run at once, each (name, type) asked once (concurrent askers
share one in-flight query), answers classified by dnsquery.py under its rules.

All queries to one nameserver share one connected UDP socket; TCP is a connection per question, or one
pipelined connection per server for a client that asks one server thousands of questions (--resolvers).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Awaitable, Callable

from ssdns.dnsquery import (
    ATTEMPT_TIMEOUT,
    MAX_MESSAGE,
    TRIES_PER_SERVER,
    DEFINITE,
    Failed,
    Lookup,
    cannot_send,
    classify_wire,
    cut_short,
    elsewhere,
    failed,
    free_id,
    matches,
    not_asked,
    over_tcp,
    plan,
    query_bytes,
    question_or_error,
    random_id,
    server_budget,
    settle,
    tcp_failure,
    udp_failure,
)
from ssdns.target import Nameserver

TCP_IN_FLIGHT = 16  # TCP connections open at once per client
MAX_REOPENS = 64  # pipelined TCP: connections a client re-opens after the server closed one


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
            if entry is None or not matches(data, entry[0]) or entry[1].done():
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
        return free_id(self.waiting)


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
                if entry is not None and matches(wire, entry[0]) and not entry[1].done():
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


def _expire(fut: asyncio.Future[bytes]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


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
            task = self._cache[key] = asyncio.ensure_future(self._lookup(*key, *plan(rdtype, records, self.transport)))
        return task

    async def ask(self, name: str, rdtype: str, records: int = 0) -> Lookup:
        """lookup() without its task and its cache, for a caller that asks each question once and awaits it
        there (a resolver leg's askers: a task per question was ~8% of an every-resolver run); not in lookups()."""
        return await self._lookup(name.lower(), rdtype, *plan(rdtype, records, self.transport))

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
        question = question_or_error(name, rdtype)
        if isinstance(question, Lookup):
            return question
        said: list[Lookup] = []
        async with self._sem:
            start = time.monotonic()  # the answer's time, not the wait for a slot (dns.latency judges it)
            for i, server in enumerate(self.nameservers):
                left = self.deadline - time.monotonic()
                if left <= 0.01:
                    said.append(not_asked(name, rdtype, server))
                    break
                budget = server_budget(self.patience, left, len(self.nameservers) - i)
                said.append(await self._ask(name, rdtype, question, server, budget, tcp_first, size))
                # A definite answer ends the search; SERVFAIL, REFUSED, errors and silence try the next server.
                if said[-1].outcome in DEFINITE:
                    break
        return settle(said, (time.monotonic() - start) * 1000)

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
            return over_tcp(reply, wire, where, tcp_first, size)
        except Failed as exc:
            return failed(name, rdtype, where, tcp, exc)

    def _classify(self, wire: bytes, name: str, rdtype: str, where: str, tcp: bool) -> Lookup:
        if self.memo is None:
            return classify_wire(wire, name, rdtype, where, tcp)
        seen = self.memo.get(wire[2:])
        if seen is None:
            seen = classify_wire(wire, name, rdtype, where, tcp)
            if seen.detail:  # worded for this server: not shared
                return seen
            self.memo[wire[2:]] = seen
        return elsewhere(seen, where, tcp)

    def _channel(self, server: Nameserver) -> _UdpChannel:
        chan = self._channels.get(server)
        if chan is None:
            try:
                chan = self._channels[server] = _UdpChannel.to(server)
            except OSError as exc:
                raise cannot_send(server, exc) from None
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
        except OSError as exc:  # TimeoutError too: silence
            raise udp_failure(server, exc, chan.ignored) from None
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
                    raise tcp_failure(server, TimeoutError(), self.transport) from None
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
        qid = free_id(pipe.waiting)
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
                qid = random_id()
                msg = query_bytes(qid, question)
                self.queries_sent += 1
                writer.write(struct.pack("!H", len(msg)) + msg)
                while True:  # a reply that is not ours (wrong ID or question) is skipped, as over UDP
                    (size,) = struct.unpack("!H", await reader.readexactly(2))
                    wire = await reader.readexactly(size)
                    got += size
                    if len(wire) >= 12 and int.from_bytes(wire[:2], "big") == qid and matches(wire, question):
                        return wire
        except asyncio.IncompleteReadError as exc:
            raise cut_short(server, len(exc.partial), exc.expected or 0) from None
        except OSError as exc:  # TimeoutError too
            raise tcp_failure(server, exc, self.transport, got) from None
        finally:
            if writer is not None:
                writer.close()


