"""The blocking DNS client (dnssync.BlockingClient) over real sockets: the same Lookups as the asyncio client
(DnsClient) for the same questions, against the sandbox under its DNS faults and against knotd; and what a
user would notice: a silent nameserver, forged replies, a port nothing listens on, TCP servers that close or
hang, the deadline, and no asyncio imported."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time

import dns.message
import dns.rrset
import pytest
from conftest import until
from dnsservers import LoopThread, answer, read_queries, udp_server
from knotdns import KnotServer, Pod, headless_zones, knotd_available

from ssdns.dnsclient import DnsClient
from ssdns.dnsquery import TRIES_PER_SERVER, Lookup, Outcome
from ssdns.dnssync import TCP_IN_FLIGHT, BlockingClient
from ssdns.names import reverse_name
from ssdns.target import Nameserver

NAME = "web-0.nginx.default.svc.cluster.local."


def check_questions(target, pods: list[str], records: int) -> list[tuple[str, str, int]]:
    """The first batch of a DNS-only check: the Service's A and AAAA, SRV, the DNS version, each pod's A."""
    return [(target.service_fqdn, "A", records), (target.service_fqdn, "AAAA", 0), (target.srv_name, "SRV", records),
            (f"dns-version.{target.zone}.", "TXT", 0), *((target.pod_fqdn(p), "A", 0) for p in pods)]


def ptr_questions(looks: list[Lookup]) -> list[tuple[str, str, int]]:
    """Its second batch: the PTR of every address the first gave (and one of an address nobody has)."""
    ips = sorted({v for lk in looks if lk.rdtype in ("A", "AAAA") for v in lk.values})
    return [(reverse_name(ip), "PTR", 0) for ip in [*ips, "127.99.99.99"]]


def with_blocking(nameservers, questions, deadline, **kw) -> tuple[list[Lookup], list[Lookup], int]:
    with BlockingClient(nameservers, deadline, **kw) as client:
        first = client.ask(questions)
        second = client.ask(ptr_questions(first))
        return first + second, client.lookups(), client.queries_sent


def with_asyncio(nameservers, questions, deadline, **kw) -> tuple[list[Lookup], list[Lookup], int]:
    async def go():
        client = DnsClient(nameservers, deadline, **kw)
        try:
            first = list(await asyncio.gather(*(client.lookup(*q) for q in questions)))
            second = await asyncio.gather(*(client.lookup(*q) for q in ptr_questions(first)))
            return first + list(second), client.lookups(), client.queries_sent
        finally:
            client.close()

    return asyncio.run(go())


def timeless(looks: list[Lookup]) -> list[Lookup]:
    return [dataclasses.replace(lk, elapsed_ms=0.0) for lk in looks]


def assert_same(nameservers, questions, timeout: float = 10, **kw) -> list[Lookup]:
    """Both clients on the same questions: the same Lookups (but their times), in the same order, from the same
    number of queries; the blocking client's, for more checks."""
    theirs, their_all, their_sent = with_asyncio(nameservers, questions, time.monotonic() + timeout, **kw)
    ours, our_all, our_sent = with_blocking(nameservers, questions, time.monotonic() + timeout, **kw)
    assert timeless(ours) == timeless(theirs)
    assert timeless(our_all) == timeless(their_all)  # every Lookup settled, in the order first asked
    assert our_sent == their_sent
    assert all(lk.elapsed_ms > 0 for lk in ours)
    return ours


