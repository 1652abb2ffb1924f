"""ssdns watch's HTTP endpoints (aiohttp) and its Prometheus metrics (prometheus_client).

- /metrics: the last full check's metrics (ssdns_check_ok{check,ordinal} and the rest, as
  --metrics-file writes them), the histogram ssdns_convergence_seconds{stage,resolver,transport}, per
  replacement through several resolvers the spread and the slowest resolver, and the watch's own
  counters and gauges. Labels are bounded: namespace, statefulset, check, ordinal, stage, outcome, and
  resolver as a slot (path, nodelocal, listed-<k>, replica-<k>: watchresolvers.py says why it is bounded);
  ssdns_watch_resolver_info names the pod behind each slot now.
- /healthz: 200 while the watch is connected or was within HEALTH_WINDOW; else 503.
- /readyz: 200 once the first full check is done; else 503.
- /report: the last full check exactly as `ssdns check -o json` prints it; 503 before it.
- /: a small page for a person behind `kubectl port-forward`: the verdict table and recent events.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ssdns.metrics import utf8_safe
from ssdns.watchprobe import STAGES, ConvergenceEvent

if TYPE_CHECKING:
    from ssdns.watch import Spread, Watch

HEALTH_WINDOW = 120.0  # seconds without the watch connected before /healthz says so
BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
OUTCOMES = ("converged", "gave-up", "superseded", "stopped", "resolver-gone", "error")


class WatchMetrics(Collector):
    """The watch's registry: histograms it observes into, and a collector rendering the rest when scraped."""

    def __init__(self, watch: Watch):
        self.watch = watch
        t = watch.s.target
        self.base = {"namespace": t.namespace, "statefulset": t.statefulset or "", **watch.s.labels}
        self.registry = CollectorRegistry(auto_describe=False)
        self.convergence = Histogram(
            "ssdns_convergence_seconds", "Seconds from the moment the watch saw the old pod go (its "
            "deletionTimestamp or delete event) to the first right answer per stage; nxdomain_window: how long "
            "the pod's name answered NXDOMAIN; per resolver (a slot) and transport",
            [*self.base, "stage", "resolver", "transport"], buckets=BUCKETS, registry=self.registry)
        self.spread = Histogram(
            "ssdns_convergence_spread_seconds", "Per replacement probed through several resolvers: the slowest "
            "resolver's time to the first right answer minus the fastest's, per stage (dns, old_ip_gone)",
            [*self.base, "stage"], buckets=BUCKETS, registry=self.registry)
        self.outcomes = dict.fromkeys(OUTCOMES, 0)
        self.slowest: dict[tuple[str, str], int] = {}  # (resolver slot, stage) -> replacements it was slowest for
        self.wrong = 0
        self.registry.register(self)

    def observe(self, ev: ConvergenceEvent, slot: str = "path") -> None:
        for stage, seconds in ev.stages.items():
            if seconds is not None:
                self.convergence.labels(*self.base.values(), stage, slot, ev.transport).observe(seconds)
        if ev.nxdomain_window is not None:
            self.convergence.labels(*self.base.values(), "nxdomain_window", slot, ev.transport).observe(
                ev.nxdomain_window)
        self.outcomes[ev.outcome] = self.outcomes.get(ev.outcome, 0) + 1
        self.wrong += ev.wrong

    def observe_spread(self, spread: Spread) -> None:
        for stage, (_, slot, _slowest, _fastest, seconds) in spread.stages.items():
            if seconds is not None:
                self.spread.labels(*self.base.values(), stage).observe(seconds)
            self.slowest[(slot, stage)] = self.slowest.get((slot, stage), 0) + 1

    def collect(self) -> Iterator[Metric]:
        from ssdns.metrics import result_families

        w = self.watch
        labels = [*self.base]
        values = list(self.base.values())
        if w.last is not None and w.last_check_at is not None:
            yield from result_families(w.last, w.last_check_at, w.s.labels)
        replacements = CounterMetricFamily("ssdns_watch_replacements", "Replacements and IP changes probed, per "
                                           "outcome (one per resolver and transport probed)", labels=[*labels, "outcome"])
        for outcome, n in self.outcomes.items():
            replacements.add_metric([*values, outcome], n)
        yield replacements
        yield from self._resolver_families(labels, values)
        watcher = w.watcher
        for name, doc, value in (
            ("ssdns_watch_wrong_identity_answers", "Answers naming another pod's identity seen while probing",
             self.wrong),
            ("ssdns_watch_reconnects", "Watch streams that broke and were opened again",
             watcher.reconnects if watcher else 0),
            ("ssdns_watch_relists", "Lists after a 410 Gone", watcher.relists if watcher else 0),
            ("ssdns_watch_full_checks", "Full checks run", w.checks),
        ):
            fam = CounterMetricFamily(name, doc, labels=labels)
            fam.add_metric(values, value)
            yield fam
        for name, doc, gauge in (
            ("ssdns_watch_connected", "1 while the pod watch is connected", watcher is not None and watcher.connected),
            ("ssdns_watch_statefulset_present", "0 while the StatefulSet does not exist",
             watcher is not None and not watcher.sts_missing),
            ("ssdns_watch_probes_in_flight", "Probes running now (one per pod, resolver and transport)",
             len(w.probes)),
            ("ssdns_watch_last_check_ok", "1 when the last full check passed, 0 when it failed or could not run",
             w.last is not None and w.last_error is None and w.last.ok),
            ("ssdns_watch_last_check_timestamp_seconds", "Unix time the last full check ended",
             w.last_check_at or 0),
        ):
            g = GaugeMetricFamily(name, doc, labels=labels)
            g.add_metric(values, float(gauge))
            yield g


    def _resolver_families(self, labels: list[str], values: list[str]) -> Iterator[Metric]:
        slowest = CounterMetricFamily("ssdns_watch_slowest_resolver", "Replacements probed through several "
                                      "resolvers for which this resolver was the slowest to be right (or never "
                                      "was), per stage", labels=[*labels, "resolver", "stage"])
        for (slot, stage), n in sorted(self.slowest.items()):
            slowest.add_metric([*values, slot, stage], n)
        yield slowest
        info = GaugeMetricFamily("ssdns_watch_resolver_info", "The resolvers probes ask now: each slot's name "
                                 "(a replica's pod, path, nodelocal, HOST:PORT as listed) and node",
                                 labels=[*labels, "resolver", "resolver_name", "resolver_node"])
        rs = self.watch.resolvers
        for r in rs.known:
            info.add_metric([*values, rs.slot(r), r.label, r.node or ""], 1)
        yield info


