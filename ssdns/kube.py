"""The one transport to the Kubernetes API: credentials, deadlines, and errors translated once.

The kubernetes package costs 0.3-0.5 s to import (its ApiClient, config loaders and what they pull in),
so only this module imports it, only for a kubeconfig, and only for its credentials (auth plugins, TLS
settings) and its connection pool. In a pod, the service account is read without it (incluster.py).
Either way ssdns sends the requests itself, as JSON, through urllib3.

Every call takes its timeout from the time left before the run's deadline: connect and read, and a
hard bound on the whole call (a server that trickles one byte a second is cut off at the deadline:
the call runs in one of the Api's few daemon threads (callpool.py) and is abandoned there, never waited
for). No retries behind ssdns's back: urllib3 is told retries=False, and redirects are not followed.
Every failure leaves this module as an errors.ApiError (verb, resource, object, status, reason), worded
in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ssdns.callpool import CallPool, Job
from ssdns.errors import (
    BAD_ANSWER,
    TIMEOUT,
    TLS,
    UNREACHABLE,
    ApiError,
    ApiUnavailable,
    kind_of_status,
)
from ssdns.facts import (
    ApiProblem,
    ClusterFacts,
    EndpointFacts,
    PodFacts,
    PvcFacts,
    ServiceFacts,
    StatefulSetFacts,
)
from ssdns.files import not_a_file
from ssdns.target import ApiOptions

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
CONNECT_TIMEOUT = 3.0  # seconds, at most, to connect (less when less time is left)
CALL_TIMEOUT = 10.0  # a call's whole bound when the caller gave no deadline
MAX_BODY = 256 * 1024 * 1024  # a list of 20,000 pods is ~100 MiB; more is not an API answer
POOL = 32  # connections kept to the API server (fleet.API_IN_FLIGHT StatefulSets x their concurrent reads)
READS_AT_ONCE = 5  # the most calls load_facts has in flight (Service, EndpointSlices, Endpoints, pods, PVCs)
CALLS = POOL  # calls in flight through one Api by default (threads that send them): as many as connections


def credentials_available(opts: ApiOptions) -> bool:
    if opts.kubeconfig or opts.context:
        return True
    if os.environ.get("KUBERNETES_SERVICE_HOST") and (SA_DIR / "token").exists():
        return True
    paths = os.environ.get("KUBECONFIG", "").split(os.pathsep) if os.environ.get("KUBECONFIG") else []
    return any(Path(p).expanduser().exists() for p in [*paths, "~/.kube/config"] if p)


class Api:
    """A connection to one API server: its credentials and connection pool (`client`: _Official for a
    kubeconfig, incluster.ServiceAccount in a pod), the deadline its calls share (None: each call gets
    CALL_TIMEOUT) and the threads that send them, at most `calls` at once (the others wait their turn,
    within their own time)."""

    def __init__(self, client, deadline: float | None = None, calls: int = CALLS):
        self.client = client
        self.server = client.server
        self.deadline = deadline
        self.pool = CallPool(calls, "ssdns-api")

    def close(self) -> None:
        self.pool.close()
        with contextlib.suppress(Exception):  # closing a pool must not turn a result into an error
            self.client.close()


def api_client(opts: ApiOptions, deadline: float | None = None, calls: int = CALLS) -> Api:
    """An Api from the in-cluster service account, else the kubeconfig (--kubeconfig, --context), sending at
    most `calls` calls at once. A kubeconfig that is missing, not YAML or incomplete is one ApiUnavailable
    line. Loading is bounded by the deadline too: a kubeconfig's exec credential plugin runs a command, which
    may hang."""
    if deadline is None:
        return _load(opts, None, calls)
    left = deadline - time.monotonic()
    if left <= 0:  # the run's time went before the API's turn came: no plugin or file is to blame
        raise ApiUnavailable("no time was left to load the Kubernetes credentials (the run's deadline had passed); "
                             "raise --timeout")
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["api"] = _load(opts, deadline, calls)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=work, name="ssdns-kubeconfig", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if worker.is_alive():
        plugin = None if in_cluster(opts) else _credential_plugin(opts)
        if plugin is None:  # a kubeconfig of plain tokens or certificates loads in milliseconds: the time was short
            raise ApiUnavailable(f"loading the Kubernetes credentials did not finish in time (the {left:.2g} s left "
                                 "of the run's deadline); raise --timeout")
        raise ApiUnavailable(f"loading the Kubernetes credentials did not finish in time: the kubeconfig's "
                             f"credential plugin ({plugin}) had not returned after {left:.2g} s; check it and "
                             "--kubeconfig/--context, or raise --timeout")
    if "error" in box:
        raise box["error"]
    return box["api"]


def _credential_plugin(opts: ApiOptions) -> str | None:
    """The exec command or auth-provider of the kubeconfig user that --context (or current-context) names,
    read again only to word an error; None when it has none or the files cannot tell."""
    try:
        user = _kubeconfig_user(opts)
        if user.get("exec"):
            return f"exec: {user['exec'].get('command')}"
        if user.get("auth-provider"):
            return f"auth-provider: {user['auth-provider'].get('name')}"
    except Exception:  # noqa: BLE001 - anything a file that is not a kubeconfig makes the reading raise
        return None
    return None


def _kubeconfig_user(opts: ApiOptions) -> dict:
    import yaml  # type: ignore[import-untyped]  # the kubernetes package's own dependency

    docs = []
    for p in _kubeconfig_paths(opts):
        if not_a_file(p):  # a FIFO would block this thread, the run's, for ever
            raise ValueError(p)
        with open(p, "rb") as f:
            docs.append(yaml.safe_load(f.read(1 << 20)) or {})
    context = opts.context or next(d["current-context"] for d in docs if d.get("current-context"))
    return _entry(docs, "users", _entry(docs, "contexts", context)["context"]["user"])["user"]


def _kubeconfig_paths(opts: ApiOptions) -> list[str]:
    """The kubeconfig files the kubernetes package reads: --kubeconfig, else KUBECONFIG's list, else ~/.kube/config."""
    paths = [opts.kubeconfig] if opts.kubeconfig else \
        [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p] or ["~/.kube/config"]
    return [os.path.expanduser(p) for p in paths]


