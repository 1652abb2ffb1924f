"""The sandbox behaves like the StatefulSet controller: deletes, replacements, ordered and parallel
scaling, DNS that lags, pod watches and the faults that break identity, driven by the official
client over real loopback sockets; then the real `ssdns restart-test` and `ssdns scale-test`
against it.

Timings are the World's settings, chosen per test; every wait is a bounded poll.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import dns.message
import dns.query
import dns.rcode
import pytest

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, config, watch  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402

from conftest import failures, run_cli, run_json, until  # noqa: E402

NS = "default"
SVC = "nginx.default.svc.cluster.local."
T = 5  # seconds: every API call and DNS query is bounded


# --- helpers -------------------------------------------------------------------------------


class Api:
    def __init__(self, sb, tmp_path):
        self.kubeconfig = sb.sandbox.write_kubeconfig(tmp_path / "kubeconfig")
        self.api = config.new_client_from_config(config_file=str(self.kubeconfig), persist_config=False)
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)

    def pod(self, name: str):
        try:
            return self.core.read_namespaced_pod(name, NS, _request_timeout=T)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def pods(self) -> dict:
        return {p.metadata.name: p for p in self.core.list_namespaced_pod(
            NS, label_selector="app=nginx", _request_timeout=T).items}

    def volumes(self) -> dict[str, tuple[str, str, str]]:
        """claim -> (uid, phase, volumeName)"""
        return {c.metadata.name: (c.metadata.uid, c.status.phase, c.spec.volume_name)
                for c in self.core.list_namespaced_persistent_volume_claim(
                    NS, label_selector="app=nginx", _request_timeout=T).items}

    def delete(self, name: str, uid: str | None = None):
        body = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid)) if uid else None
        return self.core.delete_namespaced_pod(name, NS, body=body, _request_timeout=T)

    def scale(self, replicas: int):
        return self.apps.patch_namespaced_stateful_set_scale("web", NS, {"spec": {"replicas": replicas}},
                                                             _request_timeout=T)


@pytest.fixture
def api_for(tmp_path):
    return lambda sb: Api(sb, tmp_path)


def ready(pod) -> bool:
    return pod is not None and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])




def ask(sb, name: str, rdtype: str = "A") -> tuple[str, set[str]]:
    ns = sb.sandbox.nameserver
    q = dns.message.make_query(name, rdtype, use_edns=0, payload=1232)
    resp, _ = dns.query.udp_with_fallback(q, ns.host, timeout=2, port=ns.port)
    return dns.rcode.to_text(resp.rcode()), {rd.to_text() for rr in resp.answer for rd in rr}


def http_get(ip: str, port: int) -> str:
    with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=2) as resp:  # noqa: S310 - loopback only
        return resp.read().decode()


def answers(ip: str, port: int) -> str | None:
    try:
        return http_get(ip, port)
    except (OSError, urllib.error.URLError):
        return None


class Events:
    """A pod watch in a thread (the sync client must not run on the sandbox's loop)."""

    def __init__(self, api: Api, seconds: int = 10, **kw):
        self.items: list[tuple[float, str, str, str, bool, bool]] = []  # (t, type, name, uid, terminating, ready)
        self.done = threading.Event()
        self.error: Exception | None = None
        self._w = watch.Watch()

        def run():
            try:
                for ev in self._w.stream(api.core.list_namespaced_pod, NS, label_selector="app=nginx",
                                         timeout_seconds=seconds, _request_timeout=(3, seconds + 5), **kw):
                    o = ev["object"]
                    self.items.append((time.monotonic(), ev["type"], o.metadata.name, o.metadata.uid,
                                       o.metadata.deletion_timestamp is not None, ready(o)))
            except Exception as exc:  # noqa: BLE001 - reported by the test
                self.error = exc
            finally:
                self.done.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def wait(self, timeout: float = 15) -> "Events":
        assert self.done.wait(timeout), "the watch did not end"
        assert self.error is None, self.error
        return self

    def index(self, pred) -> int:
        return next(i for i, e in enumerate(self.items) if pred(e))


def cli_args(sb, api: Api, command: str, *extra: str) -> list[str]:
    """What a person types against the sandbox (restart-test and scale-test use the API implicitly)."""
    return [command, "--statefulset", "web", "--namespace", NS, "--cluster-domain", "cluster.local",
            "--kubeconfig", str(api.kubeconfig), "--nameserver", str(sb.sandbox.nameserver), *extra]


# --- delete and replace --------------------------------------------------------------------


def test_delete_makes_a_replacement_with_a_new_uid_and_ip_ready_after_the_delay(sandbox_factory, api_for):
    sb = sandbox_factory(terminate_delay=0.3, start_delay=0.1, ready_delay=0.6, dns_delay=0.3)
    api = api_for(sb)
    old = api.pod("web-1")
    volumes = api.volumes()
    port = sb.world.port
    assert answers(old.status.pod_ip, port) == "web-1"

    t0 = time.monotonic()
    gone = api.delete("web-1", old.metadata.uid)
    assert gone.metadata.uid == old.metadata.uid and gone.metadata.deletion_timestamp is not None
    now = api.pod("web-1")
    assert now.metadata.uid == old.metadata.uid and now.metadata.deletion_timestamp is not None
    assert answers(old.status.pod_ip, port) == "web-1"  # still serving while it terminates

    new = until(lambda: (p := api.pod("web-1")) is not None and p.metadata.uid != old.metadata.uid and p)
    t_new = time.monotonic()
    assert t_new - t0 >= 0.3 - 0.05  # only once the old one is gone
    assert not ready(new)
    new = until(lambda: ready(p := api.pod("web-1")) and p)
    t_ready = time.monotonic()
    assert t_ready - t0 >= 0.3 + 0.6 - 0.05
    assert new.status.phase == "Running" and new.status.pod_ip != old.status.pod_ip
    assert new.metadata.creation_timestamp >= old.metadata.creation_timestamp
    assert {c.type: c.status for c in new.status.conditions}["ContainersReady"] == "True"
    assert answers(new.status.pod_ip, port) == "web-1"
    assert answers(old.status.pod_ip, port) is None  # the old IP stopped answering
    assert api.volumes() == volumes  # same claim, same volume
    assert [p.metadata.name for p in api.pods().values()] == ["web-0", "web-1", "web-2"]
    sts = api.apps.read_namespaced_stateful_set("web", NS, _request_timeout=T)
    assert (sts.status.replicas, sts.status.ready_replicas) == (3, 3)


def test_a_new_pod_is_pending_without_an_ip_then_running(sandbox_factory, api_for):
    sb = sandbox_factory(terminate_delay=0, start_delay=0.5, ready_delay=1.0, dns_delay=0)
    api = api_for(sb)
    old = api.pod("web-0")
    api.delete("web-0", old.metadata.uid)
    pending = until(lambda: (p := api.pod("web-0")) is not None and p.metadata.uid != old.metadata.uid and p)
    assert pending.status.phase == "Pending" and pending.status.pod_ip is None
    assert pending.status.container_statuses[0].state.waiting.reason == "ContainerCreating"
    e = [e for s in client.DiscoveryV1Api(api.api).list_namespaced_endpoint_slice(
        NS, _request_timeout=T).items for e in s.endpoints or [] if e.target_ref.name == "web-0"]
    assert e == []  # no IP, no endpoint
    running = until(lambda: (p := api.pod("web-0")).status.phase == "Running" and p)
    assert running.status.pod_ip and not ready(running)
    assert answers(running.status.pod_ip, sb.world.port) == "web-0"  # answers once Running
    until(lambda: ready(api.pod("web-0")))


def test_uid_precondition_mismatch_is_a_409_conflict_and_deletes_nothing(sandbox_factory, api_for):
    sb = sandbox_factory()
    api = api_for(sb)
    pod = api.pod("web-2")
    with pytest.raises(ApiException) as err:
        api.delete("web-2", "0b7d4e21-0000-4000-8000-000000000000")
    assert err.value.status == 409
    body = json.loads(err.value.body)
    assert (body["kind"], body["status"], body["reason"], body["code"]) == ("Status", "Failure", "Conflict", 409)
    assert body["message"] == (
        f'Operation cannot be fulfilled on Pod "web-2": the UID in the precondition '
        f"(0b7d4e21-0000-4000-8000-000000000000) does not match the UID in record ({pod.metadata.uid}). "
        "The object might have been deleted and then recreated")
    assert body["details"] == {"name": "web-2", "kind": "Pod"}
    with pytest.raises(ApiException) as err:
        api.core.delete_namespaced_pod("web-2", NS, body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(resource_version="1")), _request_timeout=T)
    assert err.value.status == 409 and "ResourceVersion in the precondition (1)" in json.loads(err.value.body)["message"]
    with pytest.raises(ApiException) as err:
        api.delete("web-9")
    assert err.value.status == 404
    ctl = sb.sandbox.controller
    rounds = ctl.steps
    sb.change(lambda w: None)  # the controller looks again: a wrongly accepted delete would show now
    until(lambda: ctl.steps > rounds)
    after = api.pod("web-2")
    assert after.metadata.uid == pod.metadata.uid and after.metadata.deletion_timestamp is None
    assert [(r.verb, r.resource, r.status) for r in sb.sandbox.api.requests if r.method == "DELETE"] == [
        ("delete", "pods", 409), ("delete", "pods", 409), ("delete", "pods", 404)]