@pytest.mark.parametrize(("pods", "faults", "transport"), [
    (3, (), "udp"),
    (3, (), "tcp"),
    (30, (), "udp"),  # the Service's SRV set is large: asked over TCP at once
    (3, ("dns-servfail",), "udp"),
    (3, ("dns-stuck", "missing-dns:web-1"), "udp"),
    (3, ("extra-ip",), "udp"),
    (30, ("udp-only",), "udp"),  # TCP refused
    (3, ("tcp-differs",), "tcp"),
    (3, ("not-ready:web-2",), "udp"),
])
def test_the_same_lookups_as_the_asyncio_client_from_the_sandbox(sandbox_factory, pods, faults, transport):
    sb = sandbox_factory(pods, faults=faults)
    target = sb.sandbox.target()
    names = [p.name for p in sb.world.pods]
    ours = assert_same(target.nameservers, check_questions(target, names, pods), transport=transport)
    by_key = {(lk.name, lk.rdtype): lk for lk in ours}
    srv = by_key[(target.srv_name, "SRV")]
    assert srv.tcp == (transport == "tcp" or pods > 20)
    if "udp-only" in faults:
        assert srv.outcome is Outcome.ERROR and "nothing listens on TCP" in srv.detail
    if "dns-servfail" in faults:
        assert {lk.outcome for lk in ours} == {Outcome.SERVFAIL}


def test_the_same_lookups_from_replicas_with_one_down(sandbox_factory):
    """kube-dns's replicas in order, the first down: port unreachable, then the next answers."""
    sb = sandbox_factory(3, faults=("replica-down:0", "replica-nxdomain:1:web-2"))
    target = sb.sandbox.target()
    servers = tuple(sb.sandbox.replica_nameservers)
    ours = assert_same(servers, check_questions(target, ["web-0", "web-1", "web-2"], 3))
    assert {lk.server for lk in ours} == {str(servers[1])}


def test_past_the_deadline_nothing_is_asked(sandbox):
    target = sandbox.sandbox.target()
    ours = assert_same(target.nameservers, check_questions(target, ["web-0"], 1), timeout=0)
    assert all(lk.outcome is Outcome.TIMEOUT and "not asked, deadline reached" in lk.detail for lk in ours)


@pytest.mark.skipif(not knotd_available(), reason="knotd is not installed (Debian package knot)")
def test_the_same_lookups_from_knotd_and_a_truncated_answer_completed_over_tcp():
    """40 pods: the SRV set does not fit in UDP. Asked with no size given, knotd's UDP answer is truncated and
    the client asks again over TCP; given the size, over TCP at once. Either way the asyncio client's answer."""
    pods = [Pod(f"web-{i}", f"127.30.0.{i + 1}") for i in range(40)]
    with KnotServer(headless_zones(pods), address="127.53.0.7") as knot:
        servers = (Nameserver(knot.host, knot.port),)
        svc = "nginx.default.svc.cluster.local."
        srv_name = f"_web._tcp.{svc}"
        for records in (0, 40):
            questions = [(svc, "A", records), (srv_name, "SRV", records), (f"web-3.{svc}", "A", 0),
                         (f"nothing.{svc}", "A", 0)]
            ours = assert_same(servers, questions)
            srv = ours[1]
            assert srv.outcome is Outcome.OK and srv.tcp and len(srv.values) == 40
            assert ours[3].outcome is Outcome.NXDOMAIN and not ours[0].tcp


def test_a_question_is_asked_once_per_client():
    with LoopThread() as lt:
        transport, ns, server = lt.call(udp_server())
        try:
            with BlockingClient((ns,), time.monotonic() + 10) as client:
                first = client.ask([(NAME.upper(), "A", 0), ("web-1.nginx.default.svc.cluster.local.", "A", 0),
                                    (NAME, "A", 0)])
                assert first[0] is first[2] and first[0].name == NAME and first[0].outcome is Outcome.NODATA
                again = client.ask([("web-2.nginx.default.svc.cluster.local.", "A", 0), (NAME, "A", 0)])
                assert again[1] is first[0]
                assert client.queries_sent == len(server.received) == 3
                assert [lk.name for lk in client.lookups()] == [NAME, "web-1.nginx.default.svc.cluster.local.",
                                                                "web-2.nginx.default.svc.cluster.local."]
        finally:
            lt.loop.call_soon_threadsafe(transport.close)


