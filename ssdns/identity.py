"""Identity across runs: snapshots of who each ordinal was, and what changed since.

Pure: a snapshot is built from a Result; two snapshots compare into change lists (and, in
ssdns/checks/history.py, into findings). A snapshot is plain JSON: it is stored between runs.
"""

from __future__ import annotations

from typing import Any

from ssdns.model import PodView, Result

STATE_SCHEMA = "ssdns.state/v1"


def snapshot(result: Result, taken_at: str) -> dict[str, Any]:
    """Per ordinal: pod UID, IPs, node, the identity it answered with, PVCs and volumes, when seen."""
    pods = {str(p.ordinal): _pod(p, taken_at) for p in result.pods if p.ordinal is not None}
    return {"taken_at": taken_at, "ok": result.ok, "replicas": result.target.replicas,
            "service_ips": list(result.service.ips), "pods": pods}


def _pod(p: PodView, taken_at: str) -> dict[str, Any]:
    api = p.api.pod if p.api is not None else None
    body = p.http.body if p.http is not None else None
    return {
        "name": p.name,
        "uid": api.uid if api else None,
        "ips": list(api.ips) if api else list(p.ips),
        "dns_ips": list(p.ips),
        "node": api.node if api else None,
        "identity": body.strip() if body is not None else None,
        "volumes": {c.name: c.volume for c in p.api.pvcs} if api and p.api else {},
        "seen_at": taken_at,
    }


def changes(prev: dict, cur: dict) -> dict[str, list[str]]:
    """What changed per ordinal, in words: restarted (new UID), moved (new node), new IP, gone, new."""
    out: dict[str, list[str]] = {}
    for ordinal in sorted({*prev["pods"], *cur["pods"]}, key=int):
        words = _changed(_present(prev["pods"].get(ordinal)), _present(cur["pods"].get(ordinal)))
        if words:
            out[ordinal] = words
    return out


def _present(pod: dict | None) -> dict | None:
    """An ordinal with no address anywhere is gone, whatever else is known of it."""
    return pod if pod is not None and (pod["ips"] or pod["dns_ips"]) else None


def _changed(a: dict | None, b: dict | None) -> list[str]:
    if a is None or b is None:
        return ["gone"] if a else (["new"] if b else [])
    words = []
    if _differ(a["uid"], b["uid"]):
        words.append(f"restarted (uid {a['uid'][:8]} -> {b['uid'][:8]})")
    if _differ(a["node"], b["node"]):
        words.append(f"moved ({a['node']} -> {b['node']})")
    if a["ips"] and b["ips"] and set(a["ips"]) != set(b["ips"]):
        words.append(f"new IP ({', '.join(a['ips'])} -> {', '.join(b['ips'])})")
    words += [f"volume changed ({claim}: {old} -> {vol})" for claim, old, vol in volume_changes(a, b)]
    return words


def _differ(old: str | None, new: str | None) -> bool:
    """Both known, and not the same."""
    return bool(old and new and old != new)


def volume_changes(a: dict, b: dict) -> list[tuple[str, str, str]]:
    """(claim, old volume, new volume) for each claim bound to another volume than before."""
    return [(claim, a["volumes"][claim], vol) for claim, vol in b["volumes"].items()
            if _differ(a["volumes"].get(claim), vol)]
