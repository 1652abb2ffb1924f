"""DNS questions and answers, without I/O: the question bytes, which replies are ours, one classified answer
(Lookup) per (name, type), and the rules both clients follow (the asyncio one, dnsclient.py; the blocking one
for a small DNS-only check, dnssync.py): nameservers in order, a budget each, TCP when truncated.

Every query is for a fully qualified name (no search list), goes out over UDP with EDNS0,
and is retried over TCP when the answer comes back truncated.

The question bytes are built here (a 12-byte header, the name, an OPT record: no protocol logic),
and a reply is taken only when it is a response (QR set, opcode QUERY) whose ID *and* question match
an outstanding query; anything else (a late or forged reply, an echoed query, garbage) is ignored and
counted. Every name and record in a reply is parsed by dnspython: the common answer (NOERROR, only
records of the type asked, owned by the name asked) through its wire parser, record by record
(`_plain`: 5-9x cheaper than building a Message); any other reply through `dns.message.from_wire`,
imported only then.
"""

from __future__ import annotations

import os
import struct
from dataclasses import replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import ssdns.dnsfeatures  # noqa: F401  (first: dnspython without importlib.metadata; see there)
import dns.exception
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.wire

from ssdns.frozen import frozen

if TYPE_CHECKING:
    import dns.message

EDNS_PAYLOAD = 1232  # the DNS Flag Day 2020 size: no IP fragmentation
ATTEMPT_TIMEOUT = 2.0  # per send (a server gets TRIES_PER_SERVER sends); well under the 5 s conntrack-race stall (dns-spec.md §6.4)
TRIES_PER_SERVER = 2
MAX_CNAME_CHAIN = 8


class Outcome(StrEnum):
    OK = "ok"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    SERVFAIL = "servfail"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    ERROR = "error"  # any other rcode, a malformed or oversized reply, a CNAME loop


# The rcodes by which a nameserver says something about the *name* (it looked it up: found it, found
# nothing, or tried and failed). REFUSED, FORMERR and NOTIMP reject the *question* (not its zone, not its
# protocol): a run where no nameserver said anything about any name could not run (exit 3).
ANSWERING_RCODES = frozenset({"NOERROR", "NXDOMAIN", "SERVFAIL"})


@frozen
class Lookup:
    """What one (name, type) question got, from the nameserver that settled it. (A docstring also spares
    dataclasses from building one with inspect.signature at import.)"""

    name: str
    rdtype: str
    outcome: Outcome
    values: tuple[str, ...] = ()  # rdata in presentation form, lower-cased names
    ttl: int | None = None
    server: str | None = None
    tcp: bool = False
    elapsed_ms: float = 0.0
    detail: str = ""
    rcode: str | None = None  # the reply's rcode; None when no usable reply came

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def answered(self) -> bool:
        """A nameserver answered about this name (see ANSWERING_RCODES): DNS findings follow from it."""
        return self.rcode in ANSWERING_RCODES

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "type": self.rdtype,
            "outcome": self.outcome.value,
            "values": list(self.values),
            "ttl": self.ttl,
            "server": self.server,
            "tcp": self.tcp,
            "elapsed_ms": round(self.elapsed_ms, 2),
        }


_RCODES = {
    dns.rcode.NXDOMAIN: Outcome.NXDOMAIN,
    dns.rcode.SERVFAIL: Outcome.SERVFAIL,
    dns.rcode.REFUSED: Outcome.REFUSED,
}
MAX_MESSAGE = 65535  # a DNS message over TCP: a 16-bit length
# Wire bytes per record with name compression (the owner a 2-byte pointer): an A record 16, an SRV record
# to a pod name ~59 (the SRV set passes 64 KiB above ~1,110 pods, the A set above ~4,090).
_RECORD_BYTES = {"A": 16, "AAAA": 28, "SRV": 59, "PTR": 45}
_QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "TXT": 16, "AAAA": 28, "SRV": 33}
_RDTYPES = {v: dns.rdatatype.RdataType.make(v) for v in _QTYPES.values()}
_OPT = b"\x00\x00\x29" + struct.pack("!H", EDNS_PAYLOAD) + b"\x00\x00\x00\x00\x00\x00"  # EDNS0, DO=0


