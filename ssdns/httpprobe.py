"""HTTP observations: one GET per pod, to the IP its own name resolved to.

aiohttp's own resolver, DNS cache and keep-alive would hide which pod answered, so each request
goes to an explicit IP with the pod's FQDN as Host, on a fresh connection.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Self

import aiohttp

from ssdns.httpobs import NOT_TRIED, HttpObservation, HttpRequest, url_for

__all__ = ["BODY_CAP", "REQUEST_TIMEOUT", "HttpObservation", "HttpProber", "HttpRequest", "url_for"]

BODY_CAP = 64 * 1024  # an identity is a short string; never read an unbounded body
REQUEST_TIMEOUT = 3.0


class HttpProber:
    """One GET per pod: no redirects followed, no proxies, no retries, at most BODY_CAP + 1 bytes read
    (aiohttp decompresses gzip in bounded steps as it is read, so a gzip bomb stops at the cap too), each
    request bounded by REQUEST_TIMEOUT and by the run's deadline."""

    def __init__(self, path: str, deadline: float, concurrency: int = 64):
        self.path, self.deadline = path, deadline
        self._sem = asyncio.Semaphore(concurrency)
        self.requests_sent = 0
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        connector = aiohttp.TCPConnector(limit=0, force_close=True, use_dns_cache=False)
        # No timeouts of aiohttp's own (its default arms timers per request): each request runs under
        # asyncio.timeout in probe(), from the per-pod limit and the run's deadline.
        self._session = aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=True,
                                              raise_for_status=False, timeout=aiohttp.ClientTimeout(total=None),
                                              headers={"User-Agent": "ssdns"})
        return self

    async def __aexit__(self, *exc) -> None:
        if self._session is not None:
            await self._session.close()

    async def probe(self, req: HttpRequest) -> HttpObservation:
        url = url_for(req.ip, req.port, self.path)
        async with self._sem:
            left = self.deadline - time.monotonic()
            if left <= 0.01:
                return HttpObservation(req.pod, url, error=NOT_TRIED + "deadline reached")
            assert self._session is not None
            start = time.monotonic()
            limit = min(REQUEST_TIMEOUT, left)
            status, buf = None, bytearray()
            try:
                self.requests_sent += 1
                async with asyncio.timeout(limit):
                    async with self._session.get(url, headers={"Host": req.host},
                                                 allow_redirects=False) as resp:
                        status = resp.status
                        await _read_capped(resp, buf)
                        resp.close()  # drop the connection: never drain what is beyond the cap
                body = bytes(buf[:BODY_CAP]).decode("utf-8", errors="replace")
                location = resp.headers.get("Location") if 300 <= status < 400 else None
                return HttpObservation(req.pod, url, status, body, None, (time.monotonic() - start) * 1000,
                                       len(buf) > BODY_CAP, location)
            except TimeoutError:
                error = (f"no answer within {limit:.1f} s" if status is None else
                         f"answered HTTP {status} but the body was not complete within {limit:.1f} s "
                         f"({len(buf)} bytes read)")
            except aiohttp.ClientError as exc:
                error = _client_error(exc)
            return HttpObservation(req.pod, url, status=None, error=error,
                                   elapsed_ms=(time.monotonic() - start) * 1000)


def _client_error(exc: aiohttp.ClientError) -> str:
    """What went wrong, for a person; never a status the pod did not send."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        errno = getattr(exc.os_error, "errno", None)
        return f"cannot connect: {os.strerror(errno).lower() if errno else exc}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the pod closed the connection without answering"
    if isinstance(exc, aiohttp.ClientResponseError):
        # raise_for_status is off: this is aiohttp's parser rejecting what the pod sent, not a 4xx.
        return f"invalid HTTP response: {_first_line(exc.message)}"
    if isinstance(exc, aiohttp.ClientPayloadError):
        cause = exc.__cause__ or (exc.args[0] if exc.args else exc)
        return f"invalid HTTP response: the body is broken ({_first_line(getattr(cause, 'message', str(cause)))})"
    if isinstance(exc, aiohttp.ClientOSError):
        return f"connection failed: {os.strerror(exc.errno).lower() if exc.errno else exc}"
    return f"{type(exc).__name__}: {exc}"


def _first_line(text: object) -> str:
    """aiohttp's parser messages span lines: the complaint, then the offending bytes; keep both, short."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    if not lines:
        return str(text)
    head = lines[0].rstrip(":")
    raw = next((ln for ln in lines[1:] if ln.startswith(("b'", 'b"'))), None)
    if raw is not None:
        # (bytes past a Content-Length are read as the next response: a "bad status line" then)
        head += f" (got {raw[:60]}{'...' if len(raw) > 60 else ''})"
    return head


async def _read_capped(resp: aiohttp.ClientResponse, buf: bytearray) -> None:
    """Read into buf until BODY_CAP + 1 bytes (enough to know the body is longer than the cap) or EOF."""
    while len(buf) <= BODY_CAP:
        chunk = await resp.content.read(BODY_CAP + 1 - len(buf))
        if not chunk:
            break
        buf += chunk