def test_delete_without_a_body_and_with_grace_zero(sandbox_factory, api_for):
    sb = sandbox_factory(terminate_delay=5, ready_delay=0.1, dns_delay=0)
    api = api_for(sb)
    old = api.pod("web-1")
    api.core.delete_namespaced_pod("web-1", NS, grace_period_seconds=0, _request_timeout=T)
    until(lambda: (p := api.pod("web-1")) is not None and p.metadata.uid != old.metadata.uid, timeout=2)


# --- DNS lags the API ------------------------------------------------------------------------


def test_dns_follows_the_endpointslices_after_dns_delay(sandbox_factory, api_for):
    sb = sandbox_factory(terminate_delay=0.2, start_delay=0.05, ready_delay=0.3, dns_delay=0.8)
    api = api_for(sb)
    old = api.pod("web-1")
    old_ip = old.status.pod_ip
    t0 = time.monotonic()
    api.delete("web-1", old.metadata.uid)
    # terminating: the API says not ready at once; DNS still serves it for dns_delay
    assert ask(sb, f"web-1.{SVC}") == ("NOERROR", {old_ip})
    assert old_ip in ask(sb, SVC)[1]
    timeline = []
    new_ip = None
    for _ in range(400):  # bounded: 400 x 10 ms
        t = time.monotonic() - t0
        rcode, values = ask(sb, f"web-1.{SVC}")
        timeline.append((t, rcode, values))
        pod = sb.world.pod("web-1") if any(p.name == "web-1" for p in sb.world.pods) else None
        if pod is not None and pod.uid != old.metadata.uid:
            new_ip = pod.ip
        if new_ip and values == {new_ip}:
            break
        time.sleep(0.01)
    assert new_ip and timeline[-1][2] == {new_ip}, timeline[-5:]
    first_gone = next(t for t, rcode, _ in timeline if rcode == "NXDOMAIN")
    # a lower bound that matters (not before dns_delay) and an upper bound with room for a loaded machine
    assert 0.8 - 0.05 <= first_gone <= 0.8 + 1.5  # the terminating endpoint leaves DNS dns_delay later
    assert timeline[-1][0] >= 0.2 + 0.3 + 0.8 - 0.05  # gone, Ready, then dns_delay
    assert all(values in ({old_ip}, set()) for _, _, values in timeline[:-1])
    assert ask(sb, SVC)[1] == {p.status.pod_ip for p in api.pods().values()}


