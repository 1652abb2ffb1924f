"""The options of every command but check: history, demo, sandbox, restart-test, scale-test and watch (see
options.py for what options are). Apart from options.py so that `check`, which a CronJob may run every
minute, does not create their classes at start-up (a frozen dataclass costs about 1 ms to create).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ssdns.frozen import frozen
from ssdns.options import CheckOptions, Outputs, TargetArgs, api_options, outputs, target_args

if TYPE_CHECKING:
    from ssdns.target import ApiOptions


@frozen
class WorldArgs:
    """The sandbox's emulated StatefulSet (demo and sandbox)."""

    pods: int = 3
    faults: tuple[str, ...] = ()
    pod_management_policy: str = "OrderedReady"
    terminate_delay: float = 0.1
    ready_delay: float = 0.3
    dns_delay: float = 0.3
    statefulsets: int = 1  # web, web-b, web-c, ...: several, for check --all (sandbox/fleet.py)

@frozen
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

@frozen
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

@frozen
class SandboxOptions:
    world: WorldArgs
    dns_host: str
    dns_port: int | None
    api: bool
    kubeconfig_out: str
    duration: float | None

@frozen
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

@frozen
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

@frozen
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




def world_args(ns: argparse.Namespace) -> WorldArgs:
    return WorldArgs(pods=ns.pods, faults=tuple(ns.fault), pod_management_policy=ns.pod_management_policy,
                     terminate_delay=ns.terminate_delay, ready_delay=ns.ready_delay, dns_delay=ns.dns_delay,
                     statefulsets=ns.statefulsets)


def history(ns: argparse.Namespace, started: float) -> HistoryOptions:
    return HistoryOptions(ns.state, ns.namespace, api_options("on", ns.kubeconfig, ns.context), ns.last, ns.output,
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


Options = WatchOptions | CheckOptions | HistoryOptions | DemoOptions | SandboxOptions | RestartOptions | ScaleOptions
