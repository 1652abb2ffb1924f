"""check --all with --resolvers and --transport: the replicas of kube-system/kube-dns found once per run, every
StatefulSet's questions asked of each resolver, each result carrying its dns.resolver/dns.transport/dns.latency
findings as a single check's does, all under the one deadline. Real sockets: the sandbox's DNS replicas."""

from __future__ import annotations

import json
import time

import pytest
from conftest import ThreadedSandbox, run_cli

from ssdns.sandbox import make_world
from ssdns.sandbox.fleet import apply_fleet_fault
from ssdns.sandbox.world import add_neighbour


@pytest.fixture
def two(tmp_path):
    """web (3 pods, Service nginx) and db (2 pods), default namespace, the faults applied before the sandbox
    starts (a replica frozen or slowed then knows both); returns (sandbox, args)."""
    made = []

    def make(*faults: str, more: int = 0):
        world = make_world(3)
        add_neighbour(world, "db", 2)
        for i in range(more):
            add_neighbour(world, f"s{i}", 2)
        for spec in faults:
            apply_fleet_fault(world, spec)
        sb = ThreadedSandbox(world)
        made.append(sb)
        kubeconfig = sb.sandbox.write_kubeconfig(tmp_path / "kubeconfig")

        def args(*extra: str) -> list[str]:
            return ["check", "--all", "--no-http", "--kubeconfig", str(kubeconfig), "--nameserver",
                    str(sb.sandbox.nameserver), "--cluster-domain", "cluster.local", "--timeout", "10", *extra]
        return sb, args
    yield make
    for sb in made:
        sb.stop()


def run_json(argv):
    code, out, err = run_cli([*argv, "-o", "json"])
    assert out, err
    doc = json.loads(out)
    return code, doc, {r["target"]["statefulset"]: r for r in doc["results"]}


def by_check(result: dict, check: str) -> dict[str, dict]:
    return {f["subject"]: f for f in result["findings"] if f["check"] == check}


def test_resolvers_all_across_the_fleet_names_the_stale_replica_in_the_statefulset_it_breaks(two):
    sb, args = two("stale-replica:1")  # the replica froze, then web's last pod moved: only web differs
    stale = sb.world.dns_replicas[1]
    before = len(sb.sandbox.api.requests)
    code, doc, results = run_json(args("--resolvers", "all"))
    assert code == 1 and doc["summary"]["fail"] == 1 and doc["summary"]["pass"] == 1
    web, db = by_check(results["web"], "dns.resolver"), by_check(results["db"], "dns.resolver")
    assert web[stale.name]["status"] == "fail" and "web-2 A with" in web[stale.name]["message"]
    assert set(db) == {"path", *(r.name for r in sb.world.dns_replicas)}
    assert all(f["status"] == "pass" for f in db.values())
    for r in results.values():  # each asked every resolver, as a single check does
        assert [leg["resolver"] for leg in r["resolvers"]["legs"]] == ["path", *(x.name for x in sb.world.dns_replicas)]
        assert by_check(r, "dns.latency")
    # the replicas were found once for the run, not once per StatefulSet
    listed = [q for q in sb.sandbox.api.requests[before:] if q.namespace == "kube-system"]
    assert [(q.rule or ())[1:] for q in listed] == [("endpointslices", "list")]
    code, out, _ = run_cli(args("--resolvers", "all", "--color", "never"))
    row = next(line for line in out.splitlines() if line.split()[:2] == ["default", "web"])
    assert "FAIL" in row and f"dns.resolver {stale.name}" in row


def test_transport_both_across_the_fleet(two):
    sb, args = two("tcp-differs")
    code, doc, results = run_json(args("--transport", "both"))
    assert code == 1
    for name, r in results.items():  # every Service name has several addresses: each StatefulSet fails
        got = by_check(r, "dns.transport")
        assert got["path"]["status"] == "fail" and "only over UDP" in got["path"]["message"], name
        assert {leg["transport"] for leg in r["resolvers"]["legs"]} == {"udp", "tcp"}


def test_a_listed_resolver_and_a_missing_grant_apply_to_each_statefulset(two):
    sb, args = two("dns-forbidden")
    replica = sb.world.dns_replicas[0]
    code, doc, results = run_json(args("--resolvers", f"{replica.ip}:{sb.sandbox.nameserver.port}"))
    assert code == 0 and set(results) == {"db", "web"}
    assert all(len(r["resolvers"]["resolvers"]) == 2 for r in results.values())
    code, doc, results = run_json(args("--resolvers", "all"))
    assert code == 0 and doc["summary"]["warn"] == 2  # found once, said on each StatefulSet (as a single check)
    for r in results.values():
        warn = by_check(r, "dns.resolver")["kube-system/kube-dns"]
        assert warn["status"] == "warn" and "k8s/resolvers/" in warn["message"]


def test_one_deadline_with_a_slow_replica(two):
    """A replica answering after 5 s, ten StatefulSets: the run ends at --timeout, not ten times it."""
    sb, args = two("slow-replica:2", more=8)
    started = time.monotonic()
    code, out, err = run_cli([*args("--resolvers", "all"), "--timeout", "3", "-o", "json"])
    took = time.monotonic() - started
    assert took < 3 + 2.0, took
    doc = json.loads(out)
    assert doc["summary"]["statefulsets"] == 10 and code in (0, 1, 3), err
    for r in doc["results"]:  # the slow replica is named on each StatefulSet that was judged
        assert by_check(r, "dns.resolver")[sb.world.dns_replicas[2].name]["status"] in ("warn", "fail")


def test_dns_service_and_nodelocal_still_need_resolvers_all(two):
    sb, args = two()
    code, out, err = run_cli(args("--dns-service", "kube-system/kube-dns"))
    assert (code, out) == (2, "") and "--dns-service is used only with --resolvers all" in err

