"""Every resolver: the pod's own path, each CoreDNS replica, NodeLocal DNSCache, or a list given.

The evidence is typed here (which resolver, what it said over which transport); `ask_all` does the
I/O: every question the run asked through the path is asked again of every other resolver, over
each transport wanted, each (resolver, transport) with its own DnsClient and bounded concurrency,
all inside the one deadline. Judging is in ssdns/checks/resolvers.py.

Query count, exactly: the path observation's own queries (as without --resolvers), plus, for every
other resolver and for each transport leg, one query per question (a UDP question whose answer comes
back truncated is retried over TCP: one more), plus, with --transport both, the path's TCP leg (one
TCP query per question). Resends of lost UDP datagrams count as queries too.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ssdns.frozen import frozen
from ssdns.target import Nameserver, ResolverChoice

if TYPE_CHECKING:
    from ssdns.dnsquery import Lookup
    from ssdns.observations import Observations
    from ssdns.target import ApiOptions, Target

NODELOCAL_DEFAULT = "169.254.20.10"  # node-local-dns's default listen address
PATIENCE = 6.0  # seconds a resolver leg waits per question: long enough to see a 5 s answer
PER_LEG = 32  # queries in flight per resolver over UDP
# ... and over TCP, all on one pipelined connection per server (RFC 7766; a connection per question cost
# ~8,000 connects at 1,000 pods, and a burst of them past knotd's listen backlog 1 s SYN retransmits)
PER_LEG_TCP = 32

Question = tuple[str, str]  # (absolute name, lower case; record type)


@frozen
class Resolver:
    label: str  # "path", "nodelocal", the replica's pod name, or HOST:PORT as listed
    kind: str  # path | replica | nodelocal | listed
    servers: tuple[Nameserver, ...]
    pod: str | None = None  # a replica's pod, from its EndpointSlice endpoint
    node: str | None = None
    slot: str = ""  # a bounded metric label: path, nodelocal, replica-<k>, listed-<k> (set by plan())

    def describe(self) -> str:
        """For a person: `coredns-7d8-abc (10.244.1.3 on node-b)`."""
        where = ", ".join(str(s) for s in self.servers)
        if self.kind == "replica":
            return f"{self.label} ({self.servers[0].host}{' on ' + self.node if self.node else ''})"
        if self.kind == "path":
            return f"the resolv.conf path ({where})"
        if self.kind == "nodelocal":
            return f"NodeLocal DNSCache ({where})"
        return where

    def to_dict(self) -> dict:
        return {"label": self.label, "kind": self.kind, "servers": [str(s) for s in self.servers],
                "pod": self.pod, "node": self.node, "slot": self.slot}


@frozen
class Leg:
    """What one resolver said over one transport: udp (TCP on truncation, as a glibc client) or tcp."""

    resolver: Resolver
    transport: str
    lookups: dict[Question, Lookup]
    queries: int = 0

    @property
    def answering(self) -> list[Lookup]:
        return [lk for lk in self.lookups.values() if said_something(lk)]

    def latency(self) -> Latency:
        import statistics  # only when judged: the option parsing that imports this module stays light

        from ssdns.checks.resolvers import SLOW_MS  # the threshold is the check's

        times = sorted(lk.elapsed_ms for lk in self.answering)
        if not times:
            return Latency(0, None, None, 0)
        return Latency(len(times), round(statistics.median(times), 2), round(_percentile(times, 0.99), 2),
                       sum(1 for t in times if t > SLOW_MS))

    def to_dict(self, reference: Leg | None = None) -> dict:
        """Its numbers, and its lookups that differ from the reference's (the path's answers, which are the
        run's own `lookups`): at 1,000 pods and 8 legs every lookup would be 16,000 entries of the same."""
        lat = self.latency()
        if reference is None or reference is self:
            differ = [] if reference is self else list(self.lookups.values())
        else:
            differ = [lk for q, lk in self.lookups.items()
                      if (ref := reference.lookups.get(q)) is None or (ref.outcome, ref.values) != (lk.outcome, lk.values)]
        return {"resolver": self.resolver.label, "transport": self.transport, "questions": len(self.lookups),
                "answered": lat.answers, "p50_ms": lat.p50_ms, "p99_ms": lat.p99_ms, "slow": lat.slow,
                "differing": [lk.to_dict() for lk in differ]}


