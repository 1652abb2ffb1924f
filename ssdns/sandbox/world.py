"""The sandbox's single source of truth: one emulated StatefulSet behind one headless Service.

DNS, the echo pods and the Kubernetes API all render this state, so they tell one consistent
story unless a fault says otherwise. Pure data and pure functions; no sockets, no kubernetes import,
no clock: the timings (terminate_delay, start_delay, ready_delay, dns_delay) are settings that the
StatefulSet controller (controller.py) and the DNS server (dnsserver.py) act on.

What the API server adds to every object (uid, creationTimestamp, resourceVersion) lives here
too: `World.changed()` bumps the global `version` and gives every object whose API-visible
content changed since the last call `resource_version = version`, recording ADDED / MODIFIED /
DELETED in `events` with a snapshot of the object as it was then (what a watch replays), then
tells the `listeners` (the DNS server's lagging view, the API's open watches). Mutate the world,
then call `changed()`; the helpers below (add_pod, create_pod, start_pod, replace_pod,
terminate_pod, delete_pod, set_ready, scale, set_replicas, the ConfigMap writes) do.

The EndpointSlice view is computed, never stored: `endpoints(world)` applies the EndpointSlice
controller's rules to the pods and the Service, and both DNS (records.py) and the API render
it, so they cannot disagree unless a fault says so.
"""

from __future__ import annotations

import copy
import ipaddress
import math
import uuid
from collections import deque
from typing import NamedTuple
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone

from ssdns.frozen import frozen

POD_NET = ipaddress.ip_network("127.10.0.0/16")  # pod IPs: every 127.x address is local on lo
CLUSTER_IP = "127.10.255.1"  # the Service's ClusterIP when it is not headless (fault not-headless)
NODES = 3  # pods are spread over node-0 .. node-2 by ordinal
MAX_ENDPOINTS_PER_SLICE = 100  # the EndpointSlice controller's default --max-endpoints-per-slice
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

POLICIES = ("OrderedReady", "Parallel")  # spec.podManagementPolicy
EVENTS_KEPT = 10000  # the watch cache: a watch from an older resourceVersion gets 410 Gone

HIDDEN = {"api": False}  # field metadata: a fault the API cannot see (does not bump resourceVersion)


def new_uid() -> str:
    return str(uuid.uuid4())


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


@dataclass(kw_only=True)
class Tracked:
    """What the API server adds to every stored object."""

    uid: str = field(default_factory=new_uid)
    created: datetime = field(default_factory=now)
    resource_version: int = 0  # World.version at this object's last API-visible change


@dataclass
class SandboxPod(Tracked):
    name: str
    ordinal: int
    ip: str  # where the echo pod listens, what the EndpointSlice lists; status.podIP unless Pending
    ready: bool = True  # the Ready condition (readiness probe passing)
    answer_as: str | None = field(default=None, metadata=HIDDEN)  # fault: answers HTTP with this name
    in_dns: bool = field(default=True, metadata=HIDDEN)  # fault: False leaves the pod out of every DNS record
    http_up: bool = field(default=True, metadata=HIDDEN)  # fault: False means nothing listens on the pod's IP
    http_hang: bool = field(default=False, metadata=HIDDEN)  # fault: the pod accepts HTTP but never answers
    dns_ip: str | None = field(default=None, metadata=HIDDEN)  # fault: DNS serves this address instead of ip
    node: str = ""  # spec.nodeName
    phase: str = "Running"  # status.phase: Pending (created, no IP yet, nothing listens), Running
    restart_count: int = 0  # the container's restartCount
    terminating: bool = False  # metadata.deletionTimestamp is set (graceful deletion in progress)
    deleted_at: datetime | None = None  # metadata.deletionTimestamp, when terminating
    hostname: str | None = None  # spec.hostname; None means the pod name (as the StatefulSet controller sets)
    subdomain: str | None = None  # spec.subdomain; the StatefulSet sets its serviceName
    labels: dict[str, str] = field(default_factory=dict)
    ready_changed: datetime = field(default_factory=now)  # lastTransitionTime of the Ready condition
    revision: str | None = None  # the StatefulSet revision it runs (controller-revision-hash); None: current
    stuck: bool = field(default=False, metadata=HIDDEN)  # fault: its node is gone, a deletion never completes
    also_behind: str | None = field(default=None, metadata=HIDDEN)  # fault: another headless Service selects it

    def __post_init__(self) -> None:
        if self.hostname is None:
            self.hostname = self.name


