"""The one result model every output renders: findings, per-pod facts, run statistics. Typed all the
way down; `to_dict` is the JSON (schema ssdns.check/v1). Nothing here recomputes a verdict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ssdns.frozen import frozen

if TYPE_CHECKING:  # only for types: each costs an import a run may not need
    from ssdns.facts import PodFacts, PvcFacts
    from ssdns.converge import Convergence
    from ssdns.dnsquery import Lookup
    from ssdns.httpprobe import HttpObservation
    from ssdns.resolvers import ResolverEvidence

SCHEMA = "ssdns.check/v1"


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        """pass < warn < fail: the worst of several findings wins."""
        return _RANK[self]


_RANK = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}


def worst(statuses: list[Status]) -> Status:
    return max(statuses, key=lambda s: s.rank)


@frozen
class Finding:
    """What one check found about one subject."""

    check: str  # a stable id, e.g. "dns.pod"
    status: Status
    subject: str  # the pod name when the finding is about one pod, else the DNS name
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    # How long the evidence it judged took to gather (JUnit's time); not part of the JSON.
    elapsed_ms: float | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.check, "status": self.status.value, "subject": self.subject,
                               "message": self.message}
        if self.details:
            out["details"] = self.details
        return out


@frozen
class ApiPodView:
    """What the Kubernetes API said about one pod, next to what DNS said."""

    pod: PodFacts | None  # None: the pod does not exist in the API
    pvcs: list[PvcFacts] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        if self.pod is None:
            return {"exists": False}
        return {**asdict(self.pod), "exists": True, "pvcs": [asdict(p) for p in self.pvcs]}


@dataclass
class PodView:
    """One pod as the outputs show it: its names, addresses, answers and API facts."""

    name: str
    ordinal: int | None
    fqdn: str
    ips: list[str]
    ptr: dict[str, list[str]] = field(default_factory=dict)
    http: HttpObservation | None = None
    source: str = "expected"  # expected (from --statefulset/--replicas or the API) or how it was discovered
    api: ApiPodView | None = None  # facts from the Kubernetes API, when it was used
    dns_ms: float | None = None  # the time of its own A query (a metric; not in the JSON)
    # What each resolver answered for its name, set only when the resolvers disagree on some pod (the
    # table then shows a column per resolver); the JSON has every answer under "resolvers".
    by_resolver: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "ordinal": self.ordinal, "fqdn": self.fqdn, "ips": self.ips,
               "ptr": self.ptr, "http": self.http.to_dict() if self.http is not None else None,
               "source": self.source}
        if self.api is not None:
            out["api"] = self.api.to_dict()
        return out


@frozen
class TargetView:
    """What was checked and how (the Target, as refined by the API)."""

    service: str | None
    namespace: str
    zone: str
    statefulset: str | None
    replicas: int | None
    port_name: str | None
    http: bool
    http_port: int | None
    path: str
    expect: str
    match: str
    timeout: float
    api: str  # how the API was used: auto, on, or off when it was not

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@frozen
class ServiceView:
    """The headless Service's name and what its A and AAAA lookups found."""

    name: str  # the Service's FQDN
    ips: list[str]
    a: str  # the A and AAAA lookups' outcomes
    aaaa: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@frozen
class ScaleSummary:
    """scale-test's order, for the outputs."""

    replicas: int  # scaled from, and back to
    to: int
    removed_order: list[str]
    returned_order: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.replicas, "to": self.to, "removed_order": self.removed_order,
                "returned_order": self.returned_order}


@frozen
class StoreSummary:
    """Where --state keeps the snapshots, and how many."""

    where: str
    snapshots: int
    keep: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@frozen
class Stats:
    """How the run went: time taken and queries and requests sent."""

    elapsed_ms: float
    dns_queries: int = 0
    http_requests: int = 0
    nameservers: list[str] = field(default_factory=list)
    api_ms: float | None = None  # when the API was read
    restart: list[Convergence] | None = None  # restart-test
    scale: ScaleSummary | None = None  # scale-test
    state: StoreSummary | None = None  # --state

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"elapsed_ms": self.elapsed_ms, "dns_queries": self.dns_queries,
                               "http_requests": self.http_requests, "nameservers": self.nameservers}
        if self.api_ms is not None:
            out["api_ms"] = self.api_ms
        if self.restart is not None:
            out["restart"] = [c.to_dict() for c in self.restart]
        if self.scale is not None:
            out["scale"] = self.scale.to_dict()
        if self.state is not None:
            out["state"] = self.state.to_dict()
        return out


@frozen
class Result:
    """One run, typed: what every output renders."""

    target: TargetView
    service: ServiceView
    pods: list[PodView]
    findings: list[Finding]
    notes: list[str] = field(default_factory=list)
    stats: Stats = field(default_factory=lambda: Stats(0.0))
    lookups: list[Lookup] = field(default_factory=list)
    resolvers: ResolverEvidence | None = None  # --resolvers all|LIST, --transport both: every answer

    @property
    def ok(self) -> bool:
        return not any(f.status is Status.FAIL for f in self.findings)

    def count(self, status: Status) -> int:
        return sum(1 for f in self.findings if f.status is status)

    def findings_for(self, check: str, subject: str) -> list[Finding]:
        # Indexed, not scanned: the text report asks this per pod and check (a scan made 5,000 pods take
        # 14 s). Rebuilt whenever the findings list is replaced or grows.
        cached = getattr(self, "_index", None)
        if cached is None or cached[0] is not self.findings or cached[1] != len(self.findings):
            index: dict[tuple[str, str], list[Finding]] = {}
            for f in self.findings:
                index.setdefault((f.check, f.subject), []).append(f)
            cached = (self.findings, len(self.findings), index)
            object.__setattr__(self, "_index", cached)  # a cache on a frozen Result, not a field
        return list(cached[2].get((check, subject), ()))

    def adding(self, findings: list[Finding] | None = None, notes: list[str] | None = None,
               state: StoreSummary | None = None) -> Result:
        """A new Result with more findings (listed after these), notes, or the state store's summary."""
        stats = self.stats if state is None else replace(self.stats, state=state)
        return replace(self, findings=[*self.findings, *(findings or [])], notes=[*self.notes, *(notes or [])],
                       stats=stats)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "ok": self.ok,
            "summary": {s.value: self.count(s) for s in Status},
            "target": self.target.to_dict(),
            "service": self.service.to_dict(),
            "pods": [p.to_dict() for p in self.pods],
            "findings": [f.to_dict() for f in self.findings],
            "notes": self.notes,
            "stats": self.stats.to_dict(),
            "lookups": [lk.to_dict() for lk in self.lookups],
            **({"resolvers": self.resolvers.to_dict()} if self.resolvers is not None else {}),
        }
