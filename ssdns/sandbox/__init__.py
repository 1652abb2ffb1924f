"""An emulated StatefulSet on loopback: a CoreDNS-like DNS server, echo pods, a Kubernetes API and
the StatefulSet controller, all rendering one World."""

from __future__ import annotations

from pathlib import Path

from ssdns.sandbox.api import API_HOST, KubeApi, kubeconfig_text
from ssdns.sandbox.controller import Controller
from ssdns.sandbox.dnsserver import DnsServer
from ssdns.sandbox.faults import apply_fault
from ssdns.sandbox.pods import EchoPods
from ssdns.sandbox.world import World, make_world
from ssdns.target import Nameserver, Target

DNS_HOST = "127.54.0.1"

KUBE_CONTEXT = "ssdns-sandbox"

__all__ = ["Controller", "KubeApi", "Sandbox", "World", "apply_fault", "make_world"]


class Sandbox:
    """`async with Sandbox(make_world(3)) as sb:` then check `sb.target()`; the API is at `sb.api_url`
    (`sb.write_kubeconfig(path)` for the official client), its requests in `sb.api.requests`.

    The StatefulSet controller (`sb.controller`) runs while the sandbox does: pods deleted through
    the API come back, scaling moves pods. Its timings are the World's (terminate_delay,
    start_delay, ready_delay, dns_delay, in seconds); the keyword arguments of the same names
    override them, as does pod_management_policy."""

    def __init__(self, world: World, dns_host: str = DNS_HOST, dns_port: int = 0, *, api: bool = True,
                 api_host: str = API_HOST, api_port: int = 0, controller: bool = True,
                 terminate_delay: float | None = None, start_delay: float | None = None,
                 ready_delay: float | None = None, dns_delay: float | None = None,
                 pod_management_policy: str | None = None):
        for name, value in (("terminate_delay", terminate_delay), ("start_delay", start_delay),
                            ("ready_delay", ready_delay), ("dns_delay", dns_delay)):
            if value is not None:
                if value < 0:
                    raise ValueError(f"{name} must be >= 0 seconds, not {value!r}")
                setattr(world, name, float(value))
        if pod_management_policy is not None:
            if pod_management_policy not in ("OrderedReady", "Parallel"):
                raise ValueError(f"pod_management_policy must be OrderedReady or Parallel, not {pod_management_policy!r}")
            world.pod_management_policy = world.sts.pod_management_policy = pod_management_policy
        self.world = world
        self.dns = DnsServer(world, dns_host, dns_port)
        self.replicas: list[DnsServer] = []  # kube-system/kube-dns's replicas, once started (replicas.py)
        self.pods = EchoPods(world)
        self.controller: Controller | None = Controller(world, self.pods.sync) if controller else None
        self.api: KubeApi | None = KubeApi(world, api_host, api_port, controller=self.controller) if api else None

    async def start(self) -> "Sandbox":
        await self.pods.start()
        await self.dns.start()
        await self._start_replicas()
        if self.api is not None:
            await self.api.start()
        if self.controller is not None:
            await self.controller.start()
        return self

    async def stop(self) -> None:
        if self.api is not None:
            await self.api.stop()  # ends open watches first
        if self.controller is not None:
            await self.controller.stop()
        for server in self.replicas:
            await server.stop()
        await self.dns.stop()
        await self.pods.stop()

    async def __aenter__(self) -> "Sandbox":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def sync(self) -> None:
        """Apply world changes made by hand (a test's) at once: the echo pods re-bind, DNS serves the
        world as it is now (without dns_delay; not with dns-stuck), the controller looks again."""
        await self.pods.sync()
        self.dns.answerer.catch_up()
        for server in self.replicas:
            server.answerer.catch_up()
        if self.controller is not None:
            self.controller.kick()

    async def _start_replicas(self) -> None:
        from ssdns.sandbox.replicas import servers

        self.world.dns_port = self.dns.port  # what the kube-dns EndpointSlice says
        for server in servers(self.world, self.dns.port):
            try:
                await server.start()
            except OSError as exc:
                raise OSError(f"DNS replica {server.host}:{server.port}: {exc.strerror or exc}") from None
            self.replicas.append(server)

    @property
    def replica_nameservers(self) -> list[Nameserver]:
        """Every DNS replica's address, also those that are down (the EndpointSlice lists them)."""
        return [Nameserver(r.ip, self.dns.port) for r in self.world.dns_replicas]

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
        base = Target(service=w.service, namespace=w.namespace, zone=w.zone, nameservers=(self.nameserver,),
                      statefulset=w.statefulset, replicas=len(w.pods), port_name=w.port_name, timeout=5.0)
        return base.with_(**overrides)

    def fleet_check_args(self) -> list[str]:
        """The `ssdns check --all` arguments for every StatefulSet of the sandbox (with --kubeconfig added)."""
        w = self.world
        return ["check", "--all", "--namespace", w.namespace, "--cluster-domain", w.zone, "--nameserver",
                str(self.nameserver)]

    def check_args(self) -> list[str]:
        """The `ssdns check` arguments a person would type against this sandbox."""
        w = self.world
        return ["check", "--service", w.service, "--namespace", w.namespace, "--statefulset", w.statefulset,
                "--replicas", str(len(w.pods)), "--port-name", w.port_name, "--cluster-domain", w.zone,
                "--nameserver", str(self.nameserver), "--port", str(w.port)]
