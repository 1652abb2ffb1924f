"""Command line: parse, validate into a Target, run, render, exit code.

Only argparse and the standard library load at start-up; each command imports what it uses.
"""

from __future__ import annotations

import argparse
import os
import sys

from ssdns import __version__
from ssdns.errors import OK, USAGE, SsdnsError, UsageError

EXIT_CODES = """exit codes:
  0  every check passed (warnings allowed)
  1  a check failed
  2  bad usage or input (the message says what to fix)
  3  could not run: no nameserver answered, or the deadline passed
  4  the Kubernetes API was required (--api on) but could not be used"""


FAULT_HELP = """faults (--fault, repeatable):
  wrong-name:POD=OTHER, missing-dns:POD, extra-ip[:IP], no-http:POD, shared-ip:POD=OTHER,
  dns-other-pod:POD=OTHER, not-ready:POD, publish-not-ready, stale-dns:POD, not-headless,
  pvc-pending:POD, api-forbidden[:RESOURCE], wrong-subdomain:POD, no-service, dns-servfail, dns-stuck,
  replacement-wrong-name:POD[=OTHER], replacement-new-volume:POD  (see the README for what each does)"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong, what to do) and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text} is out of range: use more than 0 and at most 3600 seconds")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 600:
        raise argparse.ArgumentTypeError(f"{text} is out of range: use 0 to 600 seconds")
    return value


def _count(limit: int):
    def parse(text: str) -> int:
        if not text.isdigit() or int(text) > limit:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 0 to {limit}")
        return int(text)
    return parse


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range: use a port from 1 to 65535")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = _Parser(prog="ssdns", description="Check the stable identity a StatefulSet promises: "
                "headless Service DNS, per-pod names, SRV and PTR, and each pod's HTTP identity.",
                epilog=EXIT_CODES, formatter_class=fmt)
    p.add_argument("--version", action="version", version=f"ssdns {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    c = sub.add_parser("check", help="check a headless Service and its pods", epilog=EXIT_CODES,
                       formatter_class=fmt, description="Check a headless Service's DNS records and each "
                       "pod's identity. Without --statefulset and --replicas, pods are discovered from DNS.")
    c.add_argument("service_pos", nargs="?", metavar="SERVICE", help="shortcut for --service")
    add_target_args(c)
    add_output_args(c)
    add_state_args(c)
    add_unattended_args(c)

    hi = sub.add_parser("history", help="show the stored snapshots as a timeline", formatter_class=fmt,
                        description="Show what --state stored: one line per run, with restarts, moves, "
                        "new IPs and identity breaks per pod, so flapping is visible.")
    hi.add_argument("--state", required=True, metavar="PATH|configmap:NAME")
    hi.add_argument("-n", "--namespace", help="namespace of the ConfigMap (default: the pod's own, else 'default')")
    hi.add_argument("--kubeconfig", metavar="PATH")
    hi.add_argument("--context")
    hi.add_argument("--last", type=_count(1000), default=None, metavar="N", help="show only the last N")
    hi.add_argument("-o", "--output", choices=("text", "json"), default="text")

    d = sub.add_parser("demo", help="run a check against a built-in emulated headless Service",
                       epilog=FAULT_HELP + "\n\n" + EXIT_CODES, formatter_class=fmt)
    add_sandbox_args(d)
    add_output_args(d)
    add_unattended_args(d)
    d.add_argument("--no-http", dest="http", action="store_false", help="check DNS only")
    d.add_argument("--no-api", dest="api", action="store_false",
                   help="check DNS and HTTP only (by default the sandbox also serves the Kubernetes API "
                   "and the check cross-checks it)")

    r = sub.add_parser("restart-test", help="delete pods and time how their identity comes back (disruptive)",
                       epilog=EXIT_CODES, formatter_class=fmt,
                       description="Delete the chosen pods one at a time (highest ordinal first), wait for each "
                       "replacement to be Ready, then until its DNS name, the Service's records and its HTTP "
                       "identity are right. Reports the time to each. Refuses without --yes.")
    add_target_args(r)
    who = r.add_mutually_exclusive_group(required=True)
    who.add_argument("--ordinal", type=_count(100000), action="append", metavar="N", help="a pod to restart (repeatable)")
    who.add_argument("--all", action="store_true", help="every pod, one at a time, highest ordinal first")
    r.add_argument("--yes", action="store_true", help="really delete the pods")
    add_output_args(r, timeout=300.0)
    add_unattended_args(r)

    sc = sub.add_parser("scale-test", help="scale down and back up, checking order, volumes and identity (disruptive)",
                        epilog=EXIT_CODES, formatter_class=fmt,
                        description="Scale the StatefulSet down to K, check the removed pods went in descending "
                        "order and kept their PVCs, scale back up, check ascending order (OrderedReady), that each "
                        "returned ordinal has its old volume and that DNS and HTTP identity hold. The original "
                        "replica count is always restored, also on failure or interruption. Refuses without --yes.")
    add_target_args(sc)
    sc.add_argument("--to", type=_count(100000), required=True, metavar="K", help="replicas to scale down to")
    sc.add_argument("--yes", action="store_true", help="really scale the StatefulSet")
    add_output_args(sc, timeout=300.0)
    add_unattended_args(sc)

    s = sub.add_parser("sandbox", help="run the emulated headless Service until interrupted",
                       formatter_class=fmt, epilog=FAULT_HELP, description="Start the emulated headless Service (a DNS "
                       "server answering as CoreDNS does, and echo pods on 127.10.x.y) and print how to "
                       "check it from another terminal.")
    add_sandbox_args(s)
    s.add_argument("--dns-host", default="127.54.0.1", help="DNS server address (default %(default)s)")
    s.add_argument("--dns-port", type=_port, default=None, help="DNS server port (default: a free port)")
    s.add_argument("--no-api", dest="api", action="store_false", help="do not serve the Kubernetes API")
    s.add_argument("--kubeconfig-out", metavar="PATH", default="ssdns-sandbox.kubeconfig",
                   help="where to write the kubeconfig for the sandbox's API (default %(default)s)")
    s.add_argument("--duration", type=_positive_float, default=None,
                   help="stop after this many seconds (default: run until interrupted)")
    return p


def add_target_args(c: argparse.ArgumentParser) -> None:
    g = c.add_argument_group("target")
    g.add_argument("-s", "--service", help="the headless Service's name")
    g.add_argument("-n", "--namespace", help="namespace (default: the pod's own namespace, else 'default')")
    g.add_argument("--statefulset", metavar="NAME", help="pod name prefix: pods are NAME-0, NAME-1, ...")
    g.add_argument("--replicas", type=_count(100000), metavar="N", help="expected pod count")
    g.add_argument("--first-ordinal", type=_count(100000), default=0, metavar="N",
                   help="the StatefulSet's spec.ordinals.start (default 0; read from the API when used)")
    g.add_argument("--cluster-domain", metavar="ZONE",
                   help="cluster domain (default: from the resolv.conf search list, else cluster.local)")
    g.add_argument("--nameserver", action="append", metavar="HOST[:PORT]",
                   help="nameserver to ask, repeatable (default: the resolv.conf nameservers)")
    k = c.add_argument_group("Kubernetes API")
    k.add_argument("--api", choices=("auto", "on", "off"), default="auto",
                   help="cross-check DNS against the API: auto (when credentials exist; a refused read is a "
                   "warning), on (required: exit 4 without it), off (default auto)")
    k.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig file (default: in-cluster service account, "
                   "else $KUBECONFIG or ~/.kube/config)")
    k.add_argument("--context", help="kubeconfig context")
    h = c.add_argument_group("records and identity")
    h.add_argument("--port-name", metavar="NAME", help="the Service's named port, to check SRV records")
    h.add_argument("--protocol", choices=("tcp", "udp", "sctp"), default="tcp", help="SRV protocol (default tcp)")
    h.add_argument("--port", type=_port, help="HTTP port (default: the SRV port when known, else 80)")
    h.add_argument("--path", default="/", help="HTTP path (default /)")
    h.add_argument("--expect", default="{pod}", metavar="TEMPLATE",
                   help="expected body; fields {pod} {fqdn} {ordinal} {service} {namespace} {statefulset} "
                   "(default {pod}: the body, stripped, equals the pod name)")
    h.add_argument("--match", choices=("exact", "contains", "regex"), default="exact",
                   help="how the body is compared with --expect (default exact)")
    h.add_argument("--no-http", dest="http", action="store_false", help="check DNS only")


def add_output_args(c: argparse.ArgumentParser, timeout: float = 10.0) -> None:
    g = c.add_argument_group("output")
    g.add_argument("-o", "--output", choices=("text", "json"), default="text", help="report format (default text)")
    g.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colour the table (auto: on a terminal, unless NO_COLOR is set)")
    g.add_argument("--timeout", type=_positive_float, default=timeout, metavar="SECONDS",
                   help=f"one deadline for the whole run (default {timeout:g})")


def add_unattended_args(c: argparse.ArgumentParser) -> None:
    g = c.add_argument_group("outputs for CronJobs and CI")
    g.add_argument("--junit", metavar="FILE", help="also write JUnit XML: one test case per check and subject")
    g.add_argument("--metrics-file", metavar="FILE",
                   help="also write Prometheus metrics for the node-exporter textfile collector")
    g.add_argument("--pushgateway", metavar="URL", help="also push the metrics to a Prometheus Pushgateway")
    g.add_argument("--termination-log", metavar="PATH", default="/dev/termination-log",
                   help="one-line verdict for `kubectl describe`, written only when PATH exists "
                   "(default %(default)s)")


def add_state_args(c: argparse.ArgumentParser) -> None:
    g = c.add_argument_group("state across runs")
    g.add_argument("--state", metavar="PATH|configmap:NAME",
                   help="compare with the previous run's snapshot, then save this one (a file, or a ConfigMap "
                   "in the namespace)")
    g.add_argument("--history", type=_count(1000), default=20, metavar="K",
                   help="snapshots to keep (default 20)")


def add_sandbox_args(c: argparse.ArgumentParser) -> None:
    c.add_argument("--pods", type=_count(5000), default=3, help="number of pods (default 3)")
    c.add_argument("--fault", action="append", default=[], metavar="FAULT",
                   help="inject a fault (repeatable); the faults are listed below")
    g = c.add_argument_group("StatefulSet controller timing (for restart-test and scale-test)")
    g.add_argument("--pod-management-policy", choices=("OrderedReady", "Parallel"), default="OrderedReady")
    g.add_argument("--terminate-delay", type=_seconds, default=0.1, metavar="S",
                   help="a deleted pod stays terminating this long (default 0.1)")
    g.add_argument("--ready-delay", type=_seconds, default=0.3, metavar="S",
                   help="a replacement is Ready this long after it is created (default 0.3)")
    g.add_argument("--dns-delay", type=_seconds, default=0.3, metavar="S",
                   help="DNS shows a change this long after the API does: TTL and caches (default 0.3)")


def target_from_args(args: argparse.Namespace):
    """Validate the check options into a Target; every problem is a UsageError with one line."""
    import re

    from ssdns.target import (Target, check_label, check_zone, default_namespace, parse_nameserver,
                              read_resolv_conf, zone_from_search)

    notes = []
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
        check_label(args.port_name, "port name")
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
                    port=args.port,
                    port_name=args.port_name, proto=args.protocol, path=args.path, expect=args.expect,
                    match=args.match, http=args.http, timeout=args.timeout, notes=tuple(notes))
    from ssdns.compare import expected_body

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


def emit(result, args, convergence: list[dict] | None = None) -> int:
    """Print the report on stdout, then write the unattended outputs; all render the same Result."""
    from ssdns.errors import FAILED
    from ssdns.report import render_json, render_text

    if args.output == "json":
        print(render_json(result), flush=True)
    else:
        print(render_text(result, use_colour(args.color, sys.stdout)), flush=True)
    if getattr(args, "junit", None):
        from ssdns.junit import write_junit

        write_junit(result, args.junit)
    if getattr(args, "metrics_file", None) or getattr(args, "pushgateway", None):
        from ssdns import metrics

        if args.metrics_file:
            metrics.write_metrics_file(result, args.metrics_file, convergence=convergence)
        if args.pushgateway:
            metrics.push_metrics(result, args.pushgateway, convergence=convergence)
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
    import asyncio

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
    result = asyncio.run(run_check(target, api))
    if store is not None:
        from ssdns.state import apply_state

        apply_state(result, store, max(1, args.history))
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
                    result.notes.append("the sandbox's Kubernetes API is off: pip install 'ssdns[kube]' to see "
                                        "the API cross-check too")
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
            extra = []
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
    result, convs = asyncio.run(restart_test(target, api, None if args.all else args.ordinal, args.yes, progress))
    return emit(result, args, convergence=[{"ordinal": c.ordinal, "ready_s": c.ready_s, "dns_s": c.dns_s,
                                            "http_s": c.http_s} for c in convs])


def cmd_scale_test(args) -> int:
    import asyncio

    from ssdns.scale import scale_test

    target, api, progress = _disruptive(args)
    return emit(asyncio.run(scale_test(target, api, args.to, args.yes, progress)), args)


COMMANDS = {"restart-test": cmd_restart_test, "scale-test": cmd_scale_test, "check": cmd_check, "demo": cmd_demo, "sandbox": cmd_sandbox, "history": cmd_history}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return USAGE
        return COMMANDS[args.command](args)
    except SsdnsError as exc:
        print(f"ssdns: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ssdns: interrupted", file=sys.stderr)
        return 130
