"""The command line as data: one typed, frozen options object per command, built once from what
argparse parsed. Commands read these, never the argparse Namespace, and change nothing in them.

Building does no validation beyond argparse's own (types, choices): what needs the machine (files,
resolv.conf) or several options together is checked where the command turns options into a Target.
Standard library only: `ssdns --help` stays light.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ssdns.target import ApiOptions


@dataclass(frozen=True)
class Outputs:
    """How results leave the process: the report on stdout, and the unattended outputs."""

    format: str = "text"
    color: str = "auto"
    rows: int | None = 100  # table rows before the table is summarised; None: every pod
    junit: str | None = None
    metrics_file: str | None = None
    pushgateway: str | None = None
    termination_log: str | None = None

    @property
    def unattended(self) -> bool:
        return bool(self.junit or self.metrics_file or self.pushgateway or self.termination_log)


@dataclass(frozen=True)
class TargetArgs:
    """What to check, as typed: turned into a Target (with resolv.conf defaults) by the command."""

    service: str | None = None
    namespace: str | None = None
    statefulset: str | None = None
    replicas: int | None = None
    first_ordinal: int = 0
    cluster_domain: str | None = None
    nameservers: tuple[str, ...] = ()
    api: ApiOptions = field(default_factory=lambda: _api("auto"))
    port_name: str | None = None
    protocol: str = "tcp"
    port: int | None = None
    path: str = "/"
    expect: str = "{pod}"
    match: str = "exact"
    http: bool = True
    resolvers: str = "path"  # --resolvers, --transport, --dns-service, --nodelocal (check and watch)
    transport: str = "udp"
    dns_service: str | None = None
    nodelocal: str | None = None


@dataclass(frozen=True)
class WorldArgs:
    """The sandbox's emulated StatefulSet (demo and sandbox)."""

    pods: int = 3
    faults: tuple[str, ...] = ()
    pod_management_policy: str = "OrderedReady"
    terminate_delay: float = 0.1
    ready_delay: float = 0.3
    dns_delay: float = 0.3
    statefulsets: int = 1  # web, web-b, web-c, ...: several, for check --all (sandbox/fleet.py)


@dataclass(frozen=True)
class FleetArgs:
    """check --all / -l / -A / --exclude: many StatefulSets in one run."""

    all: bool = False
    selector: str | None = None
    all_namespaces: bool = False
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckOptions:
    target: TargetArgs
    outputs: Outputs
    timeout: float
    started: float
    state: str | None = None
    history: int = 20
    fleet: FleetArgs | None = None  # None: one StatefulSet or Service

    @property
    def deadline(self) -> float:
        return self.started + self.timeout


@dataclass(frozen=True)
class HistoryOptions:
    state: str
    namespace: str | None
    api: ApiOptions
    last: int | None
    format: str
    timeout: float
    started: float
    statefulset: str | None = None  # NAME (in -n's namespace) or NS/NAME: one of check --all's histories

    @property
    def deadline(self) -> float:
        return self.started + self.timeout


@dataclass(frozen=True)
class DemoOptions:
    world: WorldArgs
    outputs: Outputs
    timeout: float
    started: float
    http: bool = True
    api: bool = True
    resolvers: str = "path"
    transport: str = "udp"

    @property
    def deadline(self) -> float:
        return self.started + self.timeout


@dataclass(frozen=True)
class SandboxOptions:
    world: WorldArgs
    dns_host: str
    dns_port: int | None
    api: bool
    kubeconfig_out: str
    duration: float | None


@dataclass(frozen=True)
class RestartOptions:
    target: TargetArgs
    outputs: Outputs
    timeout: float
    started: float
    ordinals: tuple[int, ...] | None  # None: every pod (--all)
    yes: bool

    @property
    def deadline(self) -> float:
        return self.started + self.timeout


@dataclass(frozen=True)
class ScaleOptions:
    target: TargetArgs
    outputs: Outputs
    timeout: float
    started: float
    to: int
    yes: bool

    @property
    def deadline(self) -> float:
        return self.started + self.timeout


