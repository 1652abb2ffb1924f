"""A shared TCP connection to a resolver that the server (or we) closed fails the next query with a
ConnectionResetError, which the client answers by re-opening, on the standard loop and on uvloop alike
(uvloop raises RuntimeError when writing to a closed transport; the standard loop only logs)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from dnsservers import answer, port_of, read_queries, tcp_server, udp_server
from dnsservers import questions as make_questions

from ssdns.dnsclient import _TcpPipe
from ssdns.target import Nameserver

LOOPS = ["asyncio"]
try:
    import uvloop  # noqa: F401

    LOOPS.append("uvloop")
except ImportError:  # the optional extra is not installed: the standard loop only
    pass


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_a_closed_pipe_refuses_the_next_query(loop_kind):
    async def go():
        accepted = asyncio.Event()

        async def serve(reader, writer):
            accepted.set()
            await reader.read(1)  # holds the connection until the client closes it

        async with tcp_server(serve) as server:
            pipe = await _TcpPipe().open(Nameserver("127.0.0.1", port_of(server)))
            await asyncio.wait_for(accepted.wait(), 5)
            assert pipe.writer is not None
            pipe.writer.close()  # closed under the pipe, before its reader noticed
            with pytest.raises(ConnectionResetError):
                pipe.send(1, b"\x00" * 5)
            assert not pipe.waiting  # nothing left waiting for a reply that cannot come
            pipe.close()

    if loop_kind == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(go())
    else:
        asyncio.run(go())


def _run(loop_kind, coro):
    if loop_kind == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    return asyncio.run(coro)


@contextlib.asynccontextmanager
async def _piped(serve):
    """A pipe to a server running `serve`, both closed at the end."""
    async with tcp_server(serve) as server:
        pipe = await _TcpPipe().open(Nameserver("127.0.0.1", port_of(server)))
        try:
            yield pipe
        finally:
            pipe.close()


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_queries_sent_together_are_answered_in_any_order_and_forgeries_ignored(loop_kind):
    """One iteration's queries go out in one write; the server answers them last first, after a reply with a
    wrong ID and our own query reflected (QR clear): each query gets its own reply, the forgeries none."""
    questions = make_questions(20)

    async def serve(reader, writer):
        queries = await read_queries(reader, len(questions))
        first = queries[0]
        wrong_id = bytes([first[0] ^ 0xFF, first[1]]) + answer(first)[2:]
        for wire in (wrong_id, first, *(answer(q) for q in reversed(queries))):
            writer.write(len(wire).to_bytes(2, "big") + wire)
        await reader.read(1)

    async def go():
        async with _piped(serve) as pipe:
            futs = [pipe.send(100 + i, q) for i, q in enumerate(questions)]
            replies = await asyncio.wait_for(asyncio.gather(*futs), 5)
            assert [int.from_bytes(r[:2], "big") for r in replies] == [100 + i for i in range(len(questions))]
            assert all(r[12:12 + len(q)] == q for r, q in zip(replies, questions, strict=True))

    _run(loop_kind, go())


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_a_server_closing_mid_batch_fails_only_the_unanswered_queries(loop_kind):
    """The server answers 3 of a batch of 10 and closes: those 3 have their replies, the other 7 fail with
    ConnectionResetError (the client sends them again on a new connection), and no later query is taken."""
    questions = make_questions(10)

    async def serve(reader, writer):
        queries = await read_queries(reader, len(questions))
        for q in queries[:3]:
            wire = answer(q)
            writer.write(len(wire).to_bytes(2, "big") + wire)
        await writer.drain()
        writer.close()

    async def go():
        async with _piped(serve) as pipe:
            futs = [pipe.send(i + 1, q) for i, q in enumerate(questions)]
            done = await asyncio.wait_for(asyncio.gather(*futs, return_exceptions=True), 5)
            assert [isinstance(d, bytes) for d in done] == [True] * 3 + [False] * 7
            assert all(isinstance(d, ConnectionResetError) for d in done[3:])
            with pytest.raises(ConnectionResetError):
                pipe.send(99, questions[0])

    _run(loop_kind, go())


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_queries_queued_when_we_close_fail_and_are_never_written(loop_kind):
    received = []
    closed = asyncio.Event()

    async def serve(reader, writer):
        received.append(await reader.read())  # until the client closes
        closed.set()

    async def go():
        async with _piped(serve) as pipe:
            futs = [pipe.send(i + 1, q) for i, q in enumerate(make_questions(5))]
            pipe.close()  # in the same iteration: the batch is not written yet
            done = await asyncio.wait_for(asyncio.gather(*futs, return_exceptions=True), 5)
            assert all(isinstance(d, ConnectionResetError) for d in done)
            await asyncio.wait_for(closed.wait(), 5)
            assert received == [b""]

    _run(loop_kind, go())


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_a_pipelined_query_the_server_never_answers_times_out_within_its_budget(loop_kind):
    """A resolver leg's TCP question to a server that reads and never answers: a timeout named as such, once
    the patience is spent (one timer per query now, not asyncio.timeout), and the connection is not re-opened."""
    import time

    from ssdns.dnsclient import DnsClient
    from ssdns.dnsquery import Outcome

    accepted = []

    async def serve(reader, writer):
        accepted.append(writer)
        await reader.read()  # reads the queries, answers none, until the client closes

    async def go():
        async with tcp_server(serve) as server:
            ns = Nameserver("127.0.0.1", port_of(server))
            client = DnsClient((ns,), time.monotonic() + 30, transport="tcp", patience=0.5, pipeline=True)
            try:
                start = time.monotonic()
                names = [f"web-{i}.nginx.default.svc.cluster.local." for i in range(5)]
                got = await asyncio.wait_for(asyncio.gather(*(client.lookup(n, "A") for n in names)), 10)
                took = time.monotonic() - start
                assert [lk.outcome for lk in got] == [Outcome.TIMEOUT] * 5
                assert all(lk.tcp and "no complete reply" in lk.detail for lk in got)
                assert 0.45 <= took < 5  # the patience, with slack for a loaded machine
                assert len(accepted) == 1 and client.queries_sent == 5
            finally:
                client.close()

    _run(loop_kind, go())


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_ask_is_lookup_without_the_task_and_the_cache(loop_kind):
    """A resolver leg's askers use DnsClient.ask: the same answer as lookup(), over the same UDP path (NODATA
    here: the server turns each query into an empty NOERROR response), and nothing kept in the client."""
    import time

    from ssdns.dnsclient import DnsClient
    from ssdns.dnsquery import Outcome

    async def go():
        transport, ns, _ = await udp_server()
        client = DnsClient((ns,), time.monotonic() + 10)
        try:
            asked = await client.ask("WEB-0.nginx.default.svc.cluster.local.", "A")
            assert client.lookups() == [] and client.pending() == []
            looked = await client.lookup("web-0.nginx.default.svc.cluster.local.", "A")
            assert asked.outcome is Outcome.NODATA and asked.name == "web-0.nginx.default.svc.cluster.local."
            assert (asked.name, asked.outcome, asked.server, asked.tcp) == (looked.name, looked.outcome,
                                                                             looked.server, looked.tcp)
            assert client.queries_sent == 2
        finally:
            client.close()
            transport.close()

    _run(loop_kind, go())


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_datagrams_the_socket_has_no_room_for_are_sent_later_in_order(loop_kind):
    """A UDP channel's socket buffer full (here a Unix datagram pair, whose sender blocks while the peer's queue
    is full; loopback UDP never does): what does not fit waits and goes out, in order, once there is room."""
    import socket

    from ssdns.dnsclient import _UdpChannel

    async def go():
        ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        ours.setblocking(False)
        peer.setblocking(False)
        chan = _UdpChannel(ours)
        try:
            sent = [i.to_bytes(2, "big") * 30 for i in range(300)]
            for wire in sent:
                chan.send(wire)
            assert chan._unsent  # the queue filled: the rest waits for room
            loop = asyncio.get_running_loop()
            got = [await asyncio.wait_for(loop.sock_recv(peer, 100), 5) for _ in sent]
            assert got == sent and not chan._unsent
        finally:
            chan.close()
            peer.close()

    _run(loop_kind, go())


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_a_udp_port_nothing_listens_on_is_said_at_once(loop_kind):
    """ICMP port unreachable reaches the channel's own socket as ConnectionRefusedError: the question fails
    at once, named, rather than after its patience."""
    import socket
    import time

    from ssdns.dnsclient import DnsClient
    from ssdns.dnsquery import Outcome

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there

    async def go():
        client = DnsClient((Nameserver("127.0.0.1", port),), time.monotonic() + 30, patience=20)
        try:
            start = time.monotonic()
            got = await asyncio.wait_for(client.ask("web-0.nginx.default.svc.cluster.local.", "A"), 10)
            assert got.outcome is Outcome.ERROR and "nothing listens there" in got.detail
            assert time.monotonic() - start < 5  # not the 20 s patience
        finally:
            client.close()

    _run(loop_kind, go())


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_a_closed_client_leaves_no_socket_open(loop_kind):
    """A client per round (converge, watch probes): close() closes its UDP sockets, so rounds do not pile up fds."""
    import os
    import time

    from ssdns.dnsclient import DnsClient

    async def go():
        transport, ns, _ = await udp_server()
        try:
            before = len(os.listdir("/proc/self/fd"))
            for _ in range(20):
                client = DnsClient((ns,), time.monotonic() + 10)
                await client.lookup("web-0.nginx.default.svc.cluster.local.", "A")
                client.close()
                assert [c.sock.fileno() for c in client._channels.values()] == [-1]  # its one socket, closed
            # 20 rounds leaking a socket each would be 20 more (other tests' fds may close meanwhile: not ==)
            assert len(os.listdir("/proc/self/fd")) < before + 10
        finally:
            transport.close()

    _run(loop_kind, go())
