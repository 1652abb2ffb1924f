"""restart-test: delete chosen pods one at a time and time how identity comes back.

Disruptive: refuses without --yes, saying exactly what it would delete. Stops deleting as soon as
one pod does not come back, so a broken StatefulSet is not made worse.
"""

from __future__ import annotations

import asyncio
import time

from ssdns import names as names_
from ssdns.checks.storage import volumes
from ssdns.converge import Convergence, Progress, wait_for_identity
from ssdns.errors import ApiUnavailable, UsageError
from ssdns.evidence import RestartEvidence
from ssdns.facts import ClusterFacts
from ssdns.model import Result
from ssdns.target import ApiOptions, Target


def plan(facts, ordinals: list[int] | None) -> list[str]:
    """Pods to delete, highest ordinal first."""
    sts = facts.statefulset
    wanted = sts.ordinals if ordinals is None else ordinals
    for o in wanted:
        if o not in sts.ordinals:
            raise UsageError(f"--ordinal {o}: {sts.name} has ordinals {sts.ordinals.start}..{sts.ordinals.stop - 1}")
    return [f"{sts.name}-{o}" for o in sorted(set(wanted), reverse=True)]


async def restart_test(target: Target, api_opts: ApiOptions, ordinals: list[int] | None, yes: bool,
                       progress: Progress) -> Result:
    from ssdns import kube
    from ssdns.check import conclude, gather

    start = time.monotonic()
    deadline = start + target.timeout
    client = kube.api_client(api_opts)
    try:
        facts = await kube.load_facts(client, target.namespace, target.statefulset, target.service)
        if facts.statefulset is None:
            raise ApiUnavailable(_why_not(facts, "read the StatefulSet"))
        target = target.with_(service=target.service or facts.statefulset.service_name,
                              replicas=facts.statefulset.replicas, port=target.port or service_port(facts, target.port_name))
        names = plan(facts, ordinals)
        missing = [n for n in names if n not in facts.pods]
        if missing:
            raise UsageError(f"{', '.join(missing)} do not exist now: nothing to restart there; fix the StatefulSet first")
        listing = ", ".join(f"{n} (uid {facts.pods[n].uid})" for n in names)
        if not yes:
            raise UsageError(f"restart-test deletes pods: it would delete {listing} in namespace "
                             f"{target.namespace}, one at a time, highest ordinal first; add --yes to do it")
        volumes_before = {n: volumes(facts, n) for n in names}
        results: list[Convergence] = []
        for name in names:
            pod = facts.pods[name]
            ordinal = names_.ordinal(name, facts.statefulset.name)
            progress(f"{name}: deleting (uid {pod.uid[:8]}, {', '.join(pod.ips) or 'no IP'})")
            t0 = time.monotonic()
            try:
                await asyncio.to_thread(kube.delete_pod, client, target.namespace, name, pod.uid)
            except Exception as exc:
                raise ApiUnavailable(f"cannot delete pod {name}: {_api_reason(exc)}; the ssdns-disrupt Role "
                                     "grants delete on pods") from None
            conv = await wait_for_identity(client, target, name, ordinal, pod.uid, pod.ips, t0, deadline, progress)
            results.append(conv)
            if not conv.converged:
                progress(f"{name}: {conv.error}; not restarting any more pods")
                break
        after = await kube.load_facts(client, target.namespace, target.statefulset, target.service)
    finally:
        client.close()
    left = max(1.0, deadline - time.monotonic())
    run = await gather(target.with_(timeout=min(left, 10.0)), api_opts)
    evidence = RestartEvidence(names, results, volumes_before, after)
    return conclude(run.adding(restart=evidence), elapsed_ms=(time.monotonic() - start) * 1000)


def service_port(facts, port_name: str | None = None) -> int | None:
    """The port to probe a pod on when --port is not given: the EndpointSlice's (the container's
    targetPort, which SRV also gives), not the Service's own port, which may differ."""
    ports = facts.endpoint_ports
    named = [p for n, p, _ in ports if port_name and n == port_name]
    return named[0] if named else (ports[0][1] if ports else None)


def _api_reason(exc) -> str:
    status = getattr(exc, "status", None)
    return f"HTTP {status} {getattr(exc, 'reason', '')}".strip() if status else type(exc).__name__


def _why_not(facts: ClusterFacts, what: str) -> str:
    return str(facts.problems[0]) if facts.problems else f"cannot {what}"
