"""ssdns watch's view of the StatefulSet's pods: list, then watch from the list's resourceVersion.

A stream that the server ends (timeoutSeconds) is renewed at once from the last resourceVersion; one
that breaks is renewed after a capped, jittered backoff; a 410 Gone lists again. A StatefulSet that
is deleted is reported and looked for again every backoff, never given up on. Nothing loops busily:
every retry waits, and a stream that ends at once counts as a failure.

Changes that start a convergence probe: a pod name with a new UID (replaced: t0 is when the watch saw
the old pod go, its deletionTimestamp or its delete event), and a pod whose IPs changed under the same
UID (t0 is that event; when the kubelet recreated the pod's sandbox the pod may show no IP for a while
in between: then t0 is when its old IP went, and the change is the old IP against the new one). A brand
new ordinal (scaled up) starts none.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Callable

from ssdns.errors import TIMEOUT, ApiError, ApiUnavailable
from ssdns.facts import PodFacts
from ssdns.frozen import frozen

BACKOFF_FIRST = 0.25  # seconds before the first retry
BACKOFF_CAP = 30.0  # never longer between tries
QUICK_END = 1.0  # a stream the server ends within this is treated as a failure (no busy loop)
CALL_TIMEOUT = 10.0  # a list or get, at most, unless the watch gives its own (ssdns watch: --timeout)


@frozen
class Gone:
    uid: str
    ips: list[str]
    at: float  # monotonic: when the watch saw it go


@frozen
class Change:
    pod: str
    cause: str  # replaced, ip-changed
    old_uid: str
    old_ips: list[str]
    t0: float  # monotonic


class Backoff:
    """Capped exponential backoff with jitter (half to all of the step)."""

    def __init__(self, first: float = BACKOFF_FIRST, cap: float = BACKOFF_CAP):
        self.first, self.cap, self.tries = first, cap, 0

    def next(self) -> float:
        step = min(self.cap, self.first * 2 ** min(self.tries, 20))
        self.tries += 1
        return step * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.tries = 0


class PodWatcher:
    """`await PodWatcher(api, namespace, statefulset, on_change, log).run(stop)`; `pods` is the current
    view; `connected`, `reconnects`, `relists`, `sts_missing` say how the watch is doing."""

    def __init__(self, api, namespace: str, statefulset: str, on_change: Callable[[Change], None],
                 log: Callable[[str], None], give_up: float = 300.0, call_timeout: float = CALL_TIMEOUT):
        self.api, self.namespace, self.statefulset = api, namespace, statefulset
        self.call_timeout = call_timeout  # a re-list's bound: a large StatefulSet's list gets what --timeout gives
        self.on_change, self.log, self.give_up = on_change, log, give_up
        self.pods: dict[str, PodFacts] = {}
        self.gone: dict[str, Gone] = {}
        self.unaddressed: dict[str, Gone] = {}  # same UID, its IPs gone (a sandbox being recreated): the old ones
        self.version: str | None = None
        self.selector: str | None = None
        self.service: str | None = None
        self.connected = False
        self.last_contact: float | None = None  # monotonic: the last list or event
        self.reconnects = 0
        self.relists = 0
        self.sts_missing = False
        self.backoff = Backoff()

    def owners(self) -> dict[str, str]:
        return {ip: p.name for p in self.pods.values() for ip in p.ips}

    async def start(self, deadline: float) -> None:
        """The first list, by the deadline: a refused read here is an error (exit 4) naming the grant."""
        await self._list(first=True, deadline=deadline)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if self.version is None:
                    await self._list()
                    if self.version is None:  # the StatefulSet is gone: look again later
                        await _sleep(stop, self.backoff.next())
                        continue
                began = time.monotonic()
                await self._stream(stop)
                if time.monotonic() - began < QUICK_END:
                    await _sleep(stop, self.backoff.next())
                else:
                    self.backoff.reset()
            except ApiError as exc:
                self.connected = False
                if exc.status == 410:
                    self.relists += 1
                    self.version = None
                    self.log("watch: resourceVersion too old (410 Gone); listing the pods again")
                    continue
                self.reconnects += 1
                delay = self.backoff.next()
                self.log(f"watch: {exc}; again in {delay:.1f} s")
                await _sleep(stop, delay)

    async def refresh(self, deadline: float | None = None) -> None:
        """Look at the StatefulSet again (before every full check, by its deadline): its deletion is
        reported once, and its return; a new selector lists the pods again."""
        from ssdns import kube

        deadline = deadline or time.monotonic() + self.call_timeout
        try:
            sts = await kube.read_statefulset(self.api, self.namespace, self.statefulset, deadline)
        except ApiError as exc:
            self.log(f"watch: cannot read the StatefulSet: {exc}")
            return
        if sts is None:
            if not self.sts_missing:
                self.log(f"watch: StatefulSet {self.namespace}/{self.statefulset} was deleted; "
                         "watching for it to come back")
            self.sts_missing = True
            return
        if self.sts_missing:
            self.log(f"watch: StatefulSet {self.namespace}/{self.statefulset} is back")
        self.sts_missing = False
        self.service = sts.service_name
        if self.selector is not None and sts.selector != self.selector:
            self.selector, self.version = sts.selector, None  # list again with the new selector

    # --- list -------------------------------------------------------------------------------

    async def _list(self, first: bool = False, deadline: float | None = None) -> None:
        from ssdns import kube

        deadline = deadline or time.monotonic() + self.call_timeout
        try:
            sts = await kube.read_statefulset(self.api, self.namespace, self.statefulset, deadline)
        except ApiError as exc:
            if first:
                raise ApiUnavailable(f"ssdns watch needs the StatefulSet: {exc}") from None
            raise
        if sts is None:
            self._sts_gone(first)
            return
        if self.sts_missing:
            self.log(f"watch: StatefulSet {self.namespace}/{self.statefulset} is back")
        self.sts_missing = False
        self.selector, self.service = sts.selector, sts.service_name
        try:
            pods, version = await kube.list_pods_versioned(self.api, self.namespace, sts.selector, deadline)
        except ApiError as exc:
            if first:
                raise ApiUnavailable(f"ssdns watch needs to list the pods: {exc}") from None
            raise
        now = time.monotonic()
        self.last_contact = now
        if not first:
            for name in [n for n in self.pods if n not in pods]:
                self._went(self.pods.pop(name), now)
            for pod in pods.values():
                self.apply("MODIFIED", pod, now)
        self.pods = dict(pods)
        self.version = version

    def _sts_gone(self, first: bool) -> None:
        """The StatefulSet does not exist: at start an error, later reported once; its pods count as gone."""
        if first:
            raise ApiUnavailable(f"StatefulSet {self.namespace}/{self.statefulset} does not exist (HTTP 404): "
                                 "check --statefulset and --namespace")
        if not self.sts_missing:
            self.log(f"watch: StatefulSet {self.namespace}/{self.statefulset} was deleted; "
                     "watching for it to come back")
        self.sts_missing = True
        now = time.monotonic()
        for pod in list(self.pods.values()):
            self._went(pod, now)
        self.pods.clear()
        self.last_contact = now

    # --- watch ------------------------------------------------------------------------------

    async def _stream(self, stop: asyncio.Event) -> None:
        """One watch request in a daemon thread; its events applied here, on the loop. Returns when the
        server ends it; raises its ApiError. A stop abandons the thread (it ends with its request)."""
        from ssdns import kube

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        halt = threading.Event()
        assert self.selector is not None and self.version is not None

        def on_event(kind: str, pod: PodFacts | None, rv: str) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody listens
                loop.call_soon_threadsafe(queue.put_nowait, ("event", kind, pod, rv))

        def work() -> None:
            try:
                kube.stream_pods(self.api, self.namespace, self.selector or "", self.version or "", on_event, halt)
                item: tuple = ("end", None, None, None)
            except ApiError as exc:
                item = ("error", exc, None, None)
            except Exception as exc:  # noqa: BLE001 - carried to the loop as one line
                item = ("error", ApiError("bad-answer", "watch", "pods", reason=f"{type(exc).__name__}: {exc}",
                                          namespace=self.namespace), None, None)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, item)

        threading.Thread(target=work, name="ssdns-watch", daemon=True).start()
        self.connected = True
        self.last_contact = time.monotonic()
        # The server ends a stream at timeoutSeconds; one that trickles past that (each byte resets the
        # read timeout) is given up here, its thread abandoned, and watched again after a backoff.
        bound = kube.WATCH_SECONDS + kube.WATCH_READ_SLACK
        ends = self.last_contact + bound
        stopped = asyncio.ensure_future(stop.wait())
        got: asyncio.Future | None = None
        try:
            while True:
                got = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({got, stopped}, timeout=max(0.0, ends - time.monotonic()),
                                             return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    raise ApiError(TIMEOUT, "watch", "pods", reason=f"the stream did not end within {bound:.0f} s",
                                   namespace=self.namespace, server=self.api.server)
                if got not in done:
                    return
                what, a, pod, rv = got.result()
                if what == "end":
                    return
                if what == "error":
                    raise a
                self.last_contact = time.monotonic()
                if rv:
                    self.version = rv
                if pod is not None:
                    self.apply(a, pod, self.last_contact)
        finally:
            halt.set()
            for fut in (got, stopped):
                if fut is not None:
                    fut.cancel()
            await asyncio.gather(*(f for f in (got, stopped) if f is not None), return_exceptions=True)
            self.connected = False

    # --- changes ----------------------------------------------------------------------------

    def _went(self, pod: PodFacts, now: float) -> None:
        seen = self.gone.get(pod.name)
        if seen is None or seen.uid != pod.uid:
            old = self.pods.get(pod.name)
            ips = pod.ips or (old.ips if old is not None and old.uid == pod.uid else [])
            self.gone[pod.name] = Gone(pod.uid, list(ips), now)

    def apply(self, kind: str, pod: PodFacts, now: float) -> None:
        """One event (or a re-listed pod, as MODIFIED) into the view; a replacement or a new IP starts a
        probe through on_change."""
        prev = self.pods.get(pod.name)
        if kind == "DELETED":
            self.unaddressed.pop(pod.name, None)
            if prev is None or prev.uid == pod.uid:
                self._went(pod, now)
                self.pods.pop(pod.name, None)
            return
        if pod.terminating:
            self._went(pod, now)
        self.pods[pod.name] = pod
        if prev is not None and prev.uid == pod.uid:
            self._readdressed(prev, pod, now)
            return
        gone = self.gone.get(pod.name)
        if gone is not None and gone.uid != pod.uid:
            del self.gone[pod.name]
            t0 = gone.at if now - gone.at < self.give_up else now  # came back long after: time it from now
            self.on_change(Change(pod.name, "replaced", gone.uid, gone.ips, t0))
        elif prev is not None:  # a new UID without the old one seen going (missed while disconnected)
            self.on_change(Change(pod.name, "replaced", prev.uid, list(prev.ips), now))


    def _readdressed(self, prev: PodFacts, pod: PodFacts, now: float) -> None:
        """The same pod (UID) with other IPs: at once, or after an interval without any."""
        if prev.ips and not pod.ips:
            self.unaddressed[pod.name] = Gone(pod.uid, list(prev.ips), now)
            return
        lost = self.unaddressed.pop(pod.name, None) if pod.ips else None
        old, t0 = (lost.ips, lost.at) if lost is not None and lost.uid == pod.uid else (prev.ips, now)
        if old and pod.ips and set(old) != set(pod.ips):
            self.on_change(Change(pod.name, "ip-changed", pod.uid, list(old), t0))


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
