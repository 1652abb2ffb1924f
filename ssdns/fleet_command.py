"""`ssdns check --all | -l SELECTOR | -A [--exclude NS/NAME]`: options in, one FleetResult, its outputs, the
worst exit code. Every way it cannot start is one line with a documented exit code: options that do not
go together (2), no API (4), a selector the API refuses (2), nothing selected (5)."""

from __future__ import annotations

import sys
import time
from dataclasses import replace

from ssdns.errors import ApiUnavailable, UsageError
from ssdns.options import CheckOptions, Outputs


def selection(opts: CheckOptions):
    """The Selection the options ask for; every combination that makes no sense is a UsageError."""
    from ssdns.fleet import Selection
    from ssdns.target import check_label, default_namespace

    f = opts.fleet
    assert f is not None
    _refuse_combinations(opts)
    namespace = None if f.all_namespaces else check_label(opts.target.namespace or default_namespace(), "namespace")
    return Selection(namespace, f.selector.strip() if f.selector else None, _excluded(f.exclude, namespace))


def _refuse_combinations(opts: CheckOptions) -> None:
    f, t = opts.fleet, opts.target
    assert f is not None
    single = [flag for flag, given in (("--service", t.service), ("--statefulset", t.statefulset),
                                       ("--replicas", t.replicas is not None)) if given]
    if single:
        raise UsageError(f"--all, --selector and -A check the StatefulSets they select: drop {', '.join(single)}")
    if not (f.all or f.selector is not None or f.all_namespaces):
        raise UsageError("--exclude leaves StatefulSets out of --all, --selector or -A: give one of those")
    if t.api.mode == "off":
        raise UsageError("--all, --selector and -A find the StatefulSets through the Kubernetes API: drop --api off")
    if f.all_namespaces and t.namespace:
        raise UsageError("-A checks every namespace: drop -n/--namespace (or -A)")
    if f.selector is not None and not f.selector.strip():
        raise UsageError("--selector '' selects nothing: give labels (app=db), or use --all")


def _excluded(items: tuple[str, ...], namespace: str | None) -> frozenset[str]:
    """--exclude NS/NAME (NAME alone: the run's namespace), each part a valid name."""
    from ssdns.target import check_label

    out = set()
    for item in items:
        ns, _, name = item.rpartition("/")
        if not ns:
            if namespace is None:
                raise UsageError(f"--exclude {item!r}: with -A give NAMESPACE/NAME")
            ns = namespace
        check_label(ns, "--exclude namespace")
        check_label(name, "--exclude StatefulSet name")
        out.add(f"{ns}/{name}")
    return frozenset(out)


def cmd_fleet(opts: CheckOptions) -> int:
    from ssdns.aio import run

    from ssdns import kube
    from ssdns.commands import build_target, check_output_options
    from ssdns.fleet import run_fleet
    from ssdns.target import ApiOptions

    sel = selection(opts)
    check_output_options(opts.outputs)
    # The other options (zone, nameservers, HTTP) are validated as for one StatefulSet; the name is each one's.
    base = build_target(replace(opts.target, statefulset="any", namespace=sel.namespace or "default"),
                        opts.timeout, opts.deadline).with_(statefulset=None)
    api = ApiOptions("on", opts.target.api.kubeconfig, opts.target.api.context)
    if not kube.credentials_available(api):
        raise ApiUnavailable("--all, --selector and -A need the Kubernetes API: no in-cluster service account and "
                             "no kubeconfig (give --kubeconfig, or run in a pod with the ssdns ServiceAccount)")
    store = None
    if opts.state is not None:  # one history per StatefulSet, in the run's namespace (-A: ssdns's own)
        from ssdns.state import open_store
        from ssdns.target import default_namespace

        store = open_store(opts.state, sel.namespace or default_namespace(), api, opts.deadline)
    fr = run(run_fleet(base, api, sel, opts.deadline), 0)  # the standard loop, as ever; a signal cancels the run
    if store is not None:
        from ssdns.fleet_state import apply_fleet_state

        fr = apply_fleet_state(fr, store, max(1, opts.history))
    emit_fleet(fr, opts.outputs, opts.deadline)
    return fr.exit_code


def emit_fleet(fr, out: Outputs, deadline: float) -> None:
    from ssdns.commands import to_stdout, use_colour
    from ssdns.fleet_report import render_fleet_text, write_fleet_json

    if out.format == "json":
        to_stdout(write_fleet_json, fr, sys.stdout)
    else:
        to_stdout(print, render_fleet_text(fr, use_colour(out.color, sys.stdout), max_rows=out.rows))
    if out.junit:
        from ssdns.fleet_report import write_fleet_junit

        write_fleet_junit(fr, out.junit)
    if out.metrics_file:
        from ssdns.fleet_report import write_fleet_metrics

        write_fleet_metrics(fr, out.metrics_file)
    if out.pushgateway:
        from ssdns.commands import PUSH_FLOOR, within
        from ssdns.fleet_report import push_fleet_metrics

        left = max(PUSH_FLOOR, deadline - time.monotonic())
        within(left, f"push metrics to the Pushgateway at {out.pushgateway.split('@')[-1]}", push_fleet_metrics,
               fr, out.pushgateway, timeout=left)
    if out.termination_log:
        from ssdns.fleet_report import summary_line
        from ssdns.termination import write_line

        write_line(summary_line(fr), out.termination_log)


def demo_fleet(world, opts) -> int:
    """`ssdns demo --statefulsets N`: check --all against the sandbox's N StatefulSets, in-process, through its
    Kubernetes API (as a person would run it against `ssdns sandbox --statefulsets N`)."""
    from ssdns.aio import run
    import tempfile

    from ssdns.commands import resolver_choice
    from ssdns.fleet import Selection, run_fleet
    from ssdns.sandbox import Sandbox
    from ssdns.target import ApiOptions

    async def go():
        async with Sandbox(world, api=True) as sb:
            base = sb.target(http=opts.http, timeout=opts.timeout, deadline=opts.deadline, service=None,
                             statefulset=None, replicas=None,
                             resolvers=resolver_choice(opts.resolvers, opts.transport))
            with tempfile.TemporaryDirectory(prefix="ssdns-demo-") as tmp:
                kubeconfig = str(sb.write_kubeconfig(f"{tmp}/kubeconfig"))
                return await run_fleet(base, ApiOptions("on", kubeconfig), Selection(world.namespace),
                                       opts.deadline)

    fr = run(go(), 0)
    emit_fleet(fr, opts.outputs, opts.deadline)
    return fr.exit_code
