"""A forged API answer with a lone surrogate in a name that becomes a metric label: the metrics are written
(check --all's file) and served (watch's /metrics)."""

from __future__ import annotations

import pytest
from conftest import ThreadedSandbox
from faultkit import run_ssdns

from ssdns.sandbox import make_world
from ssdns.sandbox.world import add_neighbour


def test_a_forged_name_with_a_lone_surrogate_still_gets_its_metrics_file(tmp_path):
    """An API answer naming a StatefulSet "web-\\ud800" (JSON can say that; no real API does): check --all
    printed its report, then died writing the metrics with a UnicodeEncodeError traceback, leaving no metrics
    file, so the CronJob's alerts kept the last run's. The file is written, the name's surrogate replaced."""
    world = make_world(2)
    neighbour = add_neighbour(world, "web-b", 2)
    s = ThreadedSandbox(world)
    try:
        async def forge() -> None:  # the API's answer only: the DNS server keeps serving web-b's records
            neighbour.statefulset = "web-\ud800"
        s.call(forge())
        kubeconfig = s.sandbox.write_kubeconfig(tmp_path / "kubeconfig")
        prom = tmp_path / "out.prom"
        run = run_ssdns(*s.sandbox.fleet_check_args(), "--kubeconfig", str(kubeconfig), "--timeout", "10",
                        "--metrics-file", str(prom))
    finally:
        s.stop()
    assert (run.returncode, run.stderr) == (1, ""), run.stderr
    text = prom.read_text(encoding="utf-8")
    assert 'ssdns_statefulset_ok{namespace="default",statefulset="web-\ufffd"} 0.0' in text, text
    assert 'ssdns_statefulset_ok{namespace="default",statefulset="web"} 1.0' in text, text


def test_a_forged_node_name_leaves_watchs_metrics_scrapeable(sandbox_factory, tmp_path):
    """ssdns watch --resolvers all labels each DNS replica with its node, from the API: a node name holding a lone
    surrogate made every /metrics scrape an HTTP 500 (UnicodeEncodeError in the handler), so Prometheus lost
    all of the watch's series, not just that label. The scrape answers, the surrogate replaced."""
    pytest.importorskip("kubernetes")
    import test_watch
    from test_watch import until

    from ssdns.target import ResolverChoice

    sb = sandbox_factory()
    sb.change(lambda world: setattr(world.dns_replicas[1], "node", "node-\ud800"))
    w = test_watch.Running(sb, tmp_path, resolvers=ResolverChoice("all"))
    try:
        until(lambda: w.get("/readyz")[0] == 200, 20)
        status, body = w.get("/metrics")
    finally:
        w.stop()
    assert status == 200, body
    assert 'resolver_node="node-\ufffd"' in body, body
