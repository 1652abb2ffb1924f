"""API wiring: DNS against the Kubernetes API. Missing, extra, stale and wrong records, and the
configuration faults that cause them (serviceName, a Service that is not headless, hostnames)."""

from __future__ import annotations

from collections.abc import Iterator

from ssdns.checks.registry import Verdict, check, failed, fix, passed, warned
from ssdns.checks.words import NameKind, why
from ssdns.evidence import ApiEvidence, Evidence, Need
from ssdns.expected import PodExpectation

# What each read is for, so an access warning can say what the run lost.
_NEEDED_FOR = {
    "statefulsets": "replicas and serviceName",
    "services": "whether the Service is headless and its named ports",
    "pods": "pod IPs and readiness",
    "endpoints": "the Endpoints over-capacity annotation",
    "endpointslices": "endpoint hostnames and readiness",
    "persistentvolumeclaims": "PVC binding",
}


def _api(ev: Evidence) -> ApiEvidence:
    assert ev.api is not None  # Need.API
    return ev.api


@check("api.access", place=10, needs=(Need.API,), title="every API read ssdns needs is allowed (RBAC)")
def access(ev: Evidence) -> Iterator[Verdict]:
    for p in _api(ev).facts.problems:  # p says what failed and what to do (errors.ApiError: 403 is RBAC)
        yield warned(p.resource, f"{p}; checked without {_NEEDED_FOR.get(p.resource, 'it')}", verb=p.verb,
                     resource=p.resource, status=p.status)


@check("api.statefulset", place=11, needs=(Need.API,), title="the StatefulSet's serviceName is the Service checked")
def statefulset(ev: Evidence) -> Iterator[Verdict]:
    sts, service = _api(ev).facts.statefulset, ev.target.service
    if sts is None:
        return
    if not sts.service_name:
        yield fix(failed(sts.name, f"StatefulSet {sts.name} has no spec.serviceName: its pods get no DNS names"),
                  "set spec.serviceName to the name of a headless Service in the same namespace (serviceName "
                  "cannot be changed in place: recreate the StatefulSet, e.g. kubectl delete --cascade=orphan)")
    elif service and sts.service_name != service:
        yield fix(failed(sts.name, f"StatefulSet {sts.name}'s serviceName is {sts.service_name!r}, not {service!r}: "
                         "its pods get DNS names under that Service", service_name=sts.service_name),
                  f"check --service {sts.service_name}, or recreate the StatefulSet with serviceName {service!r}")
    else:
        yield passed(sts.name, f"{sts.replicas} replicas, serviceName {sts.service_name!r}, "
                     f"{sts.pod_management_policy}")


@check("api.service", place=12, needs=(Need.API,), title="the Service exists, is headless and has a named port")
def service(ev: Evidence) -> Iterator[Verdict]:
    svc = _api(ev).facts.service
    if svc is None:
        return
    if not svc.exists:
        if "." in svc.name:
            yield fix(failed(svc.name, f"serviceName {svc.name!r} names a Service in another namespace: a "
                             "StatefulSet's governing Service must be in its own namespace; its pods get no DNS "
                             "names"),
                      f"create a headless Service in namespace {_api(ev).facts.namespace!r} and set serviceName to "
                      "its plain name")
        else:
            yield fix(failed(svc.name, f"the Service {svc.name!r} does not exist in namespace "
                             f"{_api(ev).facts.namespace!r}: the StatefulSet's pods get no DNS names (a Service of "
                             "that name in another namespace does not count)"),
                      f"create a headless Service (clusterIP: None) named {svc.name!r} in this namespace "
                      f"(kubectl get svc -A --field-selector metadata.name={svc.name} finds one elsewhere)")
    elif not svc.headless:
        yield fix(failed(svc.name, f"the Service {svc.name!r} is not headless (clusterIP {svc.cluster_ip}): its name "
                         "resolves to the ClusterIP and pods get no per-pod names", cluster_ip=svc.cluster_ip),
                  "clusterIP cannot be changed in place: delete the Service and create it again with "
                  "spec.clusterIP: None")
    else:
        ports = ", ".join(f"{n or '(unnamed)'}:{p}/{proto}" for n, p, proto in svc.ports) or "none"
        pnr = ", publishes not-ready addresses" if svc.publish_not_ready else ""
        yield passed(svc.name, f"headless, ports {ports}{pnr}")
        if not any(n for n, _, _ in svc.ports):
            yield warned(svc.name, "no named port: the Service has no SRV records")


