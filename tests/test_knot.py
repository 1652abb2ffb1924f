"""The same checks against a real, independent DNS server: Knot DNS serving the records from zone files."""

from __future__ import annotations

import os

import pytest

from conftest import failures, run_json
from knotdns import KnotServer, Pod, headless_zones, knotd_available

if not knotd_available():
    if os.environ.get("CI"):
        raise RuntimeError("knotd is missing in CI: .ci/deps installs the Debian package knot")
    pytest.skip("knotd not installed (apt-get install knot)", allow_module_level=True)

SVC = "nginx.default.svc.cluster.local"


def zones_for(world, **kw):
    return headless_zones([Pod(p.name, p.ip) for p in world.pods], port=world.port, **kw)


def knot_args(sb, knot, *extra):
    args = sb.args(*extra)
    args[args.index("--nameserver") + 1] = f"{knot.host}:{knot.port}"
    return args


def verdicts(report):
    return sorted((f["check"], f["subject"], f["status"]) for f in report["findings"])


def test_knot_and_the_sandbox_give_the_same_verdicts(sandbox):
    """The sandbox's DNS is protocol-true: a real server with the same records gives the same report."""
    with KnotServer(zones_for(sandbox.world)) as knot:
        code, from_knot = run_json(knot_args(sandbox, knot))
    code_sb, from_sandbox = run_json(sandbox.args())
    assert code == code_sb == 0
    assert verdicts(from_knot) == verdicts(from_sandbox)
    assert [p["ips"] for p in from_knot["pods"]] == [p["ips"] for p in from_sandbox["pods"]]


def test_stale_extra_ip_under_the_service_with_knot(sandbox):
    with KnotServer(zones_for(sandbox.world, extra_service_ips=["127.10.250.1"])) as knot:
        code, report = run_json(knot_args(sandbox, knot))
    assert code == 1
    [fail] = failures(report)
    assert (fail["check"], fail["subject"], fail["details"]["ip"]) == ("dns.service-members", SVC, "127.10.250.1")


def test_150_pods_need_tcp_and_all_pass(sandbox_factory):
    sb = sandbox_factory(pods=150)
    with KnotServer(zones_for(sb.world)) as knot:
        code, report = run_json(knot_args(sb, knot))
    assert code == 0, failures(report)[:3]
    assert len(report["pods"]) == 150 and len(report["service"]["ips"]) == 150
    svc_a = next(lk for lk in report["lookups"] if lk["name"] == f"{SVC}." and lk["type"] == "A")
    assert svc_a["tcp"] is True and len(svc_a["values"]) == 150
    srv = next(lk for lk in report["lookups"] if lk["type"] == "SRV")
    assert srv["tcp"] is True and len(srv["values"]) == 150


def test_dual_stack_pods_are_checked_per_family(sandbox):
    pods = [Pod(p.name, p.ip, f"fd00::{i + 1}") for i, p in enumerate(sandbox.world.pods)]
    with KnotServer(headless_zones(pods, port=sandbox.world.port)) as knot:
        code, report = run_json(knot_args(sandbox, knot, "--no-http"))
    assert code == 0, failures(report)
    assert report["pods"][0]["ips"] == [sandbox.world.pods[0].ip, "fd00::1"]
    assert report["pods"][0]["ptr"]["fd00::1"] == [f"web-0.{SVC}."]


def test_a_moved_pod_is_seen_after_the_zone_changes(sandbox):
    with KnotServer(zones_for(sandbox.world)) as knot:
        # web-1 restarts with a new IP; knot is told first (DNS leads), the echo pod follows.
        sandbox.change(lambda w: setattr(w.pod("web-1"), "ip", w.allocate_ip()))
        knot.update(zones_for(sandbox.world))
        code, report = run_json(knot_args(sandbox, knot))
    assert code == 0
    assert report["pods"][1]["ips"] == [sandbox.world.pod("web-1").ip]


def test_servfail_from_the_first_nameserver_moves_on_to_the_next(sandbox_factory):
    sb = sandbox_factory(faults=["dns-servfail"])
    code, report = run_json(sb.args("--no-http"))
    assert code == 1
    svc = next(f for f in failures(report) if f["check"] == "dns.service")
    assert svc["details"]["outcome"] == "servfail" and "SERVFAIL" in svc["message"]
    with KnotServer(zones_for(sb.world)) as knot:
        code, report = run_json([*sb.args("--no-http"), "--nameserver", f"{knot.host}:{knot.port}"])
    assert code == 0, failures(report)
    assert {lk["server"] for lk in report["lookups"]} == {f"{knot.host}:{knot.port}"}


def test_an_srv_set_larger_than_dns_can_carry_is_named_as_such():
    # 1,200 pods: the SRV set (~59 bytes a record) passes 64 KiB and knotd answers SERVFAIL over TCP.
    # That is the answer's size, not "CoreDNS has not synced"; every pod's own name still passes.
    n = 1200
    pods = [Pod(f"web-{i}", f"127.31.{i // 250}.{i % 250 + 1}") for i in range(n)]
    with KnotServer(headless_zones(pods)) as knot:
        code, report = run_json(["check", "--service", "nginx", "--namespace", "default", "--statefulset", "web",
                                 "--replicas", str(n), "--port-name", "web", "--cluster-domain", "cluster.local",
                                 "--nameserver", f"{knot.host}:{knot.port}", "--api", "off", "--no-http",
                                 "--timeout", "20"])
    assert code == 1
    [srv] = failures(report, "dns.srv")
    assert "larger than DNS can carry" in srv["message"] and "synced" not in srv["message"]
    assert not [f for f in failures(report) if f["check"] != "dns.srv"]
