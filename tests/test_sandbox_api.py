"""The sandbox's Kubernetes API, driven by the official client over real loopback sockets.

Every object must parse into the client's models with a real server's fields; label selectors,
404/403/409 must behave as an API server's do; and for every fault, DNS must tell the story
the EndpointSlices tell (or disagree exactly where the fault says).
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

NS = "default"
SVC = "nginx.default.svc.cluster.local."
T = 5  # seconds: every API call and DNS query is bounded


# --- helpers -------------------------------------------------------------------------------


class Api:
    """The official client's three APIs against one sandbox, from its kubeconfig."""

    def __init__(self, sb, tmp_path):
        path = sb.sandbox.write_kubeconfig(tmp_path / "kubeconfig")
        self.api = config.new_client_from_config(config_file=str(path), persist_config=False)
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.disc = client.DiscoveryV1Api(self.api)

    def pods(self, selector: str | None = None, **kw):
        return self.core.list_namespaced_pod(NS, label_selector=selector, _request_timeout=T, **kw)

    def slices(self):
        return self.disc.list_namespaced_endpoint_slice(
            NS, label_selector="kubernetes.io/service-name=nginx", _request_timeout=T).items


@pytest.fixture
def api_for(tmp_path):
    def make(sb) -> Api:
        return Api(sb, tmp_path)
    return make


def status_of(exc: ApiException) -> dict:
    body = json.loads(exc.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == exc.status
    return body


def ask(sb, name: str, rdtype: str) -> tuple[str, set[str]]:
    """(rcode text, answer values) from the sandbox's DNS server."""
    ns = sb.sandbox.nameserver
    q = dns.message.make_query(name, rdtype, use_edns=0, payload=1232)
    resp, _ = dns.query.udp_with_fallback(q, ns.host, timeout=2, port=ns.port)
    values = {rd.to_text() for rr in resp.answer for rd in rr}
    return dns.rcode.to_text(resp.rcode()), values


def http_get(ip: str, port: int) -> str:
    with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=2) as r:
        return r.read().decode()


def dashed(ip: str) -> str:
    return ip.replace(".", "-")


def assert_dns_follows_slices(sb, api: Api) -> None:
    """CoreDNS's rules applied to what the API says, compared with what the sandbox's DNS says."""
    svc = api.core.read_namespaced_service("nginx", NS, _request_timeout=T)
    eps = [e for s in api.slices() for e in s.endpoints or []]
    ready = [e for e in eps if e.conditions.ready]
    if svc.spec.cluster_ip not in (None, "None"):
        assert ask(sb, SVC, "A") == ("NOERROR", {svc.spec.cluster_ip})
        for e in eps:
            assert ask(sb, f"{e.target_ref.name}.{SVC}", "A")[0] == "NXDOMAIN"
        return
    want = {ip for e in ready for ip in e.addresses}
    assert ask(sb, SVC, "A") == (("NOERROR", want) if want else ("NXDOMAIN", set()))
    srv_targets = set()
    for e in eps:
        ip = e.addresses[0]
        pod_name = f"{e.target_ref.name}.{SVC}"
        if e.conditions.ready and e.hostname:
            assert ask(sb, f"{e.hostname}.{SVC}", "A") == ("NOERROR", {ip})
            assert ask(sb, dns.reversename.from_address(ip).to_text(), "PTR") == ("NOERROR", {f"{e.hostname}.{SVC}"})
            srv_targets.add(f"{e.hostname}.{SVC}")
        elif e.conditions.ready:  # no hostname: CoreDNS names it by its dashed IP, and gives no PTR
            assert ask(sb, pod_name, "A")[0] == "NXDOMAIN"
            assert ask(sb, f"{dashed(ip)}.{SVC}", "A") == ("NOERROR", {ip})
            assert ask(sb, dns.reversename.from_address(ip).to_text(), "PTR")[0] == "NXDOMAIN"
            srv_targets.add(f"{dashed(ip)}.{SVC}")
        else:  # not ready: in the slice, nowhere in DNS
            assert ask(sb, pod_name, "A")[0] == "NXDOMAIN"
            assert ip not in ask(sb, SVC, "A")[1]
    _, srv = ask(sb, f"_web._tcp.{SVC}", "SRV")
    assert {v.split()[3] for v in srv} == srv_targets
    assert all(int(v.split()[2]) == svc.spec.ports[0].port for v in srv)


