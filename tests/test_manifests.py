"""Checks of the deployable artefacts: k8s/ (kustomize), k8s/disruptive/ and the Dockerfile.

The manifests are rendered with `kubectl kustomize` (offline; skipped with a reason when
kubectl is missing) and checked for what a user or a security review would notice:
pod/container hardening, resource limits, that the image's USER and ENTRYPOINT match the
manifests, CronJob policies, namespaced least-privilege RBAC, and that the demo workload
is a headless Service + StatefulSet that ssdns is actually pointed at.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml  # pyyaml (in the `test` extra)

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
DISRUPTIVE = K8S / "disruptive"
DOCKERFILE = ROOT / "Dockerfile"
VALIDATE_SCRIPT = ROOT / ".ci" / "validate-k8s"

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(
    KUBECTL is None,
    reason="kubectl not installed, so `kubectl kustomize k8s/` cannot render the manifests",
)

# ssdns subcommands that the manifests may run (the image ENTRYPOINT is ["ssdns"]).
SUBCOMMANDS = {"check", "restart-test"}
# Verbs that change or remove objects.
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "*"}
CLUSTER_SCOPED_KINDS = {
    "ClusterRole",
    "ClusterRoleBinding",
    "Namespace",
    "PersistentVolume",
    "StorageClass",
    "CustomResourceDefinition",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "PriorityClass",
}


# --------------------------------------------------------------------------- helpers


def _render(path: Path) -> list[dict]:
    proc = subprocess.run(
        [KUBECTL, "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"kubectl kustomize {path} failed:\n{proc.stderr}"
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert docs, f"kubectl kustomize {path} rendered nothing"
    return docs


def _pod_specs(objs: list[dict]) -> list[tuple[dict, dict]]:
    """(object, pod spec) for every object that has a pod template."""
    out = []
    for obj in objs:
        kind, spec = obj["kind"], obj.get("spec", {})
        if kind == "CronJob":
            out.append((obj, spec["jobTemplate"]["spec"]["template"]["spec"]))
        elif kind in {"Job", "StatefulSet", "Deployment", "DaemonSet", "ReplicaSet"}:
            out.append((obj, spec["template"]["spec"]))
        elif kind == "Pod":
            out.append((obj, spec))
    return out


def _is_ssdns_image(image: str) -> bool:
    repo = image.split("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    return last.split(":", 1)[0] == "ssdns"


def _ssdns_pods(objs: list[dict]) -> list[tuple[dict, dict]]:
    return [
        (obj, pod)
        for obj, pod in _pod_specs(objs)
        if any(_is_ssdns_image(c["image"]) for c in pod.get("containers", []))
    ]


def _ssdns_containers(objs: list[dict]):
    for obj, pod in _ssdns_pods(objs):
        for c in pod.get("initContainers", []) + pod["containers"]:
            yield obj, pod, c


def _arg(args: list[str], flag: str) -> str | None:
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def _name(obj: dict) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def _dockerfile_final_stage() -> list[str]:
    lines = []
    # Join continuation lines, drop comments.
    buf = ""
    for raw in DOCKERFILE.read_text().splitlines():
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        lines.append(buf + s)
        buf = ""
    froms = [i for i, ln in enumerate(lines) if ln.upper().startswith("FROM ")]
    assert froms, "Dockerfile has no FROM"
    return lines[froms[-1] :]


def _dockerfile_instr(name: str) -> list[str]:
    return [
        ln.split(None, 1)[1] if " " in ln else ""
        for ln in _dockerfile_final_stage()
        if ln.split(None, 1)[0].upper() == name
    ]


def _dockerfile_user() -> tuple[int, int | None]:
    users = _dockerfile_instr("USER")
    assert users, "final Dockerfile stage has no USER (the image would run as root)"
    m = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1].strip())
    assert m, f"USER must be numeric uid[:gid] so runAsNonRoot can verify it, got {users[-1]!r}"
    return int(m.group(1)), (int(m.group(2)) if m.group(2) else None)


def _kustomization(path: Path) -> dict:
    return yaml.safe_load((path / "kustomization.yaml").read_text())


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def default_objs() -> list[dict]:
    if KUBECTL is None:
        pytest.skip(
            "kubectl not installed, so `kubectl kustomize k8s/` cannot render the manifests"
        )
    return _render(K8S)


@pytest.fixture(scope="module")
def disruptive_objs() -> list[dict]:
    if KUBECTL is None:
        pytest.skip("kubectl not installed, so `kubectl kustomize k8s/disruptive` cannot render")
    return _render(DISRUPTIVE)


@pytest.fixture(scope="module", params=["default", "disruptive"])
def rendered(request, default_objs, disruptive_objs) -> list[dict]:
    return default_objs if request.param == "default" else disruptive_objs


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_entrypoint_is_ssdns_and_console_script_exists():
    entry = _dockerfile_instr("ENTRYPOINT")
    assert entry, "final stage has no ENTRYPOINT"
    assert json.loads(entry[-1]) == ["ssdns"], 'ENTRYPOINT must be exec form ["ssdns"]'
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "ssdns" in pyproject["project"].get("scripts", {}), (
        "ENTRYPOINT runs the `ssdns` console script, which pyproject.toml must define"
    )


def test_dockerfile_runs_as_numeric_non_root_user():
    uid, gid = _dockerfile_user()
    assert uid != 0 and gid != 0


def test_dockerfile_installs_every_runtime_extra():
    """The image must run every command the manifests and the README use: --api, --metrics-file, --junit."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = set(pyproject["project"].get("optional-dependencies", {})) - {"test"}
    assert {"kube", "metrics", "junit"} <= runtime
    installed = re.findall(r"ssdns\[([a-z,]+)\]|\.\[([a-z,]+)\]", DOCKERFILE.read_text())
    assert installed and all(set((a or b).split(",")) == runtime for a, b in installed), installed


