"""Test harness: small DNS servers on loopback for the clients' tests (dnsclient's and dnssync's), and a
background event loop to run them on while a blocking client waits in the test's thread.

Not a test module. The UDP server answers each query through a function (query -> datagrams to send back:
by default the query turned into an empty NOERROR response, NODATA); a TCP server runs an asyncio.start_server
callback per connection (tcp_server), with read_queries to read length-prefixed queries.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable

from ssdns.target import Nameserver


def questions(n: int) -> list[bytes]:
    from ssdns.dnsquery import question_bytes

    return [question_bytes(f"web-{i}.nginx.default.svc.cluster.local.", "A") for i in range(n)]


def answer(query: bytes) -> bytes:
    """The query turned into a response (QR set): its ID and question, as a server would echo them."""
    return query[:2] + b"\x81\x80" + query[4:]


async def read_queries(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        size = int.from_bytes(await reader.readexactly(2), "big")
        out.append(await reader.readexactly(size))
    return out


Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def tcp_server(serve: Serve, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[asyncio.Server]:
    """asyncio.start_server(serve), stopped at the end with every connection it accepted closed. From Python
    3.12 on, Server.wait_closed() waits for the connections as well, and a callback that waits for the client
    (`await reader.read()`) kept the test waiting forever; the connections are closed here, and the wait is
    bounded (a test fails, never hangs)."""
    writers: list[asyncio.StreamWriter] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            await serve(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handler, host, port)
    try:
        yield server
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await asyncio.wait_for(server.wait_closed(), 5)


def port_of(server: asyncio.Server) -> int:
    return server.sockets[0].getsockname()[1]


class UdpServer(asyncio.DatagramProtocol):
    """Answers each query with replies(query) (default: the query as an empty response); keeps what it got."""

    def __init__(self, replies: Callable[[bytes], list[bytes]] | None = None) -> None:
        self.replies = replies or (lambda query: [answer(query)])
        self.received: list[bytes] = []

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.received.append(data)
        for wire in self.replies(data):
            self.transport.sendto(wire, addr)


async def udp_server(replies: Callable[[bytes], list[bytes]] | None = None, host: str = "127.0.0.1",
                     port: int = 0) -> tuple[asyncio.DatagramTransport, Nameserver, UdpServer]:
    """A UdpServer on (host, port): its transport (close it), its address, the protocol."""
    transport, proto = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: UdpServer(replies), local_addr=(host, port))
    return transport, Nameserver(host, transport.get_extra_info("sockname")[1]), proto


class LoopThread:
    """An event loop in a thread for servers, while the test's thread blocks: `with LoopThread() as lt:` then
    `lt.call(coro)`; everything left on the loop is cancelled at the end."""

    def __enter__(self) -> LoopThread:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        return self

    def call(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __exit__(self, *exc) -> None:
        async def cancel_rest():
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        self.call(cancel_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
