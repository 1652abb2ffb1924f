"""The two ways a reply is read (dnsquery.classify_wire): the common answer record by record through
dnspython's wire parser, anything else as a whole dns.message. Whatever the reply, both must say the
same thing: the fast path may only take what the full parse would judge identically."""

from __future__ import annotations

import struct

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ssdns.dnsquery import Outcome, matches, _plain, classify_message, classify_wire, question_bytes, query_bytes

SVC = "nginx.default.svc.cluster.local."
POD = "web-1." + SVC


def reply(qname: str, qtype: str, answers=(), *, rcode=dns.rcode.NOERROR, authority=(), additional=(),
          edns: int | None = 0, ednsflags: int = 0, options=(), ttl: int = 5) -> bytes:
    q = dns.message.make_query(qname, qtype, use_edns=edns)
    q.id = 0x1234  # fixed: tests look for record bytes in the reply
    r = dns.message.make_response(q)
    if edns is not None:
        r.use_edns(edns, ednsflags, 1232, options=list(options))
    r.set_rcode(rcode)
    for owner, rtype, values in answers:
        r.answer.append(dns.rrset.from_text_list(owner, ttl, "IN", rtype, values))
    for owner, rtype, values in authority:
        r.authority.append(dns.rrset.from_text_list(owner, ttl, "IN", rtype, values))
    for owner, rtype, values in additional:
        r.additional.append(dns.rrset.from_text_list(owner, ttl, "IN", rtype, values))
    return r.to_wire(max_size=65535)


def both(wire: bytes, name: str, rdtype: str):
    fast = classify_wire(wire, name, rdtype, "127.0.0.1:53", False)
    full = classify_message(wire, name, rdtype, "127.0.0.1:53", False)
    assert fast == full
    return fast


COMMON = {
    "pod A": (reply(POD, "A", [(POD, "A", ["127.10.0.2"])]), POD, "A"),
    "Service A, 3 pods": (reply(SVC, "A", [(SVC, "A", ["127.10.0.3", "127.10.0.1", "127.10.0.2"])]), SVC, "A"),
    "AAAA": (reply(POD, "AAAA", [(POD, "AAAA", ["fd00::2"])]), POD, "AAAA"),
    "PTR": (reply("2.0.10.127.in-addr.arpa.", "PTR", [("2.0.10.127.in-addr.arpa.", "PTR", ["WEB-1." + SVC])]),
            "2.0.10.127.in-addr.arpa.", "PTR"),
    "SRV": (reply("_web._tcp." + SVC, "SRV", [("_web._tcp." + SVC, "SRV",
                                                [f"0 50 80 web-{i}.{SVC}" for i in range(3)])]),
            "_web._tcp." + SVC, "SRV"),
    "no EDNS": (reply(POD, "A", [(POD, "A", ["127.10.0.2"])], edns=None), POD, "A"),
    "1,000 records": (reply(SVC, "A", [(SVC, "A", [f"127.10.{i // 250}.{i % 250 + 1}" for i in range(1000)])]),
                      SVC, "A"),
}


@pytest.mark.parametrize("case", COMMON)
def test_the_common_answers_take_the_fast_path_and_say_what_the_full_parse_says(case):
    wire, name, rdtype = COMMON[case]
    assert _plain(wire, {"A": 1, "AAAA": 28, "PTR": 12, "SRV": 33}[rdtype]) is not None
    got = both(wire, name, rdtype)
    assert got.outcome is Outcome.OK and got.values and got.rcode == "NOERROR"
    assert got.values == tuple(sorted(got.values)) and all(v == v.lower() for v in got.values)


