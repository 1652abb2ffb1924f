"""restart-test: delete chosen pods one at a time and time how identity comes back.

Disruptive: refuses without --yes, saying exactly what it would delete, and refuses a StatefulSet that
is not settled (a rollout, a pod terminating or not Ready: disrupt.unsettled). Stops deleting as soon
as one pod does not come back, so a broken StatefulSet is not made worse.
"""

from __future__ import annotations

import time

from ssdns.converge import Convergence, Progress, wait_for_identity
from ssdns.disrupt import Disruption
from ssdns.errors import ApiError, ApiUnavailable, UsageError
from ssdns.change_evidence import RestartEvidence
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
        _refuse(facts, names)
        d.refuse_unsettled("restart-test")
        if not yes:
            raise _without_yes(facts, names, target.namespace)
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


def _refuse(facts: ClusterFacts, names: list[str]) -> None:
    """Nothing is deleted that does not exist."""
    missing = [n for n in names if n not in facts.pods]
    if missing:
        raise UsageError(f"{', '.join(missing)} do not exist now: nothing to restart there; fix the StatefulSet first")


def _without_yes(facts: ClusterFacts, names: list[str], namespace: str) -> UsageError:
    """Nothing at all is deleted without --yes: what it would delete, exactly."""
    listing = ", ".join(f"{n} (uid {facts.pods[n].uid})" for n in names)
    return UsageError(f"restart-test deletes pods: it would delete {listing} in namespace "
                      f"{namespace}, one at a time, highest ordinal first; add --yes to do it")


async def _restart_one(d: Disruption, target: Target, sts: StatefulSetFacts, name: str) -> Convergence:
    """Delete one pod (the call ends by the end of the waiting) and wait for its identity to come back.
    d.done says what became of it, so a run that ends early says which pods it deleted."""
    from ssdns import kube

    pod = d.facts.pods[name]
    d.progress(f"{name}: deleting (uid {pod.uid[:8]}, {', '.join(pod.ips) or 'no IP'})")
    t0 = time.monotonic()
    try:
        await kube.delete_pod(d.client, target.namespace, name, pod.uid, deadline=d.wait_until)
    except ApiError as exc:  # refused or unreachable: either ends the run
        if exc.status is None:  # no answer: the delete may have been done all the same
            raise ApiUnavailable(f"{exc}; {name} may have been deleted all the same (its controller then "
                                 f"replaces it): see 'kubectl get pod {name} -n {target.namespace}'") from None
        raise ApiUnavailable(f"cannot delete pod {name}: {_api_reason(exc)}; the ssdns-disrupt Role "
                             "grants delete on pods") from None
    except BaseException:  # SIGTERM or Ctrl-C with the call in flight: the API may have done it all the same
        d.done.append(f"the delete of {name} (uid {pod.uid[:8]}) was interrupted before its answer: it may have "
                      f"been done (see 'kubectl get pod {name} -n {target.namespace}')")
        raise
    d.done.append(f"deleted {name} (uid {pod.uid[:8]}), not seen back yet")
    conv = await wait_for_identity(d.client, target, name, ordinal(name, sts.name), pod.uid, pod.ips, t0,
                                   d.wait_until, d.progress)
    d.done[-1] = (f"restarted {name} (back with its identity in {conv.http_s:.1f} s)" if conv.converged
                  else f"deleted {name} (uid {pod.uid[:8]}), not back: {conv.error}")
    return conv


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
