"""A shared TCP connection to a resolver that the server (or we) closed fails the next query with a
ConnectionResetError, which the client answers by re-opening, on the standard loop and on uvloop alike
(uvloop raises RuntimeError when writing to a closed transport; the standard loop only logs)."""

from __future__ import annotations

import asyncio

import pytest

from ssdns.dnsquery import _TcpPipe
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

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            pipe = await _TcpPipe().open(Nameserver("127.0.0.1", port))
            await asyncio.wait_for(accepted.wait(), 5)
            assert pipe.writer is not None
            pipe.writer.close()  # closed under the pipe, before its reader noticed
            with pytest.raises(ConnectionResetError):
                pipe.send(1, b"\x00" * 5)
            assert not pipe.waiting  # nothing left waiting for a reply that cannot come
            pipe.close()
        finally:
            server.close()
            await server.wait_closed()

    if loop_kind == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(go())
    else:
        asyncio.run(go())
