"""Read the StatefulSet, its Service, pods, EndpointSlices and PVCs through the official client.

The kubernetes package costs 0.3-0.9 s to import, so only this module imports it, and only
when the API is used. Every call has a timeout; reads run in threads, concurrently.
"""

from __future__ import annotations

import asyncio
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


def selector_string(selector) -> str:
    """A V1LabelSelector as the label_selector string list calls take."""
    parts = [f"{k}={v}" for k, v in sorted((selector.match_labels or {}).items())]
    for expr in selector.match_expressions or []:
        op = expr.operator
        if op in ("In", "NotIn"):
            parts.append(f"{expr.key} {op.lower()} ({','.join(expr.values or [])})")
        elif op == "Exists":
            parts.append(expr.key)
        elif op == "DoesNotExist":
            parts.append(f"!{expr.key}")
    return ",".join(parts)


async def load_facts(api, namespace: str, statefulset: str | None, service: str | None) -> ClusterFacts:
    """Read what the API says. A refused read becomes an ApiProblem; a run goes on without it."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    start = time.monotonic()
    core, apps, disc = client.CoreV1Api(api), client.AppsV1Api(api), client.DiscoveryV1Api(api)
    facts = ClusterFacts(namespace, None, None)

    async def call(verb: str, resource: str, fn, *args, **kw):
        try:
            return await asyncio.to_thread(fn, *args, _request_timeout=REQUEST_TIMEOUT, **kw)
        except ApiException as exc:
            facts.problems.append(ApiProblem(verb, resource, exc.status, _reason(exc)))
        except Exception as exc:  # urllib3 connection errors, timeouts: the API is unreachable
            facts.problems.append(ApiProblem(verb, resource, None, f"{type(exc).__name__}: {exc}"[:300]))
        return None

    sts = None
    if statefulset:
        sts = await call("get", "statefulsets", apps.read_namespaced_stateful_set, statefulset, namespace)
        if sts is not None:
            facts.statefulset = StatefulSetFacts(
                name=sts.metadata.name, replicas=sts.spec.replicas if sts.spec.replicas is not None else 1,
                service_name=sts.spec.service_name or "", selector=selector_string(sts.spec.selector),
                pod_management_policy=sts.spec.pod_management_policy or "OrderedReady",
                claim_templates=[t.metadata.name for t in sts.spec.volume_claim_templates or []],
                ready_replicas=(sts.status.ready_replicas or 0) if sts.status else 0,
                first_ordinal=(sts.spec.ordinals.start or 0) if sts.spec.ordinals else 0)
    service = service or (facts.statefulset.service_name if facts.statefulset else None)
    selector = facts.statefulset.selector if facts.statefulset else None

    jobs = []
    if service:
        jobs.append(call("get", "services", core.read_namespaced_service, service, namespace))
        jobs.append(call("list", "endpointslices", disc.list_namespaced_endpoint_slice, namespace,
                         label_selector=f"kubernetes.io/service-name={service}"))
    if selector is not None:
        jobs.append(call("list", "pods", core.list_namespaced_pod, namespace, label_selector=selector))
        if facts.statefulset.claim_templates:
            jobs.append(call("list", "persistentvolumeclaims", core.list_namespaced_persistent_volume_claim,
                             namespace, label_selector=selector))
    results = await asyncio.gather(*jobs)
    it = iter(results)
    if service:
        svc, slices = next(it), next(it)
        missing = any(p.resource == "services" and p.status == 404 for p in facts.problems)
        if missing:
            facts.problems = [p for p in facts.problems if not (p.resource == "services" and p.status == 404)]
            facts.service = ServiceFacts(service, exists=False)
        elif svc is not None:
            facts.service = _service(svc)
        for s in (slices.items if slices is not None else []):
            facts.endpoints += [_endpoint(e) for e in s.endpoints or []]
            for port in s.ports or []:
                entry = (port.name or None, port.port, port.protocol or "TCP")
                if port.port is not None and entry not in facts.endpoint_ports:
                    facts.endpoint_ports.append(entry)
    if selector is not None:
        pods = next(it)
        for p in (pods.items if pods is not None else []):
            facts.pods[p.metadata.name] = _pod(p)
        if facts.statefulset.claim_templates:
            pvcs = next(it)
            for c in (pvcs.items if pvcs is not None else []):
                facts.pvcs[c.metadata.name] = PvcFacts(c.metadata.name, c.status.phase if c.status else None,
                                                       c.spec.volume_name if c.spec else None)
    facts.elapsed_ms = (time.monotonic() - start) * 1000
    return facts


def _reason(exc) -> str:
    import json

    try:
        return json.loads(exc.body).get("message") or exc.reason
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


def _service(svc) -> ServiceFacts:
    spec = svc.spec
    return ServiceFacts(
        name=svc.metadata.name, headless=spec.cluster_ip in (None, "None"), cluster_ip=spec.cluster_ip,
        publish_not_ready=bool(spec.publish_not_ready_addresses),
        ports=[(p.name, p.port, p.protocol or "TCP") for p in spec.ports or []],
        ip_families=list(spec.ip_families or []))


def _pod(p) -> PodFacts:
    status = p.status
    ips = [x.ip for x in (status.pod_ips or [])] if status else []
    if not ips and status and status.pod_ip:
        ips = [status.pod_ip]
    ready = any(c.type == "Ready" and c.status == "True" for c in (status.conditions or [])) if status else False
    restarts = sum(c.restart_count or 0 for c in (status.container_statuses or [])) if status else 0
    return PodFacts(name=p.metadata.name, uid=p.metadata.uid, ips=ips, ready=ready,
                    terminating=p.metadata.deletion_timestamp is not None,
                    phase=(status.phase if status else None) or "Unknown",
                    node=p.spec.node_name, restarts=restarts, hostname=p.spec.hostname, subdomain=p.spec.subdomain)


def _endpoint(e) -> EndpointFacts:
    c = e.conditions
    # Per the EndpointSlice API, a nil ready/serving means true; a nil terminating means false.
    ready = True if c is None or c.ready is None else c.ready
    serving = ready if c is None or c.serving is None else c.serving
    terminating = bool(c.terminating) if c is not None else False
    pod = e.target_ref.name if e.target_ref is not None and e.target_ref.kind == "Pod" else None
    return EndpointFacts(list(e.addresses or []), e.hostname, ready, serving, terminating, pod)



# Disruptive and polling calls, used only by restart-test and scale-test (the ssdns-disrupt Role).

def read_pod(api, namespace: str, name: str) -> PodFacts | None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        return _pod(client.CoreV1Api(api).read_namespaced_pod(name, namespace, _request_timeout=REQUEST_TIMEOUT))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def delete_pod(api, namespace: str, name: str, uid: str) -> None:
    """Delete exactly the pod we looked at: the UID precondition refuses a replacement of the same name."""
    from kubernetes import client

    client.CoreV1Api(api).delete_namespaced_pod(
        name, namespace, body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid)),
        _request_timeout=REQUEST_TIMEOUT)


def scale(api, namespace: str, statefulset: str, replicas: int) -> None:
    from kubernetes import client

    client.AppsV1Api(api).patch_namespaced_stateful_set_scale(
        statefulset, namespace, {"spec": {"replicas": replicas}}, _request_timeout=REQUEST_TIMEOUT)


def list_pods(api, namespace: str, selector: str) -> dict[str, PodFacts]:
    from kubernetes import client

    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector,
                                                     _request_timeout=REQUEST_TIMEOUT)
    return {p.metadata.name: _pod(p) for p in pods.items}


def list_pvcs(api, namespace: str, selector: str) -> dict[str, PvcFacts]:
    from kubernetes import client

    pvcs = client.CoreV1Api(api).list_namespaced_persistent_volume_claim(
        namespace, label_selector=selector, _request_timeout=REQUEST_TIMEOUT)
    return {c.metadata.name: PvcFacts(c.metadata.name, c.status.phase if c.status else None,
                                      c.spec.volume_name if c.spec else None) for c in pvcs.items}


def watch_pods(api, namespace: str, selector: str, seconds: int, on_event, stop) -> None:
    """Stream pod events (blocking; run it in a thread) until `stop` is set or `seconds` pass.
    on_event(type, PodFacts) is called for each. The watch is renewed every second from the last
    resourceVersion, so a set `stop` is noticed within a second even when no event arrives."""
    from kubernetes import client, watch

    core = client.CoreV1Api(api)
    deadline = time.monotonic() + seconds
    version = None
    for _ in range(seconds + 1):  # one short watch per second, bounded
        if stop.is_set() or time.monotonic() >= deadline:
            return
        w = watch.Watch()
        kw = {"resource_version": version} if version else {}
        for ev in w.stream(core.list_namespaced_pod, namespace, label_selector=selector, timeout_seconds=1,
                           _request_timeout=(3.0, 6.0), **kw):
            obj = ev["object"]
            version = obj.metadata.resource_version or version
            on_event(ev["type"], _pod(obj))
            if stop.is_set():
                w.stop()
                return
