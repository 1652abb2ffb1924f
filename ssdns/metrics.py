"""Render a Result as Prometheus metrics: a node-exporter textfile, or a push to a Pushgateway.

Rendering only: every value comes from the Result (restart-test's convergence times included);
each call builds a fresh CollectorRegistry, never the process-global one.

Labels are bounded, so series cannot multiply: every metric carries ``namespace`` and ``statefulset``
(or ``service`` instead, when the pods were discovered without a StatefulSet name), plus any
``extra`` constant labels the caller gives (for instance ``{"cluster": "prod"}``). Label values are
names, check ids and ordinals only: never a message, an error text or an IP address.

All metrics are gauges (a textfile or a push holds one run's values, not a running count):

==================================  ====================  ===============================================
metric                              extra labels          value
==================================  ====================  ===============================================
ssdns_check_ok                      check, ordinal        1 unless a finding for it failed (warn counts as
                                                          ok); one series per (check, subject), worst
                                                          status wins; ordinal is the pod's ordinal when
                                                          the subject is a pod, else ""
ssdns_findings                      status                findings of the run, per status (pass|warn|fail)
ssdns_run_ok                                              1 when no check failed, else 0
ssdns_run_duration_seconds                                the run's wall time
ssdns_run_dns_queries                                     DNS queries sent in the run
ssdns_run_http_requests                                   HTTP requests sent in the run
ssdns_dns_latency_seconds           ordinal               time to answer the pod's A query (AAAA when it
                                                          had no A query)
ssdns_http_latency_seconds          ordinal               time of the pod's HTTP request
ssdns_last_run_timestamp_seconds                          when the run was rendered (Unix time)
ssdns_restart_ready_seconds         ordinal               restart test: restart to pod Ready
ssdns_restart_dns_seconds           ordinal               restart test: restart to the pod's DNS right
ssdns_restart_http_seconds          ordinal               restart test: restart to the pod's HTTP identity
ssdns_resolver_ok                   resolver, transport   --resolvers/--transport both: 1 unless the
                                                          resolver's dns.resolver or dns.transport finding
                                                          failed; resolver is a slot (path, nodelocal,
                                                          replica-<k>, listed-<k>), never a pod name or IP
ssdns_resolver_answered_ratio       resolver, transport   the share of questions the resolver answered
ssdns_resolver_latency_seconds      resolver, transport,  the resolver's p50 and p99 answer time
                                    quantile
ssdns_resolver_slow_answers         resolver, transport   answers slower than 4.5 s (the conntrack race)
==================================  ====================  ===============================================

Series without a value (a pod whose HTTP was not asked, a convergence time that is None) are left out.
The Pushgateway grouping key is the identity labels (``statefulset``/``service`` and ``namespace``)
plus the ``extra`` labels, so runs for different StatefulSets never overwrite each other.
"""

from __future__ import annotations

import copy
import http.client
import os
import re
import time
from collections.abc import Callable, Iterator
from typing import TypeVar
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, push_to_gateway, write_to_textfile
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import basic_auth_handler, default_handler
from prometheus_client.registry import Collector

from ssdns.errors import CannotRun, UsageError
from ssdns.model import Result, Status, worst

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_SURROGATE = re.compile("[\ud800-\udfff]")
T = TypeVar("T")
_RESERVED = {"namespace", "statefulset", "service", "check", "ordinal", "status", "job", "instance"}


def identity_labels(result: Result) -> dict[str, str]:
    """namespace and statefulset (or service when there is no StatefulSet name): the grouping key."""
    t = result.target
    labels = {"namespace": t.namespace or ""}
    if t.statefulset:
        labels["statefulset"] = t.statefulset
    else:
        labels["service"] = (t.service or result.service.name).rstrip(".")
    return labels


def _check_extra(extra: dict | None) -> dict[str, str]:
    out = {}
    for name, value in (extra or {}).items():
        if not isinstance(name, str) or not _LABEL_NAME.match(name) or name.startswith("__"):
            raise UsageError(f"metric label {name!r} is not a valid Prometheus label name: use letters, "
                             "digits and '_', not starting with a digit or '__'")
        if name in _RESERVED:
            raise UsageError(f"metric label {name!r} is set by ssdns itself: choose another name")
        if not isinstance(value, str) or not value or len(value) > 256 or any(c.isspace() for c in value):
            raise UsageError(f"metric label {name}={value!r}: give a non-empty value without spaces "
                             "(at most 256 characters)")
        out[name] = value
    return out


_RESTART_TIMES = (
    ("ready_s", "ssdns_restart_ready_seconds", "Restart test: seconds from restart to pod Ready"),
    ("dns_s", "ssdns_restart_dns_seconds", "Restart test: seconds from restart to the pod's DNS being right"),
    ("http_s", "ssdns_restart_http_seconds",
     "Restart test: seconds from restart to the pod answering HTTP with its own identity"),
)


