"""The resolvers ssdns watch's probes ask (--resolvers, --transport: as `check`, resolvers.py), kept up to
date: the replicas of the cluster DNS Service are discovered at start and again by every full check
(CoreDNS pods come and go), and each replacement is probed through every resolver known when it starts.

Metric labels stay bounded over a watch that runs for months while CoreDNS is rolled many times: a
resolver's `resolver` label is its slot, not its pod name: `path`, `nodelocal`, `listed-<k>` (fixed by the
list), and `replica-<k>` for replicas, sticky while the pod stays an endpoint and given to the next new pod
once it has gone. So the label set is at most `path`, `nodelocal`, the listed resolvers, and as many
`replica-<k>` as the most replicas ever discovered at once (at most MAX_RESOLVERS in all). The pod behind
each slot is in the events and in ssdns_watch_resolver_info.

A discovery that fails (no grant, the API unreachable) keeps the replicas known before, with its warning;
a replica that stops answering stays known (its probes say it does not answer) until discovery drops it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ssdns.frozen import frozen
from ssdns.resolvers import Resolver, discover, plan
from ssdns.watchprobe import Resolver as ProbeResolver

if TYPE_CHECKING:
    from ssdns.resolvers import ResolverEvidence
    from ssdns.target import ApiOptions, Nameserver, Target

MAX_RESOLVERS = 64  # resolvers probed per replacement, at most (a DNS Service with more endpoints: the first)


@frozen
class Update:
    """What a discovery changed: the resolvers that left (their probes end), and what to log."""

    gone: tuple[Resolver, ...] = ()
    came: tuple[Resolver, ...] = ()
    warnings: tuple[str, ...] = ()


class ResolverSet:
    def __init__(self, target: Target, resolv: tuple[Nameserver, ...] = ()):
        self.choice = target.resolvers
        self.path = target.nameservers
        self.resolv = resolv  # the pod's resolv.conf nameservers: NodeLocal's default address in it
        self.known: list[Resolver] = []
        self.warnings: tuple[str, ...] = ()  # the last discovery's, when it failed
        self._slots: dict[str, str] = {}  # a replica's identity -> its sticky slot
        self._set(plan(self.path, self.choice, [], resolv))

    @property
    def discovering(self) -> bool:
        return self.choice.mode == "all"

    async def discover(self, api: ApiOptions, deadline: float) -> Update:
        """Find the replicas now (at start; later, every full check finds them)."""
        warnings: list[str] = []
        replicas = await discover(self.choice.dns_service, api, deadline, warnings)
        return self.update(plan(self.path, self.choice, replicas, self.resolv), warnings)

    def learn(self, ev: ResolverEvidence) -> Update:
        """The resolvers a full check asked (it discovered the replicas again)."""
        return self.update(list(ev.resolvers), list(ev.warnings))

    def update(self, found: list[Resolver], warnings: list[str]) -> Update:
        self.warnings = tuple(warnings)
        if warnings and self.discovering:  # the replicas could not be listed: keep the ones known
            return Update(warnings=self.warnings)
        if len(found) > MAX_RESOLVERS:
            self.warnings = (*self.warnings, f"{len(found)} resolvers: probing the first {MAX_RESOLVERS} only")
            found = found[:MAX_RESOLVERS]
        before, after = {_key(r): r for r in self.known}, {_key(r): r for r in found}
        self._set(found)
        return Update(tuple(r for k, r in before.items() if k not in after),
                      tuple(r for k, r in after.items() if k not in before), self.warnings)

    def _set(self, found: list[Resolver]) -> None:
        keys = {_key(r) for r in found if r.kind == "replica"}
        self._slots = {k: s for k, s in self._slots.items() if k in keys}  # gone replicas free their slots
        for r in found:
            if r.kind == "replica" and _key(r) not in self._slots:
                used = set(self._slots.values())
                self._slots[_key(r)] = next(f"replica-{k}" for k in range(len(used) + 1) if f"replica-{k}" not in used)
        self.known = list(found)

    def slot(self, r: Resolver) -> str:
        return self._slots.get(_key(r), r.slot) if r.kind == "replica" else r.slot

    def transports(self) -> tuple[str, ...]:
        return ("udp", "tcp") if self.choice.transport == "both" else (self.choice.transport,)

    def probes(self) -> list[ProbeResolver]:
        """One per resolver and transport: what a replacement's probes ask through."""
        return [ProbeResolver(r.label, r.servers, t, self.slot(r), r.describe())
                for r in self.known for t in self.transports()]


def _key(r: Resolver) -> str:
    """A resolver's identity across discoveries: a replica's pod (its IP when unnamed), else its servers."""
    return f"{r.kind}:{r.pod or ','.join(str(s) for s in r.servers)}"
