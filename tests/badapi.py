"""A Kubernetes API that misbehaves on purpose, on loopback, for the fault catalogue.

A raw asyncio HTTP/1.1 server in a background thread (so the real CLI can run against it in a
subprocess): each connection reads one request, then does what `mode` says. It records the request
lines it got and sets `got_request` on the first, so a test can wait for "the run is talking to the
API now" instead of sleeping.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import struct
import subprocess
import threading
from pathlib import Path

from ssdns.sandbox.api import kubeconfig_text

STATUS_TEXT = {200: "OK", 302: "Found", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
               409: "Conflict", 500: "Internal Server Error", 503: "Service Unavailable"}


def _status_body(code: int) -> bytes:
    reasons = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict", 500: "InternalError",
               503: "ServiceUnavailable"}
    return json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                       "reason": reasons.get(code, "Unknown"), "message": f"the test server says {code}"}).encode()


def _response(code: int, body: bytes, ctype: str = "application/json", extra: str = "") -> bytes:
    head = (f"HTTP/1.1 {code} {STATUS_TEXT.get(code, 'Status')}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n")
    return head.encode() + body


# mode -> the bytes to answer (modes handled in code: hang, trickle, reset, close)
CANNED = {
    "empty": _response(200, b""),
    "array": _response(200, b"[]"),
    "string": _response(200, b'"web"'),
    "null": _response(200, b"null"),
    "not-json": _response(200, b"{this is not json", "application/json"),
    "html": _response(200, b"<!doctype html><html><body>Sign in</body></html>", "text/html; charset=utf-8"),
    "wrong-kind": _response(200, json.dumps({"kind": "ConfigMap", "apiVersion": "v1", "data": {"a": "b"}}).encode()),
    "bad-types": _response(200, json.dumps({"kind": "StatefulSet", "metadata": {"name": "web"},
                                            "spec": {"replicas": "three", "serviceName": 7}}).encode()),
    # A ConfigMap, but another one than was asked for (its state is someone else's).
    "other-configmap": _response(200, json.dumps({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {
        "name": "someone-else", "namespace": "default"}, "data": {"state.json": '{"schema": 1, "history": []}'}}).encode()),
    # A well-formed StatefulSet, but another one than was asked for.
    "other-statefulset": _response(200, json.dumps({"kind": "StatefulSet", "apiVersion": "apps/v1", "metadata": {
        "name": "db", "namespace": "default"}, "spec": {"replicas": 3, "serviceName": "nginx", "selector": {
            "matchLabels": {"app": "db"}}}, "status": {"replicas": 3, "readyReplicas": 3}}).encode()),
    "redirect": _response(302, b"", extra="Location: http://127.0.0.1:9/login\r\n"),
    "lying-length": (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n"
                     b"Connection: close\r\n\r\n{\"kind\": \"StatefulSet\""),
}
for _code in (401, 403, 404, 409, 500, 503):
    CANNED[str(_code)] = _response(_code, _status_body(_code))


class BadApi:
    """`with BadApi("hang") as api:` then `api.kubeconfig(path)`; `api.mode` may change between runs."""

    def __init__(self, mode: str, *, tls: Path | None = None):
        self.mode = mode
        self.tls = tls  # a directory holding cert.pem and key.pem: serve HTTPS with that certificate
        self.requests: list[str] = []
        self.got_request = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()

    def __enter__(self) -> BadApi:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(5)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(kubeconfig_text(self.url, "default", context="bad"))
        return path

    async def _start(self) -> None:
        ctx = None
        if self.tls:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(self.tls / "cert.pem", self.tls / "key.pem")
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=ctx)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        for task in list(self._tasks):  # handlers still hanging or trickling: end them with the server
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head.split(b"\r\n", 1)[0].decode())
            self.got_request.set()
            mode = self.mode
            if mode == "hang":
                await asyncio.sleep(3600)
            elif mode == "trickle":  # a valid answer, one byte a second
                for byte in CANNED["403"]:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(1)
            elif mode == "reset":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            elif mode == "close":
                writer.close()
                return
            else:
                writer.write(CANNED[mode])
                await writer.drain()
                if mode == "lying-length":
                    await asyncio.sleep(3600)  # the rest of the promised body never comes
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError, ssl.SSLError):
            pass
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()


def self_signed(where: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 (cert.pem, key.pem), made by the openssl CLI."""
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(where / "key.pem"), "-out", str(where / "cert.pem")],
                   check=True, capture_output=True, timeout=60)
    return where


class ApiProxy:
    """A proxy in front of a working API (the sandbox's) that misbehaves from a chosen request on, for
    the disruptive commands' fault cases: `rule(method, path, seen)` says what to do with each request
    ("pass", or a BadApi mode: "hang", "trickle" (the upstream's answer, one byte a second), "close"),
    `seen` being the (method, path) of the requests before it. A rule may act too (stop the sandbox's
    DNS at the delete). One request per client connection, each on its own upstream connection
    (Connection: close). `faulted` is set at the first request that does not pass."""

    def __init__(self, upstream: str, rule, *, tls: Path | None = None):
        host, _, port = upstream.removeprefix("http://").partition(":")
        self.upstream = (host, int(port))
        self.rule = rule
        self.seen: list[tuple[str, str]] = []
        self.headers: list[dict[str, str]] = []  # each request's headers, names lower-cased
        self.faulted = threading.Event()
        self.inner = BadApi("hang", tls=tls)  # its loop, server life, TLS and cleanup; the handler is this class's
        self.inner._serve = self._serve  # type: ignore[method-assign]

    def __enter__(self) -> ApiProxy:
        self.inner.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.inner.__exit__(*exc)

    def kubeconfig(self, path: Path) -> Path:
        return self.inner.kubeconfig(path)

    @property
    def port(self) -> int:
        return self.inner.port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        inner = self.inner
        inner._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            inner._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            length = next((int(h.split(":", 1)[1]) for h in lines[1:] if h.lower().startswith("content-length:")), 0)
            body = await reader.readexactly(length) if length else b""
            mode = self.rule(method, path, list(self.seen))
            self.seen.append((method, path))
            self.headers.append({k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)})
            if mode != "pass":
                self.faulted.set()
            if mode == "hang":
                await asyncio.sleep(3600)
            if mode == "close":
                return
            kept = [h for h in lines[1:] if h and not h.lower().startswith("connection:")]
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            try:
                up_writer.write("\r\n".join([lines[0], *kept, "Connection: close", "", ""]).encode("latin-1") + body)
                await up_writer.drain()
                answer = await up_reader.read()  # Connection: close: the whole answer, then EOF
            finally:
                up_writer.close()
            for chunk in ([bytes([b]) for b in answer] if mode == "trickle" else [answer]):
                writer.write(chunk)
                await writer.drain()
                if mode == "trickle":
                    await asyncio.sleep(1)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError, ssl.SSLError):
            pass
        finally:
            inner._writers.discard(writer)
            inner._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()
