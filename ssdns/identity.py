"""Identity across runs: snapshots of who each ordinal was, and whether identity held since.

Pure: a snapshot is built from a Result; two snapshots compare into findings and change lists.
"""

from __future__ import annotations

from ssdns.model import Finding, Result, Status

STATE_SCHEMA = "ssdns.state/v1"


def snapshot(result: Result, taken_at: str) -> dict:
    """Per ordinal: pod UID, IPs, node, the identity it answered with, PVCs and volumes, when seen."""
    pods = {}
    for p in result.pods:
        if p.ordinal is None:
            continue
        api = p.api if p.api and p.api.get("exists") else None
        http = p.http or {}
        pods[str(p.ordinal)] = {
            "name": p.name,
            "uid": api["uid"] if api else None,
            "ips": list(api["ips"]) if api else list(p.ips),
            "dns_ips": list(p.ips),
            "node": api["node"] if api else None,
            "identity": http["body"].strip() if http.get("body") is not None else None,
            "volumes": {c["name"]: c["volume"] for c in api.get("pvcs", [])} if api else {},
            "seen_at": taken_at,
        }
    t = result.target
    return {"taken_at": taken_at, "ok": result.ok, "replicas": t.get("replicas"),
            "service_ips": list(result.service.get("ips", [])), "pods": pods}


def changes(prev: dict, cur: dict) -> dict[str, list[str]]:
    """What changed per ordinal, in words: restarted (new UID), moved (new node), new IP, gone, new."""
    out: dict[str, list[str]] = {}
    for ordinal in sorted({*prev["pods"], *cur["pods"]}, key=int):
        a, b = prev["pods"].get(ordinal), cur["pods"].get(ordinal)
        # An ordinal with no address anywhere is gone, whatever else is known of it.
        a, b = (None if x is not None and not (x["ips"] or x["dns_ips"]) else x for x in (a, b))
        words = []
        if a and not b:
            words.append("gone")
        elif b and not a:
            words.append("new")
        else:
            if a["uid"] and b["uid"] and a["uid"] != b["uid"]:
                words.append(f"restarted (uid {a['uid'][:8]} -> {b['uid'][:8]})")
            if a["node"] and b["node"] and a["node"] != b["node"]:
                words.append(f"moved ({a['node']} -> {b['node']})")
            if a["ips"] and b["ips"] and set(a["ips"]) != set(b["ips"]):
                words.append(f"new IP ({', '.join(a['ips'])} -> {', '.join(b['ips'])})")
            for claim, vol in b["volumes"].items():
                old = a["volumes"].get(claim)
                if old and vol and old != vol:
                    words.append(f"volume changed ({claim}: {old} -> {vol})")
        if words:
            out[ordinal] = words
    return out


def compare_snapshots(prev: dict, cur: dict) -> list[Finding]:
    """Did identity hold for each ordinal seen before? Fail on stale DNS after a change, an identity
    swap, a changed volume, or an ordinal gone while the StatefulSet still wants it."""
    findings = []
    replicas = cur.get("replicas")
    what = changes(prev, cur)
    for ordinal, a in sorted(prev["pods"].items(), key=lambda kv: int(kv[0])):
        b = cur["pods"].get(ordinal)
        name = a["name"]
        if b is None or not (b["ips"] or b["dns_ips"]):
            if replicas is not None and int(ordinal) >= replicas:
                findings.append(Finding("identity.held", Status.WARN, name,
                                        f"{name} is gone: the StatefulSet was scaled to {replicas}"))
            else:
                findings.append(Finding("identity.held", Status.FAIL, name,
                                        f"{name} is gone since {a['seen_at']} (last at {', '.join(a['ips']) or '-'})"))
            continue
        problems = []
        changed = what.get(ordinal, [])
        if set(b["ips"]) != set(a["ips"]):
            stale = [ip for ip in a["ips"] if ip in b["dns_ips"] or ip in cur.get("service_ips", [])]
            if stale:
                problems.append(f"DNS still serves the old IP {', '.join(stale)}")
            if b["dns_ips"] and set(b["dns_ips"]) != set(b["ips"]) and not stale:
                problems.append(f"DNS gives {', '.join(b['dns_ips'])}, the pod is at {', '.join(b['ips'])}")
        if b["identity"] is not None and b["identity"] != name:
            problems.append(f"answers as {b['identity']!r} (was {a['identity']!r})")
        for claim, vol in b["volumes"].items():
            old = a["volumes"].get(claim)
            if old and vol and old != vol:
                problems.append(f"{claim} is bound to a different volume ({old} -> {vol}): its data is not the same")
        summary = "; ".join(changed) if changed else "unchanged"
        if problems:
            findings.append(Finding("identity.held", Status.FAIL, name,
                                    f"identity broke ({summary}): {'; '.join(problems)}",
                                    {"changes": changed, "problems": problems}))
        else:
            held = "identity held" if changed else "same pod, same identity"
            findings.append(Finding("identity.held", Status.PASS, name, f"{summary}: {held}",
                                    {"changes": changed} if changed else {}))
    return findings
