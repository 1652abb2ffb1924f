"""Everything one run learned, typed, built once: the input of every check.

The target, what DNS and HTTP said (observe.py), what the Kubernetes API said (facts) with what DNS
should therefore say (expected.py), and, for the disruptive commands and runs with state, what the
restart, the scale or the previous run showed. Checks read only this; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import field
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING

from ssdns.frozen import frozen
from ssdns.names import by_ordinal

if TYPE_CHECKING:  # types only: what judges history alone (state.py) loads no DNS or HTTP code, and
    # a run without the API loads no API facts
    from ssdns.change_evidence import HistoryEvidence, RestartEvidence, ScaleEvidence
    from ssdns.expected import PodExpectation
    from ssdns.facts import ClusterFacts
    from ssdns.observations import Observations
    from ssdns.resolvers import ResolverEvidence
    from ssdns.target import Target


class Need(StrEnum):
    """A part of the evidence a check can need."""

    DNS = "dns"  # the DNS observations (always there in a check run)
    SRV = "srv"  # the SRV lookup (only with a named port)
    HTTP = "http"  # one HTTP request per pod
    API = "api"  # the Kubernetes API's facts
    RESTART = "restart"  # restart-test's convergence
    SCALE = "scale"  # scale-test's order and volumes
    HISTORY = "history"  # the previous run's snapshot
    RESOLVERS = "resolvers"  # every resolver's answers (--resolvers all|LIST, --transport both)


@frozen
class ApiEvidence:
    """What the Kubernetes API said, and what DNS should therefore say."""

    facts: ClusterFacts
    # What DNS should say per pod; empty when the pods could not be listed (nothing known per pod).
    want: dict[str, PodExpectation] = field(default_factory=dict)

    def lost(self, resource: str) -> bool:
        """The API refused or failed to list this resource: checks built on it stay silent."""
        return any(p.resource == resource for p in self.facts.problems)

    @cached_property
    def absent_ok(self) -> frozenset[str]:
        """Pods rightly without a DNS name (not Ready, terminating, no hostname): api.dns reports them."""
        return frozenset(n for n, e in self.want.items() if not e.has_name)

    @cached_property
    def ip_owner(self) -> dict[str, str]:
        owners: dict[str, str] = {}
        for p in self.facts.pods.values():
            for ip in p.ips:
                owners.setdefault(ip, p.name)
        return owners

    def owner_of(self, ip: str) -> str | None:
        return self.ip_owner.get(ip)


@frozen
class Evidence:
    """Everything one run learned: the input of every check."""

    target: Target
    dns: Observations
    expected: tuple[str, ...] = ()  # the pods that should be there (from --replicas or the API)
    api: ApiEvidence | None = None
    restart: RestartEvidence | None = None
    scale: ScaleEvidence | None = None
    history: HistoryEvidence | None = None
    resolvers: ResolverEvidence | None = None

    def has(self, need: Need) -> bool:
        present = {
            Need.DNS: True,
            Need.SRV: self.dns.srv is not None,
            Need.HTTP: self.target.http,
            Need.API: self.api is not None,
            Need.RESTART: self.restart is not None,
            Need.SCALE: self.scale is not None,
            Need.HISTORY: self.history is not None,
            Need.RESOLVERS: self.resolvers is not None,
        }
        return present[need]

    @cached_property
    def pods(self) -> list[str]:
        """Every pod name observed, in ordinal order."""
        return by_ordinal(list(self.dns.pods), self.target.statefulset)

    @property
    def absent_ok(self) -> frozenset[str]:
        return self.api.absent_ok if self.api is not None else frozenset()

    @cached_property
    def none_ready(self) -> bool:
        """No pod should be in DNS (none wanted, or the API says none is ready): NXDOMAIN is then right."""
        if not self.expected:
            return self.target.replicas == 0
        return all(n in self.absent_ok for n in self.expected)

    def time_for(self, needs: tuple[Need, ...], subject: str) -> float | None:
        """How long the evidence behind a finding took to gather, in ms: the pod's HTTP request or DNS
        lookups when the subject is a pod, else the whole DNS observation or API read."""
        pod = self.dns.pods.get(subject)
        if Need.RESTART in needs and self.restart is not None:
            return self.restart.time_for(subject)
        if Need.HTTP in needs and pod is not None and pod.http is not None:
            return pod.http.elapsed_ms
        if Need.API in needs and self.api is not None:
            return self.api.facts.elapsed_ms
        if pod is not None:
            ms = self._pod_dns_ms.get(subject)
            if ms is None:
                lookups = [pod.a, pod.aaaa, *(self.dns.ptr.get(ip) for ip in pod.ips)]
                ms = self._pod_dns_ms[subject] = max(lk.elapsed_ms for lk in lookups if lk is not None)
            return ms
        return self.dns.elapsed_ms

    @cached_property
    def _pod_dns_ms(self) -> dict[str, float]:
        """time_for's answer per pod, worked out once: a pod has about five findings."""
        return {}
