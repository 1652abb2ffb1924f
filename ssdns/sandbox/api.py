"""The sandbox's Kubernetes API: plain HTTP on loopback, rendering the World as an API server would.

Objects are the official client's models (kubernetes.client.V1Pod, ...), built in objects.py and
serialized with ApiClient.sanitize_for_serialization, so names and shapes are a real API server's;
label and field selectors are parsed in selectors.py. The kubernetes package is imported only in
KubeApi.start(): the DNS server and echo pods never load it.

Served (GET unless said): /version, /api, /api/v1, /apis, /apis/{group}, /apis/{group}/{version};
statefulsets (apps/v1), services, pods, endpointslices (discovery.k8s.io/v1),
endpoints (v1, the Service's, with the over-capacity annotation): get;
persistentvolumeclaims: list (namespaced and across namespaces, labelSelector, fieldSelector,
limit/continue) and get by name (also the status subresource); watch (?watch=true) of every kind
of those: newline-delimited JSON events, ADDED for what exists when no resourceVersion (or "0")
is given, else the events after it (410 Gone, as an ERROR event, when it is too old), ended at
timeoutSeconds or when the sandbox stops. configmaps: get, list, create (POST), update (PUT,
resourceVersion checked: 409 when stale) and delete. Through the StatefulSet controller
(controller.py): pods: delete (V1DeleteOptions: preconditions uid and resourceVersion,
gracePeriodSeconds); statefulsets: patch of spec.replicas, and the scale subresource (get, patch,
update: V1Scale). Patches: strategic-merge, merge and JSON patch. Errors are V1Status
bodies with a real server's reasons and messages (NotFound, Forbidden, Conflict, AlreadyExists,
BadRequest, Invalid, MethodNotAllowed, UnsupportedMediaType).

Every request lands in `KubeApi.requests` with its RBAC verb, API group, resource and
subresource; `KubeApi.rbac()` turns them into the rules a run needed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ssdns.frozen import frozen
from ssdns.sandbox.objects import REVISION_LABEL, Models
from ssdns.sandbox.selectors import parse_field_selector, parse_label_selector
from ssdns.sandbox.world import (
    DNS_NAMESPACE,
    AlreadyExists,
    Conflict,
    Event,
    NotFound,
    ObjectError,
    SandboxConfigMap,
    World,
    endpoint_slices,
)

API_HOST = "127.54.0.1"
KUBE_MAJOR, KUBE_MINOR = "1", "32"
MAX_BODY = 3 * 1024 * 1024
CONFIGMAP_MAX = 1024 * 1024  # the API server's limit on a ConfigMap's data
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DATA_KEY = re.compile(r"[-._a-zA-Z0-9]+")
WATCH_DEFAULT = 1800  # seconds: a watch without timeoutSeconds ends after this (the server's min-request-timeout)
WATCH_MAX = 3600
WATCH_TICK = 1.0  # seconds: a watch looks at the journal at least this often, even without a wake-up
PATCH_TYPES = ("application/strategic-merge-patch+json", "application/merge-patch+json", "application/json-patch+json")


@dataclass
class ApiRequest:
    """One request as the API server's authorizer sees it (RBAC attributes) plus what was answered."""

    method: str
    path: str
    query: dict[str, str]
    verb: str  # get, list, watch, create, update, patch, delete, deletecollection
    api_group: str | None  # "" for the core group; None for non-resource URLs (/version, /api ...)
    resource: str | None
    subresource: str | None = None
    namespace: str | None = None
    name: str | None = None
    status: int = 0  # the HTTP status answered

    @property
    def is_resource(self) -> bool:
        return self.resource is not None

    @property
    def rule(self) -> tuple[str, str, str] | None:
        """(apiGroup, resource[/subresource], verb): what an RBAC Role must grant for this request."""
        if self.resource is None:
            return None
        res = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        return self.api_group or "", res, self.verb


def parse_request(method: str, path: str, query: dict[str, str]) -> ApiRequest:
    """The API server's RequestInfo: resource requests are /api/v1/... and /apis/GROUP/VERSION/..."""
    parts = [p for p in path.split("/") if p]
    method = method.upper()
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return ApiRequest(method, path, query, method.lower() if method != "HEAD" else "get", None, None)
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    sub = "/".join(rest[2:]) or None
    if resource == "namespaces" and name and not sub and namespace is None:
        namespace = name
    if method in ("GET", "HEAD"):
        verb = "get" if name else ("watch" if query.get("watch") in ("true", "1") else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if name else "deletecollection"}.get(method, method.lower())
    return ApiRequest(method, path, query, verb, group, resource, sub, namespace, name)


