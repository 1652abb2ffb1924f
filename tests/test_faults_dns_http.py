"""Fault catalogue, DNS and HTTP: misbehaving servers on real loopback sockets, the real CLI in a
subprocess. Each case asserts the exit code, one line on stderr when the run could not do its job
(else the finding in the report), no traceback, and a wall time within --timeout + faultkit.SLACK.
"""

from __future__ import annotations

import json

import pytest
from faultkit import assert_within, run_ssdns
from faultservers import FaultDns, FaultPods, Loop, World, free_port

T = 1.5  # --timeout of every case: long enough for a loaded CI machine, short enough to keep this fast


@pytest.fixture(scope="module")
def lp():
    loop = Loop()
    yield loop
    loop.close()


def check(*nameservers: str, http: bool = False, timeout: float = T, extra: tuple[str, ...] = ()):
    args = ["check", "--service", "nginx", "--namespace", "default", "--statefulset", "web", "--replicas", "3",
            "--port-name", "web", "--cluster-domain", "cluster.local", "--api", "off", "--timeout", f"{timeout:g}",
            "-o", "json", *extra]
    for ns in nameservers:
        args += ["--nameserver", ns]
    if not http:
        args.append("--no-http")
    run = run_ssdns(*args, timeout=timeout + 20)
    assert "Traceback" not in run.stderr, run.stderr
    assert_within(run, timeout)
    return run


def cannot_run(run, *words: str) -> str:
    assert run.returncode == 3, (run.returncode, run.stdout[-500:], run.stderr)
    assert not run.stdout
    line = run.one_line()
    for w in words:
        assert w in line, line
    return line


def report(run, code: int = 1) -> dict:
    assert run.returncode == code, (run.returncode, run.stderr, run.stdout[-2000:])
    assert not run.stderr.strip(), run.stderr
    return json.loads(run.stdout)


def failing(rep: dict, check_id: str | None = None) -> list[dict]:
    return [f for f in rep["findings"] if f["status"] == "fail" and (check_id is None or f["check"] == check_id)]


# --------------------------------------------------------------------------- DNS: could not run (exit 3)

def test_silent_nameserver(lp):
    with FaultDns(lp, fault="silent") as d:
        cannot_run(check(d.address), "no nameserver answered", f"no reply from {d.address}", "--nameserver")


@pytest.mark.parametrize("fault, rcode", [("refused", "REFUSED"), ("formerr", "FORMERR"), ("notimp", "NOTIMP")])
def test_nameserver_rejecting_the_question_could_not_run(lp, fault, rcode):
    with FaultDns(lp, fault=fault) as d:
        cannot_run(check(d.address), "no nameserver answered", f"{d.address}: {rcode}")


def test_garbage_replies_are_ignored_and_counted(lp):
    with FaultDns(lp, fault="garbage") as d:
        cannot_run(check(d.address), "replies ignored")


def test_only_forged_replies_wrong_id(lp):
    with FaultDns(lp, fault="wrong-id") as d:
        cannot_run(check(d.address), "no nameserver answered", "replies ignored")


def test_only_forged_replies_wrong_question(lp):
    with FaultDns(lp, fault="wrong-question") as d:
        cannot_run(check(d.address), "no nameserver answered", "replies ignored")


def test_only_our_own_queries_reflected(lp):
    """A middlebox or a broken forwarder sending each query back: the same ID and question, but no answer."""
    with FaultDns(lp, fault="echo") as d:
        cannot_run(check(d.address), "no nameserver answered", "replies ignored")


def test_closed_port_fails_fast(lp):
    with FaultDns(lp) as d:
        pass  # its address, closed again: nothing listens there, ICMP port unreachable
    run = check(d.address)
    cannot_run(run, "nothing listens there")
    assert run.elapsed < T  # not a timeout: the ICMP error ends it


def test_every_nameserver_named_when_none_answered(lp):
    with FaultDns(lp, fault="refused") as a, FaultDns(lp, fault="silent") as b:
        cannot_run(check(a.address, b.address), f"{a.address}: REFUSED", f"no reply from {b.address}")


def test_truncated_with_no_tcp_listener_everywhere(lp):
    with FaultDns(lp, fault="tc", tcp=None) as d:
        cannot_run(check(d.address), "nothing listens on TCP")


# --------------------------------------------------------------------------- DNS: forged replies ignored

@pytest.mark.parametrize("fault", ["wrong-id+real", "wrong-question+real", "echo+real"])
def test_forged_reply_before_the_real_one_is_ignored(lp, fault):
    with FaultDns(lp, fault=fault) as d:
        rep = report(check(d.address), 0)
    assert rep["service"]["ips"] == [f"127.77.{d.world.subnet}.{i}" for i in (1, 2, 3)]
    assert "127.66.66.66" not in json.dumps(rep)


