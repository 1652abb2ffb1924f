"""A forged API answer with a lone surrogate in a name that becomes a metric label: the metrics are written."""

from __future__ import annotations

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