@check("api.pod", place=60, needs=(Need.API,), title="each pod the StatefulSet wants exists and is Ready")
def pods(ev: Evidence) -> Iterator[Verdict]:
    api = _api(ev)
    for name in api.want:
        pod = api.facts.pods.get(name)
        if pod is None:
            if not api.lost("pods"):
                yield failed(name, f"{name} does not exist in the API (the StatefulSet wants it)")
            continue
        where = f"on {pod.node}" if pod.node else "not scheduled"
        if pod.terminating:
            yield warned(name, f"{name} is terminating ({pod.phase}, {where})")
        elif not pod.ready:
            yield warned(name, f"{name} is not Ready ({pod.phase}, {where}, {pod.restarts} restarts)")
        else:
            yield passed(name, f"Ready, {where}, {pod.restarts} restarts, uid {pod.uid}")


def _headless(api: ApiEvidence) -> bool:
    svc = api.facts.service
    return svc is not None and svc.exists and svc.headless


@check("api.endpoints", place=61, needs=(Need.API,),
       title="each pod has an EndpointSlice endpoint with its IPs and its hostname")
def endpoints(ev: Evidence) -> Iterator[Verdict]:
    api = _api(ev)
    if api.lost("endpointslices") or not _headless(api):
        return
    for exp in api.want.values():
        yield from _endpoint(ev, api, exp)


def _endpoint(ev: Evidence, api: ApiEvidence, exp: PodExpectation) -> Iterator[Verdict]:
    pod = api.facts.pods.get(exp.name)
    if pod is None or not pod.ips:
        return
    eps = [e for e in api.facts.endpoints if e.pod == exp.name or set(e.addresses) & set(pod.ips)]
    if not eps:
        verdict = failed if exp.in_service else warned
        yield verdict(exp.name, f"no EndpointSlice endpoint for {exp.name} ({', '.join(pod.ips)})")
        return
    ep = eps[0]
    if set(ep.addresses) != set(pod.ips) and not set(pod.ips) <= {a for e in eps for a in e.addresses}:
        yield failed(exp.name, f"the EndpointSlice lists {', '.join(ep.addresses)} for {exp.name}, but the pod has "
                     f"{', '.join(pod.ips)}")
    elif ep.hostname != exp.name:
        yield failed(exp.name, f"the EndpointSlice endpoint for {exp.name} has hostname {ep.hostname!r}, so it gets "
                     f"no per-pod DNS name: the pod's spec.hostname is {pod.hostname!r} and spec.subdomain "
                     f"{pod.subdomain!r} (it must equal the Service name {ev.target.service!r})",
                     hostname=ep.hostname, subdomain=pod.subdomain)
    else:
        state = "ready" if ep.ready else ("terminating" if ep.terminating else "not ready")
        yield passed(exp.name, f"endpoint {', '.join(ep.addresses)} hostname {ep.hostname}, {state}")


@check("api.dns", place=62, column="API", needs=(Need.DNS, Need.API),
       title="each pod name gives what the API says: not missing, extra, stale or another pod's IP")
def dns_agrees(ev: Evidence) -> Iterator[Verdict]:
    api = _api(ev)
    for exp in api.want.values():
        yield from _pod_dns(ev, api, exp)