def test_a_lost_datagram_is_sent_again_under_the_same_id(lp):
    """Every A question's first datagram lost (UDP): each is sent once more partway through the time the
    nameserver gets, and the run passes; the stats count both sends."""
    with FaultDns(lp) as clean:
        asked = report(check(clean.address), 0)["stats"]["dns_queries"]
    with FaultDns(lp, fault="drop-first", only="A") as d:
        rep = report(check(d.address, timeout=3), 0)
    assert rep["service"]["ips"] == [f"127.77.{d.world.subnet}.{i}" for i in (1, 2, 3)]
    assert rep["stats"]["dns_queries"] == d.queries == asked + 1 + 3  # the Service's A and each pod's, twice


def test_slow_nameserver_within_the_deadline(lp):
    with FaultDns(lp, fault="slow") as d:
        report(check(d.address), 0)


def test_silent_first_nameserver_leaves_time_for_the_second(lp):
    with FaultDns(lp, fault="silent") as a, FaultDns(lp) as b:
        report(check(a.address, b.address, timeout=2), 0)


def test_servfail_first_nameserver_then_a_good_one(lp):
    with FaultDns(lp, fault="servfail") as a, FaultDns(lp) as b:
        report(check(a.address, b.address), 0)


# --------------------------------------------------------------------------- DNS: findings (exit 1)

def test_servfail_everywhere_is_a_finding(lp):
    with FaultDns(lp, fault="servfail") as d:
        rep = report(check(d.address))
    svc = failing(rep, "dns.service")
    assert svc and svc[0]["details"]["outcome"] == "servfail" and "SERVFAIL" in svc[0]["message"]


def test_nxdomain_everywhere_is_a_finding(lp):
    with FaultDns(lp, fault="nxdomain") as d:
        rep = report(check(d.address))
    assert {f["details"]["outcome"] for f in failing(rep, "dns.service")} == {"nxdomain"}


def test_cname_loop_is_not_nodata(lp):
    with FaultDns(lp, fault="cname-loop", only="A") as d:
        rep = report(check(d.address))
    text = json.dumps(failing(rep))
    assert "CNAME loop" in text and "nodata" not in text.lower()


def test_srv_truncated_with_no_tcp_listener(lp):
    with FaultDns(lp, fault="tc", only="SRV", tcp=None) as d:
        rep = report(check(d.address))
    assert "nothing listens on TCP" in json.dumps(failing(rep, "dns.srv"))


def test_srv_tcp_closed_mid_answer(lp):
    with FaultDns(lp, fault="tc", only="SRV", tcp="close-mid") as d:
        rep = report(check(d.address))
    assert "closed mid-answer" in json.dumps(failing(rep, "dns.srv"))


def test_srv_tcp_trickling_one_byte_a_second(lp):
    with FaultDns(lp, fault="tc", only="SRV", tcp="trickle") as d:
        rep = report(check(d.address))
    assert "no complete reply" in json.dumps(failing(rep, "dns.srv"))


def test_srv_truncated_even_over_tcp_is_too_large_for_dns(lp):
    with FaultDns(lp, fault="tc", only="SRV", tcp="tc") as d:
        rep = report(check(d.address))
    assert "larger than DNS can carry" in json.dumps(failing(rep, "dns.srv"))


def test_srv_servfail_over_tcp_after_truncation_is_named_as_size(lp):
    # knotd's answer to a set over 64 KiB: TC over UDP, then SERVFAIL over TCP. Not "CoreDNS not synced".
    with FaultDns(lp, fault="tc", only="SRV", tcp="servfail") as d:
        rep = report(check(d.address))
    text = json.dumps(failing(rep, "dns.srv"))
    assert "larger than DNS can carry" in text and "synced" not in text


def test_malformed_reply_is_named(lp):
    with FaultDns(lp, fault="malformed", only="SRV") as d:
        rep = report(check(d.address))
    assert "malformed reply" in json.dumps(failing(rep, "dns.srv"))


def test_thousands_of_records(lp):
    # 2,000 Service IPs nobody expects: each is an unknown endpoint, judged within the deadline.
    with FaultDns(lp, world=World(extra_service_ips=2000)) as d:
        rep = report(check(d.address, timeout=5), 1)
    assert len(rep["service"]["ips"]) == 2003
    assert failing(rep)


# --------------------------------------------------------------------------- HTTP pods

@pytest.fixture
def http_world():
    world = World()
    world.http_port = free_port(world.ip(0))  # the world's own addresses: no other listener there
    return world


def http_case(lp, world, fault, timeout=T):
    with FaultDns(lp, world) as d, FaultPods(lp, world, fault):
        rep = report(check(d.address, http=True, timeout=timeout))
    [f] = failing(rep, "http.identity")
    assert f["subject"] == "web-1"
    pod = next(p for p in rep["pods"] if p["name"] == "web-1")
    assert all(p["http"]["status"] == 200 for p in rep["pods"] if p["name"] != "web-1")
    return f, pod["http"]


