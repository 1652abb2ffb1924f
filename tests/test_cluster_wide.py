"""k8s/cluster-wide/: the opt-in component for `check -A`, rendered with kubectl kustomize (offline)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed: cannot render the manifests")


def render(tmp_path: Path, namespace: str) -> list[dict]:
    k8s = tmp_path / "k8s"
    shutil.copytree(ROOT / "k8s", k8s)
    text = (k8s / "kustomization.yaml").read_text().replace("namespace: default", f"namespace: {namespace}", 1)
    (k8s / "kustomization.yaml").write_text(text + "\ncomponents:\n  - cluster-wide\n")
    proc = subprocess.run([KUBECTL, "kustomize", str(k8s)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def test_the_component_binds_a_read_only_cluster_role_and_runs_the_cronjob_over_every_namespace(tmp_path):
    objs = render(tmp_path, "probes")
    [role] = [o for o in objs if o["kind"] == "ClusterRole"]
    assert all(set(r["verbs"]) <= {"get", "list"} and "secrets" not in r["resources"] for r in role["rules"])
    [binding] = [o for o in objs if o["kind"] == "ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ssdns", "namespace": "probes"}]
    [cron] = [o for o in objs if o["kind"] == "CronJob"]
    args = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["check", "--all-namespaces"] and "--state" not in args
    from ssdns.cli import build_parser

    ns = build_parser().parse_args(args)  # every flag exists
    assert ns.all_namespaces and ns.metrics_file == "/tmp/metrics/ssdns.prom"


def test_without_the_component_nothing_is_cluster_scoped():
    proc = subprocess.run([KUBECTL, "kustomize", str(ROOT / "k8s")], capture_output=True, text=True, timeout=60)
    kinds = {d["kind"] for d in yaml.safe_load_all(proc.stdout) if d}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}


def test_the_documented_cronjob_all_variant_parses():
    """k8s/cronjob.yaml documents replacing --statefulset web --service nginx by --all."""
    from ssdns.cli import build_parser

    [cron] = [d for d in yaml.safe_load_all((ROOT / "k8s/cronjob.yaml").read_text()) if d]
    args = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    i = args.index("--statefulset")
    assert args[i:i + 4] == ["--statefulset", "web", "--service", "nginx"]
    variant = [*args[:i], "--all", *args[i + 4:]]
    ns = build_parser().parse_args(variant)
    assert ns.all and ns.state == "configmap:ssdns-state"
    assert "--all" in (ROOT / "k8s/cronjob.yaml").read_text()
