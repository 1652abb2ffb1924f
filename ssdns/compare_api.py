"""Judge DNS against the Kubernetes API: missing, extra, stale and wrong records, configuration
faults and storage. Pure: facts + expectations + observations in, findings out."""

from __future__ import annotations

from ssdns.compare import Findings, why
from ssdns.expected import PodExpectation, owner_of
from ssdns.facts import ClusterFacts
from ssdns.model import Status
from ssdns.observe import Observations
from ssdns.target import Target

# What each read is for, so an access warning can say what the run lost.
_NEEDED_FOR = {
    "statefulsets": "replicas and serviceName",
    "services": "whether the Service is headless and its named ports",
    "pods": "pod IPs and readiness",
    "endpointslices": "endpoint hostnames and readiness",
    "persistentvolumeclaims": "PVC binding",
}


def compare_api(target: Target, facts: ClusterFacts, want: dict[str, PodExpectation],
                obs: Observations) -> Findings:
    f = Findings()
    for p in facts.problems:
        status = f"HTTP {p.status}" if p.status else "unreachable"
        f.add("api.access", Status.WARN, p.resource,
              f"cannot {p.verb} {p.resource} ({status}: {p.message}); checked without "
              f"{_NEEDED_FOR.get(p.resource, 'it')}: grant verb {p.verb!r} on {p.resource!r} (k8s/rbac.yaml)",
              verb=p.verb, resource=p.resource, status=p.status)
    _config(f, target, facts)
    for name, exp in want.items():
        _pod(f, facts, name)
        _endpoint(f, target, facts, exp)
        _dns(f, target, facts, exp, obs)
        _storage(f, facts, name)
    _service_set(f, target, facts, want, obs)
    return f


def _config(f: Findings, target: Target, facts: ClusterFacts) -> None:
    sts, svc = facts.statefulset, facts.service
    if sts is not None and target.service and sts.service_name != target.service:
        f.add("api.statefulset", Status.FAIL, sts.name,
              f"StatefulSet {sts.name}'s serviceName is {sts.service_name!r}, not {target.service!r}: "
              "its pods get DNS names under that Service", service_name=sts.service_name)
    elif sts is not None:
        f.add("api.statefulset", Status.PASS, sts.name,
              f"{sts.replicas} replicas, serviceName {sts.service_name!r}, {sts.pod_management_policy}")
    if svc is None:
        return
    if not svc.exists:
        f.add("api.service", Status.FAIL, svc.name,
              f"the Service {svc.name!r} does not exist: the StatefulSet's pods get no DNS names; "
              "create a headless Service (clusterIP: None) with that name")
    elif not svc.headless:
        f.add("api.service", Status.FAIL, svc.name,
              f"the Service {svc.name!r} is not headless (clusterIP {svc.cluster_ip}): its name resolves to "
              "the ClusterIP and pods get no per-pod names; recreate it with clusterIP: None",
              cluster_ip=svc.cluster_ip)
    else:
        ports = ", ".join(f"{n or '(unnamed)'}:{p}/{proto}" for n, p, proto in svc.ports) or "none"
        pnr = ", publishes not-ready addresses" if svc.publish_not_ready else ""
        f.add("api.service", Status.PASS, svc.name, f"headless, ports {ports}{pnr}")
        if not any(n for n, _, _ in svc.ports):
            f.add("api.service", Status.WARN, svc.name, "no named port: the Service has no SRV records")


def _pod(f: Findings, facts: ClusterFacts, name: str) -> None:
    pod = facts.pods.get(name)
    if pod is None:
        if "pods" not in {p.resource for p in facts.problems}:
            f.add("api.pod", Status.FAIL, name, f"{name} does not exist in the API (the StatefulSet wants it)")
        return
    where = f"on {pod.node}" if pod.node else "not scheduled"
    if pod.terminating:
        f.add("api.pod", Status.WARN, name, f"{name} is terminating ({pod.phase}, {where})")
    elif not pod.ready:
        f.add("api.pod", Status.WARN, name, f"{name} is not Ready ({pod.phase}, {where}, {pod.restarts} restarts)")
    else:
        f.add("api.pod", Status.PASS, name, f"Ready, {where}, {pod.restarts} restarts, uid {pod.uid}")