@dataclass
class SandboxPVC(Tracked):
    """A claim from the StatefulSet's volumeClaimTemplates: www-<pod>. Outlives its pod."""

    name: str
    pod: str
    phase: str = "Bound"  # status.phase: Bound or Pending
    volume_name: str | None = None  # spec.volumeName (pvc-<uuid> once bound)
    storage: str = "1Gi"
    storage_class: str = "standard"
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class SandboxService(Tracked):
    name: str
    selector: dict[str, str] = field(default_factory=dict)
    cluster_ip: str | None = None  # None: headless (clusterIP: None)
    publish_not_ready: bool = False  # spec.publishNotReadyAddresses
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class SandboxStatefulSet(Tracked):
    """The StatefulSet object's own settings; its name and serviceName are World.statefulset/.service."""

    replicas: int
    pod_management_policy: str = "OrderedReady"
    claim_template: str = "www"
    storage: str = "1Gi"
    generation: int = 1
    update_revision: str | None = None  # a rollout in progress to this revision; None: none
    partition: int = 0  # spec.updateStrategy.rollingUpdate.partition
    retain_when_scaled: str = "Retain"  # spec.persistentVolumeClaimRetentionPolicy
    retain_when_deleted: str = "Retain"
    host_network: bool = False  # spec.template.spec.hostNetwork
    sidecar: bool = False  # the pods also run an istio-proxy container
    annotations: dict[str, str] = field(default_factory=dict)  # metadata.annotations (ssdns/skip: "true")


@dataclass
class SandboxSlice(Tracked):
    """The identity of one EndpointSlice; its content is computed by endpoint_slices()."""

    name: str


@dataclass
class SandboxConfigMap(Tracked):
    name: str
    data: dict[str, str] = field(default_factory=dict)
    binary_data: dict[str, str] = field(default_factory=dict)  # base64 text, as the API carries it
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class DnsReplica(Tracked):
    """One CoreDNS replica behind kube-system/kube-dns, on its own loopback address (replicas.py serves
    it). Faults: down (nothing listens), slow (answers after `slow` seconds), frozen (stale: the
    records it keeps serving), nxdomain (pods whose names it answers NXDOMAIN), lag (it follows the
    API this many seconds late instead of dns_delay: a replica whose watch lags, or that just restarted)."""

    name: str  # the pod's name, as a ReplicaSet names it
    ip: str
    node: str
    up: bool = True
    slow: float = 0.0
    frozen: dict | None = None
    nxdomain: set[str] = field(default_factory=set)
    lag: float | None = None  # None: the world's dns_delay


DNS_NAMESPACE = "kube-system"
DNS_SERVICE = "kube-dns"
DNS_REPLICA_NET = "127.54.1."  # replica k listens on 127.54.1.<k+1>, on the sandbox DNS server's port


def dns_replica(k: int) -> DnsReplica:
    import hashlib

    suffix = hashlib.sha1(str(k).encode()).hexdigest()[:5]
    return DnsReplica(f"coredns-5d78c9869d-{suffix}", f"{DNS_REPLICA_NET}{k + 1}", f"node-{k % NODES}")


@frozen
class Endpoint:
    """One endpoint as the EndpointSlice controller writes it, plus what DNS does with it."""

    pod: str  # targetRef name
    pod_uid: str
    ip: str  # addresses[0]: the pod's IP
    hostname: str | None  # set only when spec.hostname is set and spec.subdomain is the Service
    node: str
    ready: bool
    serving: bool
    terminating: bool
    dns_ip: str  # what DNS serves for it: ip, unless a fault (stale-dns, dns-other-pod)
    in_dns: bool  # False: a fault (missing-dns) keeps it out of DNS

    def api_view(self) -> tuple:
        return (self.pod, self.pod_uid, self.ip, self.hostname, self.node, self.ready, self.serving,
                self.terminating)


class ObjectError(Exception):
    """A write the API server refuses; `reason` is the V1Status reason."""

    reason = "BadRequest"

    def __init__(self, kind: str, name: str, message: str = ""):
        super().__init__(message or f"{kind} {name!r}: {self.reason}")
        self.kind, self.name = kind, name