COMMON_FIELDS = {"metadata.name": "metadata.name", "metadata.namespace": "metadata.namespace"}
POD_FIELDS = {**COMMON_FIELDS, "spec.nodeName": "spec.nodeName", "spec.restartPolicy": "spec.restartPolicy",
              "spec.serviceAccountName": "spec.serviceAccountName", "status.phase": "status.phase",
              "status.podIP": "status.podIP"}


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, *, name: str | None = None,
                 group: str | None = None, kind: str | None = None):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.name, self.group, self.kind = name, group, kind


@frozen
class Foreign:
    """An object of a neighbour world (another StatefulSet of the sandbox): served, read-only."""

    world: World
    obj: Any


@frozen
class Kind:
    group: str
    version: str
    plural: str
    kind: str
    verbs: tuple[str, ...]
    short_names: tuple[str, ...] = ()
    fields: dict | None = None

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()


READ = ("get", "list", "watch")
KINDS = {k.plural: k for k in (
    Kind("", "v1", "pods", "Pod", ("delete", "get", "list", "watch"), ("po",), POD_FIELDS),
    Kind("", "v1", "services", "Service", READ, ("svc",)),
    Kind("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", READ, ("pvc",)),
    Kind("", "v1", "endpoints", "Endpoints", ("get",), ("ep",)),
    Kind("", "v1", "configmaps", "ConfigMap", ("create", "delete", "get", "list", "update", "watch"), ("cm",)),
    Kind("apps", "v1", "statefulsets", "StatefulSet", ("get", "list", "patch", "watch"), ("sts",)),
    Kind("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", READ),
)}
STATUS_SUBRESOURCE = ("pods", "services", "persistentvolumeclaims", "statefulsets")
SCALE_VERBS = ("get", "patch", "update")  # statefulsets/scale