def _entry(docs: list[dict], section: str, name: str) -> dict:
    return next(e for d in docs for e in d.get(section) or [] if e.get("name") == name)


def in_cluster(opts: ApiOptions) -> bool:
    """In a pod, without --kubeconfig or --context: the service account's credentials."""
    return not (opts.kubeconfig or opts.context) and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def import_client(opts: ApiOptions | None = None) -> None:
    """Load what the API path needs (the kubernetes package for a kubeconfig: 0.3-0.5 s, more on a busy
    machine; urllib3 alone in a pod) before any API deadline is set: an import is local work, not a remote
    call, and must not eat the API reads' share of the time."""
    try:
        if opts is not None and in_cluster(opts):
            import urllib3  # noqa: F401
        else:
            import kubernetes.client
            import kubernetes.config  # noqa: F401
    except ImportError:
        raise ApiUnavailable("the kubernetes client is not installed: pip install 'ssdns[kube]'") from None


class _Official:
    """The kubernetes package's ApiClient for a kubeconfig: the URL and the headers it signs a request with
    (bearer tokens, exec plugins, OIDC), and its pool (client certificates, the CA)."""

    def __init__(self, client):
        self.client = client
        self.server = str(client.configuration.host)
        self.pool = client.rest_client.pool_manager

    def prepare(self, method: str, path: str, params: dict | None, headers: dict[str, str]) -> tuple[str, dict]:
        _, url, headers, _, _ = self.client.param_serialize(
            method, path, query_params=list((params or {}).items()), header_params=headers,
            auth_settings=["BearerToken"])
        return url, headers

    def close(self) -> None:
        self.client.close()


def _load(opts: ApiOptions, deadline: float | None, calls: int) -> Api:
    import_client(opts)
    if in_cluster(opts):
        from ssdns.incluster import ServiceAccount

        try:
            return Api(ServiceAccount(SA_DIR, POOL), deadline, calls)
        except ValueError as exc:
            raise ApiUnavailable(f"cannot load Kubernetes credentials (in-cluster service account): {exc}") from None
    from kubernetes import client, config

    for path in _kubeconfig_paths(opts):
        if kind := not_a_file(path):  # read, a FIFO blocks for ever and a device may never end
            raise ApiUnavailable(f"cannot load Kubernetes credentials ({path}): it is {kind}, not a kubeconfig file; "
                                 "check --kubeconfig and KUBECONFIG")
    cfg = client.Configuration()
    try:
        config.load_kube_config(config_file=opts.kubeconfig, context=opts.context, client_configuration=cfg,
                                persist_config=False)
    except Exception as exc:  # noqa: BLE001 - the loaders raise anything a malformed file makes them (yaml, KeyError, ...)
        where = opts.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ApiUnavailable(f"cannot load Kubernetes credentials ({where}): {detail}") from None
    cfg.retries = False  # no urllib3 retries behind the deadline's back (also passed per request)
    cfg.connection_pool_maxsize = POOL  # check --all reads several StatefulSets at once through one client
    return Api(_Official(client.ApiClient(cfg)), deadline, calls)


def _left(api: Api, deadline: float | None) -> float:
    """Seconds left for a call: to the given deadline, else the Api's, else CALL_TIMEOUT."""
    end = deadline if deadline is not None else api.deadline
    return CALL_TIMEOUT if end is None else end - time.monotonic()


def _open(api: Api, method: str, path: str, params: dict | None, body: Any, content_type: str,
          left: float):
    """Send one request through the client's pool; the urllib3 response, its body not read yet."""
    import urllib3

    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = content_type
    url, headers = api.client.prepare(method, path, params, headers)
    timeout = urllib3.Timeout(connect=max(0.01, min(CONNECT_TIMEOUT, left)), read=max(0.01, left))
    return api.client.pool.request(
        method, url, body=None if body is None else json.dumps(body), headers=headers, timeout=timeout,
        retries=False, redirect=False, preload_content=False)


def _read(resp) -> bytes:
    chunks, size = [], 0
    for chunk in resp.stream(65536):
        size += len(chunk)
        if size > MAX_BODY:
            resp.release_conn()
            raise _TooBig
        chunks.append(chunk)
    return b"".join(chunks)


class _TooBig(Exception):
    pass


def _reason(exc: BaseException) -> str:
    """The short cause of a transport failure: 'connection refused', 'self-signed certificate', ..."""
    for e in _causes(exc):
        text = _cause_text(e)
        if text:
            return text
    text = " ".join(str(exc).split())
    return (text.split(": ", 1)[-1] if ": " in text else text)[:200] or type(exc).__name__


