"""An emulated headless Service on loopback: a CoreDNS-like DNS server and echo pods, one world."""

from __future__ import annotations

from ssdns.sandbox.dnsserver import DnsServer
from ssdns.sandbox.faults import apply_fault
from ssdns.sandbox.pods import EchoPods
from ssdns.sandbox.world import World, make_world
from ssdns.target import Nameserver, Target

DNS_HOST = "127.54.0.1"

__all__ = ["Sandbox", "World", "make_world", "apply_fault"]


class Sandbox:
    """`async with Sandbox(make_world(3)) as sb:` then check `sb.target()`."""

    def __init__(self, world: World, dns_host: str = DNS_HOST, dns_port: int = 0):
        self.world = world
        self.dns = DnsServer(world, dns_host, dns_port)
        self.pods = EchoPods(world)

    async def start(self) -> "Sandbox":
        await self.pods.start()
        await self.dns.start()
        return self

    async def stop(self) -> None:
        await self.dns.stop()
        await self.pods.stop()

    async def __aenter__(self) -> "Sandbox":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def sync(self) -> None:
        """Apply world changes to the listeners (DNS reads the world on every query)."""
        await self.pods.sync()

    @property
    def nameserver(self) -> Nameserver:
        return Nameserver(self.dns.host, self.dns.port)

    def target(self, **overrides) -> Target:
        w = self.world
        base = dict(service=w.service, namespace=w.namespace, zone=w.zone, nameservers=(self.nameserver,),
                    statefulset=w.statefulset, replicas=len(w.pods), port_name=w.port_name, timeout=5.0)
        base.update(overrides)
        return Target(**base)

    def check_args(self) -> list[str]:
        """The `ssdns check` arguments a person would type against this sandbox."""
        w = self.world
        return ["check", "--service", w.service, "--namespace", w.namespace, "--statefulset", w.statefulset,
                "--replicas", str(len(w.pods)), "--port-name", w.port_name, "--cluster-domain", w.zone,
                "--nameserver", str(self.nameserver)]