async def serve(watch: Watch, host: str | None, port: int) -> web.AppRunner:
    """Start the endpoints; an address in use or not local is a UsageError (one line)."""
    from ssdns.errors import UsageError

    app = web.Application()
    for path, handler in (("/metrics", _metrics), ("/healthz", _healthz), ("/readyz", _readyz),
                          ("/report", _report), ("/", _page)):
        app.router.add_get(path, _bound(handler, watch))
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except OSError as exc:
        await runner.cleanup()
        where = f"{host or '*'}:{port}"
        raise UsageError(f"--listen {where}: cannot listen there ({exc.strerror or exc}); pick another "
                         "port or address") from None
    return runner


def _bound(handler, watch: Watch):
    async def handle(request: web.Request) -> web.Response:
        return await handler(watch)
    return handle


async def _metrics(watch: Watch) -> web.Response:
    body = utf8_safe(generate_latest, watch.metrics.registry)  # a forged node name may hold a lone surrogate
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _healthz(watch: Watch) -> web.Response:
    if watch.healthy(HEALTH_WINDOW):
        return web.Response(text="ok\n")
    return web.Response(status=503, text=f"the pod watch has not been connected for {HEALTH_WINDOW:g} s\n")


async def _readyz(watch: Watch) -> web.Response:
    if watch.ready:
        return web.Response(text="ok\n")
    return web.Response(status=503, text="the first full check has not finished yet\n")


async def _report(watch: Watch) -> web.Response:
    from ssdns.report import render_json

    if watch.last is None or watch.last_error:
        why = f"the last full check could not run: {watch.last_error}" if watch.last_error else \
            "the first full check has not finished yet"
        return web.Response(status=503, text=why + "\n")
    return web.Response(text=render_json(watch.last) + "\n", content_type="application/json")


_STYLE = ("body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0}"
          "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f3f3f3}"
          ".pass{color:#176a1d}.warn{color:#8a6100}.fail{color:#b00020;font-weight:bold}code{font-size:13px}")


async def _page(watch: Watch) -> web.Response:
    return web.Response(text=page(watch), content_type="text/html")