def test_records_are_each_taken_once_with_the_smallest_ttl():
    q = dns.message.make_query(POD, "A", use_edns=0)
    r = dns.message.make_response(q)
    rrset = dns.rrset.from_text_list(POD, 30, "IN", "A", ["127.10.0.2"])
    r.answer.append(rrset)
    wire = bytearray(r.to_wire())
    # Append two more records by hand: a duplicate with a smaller TTL and one with the RFC 2181 "negative"
    # TTL (top bit set: read as 0); dnspython would merge them into one RRset.
    record = bytes(wire[-(2 + 10 + 4 + 11):-11])  # the A record (owner pointer .. rdata) before the OPT
    assert record[:2] == b"\xc0\x0c"
    dup = record[:6] + struct.pack("!I", 7) + record[10:]
    neg = record[:6] + struct.pack("!I", 0x80000001) + record[10:-1] + b"\x09"
    wire[6:8] = struct.pack("!H", 3)
    wire = wire[:-11] + dup + neg + wire[-11:]
    got = both(bytes(wire), POD, "A")
    assert got.values == ("127.10.0.2", "127.10.0.9") and got.ttl == 0


UNUSUAL = {
    "NXDOMAIN": reply(POD, "A", rcode=dns.rcode.NXDOMAIN, authority=[(SVC, "SOA", [
        "ns.dns." + SVC + " hostmaster." + SVC + " 1 7200 1800 86400 5"])]),
    "SERVFAIL": reply(POD, "A", rcode=dns.rcode.SERVFAIL),
    "REFUSED": reply(POD, "A", rcode=dns.rcode.REFUSED),
    "extended rcode (BADVERS)": reply(POD, "A", [(POD, "A", ["127.10.0.2"])], rcode=dns.rcode.BADVERS),
    "EDNS options": reply(POD, "A", [(POD, "A", ["127.10.0.2"])],
                          options=[dns.edns.GenericOption(dns.edns.NSID, b"coredns-1")]),
    "a CNAME first": reply(POD, "A", [(POD, "CNAME", ["web-2." + SVC]), ("web-2." + SVC, "A", ["127.10.0.3"])]),
    "another type": reply(POD, "A", [(POD, "AAAA", ["fd00::2"])]),
    "another owner": reply(POD, "A", [("web-2." + SVC, "A", ["127.10.0.3"])]),
    # a TXT record at the root turned into an OPT: an OPT out of place (from_wire: BadEDNS)
    "OPT in the authority section": reply(POD, "A", [(POD, "A", ["127.10.0.2"])], authority=[(".", "TXT", ['""'])])
    .replace(b"\x00\x00\x10\x00\x01", b"\x00\x00\x29\x00\x01", 1),
    "two OPTs": reply(POD, "A", [(POD, "A", ["127.10.0.2"])], additional=[(".", "TXT", ['""'])])
    .replace(b"\x00\x00\x10\x00\x01", b"\x00\x00\x29\x00\x01", 1),
}


NODATA = {
    "bare": reply(SVC, "AAAA"),
    "with the zone's SOA": reply(SVC, "AAAA", authority=[(SVC, "SOA", [
        "ns.dns." + SVC + " hostmaster." + SVC + " 1 7200 1800 86400 5"])]),
}


@pytest.mark.parametrize("case", NODATA)
def test_nodata_takes_the_fast_path(case):
    """A Service's AAAA in an IPv4 cluster: NODATA in every healthy run."""
    assert _plain(NODATA[case], 28) is not None
    assert both(NODATA[case], SVC, "AAAA").outcome is Outcome.NODATA


def test_records_in_the_authority_and_additional_sections_are_set_aside():
    """CoreDNS puts the SRV targets' addresses in the additional section; a nameserver may add NS records."""
    wire = reply(POD, "A", [(POD, "A", ["127.10.0.2"])], authority=[(SVC, "NS", ["ns." + SVC])],
                 additional=[("ns." + SVC, "A", ["127.10.0.9"])])
    assert _plain(wire, 1) is not None
    assert both(wire, POD, "A").values == ("127.10.0.2",)


@pytest.mark.parametrize("case", UNUSUAL)
def test_any_other_reply_is_read_whole(case):
    wire = UNUSUAL[case]
    assert _plain(wire, 1) is None
    both(wire, POD, "A")


def test_an_uncompressed_owner_is_read_whole_and_judged_the_same():
    wire = COMMON["pod A"][0]
    qname = dns.message.make_query(POD, "A").question[0].name.to_wire()
    assert wire.count(b"\xc0\x0c") == 1
    spelled = wire.replace(b"\xc0\x0c", qname.upper().replace(b"WEB", b"Web"), 1)
    assert _plain(spelled, 1) is None
    got = both(spelled, POD, "A")
    assert got.outcome is Outcome.OK and got.values == ("127.10.0.2",)


