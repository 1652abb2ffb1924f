"""Wiring: the mistakes people make when they write a StatefulSet and its Service, each with the field to
change or the command to run (a finding's `fix` detail, also at the end of its message).

Judged from the API's facts alone (and DNS where a symptom shows there). Ages (not Ready since,
terminating since) count to the time the API was read, so a check stays a pure function.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ssdns.checks.registry import Verdict, check, failed, fix, passed, warned
from ssdns.dnsquery import Outcome
from ssdns.evidence import ApiEvidence, Evidence, Need

if TYPE_CHECKING:  # every family is imported to list the catalogue: a run without the API loads no facts
    from ssdns.facts import PodFacts

MAX_NAME = 52  # the controller-revision-hash label is NAME-<10 chars>, and a label value is at most 63
MAX_ENDPOINTS = 1000  # the Endpoints controller truncates at 1000 addresses (over-capacity: truncated)
NOT_READY_LONG = 300.0  # seconds: a pod not Ready this long is stuck, not starting
TERMINATING_SLACK = 60.0  # seconds past the grace period: the kubelet has not confirmed the deletion
ISTIO = "istio-proxy"


def _api(ev: Evidence) -> ApiEvidence:
    assert ev.api is not None  # Need.API
    return ev.api


def age(ev: Evidence, since: float | None) -> float | None:
    at = _api(ev).facts.read_at
    return None if since is None or at is None else max(0.0, at - since)


def span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def sts_pods(api: ApiEvidence) -> list[PodFacts]:
    return [api.facts.pods[n] for n in api.want if n in api.facts.pods]


@check("wiring.selector", place=13, needs=(Need.API,),
       title="the Service's selector selects the StatefulSet's pods")
def selector(ev: Evidence) -> Iterator[Verdict]:
    api = _api(ev)
    svc, sts = api.facts.service, api.facts.statefulset
    if svc is None or not svc.exists or sts is None or svc.selector is None:
        return
    if not svc.selector:
        yield warned(svc.name, f"the Service {svc.name!r} has no selector: no controller writes its endpoints, "
                     "so its DNS names are whatever was written by hand")
        return
    pods = sts_pods(api)
    labelled = [(p.name, p.labels) for p in pods] or [(f"{sts.name} (pod template)", sts.template_labels)]
    for who, labels in labelled:
        wrong = [(k, v, labels.get(k)) for k, v in sorted(svc.selector.items()) if labels.get(k) != v]
        if not wrong:
            continue
        key, want, have = wrong[0]
        has = f"{key}={have}" if have is not None else f"no label {key!r}"
        yield fix(failed(who, f"the Service {svc.name!r} selects {key}={want}, but {who} has {has}: it gets no "
                         "endpoint, so no DNS name", key=key, service_value=want, pod_value=have),
                  f"make spec.selector of Service {svc.name!r} and spec.template.metadata.labels of StatefulSet "
                  f"{sts.name!r} agree on {key!r}")
        return  # one pod says it for all: the pods share the template
    yield passed(svc.name, f"selector {', '.join(f'{k}={v}' for k, v in sorted(svc.selector.items()))} selects "
                 f"{'all ' + str(len(pods)) + ' pods' if pods else 'the pod template'}")


@check("wiring.name-length", place=14, needs=(Need.API,),
       title=f"the StatefulSet's name is at most {MAX_NAME} characters")
def name_length(ev: Evidence) -> Iterator[Verdict]:
    sts = _api(ev).facts.statefulset
    if sts is None:
        return
    if len(sts.name) > MAX_NAME:
        yield fix(failed(sts.name, f"the StatefulSet's name is {len(sts.name)} characters: its pods' "
                         f"controller-revision-hash label (name + 11) exceeds 63, so the controller cannot "
                         "create them (FailedCreate events)", length=len(sts.name)),
                  f"recreate it with a name of at most {MAX_NAME} characters")
    else:
        yield passed(sts.name, f"name of {len(sts.name)} characters (at most {MAX_NAME})")


@check("wiring.host-network", place=15, needs=(Need.API,),
       title="no pod runs with hostNetwork: true (its hostname would be the node's)")
def host_network(ev: Evidence) -> Iterator[Verdict]:
    api = _api(ev)
    on = [p for p in sts_pods(api) if p.host_network]
    sts = api.facts.statefulset.name if api.facts.statefulset else "the StatefulSet"
    for p in on:
        yield fix(failed(p.name, f"{p.name} runs with hostNetwork: true: its hostname is the node's "
                         f"({p.node or 'not scheduled'}) and its IP the node's, so its per-pod DNS identity "
                         "cannot hold"),
                  f"remove spec.template.spec.hostNetwork from {sts}")
    if not on and api.want:
        yield passed(sts, "no pod uses the host's network")


@check("wiring.istio", place=16, needs=(Need.API,),
       title="notes an Istio sidecar: DNS proxying and mTLS to a pod's own name")
def istio(ev: Evidence) -> Iterator[Verdict]:
    api = _api(ev)
    with_proxy = [p.name for p in sts_pods(api) if ISTIO in p.containers]
    if with_proxy:
        yield fix(warned(ev.target.statefulset or with_proxy[0],
                         f"{len(with_proxy)} pod(s) run an Istio sidecar ({ISTIO}: {', '.join(with_proxy[:5])}"
                         f"{', ...' if len(with_proxy) > 5 else ''}): with DNS proxying on, the sidecar answers their "
                         "DNS (later replicas may not resolve until it learns them), and a pod calling its own name "
                         "goes through mTLS to itself", pods=with_proxy),
                  "check from a pod with the same sidecar; for peers that call themselves, exclude the port with "
                  "traffic.sidecar.istio.io/excludeInboundPorts or give the Service a PeerAuthentication")


@check("wiring.over-capacity", place=64, needs=(Need.API,),
       title=f"the Service's endpoints fit: no Endpoints object over capacity, at most {MAX_ENDPOINTS} addresses")
def over_capacity(ev: Evidence) -> Iterator[Verdict]:
    api = _api(ev)
    svc = api.facts.service
    if svc is None or not svc.exists:
        return
    count = sum(len(e.addresses) for e in api.facts.endpoints)
    if api.facts.over_capacity:
        yield fix(warned(svc.name, f"the Endpoints object of {svc.name!r} is over capacity "
                         f"(endpoints.kubernetes.io/over-capacity: {api.facts.over_capacity}): it lists at most "
                         f"{MAX_ENDPOINTS} of {count or 'its'} addresses, so anything still reading Endpoints "
                         "(not EndpointSlices) misses pods", addresses=count),
                  "read EndpointSlices (discovery.k8s.io/v1) in the clients that discover peers")
    elif count > MAX_ENDPOINTS or len(ev.dns.service_ips) > MAX_ENDPOINTS:
        answered = len(ev.dns.service_ips)
        yield warned(svc.name, f"the Service has {count} addresses ({answered} in its DNS answer): over "
                     f"{MAX_ENDPOINTS}, an Endpoints reader sees a truncated set and the DNS answer needs TCP",
                     addresses=count, answered=answered)
    else:
        yield passed(svc.name, f"{count} addresses, within capacity")


@check("wiring.not-ready-dns", place=65, needs=(Need.DNS, Need.API),
       title="pods not Ready for long whose names do not resolve (peers that wait for each other never start)")
def not_ready_dns(ev: Evidence) -> Iterator[Verdict]:
    api = _api(ev)
    svc = api.facts.service
    if svc is None or not svc.exists or not svc.headless or svc.publish_not_ready:
        return
    stuck = []
    for p in sts_pods(api):
        waited = age(ev, p.ready_since)
        po = ev.dns.pods.get(p.name)
        if p.ready or p.terminating or waited is None or waited < NOT_READY_LONG or po is None:
            continue
        if po.a.outcome is Outcome.NXDOMAIN:
            stuck.append((p.name, waited))
    if stuck:
        names = ", ".join(f"{n} ({span(a)})" for n, a in stuck)
        yield fix(warned(svc.name, f"not Ready for long and their names answer NXDOMAIN: {names}; peers that "
                         "discover each other by DNS before they are Ready (quorum systems) never start",
                         pods=[n for n, _ in stuck]),
                  f"set spec.publishNotReadyAddresses: true on Service {svc.name!r} (pods then get names before "
                  "they are Ready)")
