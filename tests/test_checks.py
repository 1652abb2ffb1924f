"""Every registered check, judged from Evidence built by hand: no sockets, no clock."""

from __future__ import annotations

import dataclasses

import pytest
from evidence_kit import NOW, T, by, evidence, facts, judge, lookup, observed, statuses

from ssdns import checks
from ssdns.converge import Convergence
from ssdns.dnsquery import Outcome
from ssdns.change_evidence import HistoryEvidence, RestartEvidence, ScaleEvidence
from ssdns.facts import ApiProblem, EndpointFacts, PvcFacts, ServiceFacts
from ssdns.httpprobe import HttpObservation
from ssdns.model import Status

SVC = "nginx.default.svc.cluster.local"
SRV_OK = [f"0 100 80 web-{i}.{SVC}." for i in range(3)]


def test_a_healthy_statefulset_passes_every_check_that_has_its_evidence():
    f = facts()
    t = T.with_(http=True)
    out = judge(evidence(observed(t=t, srv=SRV_OK), t=t, f=f))
    assert [x for x in out if x.status is not Status.PASS] == []
    judged = {x.check for x in out}
    assert judged == {"dns.service", "dns.pod", "dns.service-members", "dns.srv", "dns.ptr", "pods.ordinals",
                      "dns.schema", "http.identity", "api.statefulset", "api.service", "api.pod", "api.endpoints",
                      "api.dns", "api.pvc", "wiring.selector", "wiring.name-length", "wiring.host-network",
                      "wiring.over-capacity", "rollout.update", "api.pvc-retention"}
    # listed check by check, in catalogue order
    ranks = [[c.id for c in checks.catalogue()].index(x.check) for x in out]
    assert ranks == sorted(ranks)


def test_missing_evidence_skips_the_check_with_a_note_never_a_guess():
    j = checks.judge(evidence())
    assert not any(x.check in ("dns.srv", "http.identity") or x.check.startswith("api.") for x in j.findings)
    assert j.notes == ["SRV not checked: give --port-name NAME (the Service's named port)"]


# --- dns.service -----------------------------------------------------------------------------------

def test_service_nxdomain_is_right_only_with_no_ready_pods():
    out = judge(evidence(observed(service=[])))
    assert "no such name (NXDOMAIN): no Service of that name" in by(out, "dns.service")[SVC].message
    none = T.with_(replicas=0)
    out = judge(evidence(observed({}, [], t=none), t=none))
    assert by(out, "dns.service")[SVC].status is Status.WARN


def test_service_aaaa_failure_warns():
    obs = observed()
    obs.service_aaaa = lookup(T.service_fqdn, "AAAA", outcome=Outcome.SERVFAIL)
    [warn] = [x for x in judge(evidence(obs)) if x.check == "dns.service" and x.status is Status.WARN]
    assert "AAAA query failed" in warn.message and "SERVFAIL" in warn.message


# --- dns.pod, dns.unique-ip, dns.service-members ---------------------------------------------------

def test_pod_name_with_two_addresses_and_a_missing_pod_fail():
    obs = observed({"web-0": ["10.0.0.1", "10.0.0.9"], "web-1": [], "web-2": ["10.0.0.3"]})
    out = by(judge(evidence(obs)), "dns.pod")
    assert "has 2 IPv4 addresses" in out["web-0"].message
    assert "the pod is gone, not Ready, or its subdomain does not match" in out["web-1"].message
    assert out["web-2"].status is Status.PASS


def test_two_pod_names_sharing_an_ip_fail_both():
    out = by(judge(evidence(observed({"web-0": ["10.0.0.1"], "web-1": ["10.0.0.1"], "web-2": ["10.0.0.3"]}))),
             "dns.unique-ip")
    assert set(out) == {"web-0", "web-1"} and out["web-0"].details["other_pods"] == ["web-1"]


