"""The wiring and rollout checks end to end: the real CLI against the sandbox's DNS, pods and Kubernetes
API, one sandbox fault each; every finding names what to change (its `fix`)."""

from __future__ import annotations

import pytest
from conftest import failures, run_json


def findings(report: dict, check: str, status: str | None = None) -> dict[str, dict]:
    return {f["subject"]: f for f in report["findings"]
            if f["check"] == check and (status is None or f["status"] == status)}


def test_a_healthy_sandbox_passes_the_wiring_checks(sandbox, tmp_path):
    code, report = run_json(sandbox.api_args(tmp_path))
    assert code == 0, failures(report)
    ran = {f["check"] for f in report["findings"]}
    assert {"wiring.selector", "wiring.name-length", "wiring.host-network", "wiring.over-capacity",
            "rollout.update", "api.pvc-retention"} <= ran
    assert "claim retention: whenScaled Retain, whenDeleted Retain" in findings(report, "api.pvc-retention")["web"]["message"]


def test_selector_mismatch_names_key_and_values(sandbox_factory, tmp_path):
    sb = sandbox_factory(faults=["selector-mismatch"])
    code, report = run_json(sb.api_args(tmp_path))
    assert code == 1
    [f] = findings(report, "wiring.selector").values()
    assert f["status"] == "fail" and "selects app=nginx-other, but web-0 has app=nginx" in f["message"]
    assert f["details"]["fix"].startswith("make spec.selector of Service 'nginx'")


def test_host_network(sandbox_factory, tmp_path):
    code, report = run_json(sandbox_factory(faults=["host-network"]).api_args(tmp_path))
    assert code == 1
    assert set(findings(report, "wiring.host-network", "fail")) == {"web-0", "web-1", "web-2"}


def test_istio_sidecar_is_a_warning_not_a_failure(sandbox_factory, tmp_path):
    code, report = run_json(sandbox_factory(faults=["istio-sidecar"]).api_args(tmp_path))
    assert code == 0
    [f] = findings(report, "wiring.istio").values()
    assert f["status"] == "warn" and f["details"]["pods"] == ["web-0", "web-1", "web-2"]


def test_a_long_statefulset_name(sandbox_factory, tmp_path):
    name = "a" * 53
    code, report = run_json(sandbox_factory(statefulset=name).api_args(tmp_path))
    assert code == 1
    assert "53 characters" in findings(report, "wiring.name-length", "fail")[name]["message"]


def test_stuck_rollout_is_the_rollback_trap_with_the_delete_step(sandbox_factory, tmp_path):
    code, report = run_json(sandbox_factory(faults=["stuck-rollout:web-2"]).api_args(tmp_path))
    assert code == 1
    f = findings(report, "rollout.update")["web"]
    assert f["status"] == "fail" and "web-2 runs the update revision web-5d8c7b9f4" in f["message"]
    assert "partition 2" in f["message"] and "kubernetes/kubernetes#67250" in f["message"]
    assert f["details"]["fix"].endswith("kubectl delete pod web-2 -n default")


def test_stuck_terminating(sandbox_factory, tmp_path):
    code, report = run_json(sandbox_factory(faults=["stuck-terminating:web-1"]).api_args(tmp_path))
    assert code == 1
    f = findings(report, "rollout.terminating")["web-1"]
    assert "terminating for 60 min (grace period 30 s)" in f["message"]
    assert "kubectl delete pod web-1 -n default --grace-period=0 --force" in f["details"]["fix"]


def test_not_ready_for_long_with_nxdomain_hints_publish_not_ready(sandbox_factory, tmp_path):
    code, report = run_json(sandbox_factory(faults=["stuck-not-ready:web-1"]).api_args(tmp_path))
    [f] = findings(report, "wiring.not-ready-dns").values()
    assert f["details"]["pods"] == ["web-1"] and "publishNotReadyAddresses: true" in f["details"]["fix"]
    sb = sandbox_factory(faults=["stuck-not-ready:web-1", "publish-not-ready"])
    code, report = run_json(sb.api_args(tmp_path))
    assert not findings(report, "wiring.not-ready-dns")


def test_endpoints_over_capacity(sandbox_factory, tmp_path):
    code, report = run_json(sandbox_factory(faults=["over-capacity"]).api_args(tmp_path))
    assert code == 0
    f = findings(report, "wiring.over-capacity")["nginx"]
    assert f["status"] == "warn" and "over-capacity: truncated" in f["message"]


def test_a_second_ptr_record_names_the_other_service(sandbox_factory, tmp_path):
    code, report = run_json(sandbox_factory(faults=["second-ptr:web-1=cache"]).api_args(tmp_path))
    assert code == 1
    [f] = failures(report)
    assert (f["check"], f["subject"]) == ("dns.ptr-count", "web-1")
    assert ".cache.default.svc.cluster.local." in f["message"]


@pytest.mark.parametrize("fault, status", [(None, "pass"), ("retention-delete", "warn")])
def test_retained_claims_after_a_scale_down_are_listed_with_their_volumes(sandbox_factory, tmp_path, fault, status):
    sb = sandbox_factory(pods=4, faults=[fault] if fault else [])
    sb.change(lambda w: w.scale(2))  # the claims of web-2 and web-3 stay
    volumes = {c.pod: c.volume_name for c in sb.world.pvcs}
    code, report = run_json(sb.api_args(tmp_path))
    kept = findings(report, "api.pvc-retention")
    assert {s: (f["status"], f["details"]["volume"]) for s, f in kept.items() if s != "web"} == {
        "web-2": (status, volumes["web-2"]), "web-3": (status, volumes["web-3"])}
