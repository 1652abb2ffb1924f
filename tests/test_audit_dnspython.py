"""Every dnspython pyproject.toml allows (>=2.6) reads replies. The fast path (dnsquery._plain) called
Parser.get_name(origin, decompress), an argument only dnspython 2.9 has: with 2.6, 2.7 or 2.8 every reply
with an OPT or any authority or additional record (every EDNS reply: all of them) raised TypeError, and
`ssdns demo` ended in a traceback. dnspython 2.6.1 to 2.8.0 define the method as below (verbatim); the test
reads each common reply's fast path under that definition (the full parse, dns.message, is 2.9's own and calls
it with 2.9's arguments: it runs first, unpatched, for what the answer must be)."""

from __future__ import annotations

import dns.name
import dns.wire
import pytest
from test_dnsparse import COMMON, NODATA, POD, SVC, both, reply

from ssdns.dnsquery import _plain


def get_name_before_2_9(self, origin=None):  # dnspython 2.6.1-2.8.0, dns/wire.py
    name = dns.name.from_wire_parser(self)
    if origin:
        name = name.relativize(origin)
    return name


# The replies whose records dnspython parses without get_name (A, AAAA; an A in the additional section), so that
# 2.9's own rdata parsers (PTR, SRV, SOA, NS call get_name with 2.9's arguments) are not run under the old one.
# Each has the OPT record (every EDNS reply), whose owner the fast path reads with get_name.
CASES = {
    **{f"common: {k}": COMMON[k] for k in ("pod A", "Service A, 3 pods", "AAAA", "1,000 records")},
    "NODATA": (NODATA["bare"], SVC, "AAAA"),
    "an address in the additional section": (reply(POD, "A", [(POD, "A", ["127.10.0.2"])], additional=[
        ("ns." + SVC, "A", ["127.10.0.9"])]), POD, "A"),
}


@pytest.mark.parametrize("case", CASES)
def test_replies_are_read_with_the_oldest_dnspython_allowed(case, monkeypatch):
    wire, name, rdtype = CASES[case]
    want = both(wire, name, rdtype)
    assert want.rcode == "NOERROR" and want.outcome.value in ("ok", "nodata")
    monkeypatch.setattr(dns.wire.Parser, "get_name", get_name_before_2_9)
    got = _plain(wire, {"A": 1, "AAAA": 28, "PTR": 12, "SRV": 33}[rdtype])
    assert got == (want.outcome, want.ttl, want.values)
