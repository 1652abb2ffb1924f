"""scale-test: the experiment StatefulSet users do by hand, with the original replica count always restored.

Scale down to K: the removed pods must go in descending ordinal order and keep their PVCs.
Scale back up: under OrderedReady pods must come back in ascending order; each returned ordinal
must be bound to its old volume, and DNS and HTTP identity must hold for it.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from ssdns.converge import Progress
from ssdns.disrupt import Disruption, poll_until
from ssdns.errors import CannotRun, Interrupted, UsageError
from ssdns.evidence import ScaleEvidence
from ssdns.facts import PodFacts, PvcFacts, StatefulSetFacts
from ssdns.model import Result
from ssdns.names import ordinal
from ssdns.target import ApiOptions, Target


def _ordinal(name: str) -> int:
    return ordinal(name) or 0


@dataclass
class _Gone:
    name: str
    uid: str
    terminating: bool = True


class _Order:
    """When each pod started to go (deletionTimestamp or DELETED) and came back (a new UID, Ready)."""

    def __init__(self, before: dict[str, PodFacts], progress: Progress) -> None:
        self.progress = progress
        self.uids = {n: p.uid for n, p in before.items()}
        self.gone: list[str] = []
        self.came: list[str] = []
        self.lock = threading.Lock()
        self.watching = threading.Event()  # set at the watch's first event: from then on it sees every change
        self.watch_failed = False

    def event(self, kind: str, pod: PodFacts | _Gone) -> None:
        self.watching.set()
        with self.lock:
            if (kind == "DELETED" or pod.terminating) and pod.uid == self.uids.get(pod.name) and pod.name not in self.gone:
                self.gone.append(pod.name)
                self.progress(f"{pod.name}: going")
            elif kind != "DELETED" and pod.uid != self.uids.get(pod.name) and pod.name not in self.came:
                self.came.append(pod.name)
                self.progress(f"{pod.name}: back (uid {pod.uid[:8]})")

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
        if not yes:
            raise UsageError(f"scale-test scales {sts.name} from {original} to {to} replicas (removing "
                             f"{', '.join(reversed(removed))}) and back to {original}; add --yes to do it")
        target = target.with_(service=target.service or sts.service_name, replicas=original)
        before = {n: d.facts.volumes_of(n) for n in removed}
        order = _Order(d.facts.pods, progress)
        pvcs_down = await _down_and_up(d, sts, to, removed, order)
        after = await d.read()
    evidence = ScaleEvidence(sts.name, sts.pod_management_policy, original, to, removed, order.gone, order.came,
                             before, pvcs_down, after)
    return await d.conclude(target, scale=evidence)


async def _down_and_up(d: Disruption, sts: StatefulSetFacts, to: int, removed: list[str],
                       order: _Order) -> dict[str, PvcFacts]:
    """Scale down, wait for the removed pods to go, note their claims, scale back up and wait for them
    to be Ready. The original count is restored however this ends (an error, Ctrl-C, SIGTERM)."""
    from ssdns import kube

    ns, original = d.target.namespace, sts.replicas
    stop = threading.Event()
    watcher = asyncio.ensure_future(asyncio.to_thread(
        _watch, d.client, ns, sts.selector, int(d.target.timeout) + 1, order, stop))
    # The watch's first events list the current pods: wait for them so it sees every change after.
    await asyncio.to_thread(order.watching.wait, 3.0)
    restored = False
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # a killed Job still restores the count
    try:
        d.progress(f"{sts.name}: scaling {original} -> {to}")
        await asyncio.to_thread(kube.scale, d.client, ns, sts.name, to)
        await _until(d, sts, order, lambda pods: not any(n in pods for n in removed), f"{', '.join(removed)} to go")
        pvcs_down = await asyncio.to_thread(kube.list_pvcs, d.client, ns, sts.selector)
        d.progress(f"{sts.name}: scaling {to} -> {original}")
        await asyncio.to_thread(kube.scale, d.client, ns, sts.name, original)
        restored = True
        await _until(d, sts, order, lambda pods: all(n in pods and pods[n].ready for n in removed),
                     f"{', '.join(removed)} to be Ready")
    finally:
        if not restored:
            d.progress(f"{sts.name}: restoring {original} replicas")
            await asyncio.to_thread(kube.scale, d.client, ns, sts.name, original)
        signal.signal(signal.SIGTERM, previous)
        stop.set()
    try:
        await asyncio.wait_for(watcher, 2)
    except Exception:  # noqa: BLE001 - the watch only refines the order; polling saw it too
        pass
    return pvcs_down


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)  # exit 143, like a SIGTERM anywhere else (cli.main)


def _watch(client: Any, namespace: str, selector: str, seconds: int, order: _Order, stop: threading.Event) -> None:
    from ssdns import kube

    try:
        kube.watch_pods(client, namespace, selector, seconds, order.event, stop)
    except Exception:  # noqa: BLE001 - no watch (forbidden, unsupported): polling records the order instead
        order.watch_failed = True


async def _until(d: Disruption, sts: StatefulSetFacts, order: _Order,
                 done: Callable[[dict[str, PodFacts]], bool], what: str) -> None:
    from ssdns import kube

    async def look() -> bool:
        pods = await asyncio.to_thread(kube.list_pods, d.client, d.target.namespace, sts.selector)
        order.polled(pods)
        return done(pods)

    if not await poll_until(look, d.deadline, d.progress, lambda: f"still waiting for {what}"):
        raise CannotRun(f"timed out waiting for {what}; the replica count is restored")