def _causes(exc: BaseException) -> list[BaseException]:
    """exc and what it wraps (reason, cause, context, exception arguments), breadth first, each once."""
    out: list[BaseException] = []
    todo: list[object] = [exc]
    while todo:
        e = todo.pop(0)
        if not isinstance(e, BaseException) or any(e is seen for seen in out):
            continue
        out.append(e)
        todo += [getattr(e, "reason", None), e.__cause__, e.__context__, *e.args]
    return out


def _cause_text(e: BaseException) -> str:
    import ssl

    if isinstance(e, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {e.verify_message}"
    if isinstance(e, OSError) and not isinstance(e, ssl.SSLError):
        text = e.strerror or (e.args[0] if e.args and isinstance(e.args[0], str) else "")
        return text[:1].lower() + text[1:]  # 'Connection refused', 'Remote end closed connection ...'
    return ""


def _translate(exc: BaseException, fail: Callable[..., ApiError], waited: float) -> ApiError:
    import urllib3.exceptions as u3

    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, u3.SSLError):
        return fail(TLS, reason=_reason(exc))
    if isinstance(exc, u3.NewConnectionError):
        return fail(UNREACHABLE, reason=_reason(exc))
    if isinstance(exc, (u3.TimeoutError, TimeoutError)):
        return fail(TIMEOUT, reason=f"no answer within {waited:.1f} s")
    if isinstance(exc, _TooBig):
        return fail(BAD_ANSWER, reason=f"an answer over {MAX_BODY // 2**20} MiB")
    if isinstance(exc, (u3.ProtocolError, u3.DecodeError, u3.HTTPError, OSError)):
        return fail(UNREACHABLE, reason=_reason(exc))
    return fail(BAD_ANSWER, reason=f"{type(exc).__name__}: {exc}")


class _Call:
    """One request on its way in one of the Api's daemon threads: when the deadline passes first, or the
    caller is interrupted, the call is abandoned (it never starts, or its thread is let go) and never holds
    up the exit (nor an executor's shutdown)."""

    def __init__(self, api: Api, method: str, path: str, verb: str, resource: str, name: str | None,
                 namespace: str | None, params: dict | None, body: Any, content_type: str, deadline: float | None):
        self.api, self.verb, self.resource, self.name, self.namespace = api, verb, resource, name, namespace
        self.left = _left(api, deadline)
        self.box: dict[str, Any] = {}
        self.started = time.monotonic()
        self.args = (api, method, path, params, body, content_type)
        self.job: Job | None = None

    def fail(self, kind: str, *, status: int | None = None, reason: str = "") -> ApiError:
        return ApiError(kind, self.verb, self.resource, status=status, reason=reason, name=self.name,
                        namespace=self.namespace, server=self.api.server)

    def start(self, done: Callable[[], None]) -> None:
        if self.left <= 0:
            raise self.fail(TIMEOUT, reason="no time left before the deadline")

        def work() -> None:
            try:
                # The time left when its turn comes (it may have waited for a thread): none, no request.
                left = self.started + self.left - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                resp = _open(*self.args, left)
                try:
                    self.box["answer"] = (resp.status, resp.headers.get("Content-Type", ""),
                                          resp.headers.get("Location"), resp.reason, _read(resp))
                finally:
                    resp.release_conn()
            except BaseException as exc:  # noqa: BLE001 - carried to the caller's thread, translated there
                self.box["error"] = exc
            finally:
                done()

        self.job = self.api.pool.submit(work)

    def abandon(self) -> None:
        """Nobody waits for this call any more (timed out, interrupted)."""
        if self.job is not None:
            self.api.pool.abandon(self.job)

    def timed_out(self) -> ApiError:
        return self.fail(TIMEOUT, reason=f"no complete answer within {self.left:.1f} s")

    def result(self) -> dict:
        if "error" in self.box:
            raise _translate(self.box["error"], self.fail, time.monotonic() - self.started)
        status, ctype, location, http_reason, data = self.box["answer"]
        if 300 <= status < 400:
            raise self.fail(BAD_ANSWER, status=status, reason=f"HTTP {status}, a redirect to {location or 'nowhere'}")
        if not 200 <= status < 300:
            raise self.fail(kind_of_status(status), status=status, reason=_status_message(data) or http_reason or "")
        return _json_object(data, ctype, self.fail)


def request(api: Api, method: str, path: str, *, verb: str, resource: str, name: str | None = None,
            namespace: str | None = None, params: dict | None = None, body: Any = None,
            content_type: str = "application/json", deadline: float | None = None) -> dict:
    """One API call as JSON, bounded by the deadline (the Api's, unless given). A JSON object back, or
    an ApiError saying which call failed and how. Blocking; async code uses arequest."""
    call = _Call(api, method, path, verb, resource, name, namespace, params, body, content_type, deadline)
    done = threading.Event()
    call.start(done.set)
    if not done.wait(call.left):
        call.abandon()
        raise call.timed_out()
    return call.result()


