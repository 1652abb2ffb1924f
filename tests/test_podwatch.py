"""The watch's change detection and backoff, from constructed events (no sockets): which pod events start
a convergence probe, and from when it is timed."""

from __future__ import annotations

from ssdns.facts import PodFacts
from ssdns.podwatch import BACKOFF_CAP, Backoff, PodWatcher


def pod(name: str, uid: str, ips=("10.0.0.1",), terminating: bool = False, ready: bool = True) -> PodFacts:
    return PodFacts(name, uid, list(ips), ready, terminating, "Running", "n1", 0, name, "nginx")


def watcher(give_up: float = 300.0):
    changes = []
    w = PodWatcher(None, "default", "web", changes.append, lambda _: None, give_up)
    w.pods = {"web-0": pod("web-0", "u0", ["10.0.0.1"]), "web-1": pod("web-1", "u1", ["10.0.0.2"])}
    return w, changes


def test_a_replacement_is_timed_from_the_deletion_timestamp_seen():
    w, changes = watcher()
    w.apply("MODIFIED", pod("web-1", "u1", ["10.0.0.2"], terminating=True), 100.0)
    w.apply("DELETED", pod("web-1", "u1", ["10.0.0.2"], terminating=True), 100.5)
    w.apply("ADDED", pod("web-1", "u9", [], ready=False), 101.0)  # Pending: no IP yet
    assert [(c.pod, c.cause, c.old_uid, c.old_ips, c.t0) for c in changes] == [
        ("web-1", "replaced", "u1", ["10.0.0.2"], 100.0)]
    w.apply("MODIFIED", pod("web-1", "u9", ["10.0.0.7"]), 101.5)  # its IP arrives: not another change
    assert len(changes) == 1


def test_a_delete_event_alone_also_starts_the_clock():
    w, changes = watcher()
    w.apply("DELETED", pod("web-0", "u0", []), 50.0)  # a delete event may carry no IPs: the known ones count
    w.apply("ADDED", pod("web-0", "u5", ["10.0.0.9"]), 51.0)
    assert [(c.old_uid, c.old_ips, c.t0) for c in changes] == [("u0", ["10.0.0.1"], 50.0)]


def test_a_new_uid_missed_while_disconnected_is_timed_from_when_it_was_seen():
    w, changes = watcher()
    w.apply("MODIFIED", pod("web-0", "u7", ["10.0.0.5"]), 70.0)  # e.g. after a re-list
    assert [(c.cause, c.old_uid, c.t0) for c in changes] == [("replaced", "u0", 70.0)]


def test_an_ip_change_under_the_same_uid_is_probed_but_readiness_alone_is_not():
    w, changes = watcher()
    w.apply("MODIFIED", pod("web-0", "u0", ["10.0.0.1"], ready=False), 10.0)
    assert changes == []
    w.apply("MODIFIED", pod("web-0", "u0", ["10.0.0.8"]), 11.0)
    assert [(c.cause, c.old_ips, c.t0) for c in changes] == [("ip-changed", ["10.0.0.1"], 11.0)]


def test_a_new_ordinal_starts_no_probe():
    w, changes = watcher()
    w.apply("ADDED", pod("web-2", "u2", ["10.0.0.3"]), 5.0)
    assert changes == [] and "web-2" in w.pods


def test_a_pod_back_long_after_it_went_is_timed_from_its_return():
    w, changes = watcher(give_up=60.0)
    w.apply("DELETED", pod("web-1", "u1"), 0.0)  # e.g. the StatefulSet was deleted for ten minutes
    w.apply("ADDED", pod("web-1", "u3"), 600.0)
    assert [(c.cause, c.t0) for c in changes] == [("replaced", 600.0)]


def test_backoff_is_capped_and_jittered():
    b = Backoff(first=0.25, cap=BACKOFF_CAP)
    steps = [b.next() for _ in range(30)]
    assert 0.125 <= steps[0] <= 0.25 and all(s <= BACKOFF_CAP for s in steps)
    assert max(steps) > BACKOFF_CAP / 2 and len(set(steps)) > 1
    b.reset()
    assert b.next() <= 0.25


def test_events_in_a_state_are_validated_before_the_timeline_reads_them(tmp_path):
    import json

    import pytest

    from ssdns.report import render_history
    from ssdns.state import StateError, validate

    good = {"pod": "web-1", "seen_at": "2026-11-30T10:00:00.000Z", "cause": "replaced", "ok": True,
            "stages": {"dns": 1.5, "http": None}, "nxdomain_window": 0.5, "wrong": 0, "still_wrong": [],
            "outcome": "converged", "elapsed": 3.0}
    doc = {"schema": "ssdns.state/v1", "target": {"namespace": "default", "statefulset": "web", "service": "nginx"},
           "history": [], "events": [good]}
    assert "web-1 replaced: identity back (dns 1.50s); NXDOMAIN for 0.50s" in render_history(validate(doc, None, "x"), "x")
    for bad in ({"stages": "dns"}, {"stages": {"dns": "1"}}, {"still_wrong": "all"}, {"elapsed": True},
                {"pod": None}, {"cause": 3}):
        broken = dict(doc, events=[{**good, **bad}])
        with pytest.raises(StateError, match="'events' of the wrong shape"):
            validate(json.loads(json.dumps(broken)), None, "x")


def test_an_ip_change_through_an_interval_without_ip_is_timed_from_when_the_old_ip_went():
    """The kubelet recreating a pod's sandbox may publish the pod without podIP for a while: the same UID,
    old IP -> none -> new IP is one IP change, timed from when the old IP went; the same IP back is none."""
    w, changes = watcher()
    w.apply("MODIFIED", pod("web-0", "u0", [], ready=False), 20.0)
    w.apply("MODIFIED", pod("web-0", "u0", [], ready=False), 20.5)
    assert changes == []
    w.apply("MODIFIED", pod("web-0", "u0", ["10.0.0.8"], ready=False), 21.0)
    assert [(c.cause, c.old_uid, c.old_ips, c.t0) for c in changes] == [("ip-changed", "u0", ["10.0.0.1"], 20.0)]
    w.apply("MODIFIED", pod("web-1", "u1", []), 30.0)
    w.apply("MODIFIED", pod("web-1", "u1", ["10.0.0.2"]), 31.0)  # the same IP again: nothing to probe
    assert len(changes) == 1