_PARENTS: dict[str, bytes] = {}  # a parent name -> its wire labels: a run's names share a few parents


def question_bytes(name: str, rdtype: str) -> bytes:
    """The question section for an absolute name (trailing dot) in class IN, names lower-cased. Every question of
    every resolver leg is built here (16,000 at 1,000 pods): the first label is encoded, its parent looked up."""
    text = name.lower()
    head, _, parent = text.rstrip(".").partition(".")
    tail = _PARENTS.get(parent)
    if tail is None:
        tail = _labels(parent)
        if tail is not None and len(_PARENTS) < 4096:
            _PARENTS[parent] = tail
    out = None
    if tail is not None and 0 < len(head) < 64 and head.isascii():
        out = bytes((len(head),)) + head.encode("ascii") + tail
        if len(out) > 254:
            out = None
    if out is None and name in (".", ""):
        out = b""  # the root (a single dot) as before; an empty name is the root too
    if out is None:  # IDN, escapes, odd lengths: let dnspython say what it is
        out = (dns.name.from_text(name).to_wire() or b"\x00")[:-1]
    qtype = _QTYPES.get(rdtype) or dns.rdatatype.from_text(rdtype)
    return out + b"\x00" + struct.pack("!HH", qtype, 1)


def _labels(parent: str) -> bytes | None:
    """A name's wire labels without the root (b"" for none), or None when it needs dnspython."""
    if not parent:
        return b""
    labels = parent.split(".")
    if not parent.isascii() or any(not 0 < len(lb) < 64 for lb in labels):
        return None
    return b"".join(bytes((len(lb),)) + lb.encode("ascii") for lb in labels)


def question_or_error(name: str, rdtype: str) -> bytes | Lookup:
    """The question bytes, or the Lookup that says why the name cannot be asked."""
    try:
        return question_bytes(name, rdtype)
    except (dns.exception.DNSException, ValueError) as exc:
        return Lookup(name, rdtype, Outcome.ERROR, detail=f"cannot ask {name!r}: {exc}")


def query_bytes(qid: int, question: bytes) -> bytes:
    # ID, flags RD, QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, ARCOUNT 1 (the OPT record)
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1) + question + _OPT


def matches(reply: bytes, question: bytes) -> bool:
    """A response (QR set, opcode QUERY) whose question section is ours (case-insensitively: a server may
    echo 0x20 case). Our own query reflected back (QR clear) is not an answer."""
    end = 12 + len(question)
    return (len(reply) >= end and reply[2] & 0xF8 == 0x80 and reply[4:6] == b"\x00\x01"
            and reply[12:end - 4].lower() == question[:-4] and reply[end - 4:end] == question[-4:])


_ids: list[int] = []


def random_id() -> int:
    """A query ID from the system's CSPRNG, 256 at a time (one getrandom call): an off-path forger must guess
    it (with the source port), and a Mersenne Twister's output (the random module's) is predictable from what
    it gave before."""
    if not _ids:
        _ids.extend(memoryview(os.urandom(512)).cast("H").tolist())
    return _ids.pop()


def free_id(waiting: dict[int, Any]) -> int:
    """A random query ID no outstanding query on the socket or connection uses."""
    for _ in range(100):
        qid = random_id()
        if qid not in waiting:
            return qid
    raise RuntimeError("no free query ID")  # unreachable: outstanding queries are bounded far below 65536


def elsewhere(seen: Lookup, server: str, tcp: bool) -> Lookup:
    """A memoised answer as another server gave it: replace(seen, server=..., tcp=...) without __init__ (0.6 us
    instead of 4.4: a copy per memo hit, ~14,000 with every resolver at 1,000 pods). A new object: _lookup sets
    its time in place."""
    new = object.__new__(Lookup)
    fields = new.__dict__
    fields.update(seen.__dict__)
    fields["server"], fields["tcp"] = server, tcp
    return new


