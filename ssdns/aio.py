"""Running a check's coroutine: uvloop when it is installed (`pip install uvloop`), and the
result kept out of the task.

Why not plain `asyncio.run(coro)`: on CPython 3.11 its exit restores the SIGINT handler and, in doing
so, formats the main task's repr, which reprs the task's *result*: the whole Result, twice (29 ms at
1,000 pods). Here the task returns None and the result travels in a list.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

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


def run(coro: Coroutine[Any, Any, T], pods: int | None = None) -> T:
    """pods: how many pods the run expects, when known before it starts."""
    out: list[T] = []

    async def keep() -> None:
        out.append(await coro)

    with asyncio.Runner(loop_factory=loop_factory(pods)) as runner:
        runner.run(keep())
    return out[0]
