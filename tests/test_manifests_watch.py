"""k8s/watch (a Deployment) and k8s/watch-per-node (a DaemonSet) for `ssdns watch`, rendered with
`kubectl kustomize` (offline; skipped with a reason without kubectl): hardening as the other manifests,
args the CLI accepts, probes and the metrics port wired to the endpoints ssdns serves, the node name from
the downward API as a metric label, namespaced least privilege, and the prometheus-operator component
(PodMonitor, PrometheusRule, Grafana dashboard) referring only to metrics ssdns exposes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from test_manifests import KUBECTL, ROOT, WRITE_VERBS, _dockerfile_user, _kustomization, _name, _render, _ssdns_containers

WATCH = ROOT / "k8s" / "watch"
PER_NODE = ROOT / "k8s" / "watch-per-node"
COMPONENT = WATCH / "prometheus"

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed, so `kubectl kustomize` cannot "
                                "render k8s/watch")


@pytest.fixture(scope="module")
def watch_objs() -> list[dict]:
    return _render(WATCH)


@pytest.fixture(scope="module")
def per_node_objs() -> list[dict]:
    return _render(PER_NODE)


@pytest.fixture(scope="module")
def with_component(tmp_path_factory) -> list[dict]:
    """k8s/watch with the prometheus component, as a user enables it (kustomize `components:`)."""
    d = tmp_path_factory.mktemp("watch-prom")
    (d / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(WATCH, d)], "components": [os.path.relpath(COMPONENT, d)]}))
    return _render(d)


def _one(objs: list[dict], kind: str) -> dict:
    found = [o for o in objs if o["kind"] == kind]
    assert len(found) == 1, [_name(o) for o in objs]
    return found[0]


@pytest.mark.parametrize("which", ["watch", "per-node"])
def test_watch_pods_are_hardened_and_serve_their_probes_on_the_metrics_port(which, watch_objs, per_node_objs):
    from ssdns.cli import build_parser

    objs = watch_objs if which == "watch" else per_node_objs
    kind = "Deployment" if which == "watch" else "DaemonSet"
    workload = _one(objs, kind)
    pod = workload["spec"]["template"]["spec"]
    uid, gid = _dockerfile_user()
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == uid
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert not pod.get("hostNetwork") and pod["serviceAccountName"].startswith("ssdns-watch")
    [(obj, _, c)] = list(_ssdns_containers(objs))
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and c["resources"]["limits"]["memory"]
    args = c["args"]
    assert args[0] == "watch"
    ns = build_parser().parse_args(args)  # every flag exists and parses
    port = int(ns.listen.rpartition(":")[2])
    assert c["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert pod["terminationGracePeriodSeconds"] >= 3  # SIGTERM: done within 2 s
    assert {v["mountPath"] for v in c["volumeMounts"]} == {"/tmp"}


def test_the_deployment_keeps_state_and_runs_one_replica(watch_objs):
    dep = _one(watch_objs, "Deployment")
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    state = args[args.index("--state") + 1]
    names = {n for o in watch_objs if o["kind"] == "Role" for r in o["rules"] for n in r.get("resourceNames", [])}
    assert state == "configmap:ssdns-watch-state" and names == {"ssdns-watch-state"}
    svc = _one(watch_objs, "Service")
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert svc["spec"]["ports"][0]["targetPort"] == "metrics"


def test_the_daemonset_labels_its_metrics_with_the_node_from_the_downward_api(per_node_objs):
    ds = _one(per_node_objs, "DaemonSet")
    c = ds["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert c["args"][c["args"].index("--metric-label") + 1] == "node=$(NODE_NAME)"  # the kubelet expands it
    assert "--state" not in c["args"]  # one state per target: the nodes would share it


@pytest.mark.parametrize("which", ["watch", "per-node"])
def test_watch_rbac_is_namespaced_read_only_with_watch_on_pods(which, watch_objs, per_node_objs):
    objs = watch_objs if which == "watch" else per_node_objs
    assert not [o for o in objs if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    rules = [(g, r, v, tuple(rule.get("resourceNames", ()))) for o in objs if o["kind"] == "Role"
             for rule in o["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]]
    assert ("", "pods", "watch", ()) in rules and ("", "pods", "list", ()) in rules
    writes = [x for x in rules if x[2] in WRITE_VERBS]
    assert all(r == "configmaps" for _, r, _, _ in writes), writes
    assert all("*" not in (g, r, v) for g, r, v, _ in rules)


def test_kustomizations_agree_with_k8s_on_namespace_and_image():
    base = _kustomization(ROOT / "k8s")
    for d in (WATCH, PER_NODE):
        k = _kustomization(d)
        assert k["namespace"] == base["namespace"] and k["images"] == base["images"], d


def _exposed_metrics() -> set[str]:
    """Every metric name ssdns watch serves: the check's (metrics.py) and the watch's (watchweb.py)."""
    names: set[str] = set()
    for f in ("ssdns/metrics.py", "ssdns/watchweb.py"):
        names |= set(re.findall(r'"(ssdns_[a-z_]+)"', (ROOT / f).read_text()))
    counters = {"ssdns_watch_replacements", "ssdns_watch_wrong_identity_answers", "ssdns_watch_reconnects",
                "ssdns_watch_relists", "ssdns_watch_full_checks"}
    assert counters <= names
    return names | {f"{n}_total" for n in counters} | {f"ssdns_convergence_seconds_{s}" for s in ("bucket", "sum",
                                                                                                   "count")}


def _used(expr: str) -> set[str]:
    return set(re.findall(r"\b(ssdns_[a-z_]+)", expr))


def test_the_prometheus_component_scrapes_the_watch_pods_and_alerts_on_real_metrics(with_component, watch_objs,
                                                                                    per_node_objs):
    pm = _one(with_component, "PodMonitor")
    sel = pm["spec"]["selector"]
    for objs in (watch_objs, per_node_objs):
        labels = next(o for o in objs if o["kind"] in ("Deployment", "DaemonSet"))["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in sel["matchLabels"].items())
        assert all(labels.get(e["key"]) in e["values"] for e in sel["matchExpressions"])
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    rule = _one(with_component, "PrometheusRule")
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    exposed = _exposed_metrics()
    assert exprs and all(_used(e) and _used(e) <= exposed for e in exprs), [e for e in exprs if not _used(e) <= exposed]
    assert any('stage="dns"' in e for e in exprs)


def test_the_grafana_dashboard_shows_verdicts_and_convergence_histograms(with_component):
    cm = next(o for o in with_component if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "ssdns-watch-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dash = json.loads(cm["data"]["ssdns-watch-dashboard.json"])
    assert dash == json.loads((COMPONENT / "ssdns-watch-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exposed = _exposed_metrics()
    assert all(_used(e) <= exposed for e in exprs)
    assert any("ssdns_watch_last_check_ok" in e for e in exprs) and any("ssdns_check_ok" in e for e in exprs)
    assert sum("ssdns_convergence_seconds_bucket" in e for e in exprs) >= 3
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


def test_ci_validates_the_watch_directories():
    """.ci/validate-k8s (run by test_manifests.py) validates these two against the 1.32 schemas too."""
    text = (ROOT / ".ci" / "validate-k8s").read_text()
    assert "k8s/watch " in text and "k8s/watch-per-node;" in text


def test_readme_documents_both_ways_to_ship_it():
    readme = Path(ROOT / "README.md").read_text()
    assert "kubectl apply -k k8s/watch" in readme and "k8s/watch-per-node" in readme
