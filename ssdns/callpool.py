"""A few daemon threads that run blocking calls (kube.py's API requests) for callers that wait on their own
deadline: at most `size` calls run at once, the others wait their turn in order.

Why not concurrent.futures.ThreadPoolExecutor: its threads are joined at interpreter exit, so one call that
hangs (an API server that never answers) would hold up the exit past the run's deadline. These threads are
daemons and nobody joins them. And why not a new thread per call, as before: starting a thread blocks its
starter until the new thread runs (milliseconds on a busy machine, on the event loop's thread), which
`check --all` paid for every one of its ~1,000 calls.

A call whose caller gave up on it (the deadline passed, the run was interrupted) is abandoned: when it has
not started it never runs (no request goes out for nobody); when it is running, its thread stops counting
against `size`, ends when the call does (the call's own socket timeouts; a trickling server may take
longer) and is not reused, and another thread may take its place, so calls that hang never starve the calls
after them.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

QUEUED, RUNNING, DONE, ABANDONED = "queued", "running", "done", "abandoned"
IDLE = 5.0  # seconds a thread waits for work before it ends (a pool nobody closes keeps no threads)


class Job:
    """One call handed to the pool; `state` is one of QUEUED, RUNNING, DONE, ABANDONED."""

    __slots__ = ("fn", "state")

    def __init__(self, fn: Callable[[], None]):
        self.fn = fn
        self.state = QUEUED


class CallPool:
    def __init__(self, size: int, name: str = "ssdns-call", idle: float = IDLE):
        if size < 1:
            raise ValueError(f"a pool of {size} threads")
        self.size, self.name, self.idle = size, name, idle
        self._cond = threading.Condition()
        self._queue: deque[Job] = deque()
        self._serving = 0  # threads that take jobs from the queue (not those stuck in an abandoned call)
        self._idle = 0  # of those, waiting for a job
        self._closed = False

    @property
    def serving(self) -> int:
        with self._cond:
            return self._serving

    def submit(self, fn: Callable[[], None]) -> Job:
        """Run fn() in one of the threads, in order of submission; fn carries its own result and errors."""
        job = Job(fn)
        with self._cond:
            self._closed = False  # a pool closed and used again serves again
            self._queue.append(job)
            self._cond.notify()
            spawn = self._wanted()
        if spawn:
            self._start()
        return job

    def abandon(self, job: Job) -> None:
        """The caller no longer waits for job: it never runs, or its thread is let go (see the module's doc)."""
        with self._cond:
            if job.state == QUEUED:
                job.state = ABANDONED
                self._queue.remove(job)
            elif job.state == RUNNING:
                job.state = ABANDONED
                self._serving -= 1
            spawn = self._wanted()
        if spawn:
            self._start()

    def close(self) -> None:
        """End the idle threads now (and each running one after its call), not after IDLE: nothing waits for
        them."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _wanted(self) -> bool:
        """(Under the lock) whether a thread is to be started for what waits: one more thread is counted."""
        if len(self._queue) > self._idle and self._serving < self.size:
            self._serving += 1
            return True
        return False

    def _start(self) -> None:
        try:
            threading.Thread(target=self._serve, name=self.name, daemon=True).start()
        except BaseException:
            with self._cond:
                self._serving -= 1
            raise

    def _serve(self) -> None:
        while True:
            with self._cond:
                self._idle += 1
                while not self._queue and not self._closed:
                    if not self._cond.wait(self.idle):
                        break
                self._idle -= 1
                if not self._queue:  # closed, or idle for long: nothing left to do
                    self._serving -= 1
                    return
                job = self._queue.popleft()
                job.state = RUNNING
            try:
                job.fn()
            except BaseException:  # fn carries its own errors: one that escapes ends this thread (another
                with self._cond:  # takes its place for what waits)
                    if job.state != ABANDONED:
                        job.state = DONE
                        self._serving -= 1
                    spawn = self._wanted()
                if spawn:
                    self._start()
                raise
            with self._cond:
                if job.state == ABANDONED:  # let go while the call ran: already not counted; take no more work
                    return
                job.state = DONE