# --- objects as a real API server shapes them -----------------------------------------------


def test_objects_parse_into_the_clients_models(sandbox_factory, api_for):
    sb = sandbox_factory()
    api = api_for(sb)
    w = sb.world
    pods = api.pods("app=nginx")
    assert [p.metadata.name for p in pods.items] == ["web-0", "web-1", "web-2"]
    assert int(pods.metadata.resource_version) >= max(int(p.metadata.resource_version) for p in pods.items)
    sts = api.apps.read_namespaced_stateful_set("web", NS, _request_timeout=T)
    for i, p in enumerate(pods.items):
        uuid.UUID(p.metadata.uid)
        assert p.metadata.resource_version.isdigit() and p.metadata.creation_timestamp is not None
        assert [ip.ip for ip in p.status.pod_ips] == [p.status.pod_ip] == [w.pods[i].ip]
        assert (p.spec.hostname, p.spec.subdomain, p.spec.node_name) == (f"web-{i}", "nginx", f"node-{i % 3}")
        assert p.metadata.labels == {"app": "nginx", "statefulset.kubernetes.io/pod-name": f"web-{i}",
                                     "apps.kubernetes.io/pod-index": str(i),
                                     "controller-revision-hash": sts.status.current_revision}
        assert p.status.phase == "Running" and p.metadata.deletion_timestamp is None
        assert {c.type: c.status for c in p.status.conditions}["Ready"] == "True"
        assert p.status.container_statuses[0].restart_count == 0 and p.status.container_statuses[0].ready
        assert p.metadata.owner_references[0].uid == sts.metadata.uid
        assert p.spec.volumes[0].persistent_volume_claim.claim_name == f"www-web-{i}"
    assert len({p.metadata.uid for p in pods.items}) == 3

    assert (sts.spec.replicas, sts.spec.service_name, sts.spec.pod_management_policy) == (3, "nginx", "OrderedReady")
    assert sts.spec.selector.match_labels == {"app": "nginx"}
    assert [t.metadata.name for t in sts.spec.volume_claim_templates] == ["www"]
    assert (sts.status.replicas, sts.status.ready_replicas) == (3, 3)

    svc = api.core.read_namespaced_service("nginx", NS, _request_timeout=T)
    assert svc.spec.cluster_ip == "None" and not svc.spec.publish_not_ready_addresses
    assert svc.spec.selector == {"app": "nginx"}
    assert [(p.name, p.port, p.protocol) for p in svc.spec.ports] == [("web", w.port, "TCP")]

    [sl] = api.slices()
    assert sl.address_type == "IPv4" and sl.metadata.labels["kubernetes.io/service-name"] == "nginx"
    assert [(p.name, p.port) for p in sl.ports] == [("web", w.port)]
    for e, p in zip(sl.endpoints, pods.items):
        assert e.addresses == [p.status.pod_ip] and e.hostname == p.metadata.name
        assert (e.conditions.ready, e.conditions.serving, e.conditions.terminating) == (True, True, False)
        assert (e.target_ref.kind, e.target_ref.name, e.target_ref.uid) == ("Pod", p.metadata.name, p.metadata.uid)

    pvcs = api.core.list_namespaced_persistent_volume_claim(NS, label_selector="app=nginx", _request_timeout=T)
    assert [c.metadata.name for c in pvcs.items] == ["www-web-0", "www-web-1", "www-web-2"]
    for c in pvcs.items:
        assert c.status.phase == "Bound" and c.spec.volume_name.startswith("pvc-")
        uuid.UUID(c.spec.volume_name[4:])


