"""What the Kubernetes API says, as plain data: the StatefulSet, its Service, pods, EndpointSlices, PVCs.

kube.py fills these from the API's JSON (read through the official client); everything downstream (expected.py,
the checks, state) reads only these, so it is testable without a cluster or the client.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StatefulSetFacts:
    name: str
    replicas: int
    service_name: str
    selector: str  # a label selector string, as list calls take it
    pod_management_policy: str = "OrderedReady"
    claim_templates: list[str] = field(default_factory=list)
    ready_replicas: int = 0
    first_ordinal: int = 0  # spec.ordinals.start: pods are NAME-start .. NAME-(start+replicas-1)

    @property
    def ordinals(self) -> range:
        return range(self.first_ordinal, self.first_ordinal + self.replicas)


@dataclass
class ServiceFacts:
    name: str
    exists: bool = True
    headless: bool = True
    cluster_ip: str | None = None
    publish_not_ready: bool = False
    ports: list[tuple[str | None, int, str]] = field(default_factory=list)  # (name, port, protocol)
    ip_families: list[str] = field(default_factory=list)


@dataclass
class PodFacts:
    name: str
    uid: str
    ips: list[str]
    ready: bool
    terminating: bool
    phase: str
    node: str | None
    restarts: int
    hostname: str | None
    subdomain: str | None


@dataclass
class EndpointFacts:
    addresses: list[str]
    hostname: str | None
    ready: bool
    serving: bool
    terminating: bool
    pod: str | None  # targetRef name, when the target is a Pod


@dataclass
class PvcFacts:
    name: str
    phase: str | None
    volume: str | None


@dataclass
class ApiProblem:
    """A read the API refused or failed: the run goes on without it, and says what is missing."""

    verb: str
    resource: str
    status: int | None
    message: str  # what the server said (its Status message), or what failed
    name: str | None = None  # the object read, when one was (a get)
    namespace: str | None = None
    kind: str | None = None  # errors.ApiError's kind; None: from the status
    server: str = ""  # the API server's URL

    def __str__(self) -> str:
        """The one wording of a failed API call (errors.ApiError): what failed and what to do."""
        from ssdns.errors import UNREACHABLE, ApiError, kind_of_status

        kind = self.kind or (kind_of_status(self.status) if self.status else UNREACHABLE)
        return ApiError(kind, self.verb, self.resource, status=self.status, reason=self.message, name=self.name,
                        namespace=self.namespace, server=self.server).describe()


@dataclass
class ClusterFacts:
    namespace: str
    statefulset: StatefulSetFacts | None
    service: ServiceFacts | None
    pods: dict[str, PodFacts] = field(default_factory=dict)
    endpoints: list[EndpointFacts] = field(default_factory=list)
    endpoint_ports: list[tuple[str | None, int, str]] = field(default_factory=list)  # the pods' ports (targetPorts)
    pvcs: dict[str, PvcFacts] = field(default_factory=dict)
    problems: list[ApiProblem] = field(default_factory=list)
    elapsed_ms: float = 0.0

    def pvcs_of(self, pod: str) -> list[PvcFacts]:
        """The PVCs a StatefulSet pod owns: `<template>-<pod>` for each volumeClaimTemplate."""
        if self.statefulset is None:
            return []
        return [self.pvcs.get(f"{t}-{pod}") or PvcFacts(f"{t}-{pod}", None, None)
                for t in self.statefulset.claim_templates]

    def volumes_of(self, pod: str) -> dict[str, str | None]:
        """claim -> the volume it is bound to, for one pod."""
        return {c.name: c.volume for c in self.pvcs_of(pod)}