class NotFound(ObjectError):
    reason = "NotFound"


class AlreadyExists(ObjectError):
    reason = "AlreadyExists"


class Conflict(ObjectError):
    reason = "Conflict"


class Event(NamedTuple):
    """One journal entry: what a watch sends. `obj` is a snapshot of the object at `rv` (for an
    EndpointSlice: (slice identity, endpoints)); DELETED carries the last state, stamped `rv`."""

    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    kind: str  # Pod, PersistentVolumeClaim, Service, StatefulSet, EndpointSlice, ConfigMap
    obj: object


@dataclass
class World:
    namespace: str = "default"
    service: str = "nginx"  # the StatefulSet's spec.serviceName (and the Service's name, when it exists)
    statefulset: str = "web"
    zone: str = "cluster.local"
    port_name: str = "web"
    port: int = 0  # the echo pods' HTTP port; 0 until the sandbox binds one
    proto: str = "tcp"
    ttl: int = 5  # the CoreDNS kubernetes plugin's default TTL
    app: str = "nginx"  # the pods' `app` label: the StatefulSet's and the Service's selector
    pods: list[SandboxPod] = field(default_factory=list)
    pvcs: list[SandboxPVC] = field(default_factory=list)
    configmaps: dict[str, SandboxConfigMap] = field(default_factory=dict)  # by name, in `namespace`
    extra_service_ips: list[str] = field(default_factory=list)  # fault: stale IPs under the Service
    api_forbidden: set[str] = field(default_factory=set)  # fault: resources the API refuses ("*": all)
    over_capacity: bool = False  # fault: the Endpoints object says over-capacity (as past 1000 addresses)
    version: int = 0  # bumped on every change: renderers cache on it; it is the API's resourceVersion
    svc: SandboxService | None = field(default=None, init=False)  # None: the Service does not exist
    sts: SandboxStatefulSet = field(init=False)
    slices: list[SandboxSlice] = field(default_factory=list, init=False)
    events: deque = field(default_factory=lambda: deque(maxlen=EVENTS_KEPT), init=False)  # of Event
    compacted: int = field(default=0, init=False)  # events at or below this resourceVersion may be gone
    # Timings, in seconds (the controller and the DNS server act on them; 0 means at once):
    terminate_delay: float = 0.1  # a deleted pod stays terminating (deletionTimestamp set) this long
    start_delay: float = 0.05  # a created pod is Pending (no IP, nothing listening) this long ...
    ready_delay: float = 0.3  # ... and becomes Ready this long after it was created
    dns_delay: float = 0.3  # DNS answers with the endpoints as they were this long ago (CoreDNS's lag)
    pod_management_policy: str = "OrderedReady"  # or Parallel: how the controller scales
    # Faults the controller and DNS act on (faults.py):
    dns_stuck: bool = False  # DNS never catches up: it serves what it served when this was set
    dns_servfail: bool = False  # DNS answers SERVFAIL in its zones, as CoreDNS does before it has synced
    replacement_answer_as: dict[str, str] = field(default_factory=dict)  # pod -> name its re-creations answer with
    replacement_new_volume: set[str] = field(default_factory=set)  # pods whose re-creation gets a new claim
    ip_change_after: dict[str, float] = field(default_factory=dict)  # pod -> seconds after start: a new sandbox
    # The cluster DNS (kube-system/kube-dns): its replicas, and faults of the DNS transport (replicas.py)
    dns_replicas: list[DnsReplica] = field(default_factory=lambda: [dns_replica(k) for k in range(3)])
    dns_slice: SandboxSlice = field(default_factory=lambda: SandboxSlice(f"{DNS_SERVICE}-q7x2m"))
    dns_port: int = 53  # the replicas' port, as the kube-dns EndpointSlice lists it (set by the sandbox)
    udp_only: bool = False  # no DNS server listens on TCP
    tcp_differs: bool = False  # over TCP, a name with several addresses lacks its last one
    dns_forbidden: bool = False  # the API refuses to list kube-system's EndpointSlices (no resolvers Role)
    # A caching resolver in front of DNS (NodeLocal DNSCache, an application's cache), for ssdns watch:
    negative_ttl: float = 0.0  # > 0: an NXDOMAIN is cached this long (the SOA minimum), even after the name exists
    stale_for: float = 0.0  # > 0: a positive answer is cached this long, so an old IP outlives its pod
    # The API's watch streams (ssdns watch): 0 means never.
    watch_drop_after: float = 0.0  # each watch stream is cut (no last chunk) after this many seconds
    watch_expire_after: float = 0.0  # each watch stream ends with a 410 Gone ERROR event after this many seconds
    sts_deleted: bool = False  # the StatefulSet object is gone (delete_statefulset): its pods go, none come back
    listeners: list = field(default_factory=list, init=False, repr=False, compare=False)  # called by changed()
    # Other StatefulSets served by the same DNS server, API and echo pods (add_neighbour): static, for
    # checks of many StatefulSets at once (no controller, no watch events); pod_net keeps their IPs apart.
    neighbours: list[World] = field(default_factory=list, init=False, repr=False, compare=False)
    pod_net: ipaddress.IPv4Network | ipaddress.IPv6Network = field(default=POD_NET, repr=False)
    _next_ip: int = 1
    _seen: dict = field(default_factory=dict, init=False, repr=False)  # uid -> (kind, snapshot, fingerprint)

    def __post_init__(self) -> None:
        for name in ("terminate_delay", "start_delay", "ready_delay", "dns_delay", "negative_ttl", "stale_for",
                     "watch_drop_after", "watch_expire_after"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value!r}")
        if self.pod_management_policy not in POLICIES:
            raise ValueError(f"pod_management_policy must be one of {', '.join(POLICIES)}, "
                             f"not {self.pod_management_policy!r}")
        self.svc = SandboxService(self.service, selector=self.selector, labels={"app": self.app})
        self.sts = SandboxStatefulSet(replicas=len(self.pods), pod_management_policy=self.pod_management_policy)

    # --- lookups ---------------------------------------------------------------------------

    def pod(self, name: str) -> SandboxPod:
        for p in self.pods:
            if p.name == name:
                return p
        raise KeyError(name)

    def pod_by_ip(self, ip: str) -> SandboxPod | None:
        return next((p for p in self.pods if p.ip == ip), None)

    def pvc(self, name: str) -> SandboxPVC:
        for c in self.pvcs:
            if c.name == name:
                return c
        raise KeyError(name)

    def pvc_name(self, pod: str) -> str:
        return f"{self.sts.claim_template}-{pod}"

    @property
    def selector(self) -> dict[str, str]:
        return {"app": self.app}

    @property
    def service_fqdn(self) -> str:
        return f"{self.service}.{self.namespace}.svc.{self.zone}."

    def pod_fqdn(self, name: str) -> str:
        return f"{name}.{self.service}.{self.namespace}.svc.{self.zone}."

    def allocate_ip(self) -> str:
        """A fresh pod IP, never reused within this sandbox (as a real pod network does)."""
        n = self._next_ip
        self._next_ip += 1
        if n % 256 == 0:  # skip .0 addresses
            return self.allocate_ip()
        if n >= self.pod_net.num_addresses - 1:
            raise RuntimeError("sandbox pod network exhausted")
        return str(self.pod_net.network_address + n)

    # --- mutations (each ends with changed()) ----------------------------------------------

    def _new_pod(self, ordinal: int) -> SandboxPod:
        name = f"{self.statefulset}-{ordinal}"
        labels = {**self.selector, POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal)}
        return SandboxPod(name, ordinal, self.allocate_ip(), node=f"node-{ordinal % NODES}",
                          hostname=name, subdomain=self.service, labels=labels)

    def _new_pvc(self, pod: str) -> SandboxPVC:
        return SandboxPVC(self.pvc_name(pod), pod, volume_name=f"pvc-{new_uid()}", storage=self.sts.storage,
                          labels=dict(self.selector))

    def _ensure_pvc(self, pod: str) -> SandboxPVC:
        """The claim the StatefulSet controller creates before the pod; kept when the pod goes."""
        try:
            return self.pvc(self.pvc_name(pod))
        except KeyError:
            claim = self._new_pvc(pod)
            self.pvcs.append(claim)
            return claim

    def add_pod(self, ordinal: int, *, notify: bool = True) -> SandboxPod:
        """Create pod <statefulset>-<ordinal> (new uid and IP) and its claim if missing."""
        if any(p.ordinal == ordinal for p in self.pods):
            raise ValueError(f"pod {self.statefulset}-{ordinal} exists")
        pod = self._new_pod(ordinal)
        self._ensure_pvc(pod.name)
        self.pods.append(pod)
        if len(self.pods) > 1 and self.pods[-2].ordinal > ordinal:
            self.pods.sort(key=lambda p: p.ordinal)
        if notify:
            self.changed()
        return pod

    def terminate_pod(self, name: str) -> SandboxPod:
        """Graceful deletion begins: deletionTimestamp set, the endpoint turns ready=false,
        terminating=true (still listed); delete_pod() or replace_pod() ends it."""
        pod = self.pod(name)
        if not pod.terminating:
            pod.terminating, pod.deleted_at = True, now()
            self.changed()
        return pod

    def delete_pod(self, name: str) -> SandboxPod:
        """Remove the pod object now (its PVC stays, as a StatefulSet's do). Returns the removed pod."""
        pod = self.pod(name)
        self.pods.remove(pod)
        self.changed()
        return pod

    def replace_pod(self, name: str) -> SandboxPod:
        """The StatefulSet controller's re-creation: same name, ordinal and claim; new uid, IP and
        creationTimestamp, restartCount 0, Ready. Per-pod faults are not carried over."""
        old = self.pod(name)
        new = self._new_pod(old.ordinal)
        self.pods[self.pods.index(old)] = new
        self._ensure_pvc(name)
        self.changed()
        return new

    def recreate_sandbox(self, name: str) -> SandboxPod:
        """The kubelet recreated the pod's sandbox (after a CNI or container runtime restart): the same
        object and UID, a new IP (status.podIP, the echo pod moves), the containers restarted
        (restartCount + 1) and not Ready until their readiness probe passes again (set_ready)."""
        pod = self.pod(name)
        pod.ip = self.allocate_ip()
        pod.restart_count += 1
        pod.ready, pod.ready_changed = False, now()
        self.changed()
        return pod

    def create_pod(self, ordinal: int) -> SandboxPod:
        """What the StatefulSet controller creates: pod <statefulset>-<ordinal>, Pending (its IP is
        allocated but not yet published, nothing listens), not Ready; start_pod() and set_ready()
        move it on. A returning ordinal (its claim exists) reuses its claim, unless the fault
        replacement-new-volume re-creates the claim on a new volume; replacement-wrong-name makes
        a returning pod answer HTTP with another name."""
        name = f"{self.statefulset}-{ordinal}"
        if any(p.name == name for p in self.pods):
            raise ValueError(f"pod {name} exists")
        returning = any(c.name == self.pvc_name(name) for c in self.pvcs)
        if returning and name in self.replacement_new_volume:
            self.pvcs = [c for c in self.pvcs if c.name != self.pvc_name(name)]  # a new claim, a new volume
        self._ensure_pvc(name)
        pod = self._new_pod(ordinal)
        pod.phase, pod.ready = "Pending", False
        if returning:
            pod.answer_as = self.replacement_answer_as.get(name)
        self.pods.append(pod)
        self.pods.sort(key=lambda p: p.ordinal)
        self.changed()
        return pod

    def start_pod(self, name: str) -> SandboxPod:
        """The containers started: Running, status.podIP set, the echo pod listens (not Ready yet)."""
        pod = self.pod(name)
        if pod.phase != "Running":
            pod.phase = "Running"
            self.changed()
        return pod

    def set_replicas(self, replicas: int) -> None:
        """spec.replicas = N, as a write to the StatefulSet or its scale subresource does; the
        controller then moves the pods (scale() is the instant version)."""
        if replicas < 0:
            raise ValueError("replicas must be >= 0")
        if replicas != self.sts.replicas:
            self.sts.replicas = replicas
            self.sts.generation += 1
            self.changed()

    def set_ready(self, name: str, ready: bool) -> SandboxPod:
        pod = self.pod(name)
        if pod.ready != ready:
            pod.ready, pod.ready_changed = ready, now()
            self.changed()
        return pod

    def scale(self, replicas: int) -> None:
        """spec.replicas = N, and the pods follow at once: missing ordinals below N are created,
        ordinals at or above N removed (their claims stay)."""
        self.sts.replicas = replicas
        self.sts.generation += 1
        have = {p.ordinal for p in self.pods}
        for i in range(replicas):
            if i not in have:
                self.add_pod(i, notify=False)
        self.pods = [p for p in self.pods if p.ordinal < replicas]
        self.changed()

    def delete_statefulset(self) -> None:
        """`kubectl delete statefulset`: the object goes; the garbage collector deletes its pods gracefully
        (they turn terminating; the controller removes them); their claims stay."""
        self.sts_deleted = True
        for pod in self.pods:
            if not pod.terminating:
                pod.terminating, pod.deleted_at = True, now()
        self.changed()

    def create_statefulset(self) -> None:
        """The StatefulSet is created again (same name and spec, a new UID): the controller makes its pods."""
        if self.sts_deleted:
            self.sts_deleted = False
            self.sts.uid, self.sts.created = new_uid(), now()
            self.changed()

    def create_configmap(self, cm: SandboxConfigMap) -> SandboxConfigMap:
        if cm.name in self.configmaps:
            raise AlreadyExists("configmaps", cm.name)
        self.configmaps[cm.name] = cm
        self.changed()
        return cm

    def replace_configmap(self, cm: SandboxConfigMap, expected_version: int | None) -> SandboxConfigMap:
        """Replace keeping uid and creationTimestamp; expected_version (the body's resourceVersion)
        must be the stored one (optimistic concurrency), None replaces unconditionally."""
        old = self.configmaps.get(cm.name)
        if old is None:
            raise NotFound("configmaps", cm.name)
        if expected_version is not None and expected_version != old.resource_version:
            raise Conflict("configmaps", cm.name)
        cm.uid, cm.created, cm.resource_version = old.uid, old.created, old.resource_version
        self.configmaps[cm.name] = cm
        self.changed()
        return cm

    def delete_configmap(self, name: str) -> SandboxConfigMap:
        cm = self.configmaps.pop(name, None)
        if cm is None:
            raise NotFound("configmaps", name)
        self.changed()
        return cm

    # --- versions --------------------------------------------------------------------------

    def changed(self) -> None:
        """Bump the version; stamp every object whose API-visible content changed; journal it with
        a snapshot; tell the listeners."""
        self.version += 1
        seen: dict = {}
        for kind, obj, fp, extra in self._objects():
            before = self._seen.get(obj.uid)
            if before is None or before[2] != fp:
                obj.resource_version = self.version
                snap = _snapshot(obj, extra)
                self._journal(Event(self.version, "ADDED" if before is None else "MODIFIED", kind, snap))
            else:
                snap = before[1]
            seen[obj.uid] = (kind, snap, fp)
        for uid, (kind, snap, _) in self._seen.items():
            if uid not in seen:
                self._journal(Event(self.version, "DELETED", kind, _stamped(snap, self.version)))
        self._seen = seen
        for listener in list(self.listeners):
            listener()

    def _journal(self, event: Event) -> None:
        if len(self.events) == self.events.maxlen:
            self.compacted = self.events[0].rv
        self.events.append(event)

    def _objects(self):
        if not self.sts_deleted:
            yield "StatefulSet", self.sts, (fingerprint(self.sts), self.statefulset, self.service, self.app,
                                             self.port, self.port_name, statefulset_status(self)), None
        if self.svc is not None:
            yield "Service", self.svc, (fingerprint(self.svc), self.port, self.port_name, self.proto), None
        for ident, eps in endpoint_slices(self):
            yield "EndpointSlice", ident, (tuple(e.api_view() for e in eps), self.port, self.port_name), tuple(eps)
        for p in self.pods:
            yield "Pod", p, (fingerprint(p), self.port), None
        for c in self.pvcs:
            yield "PersistentVolumeClaim", c, fingerprint(c), None
        for cm in self.configmaps.values():
            yield "ConfigMap", cm, fingerprint(cm), None


