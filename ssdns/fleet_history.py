"""`ssdns history` on the state of check --all / -l / -A (ssdns.fleet-state/v1): one history per StatefulSet.

Without --statefulset: a summary table (one row per StatefulSet: runs stored, the last run and its verdict,
identity changes and breaks over the stored runs), then each StatefulSet's timeline exactly as `history`
shows a single check's. With --statefulset NAME (-n NS) or NS/NAME: that one's timeline alone, or its
document with -o json. An entry that does not validate is reported on its row and in one line (exit 2)
after everything readable is shown: one corrupt entry does not hide the others, nor pass unnoticed.
"""

from __future__ import annotations

import json

from ssdns.errors import UsageError
from ssdns.state import ENTRY_UNTOUCHED, StateError, validate
from ssdns.state import FLEET_SCHEMA as SCHEMA


def is_fleet(doc) -> bool:
    return isinstance(doc, dict) and doc.get("schema") == SCHEMA


def entries(doc: dict, where: str) -> tuple[dict[str, dict], dict[str, str]]:
    """(readable entries, unreadable entry -> the problem), both by NS/NAME in sorted order."""
    subs = doc.get("statefulsets")
    if not isinstance(subs, dict):
        raise StateError(f"{where} is a state of check --all ({SCHEMA}) without its 'statefulsets' object: "
                         "left untouched; move it away or pick another --state")
    good: dict[str, dict] = {}
    bad: dict[str, str] = {}
    for key in sorted(subs):
        try:
            good[key] = validate(subs[key], None, f"{where} [{key}]", ENTRY_UNTOUCHED)
        except StateError as exc:
            bad[key] = str(exc)
    return good, bad


def pick_key(statefulset: str, namespace: str) -> str:
    """--statefulset NAME (in -n's namespace) or NS/NAME, each part a valid name."""
    from ssdns.target import check_label

    ns, _, name = statefulset.rpartition("/")
    return f"{check_label(ns or namespace, 'namespace')}/{check_label(name, 'StatefulSet name')}"


def pick(doc: dict, key: str, where: str) -> dict:
    """The entry of one StatefulSet; one line (exit 2) naming what the state holds when it is not there."""
    subs = doc.get("statefulsets")
    if not isinstance(subs, dict) or key not in subs:
        held = sorted(subs) if isinstance(subs, dict) else []
        have = ", ".join(held[:10]) + (f" and {len(held) - 10} more" if len(held) > 10 else "")
        raise UsageError(f"{where} holds no history of {key} (it holds {have or 'none'}): pick one with "
                         "--statefulset NAME -n NAMESPACE, or NAMESPACE/NAME")
    return validate(subs[key], None, f"{where} [{key}]", ENTRY_UNTOUCHED)


def single_key(doc: dict, key: str, where: str) -> None:
    """--statefulset on a single check's state: it must be the one the state is of."""
    t = doc.get("target") or {}
    if t.get("statefulset") and f"{t.get('namespace')}/{t.get('statefulset')}" != key:
        raise UsageError(f"{where} holds the history of {t.get('namespace')}/{t.get('statefulset')}, not {key}: "
                         "drop --statefulset, or pick the state of that StatefulSet")


def summary(sub: dict) -> dict:
    """Runs stored, the last run and its verdict, and what changed over the stored runs."""
    history = sub["history"]
    last = history[-1] if history else None
    return {"runs": len(history), "last_run": last["taken_at"] if last else None,
            "last_ok": last["ok"] if last else None,
            "changes": sum(len(s.get("changes", {})) for s in history),
            "broken": sum(len(s.get("broken", [])) for s in history)}


def render_text(doc: dict, where: str, last: int | None) -> tuple[str, dict[str, str]]:
    """The summary table then every readable timeline; and the unreadable entries (key -> problem)."""
    from ssdns.report import render_history

    good, bad = entries(doc, where)
    n = len(good) + len(bad)
    lines = [f"ssdns history: {n} StatefulSet{'' if n == 1 else 's'} in {where} ({SCHEMA})"
             + (f", {len(bad)} unreadable" if bad else ""), "", *_table(good, bad)]
    if not n:
        lines.append("(no StatefulSet has a history yet)")
    for key in sorted([*good, *bad]):
        lines += ["", f"=== {key} ==="]
        lines.append(render_history(good[key], f"{where} [{key}]", last) if key in good else bad[key])
    return "\n".join(lines), bad


def _table(good: dict[str, dict], bad: dict[str, str]) -> list[str]:
    rows = [["STATEFULSET", "RUNS", "LAST RUN", "VERDICT", "CHANGES", "BROKE"]]
    for key in sorted([*good, *bad]):
        if key in bad:
            rows.append([key, "-", "-", "UNREADABLE", "-", "-"])
            continue
        s = summary(good[key])
        verdict = "-" if s["last_ok"] is None else ("PASS" if s["last_ok"] else "FAIL")
        rows.append([key, str(s["runs"]), s["last_run"] or "-", verdict, str(s["changes"]), str(s["broken"])])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def render_json(doc: dict, where: str) -> tuple[str, dict[str, str]]:
    """The readable entries as stored, each with its summary; the unreadable ones by key with the problem."""
    good, bad = entries(doc, where)
    out = {"schema": SCHEMA, "summary": {k: summary(v) for k, v in good.items()}, "statefulsets": good,
           "unreadable": bad}
    return json.dumps(out, indent=2), bad


def unreadable_error(bad: dict[str, str]) -> StateError:
    """One line for the unreadable entries (exit 2), said after the readable ones are shown."""
    first = next(iter(bad))
    more = f"; {len(bad) - 1} more unreadable: {', '.join(list(bad)[1:6])}" if len(bad) > 1 else ""
    return StateError(f"{bad[first]}{more}")
