"""The commands: validate arguments into a Target, run, render, exit code.

Each command imports what it uses, so `ssdns --help` and a DNS-only check stay light.
"""

from __future__ import annotations

import os
import sys

from ssdns.errors import OK, UsageError


def target_from_args(args):
    """Validate the check options into a Target; every problem is a UsageError with one line."""
    import re

    from ssdns.target import (Target, check_label, check_port_name, check_zone, default_namespace,
                              parse_nameserver, read_resolv_conf, zone_from_search)

    service = args.service or args.service_pos
    if args.service and args.service_pos and args.service != args.service_pos:
        raise UsageError(f"two Services given ({args.service_pos!r} and --service {args.service!r}): give one")
    if not service and not (args.statefulset and args.api != "off"):
        raise UsageError("no Service given: use --service NAME (the StatefulSet's headless Service), "
                         "or --statefulset NAME with API access")
    if service:
        check_label(service, "Service name", rfc1035=True)
    namespace = check_label(args.namespace or default_namespace(), "namespace")
    if args.statefulset:
        check_label(args.statefulset, "StatefulSet name")
    if args.port_name:
        check_port_name(args.port_name)
    resolv = read_resolv_conf()
    if args.cluster_domain:
        zone = check_zone(args.cluster_domain)
    else:
        zone = zone_from_search(resolv.search) or "cluster.local"
    if args.nameserver:
        nameservers = tuple(parse_nameserver(n) for n in args.nameserver)
    elif resolv.nameservers:
        nameservers = resolv.nameservers
    else:
        raise UsageError("no nameserver: /etc/resolv.conf lists none; give --nameserver HOST[:PORT]")
    if not args.path.startswith("/"):
        raise UsageError(f"--path {args.path!r} must start with '/'")
    check_output_options(args)
    if args.kubeconfig and not os.path.isfile(args.kubeconfig):
        raise UsageError(f"--kubeconfig {args.kubeconfig!r}: no such file")
    if args.replicas is not None and not args.statefulset:
        raise UsageError("--replicas needs --statefulset NAME (the pod name prefix)")
    target = Target(service=service, namespace=namespace, zone=zone, nameservers=nameservers,
                    statefulset=args.statefulset, replicas=args.replicas, first_ordinal=args.first_ordinal,
                    port=args.port, port_name=args.port_name, proto=args.protocol, path=args.path, expect=args.expect,
                    match=args.match, http=args.http, timeout=args.timeout)
    from ssdns.checks.http import expected_body

    try:
        sample = expected_body(target, "web-0", 0)
        if args.match == "regex":
            re.compile(sample)
    except (KeyError, IndexError, ValueError) as exc:
        raise UsageError(f"--expect {args.expect!r}: unknown field or bad template ({exc}); "
                         "use {pod} {fqdn} {ordinal} {service} {namespace} {statefulset}") from None
    except re.error as exc:
        raise UsageError(f"--expect {args.expect!r} is not a valid regular expression: {exc}") from None
    return target


def use_colour(choice: str, stream) -> bool:
    if choice != "auto":
        return choice == "always"
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


def emit(result, args) -> int:
    """Print the report on stdout, then write the unattended outputs; all render the same Result."""
    from ssdns.errors import FAILED
    from ssdns.report import render_text, write_json

    if args.output == "json":
        write_json(result, sys.stdout)
    else:
        print(render_text(result, use_colour(args.color, sys.stdout)), flush=True)
    if getattr(args, "junit", None):
        from ssdns.junit import write_junit

        write_junit(result, args.junit)
    if getattr(args, "metrics_file", None) or getattr(args, "pushgateway", None):
        from ssdns import metrics

        if args.metrics_file:
            metrics.write_metrics_file(result, args.metrics_file)
        if args.pushgateway:
            metrics.push_metrics(result, args.pushgateway)
    if getattr(args, "termination_log", None):
        from ssdns.termination import write_termination_log

        write_termination_log(result, args.termination_log)
    return OK if result.ok else FAILED


def check_output_options(args) -> None:
    """Before the run: the outputs asked for can be written (their packages are there, the URL is one)."""
    import importlib.util

    wants = [("junit", "junitparser", "junit"), ("metrics_file", "prometheus_client", "metrics"),
             ("pushgateway", "prometheus_client", "metrics")]
    for option, module, extra in wants:
        if getattr(args, option, None) and importlib.util.find_spec(module) is None:
            flag = "--" + option.replace("_", "-")
            raise UsageError(f"{flag} needs the {module} package: pip install 'ssdns[{extra}]'")
    if getattr(args, "pushgateway", None) and not args.pushgateway.startswith(("http://", "https://")):
        raise UsageError(f"--pushgateway {args.pushgateway!r}: give an http:// or https:// URL")


