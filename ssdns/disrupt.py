"""The skeleton restart-test and scale-test share: read the StatefulSet, plan, note the volumes
before, disrupt, poll until the pods are back (one helper, one interval), read the volumes after,
then the final check, judged with the disruption's evidence by the check registry."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from ssdns.converge import Progress
from ssdns.errors import ApiUnavailable
from ssdns.facts import ClusterFacts, StatefulSetFacts
from ssdns.model import Result
from ssdns.target import ApiOptions, Target

POLL = 0.25  # seconds between looks while waiting; each look is a few API reads and DNS queries
NOTE_EVERY = 5.0  # say what is still awaited this often
FINAL_CHECK_TIMEOUT = 10.0


async def poll_until(look: Callable[[], Awaitable[bool]], deadline: float, progress: Progress,
                     waiting: Callable[[], str], every: float = POLL) -> bool:
    """Call look() every `every` seconds until it returns True (True) or the deadline passes (False),
    with the progress line waiting() every NOTE_EVERY seconds. Bounded in count as well as in time."""
    import asyncio

    last_note = time.monotonic()
    for _ in range(int(max(0.0, deadline - time.monotonic()) / every) + 2):
        if await look():
            return True
        if time.monotonic() >= deadline:
            break
        if time.monotonic() - last_note >= NOTE_EVERY:
            last_note = time.monotonic()
            progress(waiting())
        await asyncio.sleep(every)
    return False


class Disruption:
    """One disruptive run against the API: `async with Disruption(...) as d:` reads the StatefulSet
    (an error when it cannot), then d.client, d.facts and d.statefulset are there; the client is
    closed however the run ends. d.conclude(...) runs the final check with the disruption's evidence."""

    def __init__(self, target: Target, api_opts: ApiOptions, progress: Progress) -> None:
        self.target, self.api_opts, self.progress = target, api_opts, progress
        self.start = time.monotonic()
        self.deadline = self.start + target.timeout
        self.client: Any = None

    async def __aenter__(self) -> Disruption:
        from ssdns import kube

        self.client = kube.api_client(self.api_opts)
        try:
            self.facts = await self.read()
            sts = self.facts.statefulset
            if sts is None:
                problem = self.facts.problems[0] if self.facts.problems else None
                raise ApiUnavailable(str(problem) if problem else f"cannot read StatefulSet {self.target.statefulset}")
        except BaseException:
            self.client.close()
            raise
        self.statefulset: StatefulSetFacts = sts
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.client.close()

    async def read(self) -> ClusterFacts:
        from ssdns import kube

        t = self.target
        return await kube.load_facts(self.client, t.namespace, t.statefulset, t.service)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    async def conclude(self, target: Target, **evidence: Any) -> Result:
        """The final check (within what is left of the deadline, at most FINAL_CHECK_TIMEOUT), judged
        together with the disruption's evidence."""
        from ssdns.check import conclude, gather

        final = target.with_(timeout=min(max(1.0, self.left()), FINAL_CHECK_TIMEOUT))
        run = await gather(final, self.api_opts)
        return conclude(run.adding(**evidence), elapsed_ms=(time.monotonic() - self.start) * 1000)
