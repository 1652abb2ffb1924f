"""--state for check --all / -l / -A: one store (a file or a ConfigMap) holding one history per StatefulSet.

The document is {"schema": "ssdns.fleet-state/v1", "statefulsets": {"NS/NAME": <one check's state>}}: each
entry is exactly what `check --state` keeps for that StatefulSet (same snapshots, same comparison,
identity.held), so nothing about identity across runs is judged differently. Everything is written in
one update (a ConfigMap is replaced once per run, not once per StatefulSet). StatefulSets not in this
run keep their history untouched; a corrupt or foreign entry is reported on its StatefulSet and left as
it is; the whole is trimmed, oldest snapshots first, to fit a ConfigMap.
"""

from __future__ import annotations

import json
from dataclasses import replace

from ssdns.checks.history import compare_snapshots, store_failed
from ssdns.errors import SsdnsError
from ssdns.fleet import Entry, FleetResult
from ssdns.identity import changes, snapshot
from ssdns.model import Finding, Status, StoreSummary
from ssdns.state import ENTRY_UNTOUCHED, FLEET_SCHEMA, MAX_BYTES, StateError, append, new_doc, now, target_key, validate

SCHEMA = FLEET_SCHEMA
_UNTOUCHED = "left untouched; move it away or pick another --state for check --all"
_NONE = object()  # no entry for the StatefulSet (one that is JSON null is a corrupt entry)


def _validate_fleet(doc, where: str) -> dict:
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(doc.get("statefulsets"), dict):
        raise StateError(f"{where} is not a state of check --all/--selector/-A ({SCHEMA}): {_UNTOUCHED}")
    return doc


def _fit(doc: dict) -> dict:
    """Drop the oldest snapshots (from the longest histories, each keeping its newest) until it fits. An
    entry that does not validate is left as it is (it is reported on its StatefulSet when in the run)."""
    total = len(json.dumps(doc))
    if total <= MAX_BYTES:
        return doc
    subs = doc["statefulsets"]
    sizes = {k: [len(json.dumps(s)) + 2 for s in sub["history"]] for k, sub in subs.items() if _readable(sub)}
    while total > MAX_BYTES and sizes:
        k = max(sizes, key=lambda k: len(sizes[k]))
        if len(sizes[k]) <= 1:
            break
        total -= sizes[k].pop(0)
        subs[k] = dict(subs[k], history=subs[k]["history"][1:])
    return doc


def _readable(sub) -> bool:
    try:
        validate(sub, None, "", ENTRY_UNTOUCHED)
    except StateError:
        return False
    return True


def apply_fleet_state(fr: FleetResult, store, keep: int, taken_at: str | None = None) -> FleetResult:
    """Compare each StatefulSet with its last snapshot and save every new one in one update; each entry's
    Result gains its identity findings (or a state.store finding: the store is then left as it was)."""
    taken_at = taken_at or now()
    checked = [e for e in fr.entries if e.result is not None]
    try:
        doc = store.load()
        if doc is not None:
            _validate_fleet(doc, store.where)
    except SsdnsError as exc:
        return _with(fr, {_key(e): ([store_failed(store.where, exc)], []) for e in checked})
    stored = doc["statefulsets"] if doc else {}
    added: dict[str, tuple[list[Finding], list[str]]] = {}
    saving: dict[str, tuple[dict, dict]] = {}  # key -> (target key, snapshot)
    for e in checked:
        key = _key(e)
        added[key], save = _compare(e, stored.get(key, _NONE), f"{store.where} [{key}]", taken_at)
        if save is not None:
            saving[key] = save

    def merge(latest: dict | None) -> dict:
        base: dict = {"schema": SCHEMA, "statefulsets": {}} if latest is None else _validate_fleet(latest, store.where)
        subs: dict = dict(base["statefulsets"])
        for key, (tkey, cur) in saving.items():
            sub = new_doc(tkey) if key not in subs else validate(subs[key], tkey, f"{store.where} [{key}]",
                                                                  ENTRY_UNTOUCHED)
            subs[key] = append(sub, cur, keep)
        return _fit(dict(base, statefulsets=subs))

    if not saving:
        return _with(fr, added)
    try:
        saved = store.update(merge)
    except SsdnsError as exc:
        failed: dict[str, tuple[list[Finding], list[str]]] = {
            k: ([*added[k][0], store_failed(store.where, exc)], []) for k in added}
        return _with(fr, failed)
    summaries = {k: StoreSummary(f"{store.where} [{k}]", len(saved["statefulsets"][k]["history"]), keep)
                 for k in saving}
    return _with(fr, added, summaries)


def _compare(e: Entry, sub, where: str, taken_at: str):
    """(findings, notes) for one StatefulSet against its stored history, and (target key, snapshot) to save;
    None to save when its entry is corrupt or foreign (left as it is)."""
    assert e.result is not None
    tkey = target_key(e.result)
    try:
        sub = validate(sub, tkey, where, ENTRY_UNTOUCHED) if sub is not _NONE else None  # a null entry is corrupt
    except SsdnsError as exc:
        return ([store_failed(where, exc)], []), None
    cur = snapshot(e.result, taken_at)
    prev = sub["history"][-1] if sub and sub["history"] else None
    found: list[Finding] = []
    if prev is not None:
        found = compare_snapshots(prev, cur)
        cur["changes"] = changes(prev, cur)
        cur["broken"] = [f.subject for f in found if f.status is Status.FAIL]
    notes = [] if prev is not None else [f"first run with {where}: identity is compared from the next run on"]
    return (found, notes), (tkey, cur)


def _key(e: Entry) -> str:
    return f"{e.namespace}/{e.statefulset}"


def _with(fr: FleetResult, added: dict, summaries: dict | None = None) -> FleetResult:
    entries = []
    for e in fr.entries:
        k = _key(e)
        if e.result is not None and k in added:
            found, notes = added[k]
            e = replace(e, result=e.result.adding(found, notes, (summaries or {}).get(k)))
        entries.append(e)
    return replace(fr, entries=entries)
