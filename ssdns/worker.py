"""A second core for a large check: a child process that sends the HTTP requests and parses the large
DNS answers.

A check of 1,000 pods is CPU-bound in one Python process: parsing 2,000 DNS replies (dnspython; the
SRV set of 1,000 records alone takes ~60 ms, the Service's A set ~20 ms) and sending 1,000 HTTP
requests (aiohttp, ~0.2 s to import and ~0.25 ms of CPU per request) take turns on one core. With two
or more cores at hand and at least sizing.WORKER_FROM pods, a child (ssdns.worker.main) does those with the same
code (HttpProber, dnsquery.classify_wire) while this process asks DNS and judges. (The large answers go to
the child only in a check without HTTP: with HTTP the child's requests are what ends last; observe.py.) Each job and its
answer is one JSON line on a pipe (~15 us of this process's time per request instead of ~250 us).

The child obeys the same deadline: it gets this process's time.monotonic() deadline, and CLOCK_MONOTONIC
is one clock for every process of the host. It ignores SIGINT (Ctrl-C reaches the whole process group:
this process ends the run and the child with it), ends at EOF on its stdin (the parent died), and is
killed when the run is done. If it cannot start, dies, or holds jobs without answering any for STALL
seconds, what it had not answered is done in this process, and an answer it has not parsed within PARSE_WAIT is parsed here: a worker is a way to go
faster, never a reason for a pod to go unprobed or an answer unread.

SSDNS_WORKER=0 never uses the child, =1 always does (tests), unset or `auto` decides as above.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any, Self

from ssdns import sizing

if TYPE_CHECKING:  # imported where used: a small check imports this module and none of that
    from ssdns.httpobs import HttpObservation, HttpRequest

BIG_ANSWER = 4096  # bytes: a DNS answer at least this large is parsed by the child (a pod's A reply is ~70)
LINE_LIMIT = 1 << 20  # a line: a body of BODY_CAP bytes or a 64 KiB answer, JSON-escaped, fits many times over
# The child imports this very ssdns: `python -m` would put the working directory first on sys.path, and
# an `ssdns/` there (a checkout, or worse) would run in its place. The environment is kept (PYTHONPATH,
# site-packages: where aiohttp and dnspython are).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CHILD = "import sys; sys.path[0] = sys.argv.pop(1); from ssdns.worker import main; sys.exit(main(sys.argv[1:]))"
PARSE_WAIT = 1.0  # seconds an answer waits for the child (busy importing, or stuck) before it is parsed here
# Seconds the child may leave its jobs without any answer before it counts as gone (stopped, wedged): with a
# request capped at 3 s (httpprobe.REQUEST_TIMEOUT) some answer comes within that while it works; the rest
# is for its start-up (aiohttp's import) on a loaded machine. Its jobs are then done here.
STALL = 5.0


def wanted(pods: int) -> bool:
    """Whether a check of this many pods uses a child process (sizing.py)."""
    return sizing.worker_wanted(pods)


class Worker:
    """The child, seen from the check: probe() is HttpProber's, classify() is dnsquery.classify_wire's;
    requests_sent counts the HTTP requests that went out, wherever they were sent from."""

    def __init__(self, path: str, deadline: float, concurrency: int = 64, http: bool = True):
        self.path, self.deadline, self.concurrency, self.http = path, deadline, concurrency, http
        self.requests_sent = 0
        self._proc: subprocess.Popen | None = None
        self._stdin: asyncio.WriteTransport | None = None
        self._stdout: asyncio.ReadTransport | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[int, tuple[tuple, asyncio.Future[Any]]] = {}  # id -> (job, its answer)
        self._next = 0
        self._prober: Any = None  # an in-process HttpProber, once the child is gone
        self._gone = False
        self._closing = False
        self._redo: set[asyncio.Task[None]] = set()
        self._progress = 0.0  # time.monotonic() of the child's last answer, or of a job given to it while idle
        self._timer: asyncio.TimerHandle | None = None  # _watch, while jobs wait
        self._out: list[bytes] = []  # jobs not yet written: _flush writes them at the end of the loop's turn

    async def __aenter__(self) -> Self:
        self._proc = _adopt(self.path, self.deadline, self.concurrency, self.http) or _spawn(
            self.path, self.deadline, self.concurrency, self.http)
        if self._proc is None:
            self._gone = True  # everything is done in this process
            return self
        assert self._proc.stdin is not None and self._proc.stdout is not None
        loop = asyncio.get_running_loop()
        stdout = asyncio.StreamReader(limit=LINE_LIMIT)
        try:
            self._stdout, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdout),
                                                           self._proc.stdout)
            self._stdin, _ = await loop.connect_write_pipe(asyncio.Protocol, self._proc.stdin)
        except OSError:
            self._close()
            self._gone = True
            return self
        self._reader = asyncio.ensure_future(self._read(stdout))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        # Every job is answered (or the run was cut off): the child has nothing left to do or to save,
        # and its interpreter's teardown would only add to the run's time.
        self._close()
        if self._reader is not None:
            self._reader.cancel()
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._redo):
            task.cancel()
        if self._prober is not None:
            await self._prober.__aexit__(None, None, None)

    def _close(self) -> None:
        """Kill the child; its pipes are closed by whoever holds them: the transports, else here."""
        if self._proc is None:
            return
        _end(self._proc, pipes=False)
        for transport, pipe in ((self._stdin, self._proc.stdin), (self._stdout, self._proc.stdout)):
            if transport is not None:
                transport.close()
            elif pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    async def probe(self, req: HttpRequest) -> HttpObservation:
        return await self._job(("h", req.pod, req.ip, req.port, req.host))

    async def classify(self, wire: bytes, name: str, rdtype: str, server: str, tcp: bool) -> Any:
        """dnsquery.classify_wire(...), in the child when the answer is large."""
        if len(wire) < BIG_ANSWER or self._gone:
            return _classify(wire, name, rdtype, server, tcp)
        job = asyncio.ensure_future(self._job(("d", base64.b64encode(wire).decode(), name, rdtype, server, tcp)))
        try:
            return await asyncio.wait_for(asyncio.shield(job), PARSE_WAIT)
        except TimeoutError:
            return _classify(wire, name, rdtype, server, tcp)  # the child's answer, if it comes, is dropped

    async def _job(self, job: tuple) -> Any:
        stdin = self._stdin
        if self._gone or stdin is None or stdin.is_closing():
            return await self._here(job)
        ident, self._next = self._next, self._next + 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self._waiting:
            self._progress = time.monotonic()
        # Registered before it is written: if the child is gone, _read's end does it here.
        self._waiting[ident] = (job, fut)
        loop = asyncio.get_running_loop()
        if self._timer is None:
            self._timer = loop.call_at(self._progress + STALL, self._watch)
        if not self._out:
            loop.call_soon(self._flush)
        self._out.append(_dumps([ident, *job]))
        return await fut

    def _flush(self) -> None:
        """The jobs of one turn of the loop in one write: a write per job woke the child for each."""
        data, self._out = b"".join(self._out), []
        stdin = self._stdin
        try:
            if stdin is None or stdin.is_closing():
                raise RuntimeError("the pipe to the child is closed")
            stdin.write(data)
        except (ConnectionError, RuntimeError):
            # The child cannot be given jobs: it is ended, and _read's end does here what it was given.
            if self._proc is not None:
                _end(self._proc, pipes=False)

    async def _read(self, stdout: asyncio.StreamReader) -> None:
        """Answers from the child, as they come; at its end, what it left unanswered is done here."""
        try:
            while line := await stdout.readline():
                self._progress = time.monotonic()
                ident, *answer = _loads(line)
                job, fut = self._waiting[ident]
                done = self._answer(job, answer)  # an answer of the wrong shape raises: its job stays to redo
                del self._waiting[ident]
                if not fut.done():
                    fut.set_result(done)
        except (ValueError, KeyError, TypeError):
            if self._proc is not None:  # not what this module writes: the child is treated as gone
                _end(self._proc, pipes=False)
        except OSError:
            pass  # the pipe broke: as at EOF
        finally:
            self._gone = True
            waiting, self._waiting = self._waiting, {}
            for job, fut in waiting.values():
                if self._closing:
                    fut.cancel()  # the run is over: nobody waits for these
                else:
                    task = asyncio.ensure_future(self._again(job, fut))
                    self._redo.add(task)
                    task.add_done_callback(self._redo.discard)

    def _watch(self) -> None:
        """While jobs wait: a child silent for STALL seconds is killed; its end of the pipe then closes and
        _read hands its jobs to this process. A timer, not a timeout per line: the lines stay cheap."""
        self._timer = None
        proc = self._proc
        if not self._waiting or self._gone or proc is None or proc.poll() is not None:
            return
        due = self._progress + STALL
        if time.monotonic() >= due:
            _end(proc, pipes=False)
            return
        self._timer = asyncio.get_running_loop().call_at(due, self._watch)

    def _answer(self, job: tuple, answer: list) -> Any:
        if job[0] == "h":
            from ssdns.httpobs import HttpObservation

            sent, fields = answer
            obs = HttpObservation(**fields)
            self.requests_sent += int(sent)
            return obs
        from ssdns.dnsquery import Lookup, Outcome

        outcome, values, ttl, detail, rcode = answer
        _, _, name, rdtype, server, tcp = job
        return Lookup(name, rdtype, Outcome(outcome), tuple(values), ttl, server, tcp, detail=detail, rcode=rcode)

    async def _again(self, job: tuple, fut: asyncio.Future[Any]) -> None:
        try:
            done = await self._here(job)
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to whoever waits for this job
            if not fut.done():
                fut.set_exception(exc)
            return
        if not fut.done():
            fut.set_result(done)

    async def _here(self, job: tuple) -> Any:
        """A job done in this process (no child, or it is gone)."""
        if job[0] == "d":
            _, wire, name, rdtype, server, tcp = job
            return _classify(base64.b64decode(wire), name, rdtype, server, tcp)
        from ssdns.httpobs import HttpRequest

        if self._prober is None:
            from ssdns.httpprobe import HttpProber

            self._prober = await HttpProber(self.path, self.deadline, self.concurrency).__aenter__()
        obs = await self._prober.probe(HttpRequest(*job[1:]))
        self.requests_sent += obs.sent
        return obs


def _dumps(message: list) -> bytes:
    import json  # here: a check that never uses the worker (a small one, text output) imports no json

    return json.dumps(message).encode() + b"\n"


def _loads(line: bytes) -> Any:
    import json

    return json.loads(line)


def command(http: bool) -> list[str]:
    """The child's command line (tests put another child in its place). Its settings (path, deadline,
    concurrency) are the first line it reads: a child started before the options are parsed (prestart)
    learns them when they are known. `http`: whether to import aiohttp at once, before that line."""
    return [sys.executable, "-c", _CHILD, _ROOT, "http" if http else "dns"]


# The child sends plain http:// requests only (httpobs.url_for), yet importing aiohttp builds two TLS
# contexts that read the system's CA bundle (40-130 ms of the child's start-up): it is given none to read.
_NO_CA = {"SSL_CERT_FILE": os.devnull, "SSL_CERT_DIR": os.devnull}


def _spawn(path: str, deadline: float, concurrency: int, http: bool) -> subprocess.Popen | None:
    proc = _start(http)
    if proc is not None and not _configure(proc, path, deadline, concurrency):
        return None
    return proc


def _start(http: bool) -> subprocess.Popen | None:
    try:
        return subprocess.Popen(command(http), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env={**os.environ, **_NO_CA})
    except OSError:
        return None


def _configure(proc: subprocess.Popen, path: str, deadline: float, concurrency: int) -> bool:
    """The child's settings, its first line (unbuffered: the event loop takes the pipe over after). False,
    and the child ended, when it cannot be given them (it died)."""
    assert proc.stdin is not None
    try:
        os.write(proc.stdin.fileno(), _dumps([path, deadline, concurrency]))  # ~60 bytes: a pipe takes them at once
    except OSError:
        _end(proc)
        return False
    return True


def _end(proc: subprocess.Popen, pipes: bool = True) -> None:
    """Kill and reap (at once after SIGKILL; bounded all the same); close its pipes unless the event loop's
    transports own them (closing them here would let the loop close a reused descriptor number later)."""
    if proc.poll() is None:
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1.0)
    for pipe in (proc.stdin, proc.stdout) if pipes else ():
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


_early: dict[tuple[str, float, int, bool], subprocess.Popen] = {}


_pre: list[subprocess.Popen] = []  # a child started before the options were parsed (prestart), not yet configured


def prestart(argv: list[str]) -> None:
    """At the very start of `ssdns check --replicas N` (cli.main), before the options and the check are
    imported: a large check's child starts now (~70 ms sooner than start_early could), and is given its
    settings by start_early once they are parsed. A cheap look at argv, not a parse: what it misses (an
    abbreviated option) only leaves the start to start_early; what it gets wrong (a mistyped value) costs a
    child that discard_early ends."""
    pods = sizing.replicas_in(argv)
    if pods is None or _pre or _early or not wanted(pods):
        return
    proc = _start(http="--no-http" not in argv)
    if proc is not None:
        _pre.append(proc)


def start_early(pods: int | None, path: str, deadline: float, http: bool, concurrency: int = 64) -> None:
    """Start the child before this process imports what a check needs: the two start-ups (~0.2-0.3 s each:
    the check's modules here, aiohttp there) overlap instead of following one another. A child prestart()
    started is given the settings instead. The Worker of the same path and deadline adopts it;
    discard_early() ends it if none did (the run failed before)."""
    pre = _pre.pop() if _pre else None
    if pods is None or not wanted(pods) or _early:
        if pre is not None:
            _end(pre)
        return
    if pre is not None and pre.poll() is None and _configure(pre, path, deadline, concurrency):
        _early[(path, deadline, concurrency, http)] = pre
        return
    proc = _spawn(path, deadline, concurrency, http)
    if proc is not None:
        _early[(path, deadline, concurrency, http)] = proc


def _adopt(path: str, deadline: float, concurrency: int, http: bool) -> subprocess.Popen | None:
    proc = _early.pop((path, deadline, concurrency, http), None)
    if proc is not None and proc.poll() is not None:  # it died meanwhile: a new one
        _end(proc)
        return None
    return proc


def discard_early() -> None:
    for proc in [*_early.values(), *_pre]:
        _end(proc)
    _early.clear()
    _pre.clear()


def _classify(wire: bytes, name: str, rdtype: str, server: str, tcp: bool) -> Any:
    from ssdns.dnsquery import classify_wire

    return classify_wire(wire, name, rdtype, server, tcp)


async def _serve(eager: bool) -> None:
    """The child: its settings (the first line), then one line in, one job, one line out, until EOF and every
    job answered, within the check's deadline. Before the settings it has no deadline: it ends at EOF, when the
    check ends (or dies) without having needed it."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    # The parent reads every line as it comes: what waits in the transport's buffer stays small.
    writer, _ = await loop.connect_write_pipe(asyncio.Protocol, sys.stdout)
    settings = await reader.readline()
    if not settings:
        return
    path, deadline, concurrency = _loads(settings)
    async with asyncio.timeout(max(0.0, deadline - time.monotonic()) + 1):
        await _work(reader, writer, path, deadline, concurrency, eager)


async def _work(reader: asyncio.StreamReader, writer: asyncio.WriteTransport, path: str, deadline: float,
                concurrency: int, eager: bool) -> None:
    from ssdns.httpobs import HttpRequest

    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    prober: Any = None
    if eager:
        from ssdns.httpprobe import HttpProber

        prober = await HttpProber(path, deadline, concurrency).__aenter__()

    # Answers finished in one turn of the loop go out in one write: a write to the pipe per answer cost ~100 us
    # of this process's time each (it wakes the check's process), ~15% of what it did at 1,000 pods.
    out: list[bytes] = []

    def flush() -> None:
        writer.write(b"".join(out))
        out.clear()

    def send(ident: int, *answer: Any) -> None:
        if not out:
            loop.call_soon(flush)
        out.append(_dumps([ident, *answer]))

    # Jobs taken on at once: the prober's requests and as many waiting. The rest wait in the pipe (bytes), not
    # as tasks here: the check may send a job for every pod long before they can be sent (5,000 pods: ~5 MiB).
    slots = asyncio.Semaphore(2 * concurrency)

    async def http(ident: int, req: HttpRequest) -> None:
        try:
            obs = await prober.probe(req)
        finally:
            slots.release()
        send(ident, int(obs.sent), {"pod": obs.pod, "url": obs.url, "status": obs.status, "body": obs.body,
                                    "error": obs.error, "elapsed_ms": obs.elapsed_ms, "truncated": obs.truncated,
                                    "location": obs.location})

    try:
        while line := await reader.readline():
            ident, kind, *args = _loads(line)
            if kind == "d":
                wire, name, rdtype, server, tcp = args
                lk = _classify(base64.b64decode(wire), name, rdtype, server, tcp)
                send(ident, lk.outcome.value, list(lk.values), lk.ttl, lk.detail, lk.rcode)
                continue
            if prober is None:
                from ssdns.httpprobe import HttpProber

                prober = await HttpProber(path, deadline, concurrency).__aenter__()
            await slots.acquire()
            task = asyncio.ensure_future(http(ident, HttpRequest(*args)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    finally:
        if prober is not None:
            await prober.__aexit__(None, None, None)
        if out:
            flush()
        writer.close()


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent ends the run on Ctrl-C, and this process
    eager = argv == ["http"]
    if eager:  # a check that sends HTTP requests: aiohttp now, while the check starts up (else at the first job)
        import ssdns.httpprobe  # noqa: F401
    from ssdns.aio import loop_factory

    with asyncio.Runner(loop_factory=loop_factory(None)) as runner:
        runner.run(_serve(eager))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