def test_http_hang(lp, http_world):
    f, h = http_case(lp, http_world, "hang")
    assert "no answer within" in f["message"]


def test_http_redirect_is_an_answer(lp, http_world):
    f, h = http_case(lp, http_world, "redirect")
    assert h["status"] == 302 and h["location"] == "http://example.invalid/elsewhere"
    assert "HTTP 302" in f["message"] and "not followed" in f["message"]


def test_http_ten_megabytes_read_to_the_cap(lp, http_world):
    f, h = http_case(lp, http_world, "big")
    assert h["truncated"] is True and len(h["body"]) == 64 * 1024


def test_http_chunked_forever(lp, http_world):
    f, h = http_case(lp, http_world, "chunk-forever")
    assert "answered HTTP 200 but the body was not complete" in f["message"]


def test_http_trickle(lp, http_world):
    f, h = http_case(lp, http_world, "trickle")
    assert "within" in f["message"]


def test_http_gzip_bomb_stops_at_the_cap(lp, http_world):
    f, h = http_case(lp, http_world, "gzip-bomb")
    assert h["truncated"] is True and len(h["body"]) == 64 * 1024


def test_http_reset(lp, http_world):
    f, h = http_case(lp, http_world, "reset")
    assert "connection reset" in f["message"]


def test_http_content_length_longer_than_the_body(lp, http_world):
    f, h = http_case(lp, http_world, "short-body")
    assert "invalid HTTP response" in f["message"] and "received 5 of 1000 bytes" in f["message"]


def test_http_body_longer_than_content_length(lp, http_world):
    f, h = http_case(lp, http_world, "long-body")
    assert "invalid HTTP response" in f["message"]


@pytest.mark.parametrize("fault, words", [("garbage", "Bad status line"),
                                          ("bad-header", "Invalid character in Content-Length")])
def test_http_parse_errors_are_not_a_400(lp, http_world, fault, words):
    f, h = http_case(lp, http_world, fault)
    said = f["message"].split("invalid HTTP response: ", 1)[-1]  # after the URL: its port may hold "400"
    assert f"invalid HTTP response: {words}" in f["message"] and "400" not in said and h["status"] is None


def test_http_a_real_400_is_a_400(lp, http_world):
    f, h = http_case(lp, http_world, "400")
    assert h["status"] == 400 and "answered HTTP 400" in f["message"]


def test_http_closed_port(lp, http_world):
    with FaultDns(lp, http_world) as d:  # no pods listen
        rep = report(check(d.address, http=True))
    assert {f["message"].split(": ", 1)[1] for f in failing(rep, "http.identity")} == {"cannot connect: connection refused"}



# --------------------------------------------------------------------------- the HTTP port

def test_port_unknown_when_srv_fails_is_said_not_guessed(lp, http_world):
    # SRV fails and there is no --port and no API: no request to a guessed port 80, a note instead.
    with FaultDns(lp, http_world, fault="servfail", only="SRV") as d, FaultPods(lp, http_world, "400"):
        rep = report(check(d.address, http=True))
    assert rep["stats"]["http_requests"] == 0 and not failing(rep, "http.identity")
    assert any("port is unknown" in n and "--port" in n for n in rep["notes"])
    assert failing(rep, "dns.srv")


def test_port_from_the_api_when_srv_fails(lp, http_world):
    import asyncio
    import time

    from ssdns.observe import observe
    from ssdns.target import Nameserver, Target

    with FaultDns(lp, http_world, fault="servfail", only="SRV") as d, FaultPods(lp, http_world, "400", faulty=()):
        target = Target(service="nginx", namespace="default", zone="cluster.local",
                        nameservers=(Nameserver(d.host, d.port),), statefulset="web", replicas=3,
                        port_name="web", timeout=T)
        obs = asyncio.run(observe(target, time.monotonic() + T, api_port=http_world.http_port))
    assert obs.http_port == http_world.http_port
    assert [p.http.body for p in obs.pods.values()] == ["web-0", "web-1", "web-2"]


def test_a_deadline_too_short_for_the_pod_count_is_said_before_the_run(lp):
    # 600 pods expected, 1 s: the note comes first on stderr, then the run does what it can in time.
    with FaultDns(lp) as d:
        run = run_ssdns("check", "--service", "nginx", "--namespace", "default", "--statefulset", "web",
                        "--replicas", "600", "--port-name", "web", "--cluster-domain", "cluster.local",
                        "--nameserver", d.address, "--api", "off", "--no-http", "--timeout", "0.5", "-o", "json",
                        timeout=30)
    assert "Traceback" not in run.stderr
    first = run.stderr.splitlines()[0]
    assert first.startswith("ssdns: note: 600 pods may take about") and "--timeout" in first
    assert_within(run, 0.5)
