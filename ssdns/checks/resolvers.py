"""Every resolver asked the same questions: the one that disagrees, UDP against TCP, and how slow.

Runs with --resolvers all|LIST or --transport both (the evidence is ssdns/resolvers.py's). What is
right for a name is what the Kubernetes API says it should be (a pod's own name and the Service's
addresses), else what most resolvers answer; a resolver is named only when it differs from that and
not every resolver says the same (a wrong answer all give is the other checks' finding).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ssdns.checks.registry import Verdict, check, failed, passed, warned
from ssdns.dnsquery import Lookup, Outcome
from ssdns.evidence import Evidence, Need
from ssdns.names import pod_from_fqdn

if TYPE_CHECKING:  # every family is imported to list the catalogue: a run without --resolvers loads no resolvers.py
    from ssdns.resolvers import Leg, Question, Resolver, ResolverEvidence

Answer = tuple[str, tuple[str, ...]]  # (outcome, values): what a resolver said about one question
EXAMPLES = 3  # names quoted per finding; the count says how many more
SLOW_MS = 4500.0  # the conntrack-race signature: a UDP answer that came only after a resend at 5 s
P99_WARN_MS = 1000.0  # a healthy in-cluster resolver answers in milliseconds


def _answer(lk: Lookup) -> Answer:
    return (lk.outcome.value, lk.values)


def _words(a: Answer) -> str:
    outcome, values = a
    return ", ".join(values) if outcome == Outcome.OK else outcome.upper()


def _api_truth(ev: Evidence, q: Question) -> Answer | None:
    """What the API says a pod's own name or the Service name should answer (A and AAAA); None when
    it cannot say."""
    name, rdtype = q
    if ev.api is None or not ev.api.want or rdtype not in ("A", "AAAA"):
        return None
    six = rdtype == "AAAA"
    fam = lambda ips: tuple(sorted(ip for ip in ips if (":" in ip) == six))  # noqa: E731
    if name == ev.target.service_fqdn.lower():
        ips = fam(ip for w in ev.api.want.values() if w.in_service for ip in w.ips)
        return (Outcome.OK.value, ips) if ips else None
    pod = pod_from_fqdn(ev.target.service_fqdn, name)
    want = ev.api.want.get(pod) if pod is not None else None
    if want is None:
        return None
    if not want.has_name:
        return (Outcome.NXDOMAIN.value, ())
    ips = fam(want.ips)
    return (Outcome.OK.value, ips) if ips else None


def _short(ev: Evidence, name: str) -> str:
    if name == ev.target.service_fqdn.lower():
        return "the Service name"
    return pod_from_fqdn(ev.target.service_fqdn, name) or name.rstrip(".")


def _what(ev: Evidence, got: Answer, right: Answer, by_api: bool) -> str:
    """`10.244.2.9, a stale IP (the API says 10.244.2.17)`."""
    text = _words(got)
    if by_api and ev.api is not None and got[0] == Outcome.OK.value:
        owners = {ip: ev.api.owner_of(ip) for ip in got[1] if ip not in right[1]}
        stale = [ip for ip, o in owners.items() if o is None]
        others = sorted({o for o in owners.values() if o})
        if stale:
            text += f", a stale IP ({', '.join(stale)} belongs to no pod)" if len(got[1]) > 1 else ", a stale IP"
        elif others:
            text += f" ({', '.join(others)}'s IP)"
    return f"{text} ({'the API says' if by_api else 'the others say'} {_words(right)})"


def _right(ev: Evidence, q: Question, said: dict[Resolver, Answer]) -> tuple[Answer | None, bool]:
    """What is right for q, and whether the API said so (else: the strict majority of resolvers)."""
    truth = _api_truth(ev, q)
    if truth is not None:
        return truth, True
    top = Counter(said.values()).most_common(2)
    if top and (len(top) == 1 or top[0][1] > top[1][1]) and top[0][1] * 2 > len(said):
        return top[0][0], False
    return None, False


@check("dns.resolver", place=32, needs=(Need.RESOLVERS,),
       title="every resolver (path, each DNS replica, NodeLocal) answers every name as the API and the others do")
def resolver_agreement(ev: Evidence) -> Iterator[Verdict]:
    from ssdns.resolvers import said_something

    rev = ev.resolvers
    assert rev is not None
    for w in rev.warnings:  # `all` could not find the replicas: the run asked fewer resolvers
        yield warned(rev.dns_service, w)
    legs = {r: g for r in rev.resolvers if (g := rev.primary(r)) is not None}
    wrong: dict[Resolver, list[str]] = {r: [] for r in legs}
    split: list[str] = []
    for q in rev.questions:
        said = {r: _answer(lk) for r, g in legs.items() if (lk := g.lookups.get(q)) is not None and said_something(lk)}
        if len(set(said.values())) > 1:  # one voice (or none): nothing to compare
            _compare(ev, q, said, wrong, split)
    for r, g in legs.items():
        yield from _judge_one(r, g, wrong[r], len(rev.questions))
    if split:
        yield failed(ev.target.service_fqdn.rstrip("."),
                     f"the resolvers disagree on {len(split)} name(s) and neither the API nor a majority says "
                     f"which is right: {' | '.join(split[:EXAMPLES])}{_more(split)}", names=len(split))


def _compare(ev: Evidence, q: Question, said: dict[Resolver, Answer], wrong: dict[Resolver, list[str]],
             split: list[str]) -> None:
    """Note, per resolver, how its answer to q differs from what is right (or that nobody can say)."""
    right, by_api = _right(ev, q, said)
    if right is None:
        split.append(f"{_short(ev, q[0])} {q[1]}: " + "; ".join(f"{r.label} says {_words(a)}" for r, a in said.items()))
        return
    ok = [r for r, a in said.items() if a == right]
    for r, a in said.items():
        if a == right:
            continue
        others = len(said) - 1
        agree = sum(1 for x in ok if x is not r)
        tail = (f"the other {others} {'is' if others == 1 else 'are'} right" if agree == others
                else f"{agree} of the other {others} right")
        wrong[r].append(f"{_short(ev, q[0])} {q[1]} with {_what(ev, a, right, by_api)}; {tail}")


def _judge_one(r: Resolver, g: Leg, wrong: list[str], questions: int) -> Iterator[Verdict]:
    from ssdns.resolvers import said_something

    late = [lk for lk in g.lookups.values() if lk.outcome is Outcome.TIMEOUT and "deadline reached" in lk.detail]
    if late:  # the run's deadline, not the resolver: say so, and judge what was asked
        yield warned(r.label, f"{r.describe()} was not asked {len(late)} of {len(g.lookups)} questions before the "
                     "deadline: raise --timeout", resolver=r.to_dict(), not_asked=len(late))
    silent = [lk for lk in g.lookups.values() if not said_something(lk) and lk not in late]
    if silent:
        yield _silent(r, silent, len(g.lookups) - len(late))
        if len(silent) == len(g.lookups) - len(late):
            return
    if wrong:
        yield failed(r.label, f"{r.describe()} answers {' | '.join(wrong[:EXAMPLES])}{_more(wrong)}",
                     resolver=r.to_dict(), wrong=len(wrong))
    elif not silent and not late:
        yield passed(r.label, f"{r.describe()} answers all {questions} questions as the others and the API do",
                     resolver=r.to_dict())


def _silent(r: Resolver, silent: list[Lookup], asked: int) -> Verdict:
    first = silent[0]
    why = first.detail or first.outcome.value
    if len(silent) == asked:
        return failed(r.label, f"{r.describe()} does not answer: {why}", resolver=r.to_dict(), unanswered=len(silent))
    return failed(r.label, f"{r.describe()} did not answer {len(silent)} of {asked} questions "
                  f"(e.g. {first.name} {first.rdtype}: {why})", resolver=r.to_dict(), unanswered=len(silent))


def _more(items: list[str]) -> str:
    return f" (and {len(items) - EXAMPLES} more)" if len(items) > EXAMPLES else ""


@check("dns.transport", place=33, needs=(Need.RESOLVERS,),
       title="with --transport both, each resolver answers every name the same over UDP and TCP")
def transport_agreement(ev: Evidence) -> Iterator[Verdict]:
    rev = ev.resolvers
    assert rev is not None
    if rev.transport != "both":
        return
    for r in rev.resolvers:
        udp, tcp = rev.leg(r, "udp"), rev.leg(r, "tcp")
        if udp is None or tcp is None or not udp.answering:
            continue  # a resolver that does not answer at all is dns.resolver's finding
        yield from _compare_legs(ev, r, udp, tcp, rev)


def _compare_legs(ev: Evidence, r: Resolver, udp: Leg, tcp: Leg, rev: ResolverEvidence) -> Iterator[Verdict]:
    from ssdns.resolvers import said_something

    if not tcp.answering:
        lk = next(iter(tcp.lookups.values()), None)
        why = (lk.detail or lk.outcome.value) if lk is not None else "no answer"
        truncated = sum(1 for x in udp.lookups.values() if x.tcp)
        extra = (f"; {truncated} UDP answers were truncated and could not be completed" if truncated else "")
        yield failed(r.label, f"{r.describe()} answers over UDP but not over TCP ({why}): a client that retries a "
                     f"truncated answer over TCP gets nothing{extra}", resolver=r.to_dict())
        return
    diffs = []
    for q in rev.questions:
        u, t = udp.lookups.get(q), tcp.lookups.get(q)
        if u is None or t is None or not (said_something(u) and said_something(t)) or _answer(u) == _answer(t):
            continue
        diffs.append(_transport_diff(ev, q, u, t))
    if diffs:
        yield failed(r.label, f"{r.describe()}: UDP and TCP disagree on {len(diffs)} of {len(rev.questions)} "
                     f"names: {' | '.join(diffs[:EXAMPLES])}{_more(diffs)}", resolver=r.to_dict(), names=len(diffs))
    else:
        yield passed(r.label, f"{r.describe()}: UDP and TCP agree on all {len(rev.questions)} names",
                     resolver=r.to_dict())


def _transport_diff(ev: Evidence, q: Question, u: Lookup, t: Lookup) -> str:
    head = f"{_short(ev, q[0])} {q[1]}"
    if u.ok and t.ok:
        only_u, only_t = sorted(set(u.values) - set(t.values)), sorted(set(t.values) - set(u.values))
        parts = [f"only over UDP: {', '.join(only_u)}" if only_u else "", f"only over TCP: {', '.join(only_t)}"
                 if only_t else ""]
        return f"{head} ({'; '.join(p for p in parts if p)})"
    return f"{head} (UDP: {_words(_answer(u))}; TCP: {_words(_answer(t))})"


@check("dns.latency", place=34, needs=(Need.RESOLVERS,),
       title=f"each resolver's p99 stays under {P99_WARN_MS / 1000:g} s and no answer takes over "
             f"{SLOW_MS / 1000:g} s (the conntrack race)")
def latency(ev: Evidence) -> Iterator[Verdict]:
    rev = ev.resolvers
    assert rev is not None
    for g in rev.legs:
        lat = g.latency()
        if not lat.answers:
            continue
        subject = g.resolver.label
        where = f"{g.resolver.describe()} over {g.transport.upper()}"
        numbers = f"p50 {lat.p50_ms:g} ms, p99 {lat.p99_ms:g} ms over {lat.answers} answers"
        details = {"resolver": g.resolver.label, "transport": g.transport, "p50_ms": lat.p50_ms,
                   "p99_ms": lat.p99_ms, "slow": lat.slow, "answers": lat.answers}
        if lat.slow:
            yield warned(subject, f"{where}: {lat.slow} answer(s) took over {SLOW_MS / 1000:g} s, the signature of "
                         f"the conntrack race (a UDP query lost and resent after 5 s); {numbers}", **details)
        elif lat.p99_ms is not None and lat.p99_ms > P99_WARN_MS:
            yield warned(subject, f"{where}: slow, {numbers}", **details)
        else:
            yield passed(subject, f"{where}: {numbers}", **details)
