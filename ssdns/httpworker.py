"""HTTP probes in a child process, so that a large check uses a second core.

A check of 1,000 pods is CPU-bound in one Python process: parsing 2,000 DNS replies (dnspython) and
sending 1,000 HTTP requests (aiohttp, ~0.2 s to import and ~0.25 ms of CPU per request) take turns on
one core. With two or more cores at hand and at least WORKER_FROM pods, the requests go to
`python -m ssdns.httpworker`, which imports aiohttp and runs the same HttpProber while this process
asks DNS. Each request and answer is one JSON line on a pipe (~15 us here instead of ~250 us).

The child obeys the same deadline: it gets this process's time.monotonic() deadline, and CLOCK_MONOTONIC
is one clock for every process of the host. It ignores SIGINT (Ctrl-C reaches the whole process group:
this process ends the run and the child with it), ends at EOF on its stdin, and is killed when the run
is cut off. If it cannot start or dies, the requests it had not answered are sent from this process: a
worker is a way to go faster, never a reason for a pod to go unprobed.

SSDNS_HTTP_WORKER=0 never uses the child, =1 always does (tests), unset or `auto` decides as above.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from typing import Any, Self

from ssdns.httpobs import HttpObservation, HttpRequest

WORKER_FROM = 100  # pods: below this a second interpreter (~30 ms to start, ~0.2 s to import aiohttp) does not pay
LINE_LIMIT = 1 << 20  # a reply line: a body of BODY_CAP bytes, JSON-escaped, fits many times over
CPU_MAX = "/sys/fs/cgroup/cpu.max"  # cgroup v2, as containers see their own
KILL_WAIT = 0.5  # seconds, at most, for the child to exit after EOF before it is killed


def cpus() -> float:
    """The cores this process may use: its CPU affinity, capped by a cgroup CPU quota (a container's
    `resources.limits.cpu`)."""
    n = float(len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else float(os.cpu_count() or 1)
    try:
        with open(CPU_MAX) as f:  # cgroup v2: "max 100000" or "<quota> <period>"
            quota, period = f.read().split()[:2]
        if quota != "max":
            n = min(n, int(quota) / int(period))
    except (OSError, ValueError):
        pass
    return n


def wanted(pods: int) -> bool:
    """Whether a check of this many pods sends its HTTP requests from a child process."""
    mode = os.environ.get("SSDNS_HTTP_WORKER", "auto")
    if mode in ("0", "1"):
        return mode == "1"
    return pods >= WORKER_FROM and cpus() >= 2


class WorkerProber:
    """HttpProber's interface (probe, requests_sent, async with), the requests sent by the child."""

    def __init__(self, path: str, deadline: float, concurrency: int = 64):
        self.path, self.deadline, self.concurrency = path, deadline, concurrency
        self.requests_sent = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[int, tuple[HttpRequest, asyncio.Future[HttpObservation]]] = {}
        self._next = 0
        self._fallback: Any = None  # an in-process HttpProber, once the child is gone
        self._exit = asyncio.Event()
        self._closing = False
        self._redo: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ssdns.httpworker", self.path, repr(self.deadline), str(self.concurrency),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
                limit=LINE_LIMIT)
        except OSError:
            self._proc = None  # every probe goes the in-process way
        else:
            self._reader = asyncio.ensure_future(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        proc = self._proc
        if proc is not None:
            if proc.stdin is not None and not proc.stdin.is_closing():
                proc.stdin.close()
            try:
                # Cut off (an exception, a cancelled run): no wait. Done: a moment to exit on its own.
                async with asyncio.timeout(KILL_WAIT if exc[0] is None else 0):
                    await proc.wait()
            except (TimeoutError, asyncio.CancelledError):
                pass
            if proc.returncode is None:
                proc.kill()
                await proc.wait()  # reaped at once after SIGKILL
        if self._reader is not None:
            self._reader.cancel()
        for task in list(self._redo):
            task.cancel()
        if self._fallback is not None:
            await self._fallback.__aexit__(None, None, None)

    async def probe(self, req: HttpRequest) -> HttpObservation:
        proc = self._proc
        if proc is None or proc.stdin is None or self._exit.is_set():
            return await self._in_process(req)
        ident, self._next = self._next, self._next + 1
        fut: asyncio.Future[HttpObservation] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = (req, fut)
        try:
            proc.stdin.write(json.dumps([ident, req.pod, req.ip, req.port, req.host]).encode() + b"\n")
        except (ConnectionError, RuntimeError):
            self._waiting.pop(ident, None)
            return await self._in_process(req)
        return await fut

    async def _read(self) -> None:
        """Answers from the child, as they come; at its end, what it left unanswered goes in-process."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        try:
            while line := await proc.stdout.readline():
                ident, sent, fields = json.loads(line)
                req, fut = self._waiting.pop(ident)
                self.requests_sent += sent
                if not fut.done():
                    fut.set_result(HttpObservation(**fields))
        except (ValueError, KeyError, TypeError):
            if proc.returncode is None:  # not what this module writes: the child is treated as gone
                proc.kill()
        finally:
            self._exit.set()
            waiting, self._waiting = self._waiting, {}
            for req, fut in waiting.values():
                if self._closing:
                    fut.cancel()  # the run is over: nobody waits for these
                else:
                    task = asyncio.ensure_future(self._again(req, fut))
                    self._redo.add(task)
                    task.add_done_callback(self._redo.discard)

    async def _again(self, req: HttpRequest, fut: asyncio.Future[HttpObservation]) -> None:
        try:
            obs = await self._in_process(req)
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to whoever waits for this probe
            if not fut.done():
                fut.set_exception(exc)
            return
        if not fut.done():
            fut.set_result(obs)

    async def _in_process(self, req: HttpRequest) -> HttpObservation:
        if self._fallback is None:
            from ssdns.httpprobe import HttpProber

            self._fallback = await HttpProber(self.path, self.deadline, self.concurrency).__aenter__()
        obs = await self._fallback.probe(req)
        self.requests_sent += obs.sent
        return obs


async def _serve(path: str, deadline: float, concurrency: int) -> None:
    """The child: one line in, one probe, one line out, until EOF and every probe answered."""
    from ssdns.httpprobe import HttpProber

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    # The parent reads every line as it comes: what waits in the transport's buffer stays small.
    writer, _ = await loop.connect_write_pipe(asyncio.Protocol, sys.stdout)
    tasks: set[asyncio.Task[None]] = set()

    async with HttpProber(path, deadline, concurrency) as prober:
        async def one(ident: int, req: HttpRequest) -> None:
            obs = await prober.probe(req)
            fields = {"pod": obs.pod, "url": obs.url, "status": obs.status, "body": obs.body, "error": obs.error,
                      "elapsed_ms": obs.elapsed_ms, "truncated": obs.truncated, "location": obs.location}
            writer.write(json.dumps([ident, int(obs.sent), fields]).encode() + b"\n")

        while line := await reader.readline():
            ident, pod, ip, port, host = json.loads(line)
            task = asyncio.ensure_future(one(ident, HttpRequest(pod, ip, port, host)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    writer.close()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent ends the run on Ctrl-C, and this process
    path, deadline, concurrency = argv[0], float(argv[1]), int(argv[2])
    from ssdns.aio import loop_factory

    with asyncio.Runner(loop_factory=loop_factory(None)) as runner:
        runner.run(asyncio.wait_for(_serve(path, deadline, concurrency), max(0.0, deadline - time.monotonic()) + 1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