def test_service_members_missing_and_foreign_addresses():
    obs = observed(service=["10.0.0.1", "10.0.0.2", "10.9.9.9"])
    out = judge(evidence(obs))
    assert statuses(out, "dns.service-members") == {"web-0": "pass", "web-1": "pass", "web-2": "fail", SVC: "fail"}
    assert "a stale or foreign endpoint" in by(out, "dns.service-members")[SVC].message
    # with the API, an unclaimed address is named as the pod it belongs to
    f = facts(**{"web-2": {"subdomain": "other"}})
    obs = observed({"web-0": ["10.0.0.1"], "web-1": ["10.0.0.2"], "web-2": []}, ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
    msg = by(judge(evidence(obs, f=f)), "dns.service-members")[SVC].message
    assert "the API says it is web-2's, which has no per-pod name" in msg


# --- dns.srv, dns.ptr -------------------------------------------------------------------------------

def test_srv_wrong_port_duplicate_foreign_and_dashed_targets():
    srv = [f"0 100 81 web-0.{SVC}.", f"0 100 80 web-1.{SVC}.", f"0 100 80 web-1.{SVC}.",
           f"0 100 80 10-0-0-3.{SVC}.", "0 100 80 elsewhere.example."]
    obs = observed({"web-0": ["10.0.0.1"], "web-1": ["10.0.0.2"]}, ["10.0.0.1", "10.0.0.2", "10.0.0.3"], srv=srv)
    out = by(judge(evidence(obs, t=T.with_(port=80))), "dns.srv")
    assert "port 81" in out["web-0"].message
    assert "2 times" in out["web-1"].message
    assert "endpoint without a hostname" in out[f"10-0-0-3.{SVC}"].message
    assert "is not a pod of" in out["elsewhere.example"].message


def test_srv_outcome_is_worded_for_srv():
    obs = observed(srv=[])
    obs.srv = lookup(f"_web._tcp.{SVC}.", "SRV", outcome=Outcome.NODATA)
    msg = by(judge(evidence(obs)), "dns.srv")[f"_web._tcp.{SVC}"].message
    assert msg == "no SRV records: the name exists but has no SRV record (NODATA)"
    obs.srv = lookup(f"_web._tcp.{SVC}.", "SRV")
    msg = by(judge(evidence(obs)), "dns.srv")[f"_web._tcp.{SVC}"].message
    assert "no port of that name and protocol" in msg and "the pod is gone" not in msg


def test_ptr_naming_another_pod_or_nothing_fails():
    obs = observed(ptr={"10.0.0.1": [f"web-2.{SVC}."], "10.0.0.2": []})
    out = by(judge(evidence(obs)), "dns.ptr")
    assert "another pod's name (web-2)" in out["web-0"].message
    assert "knows no pod or endpoint with this IP" in out["web-1"].message
    assert out["web-2"].status is Status.PASS


# --- pods.ordinals, dns.schema ----------------------------------------------------------------------

def test_ordinals_missing_extra_and_gaps():
    obs = observed({"web-0": ["10.0.0.1"], "web-1": [], "web-2": ["10.0.0.3"], "web-5": ["10.0.0.6"]})
    out = judge(evidence(obs))
    assert "1 of 3 expected pods have no DNS name: web-1" in by(out, "pods.ordinals")["web"].message
    assert by(out, "pods.ordinals")["web-5"].status is Status.WARN
    loose = T.with_(replicas=None)
    out = judge(evidence(observed({"web-0": ["10.0.0.1"], "web-2": ["10.0.0.3"]}, t=loose), t=loose))
    assert by(out, "pods.ordinals")["web"].details["missing_ordinals"] == [1]


def test_schema_version_other_or_missing_warns():
    out = by(judge(evidence(observed(version='"1.0.0"'))), "dns.schema")["dns-version.cluster.local"]
    assert out.status is Status.WARN and "expected 1.1.0" in out.message
    obs = observed()
    obs.version = lookup("dns-version.cluster.local.", "TXT", outcome=Outcome.NXDOMAIN)
    msg = by(judge(evidence(obs)), "dns.schema")["dns-version.cluster.local"].message
    assert "schema record" in msg and "the pod is gone" not in msg


# --- http.identity ----------------------------------------------------------------------------------

HT = T.with_(http=True)


def test_http_identity_swap_error_status_and_mismatch():
    obs = observed(t=HT, http={"web-0": "web-0", "web-1": "web-2", "web-2": "hello"})
    out = by(judge(evidence(obs, t=HT)), "http.identity")
    assert out["web-0"].status is Status.PASS
    assert "identity swap" in out["web-1"].message and out["web-1"].details["other_pod"] == "web-2"
    assert "expected 'web-2'" in out["web-2"].message
    obs.pods["web-0"].http = HttpObservation("web-0", "http://10.0.0.1:80/", 503, "busy")
    assert "answered HTTP 503" in by(judge(evidence(obs, t=HT)), "http.identity")["web-0"].message


@pytest.mark.parametrize("match, expect, verdict", [
    ("exact", "{pod}", Status.FAIL), ("regex", "^{pod}$", Status.FAIL), ("regex", "^{pod}", Status.PASS),
    ("contains", "{pod}", Status.PASS)])
def test_a_body_cut_at_the_cap_cannot_pass_an_exact_or_end_anchored_match(match, expect, verdict):
    t = HT.with_(match=match, expect=expect)
    obs = observed(t=t)
    p = obs.pods["web-0"]
    p.http = dataclasses.replace(p.http, body="web-0", truncated=True)  # what a capped read of "web-0..." gives
    found = by(judge(evidence(obs, t=t)), "http.identity")["web-0"]
    assert found.status is verdict
    if verdict is Status.FAIL:
        assert "longer than ssdns reads" in found.message and found.details["truncated"] is True


def test_a_cut_body_that_does_not_contain_the_identity_says_it_was_cut():
    t = HT.with_(match="contains")
    obs = observed(t=t)
    p = obs.pods["web-1"]
    p.http = dataclasses.replace(p.http, body="x" * 100, truncated=True)
    found = by(judge(evidence(obs, t=t)), "http.identity")["web-1"]
    assert found.status is Status.FAIL and "in the part ssdns reads (the body is longer)" in found.message


# --- api.* ------------------------------------------------------------------------------------------

def test_api_access_statefulset_and_service_configuration():
    f = facts()
    f.problems.append(ApiProblem("list", "endpointslices", 403, "forbidden"))
    f.statefulset.service_name = "other"
    f.service.ports = [(None, 80, "TCP")]
    out = judge(evidence(f=f))
    assert by(out, "api.access")["endpointslices"].message.startswith("cannot list endpointslices (HTTP 403: forbidden)")
    assert "serviceName is 'other'" in by(out, "api.statefulset")["web"].message
    assert by(out, "api.service", Status.WARN)["nginx"].message.startswith("no named port")
    assert "api.endpoints" not in {x.check for x in out}  # its evidence was refused: silent, not guessed
    f.service.headless, f.service.cluster_ip = False, "10.96.0.9"
    assert "not headless" in by(judge(evidence(f=f)), "api.service")["nginx"].message


def test_api_pod_not_ready_terminating_and_missing():
    f = facts(**{"web-1": {"ready": False}, "web-2": {"terminating": True}})
    del f.pods["web-0"]
    out = by(judge(evidence(f=f)), "api.pod")
    assert "does not exist in the API" in out["web-0"].message
    assert out["web-1"].status is Status.WARN and out["web-2"].status is Status.WARN


def test_api_endpoints_wrong_hostname_and_addresses():
    f = facts()
    f.endpoints[1] = dataclasses.replace(f.endpoints[1], hostname=None)
    f.endpoints[2] = dataclasses.replace(f.endpoints[2], addresses=["10.0.0.99"])
    out = by(judge(evidence(f=f)), "api.endpoints")
    assert "hostname None" in out["web-1"].message
    assert "lists 10.0.0.99 for web-2" in out["web-2"].message


def test_api_dns_extra_stale_and_wrong():
    f = facts(**{"web-1": {"ips": ["10.0.0.7"]}, "web-2": {"terminating": True}})
    obs = observed({"web-0": ["10.0.0.7"], "web-1": ["10.0.0.2"], "web-2": ["10.0.0.3"]})
    out = by(judge(evidence(obs, f=f)), "api.dns")
    assert "which is web-1's IP" in out["web-0"].message
    assert out["web-1"].message.startswith("stale:")
    assert out["web-2"].message.startswith("extra:")


def test_api_service_members_stale_and_missing():
    f = facts()
    obs = observed(service=["10.0.0.1", "10.0.0.2", "10.0.0.8"])
    out = by(judge(evidence(obs, f=f)), "api.service-members")
    assert out[SVC].message.startswith("stale:") and "does not answer it" in out["web-2"].message


def test_api_pvc_pending_and_missing():
    f = facts()
    f.pvcs["www-web-1"] = PvcFacts("www-web-1", "Pending", None)
    del f.pvcs["www-web-2"]
    out = by(judge(evidence(f=f)), "api.pvc")
    assert out["web-0"].status is Status.PASS and "Pending" in out["web-1"].message
    assert "does not exist" in out["web-2"].message


# --- wiring.*, rollout.*, api.pvc-retention, dns.ptr-count: the mistakes users make, each with a fix -------

def test_service_name_empty_elsewhere_or_missing_says_what_to_change():
    f = facts()
    f.statefulset.service_name = ""
    [x] = by(judge(evidence(f=f)), "api.statefulset").values()
    assert "no spec.serviceName" in x.message and "fix: set spec.serviceName" in x.message
    f = facts()
    f.service = ServiceFacts("nginx.other", exists=False)
    x = by(judge(evidence(f=f)), "api.service")["nginx.other"]
    assert "in another namespace" in x.message and "serviceName to its plain name" in x.details["fix"]
    f.service = ServiceFacts("nginx", exists=False)
    x = by(judge(evidence(f=f)), "api.service")["nginx"]
    assert "does not exist in namespace 'default'" in x.message
    assert "kubectl get svc -A --field-selector metadata.name=nginx" in x.details["fix"]


def test_selector_names_the_label_key_and_both_values():
    f = facts(**{f"web-{i}": {"labels": {"app": "web"}} for i in range(3)})
    [x] = by(judge(evidence(f=f)), "wiring.selector").values()
    assert x.status is Status.FAIL
    assert "selects app=nginx, but web-0 has app=web" in x.message
    assert (x.details["key"], x.details["service_value"], x.details["pod_value"]) == ("app", "nginx", "web")
    assert "spec.template.metadata.labels" in x.details["fix"]
    f = facts()
    f.service.selector = {}
    assert by(judge(evidence(f=f)), "wiring.selector")["nginx"].status is Status.WARN
    f = facts()
    f.pods.clear()  # no pods yet: the template's labels are judged
    f.statefulset.template_labels = {"tier": "db"}
    [x] = by(judge(evidence(f=f)), "wiring.selector").values()
    assert "web (pod template) has no label 'app'" in x.message


def test_a_name_over_52_characters_fails_with_its_length():
    f = facts()
    f.statefulset.name = "x" * 53
    x = by(judge(evidence(f=f)), "wiring.name-length")["x" * 53]
    assert x.status is Status.FAIL and "53 characters" in x.message and x.details["length"] == 53
    f.statefulset.name = "x" * 52
    assert by(judge(evidence(f=f)), "wiring.name-length")["x" * 52].status is Status.PASS


def test_host_network_pods_fail():
    f = facts(**{"web-1": {"host_network": True}})
    out = by(judge(evidence(f=f)), "wiring.host-network")
    assert set(out) == {"web-1"} and "hostNetwork: true" in out["web-1"].message
    assert out["web-1"].details["fix"] == "remove spec.template.spec.hostNetwork from web"


def test_an_istio_sidecar_is_a_note():
    f = facts(**{n: {"containers": ["nginx", "istio-proxy"]} for n in ("web-0", "web-2")})
    [x] = by(judge(evidence(f=f)), "wiring.istio").values()
    assert x.status is Status.WARN and x.details["pods"] == ["web-0", "web-2"] and "mTLS" in x.message
    assert "wiring.istio" not in {y.check for y in judge(evidence(f=facts()))}


def test_endpoints_over_capacity_and_over_1000_addresses_warn():
    f = facts()
    f.over_capacity = "truncated"
    x = by(judge(evidence(f=f)), "wiring.over-capacity")["nginx"]
    assert x.status is Status.WARN and "over-capacity: truncated" in x.message and "EndpointSlices" in x.details["fix"]
    f = facts()
    f.endpoints = [EndpointFacts([f"10.1.{i // 250}.{i % 250}"], None, True, True, False, None) for i in range(1001)]
    x = by(judge(evidence(f=f)), "wiring.over-capacity")["nginx"]
    assert x.status is Status.WARN and x.details["addresses"] == 1001


def test_not_ready_for_long_with_nxdomain_hints_publish_not_ready_addresses():
    long_ago, just_now = NOW - 900, NOW - 10
    f = facts(**{"web-1": {"ready": False, "ready_since": long_ago}, "web-2": {"ready": False, "ready_since": just_now}})
    obs = observed({"web-0": ["10.0.0.1"], "web-1": [], "web-2": []})
    [x] = by(judge(evidence(obs, f=f)), "wiring.not-ready-dns").values()
    assert x.details["pods"] == ["web-1"] and "web-1 (15 min)" in x.message
    assert "publishNotReadyAddresses: true" in x.details["fix"]
    f.service.publish_not_ready = True
    assert "wiring.not-ready-dns" not in {y.check for y in judge(evidence(obs, f=f))}


def _rolling(f, *, stuck_for: float, policy: str = "OrderedReady"):
    f.statefulset.update_revision, f.statefulset.partition = "web-2", 1
    f.statefulset.updated_replicas, f.statefulset.pod_management_policy = 1, policy
    pod = f.pods["web-2"]
    pod.revision, pod.ready, pod.ready_since = "web-2", False, NOW - stuck_for
    return f


def test_a_rolling_update_stuck_under_ordered_ready_is_the_rollback_trap():
    out = by(judge(evidence(f=_rolling(facts(), stuck_for=3600))), "rollout.update")
    x = out["web"]
    assert x.status is Status.FAIL and "web-2 runs the update revision web-2" in x.message
    assert "partition 1" in x.message and "kubernetes/kubernetes#67250" in x.message
    assert "kubectl delete pod web-2 -n default" in x.details["fix"] and x.details["current_revision"] == "web-1"
    parallel = by(judge(evidence(f=_rolling(facts(), stuck_for=3600, policy="Parallel"))), "rollout.update")["web"]
    assert parallel.status is Status.FAIL and "67250" not in parallel.message
    young = by(judge(evidence(f=_rolling(facts(), stuck_for=20))), "rollout.update")["web"]
    assert young.status is Status.WARN and young.message.startswith("rolling update in progress: web-1 -> web-2")


def test_a_pod_terminating_past_its_grace_fails_with_the_force_delete_step():
    f = facts(**{"web-1": {"terminating": True, "deleted_at": NOW - 600, "grace_seconds": 30},
                 "web-2": {"terminating": True, "deleted_at": NOW - 40, "grace_seconds": 30}})
    out = by(judge(evidence(f=f)), "rollout.terminating")
    assert set(out) == {"web-1"} and "terminating for 10 min (grace period 30 s)" in out["web-1"].message
    assert "--grace-period=0 --force" in out["web-1"].details["fix"]


def test_retention_policy_is_stated_and_retained_claims_listed_with_their_volumes():
    f = facts()
    f.pvcs["www-web-3"] = PvcFacts("www-web-3", "Bound", "pv-3")
    f.pvcs["www-web-4"] = PvcFacts("www-web-4", "Bound", "pv-4")
    out = [x for x in judge(evidence(f=f)) if x.check == "api.pvc-retention"]
    assert out[0].message.startswith("claim retention: whenScaled Retain, whenDeleted Retain")
    assert [(x.subject, x.details["volume"]) for x in out[1:]] == [("web-3", "pv-3"), ("web-4", "pv-4")]
    assert "a scale-up to 4 re-attaches it" in out[1].message
    f.statefulset.retain_when_scaled = "Delete"
    assert by(judge(evidence(f=f)), "api.pvc-retention")["web-3"].status is Status.WARN


def test_a_pod_ip_with_two_ptr_records_is_behind_another_service():
    other = "10-0-0-2.cache.default.svc.cluster.local."
    obs = observed(ptr={"10.0.0.2": [f"web-1.{SVC}.", other]})
    out = judge(evidence(obs))
    x = by(out, "dns.ptr-count")["web-1"]
    assert x.status is Status.FAIL and other in x.message and "another headless Service" in x.message
    assert "web-1" not in by(out, "dns.ptr")  # said once, with its cause


# --- restart.*, scale.* ------------------------------------------------------------------------------

def conv(pod, *, ready=1.0, dns=1.5, http=2.0, error=None):
    return Convergence(pod, int(pod[-1]), "old", ["10.0.0.1"], "new", ["10.0.0.9"], ready, dns, http, [], error)


def test_restart_converged_volume_kept_and_a_pod_not_restarted():
    after = facts()
    after.pvcs["www-web-2"] = PvcFacts("www-web-2", "Bound", "pv-new")
    restart = RestartEvidence(["web-2", "web-1", "web-0"],
                              [conv("web-2"), conv("web-1", dns=None, http=None, error="DNS not reached")],
                              {"web-2": {"www-web-2": "pv-2"}, "web-1": {"www-web-1": "pv-1"}}, after)
    out = judge(evidence(restart=restart))
    assert statuses(out, "restart.converged") == {"web-2": "pass", "web-1": "fail", "web-0": "warn"}
    assert statuses(out, "restart.volume") == {"web-2": "fail", "web-1": "pass"}
    assert by(out, "restart.converged")["web-2"].elapsed_ms == 2000.0


def test_scale_claims_kept_and_volumes_back():
    after = facts()
    after.pvcs["www-web-2"] = PvcFacts("www-web-2", "Bound", "pv-new")
    scale = ScaleEvidence("web", "OrderedReady", 3, 1, ["web-1", "web-2"], ["web-2", "web-1"], ["web-1", "web-2"],
                          {"web-1": {"www-web-1": "pv-1"}, "web-2": {"www-web-2": "pv-2"}},
                          {"www-web-1": PvcFacts("www-web-1", "Bound", "pv-1")}, after)
    out = judge(evidence(scale=scale))
    assert statuses(out, "scale.pvc-kept") == {"web-1": "pass", "web-2": "fail"}
    assert statuses(out, "scale.volume") == {"web-1": "pass", "web-2": "fail"}
    assert statuses(out, "scale.order-down") == statuses(out, "scale.order-up") == {"web": "pass"}


# --- identity.held ----------------------------------------------------------------------------------

def snap(**pods):
    return {"replicas": 3, "service_ips": [], "pods": {
        o: {"name": f"web-{o}", "uid": "u" + o, "ips": ["10.0.0.1"], "dns_ips": ["10.0.0.1"], "node": "n",
            "identity": f"web-{o}", "volumes": {"www": "pv-" + o}, "seen_at": "t0", **p} for o, p in pods.items()}}


def test_identity_held_across_runs():
    prev = snap(**{"0": {}, "1": {}, "2": {}})
    cur = snap(**{"0": {"uid": "new", "ips": ["10.0.0.9"], "dns_ips": ["10.0.0.1"]}, "1": {"volumes": {"www": "pv-x"}}})
    out = by(judge(evidence(history=HistoryEvidence(prev, cur))), "identity.held")
    assert "DNS still serves the old IP 10.0.0.1" in out["web-0"].message
    assert "bound to a different volume" in out["web-1"].message
    assert "gone since t0" in out["web-2"].message
    same = by(judge(evidence(history=HistoryEvidence(prev, prev))), "identity.held")
    assert all(x.status is Status.PASS for x in same.values())


def test_every_judging_check_is_tested_here():
    import pathlib

    text = pathlib.Path(__file__).read_text()
    untested = [c.id for c in checks.catalogue() if c.judge is not None and f'"{c.id}"' not in text]
    assert untested == []


def test_the_readme_check_table_lists_exactly_the_registered_checks_in_order():
    import pathlib
    import re

    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("\n## Checks\n", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `([a-z.-]+)` \|", section, re.M)
    assert listed == [c.id for c in checks.catalogue()]
    columns = {m[0]: m[1] for m in re.findall(r"^\| `([a-z.-]+)` \|[^|]*\| *([A-Z]*) *\|", section, re.M)}
    assert {k: v for k, v in columns.items() if v} == {check: label for label, check in checks.columns()}


@pytest.mark.parametrize("rdtype, outcome, kind, words", [
    ("A", Outcome.NODATA, "pod", "has no IPv4 address (A) (NODATA)"),
    ("AAAA", Outcome.NODATA, "service", "has no IPv6 address (AAAA) (NODATA)"),
    ("SRV", Outcome.NODATA, "srv", "has no SRV record (NODATA)"),
    ("PTR", Outcome.NODATA, "reverse", "has no PTR record (NODATA)"),
    ("TXT", Outcome.NODATA, "schema", "has no TXT record (NODATA)"),
    ("A", Outcome.NXDOMAIN, "pod", "the pod is gone, not Ready, or its subdomain does not match the Service"),
    ("A", Outcome.NXDOMAIN, "service", "no Service of that name in this namespace and zone, or it is headless"),
    ("TXT", Outcome.NXDOMAIN, "schema", "does not serve the Kubernetes DNS schema record"),
    ("A", Outcome.SERVFAIL, "pod", "(SERVFAIL); CoreDNS answers this before it has synced"),
])
def test_outcomes_are_worded_for_the_record_type_and_the_name(rdtype, outcome, kind, words):
    from ssdns.checks.words import NameKind, why

    assert words in why(lookup("x.", rdtype, outcome=outcome), NameKind(kind))


def test_an_unusable_answer_says_what_the_client_saw():
    import dataclasses as dc

    from ssdns.checks.words import NameKind, why

    broken = dc.replace(lookup("x.", "A", outcome=Outcome.ERROR), detail="CNAME loop at x.")
    assert why(broken, NameKind.POD) == "unusable answer [CNAME loop at x.]"


# --- every resolver (issue 12): dns.resolver, dns.transport, dns.latency over constructed legs ---

def _resolver_evidence(answers: dict[str, dict[str, list[str] | Outcome]], *, transport: str = "udp",
                       tcp: dict[str, dict[str, list[str] | Outcome]] | None = None, ms: float = 1.0, f=None):
    """answers: resolver label -> pod -> its A answer (IPs, or an Outcome). The first label is the path;
    the others are replicas on node-<label>."""
    import dataclasses as dc

    from ssdns.resolvers import Leg, Resolver, ResolverEvidence
    from ssdns.target import Nameserver

    resolvers = []
    for i, label in enumerate(answers):
        kind = "path" if i == 0 else "replica"
        resolvers.append(Resolver(label, kind, (Nameserver(f"127.0.0.{i + 1}"),), pod=None if i == 0 else label,
                                  node=None if i == 0 else f"node-{label}"))
    questions = [(T.pod_fqdn(f"web-{i}"), "A") for i in range(3)]

    def leg(r, said, how):
        lks = {}
        for name, rdtype in questions:
            got = said.get(name.split(".")[0], [f"10.0.0.{int(name[4]) + 1}"])
            lk = lookup(name, rdtype, outcome=got) if isinstance(got, Outcome) else lookup(name, rdtype, got)
            lks[(name, rdtype)] = dc.replace(lk, elapsed_ms=ms)
        return Leg(r, how, lks)

    legs = [leg(r, answers[r.label], "tcp" if transport == "tcp" else "udp") for r in resolvers]
    if transport == "both":
        legs += [leg(r, (tcp or {}).get(r.label, answers[r.label]), "tcp") for r in resolvers]
    rev = ResolverEvidence(tuple(resolvers), transport, tuple(legs), tuple(questions))
    return evidence(f=f, resolvers=rev)


def test_a_stale_replica_is_named_with_what_it_answered_and_what_the_api_says():
    ev = _resolver_evidence({"path": {}, "coredns-a": {}, "coredns-b": {"web-2": ["10.0.0.99"]}, "coredns-c": {}},
                            f=facts())
    got = by(judge(ev), "dns.resolver")
    assert got["coredns-b"].status is Status.FAIL
    assert got["coredns-b"].message == ("coredns-b (127.0.0.3 on node-coredns-b) answers web-2 A with 10.0.0.99, "
                                        "a stale IP (the API says 10.0.0.3); the other 3 are right")
    assert {s for s, x in got.items() if x.status is Status.PASS} == {"path", "coredns-a", "coredns-c"}


def test_without_the_api_the_majority_decides_and_another_pods_ip_is_named():
    ev = _resolver_evidence({"path": {}, "r1": {"web-1": ["10.0.0.1"]}, "r2": {}})
    got = by(judge(ev), "dns.resolver")
    assert "answers web-1 A with 10.0.0.1 (the others say 10.0.0.2)" in got["r1"].message
    ev = _resolver_evidence({"path": {}, "r1": {"web-1": ["10.0.0.1"]}, "r2": {}}, f=facts())
    assert "with 10.0.0.1 (web-0's IP) (the API says 10.0.0.2)" in by(judge(ev), "dns.resolver")["r1"].message


def test_a_replica_that_forgets_a_pod_and_a_split_without_majority():
    ev = _resolver_evidence({"path": {}, "r1": {"web-0": Outcome.NXDOMAIN}, "r2": {}}, f=facts())
    assert "web-0 A with NXDOMAIN (the API says 10.0.0.1)" in by(judge(ev), "dns.resolver")["r1"].message
    split = by(judge(_resolver_evidence({"path": {}, "r1": {"web-0": ["10.0.0.9"]}})), "dns.resolver")
    assert split["nginx.default.svc.cluster.local"].status is Status.FAIL
    assert "path says 10.0.0.1; r1 says 10.0.0.9" in split["nginx.default.svc.cluster.local"].message


def test_a_wrong_answer_every_resolver_gives_is_not_blamed_on_one():
    ev = _resolver_evidence({"path": {"web-1": ["10.0.0.9"]}, "r1": {"web-1": ["10.0.0.9"]}}, f=facts())
    assert statuses(judge(ev), "dns.resolver") == {"path": "pass", "r1": "pass"}


def test_a_silent_replica_is_a_finding_naming_it():
    ev = _resolver_evidence({"path": {}, "r1": {f"web-{i}": Outcome.TIMEOUT for i in range(3)}, "r2": {}})
    got = by(judge(ev), "dns.resolver")
    assert got["r1"].status is Status.FAIL and got["r1"].message.startswith("r1 (127.0.0.2 on node-r1) does not answer")
    partly = by(judge(_resolver_evidence({"path": {}, "r1": {"web-1": Outcome.REFUSED}})), "dns.resolver")
    assert "did not answer 1 of 3 questions" in partly["r1"].message


def test_udp_and_tcp_disagree_names_the_records():
    ev = _resolver_evidence({"path": {}, "r1": {}}, transport="both", tcp={"r1": {"web-2": ["10.0.0.3", "10.0.0.7"]}})
    got = by(judge(ev), "dns.transport")
    assert got["path"].status is Status.PASS
    assert got["r1"].status is Status.FAIL
    assert "UDP and TCP disagree on 1 of 3 names: web-2 A (only over TCP: 10.0.0.7)" in got["r1"].message
    refused = _resolver_evidence({"path": {}}, transport="both",
                                 tcp={"path": {f"web-{i}": Outcome.ERROR for i in range(3)}})
    assert "answers over UDP but not over TCP" in by(judge(refused), "dns.transport")["path"].message
    assert by(judge(_resolver_evidence({"path": {}, "r1": {}})), "dns.transport") == {}


def test_latency_warns_on_the_conntrack_race_signature_and_a_slow_p99():
    assert statuses(judge(_resolver_evidence({"path": {}, "r1": {}})), "dns.latency") == {"path": "pass", "r1": "pass"}
    slow = by(judge(_resolver_evidence({"path": {}}, ms=5100.0)), "dns.latency")["path"]
    assert slow.status is Status.WARN and "3 answer(s) took over 4.5 s" in slow.message
    assert slow.details["slow"] == 3 and slow.details["p99_ms"] == 5100.0
    sluggish = by(judge(_resolver_evidence({"path": {}}, ms=1500.0)), "dns.latency")["path"]
    assert sluggish.status is Status.WARN and sluggish.message.endswith("slow, p50 1500 ms, p99 1500 ms over 3 answers")


def test_questions_the_deadline_cut_off_are_not_blamed_on_the_resolver():
    import dataclasses as dc

    ev = _resolver_evidence({"path": {}, "r1": {"web-2": Outcome.TIMEOUT}})
    leg = ev.resolvers.legs[1]
    q = (T.pod_fqdn("web-2"), "A")
    leg.lookups[q] = dc.replace(leg.lookups[q], detail="127.0.0.2:53: not asked, deadline reached")
    got = by(judge(ev), "dns.resolver")["r1"]
    assert got.status is Status.WARN and "was not asked 1 of 3 questions before the deadline" in got.message
