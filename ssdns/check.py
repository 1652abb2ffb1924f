"""One check run: target -> evidence (API facts, what DNS should say, DNS and HTTP) -> checks -> Result.

`gather` does all the I/O and returns the Evidence; `conclude` is pure: it runs the registry's checks
over the Evidence and builds the Result every output renders. restart-test and scale-test add their
own evidence between the two. A small DNS-only check gathers without asyncio (smallcheck.py), so asyncio
is imported only by the coroutines here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ssdns import checks
from ssdns.errors import ApiError, ApiUnavailable, CannotRun, UsageError
from ssdns.evidence import ApiEvidence, Evidence
from ssdns.expected import expect, expected_pods
from ssdns.model import ApiPodView, Finding, PodView, Result, ScaleSummary, ServiceView, Stats, Status, TargetView
from ssdns.names import ordinal
from ssdns.target import ApiOptions, Target

if TYPE_CHECKING:  # a run without the API loads no API facts
    from ssdns.facts import ClusterFacts
    from ssdns.observations import Observations

API_SHARE = 0.5  # of the time left: what the API reads may use, so DNS and HTTP keep the rest
GRACE = 0.5  # every operation stops at the deadline by itself; this only guards against a bug


@dataclass(frozen=True)
class Run:
    """The evidence of one run and what the gathering had to say about it."""

    evidence: Evidence
    api_mode: str  # how the API was used: the --api mode, or "off" when it was not
    started: float  # monotonic
    notes: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # what gathering found (an API it could not use)

    def adding(self, **evidence: Any) -> Run:
        """This run with more evidence (restart-test's convergence, scale-test's order)."""
        return replace(self, evidence=replace(self.evidence, **evidence))


NO_API_OPTIONS = ApiOptions()  # the default: --api auto, the usual kubeconfig


async def run_check(target: Target, api: ApiOptions = NO_API_OPTIONS) -> Result:
    return conclude(await gather(target, api))


async def gather(target: Target, api: ApiOptions = NO_API_OPTIONS) -> Run:
    started = time.monotonic()
    deadline = target.deadline or started + target.timeout
    notes: list[str] = []
    gathered: list[Finding] = []
    facts = None
    if api.mode != "off":
        facts, target = await _read_api(target, api, deadline, notes, gathered)
    return await _gather_rest(target, api, facts, api.mode if facts is not None else "off", started, deadline,
                              notes, gathered)


async def gather_from(target: Target, api: ApiOptions, facts: ClusterFacts, started: float,
                      discovered: Any = None, worker: Any = None) -> Run:
    """gather() for facts already read (check --all reads them through one client for many StatefulSets, finds
    the DNS replicas of --resolvers all once: `discovered`, see resolvers.gather, and shares one `worker`)."""
    notes: list[str] = []
    target = refine(target, facts, notes)
    return await _gather_rest(target, api, facts, "on", started, target.deadline or started + target.timeout, notes,
                              [], discovered, worker)


async def _gather_rest(target: Target, api: ApiOptions, facts: ClusterFacts | None, api_mode: str, started: float,
                       deadline: float, notes: list[str], gathered: list[Finding], discovered: Any = None,
                       worker: Any = None) -> Run:
    _require_service(target, facts)
    expected = expected_pods(target, facts)
    api_ev = None
    if facts is not None:
        # Without the pod list there is nothing to expect per pod: judge DNS on its own, as without the API.
        want = {} if any(p.resource == "pods" for p in facts.problems) else expect(facts, target.service or "")
        api_ev = ApiEvidence(facts, want)
    others = target.resolvers.mode != "path"  # other resolvers may answer when the path does not
    memo: dict | None = {} if target.resolvers.active else None  # the resolvers reuse the path's parsed answers
    obs = await _observe(target, deadline, expected, _api_port(facts, target), must_answer=not others, memo=memo,
                         worker=worker)
    resolvers = await _ask_resolvers(target, api, obs, deadline, memo, discovered) if target.resolvers.active else None
    return Run(Evidence(target, obs, tuple(expected), api_ev, resolvers=resolvers), api_mode, started, notes,
               gathered)


async def _ask_resolvers(target: Target, api: ApiOptions, obs: Observations, deadline: float, memo: dict | None,
                         discovered: Any = None):
    """Every resolver of --resolvers asked what the path was asked; exit 3 only when none answered."""
    import asyncio

    from ssdns import resolvers
    from ssdns.target import read_resolv_conf

    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic()) + GRACE):
            ev = await resolvers.gather(target, api, obs, deadline, read_resolv_conf().nameservers, memo, discovered)
    except TimeoutError:
        raise unfinished(target) from None
    if not ev.answered:
        tried = ", ".join(r.describe() for r in ev.resolvers)
        raise CannotRun(f"no resolver answered (tried {tried}); check --resolvers and --nameserver")
    return ev


def _require_service(target: Target, facts: ClusterFacts | None) -> None:
    if target.service:
        return
    if facts is not None and facts.problems:
        raise ApiUnavailable(f"{facts.problems[0]}; so the Service is unknown: fix API access, or give "
                             "--service NAME to check without it")
    raise UsageError("no Service: give --service NAME, or --statefulset NAME with API access "
                     "(its serviceName is read from the API)")


def _api_port(facts: ClusterFacts | None, target: Target) -> int | None:
    """The pods' port from the API's EndpointSlice, for HTTP when --port is not given."""
    if facts is None:
        return None
    from ssdns.restart import service_port

    return service_port(facts, target.port_name)


async def _observe(target: Target, deadline: float, expected: list[str], api_port: int | None,
                   must_answer: bool = True, memo: dict | None = None, worker: Any = None) -> Observations:
    import asyncio

    from ssdns.observe import observe

    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic()) + GRACE):
            obs = await observe(target, deadline, expected, api_port=api_port, memo=memo, worker=worker)
    except TimeoutError:
        raise unfinished(target) from None
    if must_answer:
        must_have_answered(obs)
    return obs


def unfinished(target: Target) -> CannotRun:
    return CannotRun(f"the run did not finish within --timeout {target.timeout:g} s; raise it")


def must_have_answered(obs: Observations) -> None:
    """The rule (README, exit codes): a run in which no nameserver said anything about any name could not run."""
    if not any(lk.answered for lk in obs.lookups):
        detail = obs.service_a.detail or obs.service_a.outcome.value
        raise CannotRun(f"no nameserver answered about the names ({detail}); check --nameserver")


def conclude(run: Run, elapsed_ms: float | None = None) -> Result:
    """Judge the evidence and build the Result. Pure."""
    ev = run.evidence
    judged = checks.judge(ev)
    notes = list(run.notes)
    pods = _with_resolver_columns(ev, [_pod_view(ev, name) for name in ev.pods])
    discovered = sorted({p.source for p in pods} - {"expected"})
    if discovered and ev.target.replicas is None:
        notes.append(f"pods discovered from DNS ({' and '.join(s.upper() for s in discovered)}); "
                     "give --statefulset and --replicas to check an exact set")
    notes += judged.notes
    t, obs = ev.target, ev.dns
    if t.http and obs.http_port is None:
        notes.append("HTTP not checked: the pods' port is unknown (no SRV port, no API port): give --port PORT")
    elapsed = elapsed_ms if elapsed_ms is not None else (time.monotonic() - run.started) * 1000
    extra = ev.resolvers.queries if ev.resolvers is not None else 0
    stats = Stats(elapsed_ms=round(elapsed, 1), dns_queries=obs.dns_queries + extra, http_requests=obs.http_requests,
                  nameservers=[str(ns) for ns in t.nameservers],
                  api_ms=round(ev.api.facts.elapsed_ms, 1) if ev.api is not None else None,
                  restart=list(ev.restart.convergences) if ev.restart is not None else None,
                  scale=_scale_summary(ev))
    return Result(
        target=TargetView(t.service, t.namespace, t.zone, t.statefulset, t.replicas, t.port_name, t.http,
                          obs.http_port, t.path, t.expect, t.match, t.timeout, run.api_mode),
        service=ServiceView(t.service_fqdn, obs.service_ips, obs.service_a.outcome.value,
                            obs.service_aaaa.outcome.value),
        pods=pods, findings=[*run.findings, *judged.findings], notes=notes, stats=stats, lookups=list(obs.lookups),
        resolvers=ev.resolvers,
    )


def _with_resolver_columns(ev: Evidence, pods: list[PodView]) -> list[PodView]:
    """With --resolvers: what each resolver answered for each pod's name, when they disagree (the table's
    columns per resolver)."""
    if ev.resolvers is not None:
        columns = ev.resolvers.by_pod({p.name: p.fqdn for p in pods})
        for p in pods:
            p.by_resolver = columns.get(p.name, {})
    return pods


def _scale_summary(ev: Evidence) -> ScaleSummary | None:
    s = ev.scale
    return None if s is None else ScaleSummary(s.replicas, s.to, s.gone_order, s.came_order)


def _pod_view(ev: Evidence, name: str) -> PodView:
    p = ev.dns.pods[name]
    return PodView(name=name, ordinal=ordinal(name, ev.target.statefulset), fqdn=ev.target.pod_fqdn(name),
                   ips=p.ips, ptr={ip: list(ev.dns.ptr[ip].values) for ip in p.ips},
                   http=p.http, source=p.source, api=_api_view(ev, name), dns_ms=p.a.elapsed_ms)


def _api_view(ev: Evidence, name: str) -> ApiPodView | None:
    if ev.api is None:
        return None
    facts = ev.api.facts
    pod = facts.pods.get(name)
    return ApiPodView(pod, facts.pvcs_of(name) if pod is not None else [])


async def _read_api(target: Target, api: ApiOptions, deadline: float, notes: list[str],
                    findings: list[Finding]) -> tuple[ClusterFacts | None, Target]:
    """Facts from the API, and the target refined by them. With --api auto, missing credentials, a
    refused read or an API that cannot be used at all (unreachable, timed out, TLS, not an API) degrade
    to a DNS and HTTP check that says what it lacks; with --api on they are errors (exit 4). The API
    reads get at most API_SHARE of the time left, so DNS and HTTP always keep the rest."""
    from ssdns import kube

    if api.mode == "auto" and not kube.credentials_available(api):
        notes.append("API not used: no in-cluster service account and no kubeconfig (--api auto); "
                     "checked DNS and HTTP only")
        return None, target
    if not target.statefulset and not target.service:
        raise UsageError("give --statefulset NAME (or --service NAME) to check")
    try:
        kube.import_client(api)
        now = time.monotonic()
        client = kube.api_client(api, now + API_SHARE * max(0.0, deadline - now))
    except ApiUnavailable as exc:
        if api.mode == "on":
            raise
        notes.append(f"API not used: {exc}")
        return None, target
    try:
        facts = await kube.load_facts(client, target.namespace, target.statefulset, target.service)
    except ApiError as exc:  # the API as a whole could not be used
        if api.mode == "on":
            raise
        if not target.service:
            raise ApiUnavailable(f"{exc}; so the Service is unknown: fix API access, or give --service NAME "
                                 "to check without it") from None
        findings.append(Finding("api.access", Status.WARN, exc.server or "api",
                                f"{exc}; checked DNS and HTTP only (--api auto)",
                                {"verb": exc.verb, "resource": exc.resource, "status": exc.status}))
        return None, target
    finally:
        client.close()
    if api.mode == "on" and facts.problems:
        raise ApiUnavailable(f"{facts.problems[0]}; or use --api auto to check without it")
    return facts, refine(target, facts, notes)


def refine(target: Target, facts: ClusterFacts, notes: list[str]) -> Target:
    """What the API tells about the target: replicas, the Service, IPv6, the named port for SRV."""
    changes: dict[str, object] = {}
    sts = facts.statefulset
    if sts is not None:
        changes["replicas"], changes["first_ordinal"] = sts.replicas, sts.first_ordinal
        if not target.service:
            changes["service"] = sts.service_name
    svc = facts.service
    if (svc is not None and "IPv6" in svc.ip_families) or any(":" in ip for p in facts.pods.values() for ip in p.ips):
        changes["ipv6"] = True  # then a missing AAAA is a finding, not a single-stack Service
    if svc is not None and svc.exists and not target.port_name:
        named = [(n, proto) for n, _, proto in svc.ports if n]
        if named:
            changes["port_name"], changes["proto"] = named[0][0], named[0][1].lower()
            notes.append(f"SRV checked for the Service's port {named[0][0]!r} (from the API)")
    return target.with_(**changes)
