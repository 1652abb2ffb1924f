"""ssdns watch's convergence probe: after a pod was replaced (or changed IP), ask its names every
probe interval until DNS and HTTP identity have been right for the settle time, and time each stage.

Every time is measured from t0, the moment the watch saw the old pod go (its deletionTimestamp or its
delete event; for an IP change, the event that showed it). A stage's time is when the round that first
found it right got that answer (the latest reply the stage was judged on: the answer cannot
predate the change it shows, however late the loop sent the question). Stages:

- dns: the pod's name gives exactly the pod's current IPs (A, and AAAA when it has IPv6 ones);
- ptr: each of those IPs has one PTR, naming the pod;
- srv: the pod's name is an SRV target of the Service's named port, once, and dns is right (the target
  leads to the pod: after an IP change the name was a target all along) (only with a named port);
- http: the pod's IP answers HTTP as the pod (--expect, --match) (unless --no-http);
- old_ip_gone: no old IP is answered any more, under the pod's name or the Service's.

Also kept: the NXDOMAIN window (from the first NXDOMAIN for the pod's name to the first answer after
the last one), and every wrong-identity answer (another pod's IP under this name, a PTR naming another
pod, HTTP answering as another pod). Past --give-up the probe ends as a failure naming what is wrong.

The probe asks through one resolver (a tuple of nameservers asked in order, over one transport); to
compare several resolvers, the watch runs one probe per resolver: each event says which it measured.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ssdns.dnsclient import DnsClient
from ssdns.dnsquery import Lookup, Outcome
from ssdns.facts import PodFacts
from ssdns.frozen import frozen
from ssdns.target import Nameserver, Target

STAGES = ("dns", "ptr", "srv", "http", "old_ip_gone")
ROUND_TIMEOUT = 2.0  # seconds a round's questions may take, at most (well under the conntrack stall)
WRONG_KEPT = 20  # wrong-identity samples kept per event (all are counted)


@frozen
class ProbeOptions:
    interval: float = 0.25  # --probe-interval
    settle: float = 2.0  # --settle
    give_up: float = 300.0  # --give-up


@frozen
class Resolver:
    """Where a probe asks: the nameservers, in order, over which transport, and how the event names them
    (label: `path`, a replica's pod, `nodelocal`, HOST:PORT as listed; via: for a person, as `check` says
    it; slot: the bounded metric label)."""

    label: str
    nameservers: tuple[Nameserver, ...]
    transport: str = "udp"  # udp (TCP when truncated, as a glibc client) or tcp
    slot: str = "path"
    via: str = ""


@dataclass
class ConvergenceEvent:
    """How one pod's identity came back, as the watch measured it."""

    pod: str
    ordinal: int | None
    cause: str  # replaced (new UID), ip-changed (same UID, new IPs)
    resolver: str
    old_uid: str
    old_ips: list[str]
    seen_at: str  # t0, wall clock (UTC, ISO 8601)
    new_uid: str | None = None
    new_ips: list[str] = field(default_factory=list)
    transport: str = "udp"
    via: str = ""  # the resolver for a person: `coredns-5d78c9869d-abcde (10.244.1.3 on node-b)`
    stages: dict[str, float | None] = field(default_factory=dict)  # seconds from t0 to first right
    nxdomain_window: float | None = None
    wrong: int = 0
    wrong_seen: list[str] = field(default_factory=list)
    ok: bool = False
    outcome: str = "probing"  # converged, gave-up, superseded, stopped
    still_wrong: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    rounds: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"pod": self.pod, "ordinal": self.ordinal, "cause": self.cause, "resolver": self.resolver,
                "transport": self.transport, "via": self.via, "seen_at": self.seen_at, "old_uid": self.old_uid, "new_uid": self.new_uid, "old_ips": self.old_ips,
                "new_ips": self.new_ips, "stages": {k: _round(v) for k, v in self.stages.items()},
                "nxdomain_window": _round(self.nxdomain_window), "wrong": self.wrong,
                "wrong_seen": self.wrong_seen, "ok": self.ok, "outcome": self.outcome,
                "still_wrong": self.still_wrong, "elapsed": _round(self.elapsed), "rounds": self.rounds}

    def summary(self) -> str:
        """One line: the pod, the outcome and the stage times."""
        times = ", ".join(f"{k} {v:.2f}s" for k, v in self.stages.items() if v is not None)
        extra = f"; NXDOMAIN for {self.nxdomain_window:.2f}s" if self.nxdomain_window is not None else ""
        if self.wrong:
            extra += f"; {self.wrong} wrong-identity answers"
        head = f"{self.pod} {self.cause}" + self.through()
        if self.outcome == "converged":
            return f"{head}: identity right after {times or '0s'}{extra}"
        wrong = "; ".join(self.still_wrong) or "unknown"
        return f"{head}: {self.outcome} after {self.elapsed:.1f}s, still wrong: {wrong}" + \
            (f" (right: {times})" if times else "") + extra

    def through(self) -> str:
        """` through coredns-x (10.244.1.3 on node-b) over TCP`; nothing for the path over UDP."""
        where = "" if self.resolver in ("path", "default") else f" through {self.via or self.resolver}"
        return where + (" over TCP" if self.transport == "tcp" else "")


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def wall(t_monotonic: float) -> str:
    """A monotonic time as UTC wall-clock ISO 8601 (milliseconds)."""
    at = time.time() - (time.monotonic() - t_monotonic)
    return datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Round:
    """What one round saw, judged per stage: right, or a short reason why not."""

    wrong: dict[str, str] = field(default_factory=dict)
    right: set[str] = field(default_factory=set)
    nxdomain: bool = False
    answered: bool = False  # the pod's name got an answer other than NXDOMAIN
    wrong_identity: list[str] = field(default_factory=list)
    at: dict[str, float] = field(default_factory=dict)  # per stage: when the replies it was judged on came


