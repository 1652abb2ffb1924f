"""Convergence after a disruption: restart-test's pods come back as themselves in DNS and HTTP, and
scale-test's pods go in descending and come back in ascending ordinal order (OrderedReady)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ssdns.checks.registry import Verdict, check, failed, passed, warned
from ssdns.evidence import Evidence, Need
from ssdns.names import ordinal

if TYPE_CHECKING:  # every family is imported to list the catalogue: a plain check creates no scale-test classes
    from ssdns.change_evidence import ScaleEvidence


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


@check("restart.converged", place=80, needs=(Need.RESTART,),
       title="restart-test: each deleted pod is Ready, right in DNS and answering as itself again")
def converged(ev: Evidence) -> Iterator[Verdict]:
    r = ev.restart
    assert r is not None
    done = {c.pod: c for c in r.convergences}
    for name in r.planned:
        c = done.get(name)
        if c is None:
            yield warned(name, f"{name} was not restarted: an earlier pod did not come back")
            continue
        timing = (f"Ready {_s(c.ready_s)}, DNS right {_s(c.dns_s)}, HTTP identity right {_s(c.http_s)} "
                  "after the delete")
        stale = f"; stale answers seen {len(c.stale)} times (last at {c.stale[-1].split(':')[0]})" if c.stale else ""
        if c.converged:
            yield passed(name, timing + stale, **c.to_dict())
        else:
            yield failed(name, f"{c.error}: {timing}{stale}", **c.to_dict())


def _order(s: ScaleEvidence, verb: str, seen_all: list[str], direction: str, descending: bool) -> Verdict:
    """Under Parallel pod management the controller acts on all pods at once: any order is allowed."""
    seen = [n for n in seen_all if n in s.removed]
    want = sorted(s.removed, key=lambda n: ordinal(n) or 0, reverse=descending)
    if s.policy != "OrderedReady":
        return passed(s.statefulset, f"{s.policy} pod management: {verb} as {', '.join(seen)} (any order is allowed)")
    if seen == want:
        return passed(s.statefulset, f"{verb} in {direction} order: {', '.join(seen)}")
    return failed(s.statefulset, f"{verb} as {', '.join(seen) or 'nothing seen'}, expected {', '.join(want)} "
                  "(OrderedReady)", seen=seen, expected=want)


@check("scale.order-down", place=85, needs=(Need.SCALE,),
       title="scale-test: the removed pods go in descending ordinal order (OrderedReady)")
def order_down(ev: Evidence) -> Iterator[Verdict]:
    assert ev.scale is not None
    yield _order(ev.scale, "removed", ev.scale.gone_order, "descending", True)


@check("scale.order-up", place=86, needs=(Need.SCALE,),
       title="scale-test: they come back in ascending ordinal order (OrderedReady)")
def order_up(ev: Evidence) -> Iterator[Verdict]:
    assert ev.scale is not None
    yield _order(ev.scale, "came back", ev.scale.came_order, "ascending", False)
