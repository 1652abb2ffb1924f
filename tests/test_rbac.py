"""The Roles in k8s/ grant exactly the API calls ssdns makes: derived from recorded runs against the
sandbox API, not from a hand-kept list. Removing any granted verb makes a recorded call uncovered."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import run_json

ROOT = Path(__file__).resolve().parent.parent


def roles_for(service_account: str, *files: str) -> list[dict]:
    """The Roles bound to a ServiceAccount in the given manifest files (RoleBindings resolved)."""
    docs = [d for f in files for d in yaml.safe_load_all((ROOT / f).read_text()) if d]
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Role"}
    if "ssdns-read" not in roles:  # the disruptive account also binds the read-only Role from k8s/
        roles.update({d["metadata"]["name"]: d for d in yaml.safe_load_all((ROOT / "k8s/rbac.yaml").read_text())
                      if d and d["kind"] == "Role"})
    bound = [d["roleRef"]["name"] for d in docs if d["kind"] == "RoleBinding"
             and any(s["kind"] == "ServiceAccount" and s["name"] == service_account for s in d["subjects"])]
    return [roles[name] for name in bound]


def granted(roles: list[dict]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for role in roles for rule in role["rules"] for g in rule["apiGroups"]
            for r in rule["resources"] for v in rule["verbs"]}


def uncovered(requests, roles: list[dict]) -> list:
    """Recorded requests no rule allows (resourceNames honoured, as the authorizer does)."""
    def allows(rule, req):
        group, res, verb = req.rule
        return (group in rule["apiGroups"] and res in rule["resources"] and verb in rule["verbs"]
                and ("resourceNames" not in rule or req.name in rule["resourceNames"]))
    return [r for r in requests if r.rule and not any(allows(rule, r) for role in roles for rule in role["rules"])]


def without(roles: list[dict], group: str, resource: str, verb: str) -> list[dict]:
    out = []
    for role in roles:
        rules = []
        for rule in role["rules"]:
            if group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]:
                rule = dict(rule, verbs=[v for v in rule["verbs"] if v != verb])
            rules.append(rule)
        out.append(dict(role, rules=rules))
    return out


@pytest.fixture
def recorded_read_run(sandbox, tmp_path):
    """Everything the read-only account does: a check with the API, twice with ConfigMap state."""
    args = sandbox.api_args(tmp_path, "--state", "configmap:ssdns-state")
    for _ in range(2):  # the first run creates the ConfigMap, the second reads and updates it
        code, report = run_json(args)
        assert code == 0, [f for f in report["findings"] if f["status"] == "fail"]
    run_json(sandbox.api_args(tmp_path))
    for many in (["--all"], ["-l", "app=nginx"]):  # check --all / --selector: the same Role, plus list
        code, report = run_json(fleet_args(sandbox, tmp_path, *many))
        assert code == 0, report["summary"]
    return [r for r in sandbox.sandbox.api.requests if r.rule]


def fleet_args(sandbox, tmp_path, *extra: str) -> list[str]:
    kubeconfig = sandbox.sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    return ["check", *extra, "--kubeconfig", str(kubeconfig), "--nameserver", str(sandbox.sandbox.nameserver),
            "--cluster-domain", sandbox.world.zone, "--timeout", "10"]


def test_read_only_account_is_granted_exactly_what_check_uses(recorded_read_run):
    roles = roles_for("ssdns", "k8s/rbac.yaml")
    assert not uncovered(recorded_read_run, roles)
    used = {r.rule for r in recorded_read_run}
    assert granted(roles) == used, f"granted but never used: {granted(roles) - used}"


def test_removing_any_granted_verb_breaks_the_run(recorded_read_run):
    roles = roles_for("ssdns", "k8s/rbac.yaml")
    for group, resource, verb in sorted(granted(roles)):
        assert uncovered(recorded_read_run, without(roles, group, resource, verb)), (group, resource, verb)


def test_state_role_is_limited_to_its_configmap(recorded_read_run):
    cm = [r for r in recorded_read_run if r.resource == "configmaps" and r.verb in ("get", "update")]
    assert cm and {r.name for r in cm} == {"ssdns-state"}
    roles = roles_for("ssdns", "k8s/rbac.yaml")
    other = [type(r)(**{**r.__dict__, "name": "someone-elses"}) for r in cm]
    assert len(uncovered(other, roles)) == len(other)  # any other ConfigMap is refused


@pytest.fixture
def recorded_disruptive_run(sandbox, tmp_path):
    """Everything the disruptive account does: a restart test and a scale test against the sandbox."""
    kubeconfig = sandbox.sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    common = ["--statefulset", "web", "--kubeconfig", str(kubeconfig), "--nameserver",
              str(sandbox.sandbox.nameserver), "--timeout", "30", "--output", "json"]
    before = len(sandbox.sandbox.api.requests)
    for command in (["restart-test", "--ordinal", "2", "--yes"], ["scale-test", "--to", "1", "--yes"]):
        code, report = run_json([command[0], *common, *command[1:]])
        assert code == 0, [f for f in report["findings"] if f["status"] == "fail"]
    return [r for r in sandbox.sandbox.api.requests[before:] if r.rule]


def test_disruptive_account_is_granted_exactly_what_restart_and_scale_tests_use(recorded_disruptive_run):
    roles = roles_for("ssdns-disrupt", "k8s/disruptive/rbac.yaml")
    assert not uncovered(recorded_disruptive_run, roles)
    used = {r.rule for r in recorded_disruptive_run}
    assert granted(roles) == used, f"granted but never used: {granted(roles) - used}"
    for group, resource, verb in sorted(granted(roles)):
        assert uncovered(recorded_disruptive_run, without(roles, group, resource, verb)), (group, resource, verb)


def test_read_only_account_cannot_disrupt(recorded_disruptive_run):
    writes = [r for r in recorded_disruptive_run if r.verb in ("delete", "patch")]
    assert writes and len(uncovered(writes, roles_for("ssdns", "k8s/rbac.yaml"))) == len(writes)


def cluster_roles(path: str) -> list[dict]:
    docs = [d for d in yaml.safe_load_all((ROOT / path).read_text()) if d]
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
    bound = [d["roleRef"]["name"] for d in docs if d["kind"] == "ClusterRoleBinding"
             and any(s["kind"] == "ServiceAccount" and s["name"] == "ssdns" for s in d["subjects"])]
    return [roles[name] for name in bound]


def test_all_namespaces_is_granted_exactly_by_the_cluster_wide_component(sandbox_factory, tmp_path):
    """check -A reads every namespace: its ClusterRole (k8s/cluster-wide/) grants exactly the recorded
    calls, nothing more, and removing any verb leaves a call uncovered; the namespaced Role cannot do it."""
    from ssdns.sandbox.world import add_neighbour

    sb = sandbox_factory()
    sb.change(lambda w: add_neighbour(w, "cache", 2, namespace="other"))
    code, report = run_json(fleet_args(sb, tmp_path, "-A"))
    assert code == 0 and report["summary"]["statefulsets"] == 2
    calls = [r for r in sb.sandbox.api.requests if r.rule]
    assert {r.namespace for r in calls} == {None, "default", "other"}  # the list at cluster scope, then each
    roles = cluster_roles("k8s/cluster-wide/clusterrole.yaml")
    assert not uncovered(calls, roles)
    assert granted(roles) == {r.rule for r in calls}
    for group, resource, verb in sorted(granted(roles)):
        assert uncovered(calls, without(roles, group, resource, verb)), (group, resource, verb)
    assert all(rule["verbs"] and set(rule["verbs"]) <= {"get", "list"} for role in roles for rule in role["rules"])
