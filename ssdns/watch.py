"""ssdns watch: a long-running probe. It watches the StatefulSet's pods (podwatch.py), measures how each
replaced pod's identity comes back through every resolver of --resolvers (watchprobe.py, one probe per
resolver and transport; the resolvers in watchresolvers.py), runs the full check every --interval, keeps
--state as `check` does (convergence events go into its history), and serves /metrics, /healthz,
/readyz, /report and a small page (watchweb.py).

Stopping (SIGTERM, Ctrl-C, or the `stop` event): probes in flight end at once (recorded as stopped),
pending events are written to the state within STOP_FLUSH seconds, the server closes, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ssdns.errors import SsdnsError
from ssdns.facts import PodFacts
from ssdns.frozen import frozen
from ssdns.model import Result
from ssdns.podwatch import Change, PodWatcher
from ssdns.target import ApiOptions, Target
from ssdns.watchprobe import ConvergenceEvent, ConvergenceProbe, ProbeOptions, Resolver, wall
from ssdns.watchresolvers import ResolverSet, Update

RECENT = 50  # convergence events kept for the page
STOP_FLUSH = 1.5  # seconds for the last state write after a stop
EVENTS_KEPT = 200  # convergence events kept in the state: per probe leg, so 200 replacements however many
MAX_KEPT = 4 * EVENTS_KEPT  # ... up to 4 legs (~550 bytes an event: ~450 KB; a ConfigMap holds 1 MiB)
MAX_PROBES = 256  # probes at once (one per pod, resolver and transport); more wait their turn
SPREAD_STAGES = ("dns", "old_ip_gone")  # per replacement: the slowest resolver and the spread, for these


@frozen
class WatchSettings:
    target: Target
    api: ApiOptions
    probe: ProbeOptions
    interval: float = 60.0
    listen: tuple[str | None, int] = (None, 9798)
    state: str | None = None
    history: int = 20
    timeout: float = 10.0  # each full check's deadline, and the start-up's
    labels: dict[str, str] = field(default_factory=dict)  # constant metric labels (--metric-label)


class Watch:
    """`await Watch(settings).run(stop)`. Its fields are what the endpoints render."""

    def __init__(self, settings: WatchSettings, log: Callable[[str], None] | None = None):
        self.s = settings
        self.log = log or _stderr
        self.last: Result | None = None  # the last full check
        self.last_error: str | None = None  # the last full check could not run: why
        self.last_check_at: float | None = None  # Unix time
        self.checks = 0
        self.recent: deque[ConvergenceEvent] = deque(maxlen=RECENT)
        self.spreads: deque[Spread] = deque(maxlen=RECENT)  # per replacement through several resolvers
        self.pending: list[dict] = []  # events not yet in the state
        self.watcher: PodWatcher | None = None
        self.probes: dict[ProbeKey, asyncio.Task] = {}
        self._probe_events: dict[ProbeKey, ConvergenceEvent] = {}
        self._replacements: dict[str, _Replacement] = {}  # per pod: its probes' events, until all ended
        self.resolvers = ResolverSet(settings.target, _resolv_nameservers(settings.target))
        self._probe_stop = asyncio.Event()
        self._slots = asyncio.Semaphore(MAX_PROBES)
        self.http_port: int | None = settings.target.port
        self.probe_target = settings.target  # refined by each full check (the Service, the port for SRV)
        self.started = time.time()
        self.metrics: Any = None  # watchweb.WatchMetrics, once serving

    @property
    def ready(self) -> bool:
        return self.checks > 0

    def healthy(self, window: float) -> bool:
        w = self.watcher
        if w is None:
            return False
        return w.connected or (w.last_contact is not None and time.monotonic() - w.last_contact < window)

    # --- life -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, on_ready: Callable[[int], None] | None = None) -> None:
        from ssdns import kube
        from ssdns.watchweb import WatchMetrics, serve

        t = self.s.target
        assert t.statefulset, "watch needs --statefulset"
        self.metrics = WatchMetrics(self)
        runner = await serve(self, *self.s.listen)
        try:
            port = runner.addresses[0][1] if runner.addresses else 0
            if on_ready is not None:
                on_ready(port)
            start_by = time.monotonic() + self.s.timeout  # the start-up's one deadline
            api = kube.api_client(self.s.api, start_by)  # loading credentials (an exec plugin) is start-up too
            api.deadline = None  # from here each call takes its own bound (podwatch.py, full_check)
            try:
                self.watcher = PodWatcher(api, t.namespace, t.statefulset, self._changed, self.log, self.s.probe.give_up,
                                          call_timeout=self.s.timeout)
                if not await _unless_stopped(self.watcher.start(start_by), stop):
                    return  # stopped while starting
                if self.resolvers.discovering and not await _unless_stopped(self._discover(start_by), stop):
                    return
                self.log(f"watch: {t.namespace}/{t.statefulset}: {len(self.watcher.pods)} pods, watching from "
                         f"resourceVersion {self.watcher.version}; serving /metrics, /healthz, /readyz, /report "
                         f"and / on {self.s.listen[0] or '*'}:{port}")
                probes = self._resolvers()
                if len(probes) > 1 or probes[0].transport != "udp":
                    self.log("watch: each replacement is probed through " + ", ".join(
                        f"{p.via}{' over TCP' if p.transport == 'tcp' else ''} [{p.slot}]" for p in probes))
                tasks = [asyncio.ensure_future(self.watcher.run(stop)), asyncio.ensure_future(self._checks(stop))]
                await stop.wait()
                await self._stop(tasks)
            finally:
                api.close()
        finally:
            await runner.cleanup()

    async def _stop(self, tasks: list[asyncio.Task]) -> None:
        self._probe_stop.set()
        for task in [*tasks, *self.probes.values()]:
            task.cancel()
        await asyncio.gather(*tasks, *self.probes.values(), return_exceptions=True)
        for key in list(self._probe_events):  # cancelled mid-round: record as stopped
            self._end(key, "stopped", "the watch stopped")
        if self.pending:
            await self._flush(STOP_FLUSH)

    async def _discover(self, deadline: float) -> None:
        """--resolvers all: the cluster DNS Service's replicas, before the first replacement is probed."""
        from dataclasses import replace

        update = await self.resolvers.discover(self.s.api, deadline)  # the start-up's deadline
        self._learned(replace(update, came=()))  # the start-up line names them all

    def _learned(self, update: Update) -> None:
        """A discovery's outcome: logged; probes through a resolver that left end (reported, not fatal)."""
        for w in update.warnings:
            hint = " (for ssdns watch: kubectl apply -k k8s/watch-resolvers, or k8s/watch-per-node-resolvers)" \
                if "k8s/resolvers/" in w else ""
            self.log(f"watch: resolvers: {w}{hint}")
        if update.came:
            self.log("watch: probing through " + ", ".join(f"{r.describe()} [{self.resolvers.slot(r)}]"
                                                            for r in update.came))
        for r in update.gone:
            self.log(f"watch: {r.describe()} is no longer an endpoint of {'/'.join(self.resolvers.choice.dns_service)}")
            for key in [k for k in self._probe_events if k[1] == r.label]:
                task = self.probes.pop(key, None)
                if task is not None:
                    task.cancel()
                self._end(key, "resolver-gone", f"{r.describe()} left the DNS Service's endpoints")

    def _end(self, key: ProbeKey, outcome: str, why: str) -> None:
        """A probe ended from outside (stopped, superseded, its resolver gone): recorded once."""
        ev = self._probe_events.pop(key, None)
        if ev is not None and ev.outcome == "probing":
            ev.outcome, ev.still_wrong = outcome, [why]
            group = self._replacements.get(ev.pod)
            if group is not None:
                ev.elapsed = time.monotonic() - group.t0
            self._record(ev)

    # --- convergence probes -----------------------------------------------------------------

    def _resolvers(self) -> list[Resolver]:
        """Where probes ask: every resolver known now, per transport (the path alone by default)."""
        return self.resolvers.probes()

    def _changed(self, change: Change) -> None:
        from ssdns.names import ordinal

        t = self.s.target
        for key in [k for k in self.probes if k[0] == change.pod]:
            old = self.probes.pop(key)
            if not old.done():
                old.cancel()
                self._end(key, "superseded", "replaced again before it converged")
        self.log(f"watch: {change.pod} {change.cause} (uid {change.old_uid[:8]}, was {', '.join(change.old_ips) or 'no IP'})")
        target = self.probe_target
        if not target.service and self.watcher is not None:
            target = target.with_(service=self.watcher.service)
        seen_at = wall(change.t0)
        group = self._replacements[change.pod] = _Replacement(change.pod, change.cause, seen_at, change.t0)
        for i, resolver in enumerate(self._resolvers()):
            ev = ConvergenceEvent(change.pod, ordinal(change.pod, t.statefulset), change.cause, resolver.label,
                                  change.old_uid, list(change.old_ips), seen_at, transport=resolver.transport,
                                  via=resolver.via)
            # HTTP identity does not go through a resolver: the first probe (the path's) asks it, once
            probe = ConvergenceProbe(target if i == 0 else target.with_(http=False), ev, change.t0, self.s.probe,
                                     resolver, self._viewer(change.pod), self._owners, self._port)
            key = (change.pod, resolver.label, resolver.transport)
            group.events.append(ev)
            group.slots[id(ev)] = resolver.slot
            self._probe_events[key] = ev
            self.probes[key] = asyncio.ensure_future(self._probe(key, probe))

    def _viewer(self, name: str) -> Callable[[], PodFacts | None]:
        return lambda: self.watcher.pods.get(name) if self.watcher is not None else None

    def _port(self) -> int | None:
        return self.http_port

    def _owners(self) -> dict[str, str]:
        return self.watcher.owners() if self.watcher is not None else {}

    async def _probe(self, key: ProbeKey, probe: ConvergenceProbe) -> None:
        async with self._slots:
            try:
                ev = await probe.run(self._probe_stop)
            except Exception as exc:  # noqa: BLE001 - a bug in one probe must not end the watch
                ev = probe.event
                ev.outcome, ev.still_wrong = "error", [f"internal error: {type(exc).__name__}: {exc}"]
        if self._probe_events.get(key) is ev:
            del self._probe_events[key]
            self.probes.pop(key, None)
        self._record(ev)

    def kept(self) -> int:
        """Convergence events kept: EVENTS_KEPT replacements' worth, each replacement an event per leg."""
        return min(MAX_KEPT, EVENTS_KEPT * max(1, len(self.resolvers.probes())))

    def _record(self, ev: ConvergenceEvent) -> None:
        self.recent.append(ev)
        self.pending.append(ev.to_dict())
        del self.pending[:-self.kept()]
        group = self._replacements.get(ev.pod)
        slot = group.slots.get(id(ev), "path") if group is not None else "path"
        if self.metrics is not None:
            self.metrics.observe(ev, slot)
        self.log(f"watch: {ev.summary()}")
        if group is not None and any(e is ev for e in group.events):
            group.ended += 1
            if group.ended == len(group.events):
                del self._replacements[ev.pod]
                self._spread(group)

    def _spread(self, group: _Replacement) -> None:
        """All of a replacement's probes ended: through several resolvers, which was slowest, by how much (not
        when a probe was cut short: stopped, superseded, its resolver gone)."""
        if len(group.events) < 2 or any(ev.outcome not in ("converged", "gave-up") for ev in group.events):
            return
        spread = Spread.of(group)
        self.spreads.append(spread)
        if self.metrics is not None:
            self.metrics.observe_spread(spread)
        self.log(f"watch: {spread.summary()}")

    # --- full checks ------------------------------------------------------------------------

    async def _checks(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            began = time.monotonic()
            await self.full_check()
            left = self.s.interval - (time.monotonic() - began)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, left))

    async def full_check(self) -> None:
        from ssdns.check import run_check

        t = self.s.target
        deadline = time.monotonic() + self.s.timeout  # one per full check: the re-read, the check, the state
        if self.watcher is not None:
            await self.watcher.refresh(deadline)
        try:
            result = await run_check(t.with_(deadline=deadline, timeout=self.s.timeout), self.s.api)
        except SsdnsError as exc:
            self.last_error = str(exc)
            self.log(f"watch: the full check could not run: {exc}")
        except Exception as exc:  # noqa: BLE001 - a bug in one check must not end the watch
            self.last_error = f"internal error: {type(exc).__name__}: {exc}"
            self.log(f"watch: the full check failed: {self.last_error}")
        else:
            await self._checked(result, deadline)
        self.last_check_at = time.time()
        self.checks += 1
        if self.pending and self.s.state and self.last_error is not None:
            await self._flush(self.s.timeout)  # no check saved them this time

    async def _checked(self, result: Result, deadline: float) -> None:
        """A full check that ran: learn from it, save the state, keep it for the endpoints."""
        t = self.s.target
        if result.target.http_port:
            self.http_port = self.http_port or result.target.http_port
        if result.resolvers is not None:  # the full check discovered the replicas again
            self._learned(self.resolvers.learn(result.resolvers))
        # What the API told the check (the Service, its named port for SRV) is what probes ask too.
        self.probe_target = t.with_(service=t.service or result.target.service,
                                    port_name=t.port_name or result.target.port_name)
        if self.s.state:
            events, self.pending = self.pending, []  # taken here, on the loop: probes append meanwhile
            result, unsaved = await _in_thread(self._save, result, deadline, events)
            if unsaved is not None:
                self.pending = [*events, *self.pending][-self.kept():]
                self.log(f"watch: convergence events not saved: {unsaved}")
        self.last, self.last_error = result, None
        failed = sum(1 for f in result.findings if f.status.value == "fail")
        self.log(f"watch: full check {'PASS' if result.ok else 'FAIL'} ({failed} failed)")

    def _save(self, result: Result, deadline: float, events: list[dict]) -> tuple[Result, str | None]:
        """apply_state as `check` does, and the convergence events since the last save (in a thread: it
        touches nothing of the watch's own). The result, and why the events were not saved (None: saved)."""
        from ssdns.state import apply_state, open_store, record_events, target_key

        store = open_store(self.s.state or "", self.s.target.namespace, self.s.api, deadline)
        result = apply_state(result, store, max(1, self.s.history))
        if events:
            try:
                record_events(store, target_key(result), events, self.kept())
            except SsdnsError as exc:
                return result, str(exc)
        return result, None

    async def _flush(self, seconds: float) -> None:
        """Write pending events to the state (on stop, or before the first check could save them)."""
        if not self.s.state:
            return
        from ssdns.state import open_store, record_events

        key = {"namespace": self.s.target.namespace, "statefulset": self.s.target.statefulset,
               "service": self.s.target.service or (self.watcher.service if self.watcher else None)}
        if self.last is not None:
            from ssdns.state import target_key

            key = target_key(self.last)
        events, self.pending = self.pending, []
        deadline = time.monotonic() + seconds
        kept = self.kept()

        def write() -> None:
            store = open_store(self.s.state or "", self.s.target.namespace, self.s.api, deadline)
            record_events(store, key, events, kept)

        try:
            await _in_thread(write, deadline=deadline)
        except (SsdnsError, TimeoutError) as exc:
            self.pending = events + self.pending
            self.log(f"watch: convergence events not saved: {exc or 'no time left'}")


