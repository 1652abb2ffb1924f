"""The command line as data: one typed, frozen options object per command, built once from what
argparse parsed. Commands read these, never the argparse Namespace, and change nothing in them.
Here: check's options and the parts other commands share; the other commands' are in other_options.py,
so that check, which a CronJob may run every minute, does not create their classes.

Building does no validation beyond argparse's own (types, choices): what needs the machine (files,
resolv.conf) or several options together is checked where the command turns options into a Target.
Standard library only: `ssdns --help` stays light.
"""

from __future__ import annotations

import argparse
from dataclasses import field
from typing import TYPE_CHECKING

from ssdns.frozen import frozen

if TYPE_CHECKING:
    from ssdns.target import ApiOptions


@frozen
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


@frozen
class TargetArgs:
    """What to check, as typed: turned into a Target (with resolv.conf defaults) by the command."""

    service: str | None = None
    namespace: str | None = None
    statefulset: str | None = None
    replicas: int | None = None
    first_ordinal: int = 0
    cluster_domain: str | None = None
    nameservers: tuple[str, ...] = ()
    api: ApiOptions = field(default_factory=lambda: api_options("auto"))
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



@frozen
class FleetArgs:
    """check --all / -l / -A / --exclude: many StatefulSets in one run."""

    all: bool = False
    selector: str | None = None
    all_namespaces: bool = False
    exclude: tuple[str, ...] = ()


@frozen
class CheckOptions:
    """ssdns check: one StatefulSet or Service, or many with `fleet`."""

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








def api_options(mode: str, kubeconfig: str | None = None, context: str | None = None) -> ApiOptions:
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
        api=api_options(ns.api, ns.kubeconfig, ns.context), port_name=ns.port_name, protocol=ns.protocol,
        port=ns.port, path=ns.path, expect=ns.expect, match=ns.match, http=ns.http,
        # every resolver: on `check` and `watch` (restart-test and scale-test do not take these)
        resolvers=getattr(ns, "resolvers", "path"), transport=getattr(ns, "transport", "udp"),
        dns_service=getattr(ns, "dns_service", None), nodelocal=getattr(ns, "nodelocal", None))


def check(ns: argparse.Namespace, started: float) -> CheckOptions:
    fleet = None
    if ns.all or ns.selector is not None or ns.all_namespaces or ns.exclude:
        fleet = FleetArgs(ns.all, ns.selector, ns.all_namespaces, tuple(ns.exclude))
    return CheckOptions(target_args(ns, ns.service_pos), outputs(ns), ns.timeout, started, ns.state, ns.history,
                        fleet)