def test_dns_delay_zero_follows_at_once(sandbox_factory, api_for):
    sb = sandbox_factory(terminate_delay=0, ready_delay=0.1, start_delay=0, dns_delay=0)
    api = api_for(sb)
    old = api.pod("web-0")
    api.delete("web-0", old.metadata.uid)
    new = until(lambda: ready(p := api.pod("web-0")) and p.metadata.uid != old.metadata.uid and p)
    assert ask(sb, f"web-0.{SVC}") == ("NOERROR", {new.status.pod_ip})


# --- scaling ---------------------------------------------------------------------------------


def test_scale_down_ordered_goes_highest_first_one_at_a_time_and_keeps_claims(sandbox_factory, api_for):
    sb = sandbox_factory(pods=4, terminate_delay=0.2, ready_delay=0.1, dns_delay=0.1)
    api = api_for(sb)
    volumes = api.volumes()
    uids = {n: p.metadata.uid for n, p in api.pods().items()}
    events = Events(api, seconds=4)
    until(lambda: len(events.items) >= 4)  # the watch is open: its ADDED for what exists came
    scale = api.scale(1)
    assert scale.kind == "Scale" and scale.api_version == "autoscaling/v1" and scale.spec.replicas == 1
    assert scale.status.selector == "app=nginx"
    until(lambda: list(api.pods()) == ["web-0"])
    events.wait()
    went = [(e[1], e[2]) for e in events.items if e[1] == "DELETED" or e[4]]
    # each goes terminating, then DELETED, before the next lower ordinal starts terminating
    assert went == [
        ("MODIFIED", "web-3"), ("DELETED", "web-3"), ("MODIFIED", "web-2"), ("DELETED", "web-2"),
        ("MODIFIED", "web-1"), ("DELETED", "web-1")]
    assert api.volumes() == volumes  # every claim kept, Bound to the same volume
    assert all(phase == "Bound" for _, phase, _ in volumes.values())
    assert api.pods()["web-0"].metadata.uid == uids["web-0"]
    got = api.apps.read_namespaced_stateful_set_scale("web", NS, _request_timeout=T)
    assert (got.spec.replicas, got.status.replicas) == (1, 1)


