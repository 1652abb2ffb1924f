"""The skeleton restart-test and scale-test share: read the StatefulSet, refuse one that is not settled,
plan, note the volumes before, disrupt, poll until the pods are back (one helper, one interval), read
the volumes after, then the final check, judged with the disruption's evidence by the check registry.

One deadline: the run's (--timeout, counted from start-up). Waiting on the cluster (a replacement, a
scale) ends `reserve` before it (a quarter of --timeout, at most RESERVE_MAX), so restoring the replica
count and the final check always have that time; the final check gets all the time left. Every API
call and every poll takes its bound from the time left to the end of its phase (`wait_until` while
disrupting, `deadline` after): nothing waits on a constant. A final check with less than FINAL_MIN
left is not started: the run ends with exit 3 (cut off by its deadline) and says what it did.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from ssdns.converge import Progress
from ssdns.errors import TIMEOUT, ApiError, ApiUnavailable, CannotRun, Interrupted, SsdnsError, UsageError
from ssdns.facts import ClusterFacts, StatefulSetFacts
from ssdns.model import Result
from ssdns.names import ordinal
from ssdns.target import ApiOptions, Target

POLL = 0.25  # seconds between looks while waiting; each look is a few API reads and DNS queries
NOTE_EVERY = 5.0  # say what is still awaited this often
RESERVE_SHARE = 0.25  # of --timeout: kept after the waiting for restoring and the final check
RESERVE_MAX = 30.0  # seconds: the reserve of a long --timeout (the final check gets all that is left anyway)
FINAL_MIN = 0.5  # seconds: a final check with less left is not started (it could only time out)
FAIR_LOOK = 1.0  # seconds: a look that timed out with less than this left ran into the deadline, not a hung API


async def poll_until(look: Callable[[], Awaitable[bool]], deadline: float, progress: Progress,
                     waiting: Callable[[], str], every: float = POLL) -> bool:
    """Call look() every `every` seconds until it returns True (True) or the deadline passes (False),
    with the progress line waiting() every NOTE_EVERY seconds. Bounded in count as well as in time;
    no sleep runs past the deadline, and no look starts after it."""
    import asyncio

    last_note = time.monotonic()
    for _ in range(int(max(0.0, deadline - time.monotonic()) / every) + 2):
        had = deadline - time.monotonic()
        try:
            if await look():
                return True
        except ApiError as exc:
            if exc.kind != TIMEOUT or had >= FAIR_LOOK:
                raise  # the API failed (a hanging API is cut off here): the caller's error
            return False  # a look begun just before the deadline: that is the deadline, not the API
        if time.monotonic() >= deadline:
            break
        if time.monotonic() - last_note >= NOTE_EVERY:
            last_note = time.monotonic()
            progress(waiting())
        await asyncio.sleep(max(0.0, min(every, deadline - time.monotonic())))
        if time.monotonic() >= deadline:
            break
    return False


class Disruption:
    """One disruptive run against the API: `async with Disruption(...) as d:` reads the StatefulSet
    (an error when it cannot), then d.client, d.facts and d.statefulset are there; the client is
    closed however the run ends. d.conclude(...) runs the final check with the disruption's evidence.
    d.done says what the run changed so far: an error that ends the run early says it too."""

    def __init__(self, target: Target, api_opts: ApiOptions, progress: Progress) -> None:
        self.target, self.api_opts, self.progress = target, api_opts, progress
        self.start = time.monotonic()
        self.deadline = target.deadline or self.start + target.timeout
        self.reserve = min(RESERVE_MAX, RESERVE_SHARE * target.timeout)
        self.wait_until = self.deadline - self.reserve  # waiting on the cluster ends here
        self.client: Any = None
        self.done: list[str] = []

    async def __aenter__(self) -> Disruption:
        from ssdns import kube

        self.client = kube.api_client(self.api_opts, self.deadline)  # every call ends by the deadline at the latest
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
        import asyncio

        self.client.close()
        if isinstance(exc, SsdnsError) and not isinstance(exc, UsageError) and self.done:
            raise said(exc, f"before that, {'; '.join(self.done)}") from None
        if isinstance(exc, (Interrupted, KeyboardInterrupt, asyncio.CancelledError)) and self.done:
            self.progress(f"stopped; before that, {'; '.join(self.done)}")  # the interrupt's own line follows

    async def read(self) -> ClusterFacts:
        from ssdns import kube

        t = self.target
        return await kube.load_facts(self.client, t.namespace, t.statefulset, t.service)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def waiting_ended(self) -> str:
        """Why a wait stopped: the part of --timeout it may use."""
        return (f"waiting ends {self.reserve:.1f} s before the deadline (--timeout {self.target.timeout:g} s), "
                "which is kept for restoring and the final check; raise --timeout")

    def refuse_unsettled(self, command: str) -> None:
        """Exit 3 before anything changes when the StatefulSet is not settled (unsettled())."""
        why = unsettled(self.facts, self.target.namespace)
        if why:
            raise CannotRun(f"{command} changes nothing while {why}")

    async def conclude(self, target: Target, **evidence: Any) -> Result:
        """The final check, with all the time left before the deadline, judged together with the
        disruption's evidence; not started when less than FINAL_MIN is left."""
        from ssdns.check import conclude, gather

        if self.left() < FINAL_MIN:
            raise CannotRun(f"the deadline (--timeout {target.timeout:g} s) passed before the final check could "
                            "start; raise --timeout")
        run = await gather(target.with_(deadline=self.deadline), self.api_opts)
        return conclude(run.adding(**evidence), elapsed_ms=(time.monotonic() - self.start) * 1000)