def test_dockerfile_is_multistage_slim_and_env():
    text = DOCKERFILE.read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, flags=re.M)
    assert len(froms) >= 2, "expected a builder stage and a final stage"
    # Every stage is on the BASE build argument, python:3.12-slim unless a build says otherwise
    # (CI builds on a stand-in: .ci/image).
    assert re.search(r"^ARG BASE=python:3\.12-slim$", text, flags=re.M)
    assert all(f == "${BASE}" for f in froms), froms
    env = " ".join(_dockerfile_instr("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env
    final = "\n".join(_dockerfile_final_stage())
    assert not re.search(r"apt-get install|build-essential|\bgcc\b", final), (
        "no build tools in the final stage"
    )


# --------------------------------------------------------------------------- ssdns pods


@needs_kubectl
def test_expected_ssdns_workloads(default_objs, disruptive_objs):
    assert sorted(_name(o) for o, _ in _ssdns_pods(default_objs)) == [
        "CronJob/ssdns-probe",
        "Job/ssdns-check",
    ]
    assert [_name(o) for o, _ in _ssdns_pods(disruptive_objs)] == ["Job/ssdns-restart-test"]


@needs_kubectl
def test_ssdns_pod_security_context(rendered):
    uid, gid = _dockerfile_user()
    for obj, pod in _ssdns_pods(rendered):
        sc = pod.get("securityContext", {})
        where = _name(obj)
        assert sc.get("runAsNonRoot") is True, where
        assert sc.get("runAsUser") == uid, f"{where}: runAsUser != Dockerfile USER {uid}"
        if gid is not None:
            assert sc.get("runAsGroup") == gid, f"{where}: runAsGroup != Dockerfile group {gid}"
        assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert pod.get("automountServiceAccountToken") is True, where
        assert pod.get("serviceAccountName"), f"{where}: must not run as the default SA"
        assert pod.get("restartPolicy") == "Never", where
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")


@needs_kubectl
def test_ssdns_container_hardening_and_resources(rendered):
    found = 0
    for obj, pod, c in _ssdns_containers(rendered):
        found += 1
        where = f"{_name(obj)} container {c['name']}"
        sc = c.get("securityContext", {})
        assert sc.get("readOnlyRootFilesystem") is True, where
        assert sc.get("allowPrivilegeEscalation") is False, where
        assert sc.get("privileged") in (None, False), where
        assert "ALL" in sc.get("capabilities", {}).get("drop", []), where
        assert not sc.get("capabilities", {}).get("add"), where
        if "runAsUser" in sc:
            assert sc["runAsUser"] == _dockerfile_user()[0], where
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                assert r in res.get(kind, {}), f"{where}: missing resources.{kind}.{r}"
        assert c.get("terminationMessagePolicy") == "FallbackToLogsOnError", where
        # /tmp must be writable although the root filesystem is read-only.
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        assert tmp, f"{where}: no /tmp mount"
        assert "emptyDir" in volumes[tmp[0]["name"]], f"{where}: /tmp is not an emptyDir"
    assert found, "no ssdns containers rendered"


@needs_kubectl
def test_ssdns_args_start_with_subcommand(rendered):
    entry = json.loads(_dockerfile_instr("ENTRYPOINT")[-1])
    assert entry == ["ssdns"]
    for obj, _, c in _ssdns_containers(rendered):
        where = f"{_name(obj)} container {c['name']}"
        assert "command" not in c, f"{where}: must not override the image ENTRYPOINT"
        args = c.get("args") or []
        assert args, f"{where}: no args (would only print --help)"
        assert args[0] in SUBCOMMANDS, f"{where}: first arg {args[0]!r} is not an ssdns subcommand"
        assert all(isinstance(a, str) for a in args), f"{where}: args must all be strings"


@needs_kubectl
def test_ssdns_args_target_the_demo_workload(default_objs, disruptive_objs):
    """--statefulset/--service name objects that exist (while demo.yaml is included)."""
    kinds = {(o["kind"], o["metadata"]["name"]) for o in default_objs}
    if ("StatefulSet", "web") not in kinds:
        pytest.skip("demo.yaml is not in k8s/kustomization.yaml (checking another workload)")
    for obj, _, c in _ssdns_containers(default_objs + disruptive_objs):
        args = c["args"]
        assert ("StatefulSet", _arg(args, "--statefulset")) in kinds, _name(obj)
        assert ("Service", _arg(args, "--service")) in kinds, _name(obj)


@needs_kubectl
def test_ssdns_args_flags_exist_in_cli(default_objs, disruptive_objs):
    """Every --flag in the manifests appears in `ssdns <subcommand> --help`."""
    code = (
        "import sys; from ssdns.cli import main; "
        "sys.argv = ['ssdns'] + sys.argv[1:]; sys.exit(main())"
    )
    probe = subprocess.run(
        [sys.executable, "-c", "import ssdns.cli"], cwd=ROOT, capture_output=True, text=True
    )
    if probe.returncode != 0:
        pytest.skip(f"ssdns.cli is not importable here: {probe.stderr.strip().splitlines()[-1:]}")
    problems = []
    for obj, _, c in _ssdns_containers(default_objs + disruptive_objs):
        sub, flags = c["args"][0], [a.split("=", 1)[0] for a in c["args"] if a.startswith("--")]
        proc = subprocess.run(
            [sys.executable, "-c", code, sub, "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode != 0:
            problems.append(f"{_name(obj)}: `ssdns {sub} --help` failed: {proc.stderr.strip()}")
            continue
        missing = [f for f in flags if not re.search(re.escape(f) + r"(?![\w-])", proc.stdout)]
        if missing:
            problems.append(f"{_name(obj)}: `ssdns {sub} --help` does not list {missing}")
    assert not problems, "manifest args and the CLI disagree:\n" + "\n".join(problems)


# --------------------------------------------------------------------------- Job / CronJob


@needs_kubectl
def test_one_shot_jobs(rendered):
    for obj in rendered:
        if obj["kind"] != "Job":
            continue
        spec = obj["spec"]
        assert spec.get("backoffLimit") == 0, _name(obj)
        assert spec.get("activeDeadlineSeconds"), _name(obj)
        assert spec.get("ttlSecondsAfterFinished"), _name(obj)


@needs_kubectl
def test_cronjob_policies(default_objs):
    cronjobs = [o for o in default_objs if o["kind"] == "CronJob"]
    assert [o["metadata"]["name"] for o in cronjobs] == ["ssdns-probe"]
    spec = cronjobs[0]["spec"]
    assert spec["schedule"] == "*/5 * * * *"
    assert spec.get("concurrencyPolicy") == "Forbid"
    assert isinstance(spec.get("startingDeadlineSeconds"), int)
    assert 1 <= spec.get("successfulJobsHistoryLimit", -1) <= 10
    assert 1 <= spec.get("failedJobsHistoryLimit", -1) <= 10
    job = spec["jobTemplate"]["spec"]
    assert job.get("backoffLimit") == 0
    assert 0 < job.get("activeDeadlineSeconds", 0) < 300, "a run must end before the next one"


@needs_kubectl
def test_cronjob_state_configmap_is_the_one_rbac_allows(default_objs):
    cron = next(o for o in default_objs if o["kind"] == "CronJob")
    args = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    state = _arg(args, "--state")
    assert state and state.startswith("configmap:"), args
    cm = state.split(":", 1)[1]
    rules = [
        r
        for o in default_objs
        if o["kind"] == "Role"
        for r in o.get("rules", [])
        if "configmaps" in r.get("resources", []) and "update" in r.get("verbs", [])
    ]
    assert rules, "no Role lets ssdns update its state ConfigMap"
    assert all(cm in r.get("resourceNames", []) for r in rules), (
        f"update on configmaps must be limited to resourceNames [{cm}]"
    )


# --------------------------------------------------------------------------- RBAC


@needs_kubectl
def test_nothing_cluster_scoped(rendered):
    for obj in rendered:
        assert obj["kind"] not in CLUSTER_SCOPED_KINDS, f"{_name(obj)} is cluster-scoped"
        if obj["kind"] == "RoleBinding":
            assert obj["roleRef"]["kind"] == "Role", f"{_name(obj)} binds a ClusterRole"


@needs_kubectl
def test_no_wildcards_or_secrets(rendered):
    for obj in rendered:
        if obj["kind"] != "Role":
            continue
        for rule in obj.get("rules", []):
            assert "*" not in rule.get("apiGroups", []), _name(obj)
            assert "*" not in rule.get("resources", []), _name(obj)
            assert "*" not in rule.get("verbs", []), _name(obj)
            assert "secrets" not in rule.get("resources", []), _name(obj)
            assert not {"escalate", "bind", "impersonate"} & set(rule.get("verbs", []))


def _disruptive_rules(objs: list[dict]) -> list[tuple[str, dict]]:
    out = []
    for obj in objs:
        if obj["kind"] != "Role":
            continue
        for rule in obj.get("rules", []):
            res = rule.get("resources", [])
            touches = any(r == "*" or r.split("/")[0] in {"pods", "statefulsets"} for r in res)
            if touches and WRITE_VERBS & set(rule.get("verbs", [])):
                out.append((_name(obj), rule))
    return out


@needs_kubectl
def test_default_kustomization_cannot_disrupt(default_objs, disruptive_objs):
    assert _disruptive_rules(default_objs) == []
    # Sanity check of the check itself: the disruptive kustomization does have such rules.
    assert _disruptive_rules(disruptive_objs)


@needs_kubectl
def test_bindings_refer_to_existing_roles_and_service_accounts(default_objs, disruptive_objs):
    default_roles = {o["metadata"]["name"] for o in default_objs if o["kind"] == "Role"}
    for objs, extra_roles in ((default_objs, set()), (disruptive_objs, default_roles)):
        roles = {o["metadata"]["name"] for o in objs if o["kind"] == "Role"} | extra_roles
        sas = {o["metadata"]["name"] for o in objs if o["kind"] == "ServiceAccount"}
        for obj in objs:
            if obj["kind"] != "RoleBinding":
                continue
            assert obj["roleRef"]["name"] in roles, _name(obj)
            for s in obj["subjects"]:
                assert s["kind"] == "ServiceAccount" and s["name"] in sas, _name(obj)
                assert s.get("namespace") == obj["metadata"].get("namespace"), _name(obj)
        for obj, pod in _ssdns_pods(objs):
            assert pod["serviceAccountName"] in sas, _name(obj)


@needs_kubectl
def test_only_restart_test_uses_the_disruptive_service_account(default_objs, disruptive_objs):
    for obj, pod, c in _ssdns_containers(default_objs + disruptive_objs):
        if c["args"][0] == "restart-test":
            assert pod["serviceAccountName"] == "ssdns-disrupt", _name(obj)
        else:
            assert pod["serviceAccountName"] != "ssdns-disrupt", _name(obj)
    assert not any(o["metadata"]["name"] == "ssdns-disrupt" for o in default_objs), (
        "the ssdns-disrupt SA/Role must live only in k8s/disruptive"
    )


# --------------------------------------------------------------------------- demo workload


@needs_kubectl
def test_demo_service_is_headless_and_matches_statefulset(default_objs):
    services = {o["metadata"]["name"]: o for o in default_objs if o["kind"] == "Service"}
    stses = [o for o in default_objs if o["kind"] == "StatefulSet"]
    if not stses:
        pytest.skip("demo.yaml is not in k8s/kustomization.yaml")
    for sts in stses:
        svc = services.get(sts["spec"]["serviceName"])
        assert svc is not None, f"serviceName {sts['spec']['serviceName']!r} has no Service"
        assert svc["spec"].get("clusterIP") == "None", "governing Service must be headless"
        assert svc["spec"]["ports"] and all(p.get("name") for p in svc["spec"]["ports"]), (
            "Service ports need names for SRV records"
        )
        labels = sts["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= labels.items(), "Service does not select the pods"
        assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
        pod = sts["spec"]["template"]["spec"]
        port_names = {p.get("name") for c in pod["containers"] for p in c.get("ports", [])}
        for p in svc["spec"]["ports"]:
            if isinstance(p.get("targetPort"), str):
                assert p["targetPort"] in port_names, f"targetPort {p['targetPort']} not on pods"
        # Each pod serves its own hostname: written by an init container onto the PVC.
        init = " ".join(
            " ".join(c.get("command", []) + c.get("args", []))
            for c in pod.get("initContainers", [])
        )
        assert "hostname" in init and "index.html" in init
        assert any(c.get("readinessProbe", {}).get("httpGet") for c in pod["containers"])
        assert [v["metadata"]["name"] for v in sts["spec"]["volumeClaimTemplates"]] == ["www"]


# --------------------------------------------------------------------------- kustomizations


def test_kustomizations_agree_on_namespace_and_image():
    top, dis = _kustomization(K8S), _kustomization(DISRUPTIVE)
    assert top.get("namespace") and top.get("namespace") == dis.get("namespace")
    assert top.get("images") == dis.get("images")
    assert [i["name"] for i in top["images"]] == ["ssdns"]
    assert "restart-test-job.yaml" not in top.get("resources", [])
    assert "restart-test-job.yaml" in dis.get("resources", [])


@needs_kubectl
def test_everything_lands_in_the_configured_namespace(rendered):
    ns = _kustomization(K8S)["namespace"]
    for obj in rendered:
        assert obj["metadata"].get("namespace") == ns, _name(obj)


@needs_kubectl
def test_documented_retarget_patch_renders(tmp_path):
    """The commented-out `patches:` example in k8s/kustomization.yaml works when uncommented."""
    work = tmp_path / "k8s"
    shutil.copytree(K8S, work)
    text = (work / "kustomization.yaml").read_text()
    lines = text.splitlines()
    start = lines.index("# patches:")
    example = [ln[2:] for ln in lines[start:] if ln.startswith("# ")]
    (work / "kustomization.yaml").write_text("\n".join(lines[:start] + example) + "\n")
    objs = _render(work)
    for obj, _, c in _ssdns_containers(objs):
        assert _arg(c["args"], "--statefulset") == "my-sts", _name(obj)
        assert _arg(c["args"], "--service") == "my-headless-svc", _name(obj)


# --------------------------------------------------------------------------- schema validation


@needs_kubectl
def test_ci_validate_script_passes():
    if importlib.util.find_spec("kubernetes_validate") is None or not shutil.which(
        "kubernetes-validate"
    ):
        pytest.skip("kubernetes-validate not installed (pip install kubernetes-validate)")
    proc = subprocess.run(
        ["bash", str(VALIDATE_SCRIPT)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
