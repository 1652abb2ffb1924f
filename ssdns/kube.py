"""Read the StatefulSet, its Service, pods, EndpointSlices and PVCs through the official client.

The kubernetes package costs 0.35 s to import (its ApiClient and config loaders) and 0.6 s more for
the generated API classes and models, so only this module imports it, only when the API is used,
and it calls the API through ApiClient with plain JSON. Every call has a timeout; reads run in
threads, concurrently.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from ssdns.errors import ApiUnavailable
from ssdns.facts import (ApiProblem, ClusterFacts, EndpointFacts, PodFacts, PvcFacts, ServiceFacts,
                         StatefulSetFacts)
from ssdns.target import ApiOptions

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
REQUEST_TIMEOUT = (3.0, 5.0)  # (connect, read) seconds per API call


def credentials_available(opts: ApiOptions) -> bool:
    if opts.kubeconfig or opts.context:
        return True
    if os.environ.get("KUBERNETES_SERVICE_HOST") and (SA_DIR / "token").exists():
        return True
    paths = os.environ.get("KUBECONFIG", "").split(os.pathsep) if os.environ.get("KUBECONFIG") else []
    return any(Path(p).expanduser().exists() for p in [*paths, "~/.kube/config"] if p)


def api_client(opts: ApiOptions):
    """An ApiClient from the in-cluster service account, else the kubeconfig (--kubeconfig, --context)."""
    try:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException
    except ImportError:
        raise ApiUnavailable("the kubernetes client is not installed: pip install 'ssdns[kube]'") from None
    try:
        if not (opts.kubeconfig or opts.context) and os.environ.get("KUBERNETES_SERVICE_HOST"):
            cfg = client.Configuration()
            config.load_incluster_config(client_configuration=cfg)
            api = client.ApiClient(cfg)
        else:
            api = config.new_client_from_config(config_file=opts.kubeconfig, context=opts.context,
                                                persist_config=False)
    except (ConfigException, OSError, ValueError, TypeError) as exc:
        where = opts.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise ApiUnavailable(f"cannot load Kubernetes credentials ({where}): {exc}") from None
    api.configuration.retries = 1  # urllib3 would otherwise retry 3 times per call, past our deadline
    return api


def request(api, method: str, path: str, params: dict | None = None, body: dict | None = None,
            content_type: str = "application/json", timeout=REQUEST_TIMEOUT):
    """One API call as JSON through the official client's ApiClient (its auth, TLS and config),
    without the generated API classes and models: those cost ~0.6 s and 25 MiB to import, more
    than the whole DNS check. Raises the client's ApiException for a non-2xx answer."""
    from kubernetes.client.exceptions import ApiException

    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = content_type
    method, url, headers, body, _ = api.param_serialize(
        method, path, query_params=list((params or {}).items()), header_params=headers, body=body,
        auth_settings=["BearerToken"])
    resp = api.call_api(method, url, header_params=headers, body=body, _request_timeout=timeout)
    resp.read()
    if not 200 <= resp.status < 300:
        raise ApiException(http_resp=resp)
    return json.loads(resp.data) if resp.data else {}


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


