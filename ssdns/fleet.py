"""Many StatefulSets in one run: `check --all`, `-l/--selector`, `-A/--all-namespaces`, `--exclude NS/NAME`.

The StatefulSets come from one list call (namespaced, or cluster-wide with -A), whose items are the whole
objects as of one moment (the list's resourceVersion): each is taken as listed, not read again with a get,
then checked as a single check would check it (its other API facts, DNS, HTTP, the registry's checks),
all under one deadline and one budget of pods in flight (the DNS queries and HTTP requests of several
StatefulSets never add up past it). The API is read through one client with at most API_IN_FLIGHT
StatefulSets' reads at once, sent by as many threads as those reads (kube.Api's pool, not a new thread per
call). A StatefulSet that cannot be checked (no serviceName, the deadline passed before its turn) is an entry
that says why, never a crash of the run. With --resolvers all the cluster DNS replicas are found once for
the run, and each StatefulSet's weight in the budget is its pods times the (resolver, transport) legs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import field
from typing import TYPE_CHECKING

from ssdns import worker as _worker
from ssdns.errors import (
    API_UNAVAILABLE,
    CANNOT_RUN,
    FAILED,
    NOTHING_TO_CHECK,
    OK,
    ApiError,
    ApiUnavailable,
    CannotRun,
    SsdnsError,
    UsageError,
)
from ssdns.frozen import frozen
from ssdns.model import Finding, Result, Status

if TYPE_CHECKING:
    from ssdns.facts import StatefulSetFacts
    from ssdns.kube import Api
    from ssdns.target import ApiOptions, Target

SCHEMA = "ssdns.fleet/v1"
OPT_OUT = "ssdns/skip"  # annotation: "true" leaves a StatefulSet out of --all, --selector and -A
BUDGET = 256  # pods in flight across StatefulSets (each StatefulSet's check also bounds its own flows)
API_IN_FLIGHT = 4  # StatefulSets whose API reads run at once


class NothingToCheck(SsdnsError):
    """The selection matched no StatefulSet (or excluded every one): not a pass."""

    exit_code = NOTHING_TO_CHECK


@frozen
class Selection:
    """Which StatefulSets: in one namespace (None: every namespace, -A), by label selector, minus excluded."""

    namespace: str | None
    selector: str | None = None
    exclude: frozenset[str] = frozenset()  # NS/NAME

    def describe(self) -> str:
        where = "every namespace" if self.namespace is None else f"namespace {self.namespace!r}"
        return f"{where}, selector {self.selector!r}" if self.selector else where


@frozen
class Listed:
    """One StatefulSet the list call returned."""

    namespace: str
    name: str
    service: str
    replicas: int
    statefulset: StatefulSetFacts  # the whole object, parsed as a get's: its facts are not read again
    annotations: dict[str, str] = field(default_factory=dict)


@frozen
class Entry:
    """One StatefulSet's outcome: its Result, or why it could not be checked (error, exit code)."""

    namespace: str
    statefulset: str
    service: str
    replicas: int
    result: Result | None = None
    error: str | None = None
    exit_code: int = OK

    @property
    def verdict(self) -> str:
        if self.result is None:
            return "error"
        if not self.result.ok:
            return "fail"
        return "warn" if self.result.count(Status.WARN) else "pass"

    @property
    def worst(self) -> Finding | None:
        """The first finding of the worst status, in the registry's order."""
        if self.result is None:
            return None
        for status in (Status.FAIL, Status.WARN):
            hit = next((f for f in self.result.findings if f.status is status), None)
            if hit is not None:
                return hit
        return None

    @property
    def code(self) -> int:
        if self.result is None:
            return self.exit_code
        return OK if self.result.ok else FAILED


@frozen
class FleetResult:
    selection: Selection
    entries: list[Entry]
    skipped: list[tuple[str, str, str]]  # (namespace, name, why)
    elapsed_ms: float = 0.0
    notes: list[str] = field(default_factory=list)  # about the selection: an --exclude that matched nothing, ...

    @property
    def ok(self) -> bool:
        return all(e.verdict in ("pass", "warn") for e in self.entries)

    @property
    def exit_code(self) -> int:
        """The worst: the API unusable (4) over could not run (3) over failed (1) over passed (0)."""
        codes = {e.code for e in self.entries}
        for code in (API_UNAVAILABLE, CANNOT_RUN, FAILED):
            if code in codes:
                return code
        return max(codes, default=OK)

    def count(self, verdict: str) -> int:
        return sum(1 for e in self.entries if e.verdict == verdict)

    def to_dict(self, results: bool = True) -> dict:
        """The JSON document; results=False leaves `results` empty (fleet_report.write_fleet_json streams them)."""
        return {
            "schema": SCHEMA,
            "ok": self.ok,
            "summary": {"statefulsets": len(self.entries), **{v: self.count(v) for v in
                                                              ("pass", "warn", "fail", "error")},
                        "skipped": len(self.skipped), "exit_code": self.exit_code},
            "selection": {"namespace": self.selection.namespace, "selector": self.selection.selector,
                          "exclude": sorted(self.selection.exclude)},
            "results": [e.result.to_dict() for e in self.entries if e.result is not None] if results else [],
            "errors": [{"namespace": e.namespace, "statefulset": e.statefulset, "service": e.service,
                        "message": e.error, "exit_code": e.exit_code} for e in self.entries if e.result is None],
            "skipped": [{"namespace": ns, "statefulset": n, "reason": why} for ns, n, why in self.skipped],
            "notes": list(self.notes),
            "stats": {"elapsed_ms": round(self.elapsed_ms, 1),
                      "dns_queries": sum(e.result.stats.dns_queries for e in self.entries if e.result),
                      "http_requests": sum(e.result.stats.http_requests for e in self.entries if e.result)},
        }