class Utf8Safe(Collector):
    """Another collector's metrics, each lone surrogate in a label value replaced by U+FFFD. JSON can say
    "\\ud800" (a forged API answer naming a StatefulSet or a node); the exposition is UTF-8, which cannot
    carry it, and raised: no metrics file, a traceback. Used through utf8_safe only, after such a failure."""

    def __init__(self, inner: Collector):
        self.inner = inner

    def collect(self) -> Iterator[Metric]:
        for metric in self.inner.collect():
            metric = copy.copy(metric)
            metric.samples = [s._replace(labels={k: _SURROGATE.sub("\ufffd", v) for k, v in s.labels.items()})
                              for s in metric.samples]
            yield metric


def utf8_safe(expose: Callable[[Collector], T], registry: Collector) -> T:
    """expose(registry) (write, push or render it), and again with Utf8Safe(registry) when UTF-8 refused it:
    every exposition ssdns writes goes through this; the common case costs nothing (no pass over the labels)."""
    try:
        return expose(registry)
    except UnicodeEncodeError:
        return expose(Utf8Safe(registry))


class _ResultCollector(Collector):
    """Yields the metric families of one Result; collect() is only ever a rendering."""

    def __init__(self, result: Result, base: dict[str, str], timestamp: float):
        self.result = result
        self.base = base
        self.timestamp = timestamp

    def _family(self, name: str, doc: str, extra_labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=[*self.base, *extra_labels])

    def _values(self, *extra_values: str) -> list[str]:
        return [*self.base.values(), *extra_values]

    def collect(self) -> Iterator[Metric]:
        yield self._checks()
        yield self._findings()
        yield from self._run()
        yield from self._latencies()
        yield from self._restart()
        yield from self._resolvers()

    def _checks(self) -> GaugeMetricFamily:
        """One series per (check, ordinal), in the registry's order: the worst status wins."""
        r = self.result
        ordinal_of = {p.name: p.ordinal for p in r.pods}
        statuses: dict[tuple[str, str], list[Status]] = {}
        for f in r.findings:
            ordinal = ordinal_of.get(f.subject)
            statuses.setdefault((f.check, "" if ordinal is None else str(ordinal)), []).append(f.status)
        fam = self._family("ssdns_check_ok", "1 when the check passed (warnings allowed) for this subject, "
                           "0 when it failed", ("check", "ordinal"))
        for (check, label), seen in statuses.items():
            fam.add_metric(self._values(check, label), 0.0 if worst(seen) is Status.FAIL else 1.0)
        return fam

    def _findings(self) -> GaugeMetricFamily:
        fam = self._family("ssdns_findings", "Findings of the run, per status", ("status",))
        for status in Status:
            fam.add_metric(self._values(status.value), float(self.result.count(status)))
        return fam

    def _run(self) -> Iterator[GaugeMetricFamily]:
        r, st = self.result, self.result.stats
        for name, doc, value in (
            ("ssdns_run_ok", "1 when no check failed in the run, else 0", 1.0 if r.ok else 0.0),
            ("ssdns_run_duration_seconds", "Wall time of the run", round(st.elapsed_ms / 1000, 6)),
            ("ssdns_run_dns_queries", "DNS queries sent in the run", st.dns_queries),
            ("ssdns_run_http_requests", "HTTP requests sent in the run", st.http_requests),
            ("ssdns_last_run_timestamp_seconds", "Unix time the run's metrics were written", self.timestamp),
        ):
            fam = self._family(name, doc)
            fam.add_metric(self._values(), float(value))
            yield fam

    def _latencies(self) -> Iterator[GaugeMetricFamily]:
        pods = sorted((p for p in self.result.pods if p.ordinal is not None), key=lambda p: p.ordinal or 0)
        for name, doc, values in (
            ("ssdns_dns_latency_seconds", "Time to answer the pod's own A query",
             [(p.ordinal, p.dns_ms) for p in pods]),
            ("ssdns_http_latency_seconds", "Time of the HTTP request to the pod's own IP",
             [(p.ordinal, p.http.elapsed_ms if p.http is not None else None) for p in pods]),
        ):
            fam = self._family(name, doc, ("ordinal",))
            for ordinal, ms in values:
                if ms is not None:
                    fam.add_metric(self._values(str(ordinal)), round(ms / 1000, 6))
            if fam.samples:
                yield fam

    def _restart(self) -> Iterator[GaugeMetricFamily]:
        for key, name, doc in _RESTART_TIMES:
            fam = self._family(name, doc, ("ordinal",))
            for c in self.result.stats.restart or []:
                value = getattr(c, key)
                if value is not None and c.ordinal is not None:
                    fam.add_metric(self._values(str(c.ordinal)), float(value))
            if fam.samples:
                yield fam


    def _resolvers(self) -> Iterator[GaugeMetricFamily]:
        """Per resolver and transport, labelled by slot: bounded by the resolvers asked, stable across a
        DNS rollout (a replica's pod name changes; its slot does not)."""
        ev = self.result.resolvers
        if ev is None:
            return
        bad = {(f.subject, f.check) for f in self.result.findings if f.status is Status.FAIL}
        labels = ("resolver", "transport")
        ok = self._family("ssdns_resolver_ok", "1 unless the resolver disagreed, did not answer, or its UDP and "
                          "TCP answers differed", labels)
        ratio = self._family("ssdns_resolver_answered_ratio", "Share of the questions the resolver answered", labels)
        lat = self._family("ssdns_resolver_latency_seconds", "The resolver's p50 and p99 answer time",
                           (*labels, "quantile"))
        slow = self._family("ssdns_resolver_slow_answers", "Answers slower than 4.5 s (the conntrack race)", labels)
        for leg in ev.legs:
            r = leg.resolver
            values = self._values(r.slot or r.kind, leg.transport)
            failed = (r.label, "dns.resolver") in bad or (r.label, "dns.transport") in bad
            ok.add_metric(values, 0.0 if failed else 1.0)
            ratio.add_metric(values, round(len(leg.answering) / len(leg.lookups), 6) if leg.lookups else 0.0)
            q = leg.latency()
            for quantile, ms in (("0.5", q.p50_ms), ("0.99", q.p99_ms)):
                if ms is not None:
                    lat.add_metric([*values, quantile], round(ms / 1000, 6))
            slow.add_metric(values, float(q.slow))
        yield from (f for f in (ok, ratio, lat, slow) if f.samples)


