"""scale-test: the experiment StatefulSet users do by hand, with the original replica count always restored.

Scale down to K: the removed pods must go in descending ordinal order and keep their PVCs.
Scale back up: under OrderedReady pods must come back in ascending order; each returned ordinal
must be bound to its old volume, and DNS and HTTP identity must hold for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ssdns.converge import Progress
from ssdns.disrupt import Disruption, poll_until
from ssdns.errors import ApiError, CannotRun, UsageError
from ssdns.change_evidence import ScaleEvidence
from ssdns.facts import PodFacts, PvcFacts, StatefulSetFacts
from ssdns.model import Result
from ssdns.names import ordinal
from ssdns.restart import service_port
from ssdns.target import ApiOptions, Target


def _ordinal(name: str) -> int:
    return ordinal(name) or 0


@dataclass
class _Gone:
    name: str
    uid: str
    terminating: bool = True


class _Order:
    """When each pod started to go (deletionTimestamp or DELETED) and came back (a new UID, Ready).
    Events come from the watch's thread; `first` is set (on the loop) at the watch's first event."""

    def __init__(self, before: dict[str, PodFacts], progress: Progress) -> None:
        self.progress = progress
        self.uids = {n: p.uid for n, p in before.items()}
        self.gone: list[str] = []
        self.came: list[str] = []
        self.lock = threading.Lock()
        self.watching = threading.Event()  # set at the watch's first event: from then on it sees every change
        self.first = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self.watch_failed = False

    def event(self, kind: str, pod: PodFacts | _Gone) -> None:
        if not self.watching.is_set():
            self.watching.set()
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                self.loop.call_soon_threadsafe(self.first.set)
        with self.lock:
            if (kind == "DELETED" or pod.terminating) and pod.uid == self.uids.get(pod.name) and pod.name not in self.gone:
                self.gone.append(pod.name)
                self.progress(f"{pod.name}: going")
            elif kind != "DELETED" and pod.uid != self.uids.get(pod.name) and pod.name not in self.came:
                self.came.append(pod.name)
                self.progress(f"{pod.name}: back (uid {pod.uid[:8]})")

    def seen(self) -> tuple[list[str], list[str]]:
        """The orders so far, copied: a late event of the watch's thread changes nothing reported."""
        with self.lock:
            return list(self.gone), list(self.came)

    def polled(self, pods: dict[str, PodFacts]) -> None:
        """Without a watch, the order as polling sees it: coarser, but never missing."""
        if not (self.watch_failed or not self.watching.is_set()):
            return
        for name in sorted(self.uids, key=_ordinal, reverse=True):
            pod = pods.get(name)
            if pod is None or pod.terminating:
                self.event("DELETED", _Gone(name, self.uids[name]))
        for name, pod in sorted(pods.items(), key=lambda kv: _ordinal(kv[0])):
            if pod.uid != self.uids.get(name) and pod.ready:
                self.event("ADDED", pod)


async def scale_test(target: Target, api_opts: ApiOptions, to: int, yes: bool, progress: Progress) -> Result:
    async with Disruption(target, api_opts, progress) as d:
        sts = d.statefulset
        original = sts.replicas
        if not 0 <= to < original:
            raise UsageError(f"--to {to}: give a count below the current {original} replicas of {sts.name}")
        removed = [f"{sts.name}-{i}" for i in sts.ordinals[to:]]
        d.refuse_unsettled("scale-test")
        if not yes:
            raise UsageError(f"scale-test scales {sts.name} from {original} to {to} replicas (removing "
                             f"{', '.join(reversed(removed))}) and back to {original}; add --yes to do it")
        target = target.with_(service=target.service or sts.service_name, replicas=original,
                              port=target.port or service_port(d.facts, target.port_name))
        d.target = target  # the probes of the returned pods ask the Service and port the final check does
        before = {n: d.facts.volumes_of(n) for n in removed}
        order = _Order(d.facts.pods, progress)
        pvcs_down = await _down_and_up(d, sts, to, removed, order)
        after = await d.read()
        gone, came = order.seen()
        evidence = ScaleEvidence(sts.name, sts.pod_management_policy, original, to, removed, gone, came,
                                 before, pvcs_down, after)
        return await d.conclude(target, scale=evidence)


