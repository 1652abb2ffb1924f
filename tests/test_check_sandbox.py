"""The real CLI against the sandbox over real sockets: one test per fault, exact verdict and subject."""

from __future__ import annotations

from conftest import failures, run_cli, run_json

SVC = "nginx.default.svc.cluster.local"


def test_healthy_sandbox_passes_every_check(sandbox):
    code, report = run_json(sandbox.args())
    assert code == 0 and report["ok"] is True
    assert report["schema"] == "ssdns.check/v1"
    assert [p["name"] for p in report["pods"]] == ["web-0", "web-1", "web-2"]
    for pod, sb_pod in zip(report["pods"], sandbox.world.pods):
        assert pod["ips"] == [sb_pod.ip]
        assert pod["http"]["body"] == pod["name"]
        assert pod["ptr"] == {sb_pod.ip: [f"{pod['name']}.{SVC}."]}
    checks = {(f["check"], f["subject"]) for f in report["findings"] if f["status"] == "pass"}
    for name in ("web-0", "web-1", "web-2"):
        for check in ("dns.pod", "dns.service-members", "dns.ptr", "dns.srv", "http.identity"):
            assert (check, name) in checks
    assert ("dns.service", SVC) in checks and ("pods.ordinals", "web") in checks
    assert ("dns.schema", "dns-version.cluster.local") in checks
    assert report["service"]["aaaa"] == "nodata"  # an IPv4-only Service: AAAA is NODATA, not NXDOMAIN
    assert not [f for f in report["findings"] if f["status"] != "pass"]


def test_wrong_name_is_an_identity_swap_naming_both_pods(sandbox_factory):
    sb = sandbox_factory(faults=["wrong-name:web-1=web-2"])
    code, report = run_json(sb.args())
    assert code == 1 and report["ok"] is False
    [fail] = failures(report)
    assert (fail["check"], fail["subject"]) == ("http.identity", "web-1")
    assert "web-1 answered as web-2" in fail["message"] and fail["details"]["other_pod"] == "web-2"


def test_pod_missing_from_dns(sandbox_factory):
    sb = sandbox_factory(faults=["missing-dns:web-1"])
    code, report = run_json(sb.args())
    assert code == 1
    by_check = {(f["check"], f["subject"]): f for f in failures(report)}
    assert set(by_check) == {("dns.pod", "web-1"), ("pods.ordinals", "web")}
    assert "NXDOMAIN" in by_check[("dns.pod", "web-1")]["message"]
    assert by_check[("pods.ordinals", "web")]["details"]["missing"] == ["web-1"]
    assert next(p for p in report["pods"] if p["name"] == "web-1")["ips"] == []


def test_extra_stale_ip_under_the_service(sandbox_factory):
    sb = sandbox_factory(faults=["extra-ip:127.10.200.9"])
    code, report = run_json(sb.args())
    assert code == 1
    [fail] = failures(report)
    assert (fail["check"], fail["subject"]) == ("dns.service-members", SVC)
    assert fail["details"]["ip"] == "127.10.200.9"
    assert "127.10.200.9" in report["service"]["ips"]


def test_pod_not_answering_http(sandbox_factory):
    sb = sandbox_factory(faults=["no-http:web-2"])
    code, report = run_json(sb.args())
    assert code == 1
    [fail] = failures(report)
    assert (fail["check"], fail["subject"]) == ("http.identity", "web-2")
    assert "connection refused" in fail["message"]


def test_two_pods_sharing_an_ip(sandbox_factory):
    sb = sandbox_factory(faults=["shared-ip:web-1=web-2"])
    code, report = run_json(sb.args())
    assert code == 1
    shared = {f["subject"]: f for f in failures(report, "dns.unique-ip")}
    assert set(shared) == {"web-1", "web-2"}
    assert shared["web-1"]["details"]["other_pods"] == ["web-2"]
    # PTR of the shared IP names both pods: wrong for each of them.
    assert {f["subject"] for f in failures(report, "dns.ptr")} == {"web-1", "web-2"}