# Which answers each stage is judged on (the groups of _Answers).
_STAGE_GROUPS = {"dns": ("mine",), "ptr": ("ptrs",), "srv": ("srv", "mine"), "http": ("http",),
                 "old_ip_gone": ("mine", "service")}


@dataclass
class _Answers:
    mine: list[Lookup]  # the pod's name: A (and AAAA)
    service: list[Lookup]  # the Service's name, the same types
    srv: Lookup | None
    ptrs: list[Lookup]  # one per pod IP
    http: Any  # HttpObservation, or None when not asked
    arrived: dict[str, float] = field(default_factory=dict)  # per group above: when its last reply came


class ConvergenceProbe:
    """One pod after one replacement, through one resolver. `view()` gives the pod as the watch sees
    it now (None while it is gone); `owners()` maps every current pod IP to its pod; `port()` gives the
    HTTP port (None: not known yet)."""

    def __init__(self, target: Target, event: ConvergenceEvent, t0: float, opts: ProbeOptions,
                 resolver: Resolver, view: Callable[[], PodFacts | None], owners: Callable[[], dict[str, str]],
                 port: Callable[[], int | None]):
        self.target, self.event, self.t0, self.opts, self.resolver = target, event, t0, opts, resolver
        self.view, self.owners, self.port = view, owners, port
        self.fqdn = target.pod_fqdn(event.pod).lower()
        self.stages = [s for s in STAGES if (s != "srv" or target.srv_name) and (s != "http" or target.http)]
        self._nx_first: float | None = None  # the first NXDOMAIN for the pod's name
        self._nx_open = False  # the last answer was NXDOMAIN

    async def run(self, stop: asyncio.Event) -> ConvergenceEvent:
        """Rounds every interval until settled, given up, or `stop` is set. Never raises for DNS or HTTP."""
        from ssdns.httpprobe import HttpProber

        ev, opts = self.event, self.opts
        right_since: float | None = None
        last = _Round()
        end = self.t0 + opts.give_up
        async with HttpProber(self.target.path, end + ROUND_TIMEOUT, concurrency=4) as prober:
            for _ in range(int(opts.give_up / opts.interval) + 2):  # bounded; the give-up ends it first
                started = time.monotonic()
                if started >= end or stop.is_set():
                    break
                last = await self._round(prober, started)
                ev.rounds += 1
                for stage in last.right:
                    if ev.stages.get(stage) is None:
                        ev.stages[stage] = max(0.0, last.at.get(stage, started) - self.t0)
                if last.wrong:
                    right_since = None
                else:
                    right_since = started if right_since is None else right_since
                    if time.monotonic() - right_since >= opts.settle:
                        return self._finish("converged", last)
                wait = max(0.0, started + opts.interval - time.monotonic())
                try:
                    await asyncio.wait_for(stop.wait(), wait)
                except TimeoutError:
                    pass
        return self._finish("stopped" if stop.is_set() else "gave-up", last)

    def _finish(self, outcome: str, last: _Round) -> ConvergenceEvent:
        ev = self.event
        ev.outcome, ev.ok = outcome, outcome == "converged"
        ev.elapsed = time.monotonic() - self.t0
        ev.stages = {stage: ev.stages.get(stage) for stage in self.stages}  # every stage, in STAGES order
        ev.still_wrong = [] if ev.ok else [f"{s}: {last.wrong[s]}" for s in self.stages if s in last.wrong]
        pod = self.view()
        if pod is not None and pod.uid != ev.old_uid:
            ev.new_uid, ev.new_ips = pod.uid, list(pod.ips)
        elif pod is not None and ev.cause == "ip-changed":
            ev.new_uid, ev.new_ips = pod.uid, list(pod.ips)
        return ev

    async def _round(self, prober, started: float) -> _Round:
        """Ask everything once, in parallel; judge each stage."""
        ev = self.event
        pod = self.view()
        current = pod if pod is not None and (pod.uid != ev.old_uid or ev.cause == "ip-changed") else None
        ips = list(current.ips) if current is not None else []
        port = self.port()
        got = await self._ask(prober, started, ips, port)
        r = _Round()
        r.at = {stage: max((got.arrived[g] for g in groups if g in got.arrived), default=started)
                for stage, groups in _STAGE_GROUPS.items()}
        self._judge_dns(r, ips, got.mine, r.at["dns"])
        self._judge_old(r, got.mine, got.service)
        if "srv" in self.stages:
            self._judge_srv(r, ips, got.srv)
        self._judge_ptr(r, ips, got.ptrs)
        if "http" in self.stages:
            self._judge_http(r, ips, port, got.http)
        if r.wrong_identity:
            ev.wrong += len(r.wrong_identity)
            room = WRONG_KEPT - len(ev.wrong_seen)
            ev.wrong_seen += [f"{started - self.t0:.2f}s: {w}" for w in r.wrong_identity[:max(0, room)]]
        return r

    async def _ask(self, prober, started: float, ips: list[str], port: int | None) -> _Answers:
        from ssdns.httpprobe import HttpRequest

        t, ev = self.target, self.event
        families = _families(ips or ev.old_ips)
        client = DnsClient(self.resolver.nameservers, started + ROUND_TIMEOUT, transport=self.resolver.transport,
                           pipeline=self.resolver.transport == "tcp")
        try:
            mine = [client.lookup(self.fqdn, rd) for rd in families]
            service = [client.lookup(t.service_fqdn, rd) for rd in families]
            srv = client.lookup(t.srv_name, "SRV") if t.srv_name and "srv" in self.stages else None
            ptrs = [client.lookup(ipaddress.ip_address(ip).reverse_pointer + ".", "PTR") for ip in ips]
            http = None
            if "http" in self.stages and ips and port:
                http = asyncio.ensure_future(prober.probe(HttpRequest(ev.pod, ips[0], port, self.fqdn.rstrip("."))))
            groups = {"mine": mine, "service": service, "srv": [srv] if srv else [], "ptrs": ptrs,
                      "http": [http] if http else []}
            arrived: dict[str, float] = {}
            for group, tasks in groups.items():
                for task in tasks:  # stamped when it completes, not when this coroutine gets to it
                    task.add_done_callback(lambda _t, g=group: arrived.__setitem__(g, time.monotonic()))
            return _Answers(await _all(mine), await _all(service), await _maybe(srv), await _all(ptrs),
                            await _maybe(http), arrived)
        finally:
            client.close()  # its UDP sockets: a probe opens them per round, never keeps them

    def _judge_dns(self, r: _Round, ips: list[str], got: list[Lookup], at: float) -> None:
        values = {v for lk in got for v in lk.values}
        self._track_nxdomain(got, at)
        owners = self.owners()
        for ip in sorted(values - set(ips)):
            other = owners.get(ip)
            if other is not None and other != self.event.pod:
                r.wrong_identity.append(f"{self.fqdn} gave {ip}, {other}'s IP")
        if not ips:
            r.wrong["dns"] = "the replacement has no IP yet"
        elif values == set(ips):
            r.right.add("dns")
        else:
            said = ", ".join(sorted(values)) or "/".join(sorted({lk.outcome.value.upper() for lk in got}))
            why = next((lk.detail for lk in got if lk.outcome in (Outcome.TIMEOUT, Outcome.ERROR) and lk.detail), "")
            r.wrong["dns"] = f"{self.fqdn} gives {said}{f' ({why})' if why else ''}, not {', '.join(ips)}"

    def _track_nxdomain(self, got: list[Lookup], at: float) -> None:
        """The NXDOMAIN window: from the first NXDOMAIN to the first answer after the last one (`at`:
        when the replies came)."""
        if any(lk.outcome is Outcome.NXDOMAIN for lk in got):
            self._nx_first = self._nx_first if self._nx_first is not None else at
            self._nx_open = True
        elif self._nx_open and any(lk.outcome in (Outcome.OK, Outcome.NODATA) for lk in got):
            assert self._nx_first is not None
            self.event.nxdomain_window = at - self._nx_first  # the name exists again
            self._nx_open = False

    def _judge_old(self, r: _Round, mine: list[Lookup], service: list[Lookup]) -> None:
        old = [ip for ip in self.event.old_ips if ip not in (self.view() or _NOPOD).ips]
        seen = sorted({v for lk in [*mine, *service] for v in lk.values} & set(old))
        if seen:
            r.wrong["old_ip_gone"] = f"still answered: {', '.join(seen)}"
        else:
            r.right.add("old_ip_gone")

    def _judge_srv(self, r: _Round, ips: list[str], got: Lookup | None) -> None:
        targets = [v.split()[-1].lower() for v in got.values] if got is not None else []
        n = targets.count(self.fqdn)
        if n == 1 and ips and "dns" in r.right:
            r.right.add("srv")
        elif n == 1 and ips:  # the target is a name: following it must lead to the pod (an IP change keeps it)
            r.wrong["srv"] = f"{self.fqdn} is an SRV target, but its address is not the pod's yet"
        else:
            r.wrong["srv"] = f"{self.fqdn} is an SRV target {n} times" if ips else "the replacement has no IP yet"

    def _judge_ptr(self, r: _Round, ips: list[str], got: list[Lookup]) -> None:
        if not ips:
            r.wrong["ptr"] = "the replacement has no IP yet"
            return
        bad = []
        for ip, lk in zip(ips, got, strict=True):
            names = [v.lower() for v in lk.values]
            if names != [self.fqdn]:
                bad.append(f"{ip} -> {', '.join(names) or lk.outcome.value.upper()}")
                others = [n for n in names if n != self.fqdn and n.split(".")[0] in set(self.owners().values())]
                r.wrong_identity += [f"PTR of {ip} names {n}" for n in others]
        if bad:
            r.wrong["ptr"] = "; ".join(bad)
        else:
            r.right.add("ptr")

    def _judge_http(self, r: _Round, ips: list[str], port: int | None, got) -> None:
        from ssdns.checks.http import body_matches, expected_body

        if not ips:
            r.wrong["http"] = "the replacement has no IP yet"
            return
        if not port:
            r.wrong["http"] = "the HTTP port is not known yet (give --port)"
            return
        want = expected_body(self.target, self.event.pod, self.event.ordinal)
        if got.status is not None and 200 <= got.status < 300 and body_matches(self.target, want, got.body or "",
                                                                               got.truncated):
            r.right.add("http")
            return
        body = (got.body or "").strip()
        if got.status is not None and body in set(self.owners().values()) and body != self.event.pod:
            r.wrong_identity.append(f"HTTP at {ips[0]} answered as {body}")
        r.wrong["http"] = got.error or f"HTTP {got.status}: {body[:60]!r}"


async def _all(tasks: list) -> list:
    return [await t for t in tasks]


async def _maybe(task):
    return None if task is None else await task


_NOPOD = PodFacts("", "", [], False, False, "", None, 0, None, None)


def _families(ips: list[str]) -> list[str]:
    types = [t for t, v6 in (("A", False), ("AAAA", True)) if any((":" in ip) == v6 for ip in ips)]
    return types or ["A"]