@dataclass(frozen=True)
class WatchOptions:
    target: TargetArgs
    timeout: float
    started: float
    interval: float
    probe_interval: float
    settle: float
    give_up: float
    listen: str
    state: str | None = None
    history: int = 20
    labels: tuple[str, ...] = ()  # --metric-label KEY=VALUE


Options = WatchOptions | CheckOptions | HistoryOptions | DemoOptions | SandboxOptions | RestartOptions | ScaleOptions


def _api(mode: str, kubeconfig: str | None = None, context: str | None = None) -> ApiOptions:
    from ssdns.target import (
        ApiOptions,  # imported when options are built, not for --help
    )

    return ApiOptions(mode, kubeconfig, context)


def outputs(ns: argparse.Namespace) -> Outputs:
    return Outputs(format=ns.output, color=ns.color, rows=ns.rows, junit=ns.junit, metrics_file=ns.metrics_file,
                   pushgateway=ns.pushgateway, termination_log=ns.termination_log)


def target_args(ns: argparse.Namespace, service_pos: str | None = None) -> TargetArgs:
    service = ns.service
    if service_pos is not None and service is not None and service_pos != service:
        from ssdns.errors import UsageError

        raise UsageError(f"two Services given ({service_pos!r} and --service {service!r}): give one")
    return TargetArgs(
        service=service or service_pos, namespace=ns.namespace, statefulset=ns.statefulset, replicas=ns.replicas,
        first_ordinal=ns.first_ordinal, cluster_domain=ns.cluster_domain, nameservers=tuple(ns.nameserver or ()),
        api=_api(ns.api, ns.kubeconfig, ns.context), port_name=ns.port_name, protocol=ns.protocol,
        port=ns.port, path=ns.path, expect=ns.expect, match=ns.match, http=ns.http,
        # every resolver: on `check` and `watch` (restart-test and scale-test do not take these)
        resolvers=getattr(ns, "resolvers", "path"), transport=getattr(ns, "transport", "udp"),
        dns_service=getattr(ns, "dns_service", None), nodelocal=getattr(ns, "nodelocal", None))


def world_args(ns: argparse.Namespace) -> WorldArgs:
    return WorldArgs(pods=ns.pods, faults=tuple(ns.fault), pod_management_policy=ns.pod_management_policy,
                     terminate_delay=ns.terminate_delay, ready_delay=ns.ready_delay, dns_delay=ns.dns_delay,
                     statefulsets=ns.statefulsets)


def check(ns: argparse.Namespace, started: float) -> CheckOptions:
    fleet = None
    if ns.all or ns.selector is not None or ns.all_namespaces or ns.exclude:
        fleet = FleetArgs(ns.all, ns.selector, ns.all_namespaces, tuple(ns.exclude))
    return CheckOptions(target_args(ns, ns.service_pos), outputs(ns), ns.timeout, started, ns.state, ns.history,
                        fleet)


def history(ns: argparse.Namespace, started: float) -> HistoryOptions:
    return HistoryOptions(ns.state, ns.namespace, _api("on", ns.kubeconfig, ns.context), ns.last, ns.output,
                          ns.timeout, started, ns.statefulset)


def demo(ns: argparse.Namespace, started: float) -> DemoOptions:
    return DemoOptions(world_args(ns), outputs(ns), ns.timeout, started, ns.http, ns.api, ns.resolvers, ns.transport)


def sandbox(ns: argparse.Namespace, started: float) -> SandboxOptions:
    return SandboxOptions(world_args(ns), ns.dns_host, ns.dns_port, ns.api, ns.kubeconfig_out, ns.duration)


def restart(ns: argparse.Namespace, started: float) -> RestartOptions:
    ordinals = None if ns.all else tuple(ns.ordinal)
    return RestartOptions(target_args(ns), outputs(ns), ns.timeout, started, ordinals, ns.yes)


def scale(ns: argparse.Namespace, started: float) -> ScaleOptions:
    return ScaleOptions(target_args(ns), outputs(ns), ns.timeout, started, ns.to, ns.yes)


def watch(ns: argparse.Namespace, started: float) -> WatchOptions:
    return WatchOptions(target_args(ns), ns.timeout, started, ns.interval, ns.probe_interval, ns.settle, ns.give_up,
                        ns.listen, ns.state, ns.history, tuple(ns.metric_label))
