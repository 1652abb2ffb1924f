"""Names: FQDNs under a Service, reverse names, CoreDNS's dashed endpoint names, SRV values, ordinals.

Pure string helpers shared by observation and judging; the one place an ordinal is parsed.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

_ORDINAL = r".+-(0|[1-9][0-9]*)"  # compiled (and cached by `re`) when first used


class SrvRecord(NamedTuple):
    priority: int
    weight: int
    port: int
    target: str

    def __str__(self) -> str:
        return f"{self.priority} {self.weight} {self.port} {self.target}"


def ordinal(name: str, statefulset: str | None = None) -> int | None:
    """`web-2` -> 2. With a StatefulSet name, only `<statefulset>-<n>` counts; `web-02` is no ordinal."""
    if statefulset is not None:
        if not name.startswith(statefulset + "-"):
            return None
        tail = name[len(statefulset) + 1 :]
        return int(tail) if tail.isdigit() and (tail == "0" or not tail.startswith("0")) else None
    m = re.fullmatch(_ORDINAL, name)
    return int(m.group(1)) if m else None


def by_ordinal(names: list[str], statefulset: str | None = None) -> list[str]:
    """Pods in ordinal order; names without an ordinal last, by name."""

    def key(n: str) -> tuple[bool, int, str]:
        o = ordinal(n, statefulset)
        return (o is None, o or 0, n)

    return sorted(names, key=key)


def reverse_name(ip: str) -> str:
    """The PTR name of an IP: 10.0.0.1 -> 1.0.0.10.in-addr.arpa. A dotted quad as ipaddress accepts it is
    reversed here (3.6 -> 1.6 us; three per pod in a check); anything else goes through ipaddress, which
    raises ValueError for what is no IP."""
    parts = ip.split(".")
    if len(parts) == 4 and all(map(_octet, parts)):
        return f"{parts[3]}.{parts[2]}.{parts[1]}.{parts[0]}.in-addr.arpa."
    return ipaddress.ip_address(ip).reverse_pointer + "."


def _octet(part: str) -> bool:
    """Decimal 0-255 with no leading zero, as ipaddress reads an IPv4 octet."""
    return (0 < len(part) <= 3 and part.isascii() and part.isdigit() and (part == "0" or part[0] != "0")
            and int(part) <= 255)


def dashed_name(ip: str) -> str:
    """CoreDNS's name for an endpoint without a hostname: 10.0.0.1 -> 10-0-0-1."""
    return ip.replace(".", "-").replace(":", "-")


def srv_records(values: tuple[str, ...] | list[str]) -> list[SrvRecord]:
    """SRV presentation values ("prio weight port target") as records."""
    out = []
    for value in values:
        prio, weight, port, target = value.split()
        out.append(SrvRecord(int(prio), int(weight), int(port), target))
    return out


def pod_from_fqdn(service_fqdn: str, fqdn: str) -> str | None:
    """`web-0.nginx.ns.svc.zone.` -> `web-0` when the name is directly under the Service."""
    suffix = "." + service_fqdn
    fqdn = fqdn.lower()
    if fqdn.endswith(suffix):
        head = fqdn[: -len(suffix)]
        if head and "." not in head:
            return head
    return None


def family(ip: str) -> str:
    return "IPv6" if ":" in ip else "IPv4"
