"""An emulated StatefulSet on loopback: a CoreDNS-like DNS server, echo pods and a Kubernetes API,
all rendering one World."""

from __future__ import annotations

from pathlib import Path

from ssdns.sandbox.api import API_HOST, KubeApi, kubeconfig_text
from ssdns.sandbox.dnsserver import DnsServer
from ssdns.sandbox.faults import apply_fault
from ssdns.sandbox.pods import EchoPods
from ssdns.sandbox.world import World, make_world
from ssdns.target import Nameserver, Target

DNS_HOST = "127.54.0.1"

KUBE_CONTEXT = "ssdns-sandbox"

__all__ = ["Sandbox", "World", "make_world", "apply_fault", "KubeApi"]


class Sandbox:
    """`async with Sandbox(make_world(3)) as sb:` then check `sb.target()`; the API is at `sb.api_url`
    (`sb.write_kubeconfig(path)` for the official client), its requests in `sb.api.requests`."""

    def __init__(self, world: World, dns_host: str = DNS_HOST, dns_port: int = 0, *, api: bool = True,
                 api_host: str = API_HOST, api_port: int = 0):
        self.world = world
        self.dns = DnsServer(world, dns_host, dns_port)
        self.pods = EchoPods(world)
        self.api: KubeApi | None = KubeApi(world, api_host, api_port) if api else None

    async def start(self) -> "Sandbox":
        await self.pods.start()
        await self.dns.start()
        if self.api is not None:
            await self.api.start()
        return self

    async def stop(self) -> None:
        if self.api is not None:
            await self.api.stop()
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
    def api_url(self) -> str | None:
        """http://127.54.0.1:PORT once started; None when the sandbox runs without an API."""
        return self.api.url if self.api is not None and self.api.port else None

    def write_kubeconfig(self, path) -> Path:
        """Write a kubeconfig for the sandbox's API (context ssdns-sandbox, namespace = the world's,
        a dummy token): `kubernetes.config.load_kube_config(config_file=path)` then works."""
        if self.api_url is None:
            raise RuntimeError("the sandbox's API is not running (Sandbox(world, api=True), then start())")
        path = Path(path)
        path.write_text(kubeconfig_text(self.api_url, self.world.namespace, context=KUBE_CONTEXT))
        return path

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
