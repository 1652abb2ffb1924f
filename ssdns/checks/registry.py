"""The check registry: every check is a pure function of one Evidence, registered with its id.

A check declares the evidence it needs; when a part is missing the check is skipped, never guessed,
and the run says so once per missing part (when the absence is not the user's own choice). The
registry is the one catalogue the outputs follow: the order findings are listed in, the report's
columns, the JUnit test cases and the metric labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ssdns.evidence import Evidence, Need
from ssdns.frozen import frozen
from ssdns.model import Finding, Status

# Why a check did not run, said once per missing part of the evidence. None: the absence is the
# user's choice (--no-http, --api off) or the run's kind (no restart in a plain check): say nothing.
SKIP_NOTES: dict[Need, str | None] = {
    Need.DNS: None,
    Need.SRV: "SRV not checked: give --port-name NAME (the Service's named port)",
    Need.HTTP: None,
    Need.API: None,
    Need.RESTART: None,
    Need.SCALE: None,
    Need.HISTORY: None,
    Need.RESOLVERS: None,
}


@frozen
class Verdict:
    """What a check says about one subject; the registry stamps it with the check's id."""

    status: Status
    subject: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def passed(subject: str, message: str, **details: Any) -> Verdict:
    return Verdict(Status.PASS, subject, message, details)


def warned(subject: str, message: str, **details: Any) -> Verdict:
    return Verdict(Status.WARN, subject, message, details)


def failed(subject: str, message: str, **details: Any) -> Verdict:
    return Verdict(Status.FAIL, subject, message, details)


def fix(verdict: Verdict, hint: str) -> Verdict:
    """The verdict with a fix a person can act on (the field to change, or the command to run): at the
    end of its message, and as details["fix"] in JSON."""
    return Verdict(verdict.status, verdict.subject, f"{verdict.message}; fix: {hint}",
                   {**verdict.details, "fix": hint})


Judge = Callable[[Evidence], Iterable[Verdict]]


@frozen
class Check:
    """One registered check: its id, where its findings are listed, what it needs."""

    id: str  # stable: JSON, JUnit classname, metric label
    place: int  # where its findings are listed: configuration first, it explains the rest
    needs: tuple[Need, ...]
    title: str  # what it checks, in one line (the README's table)
    column: str | None  # the report table's column for per-pod results, if any
    judge: Judge | None  # None: its findings come from elsewhere (the state store)


_CHECKS: dict[str, Check] = {}


def check(id: str, *, place: int, needs: tuple[Need, ...], title: str,
          column: str | None = None) -> Callable[[Judge], Judge]:
    """Register a check: `@check("dns.pod", place=20, needs=(Need.DNS,), title=..., column="DNS")`."""

    def register(fn: Judge) -> Judge:
        declare(Check(id, place, needs, title, column, fn))
        return fn

    return register


def declare(c: Check) -> None:
    if c.id in _CHECKS:
        raise ValueError(f"check {c.id} registered twice")
    _CHECKS[c.id] = c


def findings_of(fn: Judge, verdicts: Iterable[Verdict]) -> list[Finding]:
    """Verdicts stamped with the id of the check registered as `fn`, for a caller that judges one part
    of the evidence on its own (state.py compares snapshots after the run)."""
    [c] = [c for c in _CHECKS.values() if c.judge is fn]
    return [Finding(c.id, v.status, v.subject, v.message, v.details) for v in verdicts]


def catalogue() -> list[Check]:
    """Every check, in the order findings are listed."""
    _load_families()
    return sorted(_CHECKS.values(), key=lambda c: (c.place, c.id))


_families_loaded = False


def _load_families() -> None:
    """Import every family module of ssdns/checks/ (they register their checks), once, on first use: a
    command that needs one family (history needs none) does not pay for all of them."""
    global _families_loaded
    if _families_loaded:
        return
    import importlib
    import pkgutil

    import ssdns.checks

    for module in pkgutil.iter_modules(ssdns.checks.__path__):
        if module.name not in ("registry", "words"):
            importlib.import_module(f"ssdns.checks.{module.name}")
    _families_loaded = True


def columns() -> list[tuple[str, str]]:
    """(label, check id) of the report's per-pod columns, in order."""
    return [(c.column, c.id) for c in catalogue() if c.column]


def order(findings: Iterable[Finding]) -> list[Finding]:
    """Findings in catalogue order; within a check, in the order it said them."""
    rank = {c.id: i for i, c in enumerate(catalogue())}
    return sorted(findings, key=lambda f: rank.get(f.check, len(rank)))


@dataclass
class Judgement:
    """What running the checks gave: findings, and why some were skipped."""

    findings: list[Finding]
    notes: list[str]  # why checks were skipped


def judge(ev: Evidence, only: Iterable[str] | None = None) -> Judgement:
    """Run every check (or those named) whose evidence is present; findings in catalogue order."""
    wanted = set(only) if only is not None else None
    findings: list[Finding] = []
    notes: list[str] = []
    for c in catalogue():
        if c.judge is None or (wanted is not None and c.id not in wanted):
            continue
        missing = [n for n in c.needs if not ev.has(n)]
        if missing:
            for need in missing:
                note = SKIP_NOTES.get(need)
                if note and note not in notes:
                    notes.append(note)
            continue
        for v in c.judge(ev):
            findings.append(Finding(c.id, v.status, v.subject, v.message, v.details,
                                    elapsed_ms=ev.time_for(c.needs, v.subject)))
    return Judgement(findings, notes)