def test_scale_up_ordered_creates_ascending_each_ready_first_with_its_old_volume(sandbox_factory, api_for):
    sb = sandbox_factory(pods=3, terminate_delay=0.05, start_delay=0.05, ready_delay=0.3, dns_delay=0.1)
    api = api_for(sb)
    volumes = api.volumes()
    old = {n: p.metadata.uid for n, p in api.pods().items()}
    api.scale(1)
    until(lambda: list(api.pods()) == ["web-0"])
    events = Events(api, seconds=4, resource_version=api.core.list_namespaced_pod(
        NS, _request_timeout=T).metadata.resource_version)
    api.scale(3)
    until(lambda: len(p := api.pods()) == 3 and all(ready(x) for x in p.values()), timeout=5)
    events.wait()
    added = [e[2] for e in events.items if e[1] == "ADDED"]
    assert added == ["web-1", "web-2"]  # only later events: no ADDED for web-0
    i_ready_1 = events.index(lambda e: e[2] == "web-1" and e[5])
    i_added_2 = events.index(lambda e: e[2] == "web-2" and e[1] == "ADDED")
    assert i_ready_1 < i_added_2  # OrderedReady: web-2 only once web-1 is Ready
    pods = api.pods()
    assert pods["web-1"].metadata.uid != old["web-1"] and pods["web-2"].metadata.uid != old["web-2"]
    assert api.volumes() == volumes  # the returning ordinals got their old claims and volumes
    until(lambda: ask(sb, SVC)[1] == {p.status.pod_ip for p in pods.values()})
    for name, pod in pods.items():
        assert answers(pod.status.pod_ip, sb.world.port) == name


def test_parallel_terminates_and_creates_all_at_once(sandbox_factory, api_for):
    sb = sandbox_factory(pods=4, pod_management_policy="Parallel", terminate_delay=0.3, start_delay=0.05,
                         ready_delay=0.3, dns_delay=0.1)
    api = api_for(sb)
    sts = api.apps.read_namespaced_stateful_set("web", NS, _request_timeout=T)
    assert sts.spec.pod_management_policy == "Parallel"
    volumes = api.volumes()
    events = Events(api, seconds=3)
    until(lambda: len(events.items) >= 4)
    api.scale(1)
    until(lambda: list(api.pods()) == ["web-0"])
    events.wait()
    terminating = [e[2] for e in events.items if e[1] == "MODIFIED" and e[4]]
    deleted = [e[2] for e in events.items if e[1] == "DELETED"]
    assert terminating == ["web-3", "web-2", "web-1"]  # one write each, highest first ...
    first_deleted = events.index(lambda e: e[1] == "DELETED")
    last_terminating = max(i for i, e in enumerate(events.items) if e[1] == "MODIFIED" and e[4])
    assert last_terminating < first_deleted  # ... all before any is gone
    assert sorted(deleted) == ["web-1", "web-2", "web-3"]

    events = Events(api, seconds=2, resource_version=api.core.list_namespaced_pod(
        NS, _request_timeout=T).metadata.resource_version)
    api.scale(4)
    until(lambda: len(p := api.pods()) == 4 and all(ready(x) for x in p.values()))
    events.wait()
    added = [e[2] for e in events.items if e[1] == "ADDED"]
    assert added == ["web-1", "web-2", "web-3"]
    last_added = max(i for i, e in enumerate(events.items) if e[1] == "ADDED")
    assert last_added < events.index(lambda e: e[5])  # all created before any is Ready
    assert api.volumes() == volumes


def test_statefulset_patch_and_scale_update(sandbox_factory, api_for):
    sb = sandbox_factory(terminate_delay=0.05, ready_delay=0.05, dns_delay=0)
    api = api_for(sb)
    sts = api.apps.patch_namespaced_stateful_set("web", NS, {"spec": {"replicas": 2}}, _request_timeout=T)
    assert sts.spec.replicas == 2 and sts.metadata.generation == 2
    until(lambda: list(api.pods()) == ["web-0", "web-1"])
    scale = api.apps.read_namespaced_stateful_set_scale("web", NS, _request_timeout=T)
    scale.spec.replicas = 3
    assert api.apps.replace_namespaced_stateful_set_scale("web", NS, scale, _request_timeout=T).spec.replicas == 3
    until(lambda: len(api.pods()) == 3)
    # JSON patch, as `kubectl patch --type json` sends it
    api.apps.patch_namespaced_stateful_set_scale(
        "web", NS, [{"op": "replace", "path": "/spec/replicas", "value": 2}], _request_timeout=T)
    assert sb.world.sts.replicas == 2
    with pytest.raises(ApiException) as err:
        api.scale(-1)
    assert err.value.status == 422 and "greater than or equal to 0" in json.loads(err.value.body)["message"]
    with pytest.raises(ApiException) as err:
        api.apps.patch_namespaced_stateful_set("web", NS, {"spec": {"podManagementPolicy": "Parallel"}},
                                               _request_timeout=T)
    assert err.value.status == 422 and "spec.podManagementPolicy" in json.loads(err.value.body)["message"]
    stale = api.apps.read_namespaced_stateful_set_scale("web", NS, _request_timeout=T)
    api.scale(3)
    with pytest.raises(ApiException) as err:
        api.apps.replace_namespaced_stateful_set_scale("web", NS, stale, _request_timeout=T)
    assert err.value.status == 409
    req = urllib.request.Request(f"{sb.sandbox.api_url}/apis/apps/v1/namespaces/default/statefulsets/web/scale",
                                 data=b"spec:\n  replicas: 1\n", method="PATCH",
                                 headers={"Content-Type": "application/apply-patch+yaml"})
    with pytest.raises(urllib.error.HTTPError) as http_err:
        urllib.request.urlopen(req, timeout=T)  # noqa: S310 - loopback only
    assert http_err.value.code == 415
    assert sb.world.sts.replicas == 3
    rules = sb.sandbox.api.rbac()
    assert ("apps", "statefulsets/scale", "patch") in rules and ("apps", "statefulsets/scale", "get") in rules
    assert ("apps", "statefulsets/scale", "update") in rules and ("apps", "statefulsets", "patch") in rules