def _snapshot(obj, extra):
    """The object as it is now (shallow: the sandbox replaces, never edits, its dicts and lists)."""
    snap = copy.copy(obj)
    return snap if extra is None else (snap, extra)


def _stamped(snap, rv: int):
    if isinstance(snap, tuple):
        return (_stamped(snap[0], rv), snap[1])
    snap = copy.copy(snap)
    snap.resource_version = rv
    return snap


def fingerprint(obj) -> tuple:
    """The API-visible content of a tracked object (no resourceVersion, no hidden faults)."""
    return tuple(_freeze(getattr(obj, f.name)) for f in fields(obj)
                 if f.name != "resource_version" and f.metadata.get("api", True))


def _freeze(v):
    if isinstance(v, dict):
        return tuple(sorted(v.items()))
    if isinstance(v, (list, set)):
        return tuple(v)
    return v


def endpoints(world: World) -> list[Endpoint]:
    """The Service's endpoints, as the EndpointSlice controller computes them from the pods.

    Pods selected by the Service, with an IP (not Pending) and not in a terminal phase, are all listed:
    ready = publishNotReadyAddresses or (Ready and not terminating); serving = Ready;
    hostname only when spec.hostname is set and spec.subdomain names this Service.
    """
    svc = world.svc
    if svc is None or not svc.selector:
        return []
    out = []
    for p in world.pods:
        if not p.ip or p.phase in ("Pending", "Succeeded", "Failed"):
            continue
        if any(p.labels.get(k) != v for k, v in svc.selector.items()):
            continue
        serving = p.ready
        ready = svc.publish_not_ready or (serving and not p.terminating)
        hostname = p.hostname if p.hostname and p.subdomain == svc.name else None
        out.append(Endpoint(p.name, p.uid, p.ip, hostname, p.node, ready, serving, p.terminating,
                            p.dns_ip or p.ip, p.in_dns))
    return out


