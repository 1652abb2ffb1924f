"""Render a Result: a table for a person, JSON for programs. Rendering only: nothing is recomputed."""

from __future__ import annotations

from typing import ClassVar

from ssdns.model import PodView, Result, Status, worst

_SYMBOL = {Status.PASS: "ok", Status.WARN: "WARN", Status.FAIL: "FAIL"}


class Style:
    """ANSI colour, used only on a terminal and never when NO_COLOR is set."""

    _CODES: ClassVar[dict[Status | str, str]] = {Status.PASS: "32", Status.WARN: "33", Status.FAIL: "31;1", "dim": "2", "bold": "1"}

    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, text: str, key: Status | str | None) -> str:
        if not self.colour or key not in self._CODES:
            return text
        return f"\x1b[{self._CODES[key]}m{text}\x1b[0m"


def render_json(result: Result) -> str:
    from ssdns import jsonout  # JSON output only: the text report imports no json

    return jsonout.dumps(result.to_dict())


def write_json(result: Result, fp) -> None:
    """render_json's text, streamed: at 5,000 pods the joined string's pieces took ~35 MiB of peak RSS."""
    from ssdns import jsonout

    jsonout.dump(result.to_dict(), fp)
    fp.write("\n")
    fp.flush()


def render_text(result: Result, colour: bool = False, max_rows: int | None = None) -> str:
    """The table for a person. With max_rows, a run over that many pods is summarised: pods with
    problems first, then a count of the rest (and of problems past max_rows); JSON lists them all."""
    s = Style(colour)
    lines = [s(_head(result), "bold"), "", *_table(result, s, max_rows)]
    problems = sorted((f for f in result.findings if f.status is not Status.PASS), key=lambda f: -f.status.rank)
    if problems:
        lines += ["", s("Problems:", "bold")]
        cut = max_rows is not None and len(problems) > max_rows
        if cut:  # what sums up many pods comes before them
            names = {p.name for p in result.pods}
            problems.sort(key=lambda f: (-f.status.rank, f.subject in names))
        for f in problems[:max_rows]:
            lines.append(f"  {s(f.status.value.upper().ljust(4), f.status)}  {f.check:<20} {f.subject}: {f.message}")
        if cut:
            lines.append(s(f"  ... and {len(problems) - (max_rows or 0)} more problems (--rows all, or -o json, "
                           "lists them)", "dim"))
    lines += _sections(result, s)
    if result.notes:
        lines += ["", *(f"note: {n}" for n in result.notes)]
    st = result.stats
    verdict = "PASS" if result.ok else "FAIL"
    lines += ["", f"{s(verdict, Status.PASS if result.ok else Status.FAIL)}: "
              f"{result.count(Status.FAIL)} failed, {_plural(result.count(Status.WARN), 'warning')}, "
              f"{result.count(Status.PASS)} passed in {st.elapsed_ms / 1000:.2f} s "
              f"({st.dns_queries} DNS queries, {st.http_requests} HTTP requests)"]
    return "\n".join(lines)


def _head(result: Result) -> str:
    t = result.target
    head = f"ssdns check {result.service.name}"
    if t.statefulset:
        head += f"  statefulset {t.statefulset}"
        if t.replicas is not None:
            head += f", {t.replicas} replicas"
    return head + f"  via {', '.join(result.stats.nameservers)}"


def _table(result: Result, s: Style, max_rows: int | None = None) -> list[str]:
    """One row per pod, one column per registered check with a column that has findings; past
    max_rows, the pods with problems first and a count of the rest."""
    from ssdns.checks import columns

    statuses: dict[tuple[str, str], list[Status]] = {}  # (check, subject): one pass over the findings
    for f in result.findings:
        statuses.setdefault((f.check, f.subject), []).append(f.status)
    cols = [(label, check) for label, check in columns() if any(check == c for c, _ in statuses)]
    pods = _shown(result.pods, statuses, max_rows)
    rows = [["POD", "IP", *[label for label, _ in cols], "ANSWERED"]]
    rows += [_row(statuses, pod, [check for _, check in cols]) for pod in pods]
    # --resolvers: a column per resolver (what it answered for the pod's name), only when they disagree
    resolvers = next((list(p.by_resolver) for p in result.pods if p.by_resolver), [])
    if resolvers:
        rows[0] += resolvers
        for row, pod in zip(rows[1:], pods, strict=True):
            row += [pod.by_resolver.get(label, "-") for label in resolvers]
    lines = _layout(rows, len(cols), s)
    if not result.pods:
        lines.append("(no pods found)")
    if len(pods) < len(result.pods):
        lines.append(s(f"... and {len(result.pods) - len(pods)} more pods not shown (--rows all, or -o json, "
                       "lists every pod)", "dim"))
    return lines