def page(watch: Watch) -> str:
    """The page: verdict, the findings that are not passes, each pod's row, and recent convergence events."""
    t = watch.s.target
    title = html.escape(f"ssdns watch {t.namespace}/{t.statefulset}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='refresh' content='10'>"
            f"<title>{title}</title><style>{_STYLE}</style></head><body><h1>{title}</h1>"
            f"{_verdict(watch)}{_events(watch)}{_spreads(watch)}</body></html>")


def _verdict(watch: Watch) -> str:
    e = html.escape
    parts = []
    if watch.last_error:
        parts.append(f"<p id='error' class='fail'>the last full check could not run: {e(watch.last_error)}</p>")
    r = watch.last
    if r is None:
        return "".join([*parts, "<p id='verdict'>no full check has finished yet</p>"])
    at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(watch.last_check_at or 0))
    verdict = "PASS" if r.ok else "FAIL"
    parts.append(f"<p id='verdict' class='{verdict.lower()}'>{verdict}: last full check at {e(at)}, "
                 f"{r.count(_status('fail'))} failed, {r.count(_status('warn'))} warnings, "
                 f"{r.count(_status('pass'))} passed</p>")
    parts.append("<table id='findings'><tr><th>status</th><th>check</th><th>subject</th><th>message</th></tr>")
    parts += [f"<tr class='{f.status.value}'><td>{f.status.value.upper()}</td><td>{e(f.check)}</td>"
              f"<td>{e(f.subject)}</td><td>{e(f.message)}</td></tr>" for f in r.findings if f.status.value != "pass"]
    parts.append("</table><table id='pods'><tr><th>pod</th><th>IPs</th><th>verdict</th></tr>")
    worst: dict[str, str] = {}
    for f in r.findings:
        if f.status.rank > _status(worst.get(f.subject, "pass")).rank:
            worst[f.subject] = f.status.value
    for p in r.pods:
        w = worst.get(p.name, "pass")
        parts.append(f"<tr><td>{e(p.name)}</td><td>{e(', '.join(p.ips))}</td><td class='{w}'>{w.upper()}</td></tr>")
    return "".join([*parts, "</table>"])


def _events(watch: Watch) -> str:
    e = html.escape
    heads = "".join(f"<th>{s}</th>" for s in (*STAGES, "nxdomain_window"))
    parts = ["<h2>Recent convergence events</h2><table id='events'><tr><th>seen</th><th>pod</th><th>cause</th>"
             f"<th>resolver</th><th>outcome</th>{heads}<th>wrong identity</th><th>still wrong</th></tr>"]
    for ev in reversed(watch.recent):
        cells = "".join(f"<td>{_secs(v)}</td>" for v in [*(ev.stages.get(s) for s in STAGES), ev.nxdomain_window])
        via = (ev.via or ev.resolver) + (" over TCP" if ev.transport == "tcp" else "")
        parts.append(f"<tr class='{'pass' if ev.ok else 'fail'}'><td>{e(ev.seen_at)}</td><td>{e(ev.pod)}</td>"
                     f"<td>{e(ev.cause)}</td><td>{e(via)}</td><td>{e(ev.outcome)}</td>{cells}"
                     f"<td>{ev.wrong}</td><td>{e('; '.join(ev.still_wrong))}</td></tr>")
    if not watch.recent:
        parts.append("<tr><td colspan='12'>no pod replaced since the watch started</td></tr>")
    return "".join([*parts, "</table>"])


def _spreads(watch: Watch) -> str:
    """Per replacement probed through several resolvers: the slowest one per stage, and by how much."""
    if not watch.spreads:
        return ""
    e = html.escape
    parts = ["<h2>Slowest resolver per replacement</h2><table id='spreads'><tr><th>seen</th><th>pod</th>"
             "<th>cause</th><th>stage</th><th>slowest resolver</th><th>its time</th><th>fastest</th>"
             "<th>spread</th></tr>"]
    for sp in reversed(watch.spreads):
        for stage, (who, _, slowest, fastest, spread) in sp.stages.items():
            parts.append(f"<tr class='{'pass' if slowest is not None else 'fail'}'><td>{e(sp.seen_at)}</td>"
                         f"<td>{e(sp.pod)}</td><td>{e(sp.cause)}</td><td>{stage}</td><td>{e(who)}</td>"
                         f"<td>{_secs(slowest) or 'never'}</td><td>{_secs(fastest)}</td><td>{_secs(spread)}</td></tr>")
    return "".join([*parts, "</table>"])


def _status(value: str):
    from ssdns.model import Status

    return Status(value)


def _secs(v: float | None) -> str:
    return "" if v is None else f"{v:.2f} s"