def cmd_check(args) -> int:
    from ssdns.aio import run
    from ssdns.check import run_check

    from ssdns.target import ApiOptions

    target = target_from_args(args)
    api = ApiOptions(args.api, args.kubeconfig, args.context)
    store = None
    if args.state and args.state.startswith("configmap:") and args.api == "off":
        raise UsageError("--state configmap:NAME keeps state through the Kubernetes API: drop --api off, or use a file")
    if args.state:
        from ssdns.state import open_store

        store = open_store(args.state, target.namespace, api)
    result = run(run_check(target, api), target.replicas)  # uvloop for large runs; the Result kept out of the task
    if store is not None:
        from ssdns.state import apply_state

        result = apply_state(result, store, max(1, args.history))
    return emit(result, args)


def cmd_history(args) -> int:
    import json

    from ssdns.report import render_history
    from ssdns.state import open_store, validate
    from ssdns.target import ApiOptions, check_label, default_namespace

    namespace = check_label(args.namespace or default_namespace(), "namespace")
    store = open_store(args.state, namespace, ApiOptions("on", args.kubeconfig, args.context))
    doc = store.load()
    if doc is None:
        raise UsageError(f"{store.where} does not exist yet: run ssdns check --state {args.state} first")
    validate(doc, None, store.where)
    if args.output == "json":
        print(json.dumps(doc, indent=2))
    else:
        print(render_history(doc, store.where, args.last))
    return OK


def _have_kube() -> bool:
    import importlib.util

    return importlib.util.find_spec("kubernetes") is not None


def _world(args):
    from ssdns.sandbox import apply_fault, make_world

    world = make_world(args.pods, pod_management_policy=args.pod_management_policy,
                       terminate_delay=args.terminate_delay, ready_delay=args.ready_delay,
                       dns_delay=args.dns_delay)
    for spec in args.fault:
        apply_fault(world, spec)
    return world


def cmd_demo(args) -> int:
    import asyncio

    from ssdns.check import run_check
    from ssdns.sandbox import Sandbox

    import tempfile

    from ssdns.target import ApiOptions

    check_output_options(args)
    world = _world(args)
    use_api = args.api and _have_kube()

    async def go():
        async with Sandbox(world, api=use_api) as sb:
            if not use_api:
                result = await run_check(sb.target(http=args.http, timeout=args.timeout))
                if args.api:
                    result = result.adding(notes=["the sandbox's Kubernetes API is off: pip install 'ssdns[kube]' "
                                                  "to see the API cross-check too"])
                return result
            with tempfile.TemporaryDirectory(prefix="ssdns-demo-") as tmp:
                kubeconfig = str(sb.write_kubeconfig(f"{tmp}/kubeconfig"))
                api = ApiOptions("on", kubeconfig)
                return await run_check(sb.target(http=args.http, timeout=args.timeout), api)

    return emit(asyncio.run(go()), args)


def cmd_sandbox(args) -> int:
    import asyncio
    import signal

    from ssdns.sandbox import Sandbox

    world = _world(args)
    use_api = args.api and _have_kube()
    if args.api and not use_api:
        print("sandbox: no Kubernetes API (the kubernetes package is not installed: pip install 'ssdns[kube]')",
              file=sys.stderr)

    async def go():
        async with Sandbox(world, args.dns_host, args.dns_port or 0, api=use_api) as sb:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            print(f"sandbox: headless Service {world.service_fqdn} with {len(world.pods)} pods "
                  f"on 127.10.x.y port {world.port}; nameserver {sb.nameserver}", flush=True)
            extra = ["--api", "off"]  # without the sandbox's API, never fall back to the user's own kubeconfig
            if use_api:
                kubeconfig = sb.write_kubeconfig(args.kubeconfig_out)
                print(f"Kubernetes API at {sb.api_url}; kubeconfig written to {kubeconfig}", flush=True)
                extra = ["--kubeconfig", str(kubeconfig)]
            print("check it from another terminal with:\n  ssdns " + " ".join([*sb.check_args(), *extra]),
                  flush=True)
            try:
                await asyncio.wait_for(stop.wait(), args.duration)
            except asyncio.TimeoutError:
                pass
        return OK

    return asyncio.run(go())


def _disruptive(args):
    from ssdns.converge import Progress
    from ssdns.target import ApiOptions

    if not args.statefulset:
        raise UsageError(f"{args.command} needs --statefulset NAME")
    if args.api == "off":
        raise UsageError(f"{args.command} works through the Kubernetes API: drop --api off")
    args.service_pos = None
    target = target_from_args(args)
    return target, ApiOptions("on", args.kubeconfig, args.context), Progress(True)


def cmd_restart_test(args) -> int:
    import asyncio

    from ssdns.restart import restart_test

    target, api, progress = _disruptive(args)
    return emit(asyncio.run(restart_test(target, api, None if args.all else args.ordinal, args.yes, progress)), args)


def cmd_scale_test(args) -> int:
    import asyncio

    from ssdns.scale import scale_test

    target, api, progress = _disruptive(args)
    return emit(asyncio.run(scale_test(target, api, args.to, args.yes, progress)), args)


COMMANDS = {"check": cmd_check, "demo": cmd_demo, "sandbox": cmd_sandbox, "history": cmd_history,
            "restart-test": cmd_restart_test, "scale-test": cmd_scale_test}
