"""What DNS should say, derived from the API objects by the rules of the DNS spec and the controllers.

Pure. A pod's IP is under the Service name when its endpoint is ready (or the Service publishes
not-ready addresses); it also has its own `<pod>.<service>` name when the EndpointSlice controller
gives the endpoint a hostname, which it does only when spec.hostname is set and spec.subdomain
equals the Service's name (dns-spec.md sections 2 and 6.6).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ssdns.frozen import frozen
from ssdns.target import Target

if TYPE_CHECKING:  # a run without the API loads no API facts
    from ssdns.facts import ClusterFacts


@frozen
class PodExpectation:
    """What DNS should say about one pod, by the API's facts."""

    name: str
    ips: tuple[str, ...]  # what the API says the pod's IPs are
    in_service: bool  # its IPs belong under the Service name
    has_name: bool  # its own <pod>.<service> name should resolve to ips
    reason: str = ""  # why not, in words a person can act on


def expected_pods(target: Target, facts: ClusterFacts | None = None) -> list[str]:
    """The pods that should be there: the StatefulSet's, from the API, else --statefulset and --replicas
    (none without both: the pods are then discovered from DNS)."""
    if facts is not None and facts.statefulset is not None:
        return pod_names(facts)
    if target.statefulset and target.replicas is not None:
        start = target.first_ordinal
        return [f"{target.statefulset}-{i}" for i in range(start, start + target.replicas)]
    return []


def pod_names(facts: ClusterFacts) -> list[str]:
    """The ordinals the StatefulSet wants, then any other pod it still has (e.g. one scaling away)."""
    sts = facts.statefulset
    names = [f"{sts.name}-{i}" for i in sts.ordinals] if sts else []
    return names + sorted(n for n in facts.pods if n not in names)


def expect(facts: ClusterFacts, service: str) -> dict[str, PodExpectation]:
    out = {}
    svc = facts.service
    for name in pod_names(facts):
        pod = facts.pods.get(name)
        if pod is None:
            out[name] = PodExpectation(name, (), False, False, "the pod does not exist in the API")
            continue
        ips = tuple(pod.ips)
        publish = svc is not None and svc.publish_not_ready
        if svc is None or not svc.exists:
            reason = f"the Service {service!r} does not exist"
        elif not svc.headless:
            reason = f"the Service {service!r} is not headless (clusterIP {svc.cluster_ip})"
        elif not ips:
            reason = f"the pod has no IP yet (phase {pod.phase})"
        elif pod.terminating and not publish:
            reason = "the pod is terminating"
        elif not pod.ready and not publish:
            reason = "the pod is not Ready (and the Service does not publish not-ready addresses)"
        else:
            reason = ""
        if reason:
            out[name] = PodExpectation(name, ips, False, False, reason)
        elif pod.hostname != name or pod.subdomain != service:
            out[name] = PodExpectation(
                name, ips, True, False,
                f"spec.hostname is {pod.hostname!r} and spec.subdomain is {pod.subdomain!r}; "
                f"a per-pod name needs hostname {name!r} and subdomain {service!r}")
        else:
            out[name] = PodExpectation(name, ips, True, True)
    return out


def owner_of(facts: ClusterFacts, ip: str) -> str | None:
    return next((p.name for p in facts.pods.values() if ip in p.ips), None)
