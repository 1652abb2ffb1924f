"""The DNS records CoreDNS serves for the sandbox's Service (DNS spec 1.1.0, sections 2.3 and 2.4).

Pure: World -> {owner name: {type: [rdata text]}}. Built from the same endpoint view the API's
EndpointSlices show (world.endpoints), with CoreDNS's rules:

- only endpoints whose ready condition is true count (publishNotReadyAddresses makes them all
  ready, in the EndpointSlice already);
- an endpoint's name is its hostname, else its dashed IP (127-10-0-2.<service>...): CoreDNS's
  endpointHostname; SRV targets those names, PTR only exists for endpoints with a hostname;
- a Service with a ClusterIP answers its name with that IP (SRV and PTR name the Service), and
  has no per-endpoint names;
- no Service: nothing under its name (NXDOMAIN).
"""

from __future__ import annotations

import ipaddress

from ssdns.sandbox.world import Endpoint, World, endpoints

SCHEMA_VERSION = "1.1.0"

Records = dict[str, dict[str, list[str]]]


def published(world: World) -> list[Endpoint]:
    """Endpoints with DNS records: ready (CoreDNS publishes only ready endpoints) and not faulted out."""
    return [e for e in endpoints(world) if e.ready and e.in_dns]


def endpoint_label(e: Endpoint) -> str:
    """CoreDNS endpointHostname: the hostname, else the IP with '.' and ':' made '-'."""
    if e.hostname:
        return e.hostname
    label = e.dns_ip.replace(".", "-").replace(":", "-")
    return label + "0" if label.endswith("-") else label


def _rdtype(ip: str) -> str:
    return "AAAA" if ipaddress.ip_address(ip).version == 6 else "A"


def records(world: World) -> Records:
    """The records of the world's Service and of its neighbours' (one DNS server serves them all)."""
    out = _records(world)
    for n in world.neighbours:
        for owner, types in _records(n).items():
            for rdtype, values in types.items():
                have = out.setdefault(owner, {}).setdefault(rdtype, [])
                have += [v for v in values if v not in have]
    return out


def _records(world: World) -> Records:
    out: Records = {}

    def add(name: str, rdtype: str, value: str) -> None:
        values = out.setdefault(name.lower(), {}).setdefault(rdtype, [])
        if value not in values:
            values.append(value)

    add(f"dns-version.{world.zone}.", "TXT", f'"{SCHEMA_VERSION}"')
    svc = world.svc
    if svc is None:
        return out
    svc_fqdn = f"{svc.name}.{world.namespace}.svc.{world.zone}."
    srv_name = f"_{world.port_name}._{world.proto}.{svc_fqdn}" if world.port_name else None
    if svc.cluster_ip:
        add(svc_fqdn, _rdtype(svc.cluster_ip), svc.cluster_ip)
        for ip in world.extra_service_ips:
            add(svc_fqdn, _rdtype(ip), ip)
        if srv_name:
            add(srv_name, "SRV", f"0 100 {world.port} {svc_fqdn}")
        add(ipaddress.ip_address(svc.cluster_ip).reverse_pointer + ".", "PTR", svc_fqdn)
        return out

    eps = published(world)
    also_behind = {p.name: p.also_behind for p in world.pods if p.also_behind}
    targets = []
    for e in eps:
        ip = e.dns_ip
        add(svc_fqdn, _rdtype(ip), ip)
        name = f"{endpoint_label(e)}.{svc_fqdn}"
        add(name, _rdtype(ip), ip)
        targets.append(name)
        if e.hostname:
            add(ipaddress.ip_address(ip).reverse_pointer + ".", "PTR", name)
        if e.pod in also_behind:  # fault: a second headless Service selects the pod; there it has no
            other = e.dns_ip.replace(".", "-").replace(":", "-")  # hostname, so CoreDNS names it by its IP
            add(ipaddress.ip_address(ip).reverse_pointer + ".", "PTR",
                f"{other}.{also_behind[e.pod]}.{world.namespace}.svc.{world.zone}.")
    for ip in world.extra_service_ips:
        add(svc_fqdn, _rdtype(ip), ip)
    if targets and srv_name:
        weight = 100 // len(targets)  # CoreDNS: priority 0, weight 100/N
        for name in targets:
            add(srv_name, "SRV", f"0 {weight} {world.port} {name}")
    return out
