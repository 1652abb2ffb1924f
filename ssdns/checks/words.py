"""Lookup outcomes in words: for the record type asked and the kind of name, with a hint that is true
for that name (a Service name missing means something else than a pod name missing)."""

from __future__ import annotations

from enum import StrEnum

from ssdns.dnsquery import Lookup, Outcome


class NameKind(StrEnum):
    POD = "pod"  # <pod>.<service>.<ns>.svc.<zone>
    SERVICE = "service"  # <service>.<ns>.svc.<zone>
    SRV = "srv"  # _<port>._<proto>.<service>...
    SCHEMA = "schema"  # dns-version.<zone> TXT
    REVERSE = "reverse"  # the PTR name of an IP


_NXDOMAIN_HINT = {
    NameKind.POD: "the pod is gone, not Ready, or its subdomain does not match the Service",
    # A ClusterIP Service resolves to its ClusterIP: NXDOMAIN is no Service, or a headless one with nothing ready.
    NameKind.SERVICE: "no Service of that name in this namespace and zone, or it is headless with no ready endpoints",
    NameKind.SRV: "the Service has no port of that name and protocol, or no ready endpoints",
    NameKind.SCHEMA: "the nameserver does not serve the Kubernetes DNS schema record in this zone",
    NameKind.REVERSE: "the nameserver knows no pod or endpoint with this IP",
}

_RECORD = {"A": "IPv4 address (A)", "AAAA": "IPv6 address (AAAA)", "SRV": "SRV record", "PTR": "PTR record",
           "TXT": "TXT record"}

_FAILED = {
    Outcome.SERVFAIL: "the nameserver failed (SERVFAIL); CoreDNS answers this before it has synced",
    Outcome.REFUSED: "the nameserver refused the query (REFUSED): is it the cluster DNS?",
    Outcome.TIMEOUT: "no answer in time (timeout)",
}


def why(lookup: Lookup, kind: NameKind) -> str:
    """Why a lookup gave nothing usable, for a person: `no such name (NXDOMAIN): <hint>`."""
    if lookup.outcome is Outcome.NXDOMAIN:
        return f"no such name (NXDOMAIN): {_NXDOMAIN_HINT[kind]}"
    if lookup.outcome is Outcome.NODATA:
        # NODATA also covers an answer whose CNAME chain ends without the type asked (a loop is an ERROR).
        return f"the name exists but has no {_RECORD.get(lookup.rdtype, lookup.rdtype + ' record')} (NODATA)"
    if lookup.outcome in _FAILED:
        text = _FAILED[lookup.outcome]
        # A timeout says what was waited for: a server trickling over TCP, replies ignored as forged.
        return f"{text} [{lookup.detail}]" if lookup.detail and lookup.outcome is Outcome.TIMEOUT else text
    # ERROR, or an outcome newer than this text: say what it is and what the client saw.
    text = "unusable answer" if lookup.outcome is Outcome.ERROR else f"no usable answer ({lookup.outcome.value})"
    return f"{text} [{lookup.detail}]" if lookup.detail else text
