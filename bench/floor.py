#!/usr/bin/env python3
"""The floor: the same DNS queries and HTTP requests as a full `ssdns check`, sent by the least code
that can send them, judging nothing. What ssdns costs above this is the cost of its libraries and of
judging; the bench reports ssdns's wall time as a ratio to this script's.

    floor.py NS_HOST NS_PORT HTTP_PORT N

Asks, as ssdns does: the Service's A (over TCP when large) and AAAA, the SRV set (TCP when large), the
schema TXT, every pod's A over one shared UDP socket, then the PTR of each pod's IP, and one HTTP GET
per pod (asyncio streams, read to EOF). At most 128 DNS queries and 64 HTTP requests in flight, as
ssdns. No parsing beyond taking the IP from an A answer's last 4 bytes. Prints one summary line.
Loopback only; every wait is bounded (5 s per query or request).
"""

from __future__ import annotations

import asyncio
import random
import struct
import sys

SVC = "nginx.default.svc.cluster.local."
TIMEOUT = 5.0


def question(name: str, qtype: int) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0" + struct.pack("!HH", qtype, 1)


class Udp(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[bytes]] = {}

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        fut = self.waiting.pop(int.from_bytes(data[:2], "big"), None)
        if fut is not None and not fut.done():
            fut.set_result(data)


async def main(host: str, port: int, http_port: int, n: int) -> None:
    loop = asyncio.get_running_loop()
    transport, udp = await loop.create_datagram_endpoint(Udp, remote_addr=(host, port))
    dns_sem, http_sem = asyncio.Semaphore(128), asyncio.Semaphore(64)
    counts = {"udp": 0, "tcp": 0, "http": 0, "bytes": 0}

    async def ask(name: str, qtype: int) -> bytes:
        async with dns_sem:
            qid = random.getrandbits(16)
            while qid in udp.waiting:
                qid = random.getrandbits(16)
            fut = loop.create_future()
            udp.waiting[qid] = fut
            wire = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question(name, qtype)
            try:
                for wait in (1.0, TIMEOUT - 1.0):  # one resend, as ssdns: UDP may lose a datagram
                    transport.sendto(wire)
                    counts["udp"] += 1
                    try:
                        return await asyncio.wait_for(asyncio.shield(fut), wait)
                    except TimeoutError:
                        pass
                raise TimeoutError(f"no answer for {name}")
            finally:
                udp.waiting.pop(qid, None)

    async def ask_tcp(name: str, qtype: int) -> bytes:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
        msg = struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0) + question(name, qtype)
        writer.write(struct.pack("!H", len(msg)) + msg)
        size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), TIMEOUT))[0]
        data = await asyncio.wait_for(reader.readexactly(size), TIMEOUT)
        writer.close()
        counts["tcp"] += 1
        return data

    async def get(ip: str, fqdn: str) -> None:
        async with http_sem:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, http_port), TIMEOUT)
            writer.write(f"GET / HTTP/1.1\r\nHost: {fqdn.rstrip('.')}\r\nConnection: close\r\n\r\n".encode())
            data = await asyncio.wait_for(reader.read(), TIMEOUT)
            counts["bytes"] += len(data)
            writer.close()
            counts["http"] += 1

    async def pod(i: int) -> None:
        fqdn = f"web-{i}.{SVC}"
        reply = await ask(fqdn, 1)
        ip = ".".join(str(b) for b in reply[-4:])
        await asyncio.gather(ask(".".join(reversed(ip.split("."))) + ".in-addr.arpa.", 12), get(ip, fqdn))

    big = n > 16
    service = [ask_tcp(SVC, 1) if big else ask(SVC, 1), ask(SVC, 28),
               ask_tcp("_web._tcp." + SVC, 33) if big else ask("_web._tcp." + SVC, 33), ask("dns-version.cluster.local.", 16)]
    await asyncio.gather(*service, *(pod(i) for i in range(n)))
    transport.close()
    print(f"dns_udp={counts['udp']} dns_tcp={counts['tcp']} http={counts['http']} http_bytes={counts['bytes']}")


if __name__ == "__main__":
    h, p, hp, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    asyncio.run(main(h, p, hp, count))
