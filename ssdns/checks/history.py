"""Identity across runs: for each ordinal seen before, the same name still leads to the same identity
and data (snapshots are built by identity.py and kept by state.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ssdns.checks.registry import Check, Verdict, check, declare, failed, findings_of, passed, warned
from ssdns.evidence import Evidence, Need
from ssdns.identity import changes, volume_changes
from ssdns.model import Finding, Status

if TYPE_CHECKING:  # every family is imported to list the catalogue: a plain check creates no --state classes
    from ssdns.change_evidence import HistoryEvidence

_STORE = Check("state.store", place=91, needs=(), column=None, judge=None,
               title="--state: the stored history can be read and written (else it is left untouched)")
declare(_STORE)


def store_failed(where: str, error: Exception) -> Finding:
    """The finding for a state store that cannot be used; nothing stored is changed."""
    return Finding(_STORE.id, Status.FAIL, where, str(error))


def _held(h: HistoryEvidence) -> Iterator[Verdict]:
    """Fail on stale DNS after a change, an identity swap, a changed volume, or an ordinal gone while
    the StatefulSet still wants it."""
    prev, cur = h.previous, h.current
    replicas = cur.get("replicas")
    what = changes(prev, cur)
    for ordinal, a in sorted(prev["pods"].items(), key=lambda kv: int(kv[0])):
        b = cur["pods"].get(ordinal)
        name = a["name"]
        if b is None or not (b["ips"] or b["dns_ips"]):
            if replicas is not None and int(ordinal) >= replicas:
                yield warned(name, f"{name} is gone: the StatefulSet was scaled to {replicas}")
            else:
                yield failed(name, f"{name} is gone since {a['seen_at']} (last at {', '.join(a['ips']) or '-'})")
            continue
        changed = what.get(ordinal, [])
        problems = _problems(a, b, cur.get("service_ips", []))
        summary = "; ".join(changed) if changed else "unchanged"
        if problems:
            yield failed(name, f"identity broke ({summary}): {'; '.join(problems)}", changes=changed,
                         problems=problems)
        elif changed:
            yield passed(name, f"{summary}: identity held", changes=changed)
        else:
            yield passed(name, f"{summary}: same pod, same identity")


def _problems(a: dict, b: dict, service_ips: list[str]) -> list[str]:
    """What broke between two snapshots of one ordinal, in words."""
    problems = []
    if set(b["ips"]) != set(a["ips"]):
        stale = [ip for ip in a["ips"] if ip in b["dns_ips"] or ip in service_ips]
        if stale:
            problems.append(f"DNS still serves the old IP {', '.join(stale)}")
        elif b["dns_ips"] and set(b["dns_ips"]) != set(b["ips"]):
            problems.append(f"DNS gives {', '.join(b['dns_ips'])}, the pod is at {', '.join(b['ips'])}")
    if b["identity"] is not None and b["identity"] != a["name"]:
        problems.append(f"answers as {b['identity']!r} (was {a['identity']!r})")
    problems += [f"{claim} is bound to a different volume ({old} -> {vol}): its data is not the same"
                 for claim, old, vol in volume_changes(a, b)]
    return problems


@check("identity.held", place=90, needs=(Need.HISTORY,),
       title="--state: each ordinal seen before still has its identity, IP in DNS and volume")
def held(ev: Evidence) -> Iterator[Verdict]:
    assert ev.history is not None
    yield from _held(ev.history)


def compare_snapshots(prev: dict, cur: dict) -> list[Finding]:
    """identity.held over two snapshots alone, for state.py, which compares after the run."""
    from ssdns.change_evidence import HistoryEvidence

    return findings_of(held, _held(HistoryEvidence(prev, cur)))