def test_raw_json_is_a_real_servers(sandbox):
    url = sandbox.sandbox.api_url
    with urllib.request.urlopen(f"{url}/api/v1/namespaces/default/pods", timeout=T) as r:
        assert r.headers["Content-Type"] == "application/json"
        body = json.load(r)
    assert (body["apiVersion"], body["kind"]) == ("v1", "PodList")
    assert body["metadata"]["resourceVersion"].isdigit()
    item = body["items"][0]
    assert "kind" not in item and "apiVersion" not in item  # as a real list's items
    assert item["metadata"]["creationTimestamp"].endswith("Z")
    assert item["status"]["podIPs"] == [{"ip": item["status"]["podIP"]}]
    assert "podIps" not in item["status"] and "pod_ips" not in item["status"]
    with urllib.request.urlopen(f"{url}/apis/apps/v1/namespaces/default/statefulsets/web", timeout=T) as r:
        sts = json.load(r)
    assert (sts["apiVersion"], sts["kind"]) == ("apps/v1", "StatefulSet")
    assert sts["spec"]["serviceName"] == "nginx" and sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "www"
    for path in ("/version", "/api", "/apis"):
        with urllib.request.urlopen(url + path, timeout=T) as r:
            assert r.status == 200 and json.load(r)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{url}/api/v1/namespaces/default/secrets", timeout=T)
    assert err.value.code == 404 and json.load(err.value)["message"] == "the server could not find the requested resource"


def test_label_and_field_selectors_filter(sandbox_factory, api_for):
    api = api_for(sandbox_factory())

    def names(**kw):
        return [p.metadata.name for p in api.pods(**kw).items]

    assert names(selector="statefulset.kubernetes.io/pod-name=web-1") == ["web-1"]
    assert names(selector="app=nginx,statefulset.kubernetes.io/pod-name==web-2") == ["web-2"]
    assert names(selector="statefulset.kubernetes.io/pod-name in (web-0, web-2)") == ["web-0", "web-2"]
    assert names(selector="apps.kubernetes.io/pod-index notin (0),app") == ["web-1", "web-2"]
    assert names(selector="app=other") == [] and names(selector="app!=nginx") == [] and names(selector="!app") == []
    assert names(field_selector="metadata.name=web-2") == ["web-2"]
    assert names(field_selector="spec.nodeName=node-1,status.phase=Running") == ["web-1"]
    with pytest.raises(ApiException) as err:
        api.pods("app in nginx")
    assert err.value.status == 400 and status_of(err.value)["reason"] == "BadRequest"
    with pytest.raises(ApiException) as err:
        api.pods(field_selector="spec.bogus=1")
    assert err.value.status == 400 and "field label not supported" in status_of(err.value)["message"]
    assert api.core.list_namespaced_pod("elsewhere", _request_timeout=T).items == []
    assert len(api.core.list_pod_for_all_namespaces(label_selector="app=nginx", _request_timeout=T).items) == 3


def test_pages_with_limit_and_continue_and_slices_of_100(sandbox_factory, api_for):
    sb = sandbox_factory(pods=150)
    api = api_for(sb)
    first = api.pods("app=nginx", limit=100)
    assert len(first.items) == 100 and first.metadata.remaining_item_count == 50
    rest = api.pods("app=nginx", limit=100, _continue=first.metadata._continue)
    assert len(rest.items) == 50 and not rest.metadata._continue
    slices = api.slices()
    assert sorted(len(s.endpoints) for s in slices) == [50, 100]  # the controller's max 100 per slice
    assert len(ask(sb, SVC, "A")[1]) == 150


def test_unknown_names_are_404_with_a_status(sandbox_factory, api_for):
    api = api_for(sandbox_factory())
    cases = [
        (lambda: api.core.read_namespaced_pod("web-9", NS, _request_timeout=T), 'pods "web-9" not found', "pods"),
        (lambda: api.apps.read_namespaced_stateful_set("db", NS, _request_timeout=T),
         'statefulsets.apps "db" not found', "statefulsets"),
        (lambda: api.core.read_namespaced_service("nginx", "elsewhere", _request_timeout=T),
         'services "nginx" not found', "services"),
        (lambda: api.core.read_namespaced_persistent_volume_claim("www-web-9", NS, _request_timeout=T),
         'persistentvolumeclaims "www-web-9" not found', "persistentvolumeclaims"),
    ]
    for call, message, kind in cases:
        with pytest.raises(ApiException) as err:
            call()
        body = status_of(err.value)
        assert err.value.status == 404 and (body["reason"], body["message"]) == ("NotFound", message)
        assert body["details"]["kind"] == kind