def choose(listed: list[Listed], sel: Selection) -> tuple[list[Listed], list[tuple[str, str, str]], list[str]]:
    """The StatefulSets to check, in (namespace, name) order, those left out with why, and notes on what the
    user may not have meant: an --exclude that names no StatefulSet of the selection (a typo leaves the one
    meant checked), an opt-out annotation that is neither "true" nor "false" (checked: say "true" to skip)."""
    keep, skipped, notes = [], [], []
    for item in sorted(listed, key=lambda s: (s.namespace, s.name)):
        key = f"{item.namespace}/{item.name}"
        value = item.annotations.get(OPT_OUT)
        word = (value or "").strip().lower()
        if key in sel.exclude:
            skipped.append((item.namespace, item.name, "--exclude"))
        elif word == "true":
            skipped.append((item.namespace, item.name, f"annotation {OPT_OUT}: \"true\""))
        else:
            keep.append(item)
            if value is not None and word not in ("false", ""):
                shown = value if len(value) <= 40 else value[:37] + "..."
                notes.append(f"{key} has annotation {OPT_OUT}: {shown!r}, which is neither \"true\" nor \"false\": "
                             f"checked; to leave it out: kubectl annotate sts {item.name} -n {item.namespace} "
                             f"--overwrite {OPT_OUT}=true")
    seen = {f"{s.namespace}/{s.name}" for s in listed}
    notes += [f"--exclude {key}: no such StatefulSet in {sel.describe()} (a typo? nothing was left out for it)"
              for key in sorted(sel.exclude - seen)]
    return keep, skipped, notes


def nothing_to_check(sel: Selection, listed: int, skipped: int, notes: list[str] | None = None) -> NothingToCheck:
    """The one line (exit NOTHING_TO_CHECK) when the selection leaves nothing: not a pass (with the first note:
    an --exclude naming nothing may be why a namespace looks empty of what was meant)."""
    if listed:
        msg = f"all {listed} StatefulSets in {sel.describe()} are excluded (--exclude or {OPT_OUT}): nothing to check"
    elif sel.selector:
        msg = f"no StatefulSet in {sel.describe()} matches: nothing to check (kubectl get sts -l '{sel.selector}')"
    elif sel.namespace is not None:
        msg = (f"no StatefulSet in namespace {sel.namespace!r}: nothing to check (does the namespace exist? "
               f"kubectl get namespace {sel.namespace})")
    else:
        msg = "no StatefulSet in any namespace: nothing to check"
    return NothingToCheck(msg + (f"; note: {notes[0]}" if notes else ""))


class Budget:
    """A weighted semaphore: a StatefulSet takes as many units as it has pods (at most the whole budget),
    so the pods in flight across StatefulSets stay within BUDGET."""

    def __init__(self, units: int = BUDGET):
        self.units = units
        self.free = units
        self._cond = asyncio.Condition()

    async def take(self, n: int) -> int:
        n = max(1, min(n, self.units))
        async with self._cond:
            await self._cond.wait_for(lambda: self.free >= n)
            self.free -= n
        return n

    async def give(self, n: int) -> None:
        async with self._cond:
            self.free += n
            self._cond.notify_all()


async def run_fleet(base, api_opts, sel: Selection, deadline: float) -> FleetResult:
    """List, choose and check every StatefulSet of the selection; base is the Target every check starts from
    (zone, nameservers, HTTP options), refined per StatefulSet by its API facts."""
    from ssdns import kube

    started = time.monotonic()
    # The client's threads: as many as the calls that may be in flight (API_IN_FLIGHT StatefulSets' reads).
    client = kube.api_client(api_opts, deadline, calls=API_IN_FLIGHT * kube.READS_AT_ONCE)
    try:
        try:
            listed = await kube.list_statefulsets(client, sel.namespace, sel.selector)
        except ApiError as exc:
            raise _list_failed(exc, sel) from None
        chosen, skipped, notes = choose(listed, sel)
        if not chosen:
            raise nothing_to_check(sel, len(listed), len(skipped), notes)
        discovered, legs = await _resolvers_once(base, api_opts, deadline)
        async with contextlib.AsyncExitStack() as stack:
            worker = None
            # One second core for the whole run (its HTTP requests; small StatefulSets have no large answers).
            if base.http and _worker.wanted(sum(item.replicas for item in chosen)):
                worker = await stack.enter_async_context(_worker.Worker(base.path, deadline))
            shared = _Shared(client, api_opts, base, deadline, Budget(), asyncio.Semaphore(API_IN_FLIGHT),
                             discovered, legs, sel.namespace is None, worker)
            entries = await asyncio.gather(*(_one(shared, item) for item in chosen))
    finally:
        client.close()
    return FleetResult(sel, list(entries), skipped, (time.monotonic() - started) * 1000, notes)


