"""Several StatefulSets in one sandbox (`ssdns sandbox --statefulsets N`, `ssdns demo --statefulsets N`), so
`check --all` can be tried: web (Service nginx) and web-b, web-c, ... (each its own headless Service of the
same name, pods web-b-0, ...) in the same namespace, added as the world's neighbours (world.add_neighbour,
the mechanism bench/fleet.py and the tests use): the one DNS server, API and echo pods serve them all.

A fault names the StatefulSet it breaks: `web-b/not-headless`, or a pod of it (`no-http:web-b-1`); without
either it is the main StatefulSet's (web), as with one StatefulSet. Faults of the cluster DNS, the API or
the watch streams belong to the whole sandbox: they take no StatefulSet.
"""

from __future__ import annotations

from ssdns.errors import UsageError
from ssdns.sandbox.faults import REPLICA_FAULTS, TIMED, apply_fault
from ssdns.sandbox.world import World, add_neighbour, every_world

MAX_STATEFULSETS = 100
MAX_PODS_EACH = 1000  # each neighbour has a /22 of its own (world.add_neighbour): about 1,018 addresses
# What the sandbox as a whole does (its DNS server and replicas, its API, its caches): no one StatefulSet's.
SANDBOX_WIDE = (*REPLICA_FAULTS, *TIMED, "udp-only", "tcp-differs", "dns-forbidden", "dns-servfail", "dns-stuck",
                "api-forbidden")
# Faults whose argument starts with a pod name (POD, POD=OTHER): they go to the StatefulSet of that pod.
POD_FAULTS = ("wrong-name", "missing-dns", "no-http", "http-hang", "shared-ip", "dns-other-pod", "not-ready",
              "stale-dns", "pvc-pending", "wrong-subdomain", "replacement-wrong-name", "replacement-new-volume",
              "stuck-rollout", "stuck-not-ready", "stuck-terminating", "second-ptr")


def fleet_name(i: int, first: str = "web") -> str:
    """The i-th StatefulSet's name: web, web-b, web-c, ... web-z, web-ba, web-bb, ... (letters: a digit
    would read as a pod's ordinal, web-1)."""
    if i == 0:
        return first
    letters = ""
    while i:
        i, r = divmod(i, 26)
        letters = chr(ord("a") + r) + letters
    return f"{first}-{letters}"


def add_statefulsets(world: World, count: int, replicas: int) -> list[World]:
    """The world's StatefulSet and count - 1 more beside it, each with `replicas` pods."""
    if not 1 <= count <= MAX_STATEFULSETS:
        raise UsageError(f"--statefulsets {count}: give 1 to {MAX_STATEFULSETS}")
    if count > 1 and replicas > MAX_PODS_EACH:
        raise UsageError(f"--pods {replicas} with --statefulsets {count}: at most {MAX_PODS_EACH} pods each (or one "
                         "StatefulSet of up to 5000)")
    return [add_neighbour(world, fleet_name(i, world.statefulset), replicas) for i in range(1, count)]


def apply_fleet_fault(world: World, spec: str) -> None:
    """--fault on a sandbox of several StatefulSets: routed to the StatefulSet it names (see the docstring)."""
    head, slash, rest = spec.partition("/")
    kind = spec.partition(":")[0]
    if slash and ":" not in head:  # NAME/FAULT
        kind = rest.partition(":")[0]
        if kind in SANDBOX_WIDE:
            raise UsageError(f"fault {spec!r}: {kind} is the whole sandbox's (its DNS, API or caches), not one "
                             f"StatefulSet's: give --fault {rest}")
        apply_fault(_named(world, head, spec), rest)
        return
    if kind in POD_FAULTS:
        pod = spec.partition(":")[2].partition("=")[0]
        owner = next((w for w in every_world(world) if any(p.name == pod for p in w.pods)), world)
        apply_fault(owner, spec)
        return
    apply_fault(world, spec)


def _named(world: World, name: str, spec: str) -> World:
    worlds = every_world(world)
    found = next((w for w in worlds if w.statefulset == name), None)
    if found is None:
        names = ", ".join(w.statefulset for w in worlds[:6]) + (", ..." if len(worlds) > 6 else "")
        raise UsageError(f"fault {spec!r}: no StatefulSet {name!r} in the sandbox (it has {names})")
    return found