def test_forbidden_resource_is_403_naming_the_user_and_verb(sandbox_factory, api_for):
    sb = sandbox_factory(faults=["api-forbidden:pods"])
    api = api_for(sb)
    with pytest.raises(ApiException) as err:
        api.pods("app=nginx")
    body = status_of(err.value)
    assert err.value.status == 403 and body["reason"] == "Forbidden"
    assert body["message"] == ('pods is forbidden: User "system:serviceaccount:default:ssdns" cannot list resource '
                               '"pods" in API group "" in the namespace "default"')
    assert api.apps.read_namespaced_stateful_set("web", NS, _request_timeout=T).spec.replicas == 3  # others still readable

    sb = sandbox_factory(faults=["api-forbidden"])
    api = api_for(sb)
    with pytest.raises(ApiException) as err:
        api.apps.read_namespaced_stateful_set("web", NS, _request_timeout=T)
    assert err.value.status == 403 and status_of(err.value)["message"] == (
        'statefulsets.apps "web" is forbidden: User "system:serviceaccount:default:ssdns" cannot get resource '
        '"statefulsets" in API group "apps" in the namespace "default"')
    assert client.VersionApi(api.api).get_code(_request_timeout=T).major == "1"  # discovery stays open


def test_configmap_create_replace_conflict_delete(sandbox_factory, api_for):
    sb = sandbox_factory()
    core = api_for(sb).core
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="ssdns-state", labels={"app.kubernetes.io/managed-by": "ssdns"}),
                              data={"state.json": "{}"})
    made = core.create_namespaced_config_map(NS, body, _request_timeout=T)
    uuid.UUID(made.metadata.uid)
    assert made.data == {"state.json": "{}"} and made.metadata.namespace == NS
    read = core.read_namespaced_config_map("ssdns-state", NS, _request_timeout=T)
    assert (read.metadata.uid, read.metadata.resource_version) == (made.metadata.uid, made.metadata.resource_version)

    update = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="ssdns-state", labels=read.metadata.labels,
                                                             resource_version=read.metadata.resource_version),
                                data={"state.json": '{"runs": 1}'})
    newer = core.replace_namespaced_config_map("ssdns-state", NS, update, _request_timeout=T)
    assert int(newer.metadata.resource_version) > int(read.metadata.resource_version)
    assert newer.metadata.uid == made.metadata.uid and newer.data == {"state.json": '{"runs": 1}'}

    with pytest.raises(ApiException) as err:  # the same, stale resourceVersion again
        core.replace_namespaced_config_map("ssdns-state", NS, update, _request_timeout=T)
    body409 = status_of(err.value)
    assert err.value.status == 409 and body409["reason"] == "Conflict"
    assert body409["message"].startswith('Operation cannot be fulfilled on configmaps "ssdns-state": the object has been modified')
    assert core.read_namespaced_config_map("ssdns-state", NS, _request_timeout=T).data == {"state.json": '{"runs": 1}'}

    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(NS, body, _request_timeout=T)
    assert err.value.status == 409 and status_of(err.value)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("nope", NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="nope")),
                                           _request_timeout=T)
    assert err.value.status == 404
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="Bad_Name")),
                                          _request_timeout=T)
    assert err.value.status == 422 and status_of(err.value)["reason"] == "Invalid"

    listed = core.list_namespaced_config_map(NS, label_selector="app.kubernetes.io/managed-by=ssdns", _request_timeout=T)
    assert [c.metadata.name for c in listed.items] == ["ssdns-state"]
    core.delete_namespaced_config_map("ssdns-state", NS, _request_timeout=T)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("ssdns-state", NS, _request_timeout=T)
    assert err.value.status == 404


