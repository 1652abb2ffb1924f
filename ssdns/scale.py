"""scale-test: the experiment StatefulSet users do by hand, with the original replica count always restored.

Scale down to K: the removed pods must go in descending ordinal order and keep their PVCs.
Scale back up: under OrderedReady pods must come back in ascending order; each returned ordinal
must be bound to its old volume, and DNS and HTTP identity must hold for it.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from dataclasses import dataclass

from ssdns.checks.storage import volumes
from ssdns.converge import Progress
from ssdns.errors import ApiUnavailable, UsageError
from ssdns.evidence import ScaleEvidence
from ssdns.names import ordinal
from ssdns.target import ApiOptions, Target

POLL = 0.25


def _ordinal(name: str) -> int:
    return ordinal(name) or 0


class _Order:
    """When each pod started to go (deletionTimestamp or DELETED) and came back (a new UID, Ready)."""

    def __init__(self, before: dict, progress: Progress):
        self.progress = progress
        self.uids = {n: p.uid for n, p in before.items()}
        self.gone: list[str] = []
        self.came: list[str] = []
        self.lock = threading.Lock()
        self.watching = threading.Event()  # set at the watch's first event: from then on it sees every change
        self.watch_failed = False

    def event(self, kind: str, pod) -> None:
        self.watching.set()
        with self.lock:
            if (kind == "DELETED" or pod.terminating) and pod.uid == self.uids.get(pod.name) and pod.name not in self.gone:
                self.gone.append(pod.name)
                self.progress(f"{pod.name}: going")
            elif kind != "DELETED" and pod.uid != self.uids.get(pod.name) and pod.name not in self.came:
                self.came.append(pod.name)
                self.progress(f"{pod.name}: back (uid {pod.uid[:8]})")


async def scale_test(target: Target, api_opts: ApiOptions, to: int, yes: bool, progress: Progress):
    from ssdns import kube
    from ssdns.check import conclude, gather

    start = time.monotonic()
    deadline = start + target.timeout
    client = kube.api_client(api_opts)
    restored = True
    original = None
    try:
        facts = await kube.load_facts(client, target.namespace, target.statefulset, target.service)
        sts = facts.statefulset
        if sts is None:
            raise ApiUnavailable(f"cannot read StatefulSet {target.statefulset}: "
                                 + (facts.problems[0].message if facts.problems else "unknown error"))
        original = sts.replicas
        if not 0 <= to < original:
            raise UsageError(f"--to {to}: give a count below the current {original} replicas of {sts.name}")
        removed = [f"{sts.name}-{i}" for i in sts.ordinals[to:]]
        if not yes:
            raise UsageError(f"scale-test scales {sts.name} from {original} to {to} replicas (removing "
                             f"{', '.join(reversed(removed))}) and back to {original}; add --yes to do it")
        target = target.with_(service=target.service or sts.service_name, replicas=original)
        volumes_before = {n: volumes(facts, n) for n in removed}
        order = _Order(facts.pods, progress)
        stop = threading.Event()
        watcher = asyncio.ensure_future(asyncio.to_thread(
            _watch, client, target.namespace, sts.selector, int(target.timeout) + 1, order, stop))
        # The watch's first events list the current pods: wait for them so it sees every change after.
        await asyncio.to_thread(order.watching.wait, 3.0)
        restored = False
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # a killed Job still restores the count
        try:
            progress(f"{sts.name}: scaling {original} -> {to}")
            await asyncio.to_thread(kube.scale, client, target.namespace, sts.name, to)
            await _until(lambda pods: not any(n in pods for n in removed), client, target, sts.selector,
                         deadline, progress, f"{', '.join(removed)} to go", order)
            pvcs_down = await asyncio.to_thread(kube.list_pvcs, client, target.namespace, sts.selector)
            progress(f"{sts.name}: scaling {to} -> {original}")
            await asyncio.to_thread(kube.scale, client, target.namespace, sts.name, original)
            restored = True
            await _until(lambda pods: all(n in pods and pods[n].ready for n in removed), client, target,
                         sts.selector, deadline, progress, f"{', '.join(removed)} to be Ready", order)
        finally:
            if not restored:
                progress(f"{sts.name}: restoring {original} replicas")
                await asyncio.to_thread(kube.scale, client, target.namespace, sts.name, original)
                restored = True
            signal.signal(signal.SIGTERM, previous)
            stop.set()
        try:
            await asyncio.wait_for(watcher, 2)
        except (asyncio.TimeoutError, Exception):
            pass  # the watch only refines the order; polling saw it too
        after = await kube.load_facts(client, target.namespace, sts.name, target.service)
    finally:
        client.close()
    evidence = ScaleEvidence(sts.name, sts.pod_management_policy, original, to, removed, order.gone, order.came,
                             volumes_before, pvcs_down, after)
    left = max(1.0, deadline - time.monotonic())
    run = await gather(target.with_(timeout=min(left, 10.0)), api_opts)
    return conclude(run.adding(scale=evidence), elapsed_ms=(time.monotonic() - start) * 1000)


@dataclass
class _Gone:
    name: str
    uid: str
    terminating: bool = True


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _watch(client, namespace, selector, seconds, order: _Order, stop) -> None:
    from ssdns import kube

    try:
        kube.watch_pods(client, namespace, selector, seconds, order.event, stop)
    except Exception:
        order.watch_failed = True  # no watch (forbidden, unsupported): polling records the order instead


async def _until(done, client, target, selector, deadline, progress: Progress, what: str, order: _Order) -> None:
    from ssdns import kube

    last_note = time.monotonic()
    for _ in range(int((deadline - time.monotonic()) / POLL) + 2):
        pods = await asyncio.to_thread(kube.list_pods, client, target.namespace, selector)
        if order.watch_failed or not order.watching.is_set():  # the order as polling sees it, coarser
            for name in sorted(order.uids, key=_ordinal, reverse=True):
                pod = pods.get(name)
                if pod is None or pod.terminating:
                    order.event("DELETED", _Gone(name, order.uids[name]))
            for name, pod in sorted(pods.items(), key=lambda kv: _ordinal(kv[0])):
                if pod.uid != order.uids.get(name) and pod.ready:
                    order.event("ADDED", pod)
        if done(pods):
            return
        if time.monotonic() >= deadline:
            break
        if time.monotonic() - last_note >= 5:
            last_note = time.monotonic()
            progress(f"still waiting for {what}")
        await asyncio.sleep(POLL)
    from ssdns.errors import CannotRun

    raise CannotRun(f"timed out waiting for {what}; the replica count is restored")
