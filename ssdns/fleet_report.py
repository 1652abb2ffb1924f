"""Render a FleetResult: a summary table then the failing StatefulSets' reports (text), one JSON document
(schema ssdns.fleet/v1), JUnit with one suite per StatefulSet, and Prometheus metrics labelled by
namespace and StatefulSet. Rendering only: every verdict is the single check's."""

from __future__ import annotations

import json
import os

from ssdns import jsonout
from ssdns.fleet import Entry, FleetResult
from ssdns.model import Status
from ssdns.report import Style, render_text

_VERDICT = {"pass": ("ok", Status.PASS), "warn": ("WARN", Status.WARN), "fail": ("FAIL", Status.FAIL),
            "error": ("ERROR", Status.FAIL)}
WORST_WIDTH = 110
DETAILS = 20  # failing StatefulSets whose full report the text shows (a cluster-wide outage fails them all)


FLEET_EXPAND = 4  # each StatefulSet's report laid out as a single check's (jsonout: a pod, a finding per line)


def render_fleet_json(fr: FleetResult) -> str:
    return jsonout.dumps(fr.to_dict(), expand=FLEET_EXPAND)


def write_fleet_json(fr: FleetResult, fp) -> None:
    """render_fleet_json's text, written one StatefulSet's result at a time: the whole document as one dict and
    one string cost ~40 MiB of peak RSS at 200 StatefulSets with --resolvers all (bench/fleet.py)."""
    doc = fr.to_dict(results=False)
    fp.write("{")
    for i, (key, value) in enumerate(doc.items()):
        fp.write(f"{',' if i else ''}\n  {json.dumps(key)}: ")
        if key != "results":
            fp.write(_nested(value, 1))
            continue
        shown = [e.result for e in fr.entries if e.result is not None]
        fp.write("[" if shown else "[]")
        for j, result in enumerate(shown):
            fp.write(f"{',' if j else ''}\n    {_nested(result.to_dict(), 2)}")
        if shown:
            fp.write("\n  ]")
    fp.write("\n}\n")
    fp.flush()


def _nested(value, depth: int) -> str:
    """jsonout's layout of `value` as it reads `depth` levels deep in the document (expanded to level
    FLEET_EXPAND): below that level jsonout writes one line per element, so only its newlines are indented."""
    return jsonout.dumps(value, expand=FLEET_EXPAND - depth).replace("\n", "\n" + "  " * depth)


def headline(fr: FleetResult) -> str:
    n = len(fr.entries)
    parts = [f"{fr.count('fail')} failed", f"{fr.count('error')} not checked", f"{fr.count('warn')} with warnings",
             f"{fr.count('pass')} passed"]
    skipped = f", {len(fr.skipped)} skipped" if fr.skipped else ""
    return (f"ssdns check: {n} StatefulSet{'s' if n != 1 else ''} in {fr.selection.describe()}: "
            f"{', '.join(parts)}{skipped}")


def _worst(e: Entry) -> str:
    if e.result is None:
        text = e.error or ""
    else:
        f = e.worst
        text = "-" if f is None else f"{f.check} {f.subject}: {f.message}"
    return text if len(text) <= WORST_WIDTH else text[:WORST_WIDTH - 3] + "..."


def _pods(e: Entry) -> str:
    if e.result is None:
        return str(e.replicas)
    answered = sum(1 for p in e.result.pods if p.ips)
    return f"{answered}/{e.result.target.replicas if e.result.target.replicas is not None else e.replicas}"