ProbeKey = tuple[str, str, str]  # (pod, resolver label, transport)


@dataclass
class _Replacement:
    """One replacement's probes (one per resolver and transport), until every one has ended."""

    pod: str
    cause: str
    seen_at: str
    t0: float  # monotonic
    events: list[ConvergenceEvent] = field(default_factory=list)
    slots: dict[int, str] = field(default_factory=dict)  # id(event) -> its resolver's metric slot
    ended: int = 0


@frozen
class Spread:
    """Per replacement and stage: the slowest resolver (None: every one got it at once, or one probe),
    its time (None: it never got it right), the fastest time, and slowest - fastest (None: one never did)."""

    pod: str
    cause: str
    seen_at: str
    stages: dict[str, tuple[str, str, float | None, float, float | None]]  # via, slot, slowest, fastest, spread

    @classmethod
    def of(cls, group: _Replacement) -> Spread:
        stages = {}
        for stage in SPREAD_STAGES:
            got = [(ev, ev.stages.get(stage)) for ev in group.events]
            times = [t for _, t in got if t is not None]
            if not times:
                continue
            never = next((ev for ev, t in got if t is None), None)
            slow = never or max(got, key=lambda x: x[1] if x[1] is not None else -1.0)[0]
            who = (slow.via or slow.resolver) + (" over TCP" if slow.transport == "tcp" else "")
            slowest = None if never is not None else max(times)
            stages[stage] = (who, group.slots.get(id(slow), "path"), slowest, min(times),
                             None if slowest is None else slowest - min(times))
        return cls(group.pod, group.cause, group.seen_at, stages)

    def summary(self) -> str:
        parts = []
        for stage, (who, _, slowest, fastest, spread) in self.stages.items():
            if slowest is None:
                parts.append(f"{stage}: {who} never got it right (the fastest {fastest:.2f}s)")
            else:
                parts.append(f"{stage}: slowest {who} {slowest:.2f}s, fastest {fastest:.2f}s, spread {spread:.2f}s")
        return f"{self.pod} {self.cause}, per resolver: " + ("; ".join(parts) or "none got dns or old_ip_gone right")