def test_pod_missing_from_the_service_set(sandbox_factory, monkeypatch):
    import ssdns.sandbox.dnsserver as server
    from ssdns.sandbox import records as rec

    sb = sandbox_factory()
    # web-1's own name resolves to an address the Service does not list.
    sb.change(lambda w: setattr(w.pod("web-1"), "dns_ip", "127.10.222.1"))
    sb.change(lambda w: w.extra_service_ips.clear())
    real = rec.records

    def patched(world):
        out = real(world)
        out[world.service_fqdn]["A"].remove("127.10.222.1")
        return out
    monkeypatch.setattr(rec, "records", patched)  # restored after the test, whatever happens
    monkeypatch.setattr(server, "records", patched)
    code, report = run_json(sb.args())
    assert code == 1
    [fail] = [f for f in failures(report) if f["check"] == "dns.service-members"]
    assert fail["subject"] == "web-1" and fail["details"]["ips"] == ["127.10.222.1"]


def test_discovery_without_statefulset(sandbox):
    args = [a for a in sandbox.args()]
    i = args.index("--statefulset")
    del args[i:i + 4]  # drop --statefulset web --replicas 3
    code, report = run_json(args)
    assert code == 0
    assert sorted(p["name"] for p in report["pods"]) == ["web-0", "web-1", "web-2"]
    assert {p["source"] for p in report["pods"]} <= {"srv", "ptr"}
    assert any("discovered from DNS" in n for n in report["notes"])


def test_replicas_higher_than_pods_reports_missing_ordinal(sandbox):
    args = sandbox.args()
    args[args.index("--replicas") + 1] = "4"
    code, report = run_json(args)
    assert code == 1
    fails = {(f["check"], f["subject"]) for f in failures(report)}
    assert fails == {("dns.pod", "web-3"), ("pods.ordinals", "web")}


def test_unknown_service_is_nxdomain(sandbox):
    args = sandbox.args()
    args[args.index("--service") + 1] = "nope"
    code, report = run_json([*args, "--no-http"])
    assert code == 1
    svc = next(f for f in failures(report) if f["check"] == "dns.service")
    assert svc["subject"] == "nope.default.svc.cluster.local" and svc["details"]["outcome"] == "nxdomain"


def test_zone_the_server_does_not_serve_is_refused(sandbox):
    # REFUSED rejects the question (not this server's zone): nothing was learned about the names, exit 3.
    args = sandbox.args()
    args[args.index("--cluster-domain") + 1] = "example.internal"
    code, out, err = run_cli([*args, "--no-http"])
    assert code == 3 and not out
    assert "no nameserver answered" in err and "REFUSED" in err and "--nameserver" in err


def test_srv_port_disagreeing_with_the_given_port(sandbox):
    code, report = run_json(sandbox.args("--port", "1", "--no-http"))
    assert code == 1
    srv = failures(report, "dns.srv")
    assert {f["subject"] for f in srv} == {"web-0", "web-1", "web-2"}
    assert f"SRV gives port {sandbox.world.port} for web-0, expected 1" in srv[0]["message"]


def test_large_service_answer_is_retried_over_tcp(sandbox_factory):
    sb = sandbox_factory(pods=150)
    code, report = run_json(sb.args())
    assert code == 0, [f for f in report["findings"] if f["status"] != "pass"][:3]
    assert len(report["service"]["ips"]) == 150
    svc_a = next(lk for lk in report["lookups"] if lk["name"] == f"{SVC}." and lk["type"] == "A")
    assert svc_a["tcp"] is True  # 150 A records do not fit in 1232 bytes of UDP


def test_nameserver_that_never_answers_exits_3(tmp_path):
    import socket
    import time

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never replies
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        start = time.monotonic()
        code, out, err = run_cli(["check", "--service", "nginx", "--nameserver", f"127.0.0.1:{port}",
                                  "--timeout", "1", "--no-http"])
    assert code == 3 and out == ""
    assert "no nameserver answered" in err and len(err.strip().splitlines()) == 1
    assert time.monotonic() - start < 3


