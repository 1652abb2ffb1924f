"""The real CLI cross-checks DNS against the sandbox's Kubernetes API (official client, real sockets)."""

from __future__ import annotations

import subprocess
import sys

from conftest import failures, run_cli, run_json

SVC = "nginx.default.svc.cluster.local"


def finding(report, check, subject):
    [f] = [f for f in report["findings"] if f["check"] == check and f["subject"] == subject]
    return f


def test_healthy_statefulset_agrees_with_the_api(sandbox, tmp_path):
    code, report = run_json(sandbox.api_args(tmp_path))
    assert code == 0, failures(report)
    assert report["target"]["api"] == "on"
    for pod in report["pods"]:
        api = pod["api"]
        sb_pod = sandbox.world.pod(pod["name"])
        assert api["uid"] == sb_pod.uid and api["ips"] == pod["ips"] == [sb_pod.ip]
        assert api["ready"] is True and api["node"].startswith("node-")
        assert api["pvcs"][0]["name"] == f"www-{pod['name']}" and api["pvcs"][0]["phase"] == "Bound"
        assert api["pvcs"][0]["volume"].startswith("pvc-")
        assert finding(report, "api.dns", pod["name"])["status"] == "pass"
    assert finding(report, "api.service", "nginx")["status"] == "pass"


def test_statefulset_alone_finds_its_service_through_the_api(sandbox, tmp_path):
    args = sandbox.api_args(tmp_path)
    i = args.index("--service")
    del args[i:i + 2]
    j = args.index("--replicas")
    del args[j:j + 2]
    code, report = run_json(args)
    assert code == 0 and report["target"]["service"] == "nginx" and report["target"]["replicas"] == 3


def test_not_ready_pod_is_rightly_absent(sandbox_factory, tmp_path):
    sb = sandbox_factory(faults=["not-ready:web-1"])
    code, report = run_json(sb.api_args(tmp_path))
    assert code == 0, failures(report)
    assert finding(report, "api.dns", "web-1")["status"] == "warn"
    assert "not Ready" in finding(report, "api.dns", "web-1")["message"]
    assert finding(report, "api.pod", "web-1")["status"] == "warn"


def test_not_ready_pod_is_published_with_publish_not_ready_addresses(sandbox_factory, tmp_path):
    sb = sandbox_factory(faults=["not-ready:web-1", "publish-not-ready"])
    code, report = run_json(sb.api_args(tmp_path))
    assert code == 0, failures(report)
    assert finding(report, "api.dns", "web-1")["status"] == "pass"
    assert report["pods"][1]["ips"] == [sb.world.pod("web-1").ip]


def test_stale_record_after_the_pod_changed_ip(sandbox_factory, tmp_path):
    sb = sandbox_factory()
    old = sb.world.pod("web-0").ip
    from ssdns.sandbox import apply_fault
    sb.change(lambda w: apply_fault(w, "stale-dns:web-0"))
    code, report = run_json(sb.api_args(tmp_path))
    assert code == 1
    f = finding(report, "api.dns", "web-0")
    assert f["status"] == "fail" and f["message"].startswith("stale") and f["details"]["ip"] == old
    assert f["details"]["expected"] == [sb.world.pod("web-0").ip]


def test_dns_giving_a_pod_another_pods_ip(sandbox_factory, tmp_path):
    sb = sandbox_factory(faults=["dns-other-pod:web-1=web-2"])
    code, report = run_json(sb.api_args(tmp_path))
    assert code == 1
    f = finding(report, "api.dns", "web-1")
    assert f["message"].startswith("wrong IP") and f["details"]["other_pod"] == "web-2"


def test_service_that_is_not_headless(sandbox_factory, tmp_path):
    sb = sandbox_factory(faults=["not-headless"])
    code, report = run_json(sb.api_args(tmp_path, "--no-http"))
    assert code == 1
    f = finding(report, "api.service", "nginx")
    assert f["status"] == "fail" and "not headless" in f["message"] and "clusterIP: None" in f["message"]
    assert report["findings"][0]["check"] in ("api.statefulset", "api.service")  # the cause comes first


def test_service_that_does_not_exist(sandbox_factory, tmp_path):
    sb = sandbox_factory(faults=["no-service"])
    code, report = run_json(sb.api_args(tmp_path, "--no-http"))
    assert code == 1
    assert "does not exist" in finding(report, "api.service", "nginx")["message"]


def test_pvc_not_bound(sandbox_factory, tmp_path):
    sb = sandbox_factory(faults=["pvc-pending:web-2"])
    code, report = run_json(sb.api_args(tmp_path))
    assert code == 1
    [f] = failures(report)
    assert (f["check"], f["subject"], f["details"]["phase"]) == ("api.pvc", "web-2", "Pending")


