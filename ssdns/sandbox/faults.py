"""Faults the sandbox can inject, for tests and for people learning the tool.

Each is given as KIND[:ARG] on the command line (--fault wrong-name:web-1=web-2). Most change
the World the way a real cluster goes wrong, so DNS, the API and the pods all follow the
EndpointSlice rules; a few (missing-dns, stale-dns, dns-other-pod, extra-ip, dns-stuck) make DNS
disagree with the API on purpose. The replacement-* faults act later: on the pods the StatefulSet
controller re-creates (after a delete, or when a scaled-down ordinal comes back).
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta

from ssdns.errors import UsageError
from ssdns.sandbox.world import CLUSTER_IP, World, now

STALE_IP = "127.10.255.254"
API_RESOURCES = ("pods", "endpointslices", "statefulsets", "services", "persistentvolumeclaims", "configmaps",
                 "endpoints")
LONG_AGO = timedelta(hours=1)  # how long a stuck-* fault's pod has been stuck

FAULTS = {
    "wrong-name": "wrong-name:POD=OTHER  POD answers HTTP with OTHER's name (an identity swap)",
    "missing-dns": "missing-dns:POD       POD has no DNS records at all (the API still lists it ready)",
    "extra-ip": f"extra-ip[:IP]          the Service also answers IP (default {STALE_IP}), which no pod has",
    "no-http": "no-http:POD           nothing answers HTTP on POD's IP",
    "http-hang": "http-hang:POD         POD accepts HTTP connections but never answers",
    "shared-ip": "shared-ip:POD=OTHER   DNS gives POD the IP of OTHER (two pod names, one IP)",
    "dns-other-pod": "dns-other-pod:POD=OTHER  DNS gives POD the IP the API gives OTHER (same as shared-ip)",
    "not-ready": "not-ready:POD         POD is not Ready: endpoint ready=false, absent from DNS",
    "publish-not-ready": "publish-not-ready     the Service sets publishNotReadyAddresses: unready pods are in DNS",
    "stale-dns": "stale-dns:POD         POD moved to a new IP (API, HTTP) but DNS still serves the old one",
    "not-headless": f"not-headless          the Service has a ClusterIP ({CLUSTER_IP}): no per-pod names",
    "pvc-pending": "pvc-pending:POD       POD's claim www-POD is Pending, with no volume",
    "api-forbidden": "api-forbidden[:RESOURCE]  the API answers 403 for RESOURCE (" + ", ".join(API_RESOURCES)
                     + "), or for everything",
    "wrong-subdomain": "wrong-subdomain:POD   POD's spec.subdomain is not the Service: no hostname, no per-pod name",
    "no-service": "no-service            the StatefulSet's serviceName names no Service: 404 in the API, NXDOMAIN",
    "dns-servfail": "dns-servfail          DNS answers SERVFAIL, as CoreDNS does before its informers synced",
    "dns-stuck": "dns-stuck             DNS never catches up: it keeps serving the records it served when the "
                 "fault was applied",
    "replacement-wrong-name": "replacement-wrong-name:POD[=OTHER]  POD's replacement answers HTTP with OTHER's name "
                              "(default: the next pod's)",
    "replacement-new-volume": "replacement-new-volume:POD  POD's replacement gets its claim re-created on a new "
                              "volume (its old data is gone)",
    # The cluster DNS replicas (kube-system/kube-dns; K counts from 0 in the EndpointSlice's order):
    "stale-replica": "stale-replica:K       DNS replica K keeps serving the world as it was; then the last pod "
                     "moves to a new IP, which it never learns",
    "replica-down": "replica-down:K        nothing listens on DNS replica K (its endpoint is still listed)",
    "replica-nxdomain": "replica-nxdomain:K:POD  DNS replica K answers NXDOMAIN for POD's name",
    "udp-only": "udp-only              no DNS server listens on TCP (a truncated answer cannot be completed)",
    "tcp-differs": "tcp-differs           over TCP, a name with several addresses lacks its last one",
    "slow-replica": "slow-replica:K        DNS replica K answers every query after 5 s (the conntrack-race stall)",
    "lagging-replica": "lagging-replica:K[:S]  DNS replica K follows the API S seconds late (default 5; the others "
                       "--dns-delay): after a restart it serves the old IP, then NXDOMAIN, longer",
    "dns-forbidden": "dns-forbidden         the API refuses to list kube-system's EndpointSlices (no resolvers Role)",
    # Wiring and rollout mistakes (the wiring.* and rollout.* checks):
    "selector-mismatch": "selector-mismatch     the Service selects app=<app>-other: no pod matches, no endpoints",
    "host-network": "host-network          the pods run with hostNetwork: true",
    "istio-sidecar": "istio-sidecar         the pods also run an istio-proxy container",
    "stuck-rollout": "stuck-rollout:POD     a rollout to a new revision is stuck: POD runs it and has not been "
                     "Ready for an hour",
    "stuck-not-ready": "stuck-not-ready:POD   POD has not been Ready for an hour (its name answers NXDOMAIN)",
    "stuck-terminating": "stuck-terminating:POD  POD has been terminating for an hour (its node is gone)",
    "over-capacity": "over-capacity         the Service's Endpoints object says endpoints.kubernetes.io/over-capacity",
    "second-ptr": "second-ptr:POD[=SERVICE]  another headless Service (default cache) selects POD: its IP has "
                  "two PTR records",
    "retention-delete": "retention-delete      the StatefulSet's claim retention policy is whenScaled: Delete",

    # For ssdns watch: a resolver cache in front of DNS, and watch streams that break.
    "negative-cache": "negative-cache[:S]    a resolver cache keeps an NXDOMAIN S seconds (default 5, the SOA minimum), "
                      "even after the name exists",
    "stale-ip": "stale-ip[:S]          a resolver cache keeps a positive answer S seconds (default 5): an old IP "
                "outlives its pod",
    "watch-drop": "watch-drop[:S]        the API cuts every pod watch stream after S seconds (default 10)",
    "watch-expire": "watch-expire[:S]      the API ends every watch stream with 410 Gone after S seconds (default 10)",
    "ip-change": "ip-change:POD[:S]     S seconds after start (default 5) the kubelet recreates POD's sandbox: the same "
                 "UID, a new IP, not Ready for --ready-delay; DNS follows after --dns-delay",
}
REPLICA_FAULTS = ("stale-replica", "replica-down", "replica-nxdomain", "slow-replica", "lagging-replica")

TIMED = {"negative-cache": ("negative_ttl", 5.0), "stale-ip": ("stale_for", 5.0),
         "watch-drop": ("watch_drop_after", 10.0), "watch-expire": ("watch_expire_after", 10.0)}


def _wiring_fault(world: World, kind: str, arg: str, spec: str) -> None:
    """The faults of the wiring and rollout checks."""
    if kind in ("selector-mismatch", "host-network", "istio-sidecar", "over-capacity", "retention-delete") and arg:
        raise UsageError(f"fault {spec!r} takes no argument: give {kind}")
    if kind == "selector-mismatch":
        if world.svc is not None:
            world.svc.selector = {"app": f"{world.app}-other"}
    elif kind == "host-network":
        world.sts.host_network = True
    elif kind == "istio-sidecar":
        world.sts.sidecar = True
    elif kind == "over-capacity":
        world.over_capacity = True
    elif kind == "retention-delete":
        world.sts.retain_when_scaled = "Delete"
    elif kind == "stuck-rollout":
        pod = _pod(world, arg, spec)
        world.sts.update_revision = f"{world.statefulset}-5d8c7b9f4"
        world.sts.partition = pod.ordinal
        pod.revision, pod.ready, pod.ready_changed = world.sts.update_revision, False, now() - LONG_AGO
    elif kind == "stuck-not-ready":
        pod = _pod(world, arg, spec)
        pod.ready, pod.ready_changed = False, now() - LONG_AGO
    elif kind == "stuck-terminating":
        pod = _pod(world, arg, spec)
        pod.terminating, pod.deleted_at, pod.stuck = True, now() - LONG_AGO, True
    elif kind == "second-ptr":
        name, _, other = arg.partition("=")
        _pod(world, name, spec).also_behind = other or "cache"


def apply_fault(world: World, spec: str) -> None:
    kind, _, arg = spec.partition(":")
    if kind not in FAULTS:
        raise UsageError(f"unknown fault {spec!r}: use one of {', '.join(FAULTS)} (see ssdns sandbox --help)")
    if kind in REPLICA_FAULTS or kind in ("udp-only", "tcp-differs", "dns-forbidden"):
        _dns_fault(world, spec, kind, arg)
        world.changed()
        return
    if kind in TIMED:
        setattr(world, TIMED[kind][0], _seconds(spec, arg, TIMED[kind][1]))
    elif kind == "extra-ip":
        ip = arg or STALE_IP
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise UsageError(f"fault {spec!r}: {ip!r} is not an IP address") from None
        world.extra_service_ips.append(ip)
    elif kind == "wrong-name":
        pod, other = _pair(spec, arg)
        _pod(world, pod, spec).answer_as = other
    elif kind in ("shared-ip", "dns-other-pod"):
        pod, other = _pair(spec, arg)
        _pod(world, pod, spec).dns_ip = _pod(world, other, spec).ip
    elif kind == "missing-dns":
        _pod(world, arg, spec).in_dns = False
    elif kind == "http-hang":
        _pod(world, arg, spec).http_hang = True
    elif kind == "no-http":
        _pod(world, arg, spec).http_up = False
    elif kind == "not-ready":
        world.set_ready(_pod(world, arg, spec).name, False)
    elif kind == "stale-dns":
        old = _pod(world, arg, spec)
        new = world.replace_pod(old.name)  # re-created elsewhere: new uid and IP, the echo pod moves
        new.dns_ip = old.ip  # ... but DNS still serves where it was
        for field in ("answer_as", "in_dns", "http_up"):
            setattr(new, field, getattr(old, field))
    elif kind == "pvc-pending":
        claim = world.pvc(world.pvc_name(_pod(world, arg, spec).name))
        claim.phase, claim.volume_name = "Pending", None
    elif kind == "wrong-subdomain":
        _pod(world, arg, spec).subdomain = f"{world.service}-other"
    elif kind in ("publish-not-ready", "not-headless", "no-service"):
        if arg:
            raise UsageError(f"fault {spec!r} takes no argument: give {kind}")
        if world.svc is not None:
            if kind == "publish-not-ready":
                world.svc.publish_not_ready = True
            elif kind == "not-headless":
                world.svc.cluster_ip = CLUSTER_IP
            else:
                world.svc = None
    elif kind == "dns-servfail":
        if arg:
            raise UsageError(f"fault {spec!r} takes no argument: give {kind}")
        world.dns_servfail = True
    elif kind == "dns-stuck":
        if arg:
            raise UsageError(f"fault {spec!r} takes no argument: give {kind}")
        world.dns_stuck = True
    elif kind == "replacement-wrong-name":
        name, _, other = arg.partition("=")
        pod = _pod(world, name, spec)
        if not other:
            n = len(world.pods)
            other = f"{world.statefulset}-{(pod.ordinal + 1) % n if n > 1 else pod.ordinal + 1}"
        elif other == pod.name:
            raise UsageError(f"fault {spec!r}: a pod answering with its own name is no fault; give another name")
        world.replacement_answer_as[pod.name] = other
    elif kind == "ip-change":
        name, _, after = arg.partition(":")
        world.ip_change_after[_pod(world, name, spec).name] = _seconds(spec, after, 5.0)
    elif kind == "replacement-new-volume":
        world.replacement_new_volume.add(_pod(world, arg, spec).name)
    elif kind in _WIRING:
        _wiring_fault(world, kind, arg, spec)
    elif kind == "api-forbidden":
        if arg and arg not in API_RESOURCES:
            raise UsageError(f"fault {spec!r}: {arg!r} is not one of {', '.join(API_RESOURCES)}")
        world.api_forbidden.add(arg or "*")
    world.changed()


_WIRING = ("selector-mismatch", "host-network", "istio-sidecar", "stuck-rollout", "stuck-not-ready",
           "stuck-terminating", "over-capacity", "second-ptr", "retention-delete")


def _seconds(spec: str, arg: str, default: float) -> float:
    if not arg:
        return default
    try:
        value = float(arg)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise UsageError(f"fault {spec!r}: give a number of seconds from 0 to 3600, e.g. {spec.partition(':')[0]}:2")
    return value


def _pair(spec: str, arg: str) -> tuple[str, str]:
    kind = spec.partition(":")[0]
    pod, _, other = arg.partition("=")
    if not other:
        raise UsageError(f"fault {spec!r}: give {kind}:POD=OTHER, e.g. {kind}:web-1=web-2")
    return pod, other


def _pod(world: World, name: str, spec: str):
    try:
        return world.pod(name)
    except KeyError:
        names = ", ".join(p.name for p in world.pods[:5])
        raise UsageError(f"fault {spec!r}: no pod {name!r} in the sandbox (pods: {names}...)") from None


def _dns_fault(world: World, spec: str, kind: str, arg: str) -> None:
    """The cluster DNS faults: one replica's (K, from 0), or every server's transport."""
    from ssdns.sandbox.replicas import SLOW_REPLICA_DELAY, freeze

    if kind not in REPLICA_FAULTS:
        if arg:
            raise UsageError(f"fault {spec!r} takes no argument: give {kind}")
        setattr(world, kind.replace("-", "_"), True)
        return
    index, _, pod = arg.partition(":")
    n = len(world.dns_replicas)
    if not (index.isascii() and index.isdigit()) or int(index) >= n:
        raise UsageError(f"fault {spec!r}: give {kind}:K with K a DNS replica from 0 to {n - 1}")
    k = int(index)
    replica = world.dns_replicas[k]
    if kind == "replica-nxdomain":
        replica.nxdomain.add(_pod(world, pod, spec).name)
    elif kind == "lagging-replica":
        try:
            replica.lag = _seconds(spec, pod, 5.0)
        except UsageError:
            raise UsageError(f"fault {spec!r}: give lagging-replica:K[:SECONDS], e.g. lagging-replica:1:3") from None
    elif pod:
        raise UsageError(f"fault {spec!r}: give {kind}:K")
    elif kind == "stale-replica":
        freeze(world, k)
    elif kind == "replica-down":
        replica.up = False
    else:
        replica.slow = SLOW_REPLICA_DELAY