def result_families(result: Result, timestamp: float, extra: dict | None = None) -> Iterator[Metric]:
    """The Result's metric families, for a registry that lives longer than one run (ssdns watch)."""
    yield from _ResultCollector(result, {**identity_labels(result), **_check_extra(extra)}, timestamp).collect()


def build_registry(result: Result, extra: dict | None = None, *,
                   timestamp: float | None = None) -> CollectorRegistry:
    """A fresh registry holding the Result's metrics (see the module docstring)."""
    labels = {**identity_labels(result), **_check_extra(extra)}
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ResultCollector(result, labels, time.time() if timestamp is None else timestamp))
    return registry


def write_metrics_file(result: Result, path: str | os.PathLike, extra: dict | None = None, *,
                       timestamp: float | None = None) -> None:
    """Write the metrics for the node-exporter textfile collector (name the file *.prom), atomically.

    A file that cannot be written raises CannotRun with one line.
    """
    registry = build_registry(result, extra, timestamp=timestamp)
    path = os.fspath(path)
    try:
        utf8_safe(lambda reg: write_to_textfile(os.path.realpath(path), reg), registry)  # a link's target, the link kept
    except OSError as exc:
        raise CannotRun(f"cannot write the metrics file {path}: {exc.strerror or exc}; "
                        "check that its directory exists and is writable") from None


def _split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """(url without user:password, user, password); a scheme other than http(s) raises ValueError."""
    if "://" in url and url.split("://", 1)[0].lower() not in ("http", "https"):
        raise ValueError("only http:// and https:// URLs are supported")
    parts = urlsplit(url if "://" in url else f"http://{url}")
    parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    if parts.username is None and parts.password is None:
        return url, None, None
    bare = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    return bare, unquote(parts.username or ""), unquote(parts.password or "")


def _redact(url: str) -> str:
    """The URL without any user:password, for messages."""
    return re.sub(r"^((?:[a-zA-Z][a-zA-Z0-9+.-]*://)?)[^/@]*@", r"\1***@", url)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def push_metrics(result: Result, url: str, job: str = "ssdns", timeout: float = 10.0,
                 extra: dict | None = None, *, timestamp: float | None = None) -> None:
    """PUT the metrics to a Pushgateway at url, under /metrics/job/JOB/<grouping key>.

    url is http(s)://host[:port][/prefix] (a bare host:port means http); user:password@ in it is sent
    as HTTP basic auth and never shown in messages.

    The group (job + identity labels + extra labels) is replaced as a whole, so a pod that disappeared
    leaves no stale series. A bad URL, an unreachable gateway, a timeout or an HTTP error status raises
    CannotRun with one line.
    """
    if not job:
        raise UsageError("the Pushgateway job name is empty: give a job name")
    registry = build_registry(result, extra, timestamp=timestamp)
    grouping_key = {**identity_labels(result), **_check_extra(extra)}
    try:
        bare, user, password = _split_credentials(url)

        def auth_handler(url, method, timeout, headers, data):
            return basic_auth_handler(url, method, timeout, headers, data, user, password)

        utf8_safe(lambda reg: push_to_gateway(bare, job=job, registry=reg, grouping_key=grouping_key, timeout=timeout,
                                              handler=auth_handler if user is not None else default_handler),
                  registry)
    except HTTPError as exc:
        reason = f"HTTP {exc.code} {exc.reason}"
        exc.close()
    except URLError as exc:
        reason = str(exc.reason)
    except TimeoutError:
        reason = f"no answer within {timeout} s"
    except (OSError, ValueError, http.client.HTTPException) as exc:
        reason = str(exc) or type(exc).__name__
    else:
        return
    raise CannotRun(_one_line(f"cannot push metrics to the Pushgateway at {_redact(url)}: {reason}; "
                              "check the URL and that the gateway is reachable")) from None
