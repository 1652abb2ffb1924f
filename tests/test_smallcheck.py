"""The small DNS-only check without asyncio (smallcheck.py) and the asyncio front end (observe.py) give the same
report for the same world: the same pods found the same way, the same answers, the same findings. Real servers:
the sandbox's DNS with its faults, and knotd (dual stack, TCP for the large sets)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from conftest import run_json
from knotdns import KnotServer, Pod, headless_zones, knotd_available
from ssdns import smallcheck
from ssdns.dnsquery import Lookup, Outcome
from ssdns.target import ApiOptions, Nameserver, ResolverChoice, Target


def comparable(report: dict) -> dict:
    """The report without what differs run to run: times, and the order lookups were settled in."""
    report = {k: v for k, v in report.items() if k != "stats"}
    report["lookups"] = sorted(({k: v for k, v in lk.items() if k != "elapsed_ms"} for lk in report["lookups"]),
                               key=lambda lk: (lk["name"], lk["type"]))
    report["pods"] = [{k: v for k, v in p.items() if k != "dns_ms"} for p in report["pods"]]
    return report


def both(args: list[str], monkeypatch) -> tuple[tuple[int, dict], tuple[int, dict]]:
    """The check run by smallcheck, then the same check by the asyncio front end."""
    ran = []
    real = smallcheck.run_check
    monkeypatch.setattr(smallcheck, "run_check", lambda target: ran.append(target) or real(target))
    small = run_json(args)
    assert len(ran) == 1, "the small check did not take the blocking path"
    monkeypatch.setattr(smallcheck, "eligible", lambda target, api: False)
    return small, run_json(args)


FAULTS = [
    (), ("missing-dns:web-1",), ("extra-ip",), ("shared-ip:web-1=web-0",), ("not-ready:web-2",),
    ("publish-not-ready", "not-ready:web-2"), ("stale-dns:web-1",), ("not-headless",), ("wrong-subdomain:web-1",),
    ("no-service",), ("dns-servfail",), ("second-ptr:web-0",), ("stuck-not-ready:web-1",), ("tcp-differs",),
]


@pytest.mark.parametrize("faults", FAULTS, ids=lambda f: "+".join(f) or "healthy")
def test_both_front_ends_give_the_same_report(sandbox_factory, monkeypatch, faults):
    sb = sandbox_factory(faults=list(faults))
    (code, small), (code_async, full) = both(sb.args("--no-http"), monkeypatch)
    assert code == code_async
    assert comparable(small) == comparable(full)
    assert small["stats"]["dns_queries"] == full["stats"]["dns_queries"]


@pytest.mark.parametrize("faults", [(), ("udp-only",), ("extra-ip",)], ids=lambda f: "+".join(f) or "healthy")
def test_sets_too_large_for_udp_are_the_same_over_tcp(sandbox_factory, monkeypatch, faults):
    # 40 pods: the SRV set (~59 bytes a record) does not fit in 1232 bytes: asked over TCP at once.
    sb = sandbox_factory(pods=40, faults=list(faults))
    (code, small), (code_async, full) = both(sb.args("--no-http"), monkeypatch)
    assert code == code_async and comparable(small) == comparable(full)
    srv = next(lk for lk in small["lookups"] if lk["type"] == "SRV")
    assert srv["tcp"] is True


def test_pods_found_by_dns_alone_are_the_same(sandbox_factory, monkeypatch):
    # No --statefulset and --replicas: the pods are what SRV and the PTRs of the Service's IPs name.
    sb = sandbox_factory(pods=4, faults=["wrong-subdomain:web-3"])
    args = sb.args("--no-http")
    for option in ("--statefulset", "--replicas"):
        i = args.index(option)
        del args[i:i + 2]
    (code, small), (code_async, full) = both(args, monkeypatch)
    assert code == code_async and comparable(small) == comparable(full)
    assert {p["source"] for p in small["pods"]} == {"srv"}


@pytest.mark.skipif(not knotd_available(), reason="knotd not installed")
def test_dual_stack_from_knot_is_the_same(sandbox, monkeypatch):
    pods = [Pod(p.name, p.ip, f"fd00::{i + 1}") for i, p in enumerate(sandbox.world.pods)]
    with KnotServer(headless_zones(pods, port=sandbox.world.port, extra_service_ips=["fd00::99"])) as knot:
        args = sandbox.args("--no-http")
        args[args.index("--nameserver") + 1] = f"{knot.host}:{knot.port}"
        (code, small), (code_async, full) = both(args, monkeypatch)
    assert code == code_async == 1  # fd00::99 is no pod's
    assert comparable(small) == comparable(full)
    assert small["pods"][0]["ips"] == [sandbox.world.pods[0].ip, "fd00::1"]
    assert small["pods"][0]["ptr"]["fd00::1"] == ["web-0.nginx.default.svc.cluster.local."]


def test_only_a_small_dns_only_check_without_the_api_takes_the_blocking_path(monkeypatch):
    monkeypatch.delenv("SSDNS_WORKER", raising=False)
    base = Target(service="nginx", namespace="default", zone="cluster.local",
                  nameservers=(Nameserver("127.0.0.1", 53),), statefulset="web", replicas=3, http=False)
    off, auto = ApiOptions(mode="off"), ApiOptions(mode="auto")
    assert smallcheck.eligible(base, off)
    assert smallcheck.eligible(base.with_(replicas=None), off)  # pods found by DNS
    assert not smallcheck.eligible(base, auto)  # the API may be there
    assert not smallcheck.eligible(base.with_(http=True), off)
    assert not smallcheck.eligible(base.with_(resolvers=ResolverChoice("all")), off)
    assert not smallcheck.eligible(base.with_(resolvers=ResolverChoice("path", (), "both")), off)
    assert smallcheck.eligible(base.with_(resolvers=ResolverChoice("path", (), "tcp")), off)
    monkeypatch.setattr(smallcheck.sizing, "cpus", lambda: 2.0)
    assert not smallcheck.eligible(base.with_(replicas=100), off)  # a child process pays: the asyncio path
    monkeypatch.setenv("SSDNS_WORKER", "1")
    assert not smallcheck.eligible(base, off)


def _ok(name: str, rdtype: str, *values: str) -> Lookup:
    return Lookup(name, rdtype, Outcome.OK, values, 5, rcode="NOERROR")


def _nodata(name: str, rdtype: str) -> Lookup:
    return Lookup(name, rdtype, Outcome.NODATA, rcode="NOERROR")


def test_the_walk_asks_each_question_once_and_in_the_order_answers_allow():
    t = Target(service="nginx", namespace="default", zone="cluster.local", nameservers=(Nameserver("127.0.0.1", 53),),
               statefulset="web", replicas=1, port_name="web", http=False)
    svc, pod0 = "nginx.default.svc.cluster.local.", "web-0.nginx.default.svc.cluster.local."
    walk = smallcheck.Walk(t, ["web-0"], time.monotonic() + 10)
    first = walk.questions()
    assert [q[:2] for q in first] == [(svc, "A"), (svc, "AAAA"), (f"_web._tcp.{svc}", "SRV"),
                                      ("dns-version.cluster.local.", "TXT"), (pod0, "A")]
    answers = {(svc, "A"): _ok(svc, "A", "127.10.0.1", "127.10.0.2"), (svc, "AAAA"): _nodata(svc, "AAAA"),
               (f"_web._tcp.{svc}", "SRV"): _ok(f"_web._tcp.{svc}", "SRV", f"0 50 80 {pod0}",
                                                f"0 50 80 web-1.nginx.default.svc.cluster.local."),
               ("dns-version.cluster.local.", "TXT"): _ok("dns-version.cluster.local.", "TXT", '"1.1.0"'),
               (pod0, "A"): _ok(pod0, "A", "127.10.0.1")}
    walk.got(first, [answers[q[:2]] for q in first])
    second = walk.questions()
    # SRV named web-1 (found by SRV); the Service's IPs and web-0's get their PTR; no AAAA (IPv4 only).
    assert [q[:2] for q in second] == [("1.0.10.127.in-addr.arpa.", "PTR"), ("2.0.10.127.in-addr.arpa.", "PTR"),
                                       ("web-1.nginx.default.svc.cluster.local.", "A")]
    assert walk.pods == {"web-0": "expected", "web-1": "srv"}
    ptr = {"1.0.10.127.in-addr.arpa.": _ok("1.0.10.127.in-addr.arpa.", "PTR", pod0),
           "2.0.10.127.in-addr.arpa.": _ok("2.0.10.127.in-addr.arpa.", "PTR", "web-2.nginx.default.svc.cluster.local.")}
    walk.got(second, [ptr.get(q[0]) or _ok(q[0], "A", "127.10.0.2") for q in second])
    third = walk.questions()
    assert walk.pods == {"web-0": "expected", "web-1": "srv", "web-2": "ptr"}  # the Service IP's PTR named web-2
    assert [q[:2] for q in third] == [("web-2.nginx.default.svc.cluster.local.", "A")]
    walk.got(third, [Lookup(third[0][0], "A", Outcome.NXDOMAIN, rcode="NXDOMAIN")])
    assert walk.questions() == []
    obs = walk.observations(9, [], 1.0)
    assert list(obs.pods) == ["web-0", "web-1", "web-2"] and obs.pods["web-2"].ips == []
    assert set(obs.ptr) == {"127.10.0.1", "127.10.0.2"}


def test_a_pod_found_after_the_deadline_is_a_run_that_could_not_finish():
    from ssdns.errors import CannotRun

    t = Target(service="nginx", namespace="default", zone="cluster.local", nameservers=(Nameserver("127.0.0.1", 53),),
               http=False, timeout=2)
    now = [100.0]
    walk = smallcheck.Walk(t, [], 101.0, clock=lambda: now[0])
    first = walk.questions()
    svc = "nginx.default.svc.cluster.local."
    answers = [_ok(svc, "A", "127.10.0.1") if q[:2] == (svc, "A") else _nodata(*q[:2]) for q in first]
    walk.got(first, answers)
    now[0] = 101.0
    second = walk.questions()
    walk.got(second, [_ok(q[0], "PTR", "web-0.nginx.default.svc.cluster.local.") for q in second])
    with pytest.raises(CannotRun, match="did not finish within --timeout 2 s"):
        walk.questions()


def test_a_small_dns_only_check_imports_no_asyncio(sandbox):
    probe = ("import sys\nfrom ssdns.cli import main\nrc = main(sys.argv[1:])\n"
             "print(rc, 'asyncio' in sys.modules, 'ssdns.observe' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", probe, *sandbox.args("--no-http")], capture_output=True, text=True,
                          timeout=30, env={**os.environ, "SSDNS_WORKER": "auto"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-3:] == ["0", "False", "False"]