def test_discovery_lists_the_scale_subresource_and_pod_delete(sandbox, tmp_path):
    api = Api(sandbox, tmp_path)
    apps = {r.name: r for r in client.AppsV1Api(api.api).get_api_resources(_request_timeout=T).resources}
    assert apps["statefulsets/scale"].kind == "Scale" and apps["statefulsets/scale"].group == "autoscaling"
    assert set(apps["statefulsets/scale"].verbs) == {"get", "patch", "update"}
    core = {r.name: r for r in api.core.get_api_resources(_request_timeout=T).resources}
    assert "delete" in core["pods"].verbs and "watch" in core["pods"].verbs


# --- watches ---------------------------------------------------------------------------------


def test_watch_lists_then_streams_in_order_and_ends_at_timeout(sandbox_factory, api_for):
    sb = sandbox_factory(terminate_delay=0.1, start_delay=0.05, ready_delay=0.2, dns_delay=0.1)
    api = api_for(sb)
    old = api.pod("web-2")
    t0 = time.monotonic()
    events = Events(api, seconds=2)
    until(lambda: len(events.items) >= 3)
    api.delete("web-2", old.metadata.uid)
    events.wait()
    assert 2 - 0.1 <= time.monotonic() - t0 <= 2 + 3  # the server ended it at timeoutSeconds
    seen = [(e[1], e[2]) for e in events.items]
    assert seen[:3] == [("ADDED", "web-0"), ("ADDED", "web-1"), ("ADDED", "web-2")]
    web2 = [(e[1], e[3] == old.metadata.uid, e[4], e[5]) for e in events.items[3:] if e[2] == "web-2"]
    assert web2 == [
        ("MODIFIED", True, True, True),  # terminating (its readiness probe still passes)
        ("DELETED", True, True, True),  # gone
        ("ADDED", False, False, False),  # the replacement: Pending
        ("MODIFIED", False, False, False),  # Running
        ("MODIFIED", False, False, True),  # Ready
    ]
    watches = [r for r in sb.sandbox.api.requests if r.verb == "watch"]
    assert len(watches) == 1 and watches[0].resource == "pods" and watches[0].status == 200
    assert watches[0].query["labelSelector"] == "app=nginx" and watches[0].query["timeoutSeconds"] == "2"
    assert ("", "pods", "watch") in sb.sandbox.api.rbac()


def test_watch_from_a_resource_version_sends_only_later_events(sandbox_factory, api_for):
    sb = sandbox_factory(terminate_delay=0.05, ready_delay=0.1, dns_delay=0)
    api = api_for(sb)
    listed = api.core.list_namespaced_pod(NS, label_selector="app=nginx", _request_timeout=T)
    api.delete("web-0", listed.items[0].metadata.uid)  # before the watch starts: replayed from the journal
    events = Events(api, seconds=1, resource_version=listed.metadata.resource_version)
    events.wait()
    assert [e[2] for e in events.items] and {e[2] for e in events.items} == {"web-0"}
    assert events.items[0][1:3] == ("MODIFIED", "web-0") and events.items[0][4]
    # field selectors apply to watches too
    events = Events(api, seconds=1, field_selector="metadata.name=web-1")
    events.wait()
    assert [(e[1], e[2]) for e in events.items] == [("ADDED", "web-1")]


