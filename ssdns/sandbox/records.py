"""The DNS records CoreDNS serves for the sandbox's headless Service (DNS spec 1.1.0, section 2.4).

Pure: World -> {owner name: {type: [rdata text]}}.
"""

from __future__ import annotations

import ipaddress

from ssdns.sandbox.world import World

SCHEMA_VERSION = "1.1.0"

Records = dict[str, dict[str, list[str]]]


def published(world: World) -> list:
    """Pods with DNS records: ready (CoreDNS publishes only ready endpoints) and not faulted out."""
    return [p for p in world.pods if p.ready and p.in_dns]


def records(world: World) -> Records:
    out: Records = {}

    def add(name: str, rdtype: str, value: str) -> None:
        out.setdefault(name.lower(), {}).setdefault(rdtype, []).append(value)

    svc = world.service_fqdn
    pods = published(world)
    for p in pods:
        ip = p.published_ip
        rdtype = "AAAA" if ipaddress.ip_address(ip).version == 6 else "A"
        if ip not in out.get(svc.lower(), {}).get(rdtype, []):
            add(svc, rdtype, ip)
        add(world.pod_fqdn(p.name), rdtype, ip)
        add(ipaddress.ip_address(ip).reverse_pointer + ".", "PTR", world.pod_fqdn(p.name))
    for ip in world.extra_service_ips:
        add(svc, "AAAA" if ipaddress.ip_address(ip).version == 6 else "A", ip)
    if pods and world.port_name:
        weight = 100 // len(pods)  # CoreDNS: priority 0, weight 100/N
        for p in pods:
            add(f"_{world.port_name}._{world.proto}.{svc}", "SRV", f"0 {weight} {world.port} {world.pod_fqdn(p.name)}")
    add(f"dns-version.{world.zone}.", "TXT", f'"{SCHEMA_VERSION}"')
    return out