def test_an_ipv6_nameserver_over_udp_and_tcp():
    async def serve(reader, writer):
        (query,) = await read_queries(reader, 1)
        wire = answer(query)
        writer.write(len(wire).to_bytes(2, "big") + wire)
        await reader.read()

    with LoopThread() as lt:
        transport, ns, _ = lt.call(udp_server(host="::1"))

        async def start():
            return await asyncio.start_server(serve, "::1", ns.port)

        server = lt.call(start())
        try:
            for kind in ("udp", "tcp"):
                with BlockingClient((ns,), time.monotonic() + 10, transport=kind) as client:
                    (got,) = client.ask([(NAME, "A", 0)])
                assert got.outcome is Outcome.NODATA and got.server == f"[::1]:{ns.port}" and got.tcp == (kind == "tcp")
        finally:
            lt.loop.call_soon_threadsafe(transport.close)
            _stop(lt, server)


def test_a_silent_first_nameserver_leaves_the_second_its_share_of_the_time():
    """The first nameserver never answers: it gets its share of the time left (half, with two), asked
    TRIES_PER_SERVER times under one ID; the second answers, well before the deadline."""
    with LoopThread() as lt, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        transport, ns, _ = lt.call(udp_server())
        try:
            servers = (Nameserver("127.0.0.1", silent.getsockname()[1]), ns)
            start = time.monotonic()
            with BlockingClient(servers, start + 2.0) as client:
                (got,) = client.ask([(NAME, "A", 0)])
            took = time.monotonic() - start
            assert got.outcome is Outcome.NODATA and got.server == str(ns)
            assert 0.95 <= took < 2.0  # the first server's half of the time, and the second's answer in time
            assert 950 <= got.elapsed_ms < 2000
            silent.setblocking(False)
            sent = [silent.recv(512) for _ in range(TRIES_PER_SERVER)]
            assert len({wire[:2] for wire in sent}) == 1 and client.queries_sent == TRIES_PER_SERVER + 1
        finally:
            lt.loop.call_soon_threadsafe(transport.close)


def _real(query: bytes, ip: str) -> bytes:
    msg = dns.message.from_wire(query)
    reply = dns.message.make_response(msg)
    reply.answer.append(dns.rrset.from_text(msg.question[0].name, 5, "IN", "A", ip))
    return reply.to_wire()


def _forgeries(query: bytes) -> list[bytes]:
    """A wrong ID, a wrong question (same ID), a reply with QR clear: each carrying an address of its own."""
    forged = _real(query, "127.6.6.6")
    wrong_id = bytes([forged[0] ^ 0xFF, forged[1]]) + forged[2:]
    wrong_name = forged[:13] + b"x" + forged[14:]  # the first label's first letter
    qr_clear = forged[:2] + bytes([forged[2] & 0x7F]) + forged[3:]
    return [wrong_id, wrong_name, qr_clear]


def test_forged_replies_are_ignored_and_the_real_one_taken():
    with LoopThread() as lt:
        transport, ns, _ = lt.call(udp_server(lambda q: [*_forgeries(q), _real(q, "127.0.0.9")]))
        try:
            with BlockingClient((ns,), time.monotonic() + 10) as client:
                (got,) = client.ask([(NAME, "A", 0)])
            assert got.outcome is Outcome.OK and got.values == ("127.0.0.9",)
        finally:
            lt.loop.call_soon_threadsafe(transport.close)


def test_only_forged_replies_are_a_timeout_that_counts_them():
    with LoopThread() as lt:
        transport, ns, server = lt.call(udp_server(_forgeries))
        try:
            with BlockingClient((ns,), time.monotonic() + 10, patience=0.4) as client:
                (got,) = client.ask([(NAME, "A", 0)])
            assert got.outcome is Outcome.TIMEOUT and "replies ignored" in got.detail and not got.values
            assert len(server.received) == TRIES_PER_SERVER
        finally:
            lt.loop.call_soon_threadsafe(transport.close)


def test_a_udp_port_nothing_listens_on_is_said_at_once():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    start = time.monotonic()
    with BlockingClient((Nameserver("127.0.0.1", port),), start + 30, patience=20) as client:
        got = client.ask([(NAME, "A", 0), ("web-1.nginx.default.svc.cluster.local.", "A", 0)])
    assert [lk.outcome for lk in got] == [Outcome.ERROR] * 2
    assert all("nothing listens there (port unreachable)" in lk.detail for lk in got)
    assert time.monotonic() - start < 5  # not the 20 s patience


