"""What to check: the target of a run, validated, with defaults taken from the pod's own files.

Pure apart from reading resolv.conf and the service-account namespace file; no network.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import replace

from ssdns.errors import UsageError
from ssdns.frozen import frozen

# Plain paths, read with open(): pathlib (with urllib.parse) would be ~2 ms of every run's start-up for two reads.
RESOLV_CONF = "/etc/resolv.conf"
SA_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

# Patterns, compiled (and cached by `re`) when first used: start-up compiles none a run does not use.
# RFC 1123 label, as Kubernetes validates pod and namespace names (lower case only).
_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
# RFC 1035 label, as Kubernetes validates Service names (must start with a letter).
_LABEL_1035 = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
# IANA service name, as Kubernetes validates port names: at most 15 characters, at least one letter.
_PORT_NAME = r"^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$"


@frozen
class Nameserver:
    """A nameserver to ask: an IP address and a port."""

    host: str
    port: int = 53

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@frozen
class ResolverChoice:
    """--resolvers, --transport, --dns-service, --nodelocal as given."""

    mode: str = "path"  # path | all | list
    listed: tuple[Nameserver, ...] = ()
    transport: str = "udp"
    dns_service: tuple[str, str] = ("kube-system", "kube-dns")
    nodelocal: Nameserver | None = None  # given with --nodelocal; else detected from resolv.conf

    @property
    def active(self) -> bool:
        """Anything beyond today's single path over UDP: then the resolver checks run."""
        return self.mode != "path" or self.transport == "both"


@frozen
class Target:
    """Everything a check needs to know about what it checks and how."""

    service: str | None
    namespace: str
    zone: str
    nameservers: tuple[Nameserver, ...]
    statefulset: str | None = None
    replicas: int | None = None
    first_ordinal: int = 0  # StatefulSet spec.ordinals.start
    ipv6: bool = False  # the API says the Service or its pods are IPv6: ask AAAA even if the Service has none
    port: int | None = None  # HTTP port; None: the API's EndpointSlice port, else the one SRV port, else unknown
    port_name: str | None = None  # named Service port, for SRV
    proto: str = "tcp"
    path: str = "/"
    expect: str = "{pod}"
    match: str = "exact"
    http: bool = True
    timeout: float = 10.0
    deadline: float | None = None  # time.monotonic() the whole run ends by (the CLI's start + timeout)
    resolvers: ResolverChoice = ResolverChoice()  # --resolvers, --transport (ssdns/resolvers.py)

    @property
    def service_fqdn(self) -> str:
        return f"{self.service}.{self.namespace}.svc.{self.zone}."

    def pod_fqdn(self, pod: str) -> str:
        return f"{pod}.{self.service}.{self.namespace}.svc.{self.zone}."

    @property
    def srv_name(self) -> str | None:
        if not self.port_name:
            return None
        return f"_{self.port_name}._{self.proto}.{self.service_fqdn}"

    def with_(self, **changes) -> "Target":
        return replace(self, **changes)


@frozen
class ApiOptions:
    """How to reach the Kubernetes API: auto (use it when credentials exist), on (required), off."""

    mode: str = "off"
    kubeconfig: str | None = None
    context: str | None = None


def check_label(value: str, what: str, *, rfc1035: bool = False) -> str:
    pattern = _LABEL_1035 if rfc1035 else _LABEL
    if not re.match(pattern, value):
        rule = "start with a letter, " if rfc1035 else ""
        raise UsageError(
            f"{what} {value!r} is not a valid DNS label: use 1-63 lower-case letters, digits "
            f"and '-', {rule}starting and ending with a letter or digit"
        )
    return value


def check_port_name(value: str) -> str:
    if not re.match(_PORT_NAME, value) or "--" in value or not re.search(r"[a-z]", value):
        raise UsageError(f"port name {value!r} is not a valid Service port name: use 1-15 lower-case letters, "
                         "digits and single '-', with at least one letter (as in the Service's ports[].name)")
    return value


def check_zone(value: str) -> str:
    zone = value.strip().rstrip(".").lower()
    if not zone or len(zone) > 253:
        raise UsageError(f"cluster domain {value!r} is empty or too long: give a zone like cluster.local")
    for label in zone.split("."):
        check_label(label, f"cluster domain {value!r}: label")
    return zone


TEMPLATE_FIELDS = ("pod", "fqdn", "ordinal", "service", "namespace", "statefulset")
MAX_TEMPLATE_WIDTH = 1000  # a width or precision above this is a mistake (and {x:>99999999999} a MemoryError)
# A standard format spec: [[fill]align][sign][#][0][width][grouping][.precision][type]
_FORMAT_SPEC = r"^(?:.?[<>=^])?[-+ ]?#?0?(\d*)[,_]?(?:\.(\d+))?[sdxXobeEfFgG%n]?$"


