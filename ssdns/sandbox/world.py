"""The sandbox's single source of truth: one emulated StatefulSet behind one headless Service.

DNS, the echo pods (and the API, where present) all render this state, so they tell one
consistent story unless a fault says otherwise. Pure data and pure functions; no sockets.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

POD_NET = ipaddress.ip_network("127.10.0.0/16")  # pod IPs: every 127.x address is local on lo


@dataclass
class SandboxPod:
    name: str
    ordinal: int
    ip: str
    ready: bool = True
    answer_as: str | None = None  # fault: the pod answers HTTP with this name instead of its own
    in_dns: bool = True  # fault: False leaves the pod out of every DNS record
    http_up: bool = True  # fault: False means nothing listens on the pod's IP
    dns_ip: str | None = None  # fault: DNS gives this address for the pod instead of its own

    @property
    def published_ip(self) -> str:
        return self.dns_ip or self.ip


@dataclass
class World:
    namespace: str = "default"
    service: str = "nginx"
    statefulset: str = "web"
    zone: str = "cluster.local"
    port_name: str = "web"
    port: int = 0  # the echo pods' HTTP port; 0 until the sandbox binds one
    proto: str = "tcp"
    ttl: int = 5  # the CoreDNS kubernetes plugin's default TTL
    pods: list[SandboxPod] = field(default_factory=list)
    extra_service_ips: list[str] = field(default_factory=list)  # fault: stale IPs under the Service
    version: int = 0  # bumped on every change, so renderers can cache
    _next_ip: int = 1

    def pod(self, name: str) -> SandboxPod:
        for p in self.pods:
            if p.name == name:
                return p
        raise KeyError(name)

    def pod_by_ip(self, ip: str) -> SandboxPod | None:
        return next((p for p in self.pods if p.ip == ip), None)

    def allocate_ip(self) -> str:
        """A fresh pod IP, never reused within this sandbox (as a real pod network does)."""
        n = self._next_ip
        self._next_ip += 1
        if n % 256 == 0:  # skip .0 addresses
            return self.allocate_ip()
        if n >= POD_NET.num_addresses - 1:
            raise RuntimeError("sandbox pod network exhausted")
        return str(POD_NET.network_address + n)

    def changed(self) -> None:
        self.version += 1

    @property
    def service_fqdn(self) -> str:
        return f"{self.service}.{self.namespace}.svc.{self.zone}."

    def pod_fqdn(self, name: str) -> str:
        return f"{name}.{self.service}.{self.namespace}.svc.{self.zone}."


def make_world(replicas: int = 3, **kw) -> World:
    world = World(**kw)
    for i in range(replicas):
        world.pods.append(SandboxPod(f"{world.statefulset}-{i}", i, world.allocate_ip()))
    return world