@frozen
class Latency:
    answers: int
    p50_ms: float | None
    p99_ms: float | None
    slow: int  # answers slower than checks/resolvers.py's SLOW_MS


def _percentile(sorted_times: list[float], q: float) -> float:
    """Nearest-rank percentile: p99 of 100 answers is the 99th, of 10 the 10th (the slowest)."""
    rank = max(1, -(-len(sorted_times) * q // 1))
    return sorted_times[int(rank) - 1]


# Outcome's values (a StrEnum: a member is equal to its value), so that this hot test needs no import of
# dnsquery: it runs for every lookup of every leg in several checks (16,000 lookups at 1,000 pods).
_SAID = frozenset({"ok", "nxdomain", "nodata", "servfail"})


def said_something(lk: Lookup) -> bool:
    """The resolver answered about the name (found it, found nothing, or failed: SERVFAIL); silence,
    REFUSED and unusable replies are no answer."""
    return lk.outcome in _SAID


@frozen
class ResolverEvidence:
    resolvers: tuple[Resolver, ...]
    transport: str  # udp | tcp | both, as asked
    legs: tuple[Leg, ...]
    questions: tuple[Question, ...]
    warnings: tuple[str, ...] = ()  # discovery that could not be done (a missing grant), in words
    dns_service: str = "kube-system/kube-dns"  # whose replicas `all` asks: the warnings' subject

    def primary(self, r: Resolver) -> Leg | None:
        """The leg a resolver is compared on: UDP unless only TCP was asked."""
        want = "tcp" if self.transport == "tcp" else "udp"
        return next((g for g in self.legs if g.resolver == r and g.transport == want), None)

    def leg(self, r: Resolver, transport: str) -> Leg | None:
        return next((g for g in self.legs if g.resolver == r and g.transport == transport), None)

    @property
    def answered(self) -> bool:
        return any(g.answering for g in self.legs)

    @property
    def queries(self) -> int:
        """The queries sent for the other resolvers and transports (the path's own leg counts none: its
        queries are the run's)."""
        return sum(g.queries for g in self.legs)

    def by_pod(self, fqdns: dict[str, str]) -> dict[str, dict[str, str]]:
        """pod -> resolver label -> what it answered for the pod's name (A), when any two resolvers answer
        some pod differently; empty when they all agree (the table then needs no column per resolver)."""
        primary = [(r.label, g) for r in self.resolvers if (g := self.primary(r)) is not None]
        out: dict[str, dict[str, str]] = {}
        differ = False
        for pod, fqdn in fqdns.items():
            cells = {}
            for label, g in primary:
                lk = g.lookups.get((fqdn.lower(), "A"))
                cells[label] = "-" if lk is None else (", ".join(lk.values) if lk.values else lk.outcome.value.upper())
            differ = differ or len(set(cells.values())) > 1
            out[pod] = cells
        return out if differ else {}

    def to_dict(self) -> dict:
        return {"transport": self.transport, "resolvers": [r.to_dict() for r in self.resolvers],
                "legs": [g.to_dict(self.legs[0] if self.legs else None) for g in self.legs],
                "warnings": list(self.warnings)}


def parse_resolvers(text: str) -> tuple[str, tuple[Nameserver, ...]]:
    """`path`, `all`, or a comma-separated list of HOST[:PORT] (no duplicates)."""
    from ssdns.errors import UsageError
    from ssdns.target import parse_nameserver

    word = text.strip()
    if word in ("path", "all"):
        return word, ()
    parts = [p.strip() for p in word.split(",")]
    if not word or any(not p for p in parts):
        raise UsageError(f"--resolvers {text!r}: give path, all, or HOST[:PORT],HOST[:PORT],...")
    listed: list[Nameserver] = []
    for part in parts:
        try:
            ns = parse_nameserver(part)
        except UsageError as exc:
            raise UsageError(f"--resolvers: {exc}") from None
        if ns in listed:
            raise UsageError(f"--resolvers: {ns} is listed twice; give each resolver once")
        listed.append(ns)
    return "list", tuple(listed)


def parse_dns_service(text: str) -> tuple[str, str]:
    from ssdns.errors import UsageError
    from ssdns.target import check_label

    ns, sep, name = text.partition("/")
    if not sep or not ns or not name:
        raise UsageError(f"--dns-service {text!r}: give NAMESPACE/NAME, e.g. kube-system/kube-dns")
    return check_label(ns, "--dns-service namespace"), check_label(name, "--dns-service name", rfc1035=True)


@dataclass
class _Plan:
    resolvers: list[Resolver] = field(default_factory=list)

    def add(self, r: Resolver) -> None:
        """A server already asked under another name is not asked twice (the path wins)."""
        seen = {s for x in self.resolvers for s in x.servers}
        if not any(s in seen for s in r.servers):
            same = sum(1 for x in self.resolvers if x.kind == r.kind)
            slot = r.kind if r.kind in ("path", "nodelocal") else f"{r.kind}-{same}"
            self.resolvers.append(replace(r, slot=slot))


def plan(path: tuple[Nameserver, ...], choice: ResolverChoice, replicas: list[Resolver],
         resolv_nameservers: tuple[Nameserver, ...] = ()) -> list[Resolver]:
    """The resolvers to ask, path first. NodeLocal: --nodelocal, else when the pod's resolv.conf lists
    its default address (then the path goes through it)."""
    p = _Plan()
    p.add(Resolver("path", "path", path))
    if choice.mode == "list":
        for ns in choice.listed:
            p.add(Resolver(str(ns), "listed", (ns,)))
        return p.resolvers
    if choice.mode != "all":
        return p.resolvers
    for r in replicas:
        p.add(r)
    nodelocal = choice.nodelocal
    if nodelocal is None:
        nodelocal = next((ns for ns in resolv_nameservers if ns.host == NODELOCAL_DEFAULT), None)
    if nodelocal is not None:
        p.add(Resolver("nodelocal", "nodelocal", (nodelocal,)))
    return p.resolvers


async def ask_all(resolvers: list[Resolver], path_leg: Leg, questions: list[tuple[str, str, int]],
                  transport: str, deadline: float, memo: dict | None = None) -> list[Leg]:
    """Every question of every resolver over each transport wanted; the path's own leg (the run's
    observation) is reused, not asked again. questions: (name, type, records the path's answer held)."""
    from ssdns.dnsclient import DnsClient

    wanted = ("udp", "tcp") if transport == "both" else (transport,)
    jobs: list[tuple[Resolver, str]] = [(r, t) for r in resolvers for t in wanted
                                        if not (r is path_leg.resolver and t == path_leg.transport)]

    memo = {} if memo is None else memo  # replicas serving the same records give the same bytes: parsed once

    async def leg(r: Resolver, t: str) -> Leg:
        width = PER_LEG_TCP if t == "tcp" else PER_LEG
        client = DnsClient(r.servers, deadline, concurrency=width, transport=t, patience=PATIENCE, memo=memo,
                           pipeline=t == "tcp")
        done: list[Lookup | None] = [None] * len(questions)
        feed = iter(enumerate(questions))

        async def asker() -> None:
            # As many askers as the client's slots, each asking the next question when its last is answered: a
            # lookup waits for no slot (2,000 lookups per leg queued on a semaphore cost a future and a wake-up each)
            for i, (name, rdtype, records) in feed:
                done[i] = await client.ask(name, rdtype, records)

        try:
            await asyncio.gather(*(asker() for _ in range(min(width, len(questions)))))
        finally:
            client.close()
        return Leg(r, t, {(lk.name, lk.rdtype): lk for lk in done if lk is not None}, client.queries_sent)

    legs = await asyncio.gather(*(leg(r, t) for r, t in jobs))
    order = {(r.label, t): i for i, (r, t) in enumerate((r, t) for r in resolvers for t in wanted)}
    return sorted([path_leg, *legs], key=lambda g: order.get((g.resolver.label, g.transport), -1))


Discovered = tuple[list[Resolver], list[str]]  # the replicas `all` found, and the warnings of finding them


async def gather(target: Target, api: ApiOptions, obs: Observations, deadline: float,
                 resolv: tuple[Nameserver, ...] = (), memo: dict | None = None,
                 discovered: Discovered | None = None) -> ResolverEvidence:
    """The resolvers of --resolvers (the replicas found through the API with `all`, or as `discovered`
    once for many StatefulSets by check --all), each asked every question the path was asked."""
    choice = target.resolvers
    warnings: list[str] = []
    replicas: list[Resolver] = []
    if choice.mode == "all" and discovered is not None:
        replicas, warnings = list(discovered[0]), list(discovered[1])
    elif choice.mode == "all":
        replicas = await discover(choice.dns_service, api, deadline, warnings)
    resolvers = plan(target.nameservers, choice, replicas, resolv)
    path_transport = "tcp" if choice.transport == "tcp" else "udp"
    path_leg = Leg(resolvers[0], path_transport, {(lk.name, lk.rdtype): lk for lk in obs.lookups})
    questions = [(lk.name, lk.rdtype, len(lk.values)) for lk in obs.lookups]
    legs = await ask_all(resolvers, path_leg, questions, choice.transport, deadline, memo)
    return ResolverEvidence(tuple(resolvers), choice.transport, tuple(legs),
                            tuple((n, t) for n, t, _ in questions), tuple(warnings), "/".join(choice.dns_service))


GRANT = ("apply the resolvers component (k8s/resolvers/: a Role in {ns} granting list on "
         "endpointslices.discovery.k8s.io, bound to the ssdns ServiceAccount)")


async def discover(dns_service: tuple[str, str], api: ApiOptions, deadline: float,
                   warnings: list[str]) -> list[Resolver]:
    """The cluster DNS Service's ready endpoints, each named by its pod and node. What stops it (no API,
    a refused list, no endpoints) is a warning, and the run asks the path and NodeLocal only."""
    from ssdns import kube
    from ssdns.errors import ApiError, ApiUnavailable

    ns, name = dns_service
    lost = "; asked the path (and NodeLocal) only"
    if api.mode == "off" or not kube.credentials_available(api):
        warnings.append(f"the replicas of {ns}/{name} were not asked: they are found through the Kubernetes API, "
                        f"which this run does not use (--api off, or no credentials){lost}")
        return []
    try:
        client = kube.api_client(api, deadline)
        try:
            found = await kube.dns_endpoints(client, ns, name, deadline)
        finally:
            client.close()
    except ApiError as exc:
        fix = GRANT.format(ns=ns) if exc.status == 403 else "check API access"
        warnings.append(f"cannot list the EndpointSlices of {ns}/{name} ({exc}): {fix}{lost}")
        return []
    except ApiUnavailable as exc:
        warnings.append(f"cannot list the EndpointSlices of {ns}/{name}: {exc}{lost}")
        return []
    if not found:
        warnings.append(f"{ns}/{name} has no ready endpoints in its EndpointSlices: no such Service, or none of "
                        f"its pods is ready; give --dns-service NAMESPACE/NAME{lost}")
    return [Resolver(pod or str(Nameserver(ip, port)), "replica", (Nameserver(ip, port),), pod=pod, node=node)
            for pod, node, ip, port in found]
