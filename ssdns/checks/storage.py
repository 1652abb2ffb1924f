"""Storage: each pod's PersistentVolumeClaims are Bound, and stay bound to the same volume through a
restart or a scale down and up (the same name leads to the same data)."""

from __future__ import annotations

from collections.abc import Iterator

from ssdns.checks.registry import Verdict, check, failed, passed, warned
from ssdns.evidence import Evidence, Need


@check("api.pvc", place=70, needs=(Need.API,), column="PVC", title="each pod's PVCs exist and are Bound")
def claims_bound(ev: Evidence) -> Iterator[Verdict]:
    api = ev.api
    assert api is not None
    if api.lost("persistentvolumeclaims"):
        return
    for name in api.want:
        if name not in api.facts.pods:
            continue
        for pvc in api.facts.pvcs_of(name):
            if pvc.phase is None:
                yield failed(name, f"PVC {pvc.name} does not exist", pvc=pvc.name)
            elif pvc.phase != "Bound":
                yield failed(name, f"PVC {pvc.name} is {pvc.phase}, not Bound", pvc=pvc.name, phase=pvc.phase)
            else:
                yield passed(name, f"PVC {pvc.name} Bound to {pvc.volume}", pvc=pvc.name, volume=pvc.volume)


@check("api.pvc-retention", place=71, needs=(Need.API,),
       title="states the claims' retention policy; lists the retained claims a scale-up re-attaches")
def retention(ev: Evidence) -> Iterator[Verdict]:
    api = ev.api
    assert api is not None
    sts = api.facts.statefulset
    if sts is None or not sts.claim_templates:
        return
    policy = f"whenScaled {sts.retain_when_scaled}, whenDeleted {sts.retain_when_deleted}"
    yield passed(sts.name, f"claim retention: {policy} (spec.persistentVolumeClaimRetentionPolicy)",
                 when_scaled=sts.retain_when_scaled, when_deleted=sts.retain_when_deleted)
    if api.lost("persistentvolumeclaims"):
        return
    for ordinal, claim in api.facts.retained_claims():
        pod = f"{sts.name}-{ordinal}"
        kept = f"{claim.name} ({claim.phase or 'unknown'}, volume {claim.volume or 'none'}) is kept for {pod}"
        if sts.retain_when_scaled == "Delete":
            yield warned(pod, f"{kept} although whenScaled is Delete: the controller has not deleted it (yet); "
                         "a scale-up re-attaches it, old data included", claim=claim.name, volume=claim.volume)
        else:
            yield passed(pod, f"{kept}: a scale-up to {ordinal + 1} re-attaches it, with its data",
                         claim=claim.name, volume=claim.volume)


@check("restart.volume", place=81, needs=(Need.RESTART,),
       title="restart-test: each restarted pod's claims are bound to the same volumes as before")
def same_volume_after_restart(ev: Evidence) -> Iterator[Verdict]:
    r = ev.restart
    assert r is not None
    done = {c.pod for c in r.convergences}
    for name in r.planned:
        if name not in done:
            continue
        now = r.after.volumes_of(name)
        for claim, vol in r.volumes_before.get(name, {}).items():
            if vol and now.get(claim) and now[claim] != vol:
                yield failed(name, f"{claim} is bound to {now[claim]} after the restart, was {vol}: not the same data",
                             claim=claim, before=vol, after=now[claim])
            elif vol:
                yield passed(name, f"{claim} still bound to {vol}")


@check("scale.pvc-kept", place=87, needs=(Need.SCALE,),
       title="scale-test: the removed pods' claims are kept while the pods are gone")
def claims_kept(ev: Evidence) -> Iterator[Verdict]:
    s = ev.scale
    assert s is not None
    for name in s.removed:
        for claim in s.volumes_before.get(name, {}):
            if s.pvcs_down.get(claim) is None:
                yield failed(name, f"{claim} was deleted with {name}")
            else:
                yield passed(name, f"{claim} kept while {name} was gone")


@check("scale.volume", place=88, needs=(Need.SCALE,),
       title="scale-test: each pod that came back is bound to its old volumes")
def same_volume_after_scale(ev: Evidence) -> Iterator[Verdict]:
    s = ev.scale
    assert s is not None
    for name in s.removed:
        now = s.after.volumes_of(name)
        for claim, vol in s.volumes_before.get(name, {}).items():
            if vol and now.get(claim) and now[claim] != vol:
                yield failed(name, f"{name} came back bound to {now[claim]}, was {vol}: not its old data")
            elif vol:
                yield passed(name, f"{name} came back bound to {vol}")