def _pod_dns(ev: Evidence, api: ApiEvidence, exp: PodExpectation) -> Iterator[Verdict]:
    po = ev.dns.pods.get(exp.name)
    got = po.ips if po is not None else []
    if not exp.has_name:
        yield _rightly_absent(exp, got)
        return
    if po is None or not got:
        detail = why(po.a, NameKind.POD) if po is not None else "not looked up"
        yield _missing(exp, detail)
        return
    yield from _compare(api, exp, got, asked_v6=po.aaaa is not None)


def _compare(api: ApiEvidence, exp: PodExpectation, got: list[str], asked_v6: bool) -> Iterator[Verdict]:
    wrong = [ip for ip in got if ip not in exp.ips]
    # Only compare the families DNS was asked about (AAAA is asked only for a dual-stack Service).
    missing = [ip for ip in exp.ips if ip not in got and (":" not in ip or asked_v6)]
    if not wrong and not missing:
        yield passed(exp.name, f"DNS agrees with the API: {', '.join(got)}")
    for ip in wrong:
        yield _wrong_ip(api, exp, ip)
    if missing and not wrong:
        yield failed(exp.name, f"DNS lacks {', '.join(missing)} for {exp.name}", missing=missing)


def _missing(exp: PodExpectation, detail: str) -> Verdict:
    return failed(exp.name, f"missing: the API says {exp.name} is at {', '.join(exp.ips)}, but DNS has no "
                  f"address ({detail})", expected=list(exp.ips))


def _rightly_absent(exp: PodExpectation, got: list[str]) -> Verdict:
    if got:
        return failed(exp.name, f"extra: DNS still gives {exp.name} {', '.join(got)}, but {exp.reason}", ips=got)
    return warned(exp.name, f"absent from DNS, as expected: {exp.reason}")


def _wrong_ip(api: ApiEvidence, exp: PodExpectation, ip: str) -> Verdict:
    """Another pod's IP (wrong) or no current pod's (stale)."""
    owner = api.owner_of(ip)
    if owner:
        return failed(exp.name, f"wrong IP: DNS gives {exp.name} {ip}, which is {owner}'s IP; {exp.name} is at "
                      f"{', '.join(exp.ips)}", ip=ip, other_pod=owner, expected=list(exp.ips))
    return failed(exp.name, f"stale: DNS gives {exp.name} {ip}, which belongs to no current pod; {exp.name} "
                  f"is now at {', '.join(exp.ips)}", ip=ip, expected=list(exp.ips))


@check("api.service-members", place=63, needs=(Need.DNS, Need.API),
       title="the Service name gives exactly the ready pods' IPs the API lists")
def service_members(ev: Evidence) -> Iterator[Verdict]:
    api = _api(ev)
    if not _headless(api) or not api.want:
        return  # nothing known per pod (no StatefulSet, or the pods could not be listed)
    svc = ev.target.service_fqdn.rstrip(".")
    expected = {ip: e.name for e in api.want.values() if e.in_service for ip in e.ips}
    served = set(ev.dns.service_ips)
    for ip in sorted(served - set(expected)):
        yield _unexpected_member(api, svc, ip)
    v6_asked = ev.dns.service_aaaa.ok or ev.target.ipv6
    for ip, name in sorted(expected.items()):
        if ip not in served and (":" not in ip or v6_asked):
            yield failed(name, f"{name} is ready at {ip} per the API, but {svc} does not answer it", ip=ip)


def _unexpected_member(api: ApiEvidence, svc: str, ip: str) -> Verdict:
    owner = api.owner_of(ip)
    if owner and owner in api.want:
        msg = f"{svc} answers {ip} of {owner}, but {api.want[owner].reason}"
    elif owner:
        msg = f"{svc} answers {ip} of {owner}, which is not a pod of this StatefulSet"
    else:
        msg = f"stale: {svc} answers {ip}, which belongs to no current pod"
    return failed(svc, msg, ip=ip, **({"pod": owner} if owner else {}))
