"""The commands: typed options (options.py, other_options.py) in, a Target validated, run, render, exit code.

Each command imports what it uses, so `ssdns --help` and a DNS-only check stay light. No command
changes its options: they are frozen, built once by cli.main.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import TYPE_CHECKING

from ssdns.errors import OK, CannotRun, UsageError
from ssdns.options import CheckOptions, Outputs, TargetArgs

if TYPE_CHECKING:  # the other commands' options: check does not create their classes (other_options.py)
    from ssdns.other_options import (
        DemoOptions,
        HistoryOptions,
        Options,
        RestartOptions,
        SandboxOptions,
        ScaleOptions,
        WatchOptions,
        WorldArgs,
    )


def build_target(t: TargetArgs, timeout: float, deadline: float | None = None):
    """Validate the target options into a Target; every problem is a UsageError with one line."""
    from ssdns.target import Target, check_path, check_template

    namespace = _check_names(t)
    zone, nameservers = _dns_defaults(t)
    check_path(t.path)
    check_template(t.expect)
    if t.api.kubeconfig and not os.path.isfile(t.api.kubeconfig):  # a FIFO, a directory: say what it is
        from ssdns.files import not_a_file

        kind = not_a_file(t.api.kubeconfig)
        wrong = f"it is {kind}, not a kubeconfig file" if kind else "no such file"
        raise UsageError(f"--kubeconfig {t.api.kubeconfig!r}: {wrong}: give the path of a kubeconfig file")
    target = Target(service=t.service, namespace=namespace, zone=zone, nameservers=nameservers,
                    statefulset=t.statefulset, replicas=t.replicas, first_ordinal=t.first_ordinal,
                    port=t.port, port_name=t.port_name, proto=t.protocol, path=t.path, expect=t.expect,
                    match=t.match, http=t.http, timeout=timeout, deadline=deadline,
                    resolvers=resolver_choice(t.resolvers, t.transport, t.dns_service, t.nodelocal))
    _check_expect(target)
    return target


def resolver_choice(resolvers: str, transport: str, dns_service: str | None = None, nodelocal: str | None = None):
    """--resolvers, --transport, --dns-service, --nodelocal as a ResolverChoice; one line for what is wrong."""
    from dataclasses import replace

    from ssdns.target import ResolverChoice, parse_nameserver

    if resolvers.strip() == "path" and not dns_service and not nodelocal:
        return ResolverChoice("path", (), transport)  # the default: resolvers.py is not imported
    from ssdns.resolvers import parse_dns_service, parse_resolvers

    mode, listed = parse_resolvers(resolvers)
    if mode != "all" and (dns_service or nodelocal):
        flag = "--dns-service" if dns_service else "--nodelocal"
        raise UsageError(f"{flag} is used only with --resolvers all: add it, or drop {flag}")
    choice = ResolverChoice(mode, listed, transport)
    if dns_service:
        choice = replace(choice, dns_service=parse_dns_service(dns_service))
    if nodelocal:
        try:
            choice = replace(choice, nodelocal=parse_nameserver(nodelocal))
        except UsageError as exc:
            raise UsageError(f"--nodelocal: {exc}") from None
    return choice


def _check_names(t: TargetArgs) -> str:
    """The Service, StatefulSet and port names as Kubernetes validates them; the namespace, defaulted."""
    from ssdns.target import check_label, check_port_name, default_namespace

    if not t.service and not (t.statefulset and t.api.mode != "off"):
        raise UsageError("no Service given: use --service NAME (the StatefulSet's headless Service), "
                         "or --statefulset NAME with API access")
    if t.service:
        check_label(t.service, "Service name", rfc1035=True)
    if t.statefulset:
        check_label(t.statefulset, "StatefulSet name")
    elif t.replicas is not None:
        raise UsageError("--replicas needs --statefulset NAME (the pod name prefix)")
    if t.port_name:
        check_port_name(t.port_name)
    return check_label(t.namespace or default_namespace(), "namespace")


def _dns_defaults(t: TargetArgs):
    """The zone and nameservers: as given, else from resolv.conf (a pod's own)."""
    from ssdns.target import check_zone, parse_nameserver, read_resolv_conf, zone_from_search

    resolv = read_resolv_conf()
    zone = check_zone(t.cluster_domain) if t.cluster_domain else zone_from_search(resolv.search) or "cluster.local"
    if t.nameservers:
        return zone, tuple(parse_nameserver(n) for n in t.nameservers)
    if resolv.nameservers:
        return zone, resolv.nameservers
    raise UsageError("no nameserver: /etc/resolv.conf lists none; give --nameserver HOST[:PORT]")


def _check_expect(target) -> None:
    """The template renders for a sample pod (and compiles, with --match regex)."""
    import re

    from ssdns.checks.http import expected_body

    try:
        sample = expected_body(target, "web-0", 0)
        if target.match == "regex":
            re.compile(sample)
    except (KeyError, IndexError, ValueError, TypeError) as exc:  # e.g. {pod:d}: a spec the field's type refuses
        raise UsageError(f"--expect {target.expect!r}: {exc}; {{pod}} and the other names are text, {{ordinal}} "
                         "a number") from None
    except re.error as exc:
        raise UsageError(f"--expect {target.expect!r} is not a valid regular expression: {exc}") from None


def use_colour(choice: str, stream) -> bool:
    if choice != "auto":
        return choice == "always"
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


def emit(result, out: Outputs, deadline: float | None = None) -> int:
    """Print the report on stdout, then write the unattended outputs; all render the same Result.
    The Pushgateway push takes its timeout from the time left before the deadline."""
    from ssdns.errors import FAILED
    from ssdns.report import render_text, write_json

    if out.format == "json":
        to_stdout(write_json, result, sys.stdout)
    else:
        to_stdout(print, render_text(result, use_colour(out.color, sys.stdout), max_rows=out.rows), flush=True)
    write_outputs(result, out, deadline)
    return OK if result.ok else FAILED


def to_stdout(write, *args, **kwargs) -> None:
    """write(*args, **kwargs) to stdout, flushed. A reader that went away (`ssdns check ... | head -1`)
    drops only what it did not read: the files are still written and the exit code is the run's.
    stdout then points at /dev/null, so that nothing written later (nor the interpreter's flush at
    exit) fails again. Any other failure (a full disk, EIO) loses the report: the run could not do its job."""
    try:
        write(*args, **kwargs)
        sys.stdout.flush()
    except BrokenPipeError:
        stdout_gone()
    except OSError as exc:
        stdout_gone()
        raise CannotRun(f"cannot write the report to stdout ({exc.strerror or exc}): free space where it goes, or "
                        "redirect it elsewhere") from None


def stdout_gone() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def write_outputs(result, out: Outputs, deadline: float | None = None) -> None:
    """JUnit, metrics (file and push) and the termination log, from one Result."""
    if out.junit:
        from ssdns.junit import write_junit

        write_junit(result, out.junit)
    if out.metrics_file or out.pushgateway:
        from ssdns import metrics

        if out.metrics_file:
            metrics.write_metrics_file(result, out.metrics_file)
        if out.pushgateway:
            left = PUSH_TIMEOUT if deadline is None else max(PUSH_FLOOR, deadline - time.monotonic())
            within(left, f"push metrics to the Pushgateway at {out.pushgateway.split('@')[-1]}",
                   metrics.push_metrics, result, out.pushgateway, timeout=left)
    if out.termination_log:
        from ssdns.termination import write_termination_log

        write_termination_log(result, out.termination_log)


PUSH_TIMEOUT = 10.0  # seconds for a push without a run deadline
PUSH_FLOOR = 0.5  # a push after a run that used all its time still gets this long


def within(seconds: float, what: str, fn, *args, **kwargs):
    """fn(*args, **kwargs) in a daemon thread, given up (CannotRun) after `seconds`: a server that
    trickles its answer cannot hold the run past its deadline, and never holds up the exit."""
    import threading

    box: dict = {}

    def work():
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=work, name="ssdns-call", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise CannotRun(f"cannot {what}: no complete answer within {seconds:.1f} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def could_not_run(opts: Options, message: str, exit_code: int) -> None:
    """The unattended outputs of a run that could not finish (an error, SIGTERM, Ctrl-C): a could-not-run
    verdict in the termination log, JUnit and the metrics (run_ok 0), so a CronJob's alerts see it.
    Never raises: the one line on stderr is already said."""
    from dataclasses import replace

    from ssdns.model import Finding, Result, ServiceView, Status, TargetView

    out: Outputs | None = getattr(opts, "outputs", None)
    if out is None or not out.unattended:
        return
    t: TargetArgs | None = getattr(opts, "target", None)
    t = t or TargetArgs()
    subject = t.statefulset or t.service or "ssdns"
    view = TargetView(service=t.service, namespace=t.namespace or "default", zone=t.cluster_domain or "",
                      statefulset=t.statefulset, replicas=t.replicas, port_name=t.port_name, http=t.http,
                      http_port=t.port, path=t.path, expect=t.expect, match=t.match,
                      timeout=getattr(opts, "timeout", 0.0), api=t.api.mode)
    result = Result(target=view, service=ServiceView(t.service or "", [], "", ""), pods=[],
                    findings=[Finding("ssdns.run", Status.FAIL, subject, f"could not run: {message}",
                                      {"exit_code": exit_code})])
    from ssdns.termination import write_line

    if out.termination_log:
        write_line(f"ssdns could not run (exit {exit_code}): {message}", out.termination_log)
    # A push that just failed is not tried again; any other gets PUSH_FLOOR, no more.
    push = None if message.startswith("cannot push") else out.pushgateway
    with contextlib.suppress(Exception):  # best effort: the run already failed, and said why
        write_outputs(result, replace(out, termination_log=None, pushgateway=push), deadline=time.monotonic())


def _not_a_file(path: str) -> str | None:
    from ssdns.files import not_a_file  # only when a file is asked for: a plain check imports none of this

    return not_a_file(path)


def check_output_options(out: Outputs) -> None:
    """Before the run: the outputs asked for can be written (their packages are there, the URL is one)."""
    import importlib.util

    wants = [(out.junit, "--junit", "junitparser", "junit"),
             (out.metrics_file, "--metrics-file", "prometheus_client", "metrics"),
             (out.pushgateway, "--pushgateway", "prometheus_client", "metrics")]
    for value, flag, module, extra in wants:
        if value and importlib.util.find_spec(module) is None:
            raise UsageError(f"{flag} needs the {module} package: pip install 'ssdns[{extra}]'")
    for value, flag in ((out.junit, "--junit"), (out.metrics_file, "--metrics-file")):
        if value and (kind := _not_a_file(value)):  # a rename would put a file in its place
            raise UsageError(f"{flag} {value!r} is {kind}, not a file: give the path of a file (it is replaced "
                             "atomically when the run ends)")
    if out.pushgateway and not out.pushgateway.startswith(("http://", "https://")):
        raise UsageError(f"--pushgateway {out.pushgateway!r}: give an http:// or https:// URL")


def cmd_check(opts: CheckOptions) -> int:
    if opts.fleet is not None:
        from ssdns.fleet_command import cmd_fleet

        return cmd_fleet(opts)

    target = build_target(opts.target, opts.timeout, opts.deadline)
    check_output_options(opts.outputs)
    from ssdns import sizing

    # A large check's second process starts now, before this one imports the check (worker.py).
    if opts.deadline is not None and target.replicas is not None and sizing.worker_wanted(target.replicas):
        from ssdns import worker

        worker.start_early(target.replicas, target.path, opts.deadline, target.http)
    try:
        return _check(opts, target)
    finally:
        if (worker_module := sys.modules.get("ssdns.worker")) is not None:
            worker_module.discard_early()


def _check(opts: CheckOptions, target) -> int:
    from ssdns import smallcheck

    api = opts.target.api
    store = None
    if opts.state is not None and opts.state.startswith("configmap:") and api.mode == "off":
        raise UsageError("--state configmap:NAME keeps state through the Kubernetes API: drop --api off, or use a file")
    if opts.state is not None:
        from ssdns.state import open_store

        store = open_store(opts.state, target.namespace, api, opts.deadline)
    if smallcheck.eligible(target, api):  # a small DNS-only check: no asyncio (smallcheck.py)
        result = smallcheck.run_check(target)
    else:
        from ssdns.aio import run
        from ssdns.check import run_check

        result = run(run_check(target, api), target.replicas)  # uvloop for large runs; the Result kept out of the task
    if store is not None:
        from ssdns.state import apply_state

        result = apply_state(result, store, max(1, opts.history))
    return emit(result, opts.outputs, deadline=opts.deadline)


def cmd_history(opts: HistoryOptions) -> int:
    import json

    from ssdns import fleet_history
    from ssdns.report import render_history
    from ssdns.state import open_store, validate
    from ssdns.target import check_label, default_namespace

    namespace = check_label(opts.namespace or default_namespace(), "namespace")
    key = fleet_history.pick_key(opts.statefulset, namespace) if opts.statefulset is not None else None
    store = open_store(opts.state, namespace, opts.api, opts.deadline)
    doc = store.load()
    if doc is None:
        raise UsageError(f"{store.where} does not exist yet: run ssdns check --state {opts.state} first")
    where = store.where
    if fleet_history.is_fleet(doc):
        if key is None:  # every StatefulSet: a summary, then each timeline; the unreadable ones said last
            text, bad = (fleet_history.render_json(doc, where) if opts.format == "json"
                         else fleet_history.render_text(doc, where, opts.last))
            to_stdout(print, text)
            if bad:
                raise fleet_history.unreadable_error(bad)
            return OK
        doc, where = fleet_history.pick(doc, key, where), f"{where} [{key}]"
    else:
        validate(doc, None, where)
        if key is not None:
            fleet_history.single_key(doc, key, where)
    to_stdout(print, json.dumps(doc, indent=2) if opts.format == "json" else render_history(doc, where, opts.last))
    return OK


def _have_kube() -> bool:
    import importlib.util

    return importlib.util.find_spec("kubernetes") is not None


def _world(w: WorldArgs):
    from ssdns.sandbox import make_world
    from ssdns.sandbox.fleet import add_statefulsets, apply_fleet_fault

    world = make_world(w.pods, pod_management_policy=w.pod_management_policy, terminate_delay=w.terminate_delay,
                       ready_delay=w.ready_delay, dns_delay=w.dns_delay)
    add_statefulsets(world, w.statefulsets, w.pods)
    for spec in w.faults:
        apply_fleet_fault(world, spec)  # to the StatefulSet it names (web's, as ever, when it names none)
    return world


def _fleet_needs_api(w: WorldArgs, api: bool) -> None:
    """--statefulsets N > 1 is for check --all, which finds them through the sandbox's Kubernetes API."""
    if w.statefulsets > 1 and not api:
        raise UsageError(f"--statefulsets {w.statefulsets} is for check --all, which finds the StatefulSets through "
                         "the sandbox's Kubernetes API: drop --no-api")
    if w.statefulsets > 1 and not _have_kube():
        raise UsageError(f"--statefulsets {w.statefulsets} needs the sandbox's Kubernetes API: "
                         "pip install 'ssdns[kube]'")


def cmd_demo(opts: DemoOptions) -> int:
    import tempfile

    from ssdns.aio import run  # a signal cancels the run (raised inside a callback, asyncio swallowed it)
    from ssdns.check import run_check
    from ssdns.sandbox import Sandbox
    from ssdns.target import ApiOptions

    check_output_options(opts.outputs)
    _fleet_needs_api(opts.world, opts.api)
    world = _world(opts.world)
    if world.neighbours:  # several StatefulSets: check --all, its one summary and the worst exit code
        from ssdns.fleet_command import demo_fleet

        return demo_fleet(world, opts)
    use_api = opts.api and _have_kube()

    async def go():
        async with Sandbox(world, api=use_api) as sb:
            target = sb.target(http=opts.http, timeout=opts.timeout, deadline=opts.deadline,
                               resolvers=resolver_choice(opts.resolvers, opts.transport))
            if not use_api:
                result = await run_check(target)
                if opts.api:
                    result = result.adding(notes=["the sandbox's Kubernetes API is off: pip install 'ssdns[kube]' "
                                                  "to see the API cross-check too"])
                return result
            with tempfile.TemporaryDirectory(prefix="ssdns-demo-") as tmp:
                kubeconfig = str(sb.write_kubeconfig(f"{tmp}/kubeconfig"))
                # auto: an API fault (api-forbidden) shows as the warning a real run gives, not an error
                # whose advice names a flag the demo does not take
                return await run_check(target, ApiOptions("auto", kubeconfig))

    return emit(run(go(), len(world.pods)), opts.outputs, deadline=opts.deadline)


def cmd_sandbox(opts: SandboxOptions) -> int:
    import asyncio
    import contextlib
    import signal

    from ssdns.sandbox import Sandbox

    _fleet_needs_api(opts.world, opts.api)
    world = _world(opts.world)
    _check_loopback(opts.dns_host)
    use_api = opts.api and _have_kube()
    if use_api:
        _check_writable(opts.kubeconfig_out, "--kubeconfig-out")
    if opts.api and not use_api:
        print("sandbox: no Kubernetes API (the kubernetes package is not installed: pip install 'ssdns[kube]')",
              file=sys.stderr)

    async def go():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # before the start: a signal then, raised inside a callback of
            loop.add_signal_handler(sig, stop.set)  # the starting servers, was swallowed and the sandbox ran on
        sandbox = Sandbox(world, opts.dns_host, opts.dns_port or 0, api=use_api)
        try:
            await sandbox.start()
        except OSError as exc:
            with contextlib.suppress(Exception):  # what did start is stopped; the error is the bind's
                await sandbox.stop()
            detail = " ".join(str(exc).split())
            hint = "pick another --dns-port, or leave it out for a free one" if opts.dns_port else \
                "is another ssdns sandbox running?"
            raise CannotRun(f"cannot start the sandbox: {detail}; {hint}") from None
        sb = sandbox
        try:
            if stop.is_set():  # stopped while it started: nothing to advise on
                return OK
            say(_sandbox_headline(world, sb))
            extra = ["--api", "off"]  # without the sandbox's API, never fall back to the user's own kubeconfig
            if use_api:
                kubeconfig = sb.write_kubeconfig(opts.kubeconfig_out)
                say(f"Kubernetes API at {sb.api_url}; kubeconfig written to {kubeconfig}")
                extra = ["--kubeconfig", str(kubeconfig)]
            if world.neighbours:
                say("check them all from another terminal with:\n  ssdns " + " ".join([*sb.fleet_check_args(),
                    *extra]) + "\nor one of them with:\n  ssdns " + " ".join([*sb.check_args(), *extra]))
            else:
                say("check it from another terminal with:\n  ssdns " + " ".join([*sb.check_args(), *extra]))
            say(f"and its DNS replicas (kube-system/kube-dns, for --resolvers all or a list): "
                f"{', '.join(str(ns) for ns in sb.replica_nameservers)}")
            if sb.api_url is not None:  # ssdns watch needs the API; --replicas comes from it
                args = sb.check_args()[1:]
                i = args.index("--replicas")
                say("or watch every restart (delete a pod through the API to see one) with:\n  ssdns watch "
                    + " ".join([*args[:i], *args[i + 2:], *extra, "--listen", "127.0.0.1:9798"]))
            try:
                await asyncio.wait_for(stop.wait(), opts.duration)
            except TimeoutError:
                pass
        finally:
            await sandbox.stop()
        return OK

    from ssdns import gcpace

    gcpace.running()  # start-up is over: the collector at its usual pace for a long run (gcpace.py)
    return asyncio.run(go())


def say(text: str) -> None:
    """A line of advice on stdout (the sandbox's): a reader that went away (`ssdns sandbox | head -1`) ends
    only the advice, never the sandbox it describes, which serves until it is stopped."""
    to_stdout(print, text, flush=True)


def _sandbox_headline(world, sb) -> str:
    if not world.neighbours:
        return (f"sandbox: headless Service {world.service_fqdn} with {len(world.pods)} pods "
                f"on 127.10.x.y port {world.port}; nameserver {sb.nameserver}")
    names = [world.statefulset, *(n.statefulset for n in world.neighbours)]
    shown = ", ".join(names[:5]) + (f", ... {names[-1]}" if len(names) > 5 else "")
    return (f"sandbox: {len(names)} StatefulSets in namespace {world.namespace} ({shown}; {world.statefulset} behind "
            f"the headless Service {world.service}, each other behind its own name), {len(world.pods)} pods each on port "
            f"{world.port}; nameserver {sb.nameserver}")


def _check_loopback(host: str) -> None:
    import ipaddress

    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"--dns-host {host!r} is not an IP address: give a loopback address such as 127.54.0.1") from None
    if not ip.is_loopback:
        raise UsageError(f"--dns-host {host}: the sandbox serves on loopback only; give 127.x.y.z or ::1")


def _check_writable(path: str, option: str) -> None:
    """Before anything starts: path can be written (created, then removed again if it was not there)."""
    from ssdns.files import not_a_file

    existed = os.path.exists(path)
    if os.path.isdir(path):
        raise UsageError(f"{option} {path!r} is a directory: give a file path")
    if kind := not_a_file(path):  # opened to write, a FIFO waits for a reader for ever
        raise UsageError(f"{option} {path!r} is {kind}, not a file: give a file path")
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        raise UsageError(f"{option} {path!r}: cannot write it ({exc.strerror}); give a writable path") from None
    if not existed:
        os.unlink(path)


def _disruptive(name: str, opts: RestartOptions | ScaleOptions):
    from ssdns.converge import Progress
    from ssdns.target import ApiOptions

    t = opts.target
    if not t.statefulset:
        raise UsageError(f"{name} needs --statefulset NAME")
    if t.api.mode == "off":
        raise UsageError(f"{name} works through the Kubernetes API: drop --api off")
    check_output_options(opts.outputs)
    target = build_target(t, opts.timeout, opts.deadline)  # one deadline, from start-up (disrupt.py)
    return target, ApiOptions("on", t.api.kubeconfig, t.api.context), Progress(True)


def cmd_restart_test(opts: RestartOptions) -> int:
    from ssdns.aio import run  # SIGINT and SIGTERM cancel the run through its loop: never lost in a task
    from ssdns.restart import restart_test

    target, api, progress = _disruptive("restart-test", opts)
    ordinals = None if opts.ordinals is None else list(opts.ordinals)
    return emit(run(restart_test(target, api, ordinals, opts.yes, progress)), opts.outputs,
                deadline=opts.deadline)


def cmd_scale_test(opts: ScaleOptions) -> int:
    from ssdns.aio import run  # a cancelled scale-test restores the count before Interrupted (scale.py)
    from ssdns.scale import scale_test

    target, api, progress = _disruptive("scale-test", opts)
    return emit(run(scale_test(target, api, opts.to, opts.yes, progress)), opts.outputs,
                deadline=opts.deadline)


def cmd_watch(opts: WatchOptions) -> int:
    """ssdns watch: runs until SIGTERM or Ctrl-C, then exits 0 (watch.py)."""
    import asyncio
    import importlib.util
    import signal
    from dataclasses import replace

    from ssdns.watch import Watch, WatchSettings, parse_listen
    from ssdns.watchprobe import ProbeOptions

    t = opts.target
    if not t.statefulset:
        raise UsageError("ssdns watch needs --statefulset NAME: it watches that StatefulSet's pods")
    if t.api.mode == "off":
        raise UsageError("ssdns watch works through the Kubernetes API (it watches pods): drop --api off")
    listen = parse_listen(opts.listen)
    if importlib.util.find_spec("prometheus_client") is None:
        raise UsageError("ssdns watch serves metrics: pip install 'ssdns[metrics]'")
    labels = metric_labels(opts.labels)
    target = build_target(t, opts.timeout)
    if opts.state is not None:
        from ssdns.state import open_store

        open_store(opts.state, target.namespace, t.api)  # a malformed --state is one line now, not later
    settings = WatchSettings(target, replace(t.api, mode="on"), ProbeOptions(opts.probe_interval, opts.settle,
                             opts.give_up), opts.interval, listen, opts.state, max(1, opts.history), opts.timeout,
                             labels)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)  # a graceful stop, instead of cli's Interrupted
        try:
            await Watch(settings).run(stop)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    from ssdns import gcpace

    gcpace.running()  # start-up is over: the collector at its usual pace for a long run (gcpace.py)
    asyncio.run(go())
    print("ssdns watch: stopped", file=sys.stderr, flush=True)
    return OK


def metric_labels(specs: tuple[str, ...]) -> dict[str, str]:
    """--metric-label KEY=VALUE, each checked as metrics.py checks constant labels."""
    from ssdns.metrics import _check_extra

    labels: dict[str, str] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep:
            raise UsageError(f"--metric-label {spec!r}: give KEY=VALUE, e.g. node=worker-1")
        if key in ("stage", "outcome", "le", "transport") or key.startswith("resolver"):
            raise UsageError(f"metric label {key!r} is set by ssdns watch itself: choose another name")
        labels[key] = value
    return _check_extra(labels)