class KubeApi:
    """`await KubeApi(world, controller=...).start()`; `url`; `requests`; `rbac()`. Without a
    controller, pod deletes and scaling are refused (405)."""

    def __init__(self, world: World, host: str = API_HOST, port: int = 0, *,
                 user: str | None = None, controller=None):
        self.world = world
        self.host, self.port = host, port
        self.user = user or f"system:serviceaccount:{world.namespace}:ssdns"
        self.controller = controller
        self.requests: list[ApiRequest] = []
        self._runner: web.AppRunner | None = None
        self._k: Any = None  # kubernetes.client, once started (an untyped library)
        self._serializer: Any = None
        self._models: Models | None = None  # the World as model objects, once started
        self._neighbour_models: dict[int, Models] = {}  # id(neighbour world) -> its Models
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchers: set[asyncio.Event] = set()  # one per open watch: set on every world change
        self._stopping = False

    @property
    def models(self) -> Models:
        assert self._models is not None, "the API is started"
        return self._models

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        from kubernetes import (
            client,  # only here: the sandbox's DNS and pods never need it
        )

        self._k = client
        self._serializer = client.ApiClient()
        self._models = Models(self.world, client)
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.world.listeners.append(self._on_change)

    async def stop(self) -> None:
        """Stop serving; open watches end cleanly (their streams are closed with a last chunk)."""
        self._stopping = True
        if self._on_change in self.world.listeners:
            self.world.listeners.remove(self._on_change)
        for ev in list(self._watchers):
            ev.set()
        for _ in range(50):  # bounded: up to 1 s for the watches to finish their last write
            if not self._watchers:
                break
            await asyncio.sleep(0.02)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _on_change(self) -> None:
        """A world listener: wake the open watches (from any thread)."""
        if not self._watchers or self._loop is None:
            return
        try:
            here = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            here = False
        for ev in list(self._watchers):
            if here:
                ev.set()
            else:
                self._loop.call_soon_threadsafe(ev.set)

    def rbac(self) -> list[tuple[str, str, str]]:
        """(apiGroup, resource, verb) of every resource request so far, sorted, once each."""
        return sorted({r.rule for r in self.requests if r.rule is not None})

    # --- HTTP -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        req = parse_request(request.method, request.path, dict(request.query))
        self.requests.append(req)
        try:
            resp = await self._serve(request, req)
        except ApiError as e:
            resp = self._status_response(e)
        req.status = resp.status
        return resp

    def _json(self, model, status: int = 200) -> web.Response:
        body = self._serializer.sanitize_for_serialization(model)
        return web.Response(status=status, body=json.dumps(body, separators=(",", ":")).encode(),
                            content_type="application/json")

    def _status_response(self, e: ApiError) -> web.Response:
        k = self._k
        details = k.V1StatusDetails(name=e.name, group=e.group or None, kind=e.kind)
        status = k.V1Status(api_version="v1", kind="Status", metadata=k.V1ListMeta(), status="Failure",
                            message=e.message, reason=e.reason, details=details, code=e.code)
        return self._json(status, e.code)

    async def _serve(self, request: web.Request, req: ApiRequest) -> web.StreamResponse:
        if req.resource is None:
            return self._discovery(req)
        kind = KINDS.get(req.resource)
        parts = [p for p in req.path.split("/") if p]
        version = parts[1] if parts[0] == "api" else parts[2]
        if kind is None or kind.group != req.api_group or kind.version != version:
            raise _not_found_path()
        if req.subresource and not ((req.subresource == "status" and req.resource in STATUS_SUBRESOURCE)
                                    or (req.subresource == "scale" and req.resource == "statefulsets")):
            raise _not_found_path()
        if "*" in self.world.api_forbidden or req.resource in self.world.api_forbidden:
            raise self._forbidden(req)
        if self.world.dns_forbidden and req.namespace == DNS_NAMESPACE:  # fault dns-forbidden
            raise self._forbidden(req)
        if req.subresource == "scale" and req.name:
            if req.verb not in SCALE_VERBS:
                raise _not_allowed()
            return await self._scale(request, req)
        if req.verb not in kind.verbs or (req.subresource and req.verb != "get"):
            raise _not_allowed()
        if req.verb == "watch":
            return await self._watch(request, kind, req)
        if req.verb == "list":
            return self._list(kind, req)
        if req.namespace is None:
            raise _not_found_path()
        if req.verb == "get":
            return self._json(self._render(kind, self._find(kind, req.namespace, req.name)))
        if kind.plural == "configmaps":
            return await self._write_configmap(request, req)
        if kind.plural == "pods" and req.verb == "delete":
            return await self._delete_pod(request, req)
        if kind.plural == "statefulsets" and req.verb == "patch":
            return await self._patch_statefulset(request, req)
        raise _not_allowed()

    def _forbidden(self, req: ApiRequest) -> ApiError:
        qualified = f"{req.resource}.{req.api_group}" if req.api_group else req.resource
        subject = f'{qualified} "{req.name}"' if req.name else qualified
        res = f"{req.resource}/{req.subresource}" if req.subresource else req.resource
        scope = f'in the namespace "{req.namespace}"' if req.namespace else "at the cluster scope"
        return ApiError(403, "Forbidden", f'{subject} is forbidden: User "{self.user}" cannot {req.verb} '
                        f'resource "{res}" in API group "{req.api_group}" {scope}',
                        name=req.name, group=req.api_group, kind=req.resource)

    # --- discovery ------------------------------------------------------------------------

    def _discovery(self, req: ApiRequest) -> web.Response:
        k = self._k
        if req.method not in ("GET", "HEAD"):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        path = "/" + "/".join(p for p in req.path.split("/") if p)
        groups: dict[str, str] = {}
        for kind in KINDS.values():
            if kind.group:
                groups.setdefault(kind.group, kind.version)
        address = [k.V1ServerAddressByClientCIDR(client_cidr="0.0.0.0/0", server_address=f"{self.host}:{self.port}")]
        if path == "/version":
            return self._json(k.VersionInfo(
                major=KUBE_MAJOR, minor=KUBE_MINOR, git_version=f"v{KUBE_MAJOR}.{KUBE_MINOR}.0-ssdns-sandbox",
                git_commit="0000000000000000000000000000000000000000", git_tree_state="clean",
                build_date="2024-12-11T00:00:00Z", go_version="go1.23.4", compiler="gc", platform="linux/amd64"))
        if path == "/api":
            return self._json(k.V1APIVersions(api_version="v1", kind="APIVersions", versions=["v1"],
                                               server_address_by_client_cidrs=address))

        def group_model(name: str, version: str):
            gv = k.V1GroupVersionForDiscovery(group_version=f"{name}/{version}", version=version)
            return k.V1APIGroup(name=name, versions=[gv], preferred_version=gv)

        if path == "/apis":
            return self._json(k.V1APIGroupList(api_version="v1", kind="APIGroupList",
                                               groups=[group_model(g, v) for g, v in groups.items()]))
        parts = path.split("/")[1:]
        if parts[0] == "apis" and len(parts) == 2 and parts[1] in groups:
            g = group_model(parts[1], groups[parts[1]])
            g.api_version, g.kind = "v1", "APIGroup"
            return self._json(g)
        gv = "v1" if parts == ["api", "v1"] else ("/".join(parts[1:3]) if parts[0] == "apis" and len(parts) == 3 else None)
        kinds = [kd for kd in KINDS.values() if kd.group_version == gv]
        if gv is None or not kinds:
            raise _not_found_path()
        resources = []
        for kd in kinds:
            resources.append(k.V1APIResource(name=kd.plural, singular_name=kd.singular, namespaced=True,
                                              kind=kd.kind, verbs=list(kd.verbs), short_names=list(kd.short_names) or None))
            if kd.plural in STATUS_SUBRESOURCE:
                resources.append(k.V1APIResource(name=f"{kd.plural}/status", singular_name="", namespaced=True,
                                                  kind=kd.kind, verbs=["get"]))
            if kd.plural == "statefulsets":
                resources.append(k.V1APIResource(name="statefulsets/scale", singular_name="", namespaced=True,
                                                  group="autoscaling", version="v1", kind="Scale",
                                                  verbs=list(SCALE_VERBS)))
        return self._json(k.V1APIResourceList(api_version="v1", kind="APIResourceList", group_version=gv,
                                              resources=resources))

    # --- reads ----------------------------------------------------------------------------

    def _objects(self, kind: Kind, namespace: str | None) -> list:
        """(name, world object) of one kind, in a namespace (None: every namespace): the world's, then
        its neighbours' (wrapped in Foreign, rendered by their own Models)."""
        w = self.world
        if namespace == DNS_NAMESPACE and kind.plural == "endpointslices" and namespace != w.namespace:
            return [(w.dns_slice.name, w.dns_slice)]  # the cluster DNS's replicas (replicas.py)
        out = self._objects_of(w, kind, namespace)
        for n in w.neighbours:
            out += [(name, Foreign(n, obj)) for name, obj in self._objects_of(n, kind, namespace)]
        return out

    def _objects_of(self, w: World, kind: Kind, namespace: str | None) -> list:
        if namespace is not None and namespace != w.namespace:
            return []
        if kind.plural == "pods":
            return [(p.name, p) for p in w.pods]
        if kind.plural == "services":
            return [(w.svc.name, w.svc)] if w.svc is not None else []
        if kind.plural == "persistentvolumeclaims":
            return [(c.name, c) for c in w.pvcs]
        if kind.plural == "endpoints":
            return [(w.svc.name, w.svc)] if w.svc is not None else []
        if kind.plural == "configmaps":
            return sorted(w.configmaps.items())
        if kind.plural == "statefulsets":
            return [] if w.sts_deleted else [(w.statefulset, w.sts)]
        if kind.plural == "endpointslices":
            return [(ident.name, (ident, eps)) for ident, eps in endpoint_slices(w)]
        return []

    def _find(self, kind: Kind, namespace: str | None, name: str | None):
        if namespace is None or name is None:
            raise _not_found_path()
        for n, obj in self._objects(kind, namespace):
            if n == name:
                return obj
        qualified = f"{kind.plural}.{kind.group}" if kind.group else kind.plural
        raise ApiError(404, "NotFound", f'{qualified} "{name}" not found', name=name, group=kind.group,
                       kind=kind.plural)

    def _labels(self, kind: Kind, obj) -> dict[str, str] | None:
        """The labels an object will be rendered with, without rendering it (pods, claims, slices); None:
        render to know."""
        models = self.models
        if isinstance(obj, Foreign):
            models, obj = self._models_for(obj.world), obj.obj
        if kind.plural == "pods":
            return {**obj.labels, REVISION_LABEL: obj.revision or models.revision()}
        if kind.plural == "persistentvolumeclaims":
            return dict(obj.labels)
        if kind.plural == "endpointslices" and obj is not models.world.dns_slice:  # kube-dns's: render to know
            return models.slice_labels() if models.world.svc is not None else {}
        return None

    def _models_for(self, world: World) -> Models:
        if id(world) not in self._neighbour_models:
            self._neighbour_models[id(world)] = Models(world, self._k)
        return self._neighbour_models[id(world)]

    def _render(self, kind: Kind, obj, *, in_list: bool = False):
        models = self.models
        if isinstance(obj, Foreign):
            models, obj = self._models_for(obj.world), obj.obj
        model = getattr(models, kind.plural)(obj)
        if in_list:  # a real server's list items carry no apiVersion/kind
            model.api_version = model.kind = None
        return model

    def _list(self, kind: Kind, req: ApiRequest) -> web.Response:
        k = self._k
        labels, fields = _selectors(kind, req)
        items = []
        for _, obj in self._objects(kind, req.namespace):
            raw = self._labels(kind, obj)
            if raw is not None and not labels(raw):  # not selected: skip rendering it (hundreds of StatefulSets)
                continue
            model = self._render(kind, obj, in_list=True)
            if not labels(model.metadata.labels):
                continue
            if req.query.get("fieldSelector") and not fields(self._serializer.sanitize_for_serialization(model)):
                continue
            items.append(model)
        rv = str(self.world.version)
        meta = k.V1ListMeta(resource_version=rv)
        limit = _int(req.query.get("limit"), "limit")
        offset = _decode_continue(req.query.get("continue"))
        if offset or limit:
            end = offset + limit if limit else len(items)
            if end < len(items):
                meta.var_continue = _encode_continue(end, rv)
                meta.remaining_item_count = len(items) - end
            items = items[offset:end]
        list_class = getattr(k, f"V1{kind.kind}List")
        return self._json(list_class(api_version=kind.group_version, kind=f"{kind.kind}List", metadata=meta,
                                     items=items))

    # --- watch ----------------------------------------------------------------------------

    async def _watch(self, request: web.Request, kind: Kind, req: ApiRequest) -> web.StreamResponse:
        """Newline-delimited JSON events, as a real server streams them; bounded by timeoutSeconds
        (default WATCH_DEFAULT, at most WATCH_MAX) and by the sandbox's stop."""
        w = self.world
        labels, fields = _selectors(kind, req)
        timeout = min(_int(req.query.get("timeoutSeconds"), "timeoutSeconds") or WATCH_DEFAULT, WATCH_MAX)
        rv_text = req.query.get("resourceVersion") or ""
        since = None
        if rv_text not in ("", "0"):
            try:
                since = int(rv_text)
            except ValueError:
                raise ApiError(400, "BadRequest", f'invalid resourceVersion "{rv_text}"') from None
        deadline = time.monotonic() + timeout
        wake = asyncio.Event()
        self._watchers.add(wake)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                       "Cache-Control": "no-cache, private"})
        try:
            await resp.prepare(request)
            req.status = resp.status  # answered now: a client can see the stream end before _handle records it

            def selected(model) -> bool:
                if not labels(model.metadata.labels):
                    return False
                return not req.query.get("fieldSelector") or fields(self._serializer.sanitize_for_serialization(model))

            async def send(event_type: str, obj) -> None:
                model = self._render(kind, obj)
                if selected(model):
                    body = {"type": event_type, "object": self._serializer.sanitize_for_serialization(model)}
                    await resp.write(json.dumps(body, separators=(",", ":")).encode() + b"\n")

            if since is None:  # list, then watch: what exists now, then what changes
                since = w.version
                for _, obj in self._objects(kind, req.namespace):
                    await send("ADDED", obj)
            elif since < w.compacted:
                await self._gone(resp, since, w.compacted + 1)
                return resp
            # Faults for ssdns watch: a stream cut without its last chunk, or ended by a 410 Gone.
            started = time.monotonic()
            drop_at = started + w.watch_drop_after if w.watch_drop_after > 0 else None
            expire_at = started + w.watch_expire_after if w.watch_expire_after > 0 else None
            for _ in range(int(timeout / WATCH_TICK) + 2 * WATCH_MAX):  # bounded by the deadline below
                if self._stopping:
                    break
                wake.clear()
                events, since = self._events_after(since, kind, req.namespace)
                for ev in events:
                    await send(ev.type, ev.obj)
                now = time.monotonic()
                if expire_at is not None and now >= expire_at:
                    w.compacted = max(w.compacted, since)  # what this stream saw is gone from the watch cache
                    await self._gone(resp, since, since + 1)
                    break
                if drop_at is not None and now >= drop_at:
                    if request.transport is not None:
                        request.transport.close()
                    return resp
                left = min(t for t in (deadline, drop_at, expire_at) if t is not None) - now
                if left <= 0 or self._stopping:
                    break
                try:
                    await asyncio.wait_for(wake.wait(), min(left, WATCH_TICK))
                except asyncio.TimeoutError:
                    pass
            await resp.write_eof()
        except ConnectionError:
            pass  # the client went away
        finally:
            self._watchers.discard(wake)
        return resp

    async def _gone(self, resp: web.StreamResponse, since: int, oldest: int) -> None:
        """The ERROR event a real server sends for a resourceVersion out of its watch cache."""
        status = self._k.V1Status(
            api_version="v1", kind="Status", metadata=self._k.V1ListMeta(), status="Failure",
            message=f"too old resource version: {since} ({oldest})", reason="Expired", code=410)
        line = {"type": "ERROR", "object": self._serializer.sanitize_for_serialization(status)}
        await resp.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")

    def _events_after(self, since: int, kind: Kind, namespace: str | None) -> tuple[list[Event], int]:
        """The journal's events of `kind` after resourceVersion `since`, oldest first; and the new `since`."""
        w = self.world
        if namespace is not None and namespace != w.namespace:
            return [], w.version
        out = []
        for ev in reversed(w.events):
            if ev.rv <= since:
                break
            if ev.kind == kind.kind:
                out.append(ev)
        out.reverse()
        return out, max(since, w.version)

    # --- writes through the controller (pods, scale) --------------------------------------

    def _need_controller(self):
        if self.controller is None:
            raise ApiError(405, "MethodNotAllowed", "the sandbox runs without its StatefulSet controller: "
                           "pods cannot be deleted nor StatefulSets scaled")
        return self.controller

    async def _delete_pod(self, request: web.Request, req: ApiRequest) -> web.Response:
        controller = self._need_controller()
        body = await self._body(request, optional=True)
        if body.get("kind") not in (None, "DeleteOptions"):
            raise ApiError(400, "BadRequest", f"the body of the request was of kind {body.get('kind')}, "
                           "expected DeleteOptions")
        pods = KINDS["pods"]
        pod = _own(self._find(pods, req.namespace, req.name))
        pre = body.get("preconditions") or {}
        if not isinstance(pre, dict):
            raise ApiError(400, "BadRequest", "preconditions must be an object")
        # the API server's rest.BeforeDelete: checked before anything changes
        if pre.get("uid") is not None and pre["uid"] != pod.uid:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on Pod "{pod.name}": the UID in the '
                           f'precondition ({pre["uid"]}) does not match the UID in record ({pod.uid}). The object '
                           "might have been deleted and then recreated", name=pod.name, kind="Pod")
        if pre.get("resourceVersion") is not None and str(pre["resourceVersion"]) != str(pod.resource_version):
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on Pod "{pod.name}": the ResourceVersion '
                           f'in the precondition ({pre["resourceVersion"]}) does not match the ResourceVersion in '
                           f"record ({pod.resource_version}). The object might have been modified",
                           name=pod.name, kind="Pod")
        grace = body.get("gracePeriodSeconds", req.query.get("gracePeriodSeconds"))
        if grace is not None:
            try:
                grace = float(grace)
            except (TypeError, ValueError):
                raise ApiError(400, "BadRequest", f"invalid gracePeriodSeconds {grace!r}") from None
        if body.get("dryRun") or req.query.get("dryRun"):
            raise ApiError(400, "BadRequest", "the sandbox does not support dryRun")
        pod = controller.delete_pod(pod.name, grace)
        return self._json(self._render(pods, pod))

    async def _patch_statefulset(self, request: web.Request, req: ApiRequest) -> web.Response:
        controller = self._need_controller()
        sts_kind = KINDS["statefulsets"]
        _own(self._find(sts_kind, req.namespace, req.name))
        replicas = self._patched_replicas(request, await self._patch_body(request), req.name, "StatefulSet.apps",
                                          strict=True)
        if replicas is not None:
            controller.set_replicas(replicas)
        return self._json(self._render(sts_kind, self.world.sts))

    async def _scale(self, request: web.Request, req: ApiRequest) -> web.Response:
        w = self.world
        if req.namespace is None:
            raise _not_found_path()
        _own(self._find(KINDS["statefulsets"], req.namespace, req.name))
        if req.verb == "get":
            return self._json(self.models.scale())
        controller = self._need_controller()
        if req.verb == "update":
            body = await self._body(request)
            meta = body.get("metadata") or {}
            if body.get("kind") not in (None, "Scale"):
                raise ApiError(400, "BadRequest", f"the body of the request was of kind {body.get('kind')}, "
                               "expected Scale")
            if meta.get("name") not in (None, req.name):
                raise ApiError(400, "BadRequest", f"the name of the object ({meta.get('name')}) does not match "
                               f"the name on the URL ({req.name})")
            rv = meta.get("resourceVersion")
            if rv not in (None, "") and str(rv) != str(w.sts.resource_version):
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on statefulsets.apps "{req.name}": '
                               "the object has been modified; please apply your changes to the latest version "
                               "and try again", name=req.name, group="apps", kind="statefulsets")
            replicas = (body.get("spec") or {}).get("replicas", 0)
            self._check_replicas(replicas, req.name, "Scale.autoscaling")
        else:
            replicas = self._patched_replicas(request, await self._patch_body(request), req.name,
                                              "Scale.autoscaling", strict=False)
        if replicas is not None:
            controller.set_replicas(replicas)
        return self._json(self.models.scale())

    async def _patch_body(self, request: web.Request):
        ctype = request.content_type
        if ctype not in PATCH_TYPES:
            raise ApiError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - accepted '
                           f'media types include: {", ".join(PATCH_TYPES)}' + (
                               " (the sandbox does not do server-side apply)" if ctype == "application/apply-patch+yaml"
                               else ""))
        try:
            body = json.loads(await request.text())
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"the body of the request was in an unknown format: {exc}") from None
        if ctype == "application/json-patch+json" and not isinstance(body, list):
            raise ApiError(400, "BadRequest", "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
        if ctype != "application/json-patch+json" and not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request must be a JSON object")
        return body

    def _patched_replicas(self, request: web.Request, body, name: str | None, what: str, *,
                          strict: bool) -> int | None:
        """spec.replicas from a merge/strategic patch ({"spec": {"replicas": N}}) or a JSON patch
        ([{"op": "replace", "path": "/spec/replicas", "value": N}]); None when it leaves it alone.
        strict: any other spec change is refused (the sandbox changes nothing else)."""
        replicas = None
        if isinstance(body, list):
            for op in body:
                if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "test") or "path" not in op:
                    raise ApiError(422, "Invalid", f"{what} {name!r}: the sandbox's JSON patches only replace or "
                                   "test /spec/replicas", name=name)
                if op["path"] != "/spec/replicas":
                    if strict or op["path"].startswith("/spec/"):
                        raise ApiError(422, "Invalid", f"{what} {name!r}: the sandbox only patches /spec/replicas, "
                                       f"not {op['path']}", name=name)
                    continue
                if op["op"] == "test":
                    if op.get("value") != self.world.sts.replicas:
                        raise ApiError(422, "Invalid", "testing value /spec/replicas failed", name=name)
                    continue
                replicas = op.get("value")
        else:
            spec = body.get("spec")
            if spec is not None and not isinstance(spec, dict):
                raise ApiError(400, "BadRequest", "spec must be an object")
            spec = spec or {}
            others = sorted(k for k in spec if k != "replicas")
            if strict and others:
                raise ApiError(422, "Invalid", f'{what} "{name}" is invalid: the sandbox only patches spec.replicas, '
                               f"not spec.{', spec.'.join(others)}", name=name)
            if "replicas" in spec:
                replicas = spec["replicas"]
        if replicas is not None:
            self._check_replicas(replicas, name, what)
        return replicas

    @staticmethod
    def _check_replicas(replicas, name: str | None, what: str) -> None:
        if isinstance(replicas, bool) or not isinstance(replicas, int):
            raise ApiError(400, "BadRequest", f"json: cannot unmarshal {type(replicas).__name__} into Go struct "
                           "field Spec.spec.replicas of type int32")
        if replicas < 0:
            raise ApiError(422, "Invalid", f'{what} "{name}" is invalid: spec.replicas: Invalid value: {replicas}: '
                           "must be greater than or equal to 0", name=name)

    # --- writes (ConfigMaps) --------------------------------------------------------------

    async def _write_configmap(self, request: web.Request, req: ApiRequest) -> web.Response:
        w = self.world
        if req.verb == "delete":
            if req.namespace != w.namespace or req.name is None:
                raise self._not_found(req.name)
            try:
                cm = w.delete_configmap(req.name)
            except NotFound:
                raise self._not_found(req.name) from None
            k = self._k
            return self._json(k.V1Status(api_version="v1", kind="Status", metadata=k.V1ListMeta(), status="Success",
                                         details=k.V1StatusDetails(name=cm.name, kind="configmaps", uid=cm.uid)))
        if req.verb not in ("create", "update"):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        body = await self._body(request)
        meta = body.get("metadata") or {}
        if not isinstance(meta, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        name = meta.get("name") or ""
        if body.get("kind") not in (None, "ConfigMap") or body.get("apiVersion") not in (None, "v1"):
            raise ApiError(400, "BadRequest", f"the API version in the data ({body.get('apiVersion')}) does not "
                           f"match the expected API version (v1)")
        if meta.get("namespace") not in (None, "", req.namespace):
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the namespace "
                           "sent on the request")
        if req.verb == "update" and name != req.name:
            raise ApiError(400, "BadRequest", f"the name of the object ({name}) does not match the name on the URL "
                           f"({req.name})")
        if req.namespace != w.namespace:
            raise ApiError(404, "NotFound", f'namespaces "{req.namespace}" not found', name=req.namespace,
                           kind="namespaces")
        data, binary = body.get("data") or {}, body.get("binaryData") or {}
        self._validate_configmap(name, meta, data, binary)
        rv_text = meta.get("resourceVersion") or None
        expected = None
        if rv_text is not None:
            try:
                expected = int(rv_text)
            except (TypeError, ValueError):
                raise ApiError(400, "BadRequest", f"invalid resourceVersion {rv_text!r}") from None
        cm = SandboxConfigMap(name, data=dict(data), binary_data=dict(binary), labels=dict(meta.get("labels") or {}),
                              annotations=dict(meta.get("annotations") or {}))
        try:
            if req.verb == "create":
                if rv_text is not None:
                    raise ApiError(500, "InternalError", "Internal error occurred: resourceVersion should not be "
                                   "set on objects to be created")
                w.create_configmap(cm)
                return self._json(self._render(KINDS["configmaps"], cm), 201)
            w.replace_configmap(cm, expected)
            return self._json(self._render(KINDS["configmaps"], cm))
        except AlreadyExists:
            raise ApiError(409, "AlreadyExists", f'configmaps "{name}" already exists', name=name,
                           kind="configmaps") from None
        except Conflict:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on configmaps "{name}": the object has '
                           "been modified; please apply your changes to the latest version and try again",
                           name=name, kind="configmaps") from None
        except NotFound:
            raise self._not_found(name) from None
        except ObjectError as exc:  # pragma: no cover - every ObjectError is handled above
            raise ApiError(400, "BadRequest", str(exc)) from None

    @staticmethod
    def _not_found(name: str | None) -> ApiError:
        return ApiError(404, "NotFound", f'configmaps "{name}" not found', name=name, kind="configmaps")

    @staticmethod
    async def _body(request: web.Request, *, optional: bool = False) -> dict:
        text = await request.text()
        if optional and not text.strip():
            return {}
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"the body of the request was in an unknown format: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request must be a JSON object")
        return body

    @staticmethod
    def _validate_configmap(name: str, meta: dict, data, binary) -> None:
        def invalid(detail: str) -> ApiError:
            return ApiError(422, "Invalid", f'ConfigMap "{name}" is invalid: {detail}', name=name, kind="ConfigMap")

        if not name:
            raise invalid("metadata.name: Required value: name or generateName is required")
        if len(name) > 253 or not _SUBDOMAIN.fullmatch(name):
            raise invalid(f'metadata.name: Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of '
                          "lower case alphanumeric characters, '-' or '.', and must start and end with an "
                          "alphanumeric character")
        for field, values in (("data", data), ("binaryData", binary)):
            if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
                raise ApiError(400, "BadRequest", f"json: cannot unmarshal into Go struct field ConfigMap.{field} "
                               "of type map[string]string")
            for key in values:
                if not _DATA_KEY.fullmatch(key) or len(key) > 253:
                    raise invalid(f'{field}[{key}]: Invalid value: "{key}": a valid config key must consist of '
                                  "alphanumeric characters, '-', '_' or '.'")
        for field in ("labels", "annotations"):
            values = meta.get(field)
            if values is not None and (not isinstance(values, dict)
                                       or not all(isinstance(v, str) for v in values.values())):
                raise ApiError(400, "BadRequest", f"json: cannot unmarshal into Go struct field "
                               f"ObjectMeta.metadata.{field} of type map[string]string")
        size = sum(len(k) + len(v.encode()) for k, v in data.items()) + sum(len(k) + len(v) for k, v in binary.items())
        if size > CONFIGMAP_MAX:
            raise invalid(f"[]: Too long: must have at most {CONFIGMAP_MAX} bytes")


