"""restart-test: delete chosen pods one at a time and time how identity comes back.

Disruptive: refuses without --yes, saying exactly what it would delete. Stops deleting as soon as
one pod does not come back, so a broken StatefulSet is not made worse.
"""

from __future__ import annotations

import asyncio
import time

from ssdns.converge import Convergence, Progress, wait_for_identity
from ssdns.disrupt import Disruption
from ssdns.errors import ApiError, ApiUnavailable, UsageError
from ssdns.evidence import RestartEvidence
from ssdns.facts import ClusterFacts, StatefulSetFacts
from ssdns.model import Result
from ssdns.names import ordinal
from ssdns.target import ApiOptions, Target


def plan(facts: ClusterFacts, ordinals: list[int] | None) -> list[str]:
    """Pods to delete, highest ordinal first."""
    sts = facts.statefulset
    assert sts is not None
    wanted = sts.ordinals if ordinals is None else ordinals
    for o in wanted:
        if o not in sts.ordinals:
            raise UsageError(f"--ordinal {o}: {sts.name} has ordinals {sts.ordinals.start}..{sts.ordinals.stop - 1}")
    return [f"{sts.name}-{o}" for o in sorted(set(wanted), reverse=True)]


async def restart_test(target: Target, api_opts: ApiOptions, ordinals: list[int] | None, yes: bool,
                       progress: Progress) -> Result:
    async with Disruption(target, api_opts, progress) as d:
        sts, facts = d.statefulset, d.facts
        target = target.with_(service=target.service or sts.service_name, replicas=sts.replicas,
                              port=target.port or service_port(facts, target.port_name))
        names = plan(facts, ordinals)
        _refuse(facts, names, target.namespace, yes)
        before = {n: facts.volumes_of(n) for n in names}
        results: list[Convergence] = []
        for name in names:
            conv = await _restart_one(d, target, sts, name)
            results.append(conv)
            if not conv.converged:
                progress(f"{name}: {conv.error}; not restarting any more pods")
                break
        after = await d.read()
    return await d.conclude(target, restart=RestartEvidence(names, results, before, after))


def _refuse(facts: ClusterFacts, names: list[str], namespace: str, yes: bool) -> None:
    """Nothing is deleted that does not exist, and nothing at all without --yes."""
    missing = [n for n in names if n not in facts.pods]
    if missing:
        raise UsageError(f"{', '.join(missing)} do not exist now: nothing to restart there; fix the StatefulSet first")
    if not yes:
        listing = ", ".join(f"{n} (uid {facts.pods[n].uid})" for n in names)
        raise UsageError(f"restart-test deletes pods: it would delete {listing} in namespace "
                         f"{namespace}, one at a time, highest ordinal first; add --yes to do it")


async def _restart_one(d: Disruption, target: Target, sts: StatefulSetFacts, name: str) -> Convergence:
    from ssdns import kube

    pod = d.facts.pods[name]
    d.progress(f"{name}: deleting (uid {pod.uid[:8]}, {', '.join(pod.ips) or 'no IP'})")
    t0 = time.monotonic()
    try:
        await asyncio.to_thread(kube.delete_pod, d.client, target.namespace, name, pod.uid)
    except ApiError as exc:  # refused or unreachable: either ends the run
        raise ApiUnavailable(f"cannot delete pod {name}: {_api_reason(exc)}; the ssdns-disrupt Role "
                             "grants delete on pods") from None
    return await wait_for_identity(d.client, target, name, ordinal(name, sts.name), pod.uid, pod.ips, t0,
                                   d.deadline, d.progress)


def service_port(facts: ClusterFacts, port_name: str | None = None) -> int | None:
    """The port to probe a pod on when --port is not given: the EndpointSlice's (the container's
    targetPort, which SRV also gives), not the Service's own port, which may differ."""
    ports = facts.endpoint_ports
    named = [p for n, p, _ in ports if port_name and n == port_name]
    return named[0] if named else (ports[0][1] if ports else None)


def _api_reason(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    return f"HTTP {status} {getattr(exc, 'reason', '')}".strip() if status else (getattr(exc, "reason", "")
                                                                                   or type(exc).__name__)
