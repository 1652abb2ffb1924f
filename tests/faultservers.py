"""Misbehaving servers for the fault catalogue: a DNS server and HTTP "pods" on loopback, each with a
chosen fault, on an asyncio loop in a daemon thread (the real CLI runs in a subprocess against them).

The DNS server answers a 3-pod headless Service (`nginx.default.svc.cluster.local`, pods web-0..2 on
127.77.<k>.1..3, SRV port `http_port`, PTRs, the schema TXT) like CoreDNS would, except where its
fault says otherwise. Faults apply to every question unless `only` names a type (e.g. "SRV").
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import os
import socket
import struct
import threading
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

ZONE = "cluster.local."
SVC = "nginx.default.svc." + ZONE
SRV = "_web._tcp." + SVC
_subnet = itertools.count(os.getpid())
_hosts = itertools.count(1)


def free_port(host: str) -> int:
    """A TCP port nothing listens on at host (for a closed-port case, or the pods' port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Loop:
    """An asyncio loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.call(cancel_all(), timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@dataclass
class World:
    """The records the fault DNS server serves."""

    pods: int = 3
    http_port: int = 8080
    subnet: int = field(default_factory=lambda: next(_subnet) % 250 + 1)  # per process and world: no clashes
    extra_service_ips: int = 0  # thousands of records: more A records for the Service than pods

    def ip(self, i: int) -> str:
        return f"127.77.{self.subnet}.{i + 1}"

    def pod_fqdn(self, i: int) -> str:
        return f"web-{i}.{SVC}"

    def rrsets(self) -> dict[tuple[str, str], list[str]]:
        out: dict[tuple[str, str], list[str]] = {}
        ips = [self.ip(i) for i in range(self.pods)]
        ips += [f"127.78.{k // 250}.{k % 250 + 1}" for k in range(self.extra_service_ips)]
        out[(SVC, "A")] = ips
        out[(SRV, "SRV")] = [f"0 100 {self.http_port} {self.pod_fqdn(i)}" for i in range(self.pods)]
        out[("dns-version." + ZONE, "TXT")] = ['"1.1.0"']
        for i in range(self.pods):
            out[(self.pod_fqdn(i), "A")] = [self.ip(i)]
            rev = ".".join(reversed(self.ip(i).split("."))) + ".in-addr.arpa."
            out[(rev, "PTR")] = [self.pod_fqdn(i)]
        return out


class FaultDns:
    """fault: None (answer well), "silent", "servfail", "refused", "formerr", "notimp", "nxdomain",
    "garbage", "wrong-id", "wrong-question", "echo" (the query sent back as it came: QR clear), "drop-first" (the first datagram of each question
    is lost) (each alone, or "+real" after it: the forgery first, then the
    real answer), "tc" (UDP says truncated; `tcp` says what TCP does: None no listener, "ok",
    "close-mid", "trickle", "tc", "servfail"), "malformed", "cname-loop", "slow"."""

    def __init__(self, loop: Loop, world: World | None = None, fault: str | None = None,
                 only: str | None = None, tcp: str | None = "ok"):
        self.lp, self.world = loop, world or World()
        self.fault, self.only, self.tcp_mode = fault, only, tcp
        # An address of its own (per process and server): no other listener shares its TCP port.
        self.host = f"127.79.{os.getpid() % 250 + 1}.{next(_hosts) % 250 + 1}"
        self.port = 0
        self.queries = 0
        self._records = self.world.rrsets()
        self._servers: list = []
        self._dropped: set = set()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __enter__(self) -> "FaultDns":
        self.lp.call(self._start())
        return self

    def __exit__(self, *exc) -> None:
        self.lp.call(self._stop())

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        outer = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport) -> None:
                self.transport = transport

            def datagram_received(self, data, addr) -> None:
                outer.queries += 1
                asyncio.ensure_future(outer._udp(self.transport, data, addr))

        transport, _ = await loop.create_datagram_endpoint(Udp, local_addr=(self.host, 0))
        self._servers.append(transport)
        self.port = transport.get_extra_info("sockname")[1]
        if self.tcp_mode is not None:
            self._servers.append(await asyncio.start_server(self._tcp, self.host, self.port))

    async def _stop(self) -> None:
        for s in self._servers:
            s.close()

    def _applies(self, q: dns.message.Message) -> bool:
        return self.fault is not None and (self.only is None or dns.rdatatype.to_text(q.question[0].rdtype) == self.only)

    def answer(self, q: dns.message.Message, payload: int | None) -> dns.message.Message:
        r = dns.message.make_response(q)
        r.flags |= dns.flags.AA
        qname, qtype = q.question[0].name.to_text().lower(), dns.rdatatype.to_text(q.question[0].rdtype)
        if self._applies(q) and self.fault == "cname-loop":
            r.answer.append(dns.rrset.from_text(qname, 5, "IN", "CNAME", "loop-a." + SVC))
            r.answer.append(dns.rrset.from_text("loop-a." + SVC, 5, "IN", "CNAME", qname))
            return r
        values = self._records.get((qname, qtype))
        if values:
            r.answer.append(dns.rrset.from_text_list(qname, 5, "IN", qtype, values))
        elif not any(name == qname for name, _ in self._records):
            r.set_rcode(dns.rcode.NXDOMAIN)
        return r

    async def _udp(self, transport, data: bytes, addr) -> None:
        try:
            q = dns.message.from_wire(data)
        except Exception:
            return
        apply = self._applies(q)
        fault = self.fault if apply else None
        if fault == "silent":
            return
        if fault == "drop-first" and (key := (q.question[0].name, q.question[0].rdtype)) not in self._dropped:
            self._dropped.add(key)
            return
        if fault == "slow":
            await asyncio.sleep(0.3)
        if fault == "garbage":
            transport.sendto(bytes((i * 37 + 11) % 256 for i in range(40)), addr)
            return
        rcodes = {"servfail": dns.rcode.SERVFAIL, "refused": dns.rcode.REFUSED, "formerr": dns.rcode.FORMERR,
                  "notimp": dns.rcode.NOTIMP, "nxdomain": dns.rcode.NXDOMAIN}
        base = (fault or "").split("+")[0]
        if base in rcodes:
            r = dns.message.make_response(q)
            r.set_rcode(rcodes[base])
            transport.sendto(r.to_wire(), addr)
            return
        real = self.answer(q, q.payload)
        if base == "wrong-id":
            forged = dns.message.make_response(q)
            forged.id = (q.id + 1) % 65536
            forged.answer.append(dns.rrset.from_text(q.question[0].name, 5, "IN", "A", "127.66.66.66"))
            transport.sendto(forged.to_wire(), addr)
        elif base == "wrong-question":
            other = dns.message.make_query("evil." + SVC, "A")
            other.id = q.id
            forged = dns.message.make_response(other)
            forged.answer.append(dns.rrset.from_text("evil." + SVC, 5, "IN", "A", "127.66.66.66"))
            transport.sendto(forged.to_wire(), addr)
        elif base == "echo":
            transport.sendto(data, addr)
        if base in ("wrong-id", "wrong-question", "echo"):
            if not fault.endswith("+real"):
                return
            await asyncio.sleep(0.05)
        if fault == "tc":
            tc = dns.message.make_response(q)
            tc.flags |= dns.flags.TC
            transport.sendto(tc.to_wire(), addr)
            return
        if fault == "malformed":
            wire = real.to_wire(max_size=65535)
            transport.sendto(wire[:12 + len(q.question[0].name.to_wire()) + 4] + b"\xc0", addr)  # cut mid-answer
            return
        wire = real.to_wire(max_size=65535)
        if len(wire) > max(512, q.payload if q.edns >= 0 else 512):
            tc = dns.message.make_response(q)
            tc.flags |= dns.flags.TC
            wire = tc.to_wire()
        transport.sendto(wire, addr)

    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            size = struct.unpack("!H", await reader.readexactly(2))[0]
            q = dns.message.from_wire(await reader.readexactly(size))
            self.queries += 1
            mode = self.tcp_mode if self._applies(q) else "ok"
            r = self.answer(q, None)
            if mode == "servfail":
                r = dns.message.make_response(q)
                r.set_rcode(dns.rcode.SERVFAIL)
            if mode == "tc":
                r.flags |= dns.flags.TC
            wire = r.to_wire(max_size=65535)
            framed = struct.pack("!H", len(wire)) + wire
            if mode == "close-mid":
                writer.write(framed[: len(framed) // 2])
                await writer.drain()
            elif mode == "trickle":
                for b in framed:
                    writer.write(bytes([b]))
                    await writer.drain()
                    await asyncio.sleep(1.0)
            else:
                writer.write(framed)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


# --------------------------------------------------------------------------- HTTP pods

def _http(status: str, body: bytes, headers: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n{headers}\r\n"
            .encode() + body)


class FaultPods:
    """HTTP "pods" on every IP of `world`, port world.http_port: pod web-i answers its name, except
    the pods in `faulty` (indexes), which do `fault`: "hang", "redirect", "big" (10 MB), "chunk-forever",
    "trickle", "gzip-bomb", "reset", "short-body" (Content-Length larger than what is sent), "long-body"
    (more bytes than Content-Length), "garbage" (no HTTP at all), "bad-header", "400"."""

    def __init__(self, loop: Loop, world: World, fault: str, faulty=(1,)):
        self.lp, self.world, self.fault, self.faulty = loop, world, fault, set(faulty)
        self._servers: list = []

    def __enter__(self) -> "FaultPods":
        if self.fault == "gzip-bomb":
            _bomb()  # built before the run, not on the server's loop while the other pods answer
        self.lp.call(self._start())
        return self

    def __exit__(self, *exc) -> None:
        self.lp.call(self._stop())

    async def _start(self) -> None:
        for i in range(self.world.pods):
            handler = self._make(i)
            self._servers.append(await asyncio.start_server(handler, self.world.ip(i), self.world.http_port))

    async def _stop(self) -> None:
        for s in self._servers:
            s.close()

    def _make(self, i: int):
        fault = self.fault if i in self.faulty else None
        name = f"web-{i}".encode()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.readuntil(b"\r\n\r\n")
                if fault is None:
                    writer.write(_http("200 OK", name))
                elif fault == "hang":
                    await asyncio.sleep(3600)
                elif fault == "redirect":
                    writer.write(_http("302 Found", b"", "Location: http://example.invalid/elsewhere\r\n"))
                elif fault == "big":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n")
                    chunk = name + b"x" * 65531
                    for _ in range(160):
                        writer.write(chunk)
                        await writer.drain()
                elif fault == "chunk-forever":
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    while True:
                        writer.write(b"4\r\n" + name[:4] + b"\r\n")
                        await writer.drain()
                        await asyncio.sleep(0.01)
                elif fault == "trickle":
                    for b in _http("200 OK", name):
                        writer.write(bytes([b]))
                        await writer.drain()
                        await asyncio.sleep(1.0)
                elif fault == "gzip-bomb":
                    bomb = _bomb()
                    writer.write(_http("200 OK", bomb, "Content-Encoding: gzip\r\n"))
                elif fault == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                elif fault == "short-body":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + name)
                elif fault == "long-body":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" + name + b"-and-more")
                    await writer.drain()
                    await asyncio.sleep(0.2)
                elif fault == "garbage":
                    writer.write(b"\x00\x01\x02 this is not HTTP\r\n\r\n")
                elif fault == "bad-header":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: twelve\r\n\r\n" + name)
                elif fault == "400":
                    writer.write(_http("400 Bad Request", b"no"))
                await writer.drain()
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                pass
            finally:
                writer.close()

        return handle


_BOMB: list[bytes] = []


def _bomb() -> bytes:
    """64 MiB of zeros as ~64 KiB of gzip (built once)."""
    if not _BOMB:
        _BOMB.append(gzip.compress(b"\0" * (64 * 1024 * 1024), 9))
    return _BOMB[0]
