"""Render a Result as Prometheus metrics: a node-exporter textfile, or a push to a Pushgateway.

Rendering only: every value comes from the Result (and the optional restart convergence times);
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
==================================  ====================  ===============================================

Series without a value (a pod whose HTTP was not asked, a convergence time that is None) are left out.
The Pushgateway grouping key is the identity labels (``statefulset``/``service`` and ``namespace``)
plus the ``extra`` labels, so runs for different StatefulSets never overwrite each other.
"""

from __future__ import annotations

import http.client
import os
import re
import time
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, push_to_gateway, write_to_textfile
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import basic_auth_handler
from prometheus_client.registry import Collector

from ssdns.errors import CannotRun, UsageError
from ssdns.model import Result, Status

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_RESERVED = {"namespace", "statefulset", "service", "check", "ordinal", "status", "job", "instance"}
_RANK = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}


def identity_labels(result: Result) -> dict[str, str]:
    """namespace and statefulset (or service when there is no StatefulSet name): the grouping key."""
    t = result.target
    labels = {"namespace": str(t.get("namespace") or "")}
    if t.get("statefulset"):
        labels["statefulset"] = str(t["statefulset"])
    else:
        labels["service"] = str(t.get("service") or result.service.get("name", "")).rstrip(".")
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


def _norm(name: str) -> str:
    return name.lower().rstrip(".")


class _ResultCollector(Collector):
    """Yields the metric families of one Result; collect() is only ever a rendering."""

    def __init__(self, result: Result, base: dict[str, str], convergence, timestamp: float):
        self.result = result
        self.base = base
        self.convergence = list(convergence or [])
        self.timestamp = timestamp

    def _family(self, name: str, doc: str, extra_labels: tuple[str, ...] = ()):
        return GaugeMetricFamily(name, doc, labels=[*self.base, *extra_labels])

    def _values(self, *extra_values: str) -> list[str]:
        return [*self.base.values(), *extra_values]

    def collect(self):
        r = self.result
        ordinal_of = {p.name: p.ordinal for p in r.pods}

        worst: dict[tuple[str, str], Status] = {}
        for f in r.findings:
            ordinal = ordinal_of.get(f.subject)
            key = (f.check, "" if ordinal is None else str(ordinal))
            if key not in worst or _RANK[f.status] > _RANK[worst[key]]:
                worst[key] = f.status
        fam = self._family("ssdns_check_ok", "1 when the check passed (warnings allowed) for this subject, "
                           "0 when it failed", ("check", "ordinal"))
        for (check, ordinal), status in worst.items():
            fam.add_metric(self._values(check, ordinal), 0.0 if status is Status.FAIL else 1.0)
        yield fam

        fam = self._family("ssdns_findings", "Findings of the run, per status", ("status",))
        for status in Status:
            fam.add_metric(self._values(status.value), float(r.count(status)))
        yield fam

        st = r.stats
        for name, doc, value in (
            ("ssdns_run_ok", "1 when no check failed in the run, else 0", 1.0 if r.ok else 0.0),
            ("ssdns_run_duration_seconds", "Wall time of the run", round((st.get("elapsed_ms") or 0) / 1000, 6)),
            ("ssdns_run_dns_queries", "DNS queries sent in the run", st.get("dns_queries") or 0),
            ("ssdns_run_http_requests", "HTTP requests sent in the run", st.get("http_requests") or 0),
            ("ssdns_last_run_timestamp_seconds", "Unix time the run's metrics were written", self.timestamp),
        ):
            fam = self._family(name, doc)
            fam.add_metric(self._values(), float(value))
            yield fam

        dns_ms: dict[str, float] = {}
        http_ms: dict[str, float] = {}
        lookups = {}
        for lk in r.lookups:
            lookups.setdefault((_norm(str(lk.get("name", ""))), lk.get("type")), lk)
        for pod in r.pods:
            if pod.ordinal is None:
                continue
            ordinal = str(pod.ordinal)
            lk = lookups.get((_norm(pod.fqdn), "A")) or lookups.get((_norm(pod.fqdn), "AAAA"))
            if lk and lk.get("elapsed_ms") is not None:
                dns_ms[ordinal] = max(dns_ms.get(ordinal, 0.0), float(lk["elapsed_ms"]))
            if pod.http and pod.http.get("elapsed_ms") is not None:
                http_ms[ordinal] = max(http_ms.get(ordinal, 0.0), float(pod.http["elapsed_ms"]))
        for name, doc, values in (
            ("ssdns_dns_latency_seconds", "Time to answer the pod's own A query", dns_ms),
            ("ssdns_http_latency_seconds", "Time of the HTTP request to the pod's own IP", http_ms),
        ):
            fam = self._family(name, doc, ("ordinal",))
            for ordinal, ms in sorted(values.items(), key=lambda kv: int(kv[0])):
                fam.add_metric(self._values(ordinal), round(ms / 1000, 6))
            if fam.samples:
                yield fam

        if self.convergence:
            for key, name, doc in (
                ("ready_s", "ssdns_restart_ready_seconds", "Restart test: seconds from restart to pod Ready"),
                ("dns_s", "ssdns_restart_dns_seconds",
                 "Restart test: seconds from restart to the pod's DNS being right"),
                ("http_s", "ssdns_restart_http_seconds",
                 "Restart test: seconds from restart to the pod answering HTTP with its own identity"),
            ):
                fam = self._family(name, doc, ("ordinal",))
                for entry in self.convergence:
                    if entry.get(key) is not None:
                        fam.add_metric(self._values(str(int(entry["ordinal"]))), float(entry[key]))
                if fam.samples:
                    yield fam