async def arequest(api: Api, method: str, path: str, *, verb: str, resource: str, name: str | None = None,
                   namespace: str | None = None, params: dict | None = None, body: Any = None,
                   content_type: str = "application/json", deadline: float | None = None) -> dict:
    """request() for async code: awaits the call's thread without an executor thread of its own, so an
    interrupted run exits at once instead of waiting for calls in flight (which are abandoned)."""
    call = _Call(api, method, path, verb, resource, name, namespace, params, body, content_type, deadline)
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if not fut.done():
            fut.set_result(None)

    def done() -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(settle)

    call.start(done)
    try:
        # asyncio.timeout, not wait_for: on 3.11 wait_for drops a cancellation (SIGINT, SIGTERM through
        # aio.run) that comes as the answer does, and the run would go on as if nothing had been asked.
        async with asyncio.timeout(call.left):
            await fut
    except TimeoutError:
        call.abandon()
        raise call.timed_out() from None
    except BaseException:  # cancelled (SIGINT, SIGTERM through aio.run, a task given up): nobody waits for it
        call.abandon()
        raise
    return call.result()


def _status_message(data: bytes) -> str:
    """The message of a Kubernetes Status object, when the body is one."""
    try:
        doc = json.loads(data)
    except ValueError:
        return ""
    return str(doc.get("message") or "") if isinstance(doc, dict) else ""


def _json_object(data: bytes, ctype: str, fail) -> dict:
    text = data.lstrip()
    if not text:
        raise fail(BAD_ANSWER, reason="an empty answer")
    if "html" in ctype.lower() or text[:1] == b"<":
        raise fail(BAD_ANSWER, reason="HTML, not JSON")
    try:
        doc = json.loads(data)
    except ValueError:
        raise fail(BAD_ANSWER, reason=f"not JSON ({ctype or 'no Content-Type'})") from None
    if not isinstance(doc, dict):
        raise fail(BAD_ANSWER, reason=f"JSON of another shape: a {type(doc).__name__}, not an object")
    return doc


def _ns(namespace: str, group: str = "") -> str:
    return f"/apis/{group}/namespaces/{namespace}" if group else f"/api/v1/namespaces/{namespace}"


def selector_string(selector: dict | None) -> str:
    """A LabelSelector as the labelSelector string list calls take."""
    selector = selector or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key = expr.get("operator"), expr.get("key")
        if op in ("In", "NotIn"):
            parts.append(f"{key} {op.lower()} ({','.join(expr.get('values') or [])})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def shaped(parse, doc: dict, verb: str, resource: str, api: Api, name: str | None = None,
            namespace: str | None = None):
    """Parse an object (or each item of a list) the API sent; a wrong shape is a BAD_ANSWER ApiError."""
    try:
        if verb == "list":
            if "items" not in doc:
                raise ValueError(f"a {doc.get('kind') or 'JSON object'} without items, not a list")
            items = doc["items"] or []
            if not isinstance(items, list):
                raise ValueError("items is not a list")
            return [parse(d) for d in items]
        _the_one_asked(doc, resource, name)
        return parse(doc)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        what = f"no {exc.args[0]!r}" if isinstance(exc, KeyError) and exc.args else str(exc)
        raise ApiError(BAD_ANSWER, verb, resource, name=name, namespace=namespace, server=api.server,
                       reason=f"JSON of another shape: {what}") from None


_KIND_OF = {"statefulsets": "StatefulSet", "services": "Service", "pods": "Pod", "endpoints": "Endpoints",
            "configmaps": "ConfigMap", "persistentvolumeclaims": "PersistentVolumeClaim"}


def _the_one_asked(doc: dict, resource: str, name: str | None) -> None:
    """A get's answer names the kind and the object asked for, as every API server's does; another kind or
    another object (a proxy or a fake in the API's place) is no answer about this one. A field left out is
    judged by the parser."""
    want, kind = _KIND_OF.get(resource), doc.get("kind")
    meta = doc.get("metadata")
    got = meta.get("name") if isinstance(meta, dict) else None
    if (want is not None and kind is not None and kind != want) or (name and got is not None and got != name):
        sent = f"a {kind}" if kind else "an object"
        raise ValueError(f"{sent}{f' {got}' if got else ''}, not {want or resource} {name or ''}".rstrip())


async def load_facts(api: Api, namespace: str, statefulset: str | None, service: str | None,
                     deadline: float | None = None, listed: StatefulSetFacts | None = None) -> ClusterFacts:
    """Read what the API says. A refused read (403, 404, 5xx, ...) becomes an ApiProblem and the run goes
    on without it; when the API as a whole cannot be used (unreachable, timed out, TLS, not an API, 401)
    the first such ApiError is raised, and nothing more is asked. `listed`: the StatefulSet as a list call
    returned it (check --all), taken as read instead of a get of the same object."""
    start = time.monotonic()
    facts = ClusterFacts(namespace, listed, None)
    read = _Reader(api, facts, deadline)
    if statefulset and listed is None:
        facts.statefulset = await read("get", "statefulsets", f"{_ns(namespace, 'apps/v1')}/statefulsets/{statefulset}",
                                       _statefulset, name=statefulset)
    sts = facts.statefulset
    service = service or (sts.service_name if sts else None)
    jobs = _reads(read, namespace, service, sts)
    got = dict(zip(jobs, await asyncio.gather(*jobs.values()), strict=True))
    if service:
        _add_service(facts, service, got["service"], got["slices"])
        facts.over_capacity = got["endpoints"]
        # No Endpoints object (no Service, or not written yet) is api.service's finding, not a refused read.
        facts.problems = [p for p in facts.problems if not (p.resource == "endpoints" and p.status == 404)]
    facts.pods = {p.name: p for p in got.get("pods") or []}
    facts.pvcs = {c.name: c for c in got.get("pvcs") or []}
    facts.elapsed_ms = (time.monotonic() - start) * 1000
    facts.read_at = time.time()
    return facts


