"""A small DNS-only check without asyncio: the same questions, the same Observations, the same checks.

A CronJob may run `ssdns check --api off --no-http` every minute, and for a few pods most of such a run was
start-up; asyncio alone (with ssl, concurrent.futures and logging) was ~30 ms of ~0.15 s. So a check that
needs nothing asyncio gives (no HTTP, no API, no other resolvers, no child process) asks its questions in
rounds through the blocking client (dnssync.py), each round every question the answers so far call for, at
once. The rules of which questions a run asks and which pods it finds are observations.py's, shared with
observe.py, which asks the same questions as flows (every size, with HTTP). tests/test_smallcheck.py holds
both front ends to the same Result.
"""

from __future__ import annotations

import time

from ssdns import gcpace, sizing
from ssdns.check import Run, _require_service, conclude, must_have_answered, unfinished
from ssdns.dnsquery import Lookup
from ssdns.evidence import Evidence
from ssdns.expected import expected_pods
from ssdns.model import Result
from ssdns.names import reverse_name
from ssdns.observations import (
    Observations,
    PodObservation,
    asks_aaaa,
    found_by_ptr,
    found_by_srv,
    service_ips,
    warn_if_short,
)
from ssdns.target import ApiOptions, Target

Question = tuple[str, str, int]  # (name, type, records expected)
ROUNDS = 8  # the longest chain is 5 (the Service's names, PTR of its IPs, a pod's A, its AAAA, its PTRs)


def eligible(target: Target, api: ApiOptions) -> bool:
    """A check this front end can run as observe.py would: DNS only, without the API (--api off), along the
    resolv.conf path alone, too small for a child process (sizing.py; SSDNS_WORKER=1 forces one, for tests)."""
    return (api.mode == "off" and not target.http and not target.resolvers.active
            and not sizing.worker_wanted(target.replicas or 0))


def run_check(target: Target) -> Result:
    gcpace.running()  # start-up is over: its objects frozen, the collector at its usual pace (gcpace.py)
    return conclude(gather(target))


def gather(target: Target) -> Run:
    """check.gather for --api off and the path's resolvers only."""
    started = time.monotonic()
    deadline = target.deadline or started + target.timeout
    _require_service(target, None)
    expected = expected_pods(target, None)
    obs = observe(target, deadline, expected)
    must_have_answered(obs)
    return Run(Evidence(target, obs, tuple(expected), None, resolvers=None), "off", started)


def observe(target: Target, deadline: float, expected: list[str]) -> Observations:
    from ssdns.dnssync import BlockingClient  # (dnspython with it)

    start = time.monotonic()
    warn_if_short(len(expected), target, deadline - start)
    walk = Walk(target, expected, deadline)
    transport = "tcp" if target.resolvers.transport == "tcp" else "udp"
    with BlockingClient(target.nameservers, deadline, transport=transport) as dns:
        for _ in range(ROUNDS):
            questions = walk.questions()
            if not questions:
                break
            walk.got(questions, dns.ask(questions))
        else:
            raise AssertionError(f"questions left after {ROUNDS} rounds")  # unreachable: see ROUNDS
        return walk.observations(dns.queries_sent, dns.lookups(), (time.monotonic() - start) * 1000)