def endpoint_slices(world: World) -> list[tuple[SandboxSlice, list[Endpoint]]]:
    """The Service's EndpointSlices: endpoints in chunks of at most 100, one (empty) slice when
    there are none, none when there is no Service."""
    if world.svc is None:
        world.slices.clear()
        return []
    eps = endpoints(world)
    chunks = [eps[i:i + MAX_ENDPOINTS_PER_SLICE] for i in range(0, len(eps), MAX_ENDPOINTS_PER_SLICE)] or [[]]
    while len(world.slices) < len(chunks):
        world.slices.append(SandboxSlice(f"{world.svc.name}-{uuid.uuid4().hex[:5]}"))
    del world.slices[len(chunks):]
    return list(zip(world.slices, chunks, strict=True))


def statefulset_status(world: World) -> tuple[int, int, int]:
    """(replicas, readyReplicas, availableReplicas) as the StatefulSet controller reports them."""
    live = [p for p in world.pods if not p.terminating]
    ready = sum(1 for p in live if p.ready and p.phase == "Running")
    return len(live), ready, ready


def make_world(replicas: int = 3, **kw) -> World:
    world = World(**kw)
    world.sts.replicas = replicas
    for i in range(replicas):  # what add_pod does, without its per-pod look-ups (--pods 5000)
        pod = world._new_pod(i)
        world.pvcs.append(world._new_pvc(pod.name))
        world.pods.append(pod)
    world.changed()
    return world


NEIGHBOUR_NETS = 64 * (255 - 11)  # /22 blocks of 127.11.0.0 .. 127.254.255.255


def add_neighbour(world: World, statefulset: str, replicas: int = 3, **kw) -> World:
    """Another StatefulSet in the same sandbox (its namespace, Service and app label default to the
    StatefulSet's name; `namespace=` puts it elsewhere): pods on their own /22 of 127.11.0.0 and up."""
    i = len(world.neighbours)
    if i >= NEIGHBOUR_NETS:
        raise ValueError(f"at most {NEIGHBOUR_NETS} neighbours")
    net = ipaddress.ip_network(f"127.{11 + i // 64}.{(i % 64) * 4}.0/22")
    kw = {"namespace": world.namespace, "service": statefulset, "app": statefulset, "zone": world.zone,
          "port_name": world.port_name, **kw}
    n = make_world(replicas, statefulset=statefulset, pod_net=net, **kw)
    n.port = world.port
    world.neighbours.append(n)
    return n


def every_world(world: World) -> list[World]:
    """The world and its neighbours: what the DNS server, the API and the echo pods serve."""
    return [world, *world.neighbours]