async def load_facts(api, namespace: str, statefulset: str | None, service: str | None) -> ClusterFacts:
    """Read what the API says. A refused read becomes an ApiProblem; a run goes on without it."""
    from kubernetes.client.exceptions import ApiException

    start = time.monotonic()
    facts = ClusterFacts(namespace, None, None)

    async def call(verb: str, resource: str, path: str, params: dict | None = None):
        try:
            return await asyncio.to_thread(request, api, "GET", path, params)
        except ApiException as exc:
            facts.problems.append(ApiProblem(verb, resource, exc.status, _reason(exc)))
        except Exception as exc:  # noqa: BLE001 - urllib3 connection errors, timeouts: the API is unreachable
            facts.problems.append(ApiProblem(verb, resource, None, f"{type(exc).__name__}: {exc}"[:300]))
        return None

    if statefulset:
        sts = await call("get", "statefulsets", f"{_ns(namespace, 'apps/v1')}/statefulsets/{statefulset}")
        if sts is not None:
            facts.statefulset = _statefulset(sts)
    service = service or (facts.statefulset.service_name if facts.statefulset else None)
    selector = facts.statefulset.selector if facts.statefulset else None

    jobs = []
    if service:
        jobs.append(call("get", "services", f"{_ns(namespace)}/services/{service}"))
        jobs.append(call("list", "endpointslices", f"{_ns(namespace, 'discovery.k8s.io/v1')}/endpointslices",
                         {"labelSelector": f"kubernetes.io/service-name={service}"}))
    if selector is not None:
        jobs.append(call("list", "pods", f"{_ns(namespace)}/pods", {"labelSelector": selector}))
        if facts.statefulset is not None and facts.statefulset.claim_templates:
            jobs.append(call("list", "persistentvolumeclaims", f"{_ns(namespace)}/persistentvolumeclaims",
                             {"labelSelector": selector}))
    it = iter(await asyncio.gather(*jobs))
    if service:
        svc, slices = next(it), next(it)
        missing = any(p.resource == "services" and p.status == 404 for p in facts.problems)
        if missing:
            facts.problems = [p for p in facts.problems if not (p.resource == "services" and p.status == 404)]
            facts.service = ServiceFacts(service, exists=False)
        elif svc is not None:
            facts.service = _service(svc)
        for s in (slices or {}).get("items") or []:
            facts.endpoints += [_endpoint(e) for e in s.get("endpoints") or []]
            for port in s.get("ports") or []:
                entry = (port.get("name") or None, port.get("port"), port.get("protocol") or "TCP")
                if entry[1] is not None and entry not in facts.endpoint_ports:
                    facts.endpoint_ports.append(entry)
    if selector is not None:
        for p in (next(it) or {}).get("items") or []:
            pod = _pod(p)
            facts.pods[pod.name] = pod
        if facts.statefulset is not None and facts.statefulset.claim_templates:
            facts.pvcs = {c.name: c for c in map(_pvc, (next(it) or {}).get("items") or [])}
    facts.elapsed_ms = (time.monotonic() - start) * 1000
    return facts


def _reason(exc) -> str:
    try:
        return json.loads(exc.body).get("message") or exc.reason
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


# Plain data from the API's JSON (the field names of the official models, in the API's camelCase).

def _statefulset(d: dict) -> StatefulSetFacts:
    spec, status = d.get("spec") or {}, d.get("status") or {}
    return StatefulSetFacts(
        name=d["metadata"]["name"], replicas=spec["replicas"] if spec.get("replicas") is not None else 1,
        service_name=spec.get("serviceName") or "", selector=selector_string(spec.get("selector")),
        pod_management_policy=spec.get("podManagementPolicy") or "OrderedReady",
        claim_templates=[t["metadata"]["name"] for t in spec.get("volumeClaimTemplates") or []],
        ready_replicas=status.get("readyReplicas") or 0,
        first_ordinal=(spec.get("ordinals") or {}).get("start") or 0)


def _service(d: dict) -> ServiceFacts:
    spec = d.get("spec") or {}
    return ServiceFacts(
        name=d["metadata"]["name"], headless=spec.get("clusterIP") in (None, "None"),
        cluster_ip=spec.get("clusterIP"), publish_not_ready=bool(spec.get("publishNotReadyAddresses")),
        ports=[(p.get("name"), p.get("port"), p.get("protocol") or "TCP") for p in spec.get("ports") or []],
        ip_families=list(spec.get("ipFamilies") or []))