def _tcp_server(lt: LoopThread, serve) -> tuple[asyncio.Server, Nameserver]:
    async def start():
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        return server, Nameserver("127.0.0.1", server.sockets[0].getsockname()[1])

    return lt.call(start())


def _stop(lt: LoopThread, server: asyncio.Server) -> None:
    async def stop():
        server.close()

    lt.call(stop())


def test_a_tcp_server_closing_mid_answer():
    async def serve(reader, writer):
        await read_queries(reader, 1)
        writer.write(b"\x00\x64" + b"\x00" * 10)  # 10 bytes of a 100-byte reply
        await writer.drain()
        writer.close()

    with LoopThread() as lt:
        server, ns = _tcp_server(lt, serve)
        try:
            with BlockingClient((ns,), time.monotonic() + 10, transport="tcp") as client:
                (got,) = client.ask([(NAME, "A", 0)])
            assert got.outcome is Outcome.ERROR and got.tcp
            assert got.detail == f"{ns}: TCP connection closed mid-answer (10 of 100 bytes)"
        finally:
            _stop(lt, server)


def test_a_tcp_reply_not_ours_is_skipped():
    async def serve(reader, writer):
        (query,) = await read_queries(reader, 1)
        for wire in (*_forgeries(query), answer(query)):
            writer.write(len(wire).to_bytes(2, "big") + wire)
        await writer.drain()
        await reader.read()

    with LoopThread() as lt:
        server, ns = _tcp_server(lt, serve)
        try:
            with BlockingClient((ns,), time.monotonic() + 10, transport="tcp") as client:
                (got,) = client.ask([(NAME, "A", 0)])
            assert got.outcome is Outcome.NODATA and got.tcp
        finally:
            _stop(lt, server)


def test_a_hanging_tcp_server_is_bounded_by_the_deadline_and_udp_goes_on_meanwhile():
    """A large answer goes over TCP, to a server that reads and never answers; meanwhile a UDP question on the
    same address, whose first send the server drops, is sent again and answered. The deadline ends the TCP wait."""
    def drop_first(query: bytes, seen: set[bytes] = set()) -> list[bytes]:  # noqa: B006 (state of this server)
        if query[:2] not in seen:
            seen.add(query[:2])
            return []
        return [answer(query)]

    async def serve(reader, writer):
        await reader.read()  # until the client closes

    with LoopThread() as lt:
        server, ns = _tcp_server(lt, serve)
        transport, _, _ = lt.call(udp_server(drop_first, port=ns.port))
        try:
            start = time.monotonic()
            with BlockingClient((ns,), start + 2.0) as client:
                srv, a = client.ask([("_web._tcp.nginx.default.svc.cluster.local.", "SRV", 200), (NAME, "A", 0)])
            took = time.monotonic() - start
            assert srv.outcome is Outcome.TIMEOUT and srv.tcp and "no complete reply" in srv.detail
            # The resend, at half the time, answered before the deadline: not after the TCP wait (nor not asked).
            assert a.outcome is Outcome.NODATA and client.queries_sent == 3
            assert 1.9 <= took < 2.0 + 2  # the deadline, with slack for a loaded machine
        finally:
            lt.loop.call_soon_threadsafe(transport.close)
            _stop(lt, server)


def test_at_most_16_tcp_connections_at_once_and_the_wait_for_one_counts():
    """20 questions over TCP to a server that never answers: 16 connections, the other 4 wait for one of them
    within their own time, and every question ends at the deadline."""
    accepted = []

    async def serve(reader, writer):
        accepted.append(writer)
        await reader.read()

    with LoopThread() as lt:
        server, ns = _tcp_server(lt, serve)
        try:
            start = time.monotonic()
            with BlockingClient((ns,), start + 1.0, transport="tcp") as client:
                got = client.ask([(f"web-{i}.nginx.default.svc.cluster.local.", "A", 0) for i in range(20)])
            took = time.monotonic() - start
            assert [lk.outcome for lk in got] == [Outcome.TIMEOUT] * 20 and all(lk.tcp for lk in got)
            assert len(accepted) == TCP_IN_FLIGHT == client.queries_sent
            assert 0.95 <= took < 1.0 + 2
        finally:
            _stop(lt, server)


