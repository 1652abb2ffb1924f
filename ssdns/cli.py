"""Command line: the parser, its help (exit codes, faults), and main(); the commands are in commands.py.

Only argparse and the standard library load at start-up; each command imports what it uses.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from typing import NoReturn

from ssdns import __version__, gcpace
from ssdns.errors import (
    API_UNAVAILABLE,
    CANNOT_RUN,
    NOTHING_TO_CHECK,
    USAGE,
    Interrupted,
    SsdnsError,
    UsageError,
)

EXIT_CODES = """exit codes:
  0  every check passed (warnings allowed)
  1  a check failed
  2  bad usage or input (the message says what to fix)
  3  could not run: no nameserver answered, the deadline passed, or an output or the sandbox failed
  4  the Kubernetes API was required (--api on, restart-test, scale-test, --all) but could not be used
  5  nothing to check: --all, --selector or -A matched no StatefulSet (or every one was excluded)
  130, 143  interrupted by SIGINT (Ctrl-C) or SIGTERM: one line, and the outputs say 'could not run'"""


HISTORY_EXIT_CODES = """exit codes:
  0  shown
  2  the state does not exist, does not parse, or (check --all's) holds no --statefulset of that name; an
     unreadable StatefulSet entry is said in one line after the readable ones are shown
  3  the ConfigMap could not be read (credentials, unreachable, refused, timed out)"""


FAULT_HELP = """faults (--fault, repeatable):
  wrong-name:POD=OTHER, missing-dns:POD, extra-ip[:IP], no-http:POD, http-hang:POD, shared-ip:POD=OTHER,
  dns-other-pod:POD=OTHER, not-ready:POD, publish-not-ready, stale-dns:POD, not-headless,
  pvc-pending:POD, api-forbidden[:RESOURCE], wrong-subdomain:POD, no-service, dns-servfail, dns-stuck,
  replacement-wrong-name:POD[=OTHER], replacement-new-volume:POD,
  stale-replica:K, replica-down:K, replica-nxdomain:K:POD, udp-only, tcp-differs, slow-replica:K,
  dns-forbidden, selector-mismatch, host-network, istio-sidecar, stuck-rollout:POD, stuck-not-ready:POD,
  stuck-terminating:POD, over-capacity, second-ptr:POD[=SERVICE], retention-delete,
  negative-cache[:S], stale-ip[:S], watch-drop[:S], watch-expire[:S], lagging-replica:K[:S], ip-change:POD[:S]
  (see the README for what each does)"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong, what to do) and exit code 2."""

    def error(self, message: str):  # argparse API: a usage error
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
        if not (text.isascii() and text.isdigit()) or int(text) > limit:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 0 to {limit}")
        return int(text)
    return parse


def _between(low: int, high: int):
    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from {low} to {high}")
        return int(text)
    return parse


DEFAULT_ROWS = 100  # a table of 20,000 pods is for a program: -o json


def _rows(text: str) -> int | None:
    if text == "all":
        return None
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of rows from 1, or all")
    return int(text)


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range: use a port from 1 to 65535")
    return int(text)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line. `only`: build that command's options and no other's (main passes the command it
    runs: a check need not build watch's options). Every command is still listed, with its help; a command
    not built parses nothing, so pass None (every command) for anything but running `only`."""
    from ssdns.helpformat import HelpFormatter as fmt  # argparse's, without shutil: see there

    def wanted(command: str) -> bool:
        return only is None or only == command

    p = _Parser(prog="ssdns", description="Check the stable identity a StatefulSet promises: "
                "headless Service DNS, per-pod names, SRV and PTR, and each pod's HTTP identity.",
                epilog=EXIT_CODES, formatter_class=fmt)
    p.add_argument("--version", action="version", version=f"ssdns {__version__}")
    # Each subparser carries its command as data: (the options builder, MODULE.FUNCTION: check's in options.py,
    # the others' in other_options.py; the handler in commands.py), both resolved by name after parsing.
    sub = p.add_subparsers(metavar="COMMAND", parser_class=_Parser)

    c = sub.add_parser("check", help="check a headless Service and its pods", epilog=EXIT_CODES,
                       formatter_class=fmt, description="Check a headless Service's DNS records and each "
                       "pod's identity. Without --statefulset and --replicas, pods are discovered from DNS.")
    c.set_defaults(command=("options.check", "cmd_check"))
    if wanted("check"):
        c.add_argument("service_pos", nargs="?", metavar="SERVICE", help="shortcut for --service")
        add_target_args(c)
        add_resolver_args(c)
        add_output_args(c)
        add_state_args(c)
        add_unattended_args(c)
        add_fleet_args(c)

    hi = sub.add_parser("history", help="show the stored snapshots as a timeline", formatter_class=fmt,
                        epilog=HISTORY_EXIT_CODES,
                        description="Show what --state stored: one line per run, with restarts, moves, "
                        "new IPs and identity breaks per pod, so flapping is visible. The state of check --all "
                        "(one history per StatefulSet) shows a summary table first, then each timeline.")
    hi.set_defaults(command=("other_options.history", "cmd_history"))
    if wanted("history"):
        hi.add_argument("--state", required=True, metavar="PATH|configmap:NAME")
        hi.add_argument("-n", "--namespace", help="namespace of the ConfigMap, and of --statefulset NAME (default: the "
                        "pod's own, else 'default')")
        hi.add_argument("--statefulset", metavar="NAME|NS/NAME",
                        help="with the state of check --all/-l/-A: show only this StatefulSet's history (default: a "
                        "summary table, then every one's)")
        hi.add_argument("--kubeconfig", metavar="PATH")
        hi.add_argument("--context")
        hi.add_argument("--last", type=_count(1000), default=None, metavar="N", help="show only the last N")
        hi.add_argument("-o", "--output", choices=("text", "json"), default="text")
        hi.add_argument("--timeout", type=_positive_float, default=10.0, metavar="SECONDS",
                        help="one deadline for reading the state (default 10)")

    d = sub.add_parser("demo", help="run a check against a built-in emulated headless Service",
                       epilog=FAULT_HELP + "\n\n" + EXIT_CODES, formatter_class=fmt)
    d.set_defaults(command=("other_options.demo", "cmd_demo"))
    if wanted("demo"):
        add_sandbox_args(d)
        add_resolver_args(d, demo=True)
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
    r.set_defaults(command=("other_options.restart", "cmd_restart_test"))
    if wanted("restart-test"):
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
    sc.set_defaults(command=("other_options.scale", "cmd_scale_test"))
    if wanted("scale-test"):
        add_target_args(sc)
        sc.add_argument("--to", type=_count(100000), required=True, metavar="K", help="replicas to scale down to")
        sc.add_argument("--yes", action="store_true", help="really scale the StatefulSet")
        add_output_args(sc, timeout=300.0)
        add_unattended_args(sc)

    s = sub.add_parser("sandbox", help="run the emulated headless Service until interrupted",
                       formatter_class=fmt, epilog=FAULT_HELP, description="Start the emulated headless Service (a DNS "
                       "server answering as CoreDNS does, and echo pods on 127.10.x.y) and print how to "
                       "check it from another terminal.")
    s.set_defaults(command=("other_options.sandbox", "cmd_sandbox"))
    if wanted("sandbox"):
        add_sandbox_args(s)
        s.add_argument("--dns-host", default="127.54.0.1", help="DNS server address (default %(default)s)")
        s.add_argument("--dns-port", type=_port, default=None, help="DNS server port (default: a free port)")
        s.add_argument("--no-api", dest="api", action="store_false", help="do not serve the Kubernetes API")
        s.add_argument("--kubeconfig-out", metavar="PATH", default="ssdns-sandbox.kubeconfig",
                       help="where to write the kubeconfig for the sandbox's API (default %(default)s)")
        s.add_argument("--duration", type=_positive_float, default=None,
                       help="stop after this many seconds (default: run until interrupted)")
    add_watch_parser(sub, fmt, wanted("watch"))
    return p


WATCH_EXIT_CODES = """exit codes:
  0  stopped by SIGTERM or Ctrl-C (it runs until then; failed checks are metrics, not exit codes)
  2  bad usage or input: an option, --listen malformed or in use
  4  the Kubernetes API cannot be used, or refuses a read the watch needs (the message names the grant)"""


def add_watch_parser(sub, fmt, wanted: bool = True) -> None:
    """ssdns watch: the long-running probe (watch.py); its options only when `wanted`."""
    w = sub.add_parser("watch", help="run until stopped: time how identity comes back on every pod restart, "
                       "check every --interval, serve metrics", epilog=WATCH_EXIT_CODES, formatter_class=fmt,
                       description="Watch the StatefulSet's pods through the Kubernetes API. When a pod is replaced "
                       "(new UID) or changes IP, ask its names every --probe-interval until DNS and HTTP identity "
                       "have been right for --settle, and time each stage from the moment the old pod went (through each "
                       "resolver of --resolvers: one probe each, the slowest named). Run "
                       "the full check every --interval, keep --state, and serve /metrics, /healthz, /readyz, "
                       "/report and a small page on --listen. SIGTERM or Ctrl-C stop it (exit 0).")
    w.set_defaults(command=("other_options.watch", "cmd_watch"))
    if wanted:
        add_target_args(w)
        add_state_args(w)
        add_resolver_args(w)
        g = w.add_argument_group("watch")
        g.add_argument("--interval", type=_positive_float, default=60.0, metavar="SECONDS",
                       help="run the full check this often (default 60)")
        g.add_argument("--probe-interval", type=_positive_float, default=0.25, metavar="SECONDS",
                       help="ask a replaced pod's names this often (default 0.25)")
        g.add_argument("--settle", type=_seconds, default=2.0, metavar="SECONDS",
                       help="a replaced pod's DNS and HTTP identity must stay right this long (default 2)")
        g.add_argument("--give-up", type=_positive_float, default=300.0, metavar="SECONDS",
                       help="past this, a replacement whose identity is not right is a failure (default 300)")
        g.add_argument("--listen", default=":9798", metavar="HOST:PORT",
                       help="serve /metrics, /healthz, /readyz, /report and / here (default :9798, every address)")
        g.add_argument("--timeout", type=_positive_float, default=10.0, metavar="SECONDS",
                       help="deadline of each full check, and of the start-up (default 10)")
        g.add_argument("--metric-label", action="append", default=[], metavar="KEY=VALUE",
                       help="a constant label on every metric, repeatable (e.g. node=$(NODE_NAME) in a DaemonSet)")


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
                   help="colour the table (auto: on a terminal, unless NO_COLOR is set; always: even with "
                   "NO_COLOR)")
    g.add_argument("--timeout", type=_positive_float, default=timeout, metavar="SECONDS",
                   help=f"one deadline for the whole run (default {timeout:g})")
    g.add_argument("--rows", type=_rows, default=DEFAULT_ROWS, metavar="N|all",
                   help=f"table rows to show, pods with problems first (default {DEFAULT_ROWS}; all: every pod)")


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


def add_resolver_args(c: argparse.ArgumentParser, demo: bool = False) -> None:
    """--resolvers, --transport (issue 12: every resolver; see the README's 'Every resolver')."""
    g = c.add_argument_group("every resolver")
    g.add_argument("--resolvers", default="path", metavar="path|all|HOST[:PORT],...",
                   help="ask every name of each resolver and compare: path (default: the resolv.conf path or "
                   "--nameserver), all (also each endpoint of the cluster DNS Service, found through the API, and "
                   "NodeLocal DNSCache), or a list of HOST[:PORT] (no API needed)")
    g.add_argument("--transport", choices=("udp", "tcp", "both"), default="udp",
                   help="udp (default: TCP only when truncated), tcp, or both (every resolver over each, compared)")
    if demo:
        return
    g.add_argument("--dns-service", metavar="NS/NAME",
                   help="with --resolvers all: the cluster DNS Service (default kube-system/kube-dns)")
    g.add_argument("--nodelocal", metavar="ADDR",
                   help="with --resolvers all: NodeLocal DNSCache's address (default: 169.254.20.10 when the "
                   "resolv.conf lists it)")


def add_fleet_args(c: argparse.ArgumentParser) -> None:
    g = c.add_argument_group("many StatefulSets (through the API; one summary, the worst exit code)")
    g.add_argument("--all", action="store_true", help="every StatefulSet in the namespace")
    g.add_argument("-l", "--selector", metavar="SELECTOR",
                   help="the StatefulSets with these labels (kubectl -l syntax: app=db,tier in (a,b),!legacy)")
    g.add_argument("-A", "--all-namespaces", action="store_true",
                   help="every StatefulSet in every namespace (needs the ClusterRole in k8s/cluster-wide/)")
    g.add_argument("--exclude", action="append", default=[], metavar="NS/NAME",
                   help="leave this StatefulSet out (repeatable); the annotation ssdns/skip: \"true\" does too")


def add_sandbox_args(c: argparse.ArgumentParser) -> None:
    c.add_argument("--pods", type=_count(5000), default=3, help="number of pods (default 3; of each StatefulSet)")
    c.add_argument("--statefulsets", type=_between(1, 100), default=1, metavar="N",
                   help="serve N StatefulSets, web, web-b, web-c, ... (each its own headless Service), to try "
                   "check --all (default 1; needs the sandbox's API)")
    c.add_argument("--fault", action="append", default=[], metavar="FAULT",
                   help="inject a fault (repeatable); the faults are listed below; NAME/FAULT breaks StatefulSet "
                   "NAME (web-b/not-headless), a fault naming a pod breaks that pod's StatefulSet")
    g = c.add_argument_group("StatefulSet controller timing (for restart-test and scale-test)")
    g.add_argument("--pod-management-policy", choices=("OrderedReady", "Parallel"), default="OrderedReady")
    g.add_argument("--terminate-delay", type=_seconds, default=0.1, metavar="S",
                   help="a deleted pod stays terminating this long (default 0.1)")
    g.add_argument("--ready-delay", type=_seconds, default=0.3, metavar="S",
                   help="a replacement is Ready this long after it is created (default 0.3)")
    g.add_argument("--dns-delay", type=_seconds, default=0.3, metavar="S",
                   help="DNS shows a change this long after the API does: TTL and caches (default 0.3)")


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


COMMANDS = ("check", "history", "demo", "restart-test", "scale-test", "sandbox", "watch")


def _command_in(argv: list[str]) -> str | None:
    """The command argv runs: its first word that is not an option (ssdns's own options, --help and
    --version, take no value). None when that is no command: every command's options are then built, and
    argparse says what is wrong as ever."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def _prestart(args: list[str]) -> None:
    if _command_in(args) == "check" and any(a.startswith("--replicas") for a in args):
        from ssdns import sizing

        if (pods := sizing.replicas_in(args)) is not None and sizing.worker_wanted(pods):
            from ssdns import worker  # a large check's second process starts now, before any parsing (prestart)

            worker.prestart(args)


def main(argv: list[str] | None = None) -> int:
    """The one error boundary: an SsdnsError or a signal becomes one line on stderr and its exit code;
    a run that could not finish still writes its unattended outputs, with a could-not-run verdict.
    The options are built once, typed (options.py, other_options.py), and handed to the subparser's handler."""
    started = time.monotonic()  # --timeout counts from here: the user's wall clock, not the check's
    args = sys.argv[1:] if argv is None else argv
    _prestart(args)
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:  # text stdout's encoding cannot carry (a lone surrogate from JSON, a
        reconfigure(errors="backslashreplace")  # character a latin-1 locale lacks): escaped, never a traceback
    parser = build_parser(_command_in(args))
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _raise_interrupted)
    opts = None
    try:
        ns = parser.parse_args(argv)
        if getattr(ns, "command", None) is None:
            parser.print_help()
            return USAGE
        import importlib

        from ssdns import commands  # after parsing: --help and usage errors stay light

        build, handler = ns.command
        module, builder = build.rsplit(".", 1)
        opts = getattr(importlib.import_module(f"ssdns.{module}"), builder)(ns, started)
        return getattr(commands, handler)(opts)
    except SsdnsError as exc:
        print(f"ssdns: error: {' '.join(str(exc).split())}", file=sys.stderr)  # one line, whatever it quotes
        # Nothing to check is no pass either: the outputs a CronJob's alerts read must not keep the last run's.
        if opts is not None and exc.exit_code in (CANNOT_RUN, API_UNAVAILABLE, NOTHING_TO_CHECK):
            from ssdns.commands import could_not_run

            could_not_run(opts, str(exc), exc.exit_code)
        return exc.exit_code
    except (Interrupted, KeyboardInterrupt) as exc:
        stop = exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)
        for sig in previous:  # a second signal while the outputs are written ends the process at once
            signal.signal(sig, signal.SIG_DFL)
        print(f"ssdns: {stop}", file=sys.stderr, flush=True)
        if opts is not None:
            from ssdns.commands import could_not_run

            could_not_run(opts, str(stop), stop.exit_code)
        return stop.exit_code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if (worker_module := sys.modules.get("ssdns.worker")) is not None:
            worker_module.discard_early()  # a child no check took (--help, a usage error, check --all)


def run() -> NoReturn:
    """The executable (`ssdns`, `python -m ssdns`): main(), then its exit code. When nothing is left running
    (no thread the interpreter would wait for), the process ends at once instead of tearing down every
    module and object first: ~15 ms of a small check's ~0.1 s of its own, for nothing (every output is
    written and closed, the event loop closed). Anything else exits as Python does."""
    gcpace.start_up()  # the collector at a slow pace while ssdns starts (gcpace.py)
    from ssdns.streams import make_safe

    make_safe()  # closed descriptors, a stderr nobody reads: never a traceback, an abort or a lost exit code
    code = main()
    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon for t in threading.enumerate()):
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe, a full disk: the interpreter's own exit reports it, as ever
        sys.exit(code)
    os._exit(code)
