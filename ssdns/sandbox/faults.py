"""Faults the sandbox can inject, for tests and for people learning the tool.

Each is given as KIND[:ARG] on the command line (--fault wrong-name:web-1=web-2).
"""

from __future__ import annotations

from ssdns.errors import UsageError
from ssdns.sandbox.world import World

STALE_IP = "127.10.255.254"

FAULTS = {
    "wrong-name": "wrong-name:POD=OTHER  POD answers HTTP with OTHER's name (an identity swap)",
    "missing-dns": "missing-dns:POD       POD has no DNS records at all",
    "extra-ip": f"extra-ip[:IP]          the Service also answers IP (default {STALE_IP}), which no pod has",
    "no-http": "no-http:POD           nothing answers HTTP on POD's IP",
    "shared-ip": "shared-ip:POD=OTHER   DNS gives POD the IP of OTHER (two pod names, one IP)",
}


def describe() -> str:
    return "\n".join("  " + text for text in FAULTS.values())


def apply_fault(world: World, spec: str) -> None:
    kind, _, arg = spec.partition(":")
    if kind not in FAULTS:
        raise UsageError(f"unknown fault {spec!r}: use one of {', '.join(FAULTS)} (see ssdns sandbox --help)")
    if kind == "extra-ip":
        import ipaddress

        ip = arg or STALE_IP
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise UsageError(f"fault {spec!r}: {ip!r} is not an IP address") from None
        world.extra_service_ips.append(ip)
    elif kind == "wrong-name":
        pod, _, other = arg.partition("=")
        if not other:
            raise UsageError(f"fault {spec!r}: give wrong-name:POD=OTHER, e.g. wrong-name:web-1=web-2")
        _pod(world, pod, spec).answer_as = other
    elif kind == "shared-ip":
        pod, _, other = arg.partition("=")
        if not other:
            raise UsageError(f"fault {spec!r}: give shared-ip:POD=OTHER, e.g. shared-ip:web-1=web-2")
        _pod(world, pod, spec).dns_ip = _pod(world, other, spec).ip
    elif kind == "missing-dns":
        _pod(world, arg, spec).in_dns = False
    elif kind == "no-http":
        _pod(world, arg, spec).http_up = False
    world.changed()


def _pod(world: World, name: str, spec: str):
    try:
        return world.pod(name)
    except KeyError:
        names = ", ".join(p.name for p in world.pods[:5])
        raise UsageError(f"fault {spec!r}: no pod {name!r} in the sandbox (pods: {names}...)") from None