def test_expect_contains_and_regex(sandbox):
    code, _ = run_json(sandbox.args("--expect", "web-", "--match", "contains"))
    assert code == 0
    code, _ = run_json(sandbox.args("--expect", r"^{statefulset}-{ordinal}$", "--match", "regex"))
    assert code == 0
    code, report = run_json(sandbox.args("--expect", "{fqdn}"))
    assert code == 1 and {f["subject"] for f in failures(report, "http.identity")} == {"web-0", "web-1", "web-2"}


def test_text_report_is_a_table_with_a_verdict(sandbox_factory):
    sb = sandbox_factory(faults=["wrong-name:web-1=web-2"])
    code, out, _ = run_cli([*sb.args(), "--color", "never"])
    assert code == 1
    lines = out.splitlines()
    assert lines[2].split()[:2] == ["POD", "IP"]
    row = next(l for l in lines if l.startswith("web-1"))
    assert "FAIL" in row and "'web-2'" in row
    assert lines[-1].startswith("FAIL: 1 failed")
    assert "\x1b[" not in out


def test_srv_answer_too_big_for_tcp_with_additionals_is_still_served(sandbox_factory):
    """1,000 SRV records plus their A records exceed 64 KiB: the Additional section is dropped, as CoreDNS does."""
    sb = sandbox_factory(pods=1000)
    code, report = run_json(sb.args("--no-http", "--timeout", "20"))
    assert code == 0, failures(report)[:3]
    srv = next(lk for lk in report["lookups"] if lk["type"] == "SRV")
    assert srv["tcp"] is True and len(srv["values"]) == 1000


def test_a_pod_that_never_answers_http_is_a_failure_not_a_hang(sandbox_factory):
    sb = sandbox_factory(faults=["http-hang:web-1"])
    code, report = run_json(sb.args("--timeout", "2"))
    assert code == 1
    [fail] = failures(report)
    assert (fail["check"], fail["subject"]) == ("http.identity", "web-1")
    assert "no answer within" in fail["message"]
    assert report["stats"]["elapsed_ms"] < 2000 + 500  # the deadline holds (plus its small guard)


def test_a_body_longer_than_the_read_cap_cannot_pass_an_exact_match(sandbox_factory):
    sb = sandbox_factory()
    # Cut at the 64 KiB ssdns reads, this body is "web-0" and blanks: an exact match would pass on it.
    sb.change(lambda w: setattr(w.pod("web-0"), "answer_as", "web-0" + " " * 70_000 + "and then something else"))
    code, report = run_json(sb.args())
    assert code == 1
    [fail] = failures(report, "http.identity")
    assert fail["subject"] == "web-0" and "longer than ssdns reads" in fail["message"]
    assert fail["details"]["truncated"] is True
    code, report = run_json([*sb.args(), "--match", "contains"])  # the name is there: that holds
    assert code == 0


def test_stopping_the_sandbox_dns_server_ends_its_idle_tcp_connections():
    """A client's TCP connection left open after its answer: the server's stop closes it at once, rather than
    leave it to the 5 s read timeout (and, from Python 3.12 on, wait those 5 s in stop: ssdns demo's end)."""
    import asyncio
    import time

    from dnsservers import answer, questions

    from ssdns.sandbox import make_world
    from ssdns.sandbox.dnsserver import DnsServer

    async def go():
        server = DnsServer(make_world(3), host="127.0.0.1")
        await server.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + questions(1)[0]
            writer.write(len(query).to_bytes(2, "big") + query)
            size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 5), "big")
            reply = await asyncio.wait_for(reader.readexactly(size), 5)
            assert reply[:2] == answer(query)[:2]  # answered: the connection is open and idle now
            started = time.monotonic()
            await asyncio.wait_for(server.stop(), 10)
            took = time.monotonic() - started
            eof = await asyncio.wait_for(reader.read(), 2)
        finally:
            writer.close()
        return took, eof

    took, eof = asyncio.run(go())
    assert eof == b""  # the server closed it
    assert took < 2  # not the 5 s read timeout (a bound with slack, not a speed figure)