async def _down_and_up(d: Disruption, sts: StatefulSetFacts, to: int, removed: list[str],
                       order: _Order) -> dict[str, PvcFacts]:
    """Scale down, wait for the removed pods to go, note their claims, scale back up and wait for them
    to be Ready and answer as themselves; every call and wait ends by d.wait_until. The original count is restored however this
    ends (an error, the deadline, Ctrl-C, SIGTERM), in the time kept for it; when even that fails, the
    error says at what count the StatefulSet is left and how to put it back."""
    from ssdns import kube

    ns, original = d.target.namespace, sts.replicas
    stop = threading.Event()
    threading.Thread(target=_watch, args=(d.client, ns, sts.selector, d.wait_until, order, stop),
                     name="ssdns-scale-watch", daemon=True).start()  # never waited for: it ends by wait_until
    # The watch's first events list the current pods: wait for them so it sees every change after.
    with contextlib.suppress(TimeoutError):  # asyncio.timeout: a cancellation is never dropped (kube.arequest)
        async with asyncio.timeout(max(0.0, min(WATCH_START, d.wait_until - time.monotonic()))):
            await order.first.wait()
    changed: bool | None = False  # the count may differ from `original`: True known, None maybe (no answer)
    try:
        d.progress(f"{sts.name}: scaling {original} -> {to}")
        try:
            await kube.scale(d.client, ns, sts.name, to, deadline=d.wait_until)
        except ApiError as exc:
            if exc.status is None:  # no answer: it may have been done all the same
                changed = None
                d.done.append(f"scaling {sts.name} to {to} got no answer")
            raise
        except BaseException:  # SIGTERM or Ctrl-C with the call in flight: the API may have done it all the same
            changed = None
            d.done.append(f"scaling {sts.name} to {to} was interrupted before its answer")
            raise
        changed = True
        d.done.append(f"scaled {sts.name} to {to}")
        await _until(d, sts, order, lambda pods: not any(n in pods for n in removed), f"{', '.join(removed)} to go")
        pvcs_down = await kube.list_pvcs(d.client, ns, sts.selector, d.wait_until)
        d.progress(f"{sts.name}: scaling {to} -> {original}")
        try:
            await kube.scale(d.client, ns, sts.name, original, deadline=d.wait_until)
        except ApiError as exc:
            if exc.status is None:
                changed = None
                d.done[-1] += f"; scaling it back to {original} got no answer"
            raise
        changed = False
        d.done[-1] = f"scaled {sts.name} to {to} and back to {original}"
        t0 = time.monotonic()
        await _until(d, sts, order, lambda pods: all(n in pods and pods[n].ready for n in removed),
                     f"{', '.join(removed)} to be Ready")
        await _identity_back(d, sts, removed, t0)
    except BaseException:  # also the cancellation a SIGTERM or Ctrl-C makes (aio.run): a killed Job restores too
        if changed is not False:
            await _restore(d, sts, to, known=changed is True)
        raise
    finally:
        stop.set()
    return pvcs_down


async def _identity_back(d: Disruption, sts: StatefulSetFacts, removed: list[str], t0: float) -> None:
    """Wait (by d.wait_until) for the returned pods' DNS and HTTP identity, as restart-test does: DNS
    lags the API, and the final check judges what it sees. One that does not come back is the final
    check's finding, not an error here."""
    from ssdns.converge import wait_for_identity

    target, pods = d.target, d.facts.pods
    await asyncio.gather(*(wait_for_identity(d.client, target, n, ordinal(n, sts.name), pods[n].uid, pods[n].ips, t0,
                                             d.wait_until, d.progress) for n in removed))


WATCH_START = 3.0  # seconds, at most, for the watch's first events (less when less is left)
RESTORE_FLOOR = 1.0  # seconds restoring gets even when interrupted at the deadline: the count matters more


async def _restore(d: Disruption, sts: StatefulSetFacts, to: int, known: bool) -> None:
    """Scale back to the original count, by the deadline (at least RESTORE_FLOOR from now). d.done
    says how it went; a failure names the count the StatefulSet is left at and the command that fixes it."""
    from ssdns import kube

    ns, original = d.target.namespace, sts.replicas
    d.progress(f"{sts.name}: restoring {original} replicas")
    try:
        await kube.scale(d.client, ns, sts.name, original, deadline=max(d.deadline, time.monotonic() + RESTORE_FLOOR))
    except ApiError as exc:
        # Only an answered refusal says the count did not change; a call with no answer may have been done.
        left = f"is left at {to}" if known and exc.status is not None else f"may be left at {to}"
        d.done[-1] = (f"{d.done[-1]}; restoring it failed too ({exc.reason or exc.kind}): {sts.name} {left} replicas; "
                      f"put it back with 'kubectl scale statefulset {sts.name} --replicas={original} -n {ns}'")
        d.progress(f"{sts.name}: NOT restored: it {left} replicas; put it back with "
                   f"'kubectl scale statefulset {sts.name} --replicas={original} -n {ns}'")
        return
    d.done[-1] = f"{d.done[-1]}; restored {original} replicas"


def _watch(client: Any, namespace: str, selector: str, deadline: float, order: _Order, stop: threading.Event) -> None:
    from ssdns import kube

    try:
        kube.watch_pods(client, namespace, selector, deadline, order.event, stop)
    except Exception:  # noqa: BLE001 - no watch (forbidden, unsupported): polling records the order instead
        order.watch_failed = True
        with contextlib.suppress(RuntimeError):  # nobody need wait for its first events any more
            order.loop.call_soon_threadsafe(order.first.set)


async def _until(d: Disruption, sts: StatefulSetFacts, order: _Order,
                 done: Callable[[dict[str, PodFacts]], bool], what: str) -> None:
    from ssdns import kube

    async def look() -> bool:
        pods = await kube.list_pods(d.client, d.target.namespace, sts.selector, d.wait_until)
        order.polled(pods)
        return done(pods)

    if not await poll_until(look, d.wait_until, d.progress, lambda: f"still waiting for {what}"):
        raise CannotRun(f"{what} did not happen in time: {d.waiting_ended()}")