def _reads(read: _Reader, namespace: str, service: str | None, sts: StatefulSetFacts | None) -> dict[str, Any]:
    """The reads after the StatefulSet's (at most READS_AT_ONCE), by name: its Service, the Service's
    EndpointSlices and Endpoints object, the StatefulSet's pods and claims."""
    jobs: dict[str, Any] = {}
    if service:
        jobs["service"] = read("get", "services", f"{_ns(namespace)}/services/{service}", _service, name=service)
        jobs["slices"] = read("list", "endpointslices", f"{_ns(namespace, 'discovery.k8s.io/v1')}/endpointslices",
                              _slice, params={"labelSelector": f"kubernetes.io/service-name={service}"})
        jobs["endpoints"] = read("get", "endpoints", f"{_ns(namespace)}/endpoints/{service}", _over_capacity,
                                 name=service)
    if sts is not None:
        jobs["pods"] = read("list", "pods", f"{_ns(namespace)}/pods", _pod, params={"labelSelector": sts.selector})
        if sts.claim_templates:
            jobs["pvcs"] = read("list", "persistentvolumeclaims", f"{_ns(namespace)}/persistentvolumeclaims", _pvc,
                                params={"labelSelector": sts.selector})
    return jobs


class _Reader:
    """One GET, parsed; a refused read recorded as an ApiProblem (None back), a transport failure raised."""

    def __init__(self, api: Api, facts: ClusterFacts, deadline: float | None):
        self.api, self.facts, self.deadline = api, facts, deadline

    async def __call__(self, verb: str, resource: str, path: str, parse, name: str | None = None,
                       params: dict | None = None):
        try:
            doc = await arequest(self.api, "GET", path, verb=verb, resource=resource, name=name,
                                 namespace=self.facts.namespace, params=params, deadline=self.deadline)
            return shaped(parse, doc, verb, resource, self.api, name, self.facts.namespace)
        except ApiError as exc:
            if exc.transport:
                raise
            self.facts.problems.append(ApiProblem(verb, resource, exc.status, exc.reason, exc.name, exc.namespace,
                                                  exc.kind, exc.server))
        return None


def _add_service(facts: ClusterFacts, service: str, svc: ServiceFacts | None, slices) -> None:
    """The Service (a 404 is a Service that does not exist: a finding, not a refused read) and the
    endpoints and ports of its EndpointSlices."""
    if any(p.resource == "services" and p.status == 404 for p in facts.problems):
        facts.problems = [p for p in facts.problems if not (p.resource == "services" and p.status == 404)]
        facts.service = ServiceFacts(service, exists=False)
    elif svc is not None:
        facts.service = svc
    for endpoints, ports in slices or []:
        facts.endpoints += endpoints
        for entry in ports:
            if entry[1] is not None and entry not in facts.endpoint_ports:
                facts.endpoint_ports.append(entry)


OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"


def _over_capacity(d: dict) -> str | None:
    """The v1 Endpoints object's over-capacity annotation ("truncated" past 1000 addresses), or None."""
    value = _obj(_obj(_obj(d).get("metadata")).get("annotations")).get(OVER_CAPACITY)
    return None if value is None else str(value)


def _slice(s: dict) -> tuple[list[EndpointFacts], list[tuple[str | None, int | None, str]]]:
    ports = [(_str(p.get("name")) or None, None if p.get("port") is None else _int(p.get("port"), 0),
              _str(p.get("protocol")) or "TCP") for p in map(_obj, _list(_obj(s).get("ports")))]
    return [_endpoint(e) for e in _list(s.get("endpoints"))], ports


# Plain data from the API's JSON (the field names of the official models, in the API's camelCase).
# An answer of another shape raises KeyError, TypeError or ValueError here, which shaped words.

def _obj(v) -> dict:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise TypeError(f"{type(v).__name__} where an object belongs")
    return v


def _list(v) -> list:
    if v is None:
        return []
    if not isinstance(v, list):
        raise TypeError(f"{type(v).__name__} where a list belongs")
    return v


def _str(v, default: str | None = None) -> str | None:
    if v is None:
        return default
    if not isinstance(v, str):
        raise TypeError(f"{type(v).__name__} where a string belongs")
    return v


def _int(v, default: int) -> int:
    if v is None:
        return default
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 10**7:
        raise ValueError(f"{v!r} where a count belongs")
    return v


def _name(d: dict) -> str:
    name = _str(_obj(d)["metadata"]["name"])
    if not name:
        raise ValueError("an object without a name")
    return name


def _statefulset(d: dict) -> StatefulSetFacts:
    spec, status = _obj(d.get("spec")), _obj(d.get("status"))
    return StatefulSetFacts(
        name=_name(d), replicas=_int(spec.get("replicas"), 1),
        service_name=_str(spec.get("serviceName"), "") or "", selector=selector_string(_obj(spec.get("selector"))),
        pod_management_policy=_str(spec.get("podManagementPolicy")) or "OrderedReady",
        claim_templates=[_name(t) for t in _list(spec.get("volumeClaimTemplates"))],
        ready_replicas=_int(status.get("readyReplicas"), 0),
        first_ordinal=_int(_obj(spec.get("ordinals")).get("start"), 0), **_rollout(spec, status))