def test_changes_bump_resource_versions_and_replacements_get_new_identities(sandbox_factory, api_for):
    sb = sandbox_factory()
    api = api_for(sb)
    before = {p.metadata.name: p for p in api.pods().items}
    [slice_before] = api.slices()
    sb.change(lambda w: w.set_ready("web-1", False))
    after = {p.metadata.name: p for p in api.pods().items}
    assert int(after["web-1"].metadata.resource_version) > int(before["web-1"].metadata.resource_version)
    assert after["web-1"].metadata.uid == before["web-1"].metadata.uid
    assert after["web-0"].metadata.resource_version == before["web-0"].metadata.resource_version
    [slice_after] = api.slices()
    assert int(slice_after.metadata.resource_version) > int(slice_before.metadata.resource_version)
    assert api.apps.read_namespaced_stateful_set("web", NS, _request_timeout=T).status.ready_replicas == 2

    sb.change(lambda w: w.replace_pod("web-2"))  # the controller re-created it: new uid, new IP
    new = api.core.read_namespaced_pod("web-2", NS, _request_timeout=T)
    assert new.metadata.uid != before["web-2"].metadata.uid
    assert new.status.pod_ip != before["web-2"].status.pod_ip
    assert ask(sb, f"web-2.{SVC}", "A") == ("NOERROR", {new.status.pod_ip})
    assert http_get(new.status.pod_ip, sb.world.port) == "web-2"
    pvc = api.core.read_namespaced_persistent_volume_claim("www-web-2", NS, _request_timeout=T)
    assert pvc.status.phase == "Bound"  # the claim outlives the pod


def test_terminating_pod_stays_in_the_slice_not_ready_and_leaves_dns(sandbox_factory, api_for):
    sb = sandbox_factory(terminate_delay=60)  # the kubelet would end it after terminate_delay
    api = api_for(sb)
    sb.change(lambda w: w.terminate_pod("web-0"))
    pod = api.core.read_namespaced_pod("web-0", NS, _request_timeout=T)
    assert pod.metadata.deletion_timestamp is not None
    e = next(e for s in api.slices() for e in s.endpoints if e.target_ref.name == "web-0")
    assert (e.conditions.ready, e.conditions.serving, e.conditions.terminating) == (False, True, True)
    assert_dns_follows_slices(sb, api)
    assert ask(sb, f"web-0.{SVC}", "A")[0] == "NXDOMAIN"


def test_scaling_moves_pods_and_keeps_claims(sandbox_factory, api_for):
    sb = sandbox_factory()
    api = api_for(sb)
    sb.change(lambda w: w.scale(5))
    assert api.apps.read_namespaced_stateful_set("web", NS, _request_timeout=T).spec.replicas == 5
    assert [p.metadata.name for p in api.pods("app=nginx").items] == [f"web-{i}" for i in range(5)]
    assert ask(sb, f"web-4.{SVC}", "A") == ("NOERROR", {sb.world.pod("web-4").ip})
    sb.change(lambda w: w.scale(2))
    assert [p.metadata.name for p in api.pods("app=nginx").items] == ["web-0", "web-1"]
    assert len(ask(sb, SVC, "A")[1]) == 2 and ask(sb, f"web-4.{SVC}", "A")[0] == "NXDOMAIN"
    claims = api.core.list_namespaced_persistent_volume_claim(NS, label_selector="app=nginx", _request_timeout=T)
    assert len(claims.items) == 5  # a StatefulSet's claims outlive scale-down (whenScaled: Retain)


def test_requests_are_recorded_with_their_rbac_verbs(sandbox_factory, api_for):
    sb = sandbox_factory()
    api = api_for(sb)
    api.apps.read_namespaced_stateful_set("web", NS, _request_timeout=T)
    api.core.read_namespaced_service("nginx", NS, _request_timeout=T)
    api.pods("app=nginx")
    api.slices()
    api.core.list_namespaced_persistent_volume_claim(NS, label_selector="app=nginx", _request_timeout=T)
    api.core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="s")),
                                          _request_timeout=T)
    assert sb.sandbox.api.rbac() == [
        ("", "configmaps", "create"), ("", "persistentvolumeclaims", "list"), ("", "pods", "list"),
        ("", "services", "get"), ("apps", "statefulsets", "get"), ("discovery.k8s.io", "endpointslices", "list")]
    req = next(r for r in sb.sandbox.api.requests if r.resource == "pods")
    assert (req.method, req.path, req.query, req.verb, req.namespace, req.status) == (
        "GET", "/api/v1/namespaces/default/pods", {"labelSelector": "app=nginx"}, "list", NS, 200)