def _resolv_nameservers(target: Target):
    """The pod's resolv.conf nameservers (NodeLocal's default address among them), only for --resolvers all."""
    if target.resolvers.mode != "all":
        return ()
    from ssdns.target import read_resolv_conf

    return read_resolv_conf().nameservers


async def _unless_stopped(work, stop: asyncio.Event) -> bool:
    """Await `work` unless `stop` is set first (then it is cancelled): True when it finished."""
    task, stopped = asyncio.ensure_future(work), asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return False
    task.result()
    return True


def parse_listen(text: str) -> tuple[str | None, int]:
    """--listen: HOST:PORT, [IPv6]:PORT, :PORT or PORT; no host means every address. HOST is an IP address
    or localhost. A UsageError (one line) otherwise."""
    import ipaddress

    from ssdns.errors import UsageError

    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    bad = UsageError(f"--listen {text!r}: give HOST:PORT, [IPv6]:PORT or :PORT (every address), e.g. :9798")
    if not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:  # 0: a free port
        raise bad
    if host and host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise bad from None
    return host or None, int(port)


async def _in_thread(fn, *args, deadline: float | None = None):
    """fn(*args) in a daemon thread (a blocking state write), awaited without an executor thread, so a
    stop never waits for it past `deadline` (TimeoutError)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future = loop.create_future()

    def settle(ok: bool, value) -> None:
        if not fut.done():
            (fut.set_result if ok else fut.set_exception)(value)

    def work() -> None:
        try:
            value, ok = fn(*args), True
        except BaseException as exc:  # noqa: BLE001 - carried to the loop
            value, ok = exc, False
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, ok, value)

    threading.Thread(target=work, name="ssdns-state", daemon=True).start()
    if deadline is None:
        return await fut
    return await asyncio.wait_for(fut, max(0.0, deadline - time.monotonic()))


def _stderr(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)
