"""The StatefulSet controller and the kubelet of the sandbox, as one asyncio task.

What it does, with the World's timings:

- a pod deleted through the API stays terminating (deletionTimestamp set, its endpoint
  ready=false, terminating=true) for `terminate_delay` seconds, then its object is gone (a
  DELETED event, the echo pod stops answering);
- the controller keeps ordinals 0..spec.replicas-1: a missing one is created (same name and
  claim, a new UID and a new IP), Pending for `start_delay`, then Running (the echo pod answers
  at the new IP), Ready `ready_delay` seconds after it was created;
- ordinals at or above spec.replicas are terminated, highest first;
- OrderedReady: one pod at a time: it creates the next ordinal only when every lower one is
  Running and Ready, and terminates the next only when the previous one is gone;
  Parallel: every missing pod is created and every condemned pod terminated at once (still one
  write each, ascending for creations and descending for deletions, as the controller issues them);
- PVCs are never deleted; a returning ordinal gets its old claim (see World.create_pod for the
  faults that break that);
- the kubelet: `recreate_sandbox()` (and the fault ip-change, that many seconds after start) gives a
  running pod a new sandbox: the same UID, a new IP at once (the echo pod moves), not Ready until
  `ready_delay` later.

DNS follows on its own (dnsserver.py lags the world by dns_delay). A pod made not Ready by a
fault stays so: the controller only moves pods it created. Every wait is bounded: the task
sleeps until the next timer or a kick, never longer than IDLE seconds, for at most MAX_STEPS steps.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from typing import Awaitable, Callable

from ssdns.sandbox.world import SandboxPod, World

log = logging.getLogger(__name__)

IDLE = 5.0  # seconds: the longest sleep without a timer or a kick (a safety net, not needed)
MAX_STEPS = 10_000_000  # reconcile rounds in one sandbox's life: about a year of work at IDLE


class Controller:
    """`await Controller(world, on_pods_changed).start()`; `delete_pod()`, `set_replicas()`, `kick()`;
    `await stop()`. on_pods_changed() is awaited after each round that changed pods (the echo pods
    re-bind)."""

    def __init__(self, world: World, on_pods_changed: Callable[[], Awaitable[None]] | None = None):
        self.world = world
        self._on_pods_changed = on_pods_changed
        self._timers: list[tuple[float, int, str, str, str]] = []  # (due, seq, action, pod name, pod uid)
        self._seq = itertools.count()
        self._removing: set[str] = set()  # uids with a removal timer
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._moved = False  # pods changed outside a round (recreate_sandbox): the echo pods re-bind
        self.steps = 0

    # --- life -----------------------------------------------------------------------------

    async def start(self) -> "Controller":
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="ssdns-sandbox-controller")
        for name, after in self.world.ip_change_after.items():  # the fault ip-change
            self._schedule(after, "recreate", self.world.pod(name))
        return self

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await asyncio.wait_for(task, 5)
            except (asyncio.CancelledError, asyncio.TimeoutError):
                pass
        self._timers.clear()
        self._removing.clear()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def kick(self) -> None:
        """Look at the world again now (after spec.replicas or pods changed). Thread-safe."""
        if self._wake is None or self._loop is None:
            return
        try:
            same_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            same_loop = False
        if same_loop:
            self._wake.set()
        else:
            self._loop.call_soon_threadsafe(self._wake.set)

    # --- what the API asks ------------------------------------------------------------------

    def delete_pod(self, name: str, grace: float | None = None) -> SandboxPod:
        """Graceful deletion: terminating now, gone after `grace` seconds (default terminate_delay;
        0: at once). Returns the pod as the API answers it (deletionTimestamp set)."""
        pod = self.world.terminate_pod(name)
        delay = self.world.terminate_delay if grace is None else min(max(grace, 0.0), self.world.terminate_delay)
        self._schedule_removal(pod, delay)
        self.kick()
        return pod

    def set_replicas(self, replicas: int) -> None:
        self.world.set_replicas(replicas)
        self.kick()

    def recreate_sandbox(self, name: str) -> SandboxPod:
        """The kubelet recreates the pod's sandbox: same UID, a new IP now, Ready again after ready_delay."""
        pod = self.world.recreate_sandbox(name)
        self._schedule(self.world.ready_delay, "ready", pod)
        self._moved = True
        self.kick()
        return pod

    # --- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        wake = self._wake
        assert wake is not None, "started by start()"
        for _ in range(MAX_STEPS):
            wake.clear()
            self.steps += 1
            try:
                moved, self._moved = self._moved, False
                moved = self._fire_due(time.monotonic()) or moved
                moved = self._reconcile(time.monotonic()) or moved
                if moved and self._on_pods_changed is not None:
                    await self._on_pods_changed()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not kill the controller silently and forever
                log.exception("sandbox controller: reconcile failed")
            timeout = IDLE
            if self._timers:
                timeout = min(IDLE, max(0.0, self._timers[0][0] - time.monotonic()))
            try:
                await asyncio.wait_for(wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        log.error("sandbox controller: stopped after %d rounds", MAX_STEPS)

    def _schedule(self, delay: float, action: str, pod: SandboxPod) -> None:
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), action, pod.name, pod.uid))

    def _schedule_removal(self, pod: SandboxPod, delay: float) -> None:
        if pod.uid not in self._removing:
            self._removing.add(pod.uid)
            self._schedule(delay, "remove", pod)

    def _current(self, name: str, uid: str) -> SandboxPod | None:
        try:
            pod = self.world.pod(name)
        except KeyError:
            return None
        return pod if pod.uid == uid else None

    def _fire_due(self, now: float) -> bool:
        """Run the timers that are due, oldest first. True when a pod changed."""
        moved = False
        for _ in range(len(self._timers)):
            if not self._timers or self._timers[0][0] > now:
                break
            _, _, action, name, uid = heapq.heappop(self._timers)
            pod = self._current(name, uid)
            if pod is None:  # it went (or was replaced) meanwhile
                self._removing.discard(uid)
                continue
            if action == "remove":
                self._removing.discard(uid)
                self.world.delete_pod(name)
                moved = True
            elif pod.terminating:
                continue  # a terminating pod does not start or turn Ready
            elif action == "recreate":
                self.world.recreate_sandbox(name)
                self._schedule(self.world.ready_delay, "ready", pod)
                moved = True
            elif action == "start":
                self.world.start_pod(name)
                moved = True
            elif action == "ready":
                self.world.start_pod(name)
                self.world.set_ready(name, True)
                moved = True
        return moved

    def _reconcile(self, now: float) -> bool:
        """One pass of the StatefulSet controller over the pods. True when a pod changed."""
        w = self.world
        moved = False
        for pod in w.pods:  # the kubelet: whoever set deletionTimestamp, the pod goes after the grace
            if pod.terminating and pod.uid not in self._removing and not pod.stuck:
                self._schedule_removal(pod, w.terminate_delay)
        if w.sts_deleted:
            return moved  # no StatefulSet, no controller: its pods only go
        ordered = w.sts.pod_management_policy == "OrderedReady"
        replicas = w.sts.replicas
        by_ordinal = {p.ordinal: p for p in w.pods}
        for ordinal in range(replicas):
            found = by_ordinal.get(ordinal)
            if found is None:
                pod = w.create_pod(ordinal)
                self._schedule(min(w.start_delay, w.ready_delay), "start", pod)
                self._schedule(w.ready_delay, "ready", pod)
                moved = True
                if ordered:
                    return moved
                continue
            if ordered and (found.terminating or found.phase != "Running" or not found.ready):
                return moved  # OrderedReady: wait for this one to be Running and Ready (or gone)
        for pod in sorted((p for p in w.pods if p.ordinal >= replicas), key=lambda p: -p.ordinal):
            if pod.terminating:
                if ordered:
                    return moved  # wait until it is gone before the next
                continue
            w.terminate_pod(pod.name)
            self._schedule_removal(pod, w.terminate_delay)
            moved = True
            if ordered:
                return moved
        return moved