def _pod(d: dict) -> PodFacts:
    meta, spec, status = d["metadata"], d.get("spec") or {}, d.get("status") or {}
    ips = [x["ip"] for x in status.get("podIPs") or [] if x.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    restarts = sum(c.get("restartCount") or 0 for c in status.get("containerStatuses") or [])
    return PodFacts(name=meta["name"], uid=meta.get("uid"), ips=ips, ready=ready,
                    terminating=meta.get("deletionTimestamp") is not None, phase=status.get("phase") or "Unknown",
                    node=spec.get("nodeName"), restarts=restarts, hostname=spec.get("hostname"),
                    subdomain=spec.get("subdomain"))


def _endpoint(e: dict) -> EndpointFacts:
    c = e.get("conditions") or {}
    # Per the EndpointSlice API, a nil ready/serving means true; a nil terminating means false.
    ready = True if c.get("ready") is None else c["ready"]
    serving = ready if c.get("serving") is None else c["serving"]
    ref = e.get("targetRef") or {}
    return EndpointFacts(list(e.get("addresses") or []), e.get("hostname"), ready, serving,
                         bool(c.get("terminating")), ref.get("name") if ref.get("kind") == "Pod" else None)


def _pvc(d: dict) -> PvcFacts:
    return PvcFacts(d["metadata"]["name"], (d.get("status") or {}).get("phase"), (d.get("spec") or {}).get("volumeName"))


# Disruptive and polling calls, used only by restart-test and scale-test (the ssdns-disrupt Role).

def read_pod(api, namespace: str, name: str) -> PodFacts | None:
    from kubernetes.client.exceptions import ApiException

    try:
        return _pod(request(api, "GET", f"{_ns(namespace)}/pods/{name}"))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def delete_pod(api, namespace: str, name: str, uid: str) -> None:
    """Delete exactly the pod we looked at: the UID precondition refuses a replacement of the same name."""
    request(api, "DELETE", f"{_ns(namespace)}/pods/{name}",
            body={"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}})


def scale(api, namespace: str, statefulset: str, replicas: int) -> None:
    request(api, "PATCH", f"{_ns(namespace, 'apps/v1')}/statefulsets/{statefulset}/scale",
            body={"spec": {"replicas": replicas}}, content_type="application/merge-patch+json")


def list_pods(api, namespace: str, selector: str) -> dict[str, PodFacts]:
    items = request(api, "GET", f"{_ns(namespace)}/pods", {"labelSelector": selector}).get("items") or []
    return {p.name: p for p in map(_pod, items)}


def list_pvcs(api, namespace: str, selector: str) -> dict[str, PvcFacts]:
    items = request(api, "GET", f"{_ns(namespace)}/persistentvolumeclaims", {"labelSelector": selector})
    return {c.name: c for c in map(_pvc, items.get("items") or [])}


def watch_pods(api, namespace: str, selector: str, seconds: int, on_event, stop) -> None:
    """Stream pod events (blocking; run it in a thread) until `stop` is set or `seconds` pass.
    on_event(type, PodFacts) is called for each. The watch is renewed every second from the last
    resourceVersion, so a set `stop` is noticed within a second even when no event arrives."""
    from kubernetes.client.exceptions import ApiException

    deadline = time.monotonic() + seconds
    version = None
    for _ in range(seconds + 1):  # one short watch per second, bounded
        if stop.is_set() or time.monotonic() >= deadline:
            return
        params = {"watch": "true", "labelSelector": selector, "timeoutSeconds": "1"}
        if version:
            params["resourceVersion"] = version
        method, url, headers, _, _ = api.param_serialize(
            "GET", f"{_ns(namespace)}/pods", query_params=list(params.items()),
            header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
        resp = api.call_api(method, url, header_params=headers, _request_timeout=(3.0, 6.0))
        if resp.status != 200:
            resp.read()
            raise ApiException(http_resp=resp)
        try:
            for line in _lines(resp.response):
                event = json.loads(line)
                if event.get("type") == "ERROR":  # e.g. 410 Gone: start again from now
                    version = None
                    break
                obj = event["object"]
                version = obj["metadata"].get("resourceVersion") or version
                on_event(event["type"], _pod(obj))
                if stop.is_set():
                    return
        finally:
            resp.response.release_conn()


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
