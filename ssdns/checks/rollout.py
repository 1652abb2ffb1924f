"""Rollout: a rolling update stuck on a pod that never turns Ready (the OrderedReady rollback trap), and a
pod stuck terminating (its ordinal cannot come back until it is gone). Each with the step that frees it."""

from __future__ import annotations

from collections.abc import Iterator

from ssdns.checks.registry import Verdict, check, failed, fix, passed, warned
from ssdns.checks.wiring import NOT_READY_LONG, TERMINATING_SLACK, _api, age, span, sts_pods
from ssdns.evidence import Evidence, Need

TRAP = "kubernetes/kubernetes#67250"


@check("rollout.update", place=66, needs=(Need.API,),
       title="a rolling update is not stuck on a pod of the new revision that never turns Ready")
def update(ev: Evidence) -> Iterator[Verdict]:
    api = _api(ev)
    sts = api.facts.statefulset
    if sts is None or not sts.update_revision or not sts.current_revision:
        return
    ns = api.facts.namespace
    where = f"partition {sts.partition}, {sts.updated_replicas} of {sts.replicas} updated"
    if sts.update_revision == sts.current_revision:
        yield passed(sts.name, f"no rollout in progress (revision {sts.current_revision}, {sts.update_strategy}, "
                     f"partition {sts.partition})")
        return
    stuck = []
    for p in sts_pods(api):
        waited = age(ev, p.ready_since)
        if p.revision == sts.update_revision and not p.ready and not p.terminating and waited is not None \
                and waited >= NOT_READY_LONG:
            stuck.append((p, waited))
    details = {"current_revision": sts.current_revision, "update_revision": sts.update_revision,
               "partition": sts.partition, "updated_replicas": sts.updated_replicas}
    if not stuck:
        yield warned(sts.name, f"rolling update in progress: {sts.current_revision} -> {sts.update_revision} "
                     f"({where})", **details)
        return
    p, waited = stuck[0]
    ordered = sts.pod_management_policy == "OrderedReady"
    message = (f"rolling update stuck: {p.name} runs the update revision {sts.update_revision} and has not been "
               f"Ready for {span(waited)} ({where})")
    if ordered:
        yield fix(failed(sts.name, f"{message}; with podManagementPolicy OrderedReady the controller waits for it "
                         f"forever, even after the template is reverted (the rollback trap, {TRAP})",
                         pod=p.name, **details),
                  f"revert or fix spec.template (kubectl rollout undo statefulset/{sts.name} -n {ns}), then "
                  f"delete the stuck pod by hand: kubectl delete pod {p.name} -n {ns}")
    else:
        yield fix(failed(sts.name, message, pod=p.name, **details),
                  f"fix spec.template (or kubectl rollout undo statefulset/{sts.name} -n {ns}); "
                  f"see why {p.name} is not Ready: kubectl describe pod {p.name} -n {ns}")


@check("rollout.terminating", place=67, needs=(Need.API,),
       title="no pod is stuck terminating past its grace period (its ordinal cannot come back)")
def terminating(ev: Evidence) -> Iterator[Verdict]:
    api = _api(ev)
    ns = api.facts.namespace
    for p in sts_pods(api):
        waited = age(ev, p.deleted_at)
        if not p.terminating or waited is None:
            continue
        grace = p.grace_seconds if p.grace_seconds is not None else 30
        if waited < grace + TERMINATING_SLACK:
            continue
        yield fix(failed(p.name, f"{p.name} has been terminating for {span(waited)} (grace period {grace} s) on "
                         f"{p.node or 'no node'}: the StatefulSet cannot create {p.name} again until it is gone",
                         terminating_s=round(waited), grace_s=grace, node=p.node),
                  f"see whether node {p.node} is down (kubectl get node {p.node}); only when it is, "
                  f"kubectl delete pod {p.name} -n {ns} --grace-period=0 --force")
