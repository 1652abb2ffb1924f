"""check --all's API reads: the StatefulSets come from the one list call and are not read again; the list's
items are parsed and shape-checked as a get's. Against the sandbox's API (recorded calls) and tests/badapi.py."""

from __future__ import annotations

import asyncio
import json

import pytest
from badapi import CANNED, ApiProxy, BadApi, _response
from conftest import run_cli
from faultkit import assert_within, run_ssdns

from ssdns import kube
from ssdns.errors import ApiError
from ssdns.sandbox.world import add_neighbour
from ssdns.target import ApiOptions


@pytest.fixture
def fleet(sandbox_factory, tmp_path):
    """web (3 pods) + db (2) in default, cache (2) in other; (sandbox, kubeconfig)."""
    sb = sandbox_factory()

    def grow(w):
        add_neighbour(w, "db", 2)
        add_neighbour(w, "cache", 2, namespace="other")
    sb.change(grow)
    return sb, sb.sandbox.write_kubeconfig(tmp_path / "kubeconfig")


def test_the_listed_statefulsets_are_not_read_again(fleet):
    """One list call, then per StatefulSet only its other objects: no get of a StatefulSet the list returned."""
    sb, kubeconfig = fleet
    before = len(sb.sandbox.api.requests)
    code, out, err = run_cli(["check", "-A", "--kubeconfig", str(kubeconfig), "--nameserver",
                              str(sb.sandbox.nameserver), "--cluster-domain", sb.world.zone, "--timeout", "10",
                              "-o", "json"])
    doc = json.loads(out)
    assert code == 0 and doc["summary"]["pass"] == 3, err
    calls = [r for r in sb.sandbox.api.requests[before:] if r.rule]
    sts = [(r.verb, r.namespace) for r in calls if r.resource == "statefulsets"]
    assert sts == [("list", None)]
    per_namespace = {ns: sorted(r.rule for r in calls if r.namespace == ns) for ns in ("default", "other")}
    one = [("", "endpoints", "get"), ("", "persistentvolumeclaims", "list"), ("", "pods", "list"),
           ("", "services", "get"), ("discovery.k8s.io", "endpointslices", "list")]
    assert per_namespace == {"default": sorted(one * 2), "other": one}
    # each result still carries what the StatefulSet says (replicas from its spec, as a get would give)
    assert {r["target"]["statefulset"]: r["target"]["replicas"] for r in doc["results"]} == \
        {"web": 3, "db": 2, "cache": 2}


def test_a_listed_statefulset_is_parsed_as_a_get_parses_it(fleet):
    sb, kubeconfig = fleet

    def richer(w):  # another claim template, a partitioned rollout in progress, a retention policy, annotations
        db = next(n for n in w.neighbours if n.statefulset == "db")
        db.sts.claim_template, db.sts.partition, db.sts.update_revision = "data", 1, "db-2"
        db.sts.retain_when_scaled, db.sts.annotations["ssdns/skip"] = "Delete", "false"
    sb.change(richer)
    api = kube.api_client(ApiOptions("on", str(kubeconfig)))
    try:
        async def both():
            listed = await kube.list_statefulsets(api, None, None)
            got = {(item.namespace, item.name): item.statefulset for item in listed}
            read = {key: await kube.read_statefulset(api, *key) for key in got}
            return got, read
        got, read = asyncio.run(both())
    finally:
        api.close()
    assert set(got) == {("default", "web"), ("default", "db"), ("other", "cache")}
    assert got == read
    db = got[("default", "db")]
    assert (db.claim_templates, db.partition, db.update_revision, db.retain_when_scaled) == (["data"], 1, "db-2", "Delete")


def test_a_listed_item_of_another_shape_is_one_line_exit_4(monkeypatch, tmp_path):
    """The list's items go through the get's parser and shape checks: one bad item is the list's bad answer."""
    good = {"metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": 2, "serviceName": "nginx"}}
    bad = {"metadata": {"name": "db", "namespace": "default"}, "spec": {"replicas": "three", "serviceName": "db"}}
    body = json.dumps({"kind": "StatefulSetList", "apiVersion": "apps/v1", "metadata": {"resourceVersion": "7"},
                       "items": [good, bad]}).encode()
    monkeypatch.setitem(CANNED, "bad-item", _response(200, body))
    with BadApi("bad-item") as api:
        run = run_ssdns("check", "--all", "--kubeconfig", str(api.kubeconfig(tmp_path / "kc")), "--nameserver",
                        "127.0.0.1:9", "--timeout", "2")
    assert run.returncode == 4, run
    line = run.one_line()
    assert "cannot list statefulsets" in line and "JSON of another shape: 'three' where a count belongs" in line, line
    assert api.requests == ["GET /apis/apps/v1/namespaces/default/statefulsets HTTP/1.1"]  # nothing more asked
    assert_within(run, 2)


def test_list_statefulsets_raises_for_an_item_of_another_shape(monkeypatch, tmp_path):
    body = json.dumps({"kind": "StatefulSetList", "items": [{"metadata": {}}]}).encode()
    monkeypatch.setitem(CANNED, "nameless", _response(200, body))
    with BadApi("nameless") as bad:
        api = kube.api_client(ApiOptions("on", str(bad.kubeconfig(tmp_path / "kc"))))
        try:
            with pytest.raises(ApiError) as caught:
                asyncio.run(kube.list_statefulsets(api, "default", None))
        finally:
            api.close()
    assert caught.value.kind == "bad-answer" and "JSON of another shape: no 'name'" in str(caught.value)


@pytest.mark.parametrize("mode", ["hang", "trickle"])
def test_pod_lists_that_never_end_still_end_the_run_at_its_deadline(sandbox_factory, tmp_path, mode):
    """Every pods list hangs (or trickles: each byte resets the read timeout, so the threads sending them stay
    stuck past the deadline): the run ends at --timeout all the same, each StatefulSet an entry saying why
    (timed out in its read, or its turn never came), and the process exits without waiting for its threads."""
    sb = sandbox_factory()
    sb.change(lambda w: [add_neighbour(w, f"s{i}", 2) for i in range(11)])

    def rule(method: str, path: str, seen) -> str:
        return mode if path.split("?")[0].endswith("/pods") else "pass"

    with ApiProxy(sb.sandbox.api_url, rule) as proxy:
        run = run_ssdns("check", "--all", "--kubeconfig", str(proxy.kubeconfig(tmp_path / "kc")), "--nameserver",
                        str(sb.sandbox.nameserver), "--cluster-domain", sb.world.zone, "--timeout", "3", "-o", "json",
                        timeout=60)
        pods_lists = sum(1 for _, path in proxy.seen if path.split("?")[0].endswith("/pods"))
    assert_within(run, 3)
    assert run.returncode == 4 and run.stderr == "", run
    doc = json.loads(run.stdout)
    assert doc["summary"]["statefulsets"] == 12 and doc["summary"]["error"] == 12 and doc["results"] == []
    said = {e["statefulset"]: (e["exit_code"], e["message"]) for e in doc["errors"]}
    timed_out = [name for name, (code, text) in said.items() if code == 4 and "did not answer in time" in text]
    too_late = [name for name, (code, text) in said.items() if code == 3 and "deadline passed before its turn" in text]
    assert len(timed_out) + len(too_late) == 12, said
    assert 1 <= len(timed_out) == pods_lists <= 4  # API_IN_FLIGHT StatefulSets' reads at once, no more