def render_fleet_text(fr: FleetResult, colour: bool = False, max_rows: int | None = None) -> str:
    """The summary table (failing first when it is cut at max_rows), then each failing StatefulSet's own report
    (the first DETAILS of them, unless max_rows is None: --rows all)."""
    s = Style(colour)
    lines = [s(headline(fr), "bold"), "", *_summary_table(fr, s, max_rows)]
    for ns, name, why in fr.skipped:
        lines.append(s(f"skipped {ns}/{name}: {why}", "dim"))
    lines += [s(f"note: {note}", Status.WARN) for note in fr.notes]
    failing = [e for e in fr.entries if e.verdict in ("fail", "error")]
    shown = failing if max_rows is None else failing[:DETAILS]
    for e in shown:
        lines += ["", s(f"=== {e.namespace}/{e.statefulset} ===", "bold")]
        lines.append(render_text(e.result, colour, max_rows=max_rows) if e.result is not None
                     else f"not checked (exit {e.exit_code}): {e.error}")
    if len(shown) < len(failing):
        lines += ["", s(f"... and the reports of {len(failing) - len(shown)} more failing StatefulSets, not shown "
                        "(their rows are above; --rows all shows every report, -o json has them all)", "dim")]
    verdict = "PASS" if fr.ok else "FAIL"
    lines += ["", f"{s(verdict, Status.PASS if fr.ok else Status.FAIL)}: {headline(fr).split(': ', 1)[1]} in "
              f"{fr.elapsed_ms / 1000:.2f} s (exit {fr.exit_code})"]
    return "\n".join(lines)