def test_another_class_is_not_an_answer():
    wire = bytearray(COMMON["pod A"][0])
    at = wire.index(b"\xc0\x0c") + 4
    wire[at:at + 2] = b"\x00\x04"  # class HS (CH would read A as a CHAOS address: malformed)
    got = both(bytes(wire), POD, "A")
    assert got.outcome is Outcome.NODATA


@pytest.mark.parametrize("case", ["pod A", "SRV", "Service A, 3 pods"])
def test_every_cut_reply_is_malformed_never_a_pass(case):
    wire, name, rdtype = COMMON[case]
    qend = 12 + len(question_bytes(name, rdtype))
    for n in range(qend, len(wire)):
        got = both(wire[:n], name, rdtype)
        assert got.outcome is Outcome.ERROR and "malformed reply" in got.detail, n
    assert both(wire + b"junk", name, rdtype).outcome is Outcome.OK  # trailing bytes: ignored, as before


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(sorted(COMMON) + sorted(UNUSUAL) + sorted(NODATA)),
       flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
       cut=st.integers(0, 64))
def test_a_damaged_reply_is_judged_as_the_full_parse_judges_it(case, flips, cut):
    """Any bytes after the question (which the client matched byte for byte) and the header's flags and
    counts (all but QDCOUNT, which the client matched): the fast path never says more than the full parse."""
    if case in COMMON:
        wire, name, rdtype = COMMON[case]
    elif case in NODATA:
        wire, name, rdtype = NODATA[case], SVC, "AAAA"
    else:
        wire, name, rdtype = UNUSUAL[case], POD, "A"
    qend = 12 + len(question_bytes(name, rdtype))
    editable = [2, 3, 6, 7, 8, 9, 10, 11, *range(qend, len(wire))]
    data = bytearray(wire)
    for at, value in flips:
        data[editable[at % len(editable)]] = value
    if cut:
        data = data[:max(qend, len(data) - cut)]
    both(bytes(data), name, rdtype)


def test_our_own_query_reflected_is_not_an_answer():
    question = question_bytes(POD, "A")
    query = query_bytes(4242, question)
    assert not matches(query, question)
    answer = reply(POD, "A", [(POD, "A", ["127.10.0.2"])])
    assert matches(answer, question)
    flags = struct.unpack("!H", answer[2:4])[0]
    not_query = answer[:2] + struct.pack("!H", flags | (dns.opcode.UPDATE << 11)) + answer[4:]
    assert not matches(not_query, question)  # a response, but to another opcode


@settings(max_examples=400, deadline=None)
@given(labels=st.lists(st.text(alphabet="abcXYZ019-_", min_size=0, max_size=70), min_size=0, max_size=6),
       parent=st.sampled_from(["", SVC, "Nginx.Default.SVC.cluster.local.", "0.92.127.in-addr.arpa.", "x" * 63 + "."]),
       rdtype=st.sampled_from(["A", "AAAA", "SRV", "PTR", "TXT"]))
def test_a_question_is_the_bytes_dnspython_would_send(labels, parent, rdtype):
    """The question section built without dnspython (a name's parent encoded once per run) is dnspython's own,
    the name lower-cased; a name dnspython refuses (an empty label, a label or name too long) is refused too."""
    parts = [*labels, *([parent.rstrip(".")] if parent else [])]
    assume(not parts or parts[-1])  # "a.." is read as "a." (trailing dots stripped), as it always was
    name = ".".join(parts) + "."
    try:
        expected = dns.message.make_query(name.lower(), rdtype, use_edns=False).to_wire()[12:]
    except dns.exception.DNSException:
        with pytest.raises(dns.exception.DNSException):
            question_bytes(name, rdtype)
        return
    assert question_bytes(name, rdtype) == expected
    assert question_bytes(name, rdtype) == expected  # the parent now from the cache