def test_kubeconfig_loads_with_load_kube_config(sandbox, tmp_path):
    path = sandbox.sandbox.write_kubeconfig(tmp_path / "kc")
    _, current = config.list_kube_config_contexts(config_file=str(path))
    assert current["name"] == "ssdns-sandbox" and current["context"]["namespace"] == NS
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=cfg)
    assert cfg.host == sandbox.sandbox.api_url and cfg.host.startswith("http://127.54.0.1:")
    core = client.CoreV1Api(client.ApiClient(cfg))
    assert len(core.list_namespaced_pod(NS, _request_timeout=T).items) == 3


# --- DNS tells the EndpointSlices' story, fault by fault -------------------------------------


@pytest.mark.parametrize("faults", [
    [], ["not-ready:web-1"], ["not-ready:web-1", "publish-not-ready"], ["wrong-subdomain:web-1"],
    ["not-headless"], ["pvc-pending:web-1"], ["no-http:web-0"],
])
def test_dns_agrees_with_the_endpointslices(sandbox_factory, api_for, faults):
    sb = sandbox_factory(faults=faults)
    assert_dns_follows_slices(sb, api_for(sb))


def test_not_ready_pod_is_in_the_slice_but_not_in_dns(sandbox_factory, api_for):
    sb = sandbox_factory(faults=["not-ready:web-1"])
    api = api_for(sb)
    e = next(e for s in api.slices() for e in s.endpoints if e.target_ref.name == "web-1")
    assert (e.conditions.ready, e.conditions.serving, e.hostname) == (False, False, "web-1")
    pod = api.core.read_namespaced_pod("web-1", NS, _request_timeout=T)
    assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "False"
    assert ask(sb, f"web-1.{SVC}", "A")[0] == "NXDOMAIN"

    sb = sandbox_factory(faults=["not-ready:web-1", "publish-not-ready"])
    api = api_for(sb)
    assert api.core.read_namespaced_service("nginx", NS, _request_timeout=T).spec.publish_not_ready_addresses is True
    e = next(e for s in api.slices() for e in s.endpoints if e.target_ref.name == "web-1")
    assert (e.conditions.ready, e.conditions.serving) == (True, False)
    assert ask(sb, f"web-1.{SVC}", "A") == ("NOERROR", {sb.world.pod("web-1").ip})


def test_wrong_subdomain_has_no_hostname_and_no_pod_name(sandbox_factory, api_for):
    sb = sandbox_factory(faults=["wrong-subdomain:web-1"])
    api = api_for(sb)
    pod = api.core.read_namespaced_pod("web-1", NS, _request_timeout=T)
    assert pod.spec.hostname == "web-1" and pod.spec.subdomain != "nginx"
    e = next(e for s in api.slices() for e in s.endpoints if e.target_ref.name == "web-1")
    assert e.hostname is None and e.conditions.ready
    assert ask(sb, f"web-1.{SVC}", "A")[0] == "NXDOMAIN"
    assert pod.status.pod_ip in ask(sb, SVC, "A")[1]


def test_not_headless_service_answers_its_cluster_ip(sandbox_factory, api_for):
    sb = sandbox_factory(faults=["not-headless"])
    api = api_for(sb)
    svc = api.core.read_namespaced_service("nginx", NS, _request_timeout=T)
    assert svc.spec.cluster_ip == "127.10.255.1"
    assert ask(sb, SVC, "A") == ("NOERROR", {"127.10.255.1"})
    assert ask(sb, f"web-0.{SVC}", "A")[0] == "NXDOMAIN"


def test_no_service_is_404_in_the_api_and_nxdomain(sandbox_factory, api_for):
    sb = sandbox_factory(faults=["no-service"])
    api = api_for(sb)
    assert api.apps.read_namespaced_stateful_set("web", NS, _request_timeout=T).spec.service_name == "nginx"
    with pytest.raises(ApiException) as err:
        api.core.read_namespaced_service("nginx", NS, _request_timeout=T)
    assert err.value.status == 404
    assert api.slices() == []
    assert ask(sb, SVC, "A")[0] == "NXDOMAIN" and ask(sb, f"web-0.{SVC}", "A")[0] == "NXDOMAIN"


