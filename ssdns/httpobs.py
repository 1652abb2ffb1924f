"""What an HTTP probe is asked and what it saw: plain data, importable without aiohttp (the check's
process does not import it when its requests go to ssdns.worker's child)."""

from __future__ import annotations

import ipaddress

from ssdns.frozen import frozen


NOT_TRIED = "not tried: "  # an observation's error when no request was sent


@frozen
class HttpRequest:
    """One GET to send: to the pod's IP and port, with its FQDN as Host."""

    pod: str
    ip: str
    port: int
    host: str  # Host header: the pod's FQDN without the trailing dot


@frozen
class HttpObservation:
    """What one GET got: a status and body, or why there was none."""

    pod: str
    url: str
    status: int | None = None
    body: str | None = None  # at most BODY_CAP bytes, decoded
    error: str | None = None
    elapsed_ms: float = 0.0
    truncated: bool = False  # the pod sent more than BODY_CAP bytes: `body` is the first BODY_CAP
    location: str | None = None  # a redirect's target: reported, never followed

    @property
    def sent(self) -> bool:
        """Whether a request went out (one left for lack of time did not)."""
        return not (self.error or "").startswith(NOT_TRIED)

    def to_dict(self) -> dict:
        out = {"url": self.url, "status": self.status, "body": self.body, "error": self.error,
               "elapsed_ms": round(self.elapsed_ms, 2), "truncated": self.truncated}
        if self.location is not None:
            out["location"] = self.location
        return out


def url_for(ip: str, port: int, path: str) -> str:
    # http:// only. An https:// probe would need the worker's child to keep the CA bundle (worker._NO_CA).
    host = f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip
    return f"http://{host}:{port}{path}"