def test_watch_from_a_compacted_resource_version_is_410_gone(sandbox_factory, api_for):
    sb = sandbox_factory()
    api = api_for(sb)
    sb.world.compacted = sb.world.version  # as if the journal had dropped everything so far
    with pytest.raises(ApiException) as err:
        for _ in watch.Watch().stream(api.core.list_namespaced_pod, NS, resource_version="1", timeout_seconds=2,
                                      _request_timeout=(3, 5)):
            pass
    assert err.value.status == 410 and "too old resource version" in err.value.reason


def test_watches_of_other_kinds_and_raw_stream_lines(sandbox):
    url = f"{sandbox.sandbox.api_url}/api/v1/namespaces/default/persistentvolumeclaims?watch=1&timeoutSeconds=1"
    t0 = time.monotonic()
    with urllib.request.urlopen(url, timeout=T) as resp:  # noqa: S310 - loopback only
        assert resp.headers["Content-Type"] == "application/json"
        lines = resp.read().decode().splitlines()
    assert time.monotonic() - t0 < T  # the server ended the watch at timeoutSeconds (the socket waits T)
    objs = [json.loads(line) for line in lines]
    assert [(o["type"], o["object"]["kind"], o["object"]["metadata"]["name"]) for o in objs] == [
        ("ADDED", "PersistentVolumeClaim", f"www-web-{i}") for i in range(3)]


def test_an_open_watch_ends_cleanly_when_the_sandbox_stops(sandbox_factory, api_for):
    sb = sandbox_factory()
    api = api_for(sb)
    events = Events(api, seconds=60)
    until(lambda: len(events.items) == 3)
    t0 = time.monotonic()
    sb.stop()
    events.wait(timeout=15)
    assert time.monotonic() - t0 < 15  # not the watch's 60 s
    sb.stop = lambda: None  # stopped already: the fixture's teardown has nothing left to do


def test_stop_while_the_controller_is_busy(sandbox_factory, api_for):
    sb = sandbox_factory(terminate_delay=30, ready_delay=30)
    api = api_for(sb)
    api.scale(1)
    api.delete("web-0", api.pod("web-0").metadata.uid)
    assert sb.sandbox.controller.running
    t0 = time.monotonic()
    sb.stop()
    assert time.monotonic() - t0 < 15 and not sb.sandbox.controller.running  # not the 30 s delays
    sb.stop = lambda: None


# --- faults ----------------------------------------------------------------------------------


def test_dns_stuck_never_catches_up(sandbox_factory, api_for):
    sb = sandbox_factory(faults=["dns-stuck"], terminate_delay=0.05, start_delay=0.02, ready_delay=0.1,
                         dns_delay=0.1)
    api = api_for(sb)
    old = api.pod("web-1")
    before = ask(sb, SVC)
    api.delete("web-1", old.metadata.uid)
    new = until(lambda: ready(p := api.pod("web-1")) and p.metadata.uid != old.metadata.uid and p)
    # A sync serves the world at once, without dns_delay, whatever the lag: stuck DNS ignores even that.
    sb.change(lambda w: None)
    assert ask(sb, f"web-1.{SVC}") == ("NOERROR", {old.status.pod_ip})
    assert ask(sb, SVC) == before and new.status.pod_ip not in before[1]


def test_dns_stuck_applied_while_running_freezes_what_was_served(sandbox_factory, api_for):
    from ssdns.sandbox import apply_fault

    sb = sandbox_factory(terminate_delay=0.05, ready_delay=0.1, dns_delay=0.05)
    api = api_for(sb)
    sb.change(lambda w: apply_fault(w, "dns-stuck"))
    old = api.pod("web-0")
    api.delete("web-0", old.metadata.uid)
    until(lambda: ready(p := api.pod("web-0")) and p.metadata.uid != old.metadata.uid)
    sb.change(lambda w: None)  # a sync would serve the replacement at once, were DNS not stuck
    assert ask(sb, f"web-0.{SVC}") == ("NOERROR", {old.status.pod_ip})


def test_replacement_wrong_name_answers_as_another_pod(sandbox_factory, api_for):
    sb = sandbox_factory(faults=["replacement-wrong-name:web-1"], terminate_delay=0.05, ready_delay=0.1,
                         dns_delay=0.05)
    api = api_for(sb)
    old = api.pod("web-1")
    assert answers(old.status.pod_ip, sb.world.port) == "web-1"  # the fault waits for the replacement
    api.delete("web-1", old.metadata.uid)
    new = until(lambda: ready(p := api.pod("web-1")) and p.metadata.uid != old.metadata.uid and p)
    assert answers(new.status.pod_ip, sb.world.port) == "web-2"  # the next pod's name
    assert new.metadata.name == "web-1" and new.spec.hostname == "web-1"  # the API cannot tell