def _selectors(kind: Kind, req: ApiRequest):
    """The request's label and field selectors as predicates; a malformed one is a 400, as on a real server."""
    try:
        return (parse_label_selector(req.query.get("labelSelector", "")),
                parse_field_selector(req.query.get("fieldSelector", ""), kind.fields or COMMON_FIELDS))
    except ValueError as exc:
        raise ApiError(400, "BadRequest", str(exc)) from None


def _own(obj):
    """A world object the sandbox may change: its neighbours' are read-only."""
    if isinstance(obj, Foreign):
        raise ApiError(405, "MethodNotAllowed", "the sandbox's other StatefulSets are read-only: only the first "
                       "StatefulSet's pods can be deleted or scaled")
    return obj


def _not_found_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def _not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


def _int(text: str | None, what: str) -> int:
    if not text:
        return 0
    try:
        n = int(text)
    except ValueError:
        raise ApiError(400, "BadRequest", f"invalid {what} {text!r}") from None
    return max(n, 0)


def _encode_continue(offset: int, rv: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"v": "ssdns/v1", "rv": rv, "offset": offset}).encode()).decode()


def _decode_continue(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))["offset"])
    except (ValueError, KeyError, TypeError):
        raise ApiError(400, "BadRequest", "continue key is not valid: the token was not issued by this server") from None


def kubeconfig_text(url: str, namespace: str, *, context: str = "ssdns-sandbox", token: str = "ssdns-sandbox-token") -> str:
    """A kubeconfig (YAML; strings JSON-quoted) for a plain-HTTP server with a dummy bearer token."""
    q = json.dumps
    return (f"apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: {q(context)}\n  cluster:\n    server: {q(url)}\n"
            f"contexts:\n- name: {q(context)}\n  context:\n    cluster: {q(context)}\n    namespace: {q(namespace)}\n"
            f"    user: {q(context)}\n"
            f"current-context: {q(context)}\n"
            f"users:\n- name: {q(context)}\n  user:\n    token: {q(token)}\n"
            f"preferences: {{}}\n")