def _layout(rows: list[list[str]], ncols: int, s: Style) -> list[str]:
    """The rows in aligned columns, the header dim and each check's cell coloured by its status."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [s("  ".join(c.ljust(w) for c, w in zip(rows[0], widths, strict=True)).rstrip(), "dim")]
    symbol_status = {v: k for k, v in _SYMBOL.items()}
    for row in rows[1:]:
        padded = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
        for i in range(2, 2 + ncols):
            padded[i] = s(padded[i], symbol_status.get(row[i]))
        lines.append("  ".join(padded).rstrip())
    return lines


def _shown(pods: list[PodView], statuses: dict[tuple[str, str], list[Status]],
           max_rows: int | None) -> list[PodView]:
    """The rows a table shows: all, or past max_rows those with problems first (stable), cut there."""
    if max_rows is None or len(pods) <= max_rows:
        return pods
    bad = {subject for (_, subject), st in statuses.items() if worst(st) is not Status.PASS}
    return sorted(pods, key=lambda p: p.name not in bad)[:max_rows]


def _row(statuses: dict[tuple[str, str], list[Status]], pod: PodView, checks: list[str]) -> list[str]:
    cells = [pod.name, ", ".join(pod.ips) or "-"]
    for check in checks:
        found = statuses.get((check, pod.name))
        cells.append(_SYMBOL[worst(found)] if found else "-")
    http = pod.http
    if http is not None and http.body is not None:
        cells.append(repr(http.body.strip()[:30]))
    else:
        cells.append(((http.error if http is not None else None) or "-")[:40])
    return cells


def _sections(result: Result, s: Style) -> list[str]:
    """What restart-test and scale-test add: convergence times, the scale order."""
    lines: list[str] = []
    restart = result.stats.restart
    if restart:
        lines += ["", s("Restart:", "bold"), "  POD        READY     DNS RIGHT  HTTP RIGHT  STALE SEEN"]
        for c in restart:
            cells = [("-" if v is None else f"{v:.1f} s") for v in (c.ready_s, c.dns_s, c.http_s)]
            lines.append(f"  {c.pod:<10} {cells[0]:<9} {cells[1]:<10} {cells[2]:<11} {len(c.stale)}")
    scale = result.stats.scale
    if scale:
        lines += ["", f"Scale: {scale.replicas} -> {scale.to} -> {scale.replicas}; removed "
                  f"{', '.join(scale.removed_order) or '-'}; returned {', '.join(scale.returned_order) or '-'}"]
    return lines


def summary_line(result: Result) -> str:
    """One line for a Job's termination message and for logs."""
    verdict = "PASS" if result.ok else "FAIL"
    worst = next((f for f in result.findings if f.status is Status.FAIL), None)
    tail = f"; first: {worst.check} {worst.subject}: {worst.message}" if worst else ""
    return (f"ssdns {verdict} {result.service.name}: {result.count(Status.FAIL)} failed, "
            f"{_plural(result.count(Status.WARN), 'warning')}, {result.count(Status.PASS)} passed{tail}")[:1000]


def render_history(doc: dict, where: str, last: int | None = None) -> str:
    """A timeline of stored snapshots: when, verdict, and what changed per pod, so flapping shows; with
    ssdns watch's convergence events (how each replaced pod's identity came back) in time order."""
    t = doc.get("target", {})
    snaps = doc["history"][-last:] if last else doc["history"]
    head = (f"ssdns history: {t.get('namespace')}/{t.get('statefulset') or t.get('service')} in {where}, "
            f"{len(snaps)} of {len(doc['history'])} snapshots")
    since = snaps[0]["taken_at"] if snaps and last else ""
    events = [e for e in doc.get("events", []) if e["seen_at"] >= since]
    if events:
        head += f", {_plural(len(events), 'convergence event')}"
    timeline = [(snap["taken_at"], 0, _snapshot_line(snap)) for snap in snaps]
    timeline += [(e["seen_at"], 1, _event_line(e)) for e in events]
    return "\n".join([head, "", *(line for _, _, line in sorted(timeline, key=lambda x: (x[0], x[1])))])


def _snapshot_line(snap: dict) -> str:
    verdict = "PASS" if snap.get("ok") else "FAIL"
    pods = snap.get("pods", {})
    names = {o: p["name"] for o, p in pods.items()}
    events = [f"{names.get(o, 'ordinal ' + o)} {', '.join(words)}" for o, words in snap.get("changes", {}).items()]
    broken = snap.get("broken") or []
    tail = "; ".join(events) if events else "no change"
    if broken:
        tail += f"; identity broke: {', '.join(broken)}"
    return f"{snap['taken_at']}  {verdict}  {len(pods)} pods  {tail}"


def _event_line(e: dict) -> str:
    """One convergence event of ssdns watch: the stage times from when the old pod went."""
    stages = e.get("stages") or {}
    times = ", ".join(f"{k} {v:.2f}s" for k, v in stages.items() if isinstance(v, (int, float)))
    tail = f"{e['pod']} {e.get('cause', 'replaced')}"
    if e.get("resolver") not in (None, "path", "default"):  # one event per resolver (watch --resolvers)
        tail += f" through {e.get('via') or e['resolver']}"
    if e.get("transport") == "tcp":
        tail += " over TCP"
    if e.get("ok"):
        tail += f": identity back ({times or 'at once'})"
    else:
        tail += f": {e.get('outcome', 'failed')} after {float(e.get('elapsed') or 0):.1f}s"
        if e.get("still_wrong"):
            tail += f", still wrong: {'; '.join(map(str, e['still_wrong']))}"
        if times:
            tail += f" (right: {times})"
    if isinstance(e.get("nxdomain_window"), (int, float)):
        tail += f"; NXDOMAIN for {e['nxdomain_window']:.2f}s"
    if e.get("wrong"):
        tail += f"; {e['wrong']} wrong-identity answers"
    verdict = "CONV" if e.get("ok") else "FAIL"
    return f"{e['seen_at']}  {verdict}  watch  {tail}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
