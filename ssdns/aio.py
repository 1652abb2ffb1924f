"""Running a check's coroutine: uvloop when it is installed (the `fast` extra: `pip install 'ssdns[fast]'`), and the
result kept out of the task.

Why not plain `asyncio.run(coro)`: on CPython 3.11 its exit restores the SIGINT handler and, in doing
so, formats the main task's repr, which reprs the task's *result*: the whole Result, twice (29 ms at
1,000 pods). Here the task returns None and the result travels in a list.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from ssdns import gcpace
from ssdns.errors import Interrupted

T = TypeVar("T")


UVLOOP_FROM = 100  # pods: below this, importing uvloop (~8 ms) costs more than it saves


def loop_factory(pods: int | None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when installed and the run is large (or unknown, e.g. sized by the API), unless
    SSDNS_UVLOOP=0; None: the standard loop."""
    if os.environ.get("SSDNS_UVLOOP", "1") == "0" or (pods is not None and pods < UVLOOP_FROM):
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


@contextlib.contextmanager
def _signals_cancel(task: asyncio.Task | None) -> Iterator[list[int]]:
    """While the loop runs: SIGINT and SIGTERM cancel task and are recorded; the handlers the process
    had (cli.main's) are back afterwards."""
    got: list[int] = []
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def stop(sig: int) -> None:
        got.append(sig)
        if task is not None:
            task.cancel()

    if task is not None and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            before = signal.getsignal(sig)
            try:
                loop.add_signal_handler(sig, stop, sig)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            previous[sig] = before
    try:
        yield got
    finally:
        for signum, before in previous.items():
            loop.remove_signal_handler(signum)
            signal.signal(signum, before if before is not None else signal.SIG_DFL)


def run(coro: Coroutine[Any, Any, T], pods: int | None = None) -> T:
    """pods: how many pods the run expects, when known before it starts. SIGINT and SIGTERM cancel the
    run through the loop (uvloop runs no Python signal handler while it waits) and raise Interrupted."""
    out: list[T] = []

    async def keep() -> None:
        with _signals_cancel(asyncio.current_task()) as got:
            try:
                out.append(await coro)
            except asyncio.CancelledError:
                if got:
                    raise Interrupted(got[0]) from None
                raise

    gcpace.running()  # start-up is over: its objects frozen, the collector at its usual pace (gcpace.py)
    with asyncio.Runner(loop_factory=loop_factory(pods)) as runner:
        runner.run(keep())
    return out[0]