def _summary_table(fr: FleetResult, s: Style, max_rows: int | None) -> list[str]:
    rank = {"error": 0, "fail": 1, "warn": 2, "pass": 3}
    entries = fr.entries
    if max_rows is not None and len(entries) > max_rows:
        entries = sorted(entries, key=lambda e: rank[e.verdict])[:max_rows]
    rows = [["NAMESPACE", "STATEFULSET", "SERVICE", "PODS", "VERDICT", "WORST FINDING"]]
    rows += [[e.namespace, e.statefulset, e.service or "-", _pods(e), _VERDICT[e.verdict][0], _worst(e)]
             for e in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for i, row in enumerate(rows):
        cells = [c.ljust(w) for c, w in zip(row[:5], widths, strict=True)]
        if i:
            cells[4] = s(cells[4], _VERDICT[entries[i - 1].verdict][1])
        line = "  ".join([*cells, row[5]]).rstrip()
        lines.append(s(line, "dim") if i == 0 else line)
    if len(entries) < len(fr.entries):
        lines.append(s(f"... and {len(fr.entries) - len(entries)} more StatefulSets not shown (--rows all, or "
                       "-o json)", "dim"))
    return lines


def summary_line(fr: FleetResult) -> str:
    """One line for a Job's termination message."""
    first = next((e for e in fr.entries if e.verdict in ("fail", "error")), None)
    tail = f"; first: {first.namespace}/{first.statefulset}: {_worst(first)}" if first else ""
    return f"ssdns {'PASS' if fr.ok else 'FAIL'} {headline(fr).split(': ', 1)[1]}{tail}"[:1000]


def build_fleet_junit(fr: FleetResult):
    """One <testsuite> per StatefulSet (named NS/NAME, the single check's cases); one that could not be
    checked is a suite with one failing case `ssdns.run`."""
    from junitparser import Failure, JUnitXml, TestCase, TestSuite

    from ssdns.junit import _clean, build_junit

    xml = JUnitXml("ssdns")
    for e in fr.entries:
        if e.result is not None:
            [suite] = list(build_junit(e.result))
            suite.name = f"{e.namespace}/{e.statefulset}"
        else:
            suite = TestSuite(f"{e.namespace}/{e.statefulset}")
            suite.add_property("namespace", e.namespace)
            suite.add_property("statefulset", e.statefulset)
            case = TestCase(name=e.statefulset, classname="ssdns.run")
            case.result = [Failure(message=_clean(f"not checked: {e.error}"), type_="ssdns.run")]  # API text
            suite.add_testcase(case)
            suite.update_statistics()
        xml.add_testsuite(suite)
    xml.update_statistics()
    xml.time = round(fr.elapsed_ms / 1000, 6)
    return xml


def write_fleet_junit(fr: FleetResult, path: str) -> None:
    import tempfile

    from ssdns.errors import CannotRun

    xml = build_fleet_junit(fr)
    target = os.path.realpath(path)  # a symlink stays one: its target is replaced
    try:
        fd, tmp = tempfile.mkstemp(prefix=".ssdns-junit-", suffix=".xml.tmp", dir=os.path.dirname(target))
        with os.fdopen(fd, "wb") as fh:
            xml.write(fh)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as exc:
        raise CannotRun(f"cannot write the JUnit report {path}: {exc.strerror or exc}; check that its directory "
                        "exists and is writable") from None


def fleet_metrics(fr: FleetResult):
    """A CollectorRegistry of the fleet's gauges. Bounded: per StatefulSet and check (worst over its
    subjects; no per-pod series, which would multiply by every pod of every StatefulSet)."""
    import time

    from prometheus_client import CollectorRegistry, Gauge

    reg = CollectorRegistry()
    ok = Gauge("ssdns_statefulset_ok", "1 when the StatefulSet passed (warnings allowed), 0 when it failed or "
               "could not be checked", ["namespace", "statefulset"], registry=reg)
    check_ok = Gauge("ssdns_check_ok", "1 unless a finding of this check failed for the StatefulSet",
                     ["namespace", "statefulset", "check"], registry=reg)
    findings = Gauge("ssdns_findings", "Findings per status", ["namespace", "statefulset", "status"], registry=reg)
    for e in fr.entries:
        ok.labels(e.namespace, e.statefulset).set(1.0 if e.verdict in ("pass", "warn") else 0.0)
        if e.result is None:
            continue
        worst: dict[str, bool] = {}
        for f in e.result.findings:
            worst[f.check] = worst.get(f.check, True) and f.status is not Status.FAIL
        for check, good in worst.items():
            check_ok.labels(e.namespace, e.statefulset, check).set(1.0 if good else 0.0)
        for status in Status:
            findings.labels(e.namespace, e.statefulset, status.value).set(e.result.count(status))
    Gauge("ssdns_run_ok", "1 when every StatefulSet passed", registry=reg).set(1.0 if fr.ok else 0.0)
    Gauge("ssdns_run_duration_seconds", "Wall time of the run", registry=reg).set(round(fr.elapsed_ms / 1000, 6))
    verdicts = Gauge("ssdns_statefulsets", "StatefulSets checked, by verdict", ["verdict"], registry=reg)
    for v in ("pass", "warn", "fail", "error"):
        verdicts.labels(v).set(fr.count(v))
    Gauge("ssdns_last_run_timestamp_seconds", "When the run ended (Unix time)", registry=reg).set(time.time())
    return reg


def write_fleet_metrics(fr: FleetResult, path: str) -> None:
    from prometheus_client import write_to_textfile

    from ssdns.errors import CannotRun
    from ssdns.metrics import utf8_safe

    try:
        utf8_safe(lambda reg: write_to_textfile(os.path.realpath(path), reg), fleet_metrics(fr))  # a link's target
    except OSError as exc:
        raise CannotRun(f"cannot write the metrics file {path}: {exc.strerror or exc}") from None


def push_fleet_metrics(fr: FleetResult, url: str, timeout: float = 10.0) -> None:
    """PUT the fleet's metrics to a Pushgateway, grouped by the selection's namespace (`_all` for -A), so a
    run of one namespace never overwrites another's. Failures are one CannotRun line."""
    from urllib.error import HTTPError, URLError

    from prometheus_client import push_to_gateway
    from prometheus_client.exposition import basic_auth_handler, default_handler

    from ssdns.errors import CannotRun
    from ssdns.metrics import _redact, _split_credentials, utf8_safe

    try:
        bare, user, password = _split_credentials(url)

        def auth(url, method, timeout, headers, data):
            return basic_auth_handler(url, method, timeout, headers, data, user, password)

        utf8_safe(lambda reg: push_to_gateway(bare, job="ssdns", registry=reg, timeout=timeout,
                                              grouping_key={"namespace": fr.selection.namespace or "_all"},
                                              handler=auth if user is not None else default_handler), fleet_metrics(fr))
    except HTTPError as exc:
        reason = f"HTTP {exc.code} {exc.reason}"
    except URLError as exc:
        reason = str(exc.reason)
    except (OSError, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
    else:
        return
    raise CannotRun(f"cannot push metrics to the Pushgateway at {_redact(url)}: {reason}; check the URL and that "
                    "the gateway is reachable")
