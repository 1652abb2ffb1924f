"""HTTP observations: one GET per pod, to the IP its own name resolved to.

aiohttp's own resolver, DNS cache and keep-alive would hide which pod answered, so each request
goes to an explicit IP with the pod's FQDN as Host, on a fresh connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import time
from dataclasses import dataclass

import aiohttp

BODY_CAP = 64 * 1024  # an identity is a short string; never read an unbounded body
REQUEST_TIMEOUT = 3.0


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
                "elapsed_ms": round(self.elapsed_ms, 2), "truncated": self.truncated}


def url_for(ip: str, port: int, path: str) -> str:
    host = f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip
    return f"http://{host}:{port}{path}"


class HttpProber:
    def __init__(self, path: str, deadline: float, concurrency: int = 64):
        self.path, self.deadline = path, deadline
        self._sem = asyncio.Semaphore(concurrency)
        self.requests_sent = 0
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "HttpProber":
        connector = aiohttp.TCPConnector(limit=0, force_close=True, use_dns_cache=False)
        self._session = aiohttp.ClientSession(connector=connector, trust_env=False,
                                              auto_decompress=True, raise_for_status=False)
        return self

    async def __aexit__(self, *exc) -> None:
        if self._session is not None:
            await self._session.close()

    async def probe(self, req: HttpRequest) -> HttpObservation:
        url = url_for(req.ip, req.port, self.path)
        async with self._sem:
            left = self.deadline - time.monotonic()
            if left <= 0.01:
                return HttpObservation(req.pod, url, error="not tried: deadline reached")
            start = time.monotonic()
            try:
                self.requests_sent += 1
                assert self._session is not None, "probe() inside `async with HttpProber(...)`"
                timeout = aiohttp.ClientTimeout(total=min(REQUEST_TIMEOUT, left))
                async with self._session.get(url, headers={"Host": req.host}, timeout=timeout,
                                             allow_redirects=False) as resp:
                    raw = await _read_capped(resp)
                    body = raw[:BODY_CAP].decode("utf-8", errors="replace")
                    return HttpObservation(req.pod, url, resp.status, body, None,
                                           (time.monotonic() - start) * 1000, len(raw) > BODY_CAP)
            except asyncio.TimeoutError:
                error = f"no answer within {min(REQUEST_TIMEOUT, left):.1f} s"
            except aiohttp.ClientConnectorError as exc:
                errno = getattr(exc.os_error, "errno", None)
                error = f"cannot connect: {os.strerror(errno).lower() if errno else exc}"
            except aiohttp.ClientError as exc:
                error = f"{type(exc).__name__}: {exc}"
            return HttpObservation(req.pod, url, error=error, elapsed_ms=(time.monotonic() - start) * 1000)


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    buf = bytearray()
    while len(buf) <= BODY_CAP:
        chunk = await resp.content.read(BODY_CAP + 1 - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)