def test_the_deadline_bounds_many_questions_to_a_silent_server():
    """300 questions, 128 at a time, to a server that never answers: the first 128 use the whole time and the
    rest are not asked; all of it ends at the deadline."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        start = time.monotonic()
        with BlockingClient((Nameserver("127.0.0.1", silent.getsockname()[1]),), start + 1.0) as client:
            got = client.ask([(f"web-{i}.nginx.default.svc.cluster.local.", "A", 0) for i in range(300)])
        took = time.monotonic() - start
    assert [lk.outcome for lk in got] == [Outcome.TIMEOUT] * 300
    assert sum("not asked, deadline reached" in lk.detail for lk in got) == 300 - 128
    assert client.queries_sent == 128 * TRIES_PER_SERVER
    assert 0.95 <= took < 1.0 + 2


def test_an_interrupted_ask_leaves_nothing_half_asked():
    """Ctrl-C in the middle of an ask (a silent UDP server, a hanging TCP one): its TCP connections are closed, no
    Lookup is kept, and the next ask asks those questions again."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    accepted, ended = [], []

    async def serve(reader, writer):
        accepted.append(writer)
        await reader.read()  # until the client closes
        ended.append(writer)

    with LoopThread() as lt, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        server, tcp_ns = _tcp_server(lt, serve)
        silent.bind(("127.0.0.1", 0))
        udp_ns = Nameserver("127.0.0.1", silent.getsockname()[1])
        before = signal.signal(signal.SIGALRM, interrupt)
        try:
            with BlockingClient((udp_ns,), time.monotonic() + 30) as udp, \
                    BlockingClient((tcp_ns,), time.monotonic() + 30, transport="tcp") as tcp:
                for client in (udp, tcp):
                    signal.setitimer(signal.ITIMER_REAL, 0.3)
                    with pytest.raises(KeyboardInterrupt):
                        client.ask([(f"web-{i}.nginx.default.svc.cluster.local.", "A", 0) for i in range(20)])
                    assert client.lookups() == []
                assert len(accepted) == TCP_IN_FLIGHT
                until(lambda: len(ended) == len(accepted))  # every connection closed by the client
                for client in (udp, tcp):
                    sent = client.queries_sent
                    client.deadline = time.monotonic() + 0.3
                    got = client.ask([("web-0.nginx.default.svc.cluster.local.", "A", 0)])
                    assert got[0].outcome is Outcome.TIMEOUT and client.queries_sent > sent
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, before)
            _stop(lt, server)


def test_importing_and_asking_loads_no_asyncio(sandbox):
    """The small check's point: this client, its rules and a whole ask (an NXDOMAIN too: dns.message) without
    asyncio, nor anything that imports it."""
    target = sandbox.sandbox.target()
    questions = [*check_questions(target, ["web-0", "web-1", "web-2"], 3),
                 (f"nothing.{target.service_fqdn}", "A", 0)]
    code = (
        "import sys, time\n"
        "from ssdns.dnssync import TCP_IN_FLIGHT, BlockingClient\n"
        "from ssdns.target import Nameserver\n"
        f"with BlockingClient((Nameserver({target.nameservers[0].host!r}, {target.nameservers[0].port}),),"
        f" time.monotonic() + 10) as client:\n"
        f"    got = client.ask({questions!r})\n"
        "print(sorted(lk.outcome.value for lk in got))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'asyncio'))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, check=True)
    outcomes, modules = out.stdout.splitlines()
    assert outcomes == str(sorted(["ok"] * 6 + ["nodata", "nxdomain"]))
    assert modules == "[]"
