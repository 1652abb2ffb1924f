"""A pod's own way to the API server: its service account, read as the official client's
load_incluster_config reads it, without importing the kubernetes package.

A CronJob's check runs in a pod, and there the kubernetes package is most of a small check's start-up:
its config loaders pull in its API client, pydantic, requests-oauthlib and more (0.3-0.5 s to import). In a
pod the credentials are three things (https://kubernetes.io/docs/tasks/run-application/access-api-from-pod/):
the API server's address (KUBERNETES_SERVICE_HOST and _PORT), the service account's token and the cluster's
CA certificate, both mounted in the service account's directory. kube.py sends its requests through this
when it runs in a pod, and through the kubernetes package for a kubeconfig (exec plugins, OIDC, client
certificates: what a library is for).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import quote, urlencode

TOKEN_TTL = 60.0  # seconds a token is used before the file is read again: the kubelet rotates bound tokens,
# and the official client reads it again every minute too


class ServiceAccount:
    """The API server's URL, the headers that authenticate a request, and a connection pool that verifies
    the server against the cluster's CA. A missing or empty piece is a ValueError saying which."""

    def __init__(self, sa_dir: Path, pool_size: int):
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST", ""), os.environ.get("KUBERNETES_SERVICE_PORT", "")
        if not host or not port:
            raise ValueError("KUBERNETES_SERVICE_HOST or KUBERNETES_SERVICE_PORT is not set")
        if not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"KUBERNETES_SERVICE_PORT {port!r} is not a port (1-65535)")
        if not host.isascii() or any(c in host for c in "/?#@[] \t\r\n%\\"):  # would send the token elsewhere
            raise ValueError(f"KUBERNETES_SERVICE_HOST {host!r} is not a host name or IP address")
        self.server = f"https://{f'[{host}]' if ':' in host else host}:{port}"
        self.token_file = sa_dir / "token"
        ca = sa_dir / "ca.crt"
        for what in (self.token_file, ca):
            if not what.is_file():
                raise ValueError(f"{what} does not exist")
            if what.stat().st_size == 0:
                raise ValueError(f"{what} is empty")
        self._token = ""
        self._read_at = float("-inf")
        self.token()  # now: an unreadable token is a loading error, not a failed request later
        import urllib3

        try:
            self.pool = urllib3.PoolManager(maxsize=pool_size, cert_reqs="CERT_REQUIRED", ca_certs=str(ca))
        except OSError as exc:
            raise ValueError(f"{ca}: {exc.strerror or exc}") from None

    def token(self) -> str:
        if time.monotonic() - self._read_at >= TOKEN_TTL:
            try:
                token = self.token_file.read_text().strip()
                problem = "" if token else f"{self.token_file} is empty"
                if any(c in token for c in "\r\n\0"):  # not a header value: say so, not "invalid header" later
                    token, problem = "", f"{self.token_file} holds more than one line"
            except (OSError, UnicodeDecodeError) as exc:
                token, problem = "", f"{self.token_file}: {getattr(exc, 'strerror', None) or exc}"
            if problem and not self._token:
                raise ValueError(problem)
            # Caught mid-rotation (gone, empty): the token in hand until the next try.
            self._token, self._read_at = token or self._token, time.monotonic()
        return self._token

    def prepare(self, method: str, path: str, params: dict | None, headers: dict[str, str]) -> tuple[str, dict]:
        """The URL and headers of one request (method: unused here; the official client's signs with it)."""
        query = f"?{urlencode(params, quote_via=quote)}" if params else ""
        return self.server + path + query, {"User-Agent": "ssdns", **headers, "Authorization": f"Bearer {self.token()}"}

    def close(self) -> None:
        self.pool.clear()