def test_subdomain_mismatch_leaves_the_pod_without_a_name(sandbox_factory, tmp_path):
    sb = sandbox_factory(faults=["wrong-subdomain:web-1"])
    code, report = run_json(sb.api_args(tmp_path))
    assert code == 1
    ep = finding(report, "api.endpoints", "web-1")
    assert ep["status"] == "fail" and "subdomain" in ep["message"]
    [member] = failures(report, "dns.service-members")
    assert member["details"]["pod"] == "web-1" and "the API says it is web-1's" in member["message"]
    srv = [f for f in failures(report, "dns.srv")]
    assert srv and "without a hostname" in srv[0]["message"]
    assert "127-10-0-2" not in [p["name"] for p in report["pods"]]  # a dashed name is not a pod


def test_forbidden_api_degrades_with_auto_and_fails_with_on(sandbox_factory, tmp_path):
    sb = sandbox_factory(faults=["api-forbidden:pods"])
    code, report = run_json(sb.api_args(tmp_path, api="auto"))
    assert code == 0
    f = finding(report, "api.access", "pods")
    assert f["status"] == "warn" and "grant verb 'list' on 'pods'" in f["message"]
    code, out, err = run_cli(sb.api_args(tmp_path, api="on"))
    assert code == 4 and out == ""
    assert len(err.strip().splitlines()) == 1 and "cannot list pods in namespace default (HTTP 403" in err


def test_auto_without_credentials_is_a_dns_only_check_that_says_so(sandbox):
    args = sandbox.args()
    args[args.index("--api") + 1] = "auto"
    code, report = run_json(args)
    assert code == 0 and report["target"]["api"] == "off"
    assert any("API not used" in n for n in report["notes"])


def test_api_off_never_imports_the_kubernetes_client(sandbox, tmp_path):
    kubeconfig = sandbox.sandbox.write_kubeconfig(tmp_path / "kc")
    code = ("import sys\nfrom ssdns.cli import main\nrc = main(sys.argv[1:])\n"
            "print('kubernetes' in {m.split('.')[0] for m in sys.modules}, rc)")
    args = [*sandbox.args("--output", "json"), "--kubeconfig", str(kubeconfig)]
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=30)
    assert proc.stdout.strip().splitlines()[-1] == "False 0", proc.stderr


def test_no_ready_pod_at_all_makes_the_service_nxdomain_as_the_spec_says(sandbox_factory, tmp_path):
    sb = sandbox_factory(faults=["not-ready:web-0", "not-ready:web-1", "not-ready:web-2"])
    code, report = run_json(sb.api_args(tmp_path))
    assert code == 0, failures(report)
    svc = finding(report, "dns.service", SVC)
    assert svc["status"] == "warn" and "NXDOMAIN, as the spec requires" in svc["message"]


def test_unreachable_api_with_auto(sandbox, tmp_path):
    """A kubeconfig whose server refuses connections: with --service the check degrades; without, exit 4."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the with-block ends: nothing listens there
    from ssdns.sandbox.api import kubeconfig_text

    kubeconfig = tmp_path / "dead.kubeconfig"
    kubeconfig.write_text(kubeconfig_text(f"http://127.0.0.1:{port}", "default", context="dead"))
    args = [*sandbox.args(), "--kubeconfig", str(kubeconfig)]
    args[args.index("--api") + 1] = "auto"
    code, report = run_json(args)
    assert code == 0
    [f] = [f for f in report["findings"] if f["check"] == "api.access"]  # one warning: the API as a whole
    assert f["status"] == "warn" and f["subject"] == f"http://127.0.0.1:{port}"
    assert "is unreachable (connection refused)" in f["message"] and "checked DNS and HTTP only" in f["message"]
    i = args.index("--service")
    code, out, err = run_cli(args[:i] + args[i + 2:])
    assert code == 4 and "so the Service is unknown" in err and len(err.strip().splitlines()) == 1


def test_api_runs_do_not_load_the_generated_api_classes(sandbox, tmp_path):
    """The generated API classes and models cost ~0.6 s and 25 MiB: a CronJob run must not pay for them."""
    code = ("import sys\nfrom ssdns.cli import main\nrc = main(sys.argv[1:])\n"
            "heavy = [m for m in ('kubernetes.client.api.core_v1_api', 'kubernetes.client.models.v1_pod') "
            "if m in sys.modules]\nprint(heavy, rc)")
    args = sandbox.api_args(tmp_path, "--output", "json", "--state", "configmap:ssdns-state")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip().splitlines()[-1] == "[] 0", proc.stderr