def test_replacement_wrong_name_with_an_explicit_name(sandbox_factory, api_for):
    sb = sandbox_factory(faults=["replacement-wrong-name:web-2=web-0"], terminate_delay=0, ready_delay=0.05)
    api = api_for(sb)
    old = api.pod("web-2")
    api.delete("web-2", old.metadata.uid)
    new = until(lambda: ready(p := api.pod("web-2")) and p.metadata.uid != old.metadata.uid and p)
    assert answers(new.status.pod_ip, sb.world.port) == "web-0"


def test_replacement_new_volume_rebinds_the_claim(sandbox_factory, api_for):
    sb = sandbox_factory(faults=["replacement-new-volume:web-1"], terminate_delay=0.05, ready_delay=0.1)
    api = api_for(sb)
    before = api.volumes()
    old = api.pod("web-1")
    api.delete("web-1", old.metadata.uid)
    until(lambda: ready(p := api.pod("web-1")) and p.metadata.uid != old.metadata.uid)
    after = api.volumes()
    assert after["www-web-0"] == before["www-web-0"] and after["www-web-2"] == before["www-web-2"]
    uid, phase, volume = after["www-web-1"]
    assert phase == "Bound" and volume != before["www-web-1"][2] and volume.startswith("pvc-")
    assert uid != before["www-web-1"][0]  # as if the claim had been deleted and created again


@pytest.mark.parametrize("spec", ["dns-stuck:web-1", "replacement-wrong-name:web-9", "replacement-wrong-name:web-1=web-1",
                                  "replacement-new-volume:web-7", "replacement-new-volume"])
def test_bad_fault_arguments_are_usage_errors(spec):
    from ssdns.errors import UsageError
    from ssdns.sandbox import apply_fault, make_world

    with pytest.raises(UsageError):
        apply_fault(make_world(3), spec)


def test_settings_are_validated():
    from ssdns.sandbox import Sandbox, make_world

    with pytest.raises(ValueError):
        make_world(3, ready_delay=-1)
    with pytest.raises(ValueError):
        make_world(3, pod_management_policy="Random")
    world = make_world(3)
    sb = Sandbox(world, api=False, terminate_delay=1, ready_delay=2, dns_delay=0, pod_management_policy="Parallel")
    assert (world.terminate_delay, world.ready_delay, world.dns_delay) == (1.0, 2.0, 0.0)
    assert world.sts.pod_management_policy == "Parallel" and sb.controller is not None


# --- end to end: the real CLI against the sandbox ------------------------------------------


def test_restart_test_passes_with_timings_on_a_healthy_sandbox(sandbox_factory, api_for):
    sb = sandbox_factory()
    api = api_for(sb)
    before = {n: p.metadata.uid for n, p in api.pods().items()}
    code, report = run_json(cli_args(sb, api, "restart-test", "--all", "--yes", "--timeout", "30"))
    assert code == 0, [f for f in report["findings"] if f["status"] == "fail"]
    restart = report["stats"]["restart"]
    assert [r["pod"] for r in restart] == ["web-2", "web-1", "web-0"]
    for r in restart:
        assert r["converged"] and None not in (r["ready_s"], r["dns_s"], r["http_s"]), r
        assert r["ready_s"] >= 0.1 + 0.3 - 0.05  # terminate_delay + ready_delay
        assert r["dns_s"] >= r["ready_s"] and r["http_s"] >= r["dns_s"]
        assert r["new_uid"] != r["old_uid"] and r["new_ips"] != r["old_ips"]
    converged = {f["subject"]: f["status"] for f in report["findings"] if f["check"] == "restart.converged"}
    assert converged == {"web-0": "pass", "web-1": "pass", "web-2": "pass"}
    assert {f["subject"] for f in report["findings"] if f["check"] == "restart.volume" and f["status"] == "pass"} == {
        "web-0", "web-1", "web-2"}
    after = {n: p.metadata.uid for n, p in api.pods().items()}
    assert all(after[n] != before[n] for n in before)
    deletes = [r for r in sb.sandbox.api.requests if r.verb == "delete"]
    assert [(r.name, r.status) for r in deletes] == [("web-2", 200), ("web-1", 200), ("web-0", 200)]


def test_restart_test_without_yes_names_the_pods_and_deletes_nothing(sandbox_factory, api_for):
    sb = sandbox_factory()
    api = api_for(sb)
    uids = {n: p.metadata.uid for n, p in api.pods().items()}
    code, out, err = run_cli(cli_args(sb, api, "restart-test", "--all", "--output", "json"))
    assert code == 2 and out == ""
    for name, uid in uids.items():
        assert f"{name} (uid {uid})" in err
    assert "--yes" in err
    assert not [r for r in sb.sandbox.api.requests if r.method != "GET"]
    assert {n: p.metadata.uid for n, p in api.pods().items()} == uids