class Failed(Exception):
    """A try that ended without a usable reply; its message says why."""

    def __init__(self, outcome: Outcome, detail: str, tcp: bool = False):
        super().__init__(detail)
        self.outcome, self.detail, self.tcp = outcome, detail, tcp


# The rules of one lookup, shared by both clients (they differ only in how they wait).

DEFINITE = frozenset({Outcome.OK, Outcome.NXDOMAIN, Outcome.NODATA})  # a definite answer ends the search


def plan(rdtype: str, records: int, transport: str) -> tuple[bool, int]:
    """(tcp_first, size): records is how many records the answer is expected to hold. A large answer goes over
    TCP at once (no UDP try that would come back truncated), and a SERVFAIL for one too large is named so."""
    size = records * _RECORD_BYTES.get(rdtype, 16)
    return size > EDNS_PAYLOAD or transport == "tcp", size


def not_asked(name: str, rdtype: str, server: object) -> Lookup:
    return Lookup(name, rdtype, Outcome.TIMEOUT, server=str(server), detail=f"{server}: not asked, deadline reached")


def server_budget(patience: float, left: float, servers_left: int) -> float:
    """A silent server may not eat the time the next ones need: each gets a share of what is left."""
    return min(patience, left / servers_left)


def settle(said: list[Lookup], elapsed_ms: float) -> Lookup:
    """The lookup's answer from what each nameserver said: the first definite one, else the first that said
    something about the name, else what each said. `said` was made for this lookup and is not shared yet: its
    time is set in place (replace() costs more than the rest of the bookkeeping of a lookup)."""
    best = next((r for r in said if r.outcome in DEFINITE), None)
    best = best or next((r for r in said if r.answered), None)
    if best is None:
        # Nobody answered about the name: name what each nameserver said.
        best = replace(said[-1], detail="; ".join(r.detail or f"{r.server}: {r.outcome.value}" for r in said))
    object.__setattr__(best, "elapsed_ms", elapsed_ms)
    return best


def over_tcp(reply: Lookup, wire: bytes, where: str, tcp_first: bool, size: int) -> Lookup:
    """A TCP answer as classified, or what it means when it is truncated even there, or a SERVFAIL for an
    answer too large for DNS (knotd's answer to a set over 64 KiB; not "CoreDNS has not synced")."""
    if wire[2] & 0x02:
        return replace(reply, outcome=Outcome.ERROR, values=(),
                       detail=f"{where}: the answer is larger than DNS can carry (truncated even over "
                              "TCP: more than 64 KiB)")
    if reply.outcome is Outcome.SERVFAIL and (not tcp_first or size > MAX_MESSAGE):
        why = (f"about {size // 1024} KiB of records expected" if size > MAX_MESSAGE
               else "the answer did not fit in UDP")
        return replace(reply, outcome=Outcome.ERROR,
                       detail=f"{where}: SERVFAIL over TCP, {why}: most likely the answer is larger "
                              "than DNS can carry (64 KiB)")
    return reply


def failed(name: str, rdtype: str, where: str, tcp: bool, exc: Failed) -> Lookup:
    return Lookup(name, rdtype, exc.outcome, server=where, tcp=tcp or exc.tcp, detail=exc.detail)


def cannot_send(server: object, exc: OSError) -> Failed:
    return Failed(Outcome.ERROR, f"{server}: cannot send: {exc.strerror or exc}")


def udp_failure(server: object, exc: OSError, ignored: int) -> Failed:
    """Why UDP gave no answer: silence (TimeoutError) after `ignored` replies that answered nothing asked, a
    port unreachable, another socket error."""
    if isinstance(exc, TimeoutError):
        extra = f" ({ignored} replies ignored: not an answer to any question asked)" if ignored else ""
        return Failed(Outcome.TIMEOUT, f"no reply from {server}{extra}")
    if isinstance(exc, ConnectionRefusedError):
        return Failed(Outcome.ERROR, f"{server}: nothing listens there (port unreachable)")
    return Failed(Outcome.ERROR, f"{server}: {exc.strerror or exc}")


