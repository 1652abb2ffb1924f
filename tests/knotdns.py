"""Test harness: a real Knot DNS server (knotd) on a loopback address, serving the
records CoreDNS would serve for a headless Service (Kubernetes DNS spec 1.1.0).

Not a test module. Typical use:

    zones = headless_zones([Pod("web-0", "127.30.0.1"), Pod("web-1", "127.30.0.2")])
    with KnotServer(zones) as srv:          # srv.host, srv.port
        ...                                 # query it, run ssdns against it
        srv.update(headless_zones([...]))   # simulate a pod restart with a new IP
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Self

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.reversename

TTL = 5                  # CoreDNS kubernetes plugin default TTL (kubeadm sets 30)
VERSION_TTL = 28800      # CoreDNS hard-codes this TTL for dns-version.<zone> TXT
DEFAULT_ADDRESS = "127.53.0.1"

_POLL_TRIES = 1000       # readiness polling: at most 1000 tries (a big zone on a loaded machine) ...
_POLL_SLEEP = 0.005      # ... 5 ms apart ...
_QUERY_TIMEOUT = 0.025   # ... each raw UDP query waiting at most 25 ms (so <= ~30 s in total)
_CMD_TIMEOUT = 10        # every knotc call
_STOP_TIMEOUT = 5        # SIGTERM grace (knotd usually exits in ~10 ms), then SIGKILL


@dataclass
class Pod:
    name: str                  # e.g. "web-0"
    ipv4: str | None           # e.g. "127.30.0.1"
    ipv6: str | None = None    # e.g. "fd00::1" (records only; nothing listens there)


_last_serial = 0


def _next_serial() -> int:
    # CoreDNS uses a unix timestamp as SOA serial; keep it strictly increasing per call so
    # update() can tell the new zone content is being served.
    global _last_serial
    _last_serial = max(int(time.time()), _last_serial + 1)
    return _last_serial


def _soa_ns(origin: str, serial: int, ns: str) -> list[str]:
    # Same SOA timers as CoreDNS; the minimum (negative TTL) equals the plugin TTL.
    return [
        f"{origin}. {TTL} IN SOA ns.dns.{origin}. hostmaster.{origin}. {serial} 7200 1800 86400 {TTL}",
        f"{origin}. {TTL} IN NS {ns}.",
    ]


def headless_zones(pods: list[Pod], *, zone="cluster.local", namespace="default", service="nginx",
                   port_name="web", port=8080, proto="tcp", extra_service_ips: list[str] = ()) -> dict[str, str]:
    """Zone files (origin -> text) as CoreDNS answers for a headless Service:
    SOA+NS; <svc>.<ns>.svc.<zone> A/AAAA per pod IP (+ extra_service_ips, for stale-IP faults);
    <pod>.<svc>.<ns>.svc.<zone> A/AAAA; _<port_name>._<proto>.<svc>... SRV 0 <100//N> <port> <pod fqdn>. one per pod;
    dns-version.<zone> TXT "1.1.0"; PTR for every pod IP in in-addr.arpa / ip6.arpa zones (one reverse zone
    per needed /8 for IPv4, e.g. 127.in-addr.arpa, and one ip6.arpa zone); TTL 5 (CoreDNS default).

    Details: dns-version TXT has TTL 28800 (as CoreDNS). SRV weight is max(1, 100//N) (CoreDNS floors at 1,
    so 150 pods give weight 1, not 0). Pods with no IP at all are not endpoints: no records. With no pod IPs
    the Service name has no records, so knotd answers NXDOMAIN (as the spec requires)."""
    zone = zone.lower().rstrip(".")
    svc = f"{service}.{namespace}.svc.{zone}".lower()
    serial = _next_serial()
    # Stand-in for the kube-dns Service IP, so the in-zone NS has glue (knotd warns otherwise).
    fwd = _soa_ns(zone, serial, f"ns.dns.{zone}") + [
        f"ns.dns.{zone}. {TTL} IN A {DEFAULT_ADDRESS}",
        f'dns-version.{zone}. {VERSION_TTL} IN TXT "1.1.0"',
    ]
    reverse: dict[str, list[str]] = {}  # reverse zone origin -> PTR lines
    endpoints = [p for p in pods if p.ipv4 or p.ipv6]
    weight = max(1, 100 // len(endpoints)) if endpoints else 0
    for p in endpoints:
        fqdn = f"{p.name.lower()}.{svc}"
        for ip in (p.ipv4, p.ipv6):
            if not ip:
                continue
            addr = ipaddress.ip_address(ip)  # rejects typos early, with a clear error
            rtype = "A" if addr.version == 4 else "AAAA"
            fwd.append(f"{svc}. {TTL} IN {rtype} {addr}")
            fwd.append(f"{fqdn}. {TTL} IN {rtype} {addr}")
            rname = dns.reversename.from_address(str(addr)).to_text().lower()
            rzone = f"{str(addr).split('.')[0]}.in-addr.arpa" if addr.version == 4 else "ip6.arpa"
            reverse.setdefault(rzone, []).append(f"{rname} {TTL} IN PTR {fqdn}.")
        fwd.append(f"_{port_name}._{proto}.{svc}. {TTL} IN SRV 0 {weight} {port} {fqdn}.".lower())
    for ip in extra_service_ips:  # stale IPs: in the Service answer only, no pod name, no PTR
        addr = ipaddress.ip_address(ip)
        fwd.append(f"{svc}. {TTL} IN {'A' if addr.version == 4 else 'AAAA'} {addr}")
    zones = {zone: "\n".join(fwd) + "\n"}
    for rzone, lines in reverse.items():
        # NS points into the forward zone: out of zone, so no glue is needed here.
        zones[rzone] = "\n".join(_soa_ns(rzone, serial, f"ns.dns.{zone}") + lines) + "\n"
    return zones


def _bin(name: str) -> str | None:
    # knotd/knotc live in /usr/sbin, which is often not on a non-root PATH.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")


def knotd_available() -> bool:
    return _bin("knotd") is not None and _bin("knotc") is not None


def _free_port(host: str) -> int:
    # knotd needs the same port free for UDP and TCP: bind both, then release them.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_STREAM) as t, socket.socket(family, socket.SOCK_DGRAM) as u:
            t.bind((host, 0))
            port = t.getsockname()[1]
            try:
                u.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free UDP+TCP port on {host}")


def _serial_of(text: str) -> int | None:
    # Expected SOA serial of a zone text, to know when knotd serves it (None if not found).
    # A regex, not dns.zone.from_text: parsing a 150-pod zone with dnspython takes ~55 ms.
    m = re.search(r"\bSOA\s+\S+\s+\S+\s+\(?\s*(\d+)", text, re.IGNORECASE)
    return int(m.group(1)) if m else None


class KnotServer:
    """Context manager: starts knotd in the foreground (no systemd) with a config in a tmp dir
    (writable rundir and storage), listening on (address, port) for UDP and TCP; waits until it answers
    (poll with a bounded loop: at most ~1000 tries, 5 ms apart, raw dnspython UDP query of the SOA),
    and on exit sends SIGTERM and waits (bounded, then SIGKILL). Raises a clear RuntimeError with knotd's
    log tail if it does not start."""

    def __init__(self, zones: dict[str, str], address: str = DEFAULT_ADDRESS, port: int = 0):
        if not ipaddress.ip_address(address).is_loopback:  # never listen beyond this host
            raise ValueError(f"KnotServer only listens on loopback, not {address}")
        self.zones = {o.lower().rstrip("."): t for o, t in zones.items()}
        self.host = address
        self.port = port
        self.startup_seconds: float | None = None  # time from spawn to all zones answering
        self._proc: subprocess.Popen | None = None
        self._dir: str | None = None
        self._log = None

    # -- files -----------------------------------------------------------------------------
    @property
    def _conf(self) -> str:
        return os.path.join(self._dir, "knot.conf")

    def _write(self) -> None:
        d = self._dir
        for origin, text in self.zones.items():
            with open(os.path.join(d, f"{origin}.zone"), "w") as f:
                f.write(text)
        zl = "".join(f'  - domain: "{o}."\n' for o in self.zones)
        # journal-content none + zonefile-sync -1: knotd reloads the whole file on zone-reload
        # (even with an equal serial) and never writes back to our files.
        # One worker each: faster start, plenty for tests.
        with open(self._conf, "w") as f:
            f.write(
                f'server:\n  rundir: "{d}"\n  listen: [ "{self.host}@{self.port}" ]\n'
                f"  udp-workers: 1\n  tcp-workers: 1\n  background-workers: 1\n"
                f'database:\n  storage: "{d}"\n'
                f'control:\n  listen: "{d}/knot.sock"\n'
                f"log:\n  - target: stdout\n    any: info\n"
                f'template:\n  - id: default\n    storage: "{d}"\n    file: "%s.zone"\n'
                f"    journal-content: none\n    zonefile-sync: -1\n"
                f"zone:\n{zl}"
            )

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(os.path.join(self._dir, "knotd.log")) as f:
                return "".join(f.readlines()[-lines:])
        except (OSError, TypeError):
            return "(no knotd log)"

    # -- readiness -------------------------------------------------------------------------
    def _wait_served(self, expected: dict[str, int | None], what: str) -> None:
        # Bounded poll until every zone answers its SOA (with the expected serial, if known).
        pending = dict(expected)
        # A connected UDP socket gets ECONNREFUSED at once while knotd is not bound yet,
        # instead of waiting out the query timeout (start-up ~7 ms instead of ~32 ms).
        # It must be non-blocking: dnspython only honours its timeout on non-blocking sockets.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.connect((self.host, self.port))
            for _ in range(_POLL_TRIES):
                if self._proc.poll() is not None:
                    raise RuntimeError(f"knotd exited with {self._proc.returncode} {what}; log tail:\n"
                                       + self.log_tail())
                for origin, serial in list(pending.items()):
                    try:
                        r = dns.query.udp(dns.message.make_query(origin + ".", "SOA"), self.host,
                                          port=self.port, timeout=_QUERY_TIMEOUT, sock=sock,
                                          ignore_errors=True)
                    # ignore_errors: a late reply to an earlier poll (a big zone still loading) is skipped and
                    # ours awaited; without it, every later poll would read the previous poll's reply.
                    except (dns.exception.Timeout, dns.query.BadResponse, OSError):
                        break  # not listening yet
                    soa = [rr for rrs in r.answer if rrs.rdtype == dns.rdatatype.SOA for rr in rrs]
                    if r.rcode() == dns.rcode.NOERROR and soa and serial in (None, soa[0].serial):
                        del pending[origin]
                if not pending:
                    return
                time.sleep(_POLL_SLEEP)
        raise RuntimeError(f"knotd did not serve {sorted(pending)} {what} on {self.host}:{self.port}; "
                           f"log tail:\n" + self.log_tail())

    def _knotc(self, *args: str) -> None:
        # -b: zone events block until done, so the zone is reloaded when knotc returns.
        r = subprocess.run([_bin("knotc"), "-c", self._conf, "-t", str(_CMD_TIMEOUT), "-b", *args],
                           capture_output=True, text=True, timeout=_CMD_TIMEOUT + 5, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"knotc {' '.join(args)} failed ({r.returncode}): {r.stdout}{r.stderr}\n"
                               f"knotd log tail:\n{self.log_tail()}")

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Self:
        knotd = _bin("knotd")
        if knotd is None:
            raise RuntimeError("knotd not found (Debian package 'knot')")
        self._dir = tempfile.mkdtemp(prefix="knotdns-")  # short path: the control socket must fit 108 bytes
        try:
            if self.port == 0:
                self.port = _free_port(self.host)
            self._write()
            self._log = open(os.path.join(self._dir, "knotd.log"), "w")
            t0 = time.monotonic()
            self._proc = subprocess.Popen([knotd, "-c", self._conf], stdin=subprocess.DEVNULL,
                                          stdout=self._log, stderr=subprocess.STDOUT)
            self._wait_served({o: None for o in self.zones}, "after start")
            self.startup_seconds = time.monotonic() - t0
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=_STOP_TIMEOUT)
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def update(self, zones: dict[str, str]) -> None:
        """Replace the served zones: rewrite the zone files and `knotc zone-reload` them (a changed set of
        origins, e.g. a pod IP in a new /8, needs a config `reload` instead), then wait until served."""
        if self._proc is None:
            raise RuntimeError("KnotServer is not running")
        zones = {o.lower().rstrip("."): t for o, t in zones.items()}
        same_origins = set(zones) == set(self.zones)
        self.zones = zones
        self._write()
        if same_origins:
            self._knotc("zone-reload", *(o + "." for o in zones))
        else:
            self._knotc("reload")
        self._wait_served({o: _serial_of(t) for o, t in zones.items()}, "after update")