def _service(d: dict) -> ServiceFacts:
    spec = _obj(d.get("spec"))
    ports = [_obj(p) for p in _list(spec.get("ports"))]
    return ServiceFacts(
        name=_name(d), headless=spec.get("clusterIP") in (None, "None"),
        cluster_ip=_str(spec.get("clusterIP")), publish_not_ready=bool(spec.get("publishNotReadyAddresses")),
        ports=[(_str(p.get("name")), _int(p.get("port"), 0), _str(p.get("protocol")) or "TCP") for p in ports],
        ip_families=[_str(f) or "" for f in _list(spec.get("ipFamilies"))], selector=_labels(spec.get("selector")))


def _pod(d: dict) -> PodFacts:
    meta, spec, status = _obj(d["metadata"]), _obj(d.get("spec")), _obj(d.get("status"))
    ips = [_str(x["ip"]) or "" for x in map(_obj, _list(status.get("podIPs"))) if x.get("ip")]
    if not ips and status.get("podIP"):
        ips = [_str(status["podIP"]) or ""]
    conditions = [_obj(c) for c in _list(status.get("conditions"))]
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    restarts = sum(_int(_obj(c).get("restartCount"), 0) for c in _list(status.get("containerStatuses")))
    return PodFacts(name=_name(d), uid=_str(meta.get("uid"), "") or "", ips=ips, ready=ready,
                    terminating=meta.get("deletionTimestamp") is not None,
                    phase=_str(status.get("phase")) or "Unknown", node=_str(spec.get("nodeName")),
                    restarts=restarts, hostname=_str(spec.get("hostname")), subdomain=_str(spec.get("subdomain")),
                    **_pod_more(meta, spec, conditions))


def _rollout(spec: dict, status: dict) -> dict:
    """The StatefulSet's rollout, claim retention and pod template labels (StatefulSetFacts fields)."""
    strategy = _obj(spec.get("updateStrategy"))
    retention = _obj(spec.get("persistentVolumeClaimRetentionPolicy"))
    return {"current_revision": _str(status.get("currentRevision")),
            "update_revision": _str(status.get("updateRevision")),
            "update_strategy": _str(strategy.get("type")) or "RollingUpdate",
            "partition": _int(_obj(strategy.get("rollingUpdate")).get("partition"), 0),
            "updated_replicas": _int(status.get("updatedReplicas"), 0),
            "retain_when_scaled": _str(retention.get("whenScaled")) or "Retain",
            "retain_when_deleted": _str(retention.get("whenDeleted")) or "Retain",
            "template_labels": _labels(_obj(_obj(spec.get("template")).get("metadata")).get("labels"))}


def _pod_more(meta: dict, spec: dict, conditions: list[dict]) -> dict:
    """What the wiring and rollout checks read of a pod (PodFacts fields)."""
    ready = [c for c in conditions if c.get("type") == "Ready"]
    labels = _labels(meta.get("labels"))
    containers = [_obj(c) for c in [*_list(spec.get("containers")), *_list(spec.get("initContainers"))]]
    grace = meta.get("deletionGracePeriodSeconds")
    return {"labels": labels, "host_network": spec.get("hostNetwork") is True,
            "containers": [_str(c.get("name")) or "" for c in containers],
            "ready_since": _time(ready[0].get("lastTransitionTime")) if ready else None,
            "deleted_at": _time(meta.get("deletionTimestamp")),
            "grace_seconds": None if grace is None else _int(grace, 0),
            "revision": labels.get("controller-revision-hash")}


def _labels(v) -> dict[str, str]:
    """A label map (a selector's too): {} when absent."""
    return {str(k): _str(x) or "" for k, x in _obj(v).items()}