def tcp_failure(server: object, exc: OSError, transport: str, got: int = 0) -> Failed:
    """Why TCP gave no answer: no complete reply in time (after `got` bytes), refused, another socket error."""
    if isinstance(exc, TimeoutError):
        read = f" after {got} bytes" if got else ""
        return Failed(Outcome.TIMEOUT, f"no complete reply from {server} over TCP{read}", tcp=True)
    if isinstance(exc, ConnectionRefusedError):
        why = "nothing listens" if transport == "tcp" else "the answer was truncated over UDP and nothing listens"
        return Failed(Outcome.ERROR, f"{server}: {why} on TCP (connection refused)", tcp=True)
    return Failed(Outcome.ERROR, f"{server}: TCP: {exc.strerror or exc}", tcp=True)


def cut_short(server: object, partial: int, expected: int) -> Failed:
    return Failed(Outcome.ERROR, f"{server}: TCP connection closed mid-answer ({partial} of {expected} bytes)",
                   tcp=True)


def classify_wire(wire: bytes, name: str, rdtype: str, server: str, tcp: bool) -> Lookup:
    """wire: a reply whose question matched ours (_matches)."""
    qtype = _QTYPES.get(rdtype) or dns.rdatatype.from_text(rdtype)
    try:
        plain = _plain(wire, qtype)
    except (dns.exception.DNSException, IndexError, struct.error):
        plain = None  # malformed: from_wire says how
    if plain is None:
        return classify_message(wire, name, rdtype, server, tcp)
    outcome, ttl, values = plain
    return Lookup(name, rdtype, outcome, values, ttl, server, tcp, rcode="NOERROR")


def classify_message(wire: bytes, name: str, rdtype: str, server: str, tcp: bool) -> Lookup:
    """Any reply, read whole by dns.message.from_wire (imported only when a reply needs it: ~15 ms)."""
    from dns.message import from_wire

    try:
        reply = from_wire(wire, ignore_trailing=True)
    except dns.exception.DNSException as exc:
        return Lookup(name, rdtype, Outcome.ERROR, server=server, tcp=tcp,
                      detail=f"{server}: malformed reply ({type(exc).__name__}: {exc})")
    return classify(reply, name, rdtype, server, tcp)


_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")  # type, class, TTL, rdata length
_TO_QUESTION = b"\xc0\x0c"  # a compression pointer to the question's name (offset 12)


def _plain(wire: bytes, qtype: int) -> tuple[Outcome, int | None, tuple[str, ...]] | None:
    """The common reply's (outcome, TTL, values), read with dnspython's wire parser, names and rdata classes,
    without building a Message: NOERROR; in the answer section only records of the type asked, in class IN,
    owned by the name asked (a pointer to the question), or none at all (NODATA); the authority and additional
    records (a NODATA's SOA, an SRV answer's addresses) parsed and set aside, with at most one OPT (no extended
    rcode, no options). None for any other reply: classify_message reads it in full. What comes back is what
    classify() makes of the same reply: each value once, sorted, lower-cased; the smallest TTL."""
    _id, flags, _qd, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    if flags & 0x780F:  # an opcode other than QUERY (from_wire reads an UPDATE otherwise), an rcode
        return None
    at = 12
    while wire[at]:  # the question's name: uncompressed, it matched ours byte for byte
        at += wire[at] + 1
    parser = dns.wire.Parser(wire, at + 5)
    rdtype = _RDTYPES.get(qtype) or dns.rdatatype.RdataType.make(qtype)  # make() costs ~3 us a reply
    values: set[str] = set()
    ttl = 0xFFFFFFFF
    for _ in range(ancount):
        if parser.get_bytes(2) != _TO_QUESTION:
            return None
        rtype, rclass, rttl, rdlen = parser.get_struct(_RR.format)
        if rtype != qtype or rclass != 1:
            return None
        with parser.restrict_to(rdlen):
            values.add(dns.rdata.from_wire_parser(dns.rdataclass.IN, rdtype, parser).to_text().lower())
        ttl = min(ttl, 0 if rttl > 0x7FFFFFFF else rttl)  # RFC 2181 §8, as dnspython reads it
    if not _set_aside(parser, nscount, False) or not _set_aside(parser, arcount, True):
        return None
    if not values:
        return Outcome.NODATA, None, ()
    return Outcome.OK, ttl, tuple(sorted(values))