class Walk:
    """The questions of one observation, round by round, from the answers so far (no I/O): the Service's names
    and every expected pod's at once; the pods that SRV and the PTRs of the Service's IPs name when those are
    answered; each pod's AAAA when the Service is (also) IPv6; the PTR of each IP once its pod's addresses are
    known. Pods are found in observe.py's order: expected, then SRV's, then the PTRs'."""

    def __init__(self, target: Target, expected: list[str], deadline: float, clock=time.monotonic) -> None:
        self.target, self.deadline, self.clock = target, deadline, clock
        t, n = target, len(expected)
        self.svc_a, self.svc_aaaa = (t.service_fqdn, "A", n), (t.service_fqdn, "AAAA", 0)
        self.srv = (t.srv_name, "SRV", n) if t.srv_name else None
        self.version = (f"dns-version.{t.zone}.", "TXT", 0)
        self.answers: dict[tuple[str, str], Lookup] = {}
        self.pods: dict[str, str] = {}  # name -> how it was found
        self.srv_done = self.ptr_done = False
        self._found(expected, "expected")

    def answer(self, q: Question) -> Lookup | None:
        return self.answers.get((q[0].lower(), q[1]))

    def got(self, questions: list[Question], lookups: list[Lookup]) -> None:
        for q, lookup in zip(questions, lookups, strict=True):
            self.answers[(q[0].lower(), q[1])] = lookup

    def questions(self) -> list[Question]:
        """What the answers so far call for and nobody asked yet."""
        want = [self.svc_a, self.svc_aaaa, *([self.srv] if self.srv else []), self.version]
        a, aaaa = self.answer(self.svc_a), self.answer(self.svc_aaaa)
        if a is not None and aaaa is not None:
            self._discover(service_ips(a, aaaa), want)
        for name in self.pods:
            want += self._pod(name)
        seen: set[tuple[str, str]] = set()
        out = []
        for q in want:
            key = (q[0].lower(), q[1])
            if key not in self.answers and key not in seen:
                seen.add(key)
                out.append(q)
        return out

    def _discover(self, service: list[str], want: list[Question]) -> None:
        srv = self.answer(self.srv) if self.srv else None
        if not self.srv_done and (self.srv is None or srv is not None):
            self.srv_done = True
            self._found(found_by_srv(self.target, srv, service), "srv")
        ptr_questions = [(reverse_name(ip), "PTR", 0) for ip in service]
        want += ptr_questions
        ptrs = [self.answer(q) for q in ptr_questions]
        if self.srv_done and not self.ptr_done and all(p is not None for p in ptrs):
            self.ptr_done = True
            self._found(found_by_ptr(self.target, [p for p in ptrs if p is not None]), "ptr")

    def _found(self, names: list[str], source: str) -> None:
        for name in names:
            if name not in self.pods:
                if self.clock() >= self.deadline:
                    raise unfinished(self.target)  # pods never asked cannot be judged (observe.py's spawn)
                self.pods[name] = source

    def _v6(self) -> bool | None:
        """Whether pods are asked AAAA: None until the Service's AAAA is answered (unless the target says IPv6)."""
        if self.target.ipv6:
            return True
        aaaa = self.answer(self.svc_aaaa)
        return None if aaaa is None else asks_aaaa(self.target, aaaa)

    def _pod(self, name: str) -> list[Question]:
        fqdn = self.target.pod_fqdn(name)
        want = [(fqdn, "A", 0), *([(fqdn, "AAAA", 0)] if self._v6() else [])]
        obs = self._observed(name)
        if obs is not None:
            want += [(reverse_name(ip), "PTR", 0) for ip in obs.ips]
        return want

    def _observed(self, name: str) -> PodObservation | None:
        """The pod's observation once its addresses are all in; None before."""
        fqdn = self.target.pod_fqdn(name).lower()
        v6, a = self._v6(), self.answers.get((fqdn, "A"))
        if v6 is None or a is None:
            return None
        obs = PodObservation(name, self.pods[name], a)
        if v6:
            obs.aaaa = self.answers.get((fqdn, "AAAA"))
            if obs.aaaa is None:
                return None
        return obs

    def observations(self, queries: int, lookups: list[Lookup], elapsed_ms: float) -> Observations:
        pods = {}
        for name in self.pods:
            obs = self._observed(name)
            assert obs is not None  # every question was answered (observe's rounds ended)
            pods[name] = obs
        a, aaaa = self.answer(self.svc_a), self.answer(self.svc_aaaa)
        assert a is not None and aaaa is not None
        ips = {*service_ips(a, aaaa), *(ip for p in pods.values() for ip in p.ips)}
        ptr = {}
        for ip in ips:
            found = self.answers.get((reverse_name(ip).lower(), "PTR"))
            assert found is not None
            ptr[ip] = found
        version = self.answer(self.version)
        assert version is not None
        return Observations(service_a=a, service_aaaa=aaaa, srv=self.answer(self.srv) if self.srv else None,
                            version=version, pods=pods, ptr=ptr, http_port=None, dns_queries=queries,
                            http_requests=0, elapsed_ms=elapsed_ms, lookups=lookups)