def _time(v) -> float | None:
    """An API time (RFC 3339, 2024-01-02T03:04:05Z) as Unix seconds; None when absent or malformed."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(v).timestamp() if isinstance(v, str) else None
    except ValueError:
        return None


def _endpoint(e: dict) -> EndpointFacts:
    e = _obj(e)
    c = _obj(e.get("conditions"))
    # Per the EndpointSlice API, a nil ready/serving means true; a nil terminating means false.
    ready = True if c.get("ready") is None else bool(c["ready"])
    serving = ready if c.get("serving") is None else bool(c["serving"])
    ref = _obj(e.get("targetRef"))
    return EndpointFacts([_str(a) or "" for a in _list(e.get("addresses"))], _str(e.get("hostname")), ready,
                         serving, bool(c.get("terminating")), _str(ref.get("name")) if ref.get("kind") == "Pod" else None)


def _pvc(d: dict) -> PvcFacts:
    return PvcFacts(_name(d), _str(_obj(d.get("status")).get("phase")), _str(_obj(d.get("spec")).get("volumeName")))


async def list_statefulsets(api: Api, namespace: str | None, selector: str | None) -> list:
    """The StatefulSets of a namespace (None: of every namespace), by label selector, as fleet.Listed, each
    with the whole StatefulSet parsed as a get's (the list's items are the full objects, all as of the list's
    resourceVersion: check --all reads none of them again). An ApiError for a refused or failed list (a
    selector that does not parse is a 400), or one item of another shape."""
    from ssdns.fleet import Listed

    path = f"{_ns(namespace, 'apps/v1')}/statefulsets" if namespace else "/apis/apps/v1/statefulsets"
    doc = await arequest(api, "GET", path, verb="list", resource="statefulsets", namespace=namespace,
                         params={"labelSelector": selector} if selector else None)

    def listed(d: dict) -> Listed:
        meta = _obj(d.get("metadata"))
        sts = _statefulset(d)
        annotations = {str(k): str(v) for k, v in _obj(meta.get("annotations")).items()}
        return Listed(_str(meta.get("namespace")) or namespace or "", sts.name, sts.service_name, sts.replicas,
                      sts, annotations)

    return shaped(listed, doc, "list", "statefulsets", api)


# Disruptive and polling calls, used only by restart-test and scale-test (the ssdns-disrupt Role).
# Each ends by `deadline` (None: the Api's): the disruption's phases give their own (disrupt.py).

async def read_pod(api: Api, namespace: str, name: str, deadline: float | None = None) -> PodFacts | None:
    try:
        doc = await arequest(api, "GET", f"{_ns(namespace)}/pods/{name}", verb="get", resource="pods", name=name,
                             namespace=namespace, deadline=deadline)
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise
    return shaped(_pod, doc, "get", "pods", api, name, namespace)


async def delete_pod(api: Api, namespace: str, name: str, uid: str, deadline: float | None = None) -> None:
    """Delete exactly the pod we looked at: the UID precondition refuses a replacement of the same name."""
    await arequest(api, "DELETE", f"{_ns(namespace)}/pods/{name}", verb="delete", resource="pods", name=name,
                   namespace=namespace, body={"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}},
                   deadline=deadline)


async def scale(api: Api, namespace: str, statefulset: str, replicas: int, deadline: float | None = None) -> None:
    await arequest(api, "PATCH", f"{_ns(namespace, 'apps/v1')}/statefulsets/{statefulset}/scale", verb="patch",
                   resource="statefulsets/scale", name=statefulset, namespace=namespace,
                   body={"spec": {"replicas": replicas}}, content_type="application/merge-patch+json", deadline=deadline)


async def list_pods(api: Api, namespace: str, selector: str, deadline: float | None = None) -> dict[str, PodFacts]:
    doc = await arequest(api, "GET", f"{_ns(namespace)}/pods", verb="list", resource="pods", namespace=namespace,
                         params={"labelSelector": selector}, deadline=deadline)
    return {p.name: p for p in shaped(_pod, doc, "list", "pods", api, namespace=namespace)}


async def list_pvcs(api: Api, namespace: str, selector: str, deadline: float | None = None) -> dict[str, PvcFacts]:
    doc = await arequest(api, "GET", f"{_ns(namespace)}/persistentvolumeclaims", verb="list",
                         resource="persistentvolumeclaims", namespace=namespace, params={"labelSelector": selector},
                         deadline=deadline)
    return {c.name: c for c in shaped(_pvc, doc, "list", "persistentvolumeclaims", api, namespace=namespace)}


def watch_pods(api: Api, namespace: str, selector: str, deadline: float, on_event, stop) -> None:
    """Stream pod events (blocking; run it in a daemon thread) until `stop` is set or the deadline
    (time.monotonic()) passes. on_event(type, PodFacts) is called for each. The watch is renewed every
    second from the last resourceVersion, so a set `stop` is noticed within a second even when no
    event arrives; a request that hangs is cut off at the deadline (the caller never waits for it)."""
    version: str | None = None
    for _ in range(int(max(0.0, deadline - time.monotonic())) + 2):  # one short watch per second, bounded
        left = deadline - time.monotonic()
        if stop.is_set() or left <= 0:
            return
        params = {"watch": "true", "labelSelector": selector, "timeoutSeconds": "1"}
        if version:
            params["resourceVersion"] = version
        version = _watch_once(api, namespace, params, min(left, 6.0), deadline, on_event, stop)


def _watch_once(api: Api, namespace: str, params: dict, left: float, deadline: float, on_event,
                stop) -> str | None:
    """One short watch: events to on_event until it ends; the resourceVersion to go on from (None:
    start again from now, after an ERROR event such as 410 Gone)."""
    version = params.get("resourceVersion")

    def handle(event: dict) -> bool:
        nonlocal version
        if event.get("type") == "ERROR":
            version = None
            return True
        obj = event["object"]
        version = obj["metadata"].get("resourceVersion") or version
        on_event(event["type"], _pod(obj))
        return stop.is_set() or time.monotonic() >= deadline

    _watch_pods(api, namespace, params, left, 10_000, handle)
    return version


def _watch_error(api: Api, namespace: str, kind: str, *, status: int | None = None, reason: str = "") -> ApiError:
    return ApiError(kind, "watch", "pods", status=status, reason=reason, namespace=namespace, server=api.server)


def _watch_pods(api: Api, namespace: str, params: dict, left: float, limit: int,
                handle: Callable[[dict], bool]) -> None:
    """One watch request on the namespace's pods (blocking): each event, parsed, to handle(event) until it
    returns True or the stream ends. Every failure (the request, its status, a broken stream, an event that
    does not parse or that handle rejects) is one ApiError; the connection is always released."""

    def fail(kind: str, *, status: int | None = None, reason: str = "") -> ApiError:
        return _watch_error(api, namespace, kind, status=status, reason=reason)

    try:
        resp = _open(api, "GET", f"{_ns(namespace)}/pods", params, None, "", left)
    except Exception as exc:  # noqa: BLE001 - translated into one ApiError
        raise _translate(exc, fail, left) from None
    try:
        if resp.status != 200:
            raise fail(kind_of_status(resp.status), status=resp.status,
                       reason=_status_message(resp.read(65536)) or resp.reason or "")
        for line in _lines(resp, limit=limit):
            if handle(json.loads(line)):
                return
    except ApiError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken stream or event: one ApiError
        raise _translate(exc, fail, left) from None
    finally:
        resp.release_conn()


def _lines(raw, limit: int = 10_000):
    """Newline-delimited JSON events from a streamed urllib3 response (bounded)."""
    buf = b""
    for chunk in raw.stream(4096):
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield line
                limit -= 1
                if limit <= 0:
                    return
    if buf.strip():
        yield buf


# --resolvers all: the cluster DNS Service's replicas (the resolvers Role, k8s/resolvers/).

DnsEndpoint = tuple[str | None, str | None, str, int]  # (pod, node, IP, DNS port)


async def dns_endpoints(api: Api, namespace: str, service: str, deadline: float | None = None) -> list[DnsEndpoint]:
    """The ready endpoints of a DNS Service's EndpointSlices, each with its pod and node: what
    `--resolvers all` asks. One call: list endpointslices in that namespace, by the service-name label."""
    doc = await arequest(api, "GET", f"{_ns(namespace, 'discovery.k8s.io/v1')}/endpointslices", verb="list",
                         resource="endpointslices", namespace=namespace,
                         params={"labelSelector": f"kubernetes.io/service-name={service}"}, deadline=deadline)
    return [ep for eps in shaped(_dns_slice, doc, "list", "endpointslices", api) for ep in eps]


def _dns_slice(s: dict) -> list[DnsEndpoint]:
    ports = list(map(_obj, _list(_obj(s).get("ports"))))
    # The DNS port: the UDP one (CoreDNS's "dns"), else any, else 53.
    udp = [p for p in ports if (_str(p.get("protocol")) or "TCP") == "UDP" and p.get("port") is not None]
    port = _int((udp or [p for p in ports if p.get("port") is not None] or [{"port": 53}])[0]["port"], 53)
    out = []
    for raw in _list(s.get("endpoints")):
        e = _endpoint(raw)
        if e.ready and e.addresses:
            out.append((e.pod, _str(_obj(raw).get("nodeName")), e.addresses[0], port))
    return out


# ssdns watch: list, then watch the StatefulSet's pods from the list's resourceVersion (Role ssdns-watch:
# get statefulsets, list and watch pods). The async side (watch.py) runs stream_pods in a daemon thread.

WATCH_SECONDS = 240  # a watch request's timeoutSeconds: renewed from the last resourceVersion after it
WATCH_READ_SLACK = 30.0  # seconds of silence past timeoutSeconds before the connection counts as dead


async def read_statefulset(api: Api, namespace: str, name: str, deadline: float | None = None) -> StatefulSetFacts | None:
    """The StatefulSet, or None when it does not exist (404); any other failure is an ApiError."""
    try:
        doc = await arequest(api, "GET", f"{_ns(namespace, 'apps/v1')}/statefulsets/{name}", verb="get",
                             resource="statefulsets", name=name, namespace=namespace, deadline=deadline)
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise
    return shaped(_statefulset, doc, "get", "statefulsets", api, name)


async def list_pods_versioned(api: Api, namespace: str, selector: str,
                              deadline: float | None = None) -> tuple[dict[str, PodFacts], str]:
    """The pods and the list's resourceVersion: where a watch that misses nothing starts."""
    doc = await arequest(api, "GET", f"{_ns(namespace)}/pods", verb="list", resource="pods", namespace=namespace,
                         params={"labelSelector": selector}, deadline=deadline)
    pods = {p.name: p for p in shaped(_pod, doc, "list", "pods", api)}
    return pods, str(_obj(doc.get("metadata")).get("resourceVersion") or "")