@pytest.mark.parametrize("fault, check, subject, why", [
    ("dns-stuck", "restart.converged", "web-2", "DNS not reached"),
    ("replacement-wrong-name:web-2", "restart.converged", "web-2", "HTTP identity not reached"),
    ("replacement-new-volume:web-1", "restart.volume", "web-1", "not the same data"),
])
def test_restart_test_fails_on_each_fault(sandbox_factory, api_for, fault, check, subject, why):
    sb = sandbox_factory(faults=[fault])
    api = api_for(sb)
    code, report = run_json(cli_args(sb, api, "restart-test", "--all", "--yes", "--timeout", "4"))
    assert code == 1
    [fail] = failures(report, check)
    assert fail["subject"] == subject and why in fail["message"], fail
    stats = {r["pod"]: r for r in report["stats"]["restart"]}
    if fault == "dns-stuck":
        assert stats["web-2"]["ready_s"] is not None and stats["web-2"]["dns_s"] is None
        assert "web-1" not in stats  # it stopped deleting once a pod did not come back
        assert [f["subject"] for f in report["findings"] if f["check"] == "restart.converged"
                and f["status"] == "warn"] == ["web-1", "web-0"]
    elif fault.startswith("replacement-wrong-name"):
        assert stats["web-2"]["dns_s"] is not None and stats["web-2"]["http_s"] is None
        [identity] = failures(report, "http.identity")
        assert identity["subject"] == "web-2" and "web-0" in identity["message"]
    else:
        assert all(r["converged"] for r in stats.values())
        assert fail["details"]["before"] != fail["details"]["after"]


def test_scale_test_passes_on_a_healthy_sandbox(sandbox_factory, api_for):
    sb = sandbox_factory()
    api = api_for(sb)
    volumes = api.volumes()
    code, report = run_json(cli_args(sb, api, "scale-test", "--to", "1", "--yes", "--timeout", "5"))
    assert code == 0, [f for f in report["findings"] if f["status"] == "fail"]
    status = {(f["check"], f["subject"]): f["status"] for f in report["findings"] if f["check"].startswith("scale.")}
    assert status == {("scale.order-down", "web"): "pass", ("scale.order-up", "web"): "pass",
                      ("scale.pvc-kept", "web-1"): "pass", ("scale.pvc-kept", "web-2"): "pass",
                      ("scale.volume", "web-1"): "pass", ("scale.volume", "web-2"): "pass"}
    assert report["stats"]["scale"] == {"from": 3, "to": 1, "removed_order": ["web-2", "web-1"],
                                        "returned_order": ["web-1", "web-2"]}
    assert sb.world.sts.replicas == 3 and api.volumes() == volumes
    rules = sb.sandbox.api.rbac()
    assert ("apps", "statefulsets/scale", "patch") in rules and ("", "pods", "watch") in rules


def test_scale_test_parallel_passes(sandbox_factory, api_for):
    sb = sandbox_factory(pod_management_policy="Parallel")
    api = api_for(sb)
    code, report = run_json(cli_args(sb, api, "scale-test", "--to", "1", "--yes", "--timeout", "5"))
    [up] = [f for f in report["findings"] if f["check"] == "scale.order-up"]
    assert up["status"] == "pass" and "Parallel" in up["message"]
    fails = [f for f in report["findings"] if f["status"] == "fail"]
    assert code == 0, fails


def test_scale_test_fails_when_a_returning_pod_gets_a_new_volume(sandbox_factory, api_for):
    sb = sandbox_factory(faults=["replacement-new-volume:web-2"])
    api = api_for(sb)
    code, report = run_json(cli_args(sb, api, "scale-test", "--to", "1", "--yes", "--timeout", "5"))
    assert code == 1
    [fail] = failures(report, "scale.volume")
    assert fail["subject"] == "web-2" and "not its old data" in fail["message"]
    assert sb.world.sts.replicas == 3


def test_scale_test_without_yes_changes_nothing(sandbox_factory, api_for):
    sb = sandbox_factory()
    api = api_for(sb)
    code, _, err = run_cli(cli_args(sb, api, "scale-test", "--to", "1", "--output", "json"))
    assert code == 2 and "web-2, web-1" in err and "--yes" in err
    assert not [r for r in sb.sandbox.api.requests if r.method != "GET"]


def test_scale_test_returns_once_done_not_at_its_timeout(sandbox_factory, api_for):
    sb = sandbox_factory()
    api = api_for(sb)
    t0 = time.monotonic()
    code, _ = run_json(cli_args(sb, api, "scale-test", "--to", "1", "--yes", "--timeout", "120"))
    assert code == 0
    # Not a speed assertion: a run that waited out its --timeout (a stuck watch thread) takes 120 s.
    assert time.monotonic() - t0 < 60
