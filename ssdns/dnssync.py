"""The blocking DNS client: dnsclient.DnsClient's twin for a small DNS-only check, which never imports asyncio
(~30 ms of a 0.1 s start-up). It follows the same rules of a lookup (dnsquery.py) and differs only in how it
waits: one selector loop per ask() drives every question of the batch, as the asyncio client's loop does.

    with BlockingClient(nameservers, deadline) as dns:
        svc_a, srv = dns.ask([(svc, "A", 0), (srv_name, "SRV", pods)])

All queries to one nameserver share one connected non-blocking UDP socket; TCP is a connection per question,
non-blocking in the same loop, so one slow TCP answer never stalls the UDP questions' resends and failovers.
"""

from __future__ import annotations

import errno
import heapq
import os
import selectors
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable

from ssdns.dnsquery import (
    ATTEMPT_TIMEOUT,
    DEFINITE,
    MAX_MESSAGE,
    TRIES_PER_SERVER,
    Failed,
    Lookup,
    cannot_send,
    classify_wire,
    cut_short,
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

TCP_IN_FLIGHT = 16  # TCP connections open at once per client (as dnsclient: a burst past a listen backlog loses SYNs)
_DRAIN = 256  # datagrams read per wake-up of a UDP socket: timers run between bursts

_Handler = Callable[[int], None]


def _address(server: Nameserver, kind: socket.SocketKind) -> tuple[socket.AddressFamily, tuple]:
    # Only IP addresses (target.parse_nameserver): no name is looked up here.
    family, _, _, _, addr = socket.getaddrinfo(server.host, server.port, type=kind, flags=socket.AI_NUMERICHOST)[0]
    return family, addr


class _Question:
    """One lookup in progress: what was said so far, and its current try (UDP or TCP, to said's next server)."""

    __slots__ = ("begun", "budget", "chan", "conn", "key", "mode", "qid", "question", "said", "sends", "server",
                 "size", "start", "tcp_first", "timer", "until", "wire")

    def __init__(self, key: tuple[str, str], question: bytes, tcp_first: bool, size: int) -> None:
        self.key, self.question, self.tcp_first, self.size = key, question, tcp_first, size
        self.said: list[Lookup] = []
        self.start = 0.0
        self.server: Nameserver | None = None
        self.mode = ""  # udp | tcp-wait (for a connection slot) | tcp | "" (between tries, or settled)
        self.timer = 0  # the sequence number of its one live timer (0: none)
        self.chan: _Udp | None = None
        self.qid = 0
        self.wire = b""
        self.begun = self.budget = 0.0
        self.until = 0.0  # the end of its TCP try (its wait for a connection too)
        self.sends = 0
        self.conn: _Tcp | None = None


class _Udp:
    """One connected non-blocking UDP socket to one nameserver, shared by every query to it."""

    def __init__(self, server: Nameserver, sock: socket.socket) -> None:
        self.server, self.sock = server, sock
        self.waiting: dict[int, _Question] = {}
        self.ignored = 0  # datagrams that answered no outstanding question
        self.unsent: deque[bytes] = deque()  # datagrams the socket's buffer had no room for, sent when it has


class _Tcp:
    """One TCP connection carrying one question."""

    def __init__(self, sock: socket.socket, q: _Question) -> None:
        self.sock, self.q = sock, q
        self.connected = False
        self.out = b""
        self.buf = bytearray()
        self.qid = 0
        self.got = 0  # bytes of complete replies read (those not ours too)


class BlockingClient:
    """Asks the configured nameservers, in order, until one gives a usable answer; each (name, type) once."""

    def __init__(self, nameservers: tuple[Nameserver, ...], deadline: float, concurrency: int = 128,
                 transport: str = "udp", patience: float = ATTEMPT_TIMEOUT * TRIES_PER_SERVER) -> None:
        self.nameservers = tuple(nameservers)
        self.deadline = deadline  # time.monotonic() value
        self.concurrency = concurrency  # lookups outstanding at once (and IDs per socket)
        self.transport = transport  # udp: UDP, TCP when truncated; tcp: every query over TCP
        self.patience = patience  # seconds one nameserver gets per question (less when less time is left)
        self.queries_sent = 0
        self._cache: dict[tuple[str, str], Lookup | None] = {}  # None: being asked
        self._sel = selectors.DefaultSelector()
        self._channels: dict[Nameserver, _Udp] = {}
        self._tcp_addr: dict[Nameserver, tuple[socket.AddressFamily, tuple]] = {}
        self._queued: deque[_Question] = deque()  # waiting for one of `concurrency` slots
        self._active: set[_Question] = set()
        self._tcp_open = 0
        self._tcp_queued: deque[_Question] = deque()  # waiting for one of TCP_IN_FLIGHT connections
        self._timers: list[tuple[float, int, _Question]] = []  # a heap; stale entries skipped (q.timer moved on)
        self._seq = 0
        self._closed = False

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ask(self, questions: Iterable[tuple[str, str, int]]) -> list[Lookup]:
        """(name, rdtype, records) -> their Lookups, in the same order, once every one is settled (by the deadline).
        records: how many records the answer is expected to hold (a large answer goes over TCP at once). A question
        asked before (by name.lower() and type) is not asked again: its Lookup is the one it got then."""
        keys = []
        for name, rdtype, records in questions:
            key = (name.lower(), rdtype)
            keys.append(key)
            if key in self._cache:
                continue
            question = question_or_error(*key)
            if isinstance(question, Lookup):
                self._cache[key] = question
                continue
            self._cache[key] = None
            self._queued.append(_Question(key, question, *plan(rdtype, records, self.transport)))
        try:
            self._run()
        finally:
            if self._active or self._queued:  # interrupted (Ctrl-C): nothing of this batch stays half-asked
                self._abandon()
        return [lk for lk in (self._cache[k] for k in keys) if lk is not None]

    def lookups(self) -> list[Lookup]:
        """Every Lookup this client settled, in the order first asked."""
        return [lk for lk in self._cache.values() if lk is not None]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._abandon()
        for chan in self._channels.values():
            self._sel.unregister(chan.sock)
            chan.sock.close()
        self._channels.clear()
        self._sel.close()

    # The loop.

    def _run(self) -> None:
        # Bounded in time: every try has a timer that ends it by the deadline (a try after a truncated answer gets
        # at least 10 ms, as dnsclient's), and each turn fires the timers due before it reads anything.
        while True:
            while self._queued and len(self._active) < self.concurrency:
                self._begin(self._queued.popleft())
            if not self._active:
                return
            wait = self._fire_timers()
            if wait is None:  # fired the last ones: let queued questions begin
                continue
            for key, mask in self._sel.select(wait):
                key.data(mask)

    def _fire_timers(self) -> float | None:
        """Fire the timers that are due; seconds to the next one, None when one fired (the caller looks again)."""
        timers, fired = self._timers, False
        now = time.monotonic()
        while timers and (timers[0][0] <= now or timers[0][2].timer != timers[0][1]):
            _, seq, q = heapq.heappop(timers)
            if q.timer == seq:
                q.timer = 0
                fired = True
                self._expire(q)
        if fired:
            return None
        # Every try has a timer, so an active question always has one; the deadline bounds the wait regardless.
        return max(0.0, (timers[0][0] if timers else self.deadline) - now)

    def _arm(self, q: _Question, when: float) -> None:
        self._seq += 1
        q.timer = self._seq
        heapq.heappush(self._timers, (when, self._seq, q))

    def _abandon(self) -> None:
        self._tcp_queued.clear()  # first: a connection closed below must not open a queued one
        for q in [*self._active, *self._queued]:
            self._stop_try(q)
            if self._cache.get(q.key, True) is None:
                del self._cache[q.key]  # asked again by the next ask()
        self._active.clear()
        self._queued.clear()
        self._timers.clear()

    # One lookup: nameservers in order, a budget each, a definite answer ends the search.

    def _begin(self, q: _Question) -> None:
        self._active.add(q)
        q.start = time.monotonic()  # the answer's time, not the wait for a slot (dns.latency judges it)
        self._next_server(q)

    def _next_server(self, q: _Question) -> None:
        i = len(q.said)  # one Lookup per server asked
        if i and (q.said[-1].outcome in DEFINITE or i == len(self.nameservers)):
            self._settle(q)
            return
        server = self.nameservers[i]
        left = self.deadline - time.monotonic()
        if left <= 0.01:
            q.said.append(not_asked(q.key[0], q.key[1], server))
            self._settle(q)
            return
        q.server = server
        budget = server_budget(self.patience, left, len(self.nameservers) - i)
        if q.tcp_first:
            self._tcp_start(q, budget)
        else:
            self._udp_start(q, budget)

    def _said(self, q: _Question, lookup: Lookup) -> None:
        q.mode, q.timer = "", 0
        q.said.append(lookup)
        self._next_server(q)

    def _failed(self, q: _Question, exc: Failed, tcp: bool) -> None:
        self._said(q, failed(q.key[0], q.key[1], str(q.server), tcp, exc))

    def _settle(self, q: _Question) -> None:
        self._cache[q.key] = settle(q.said, (time.monotonic() - q.start) * 1000)
        self._active.discard(q)

    def _expire(self, q: _Question) -> None:
        """Its try's timer: the next UDP send, or the end of its budget."""
        server = q.server
        if q.mode == "udp" and q.sends < TRIES_PER_SERVER:
            self._udp_send(q)
            return
        if q.mode == "udp":
            chan = q.chan
            assert chan is not None
            chan.waiting.pop(q.qid, None)
            self._failed(q, udp_failure(server, TimeoutError(), chan.ignored), False)
            return
        got = q.conn.got if q.conn is not None else 0
        self._stop_try(q)
        self._failed(q, tcp_failure(server, TimeoutError(), self.transport, got), True)

    def _stop_try(self, q: _Question) -> None:
        if q.mode == "udp" and q.chan is not None:
            q.chan.waiting.pop(q.qid, None)
        elif q.mode == "tcp-wait" and q in self._tcp_queued:
            self._tcp_queued.remove(q)
        elif q.mode == "tcp" and q.conn is not None:
            self._tcp_close(q.conn)
        q.mode, q.timer = "", 0

    # UDP: one socket per nameserver; resends at even steps of the budget under the same ID.

    def _channel(self, server: Nameserver) -> _Udp:
        chan = self._channels.get(server)
        if chan is None:
            try:
                family, addr = _address(server, socket.SOCK_DGRAM)
                sock = socket.socket(family, socket.SOCK_DGRAM)
            except OSError as exc:
                raise cannot_send(server, exc) from None
            try:
                sock.setblocking(False)
                sock.connect(addr)
            except OSError as exc:
                sock.close()
                raise cannot_send(server, exc) from None
            chan = self._channels[server] = _Udp(server, sock)
            self._sel.register(sock, selectors.EVENT_READ, self._udp_handler(chan))
        return chan

    def _udp_start(self, q: _Question, budget: float) -> None:
        assert q.server is not None
        try:
            chan = self._channel(q.server)
        except Failed as exc:
            self._failed(q, exc, False)
            return
        q.mode, q.chan = "udp", chan
        q.qid = free_id(chan.waiting)
        chan.waiting[q.qid] = q
        q.wire = query_bytes(q.qid, q.question)
        q.begun, q.budget, q.sends = time.monotonic(), budget, 0
        self._udp_send(q)

    def _udp_send(self, q: _Question) -> None:
        """The next of TRIES_PER_SERVER sends (under the same ID, so a late answer to an earlier one still counts),
        and the timer of the one after it (or of the end of the budget)."""
        q.sends += 1
        self._arm(q, q.begun + q.budget * q.sends / TRIES_PER_SERVER)
        self.queries_sent += 1
        chan = q.chan
        assert chan is not None
        if chan.unsent:  # keep the order
            chan.unsent.append(q.wire)
            return
        try:
            chan.sock.send(q.wire)
        except (BlockingIOError, InterruptedError):
            chan.unsent.append(q.wire)
            self._sel.modify(chan.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self._udp_handler(chan))
        except OSError as exc:
            self._udp_error(chan, exc)

    def _udp_handler(self, chan: _Udp) -> _Handler:
        def handle(mask: int) -> None:
            if mask & selectors.EVENT_WRITE:
                self._udp_writable(chan)
            if mask & selectors.EVENT_READ:
                self._udp_readable(chan)
        return handle

    def _udp_writable(self, chan: _Udp) -> None:
        while chan.unsent:
            try:
                chan.sock.send(chan.unsent[0])
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                chan.unsent.popleft()
                self._udp_error(chan, exc)
                continue
            chan.unsent.popleft()
        self._sel.modify(chan.sock, selectors.EVENT_READ, self._udp_handler(chan))

    def _udp_readable(self, chan: _Udp) -> None:
        for _ in range(_DRAIN):
            try:
                data = chan.sock.recv(MAX_MESSAGE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ICMP port unreachable on a connected socket: ConnectionRefusedError
                self._udp_error(chan, exc)
                return
            q = chan.waiting.get(int.from_bytes(data[:2], "big")) if len(data) >= 12 else None
            if q is None or not matches(data, q.question):
                chan.ignored += 1
                continue
            del chan.waiting[q.qid]
            self._udp_reply(q, data)

    def _udp_error(self, chan: _Udp, exc: OSError) -> None:
        # Nothing listens there (or the host is unreachable): every question waiting on it learns it now.
        waiters = list(chan.waiting.values())
        chan.waiting.clear()
        for q in waiters:
            self._failed(q, udp_failure(chan.server, exc, chan.ignored), False)

    def _udp_reply(self, q: _Question, wire: bytes) -> None:
        if wire[2] & 0x02 == 0:  # TC clear: the whole answer
            self._said(q, classify_wire(wire, q.key[0], q.key[1], str(q.server), False))
            return
        # Truncated: the whole answer over TCP, from the same server, in what is left of the deadline.
        self._tcp_start(q, max(0.01, min(ATTEMPT_TIMEOUT, self.deadline - time.monotonic())))

    # TCP: a non-blocking connection per question, at most TCP_IN_FLIGHT at once; the wait for one counts.

    def _tcp_start(self, q: _Question, timeout: float) -> None:
        q.mode, q.conn = "tcp-wait", None
        q.until = time.monotonic() + timeout
        self._arm(q, q.until)
        if self._tcp_open < TCP_IN_FLIGHT:
            self._tcp_connect(q)
        else:
            self._tcp_queued.append(q)

    def _tcp_connect(self, q: _Question) -> None:
        server = q.server
        assert server is not None
        sock = None
        try:
            addr = self._tcp_addr.get(server)
            if addr is None:
                addr = self._tcp_addr[server] = _address(server, socket.SOCK_STREAM)
            sock = socket.socket(addr[0], socket.SOCK_STREAM)
            sock.setblocking(False)
            err = sock.connect_ex(addr[1])
            if err not in (0, errno.EINPROGRESS):
                raise OSError(err, os.strerror(err))  # OSError picks the subclass (ConnectionRefusedError, ...)
        except OSError as exc:
            if sock is not None:
                sock.close()
            self._stop_try(q)
            self._failed(q, tcp_failure(server, exc, self.transport), True)
            return
        q.mode = "tcp"
        q.conn = conn = _Tcp(sock, q)
        self._tcp_open += 1
        self._sel.register(sock, selectors.EVENT_WRITE, self._tcp_handler(conn))

    def _tcp_handler(self, conn: _Tcp) -> _Handler:
        def handle(mask: int) -> None:
            q = conn.q
            try:
                if mask & selectors.EVENT_WRITE:
                    self._tcp_writable(conn)
                if mask & selectors.EVENT_READ and conn.q.conn is conn:
                    wire = self._tcp_readable(conn)
                    if wire is not None:
                        self._tcp_close(conn)
                        reply = classify_wire(wire, q.key[0], q.key[1], str(q.server), True)
                        self._said(q, over_tcp(reply, wire, str(q.server), q.tcp_first, q.size))
            except Failed as exc:
                self._tcp_close(conn)
                self._failed(q, exc, True)
            except OSError as exc:
                self._tcp_close(conn)
                self._failed(q, tcp_failure(q.server, exc, self.transport, conn.got), True)
        return handle

    def _tcp_writable(self, conn: _Tcp) -> None:
        if not conn.connected:
            err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))
            conn.connected = True
            conn.qid = random_id()
            msg = query_bytes(conn.qid, conn.q.question)
            conn.out = struct.pack("!H", len(msg)) + msg
            self.queries_sent += 1
        try:
            sent = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        conn.out = conn.out[sent:]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.out else 0)
        self._sel.modify(conn.sock, events, self._tcp_handler(conn))

    def _tcp_readable(self, conn: _Tcp) -> bytes | None:
        """Our reply once it is complete (a reply that is not ours, by ID or question, is skipped, as over UDP)."""
        try:
            data = conn.sock.recv(MAX_MESSAGE + 2)
        except (BlockingIOError, InterruptedError):
            return None
        buf = conn.buf
        if not data:  # closed: mid-answer, or before one
            if len(buf) < 2:
                raise cut_short(conn.q.server, len(buf), 2)
            raise cut_short(conn.q.server, len(buf) - 2, int.from_bytes(buf[:2], "big"))
        buf += data
        while len(buf) >= 2:
            size = int.from_bytes(buf[:2], "big")
            if len(buf) < 2 + size:
                break
            wire = bytes(buf[2:2 + size])
            del buf[:2 + size]
            conn.got += size
            if len(wire) >= 12 and int.from_bytes(wire[:2], "big") == conn.qid and matches(wire, conn.q.question):
                return wire
        return None

    def _tcp_close(self, conn: _Tcp) -> None:
        if conn.q.conn is not conn:
            return
        conn.q.conn = None
        self._sel.unregister(conn.sock)
        conn.sock.close()
        self._tcp_open -= 1
        while self._tcp_queued and self._tcp_open < TCP_IN_FLIGHT:
            q = self._tcp_queued.popleft()
            if q.until - time.monotonic() > 0.01:  # else its time is (nearly) up: its timer says so
                self._tcp_connect(q)