def check_template(text: str, option: str = "--expect") -> str:
    """A body template names fields, nothing else: {pod} {fqdn} {ordinal} {service} {namespace}
    {statefulset}, each with an optional bounded format spec ({ordinal:03d}). No attribute or index
    access ({pod.__class__}, {pod[0]}), no positional fields, no conversions, no nested fields."""
    from string import Formatter

    fields = " ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
    try:
        parts = list(Formatter().parse(text))
    except ValueError as exc:
        raise UsageError(f"{option} {text!r} is not a valid template ({exc}); write a literal brace as {{{{ or }}}}") from None
    for _, raw_field, raw_spec, conversion in parts:
        if raw_field is None:
            continue
        field, spec = _printable(raw_field), _printable(raw_spec or "")
        if raw_field not in TEMPLATE_FIELDS:
            raise UsageError(f"{option} {text!r}: {{{field}}} is not a field (a template names fields, nothing "
                             f"else); use {fields}")
        if conversion is not None:
            raise UsageError(f"{option} {text!r}: {{{field}!{_printable(conversion)}}}: conversions are not supported; use {{{field}}}")
        if not raw_spec:
            continue
        match = re.match(_FORMAT_SPEC, raw_spec, re.DOTALL)
        if not match:
            raise UsageError(f"{option} {text!r}: {{{field}:{spec}}} is not a format spec like {{ordinal:03d}}")
        if any(int(n or 0) > MAX_TEMPLATE_WIDTH for n in match.groups()):
            raise UsageError(f"{option} {text!r}: {{{field}:{spec}}}: widths and precisions go up to {MAX_TEMPLATE_WIDTH}")
    return text


def _printable(text: str) -> str:
    """Text for a one-line message: control characters escaped (a template may hold a newline)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def check_path(value: str) -> str:
    """An HTTP path as it goes on the request line: starts with '/', no white space or control characters."""
    if not value.startswith("/"):
        raise UsageError(f"--path {value!r} must start with '/'")
    bad = next((c for c in value if c.isspace() or ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        raise UsageError(f"--path {value!r} holds {bad!r}: a path cannot hold white space or control characters "
                         "(CR and LF would split the request); percent-encode them, e.g. %20")
    if len(value) > 8000:
        raise UsageError(f"--path is {len(value)} characters long: at most 8000")
    return value


def check_port(value: int, what: str = "port") -> int:
    if not 1 <= value <= 65535:
        raise UsageError(f"{what} {value} is out of range: use 1-65535")
    return value


def parse_nameserver(text: str) -> Nameserver:
    """HOST, HOST:PORT, [V6]:PORT or a bare IPv6 address. Only IP addresses: the nameserver
    must not itself need DNS."""
    host, port = text.strip(), 53
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            raise UsageError(f"nameserver {text!r}: missing ']' in [IPv6]:PORT")
        rest, host = host[end + 1 :], host[1:end]
        if rest:
            if not rest.startswith(":"):
                raise UsageError(f"nameserver {text!r}: expected [IPv6]:PORT")
            port = _port_number(rest[1:], text)
    elif host.count(":") == 1:
        host, _, p = host.partition(":")
        port = _port_number(p, text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"nameserver {text!r} is not an IP address: give HOST or HOST:PORT, e.g. 10.96.0.10:53") from None
    return Nameserver(host, port)


def _port_number(text: str, whole: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise UsageError(f"nameserver {whole!r}: port {text!r} is not a number")
    return check_port(int(text), f"nameserver {whole!r}: port")


@frozen
class ResolvConf:
    """What /etc/resolv.conf says: its nameservers and search list."""

    nameservers: tuple[Nameserver, ...] = ()
    search: tuple[str, ...] = ()


def _read(path: str | os.PathLike[str]) -> str | None:
    """A small text file's text (bytes that are not UTF-8 replaced), None when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def read_resolv_conf(path: str | os.PathLike[str] = RESOLV_CONF) -> ResolvConf:
    text = _read(path)
    if text is None:
        return ResolvConf()
    servers: list[Nameserver] = []
    search: tuple[str, ...] = ()
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                servers.append(parse_nameserver(words[1].split("%", 1)[0]))
            except UsageError:
                continue
        elif words and words[0] in ("search", "domain"):
            search = tuple(w.rstrip(".").lower() for w in words[1:])  # the last line wins, as in glibc
    return ResolvConf(tuple(servers), search)


def zone_from_search(search: tuple[str, ...]) -> str | None:
    """A pod's search list starts `<ns>.svc.<zone> svc.<zone> <zone>` (kubelet ClusterFirst)."""
    for domain in search:
        if domain.startswith("svc."):
            return domain[4:]
    return None


def default_namespace(path: str | os.PathLike[str] = SA_NAMESPACE) -> str:
    return (_read(path) or "").strip() or "default"
