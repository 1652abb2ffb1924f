"""The benchmark script runs end to end at N=3 and produces its tables (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_runs_and_writes_tables(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# notes kept\n")
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--pods", "3", "--repeat", "1",
                          "--no-baseline", "--no-startup", "--results", str(results)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "| N | ssdns wall |" in run.stdout
    assert "| N | DNS queries (stats) | formula 2N+4 |" in run.stdout
    row = next(line for line in run.stdout.splitlines() if line.startswith("| 3 | 10 | 10 |"))
    assert "| 3 | 3 |" in row  # 3 HTTP requests, formula N
    text = results.read_text()
    assert text.startswith("# notes kept") and "bench:begin" in text and "bench:end" in text


# The performance work behind the bench replaced dnspython's message reading and aiohttp on the hot
# path (ssdns/dnsquery.py, ssdns/httpprobe.py). These guard that it did not change behaviour.

def _reply(qname, qtype, answers=(), rcode=0, authority=(), additional=()):
    import dns.message
    import dns.rrset

    r = dns.message.make_response(dns.message.make_query(qname, qtype, use_edns=0, payload=1232))
    for section, rrsets in ((r.answer, answers), (r.authority, authority), (r.additional, additional)):
        for args in rrsets:
            section.append(dns.rrset.from_text_list(*args))
    r.set_rcode(rcode)
    return r.to_wire()


def test_fast_dns_reader_classifies_as_dnspython_does():
    import random

    import dns.exception
    import dns.message
    import dns.name
    import dns.rcode
    import dns.rdatatype

    from ssdns import dnsquery as dq

    n = "web-0.nginx.default.svc.cluster.local."
    soa = [("cluster.local.", 5, "IN", "SOA", ["ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5"])]
    base = [
        (_reply(n, "A", [(n, 5, "IN", "A", ["127.10.0.1", "127.10.0.2"])]), "A"),
        (_reply(n, "AAAA", [(n, 5, "IN", "AAAA", ["fd00::1", "::ffff:1.2.3.4", "2001:db8:0:0:1:0:0:1", "::"])]), "AAAA"),
        (_reply(n, "A", authority=soa), "A"),
        (_reply(n, "A", rcode=dns.rcode.NXDOMAIN, authority=soa), "A"),
        (_reply(n, "A", rcode=dns.rcode.SERVFAIL), "A"),
        (_reply(n, "A", rcode=dns.rcode.REFUSED), "A"),
        (_reply(n, "A", rcode=dns.rcode.BADVERS), "A"),
        (_reply(n, "A", [(n, 5, "IN", "CNAME", ["X.example."]), ("x.example.", 7, "IN", "A", ["1.2.3.4"])]), "A"),
        (_reply(n, "PTR", [(n, 5, "IN", "PTR", ["WEB-0.Nginx.default.svc.cluster.local.", "we\\.b.x.", "a\\200.x."])]), "PTR"),
        (_reply(n, "SRV", [(n, 5, "IN", "SRV", ["0 50 80 web-0.nginx.default.svc.cluster.local.",
                                                 "0 50 80 web-1.nginx.default.svc.cluster.local."])],
                additional=[("web-0.nginx.default.svc.cluster.local.", 5, "IN", "A", ["1.1.1.1"])]), "SRV"),
        (_reply(n, "TXT", [(n, 5, "IN", "TXT", ['"1.1.0"', '"a b" "C\\"d\\\\" "\\001\\255"'])]), "TXT"),
        (_reply(n, "MX", [(n, 5, "IN", "MX", ["10 mail.x."])]), "MX"),
    ]
    rnd = random.Random(1)
    cases = list(base)
    for wire, t in base:
        cases += [(wire[:cut], t) for cut in range(1, len(wire), max(1, len(wire) // 5))] + [(wire + b"\0", t)]
        for _ in range(150):
            b = bytearray(wire)
            for _ in range(rnd.choice((1, 1, 2))):
                b[rnd.randrange(2, len(b))] = rnd.randrange(256)
            cases.append((bytes(b), t))
    for wire, t in cases:
        try:
            ref = dq.classify(dns.message.from_wire(wire), dns.name.from_text(n), dns.rdatatype.from_text(t), "s", False)
            want = (ref.outcome, ref.values, ref.ttl, ref.detail)
        except dns.exception.DNSException:
            want = "malformed"
        got = dq.classify_wire(wire, n, t, dq.rdtype_number(t), "s", False)
        got = "malformed" if got.detail.startswith("s: ") else (got.outcome, got.values, got.ttl, got.detail)
        assert got == want, (t, wire.hex())


def test_http_probe_reads_responses_and_names_failures():
    import asyncio
    import gzip
    import time

    from ssdns.httpprobe import BODY_CAP, HttpProber, HttpRequest

    big = b"x" * (BODY_CAP * 4)
    answers = {
        "length": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nweb-0",
        "until-close": b"HTTP/1.0 200 OK\r\n\r\nweb-1\n",
        "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nweb\r\n2;x=1\r\n-2\r\n0\r\n\r\n",
        "gzip": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n" + gzip.compress(b"web-3"),
        "interim": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno",
        "big": b"HTTP/1.1 200 OK\r\n\r\n" + big,
        "short": b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nweb-",
        "garbage": b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
        "closed": b"",
        "silent": None,
    }
    seen_requests = []

    async def main():
        async def serve(reader, writer):
            head = await reader.readuntil(b"\r\n\r\n")
            seen_requests.append(head)
            data = answers[ports[writer.get_extra_info("sockname")[1]]]
            if data is None:  # silent until the client gives up and closes
                await asyncio.wait_for(reader.read(1), 2)
            else:
                writer.write(data)
                await writer.drain()
            writer.close()

        ports, servers = {}, []
        for name in answers:
            srv = await asyncio.start_server(serve, "127.77.0.1", 0)
            ports[srv.sockets[0].getsockname()[1]] = name
            servers.append(srv)
        refused = await asyncio.start_server(serve, "127.77.0.1", 0)
        ports[refused.sockets[0].getsockname()[1]] = "refused"
        refused.close()
        await refused.wait_closed()
        out = {}
        async with HttpProber("/id", time.monotonic() + 0.5) as prober:
            obs = await asyncio.gather(*(prober.probe(HttpRequest(name, "127.77.0.1", port, f"{name}.svc"))
                                         for port, name in ports.items()))
        for server in servers:
            server.close()
        return {o.pod: o for o in obs}, prober.requests_sent

    obs, sent = asyncio.run(main())
    assert sent == len(answers) + 1
    assert (obs["length"].status, obs["length"].body) == (200, "web-0")
    assert obs["until-close"].body == "web-1\n" and obs["chunked"].body == "web-2" and obs["gzip"].body == "web-3"
    assert (obs["interim"].status, obs["interim"].body) == (404, "no")
    assert obs["big"].truncated and len(obs["big"].body) == BODY_CAP
    assert "ended after 4 of 50 bytes" in obs["short"].error
    assert "not an HTTP response" in obs["garbage"].error
    assert "disconnected" in obs["closed"].error
    assert obs["silent"].error == "no answer within 0.5 s"
    assert obs["refused"].error == "cannot connect: connection refused"
    assert all(h.startswith(b"GET /id HTTP/1.1\r\nHost: ") and b"Connection: close" in h for h in seen_requests)
