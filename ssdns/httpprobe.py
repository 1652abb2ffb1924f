"""HTTP observations: one GET per pod, to the IP its own name resolved to.

Each request goes to an explicit IP with the pod's FQDN as Host, on a fresh connection that is
closed afterwards (no keep-alive, no DNS cache, no proxy, no redirects: nothing may hide which
pod answered). The client is a small HTTP/1.1 exchange over asyncio streams rather than aiohttp:
aiohttp cost ~80 ms and ~11 MiB to import (it builds TLS contexts at import) and ~0.25 ms of CPU
per request, for a GET of a short body (bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import time
import zlib
from dataclasses import dataclass
from urllib.parse import quote

from ssdns import __version__

BODY_CAP = 64 * 1024  # an identity is a short string; never read an unbounded body
REQUEST_TIMEOUT = 3.0
HEAD_CAP = 64 * 1024  # status line and headers together
MAX_INTERIM = 10  # 1xx responses skipped before the real one


@dataclass(frozen=True)
class HttpRequest:
    pod: str
    ip: str
    port: int
    host: str  # Host header: the pod's FQDN without the trailing dot


@dataclass(frozen=True)
class HttpObservation:
    pod: str
    url: str
    status: int | None = None
    body: str | None = None
    error: str | None = None
    elapsed_ms: float = 0.0
    truncated: bool = False

    def to_dict(self) -> dict:
        return {"url": self.url, "status": self.status, "body": self.body, "error": self.error,
                "elapsed_ms": round(self.elapsed_ms, 2)}


def url_for(ip: str, port: int, path: str) -> str:
    host = f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip
    return f"http://{host}:{port}{path}"


class HttpError(Exception):
    """The server answered, but not with a usable HTTP/1.x response; the message says how."""


class HttpProber:
    def __init__(self, path: str, deadline: float, concurrency: int = 64):
        self.path, self.deadline = path, deadline
        self._sem = asyncio.Semaphore(concurrency)
        self.requests_sent = 0
        # Spaces and non-ASCII are percent-encoded; existing escapes and reserved characters stay.
        self._target = quote(path, safe="/%!$&'()*+,;=:@?#[]~")

    async def __aenter__(self) -> "HttpProber":
        return self

    async def __aexit__(self, *exc) -> None:
        return None

    async def probe(self, req: HttpRequest) -> HttpObservation:
        url = url_for(req.ip, req.port, self.path)
        async with self._sem:
            left = self.deadline - time.monotonic()
            if left <= 0.01:
                return HttpObservation(req.pod, url, error="not tried: deadline reached")
            start = time.monotonic()
            limit = min(REQUEST_TIMEOUT, left)
            self.requests_sent += 1
            try:
                async with asyncio.timeout(limit):
                    status, raw = await self._get(req)
            except TimeoutError:
                error = f"no answer within {limit:.1f} s"
            except _ConnectError as exc:
                errno = exc.os_error.errno
                error = f"cannot connect: {os.strerror(errno).lower() if errno else exc.os_error}"
            except asyncio.IncompleteReadError as exc:
                error = ("server disconnected before a complete response" if not exc.partial
                         else f"server disconnected mid-response ({len(exc.partial)} bytes of the last part read)")
            except asyncio.LimitOverrunError:
                error = f"a header or chunk-size line longer than {HEAD_CAP} bytes"
            except HttpError as exc:
                error = str(exc)
            except (ValueError, zlib.error) as exc:
                error = f"not an HTTP response: {exc}"
            except OSError as exc:
                error = f"connection error: {os.strerror(exc.errno).lower() if exc.errno else exc}"
            else:
                body = raw[:BODY_CAP].decode("utf-8", errors="replace")
                return HttpObservation(req.pod, url, status, body, None, (time.monotonic() - start) * 1000,
                                       len(raw) > BODY_CAP)
            return HttpObservation(req.pod, url, error=error, elapsed_ms=(time.monotonic() - start) * 1000)

    async def _get(self, req: HttpRequest) -> tuple[int, bytes]:
        try:
            reader, writer = await asyncio.open_connection(req.ip, req.port, limit=HEAD_CAP)
        except OSError as exc:
            raise _ConnectError(exc) from None
        try:
            writer.write((f"GET {self._target} HTTP/1.1\r\nHost: {req.host}\r\nUser-Agent: ssdns/{__version__}\r\n"
                          "Accept: */*\r\nConnection: close\r\n\r\n").encode("latin-1"))
            for _ in range(MAX_INTERIM + 1):
                status, headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
                if not 100 <= status < 200 or status == 101:
                    break
            else:
                raise HttpError(f"more than {MAX_INTERIM} interim (1xx) responses")
            if status in (101, 204, 304) or 100 <= status < 200:
                return status, b""
            return status, await _read_body(reader, headers)
        finally:
            writer.close()


class _ConnectError(Exception):
    def __init__(self, os_error: OSError):
        super().__init__(str(os_error))
        self.os_error = os_error


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not (len(parts[1]) == 3 and parts[1].isdigit()):
        raise HttpError(f"not an HTTP response: status line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(f"not an HTTP response: header line {line[:80]!r}")
        key, value = name.lower(), value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return int(parts[1]), headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    """At most BODY_CAP + 1 bytes of the (decoded) body: one more than the cap says "truncated"."""
    coding = headers.get("content-encoding", "identity").strip().lower()
    if coding in ("", "identity"):
        decoder = None
    elif coding in ("gzip", "x-gzip"):
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif coding == "deflate":
        decoder = zlib.decompressobj()
    else:
        raise HttpError(f"unsupported Content-Encoding {coding!r}")
    want = BODY_CAP + 1
    raw_cap = want if decoder is None else 4 * want  # compressed input: enough for any sane ratio
    out = bytearray()

    def take(chunk: bytes) -> None:
        if decoder is None:
            out.extend(chunk[: want - len(out)])
        else:
            out.extend(decoder.decompress(chunk, want - len(out)))

    transfer = headers.get("transfer-encoding", "").lower()
    if transfer:
        if transfer.rsplit(",", 1)[-1].strip() != "chunked":
            raise HttpError(f"unsupported Transfer-Encoding {transfer!r}")
        for _ in range(want + 1):  # each chunk but the last adds at least one byte
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                break
            take(await reader.readexactly(min(size, raw_cap)))
            if len(out) >= want or size > raw_cap:
                break
            await reader.readexactly(2)  # the CRLF after the chunk
        return bytes(out)
    length = headers.get("content-length")
    if length is not None:
        n = int(length.split(",")[0])
        if n < 0:
            raise ValueError("negative Content-Length")
        try:
            take(await reader.readexactly(min(n, raw_cap)))
        except asyncio.IncompleteReadError as exc:
            raise HttpError(f"the body ended after {len(exc.partial)} of {n} bytes (Content-Length)") from None
        return bytes(out)
    for _ in range(raw_cap):  # no length: the body ends when the server closes
        chunk = await reader.read(65536)
        if not chunk:
            break
        take(chunk)
        if len(out) >= want:
            break
    return bytes(out)