def test_pvc_pending_has_no_volume(sandbox_factory, api_for):
    api = api_for(sandbox_factory(faults=["pvc-pending:web-1"]))
    pvcs = {c.metadata.name: c for c in api.core.list_namespaced_persistent_volume_claim(
        NS, label_selector="app=nginx", _request_timeout=T).items}
    assert (pvcs["www-web-1"].status.phase, pvcs["www-web-1"].spec.volume_name) == ("Pending", None)
    assert pvcs["www-web-0"].status.phase == "Bound"


def test_stale_dns_serves_the_old_ip_while_the_pod_moved(sandbox_factory, api_for):
    sb = sandbox_factory()
    old_ip = sb.world.pod("web-1").ip
    old_uid = sb.world.pod("web-1").uid
    from ssdns.sandbox import apply_fault

    sb.change(lambda w: apply_fault(w, "stale-dns:web-1"))
    api = api_for(sb)
    pod = api.core.read_namespaced_pod("web-1", NS, _request_timeout=T)
    assert pod.status.pod_ip != old_ip and pod.metadata.uid != old_uid
    e = next(e for s in api.slices() for e in s.endpoints if e.target_ref.name == "web-1")
    assert e.addresses == [pod.status.pod_ip]
    assert ask(sb, f"web-1.{SVC}", "A") == ("NOERROR", {old_ip})  # DNS did not follow
    assert http_get(pod.status.pod_ip, sb.world.port) == "web-1"  # the pod answers at its new IP
    with pytest.raises(OSError):
        http_get(old_ip, sb.world.port)


def test_dns_other_pod_and_missing_dns_disagree_with_the_api(sandbox_factory, api_for):
    sb = sandbox_factory(faults=["dns-other-pod:web-1=web-2", "missing-dns:web-0"])
    api = api_for(sb)
    ips = {p.metadata.name: p.status.pod_ip for p in api.pods().items}
    assert ask(sb, f"web-1.{SVC}", "A") == ("NOERROR", {ips["web-2"]})
    e0 = next(e for s in api.slices() for e in s.endpoints if e.target_ref.name == "web-0")
    assert e0.conditions.ready and e0.addresses == [ips["web-0"]]  # the API says ready ...
    assert ask(sb, f"web-0.{SVC}", "A")[0] == "NXDOMAIN"  # ... DNS has nothing


def test_unknown_fault_arguments_are_usage_errors():
    from ssdns.errors import UsageError
    from ssdns.sandbox import apply_fault, make_world

    for spec in ("api-forbidden:secrets", "not-ready:web-7", "dns-other-pod:web-1", "not-headless:x"):
        with pytest.raises(UsageError):
            apply_fault(make_world(3), spec)


# --- costs and other clients -----------------------------------------------------------------


def test_sandbox_without_api_never_imports_kubernetes():
    code = (
        "import asyncio, sys\n"
        "from ssdns.sandbox import Sandbox, make_world\n"
        "async def go():\n"
        "    async with Sandbox(make_world(2), api=False) as sb:\n"
        "        assert sb.api_url is None\n"
        "    assert 'kubernetes' not in sys.modules, 'imported'\n"
        "    async with Sandbox(make_world(2)) as sb:\n"
        "        assert sb.api_url.startswith('http://127.54.0.1:')\n"
        "    assert 'kubernetes' in sys.modules\n"
        "asyncio.run(asyncio.wait_for(go(), 20))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kubectl_reads_the_sandbox(sandbox, tmp_path):
    path = sandbox.sandbox.write_kubeconfig(tmp_path / "kc")
    proc = subprocess.run(["kubectl", "--kubeconfig", str(path), "get", "pods,statefulsets", "-o", "name"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["pod/web-0", "pod/web-1", "pod/web-2", "statefulset.apps/web"]


def test_ip_helpers_stay_on_loopback(sandbox):
    for p in sandbox.world.pods:
        assert ipaddress.ip_address(p.ip).is_loopback
    assert ipaddress.ip_address(sandbox.sandbox.api.host).is_loopback