def unsettled(facts: ClusterFacts, namespace: str) -> str | None:
    """Why the StatefulSet is not in a state to disrupt, or None: a rollout under way, a pod terminating,
    missing or not Ready. Deleting or scaling then would wait on the controller (OrderedReady holds a
    replacement until every other pod is Ready; a stuck Terminating pod never goes) and mix the rollout
    into the timings, and it could make a broken StatefulSet worse."""
    sts = facts.statefulset
    assert sts is not None
    name, ns = sts.name, namespace
    rollout = _rollout(sts, facts)
    if rollout:
        return rollout + f"; then run it again (see 'kubectl rollout status statefulset/{name} -n {ns}')"
    terminating = sorted(n for n, p in facts.pods.items() if p.terminating)
    if terminating:
        return (f"{', '.join(terminating)} {_is(terminating)} terminating (stuck? its node may be gone): "
                f"wait for it to go, or see why with 'kubectl describe pod {terminating[0]} -n {ns}'")
    expected = [f"{name}-{o}" for o in sts.ordinals]
    missing = [n for n in expected if n not in facts.pods]
    if missing:
        return (f"{', '.join(missing)} {_is(missing)} missing ({len(facts.pods)} pods for {sts.replicas} replicas): "
                f"let the controller settle ('kubectl get statefulset {name} -n {ns}'), then run it again")
    not_ready = [n for n in expected if not facts.pods[n].ready]
    if not_ready:
        return (f"{', '.join(not_ready)} {_is(not_ready)} not Ready: fix that first "
                f"('kubectl describe pod {not_ready[0]} -n {ns}'); the test times a healthy StatefulSet")
    return None


def _rollout(sts: StatefulSetFacts, facts: ClusterFacts) -> str | None:
    """A rollout under way: a pod not at the update revision (its controller-revision-hash label), or,
    when no pod says its revision, currentRevision not yet updateRevision. The pods are what counts:
    status.currentRevision has been seen to lag a finished rollout."""
    update = sts.update_revision
    if not update:
        return None
    # A staged rollout keeps the pods below its partition at the old revision on purpose: not behind.
    revisions = {n: p.revision for n, p in facts.pods.items() if p.revision and (ordinal(n, sts.name) or 0) >= sts.partition}
    behind = sorted(n for n, r in revisions.items() if r != update)
    if not behind and (revisions or not sts.current_revision or sts.current_revision == update):
        return None
    head = (f"a rollout of {sts.name} is under way (to revision {update}; "
            f"{', '.join(behind) + ' not updated yet' if behind else f'currentRevision {sts.current_revision}'})")
    if sts.update_strategy == "OnDelete":
        return head + ": with updateStrategy OnDelete a deleted pod comes back at the new revision; finish the rollout"
    return head + ": wait for it to finish"


def _is(names: list[str]) -> str:
    return "is" if len(names) == 1 else "are"


def said(exc: SsdnsError, more: str) -> SsdnsError:
    """exc's one line with more said after it, and exc's exit code."""
    out = SsdnsError(f"{exc}; {more}")
    out.exit_code = exc.exit_code
    return out