def _set_aside(parser: dns.wire.Parser, count: int, additional: bool) -> bool:
    """Read count records as from_wire reads them (a malformed one makes the reply malformed) and drop them;
    False for what only from_wire judges: an OPT out of place, with options or extended rcode bits, a TSIG."""
    opt = False
    for _ in range(count):
        owner = dns.name.from_wire_parser(parser)  # not get_name(None, True): an argument only dnspython 2.9 has
        rtype, rclass, ttl, rdlen = parser.get_struct(_RR.format)
        if rtype == 41:  # OPT
            if not additional or opt or len(owner) != 1 or ttl >> 24 or rdlen:
                return False
            opt = True
        elif rtype == 250:  # TSIG
            return False
        else:
            with parser.restrict_to(rdlen):
                dns.rdata.from_wire_parser(rclass, rtype, parser)
    return True


def classify(reply: dns.message.Message, name: str, rdtype: str, server: str, tcp: bool) -> Lookup:
    """name: the absolute name asked, lower-cased, with its trailing dot; rdtype: its type's mnemonic."""
    rcode = reply.rcode()
    rtext = dns.rcode.to_text(rcode)
    if rcode != dns.rcode.NOERROR:
        outcome = _RCODES.get(rcode, Outcome.ERROR)
        detail = "" if outcome in (Outcome.NXDOMAIN, Outcome.SERVFAIL) else f"{server}: {rtext}"
        return Lookup(name, rdtype, outcome, server=server, tcp=tcp, detail=detail, rcode=rtext)
    # The question matched ours byte for byte, so the parsed question name is the one asked.
    qname = reply.question[0].name if reply.question else dns.name.from_text(name)
    qtype = _QTYPES.get(rdtype) or dns.rdatatype.from_text(rdtype)
    answer = reply.answer
    one = answer[0] if len(answer) == 1 else None
    if one is not None and one.rdtype == qtype and one.rdclass == dns.rdataclass.IN and one.name == qname:
        rrset, problem = one, ""  # the common case: one RRset, the one asked for
    else:
        rrset, problem = _follow_cnames(answer, qname, qtype)
    if problem:
        return Lookup(name, rdtype, Outcome.ERROR, server=server, tcp=tcp, rcode=rtext, detail=f"{server}: {problem}")
    if rrset is None:
        return Lookup(name, rdtype, Outcome.NODATA, server=server, tcp=tcp, rcode=rtext)
    return Lookup(name, rdtype, Outcome.OK, tuple(sorted(rd.to_text().lower() for rd in rrset)), rrset.ttl,
                  server, tcp, rcode=rtext)

def _follow_cnames(answer: list, qname: dns.name.Name, qtype: int) -> tuple[Any, str]:
    """The RRset of the type asked at the end of the answer's CNAME chain from qname (None when the chain
    ends without one), or what is wrong with the chain: a loop, or one longer than MAX_CNAME_CHAIN."""
    by_owner: dict = {}
    for rrset in answer:
        if rrset.rdclass == dns.rdataclass.IN:
            by_owner.setdefault(rrset.name, {})[rrset.rdtype] = rrset
    owner, seen = qname, [qname]
    for _ in range(MAX_CNAME_CHAIN + 1):
        sets = by_owner.get(owner, {})
        if qtype in sets:
            return sets[qtype], ""
        cname = sets.get(dns.rdatatype.CNAME)
        if cname is None:
            return None, ""
        owner = cname[0].target
        if owner in seen:
            return None, "CNAME loop (" + " -> ".join(n.to_text() for n in [*seen, owner]) + ")"
        seen.append(owner)
    return None, f"CNAME chain longer than {MAX_CNAME_CHAIN}"