def stream_pods(api: Api, namespace: str, selector: str, version: str, on_event: Callable[[str, PodFacts | None, str], None],
                stop: threading.Event, seconds: int = WATCH_SECONDS) -> None:
    """One watch request from `version` (blocking: run it in a thread). on_event(type, pod, resourceVersion)
    for each event (pod None for a BOOKMARK) until the server ends the stream, or `stop` is set. A 410
    Gone (an ERROR event or the status) is an ApiError with status 410: list again. A stream that breaks
    is an ApiError (unreachable): watch again from the last resourceVersion."""
    params = {"watch": "true", "labelSelector": selector, "timeoutSeconds": str(seconds),
              "allowWatchBookmarks": "true", "resourceVersion": version}

    def handle(event: dict) -> bool:
        if stop.is_set():
            return True
        kind, obj = event.get("type"), _obj(event.get("object"))
        if kind == "ERROR":
            code = obj.get("code") if isinstance(obj.get("code"), int) else None
            raise _watch_error(api, namespace, kind_of_status(code or 500), status=code,
                               reason=str(obj.get("message") or ""))
        rv = str(_obj(obj.get("metadata")).get("resourceVersion") or "")
        on_event(str(kind), None if kind == "BOOKMARK" else _pod(obj), rv)
        return False

    _watch_pods(api, namespace, params, seconds + WATCH_READ_SLACK, 10**9, handle)