def _endpoint(f: Findings, target: Target, facts: ClusterFacts, exp: PodExpectation) -> None:
    pod = facts.pods.get(exp.name)
    if pod is None or not pod.ips or "endpointslices" in {p.resource for p in facts.problems}:
        return
    if facts.service is None or not facts.service.exists or not facts.service.headless:
        return
    eps = [e for e in facts.endpoints if e.pod == exp.name or set(e.addresses) & set(pod.ips)]
    if not eps:
        status = Status.FAIL if exp.in_service else Status.WARN
        f.add("api.endpoints", status, exp.name, f"no EndpointSlice endpoint for {exp.name} ({', '.join(pod.ips)})")
        return
    ep = eps[0]
    if set(ep.addresses) != set(pod.ips) and not set(pod.ips) <= {a for e in eps for a in e.addresses}:
        f.add("api.endpoints", Status.FAIL, exp.name,
              f"the EndpointSlice lists {', '.join(ep.addresses)} for {exp.name}, but the pod has {', '.join(pod.ips)}")
    elif ep.hostname != exp.name:
        f.add("api.endpoints", Status.FAIL, exp.name,
              f"the EndpointSlice endpoint for {exp.name} has hostname {ep.hostname!r}, so it gets no per-pod "
              f"DNS name: the pod's spec.hostname is {pod.hostname!r} and spec.subdomain {pod.subdomain!r} "
              f"(it must equal the Service name {target.service!r})",
              hostname=ep.hostname, subdomain=pod.subdomain)
    else:
        state = "ready" if ep.ready else ("terminating" if ep.terminating else "not ready")
        f.add("api.endpoints", Status.PASS, exp.name, f"endpoint {', '.join(ep.addresses)} hostname {ep.hostname}, {state}")


def _dns(f: Findings, target: Target, facts: ClusterFacts, exp: PodExpectation, obs: Observations) -> None:
    po = obs.pods.get(exp.name)
    got = po.ips if po is not None else []
    if not exp.has_name:
        if got:
            f.add("api.dns", Status.FAIL, exp.name,
                  f"extra: DNS still gives {exp.name} {', '.join(got)}, but {exp.reason}", ips=got)
        else:
            f.add("api.dns", Status.WARN, exp.name, f"absent from DNS, as expected: {exp.reason}")
        return
    if not got:
        lookup = po.a if po is not None else None
        detail = why(lookup) if lookup is not None else "not looked up"
        f.add("api.dns", Status.FAIL, exp.name,
              f"missing: the API says {exp.name} is at {', '.join(exp.ips)}, but DNS has no address ({detail})",
              expected=list(exp.ips))
        return
    wrong = [ip for ip in got if ip not in exp.ips]
    # Only compare the families DNS was asked about (AAAA is asked only for a dual-stack Service).
    asked_v6 = po.aaaa is not None
    missing = [ip for ip in exp.ips if ip not in got and (":" not in ip or asked_v6)]
    if not wrong and not missing:
        f.add("api.dns", Status.PASS, exp.name, f"DNS agrees with the API: {', '.join(got)}")
        return
    for ip in wrong:
        owner = owner_of(facts, ip)
        if owner:
            f.add("api.dns", Status.FAIL, exp.name,
                  f"wrong IP: DNS gives {exp.name} {ip}, which is {owner}'s IP; {exp.name} is at "
                  f"{', '.join(exp.ips)}", ip=ip, other_pod=owner, expected=list(exp.ips))
        else:
            f.add("api.dns", Status.FAIL, exp.name,
                  f"stale: DNS gives {exp.name} {ip}, which belongs to no current pod; {exp.name} is now at "
                  f"{', '.join(exp.ips)}", ip=ip, expected=list(exp.ips))
    if missing and not wrong:
        f.add("api.dns", Status.FAIL, exp.name, f"DNS lacks {', '.join(missing)} for {exp.name}", missing=missing)


def _service_set(f: Findings, target: Target, facts: ClusterFacts, want: dict[str, PodExpectation],
                 obs: Observations) -> None:
    if facts.service is None or not facts.service.exists or not facts.service.headless or not want:
        return  # nothing known per pod (no StatefulSet, or the pods could not be listed)
    svc = target.service_fqdn.rstrip(".")
    expected = {ip: e.name for e in want.values() if e.in_service for ip in e.ips}
    served = set(obs.service_ips)
    for ip in sorted(served - set(expected)):
        owner = owner_of(facts, ip)
        if owner and owner in want:
            msg = f"{svc} answers {ip} of {owner}, but {want[owner].reason}"
        elif owner:
            msg = f"{svc} answers {ip} of {owner}, which is not a pod of this StatefulSet"
        else:
            msg = f"stale: {svc} answers {ip}, which belongs to no current pod"
        f.add("api.service-members", Status.FAIL, svc, msg, ip=ip, **({"pod": owner} if owner else {}))
    for ip, name in sorted(expected.items()):
        if ip not in served and (":" not in ip or obs.service_aaaa.ok or target.ipv6):
            f.add("api.service-members", Status.FAIL, name,
                  f"{name} is ready at {ip} per the API, but {svc} does not answer it", ip=ip)


def _storage(f: Findings, facts: ClusterFacts, name: str) -> None:
    if name not in facts.pods or "persistentvolumeclaims" in {p.resource for p in facts.problems}:
        return
    for pvc in facts.pvcs_of(name):
        if pvc.phase is None:
            f.add("api.pvc", Status.FAIL, name, f"PVC {pvc.name} does not exist", pvc=pvc.name)
        elif pvc.phase != "Bound":
            f.add("api.pvc", Status.FAIL, name, f"PVC {pvc.name} is {pvc.phase}, not Bound", pvc=pvc.name,
                  phase=pvc.phase)
        else:
            f.add("api.pvc", Status.PASS, name, f"PVC {pvc.name} Bound to {pvc.volume}", pvc=pvc.name,
                  volume=pvc.volume)
