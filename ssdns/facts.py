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
    # The rollout: status.currentRevision / updateRevision, spec.updateStrategy, status.updatedReplicas.
    current_revision: str | None = None
    update_revision: str | None = None
    update_strategy: str = "RollingUpdate"
    partition: int = 0  # spec.updateStrategy.rollingUpdate.partition
    updated_replicas: int = 0
    # spec.persistentVolumeClaimRetentionPolicy (both Retain when unset)
    retain_when_scaled: str = "Retain"
    retain_when_deleted: str = "Retain"
    template_labels: dict[str, str] = field(default_factory=dict)  # spec.template.metadata.labels

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
    selector: dict[str, str] | None = None  # spec.selector ({}: none, pods are not selected); None: not read


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
    labels: dict[str, str] = field(default_factory=dict)
    host_network: bool = False  # spec.hostNetwork
    containers: list[str] = field(default_factory=list)  # container and init container names
    ready_since: float | None = None  # the Ready condition's lastTransitionTime (Unix seconds)
    deleted_at: float | None = None  # metadata.deletionTimestamp (Unix seconds)
    grace_seconds: int | None = None  # metadata.deletionGracePeriodSeconds
    revision: str | None = None  # the controller-revision-hash label: the StatefulSet revision it runs


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
    read_at: float | None = None  # Unix time of the read: ages (not Ready since, terminating since) count to it
    # The Service's v1 Endpoints object: its endpoints.kubernetes.io/over-capacity annotation ("truncated"
    # when the Endpoints controller cut the object at 1000 addresses); None: not read or not set.
    over_capacity: str | None = None

    def pvcs_of(self, pod: str) -> list[PvcFacts]:
        """The PVCs a StatefulSet pod owns: `<template>-<pod>` for each volumeClaimTemplate."""
        if self.statefulset is None:
            return []
        return [self.pvcs.get(f"{t}-{pod}") or PvcFacts(f"{t}-{pod}", None, None)
                for t in self.statefulset.claim_templates]

    def volumes_of(self, pod: str) -> dict[str, str | None]:
        """claim -> the volume it is bound to, for one pod."""
        return {c.name: c.volume for c in self.pvcs_of(pod)}

    def retained_claims(self) -> list[tuple[int, PvcFacts]]:
        """(ordinal, claim) of the StatefulSet's claims whose ordinal it does not run now: what a
        scale-up re-attaches (claims `<template>-<statefulset>-<ordinal>`, in ordinal order)."""
        sts = self.statefulset
        if sts is None:
            return []
        out = []
        for t in sts.claim_templates:
            prefix = f"{t}-{sts.name}-"
            for name, claim in self.pvcs.items():
                rest = name[len(prefix):] if name.startswith(prefix) else ""
                if rest.isascii() and rest.isdigit() and int(rest) not in sts.ordinals:
                    out.append((int(rest), claim))
        return sorted(out, key=lambda oc: (oc[0], oc[1].name))
