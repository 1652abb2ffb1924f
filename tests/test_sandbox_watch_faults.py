"""The sandbox features ssdns watch is measured against: a resolver cache that keeps an NXDOMAIN for
the SOA minimum and a positive answer for a while (an old IP outliving its pod), and watch streams
that the API cuts or ends with 410 Gone. Real sockets on loopback; every wait is a bounded poll."""

from __future__ import annotations

import http.client
import json
import time

import dns.message
import dns.query
import dns.rcode
import pytest

from ssdns.sandbox import apply_fault
from ssdns.sandbox.world import make_world

POD = "web-1.nginx.default.svc.cluster.local."


def ask(sb, name: str, rdtype: str = "A") -> tuple[str, set[str], int | None]:
    ns = sb.sandbox.nameserver
    resp = dns.query.udp(dns.message.make_query(name, rdtype), ns.host, timeout=2, port=ns.port)
    minimum = resp.authority[0][0].minimum if resp.authority else None
    return dns.rcode.to_text(resp.rcode()), {rd.to_text() for rr in resp.answer for rd in rr}, minimum


def until(fn, timeout: float = 5.0, every: float = 0.02):
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / every) + 2):
        value = fn()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(every)
    return fn()


def test_an_nxdomain_asked_before_the_name_exists_is_cached_for_the_soa_minimum(sandbox_factory):
    sb = sandbox_factory(dns_delay=0, negative_ttl=1.0)
    sb.change(lambda w: w.set_ready("web-1", False))  # out of DNS: its name is NXDOMAIN
    rcode, _, minimum = ask(sb, POD)
    asked = time.monotonic()
    assert rcode == "NXDOMAIN" and minimum == 1  # the SOA says how long a resolver may keep it
    sb.change(lambda w: w.set_ready("web-1", True))  # back in DNS at once ...
    assert ask(sb, POD)[0] == "NXDOMAIN"  # ... but the cache still says it does not exist
    assert ask(sb, POD, "AAAA")[0] == "NXDOMAIN"  # for every type of the name (RFC 2308)
    assert until(lambda: ask(sb, POD)[0] == "NOERROR", 3)
    assert time.monotonic() - asked >= 1.0 - 0.05
    # a name never asked while absent is not cached
    sb.change(lambda w: w.set_ready("web-2", False))
    sb.change(lambda w: w.set_ready("web-2", True))
    assert ask(sb, "web-2.nginx.default.svc.cluster.local.")[0] == "NOERROR"


def test_a_cached_positive_answer_keeps_an_old_ip_after_its_pod_is_replaced(sandbox_factory):
    sb = sandbox_factory(dns_delay=0, stale_for=1.0)
    old_ip = sb.world.pod("web-1").ip
    assert ask(sb, POD)[1] == {old_ip}
    asked = time.monotonic()
    sb.change(lambda w: w.replace_pod("web-1"))
    new_ip = sb.world.pod("web-1").ip
    assert ask(sb, POD)[1] == {old_ip}  # stale: the cache still has it
    assert until(lambda: ask(sb, POD)[1] == {new_ip}, 3)
    assert time.monotonic() - asked >= 1.0 - 0.05


def test_no_cache_by_default(sandbox_factory):
    sb = sandbox_factory(dns_delay=0)
    sb.change(lambda w: w.set_ready("web-1", False))
    assert ask(sb, POD)[0] == "NXDOMAIN"
    sb.change(lambda w: w.set_ready("web-1", True))
    assert ask(sb, POD)[0] == "NOERROR"


def _watch(sb, query: str) -> tuple[list[dict], str]:
    """Raw watch lines until the stream ends; how it ended: 'eof' (a clean last chunk) or 'cut'."""
    host, port = sb.sandbox.api.host, sb.sandbox.api.port
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request("GET", f"/api/v1/namespaces/default/pods?watch=1&labelSelector=app%3Dnginx&{query}")
    resp = conn.getresponse()
    end = "eof"
    try:
        body = resp.read()
    except http.client.IncompleteRead as exc:
        body, end = exc.partial, "cut"
    finally:
        conn.close()
    return [json.loads(raw) for raw in body.splitlines() if raw.strip()], end


def test_watch_drop_cuts_the_stream_without_its_last_chunk(sandbox_factory):
    sb = sandbox_factory(watch_drop_after=0.3)
    t0 = time.monotonic()
    lines, end = _watch(sb, "timeoutSeconds=5")
    assert end == "cut" and 0.3 - 0.05 <= time.monotonic() - t0 < 3
    assert [ev["type"] for ev in lines] == ["ADDED"] * 3


def test_watch_expire_ends_the_stream_with_410_gone(sandbox_factory):
    sb = sandbox_factory(watch_expire_after=0.3)
    listed_rv = str(sb.world.version)
    lines, end = _watch(sb, f"timeoutSeconds=5&resourceVersion={listed_rv}")
    assert end == "eof" and lines[-1]["type"] == "ERROR" and lines[-1]["object"]["code"] == 410
    sb.change(lambda w: w.set_ready("web-0", False))  # something happens after the expiry
    # resuming from before it is too old now: 410 at once; a fresh list-then-watch works
    lines, _ = _watch(sb, f"timeoutSeconds=1&resourceVersion={int(listed_rv) - 1}")
    assert lines[0]["type"] == "ERROR" and lines[0]["object"]["reason"] == "Expired"


@pytest.mark.parametrize("spec, attr, value", [
    ("negative-cache", "negative_ttl", 5.0), ("negative-cache:1.5", "negative_ttl", 1.5),
    ("stale-ip:2", "stale_for", 2.0), ("watch-drop", "watch_drop_after", 10.0),
    ("watch-expire:0.5", "watch_expire_after", 0.5),
])
def test_the_watch_faults_set_their_timings(spec, attr, value):
    world = make_world(2)
    apply_fault(world, spec)
    assert getattr(world, attr) == value


@pytest.mark.parametrize("spec", ["negative-cache:0", "stale-ip:-1", "watch-drop:x", "watch-expire:9999"])
def test_bad_watch_fault_seconds_are_one_line(spec):
    from ssdns.errors import UsageError

    with pytest.raises(UsageError, match="number of seconds"):
        apply_fault(make_world(2), spec)