@frozen
class _Shared:
    """What every StatefulSet's check of one run shares: the API client, the deadline, the budget."""

    client: Api
    api_opts: ApiOptions
    base: Target  # the Target every check starts from
    deadline: float
    budget: Budget
    reads: asyncio.Semaphore  # API_IN_FLIGHT StatefulSets' reads at once
    discovered: object  # the DNS replicas found once (--resolvers all), or None
    legs: int  # (resolver, transport) legs each StatefulSet's questions go over
    cluster_wide: bool  # -A: the grants come from the ClusterRole
    worker: object = None  # the worker.Worker every check shares (HTTP requests, large answers), or None


async def _resolvers_once(base, api_opts, deadline: float):
    """With --resolvers or --transport both: the cluster DNS replicas (`all`) found once for the whole run, not
    once per StatefulSet, and how many (resolver, transport) legs each StatefulSet's questions go over, so its
    share of the budget grows with them (every leg asks every question)."""
    choice = base.resolvers
    if not choice.active:
        return None, 1
    from ssdns import resolvers
    from ssdns.target import read_resolv_conf

    warnings: list[str] = []
    replicas = await resolvers.discover(choice.dns_service, api_opts, deadline, warnings) if choice.mode == "all" \
        else []
    asked = resolvers.plan(base.nameservers, choice, replicas, read_resolv_conf().nameservers)
    return (replicas, warnings), len(asked) * (2 if choice.transport == "both" else 1)


def _list_failed(exc: ApiError, sel: Selection) -> SsdnsError:
    if exc.status == 400 and sel.selector:
        return UsageError(f"--selector {sel.selector!r} does not parse: {exc.reason}; use the kubectl -l syntax "
                          "(app=db, tier in (a,b), !legacy)")
    if exc.status == 403 and sel.namespace is None:  # the ApiError's own advice is the namespace's Role's
        reason = f": {exc.reason}" if exc.reason else ""
        return ApiUnavailable(f"cannot {exc.call} (HTTP 403{reason}): grant verb 'list' on 'statefulsets' in every "
                              "namespace to ssdns's ServiceAccount (the ClusterRole in k8s/cluster-wide/)")
    return ApiUnavailable(str(exc))


async def _one(run: _Shared, item: Listed) -> Entry:
    """Check one StatefulSet; whatever stops it becomes its entry, never the run's end."""
    from ssdns import kube
    from ssdns.check import conclude, gather_from

    entry = Entry(item.namespace, item.name, item.service, item.replicas)
    target = run.base.with_(namespace=item.namespace, statefulset=item.name, service=None, replicas=None,
                            port_name=run.base.port_name)
    try:
        async with run.reads:
            _in_time(run.deadline)
            facts = await kube.load_facts(run.client, item.namespace, item.name, None, listed=item.statefulset)
        if facts.problems:  # the API is required (as --api on): a refused read is this StatefulSet's exit 4
            return _refused(entry, facts.problems[0], run.cluster_wide)
        if facts.statefulset is not None and not facts.statefulset.service_name:
            return _replace(entry, error="spec.serviceName is empty: its pods get no DNS names; set it to a "
                            "headless Service in the same namespace", exit_code=FAILED)
        units = await run.budget.take((item.replicas + 1) * run.legs)
        try:
            _in_time(run.deadline)
            gathered = await gather_from(target, run.api_opts, facts, time.monotonic(), run.discovered, run.worker)
        finally:
            await run.budget.give(units)
        return _replace(entry, result=conclude(gathered))
    except SsdnsError as exc:
        return _replace(entry, error=str(exc), exit_code=exc.exit_code)


def _in_time(deadline: float) -> None:
    if time.monotonic() >= deadline:
        raise CannotRun("the deadline passed before its turn; raise --timeout")


def _refused(entry: Entry, problem, cluster_wide: bool) -> Entry:
    """A read of this StatefulSet's objects the API refused or failed: not checked, said with what to grant."""
    text = str(problem)
    if cluster_wide and problem.status == 403:  # with -A the grant is the ClusterRole's, not the namespaced Role's
        text = text.replace("(k8s/rbac.yaml)", "(with -A: the ClusterRole in k8s/cluster-wide/)")
    return _replace(entry, error=text, exit_code=API_UNAVAILABLE)


def _replace(entry: Entry, **changes) -> Entry:
    from dataclasses import replace

    return replace(entry, **changes)