def build_registry(result: Result, extra: dict | None = None, *, convergence: list[dict] | None = None,
                   timestamp: float | None = None) -> CollectorRegistry:
    """A fresh registry holding the Result's metrics (see the module docstring)."""
    labels = {**identity_labels(result), **_check_extra(extra)}
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ResultCollector(result, labels, convergence,
                                       time.time() if timestamp is None else timestamp))
    return registry


def write_metrics_file(result: Result, path: str | os.PathLike, extra: dict | None = None, *,
                       convergence: list[dict] | None = None, timestamp: float | None = None) -> None:
    """Write the metrics for the node-exporter textfile collector (name the file *.prom), atomically.

    A file that cannot be written raises CannotRun with one line.
    """
    registry = build_registry(result, extra, convergence=convergence, timestamp=timestamp)
    path = os.fspath(path)
    try:
        write_to_textfile(path, registry)
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
                 extra: dict | None = None, *, convergence: list[dict] | None = None,
                 timestamp: float | None = None) -> None:
    """PUT the metrics to a Pushgateway at url, under /metrics/job/JOB/<grouping key>.

    url is http(s)://host[:port][/prefix] (a bare host:port means http); user:password@ in it is sent
    as HTTP basic auth and never shown in messages.

    The group (job + identity labels + extra labels) is replaced as a whole, so a pod that disappeared
    leaves no stale series. A bad URL, an unreachable gateway, a timeout or an HTTP error status raises
    CannotRun with one line.
    """
    if not job:
        raise UsageError("the Pushgateway job name is empty: give a job name")
    registry = build_registry(result, extra, convergence=convergence, timestamp=timestamp)
    grouping_key = {**identity_labels(result), **_check_extra(extra)}
    try:
        bare, user, password = _split_credentials(url)
        kwargs = {}
        if user is not None:
            def handler(url, method, timeout, headers, data):
                return basic_auth_handler(url, method, timeout, headers, data, user, password)
            kwargs["handler"] = handler
        push_to_gateway(bare, job=job, registry=registry, grouping_key=grouping_key, timeout=timeout,
                        **kwargs)
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
