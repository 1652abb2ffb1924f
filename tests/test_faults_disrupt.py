"""Fault catalogue, the disruptive commands: restart-test and scale-test (--yes) against the sandbox's
API behind a proxy that hangs, trickles or cuts from a chosen request on (tests/badapi.py ApiProxy),
against a hanging API from the start, with DNS that stops answering mid-run, with a rollout under way
or a pod stuck Terminating, and with a cluster too slow for --timeout.

Each case runs the real executable and asserts: the run ends within --timeout + faultkit.SLACK (an
upper bound, not a speed figure), the documented exit code, one error line (the last on stderr: the
lines before it are progress), no traceback, and that what the run changed is said in that line
(a pod deleted, a StatefulSet left scaled down, with the command that puts it back) and is true of
the sandbox afterwards."""

from __future__ import annotations

import asyncio
import time

import pytest
from badapi import ApiProxy, BadApi
from faultkit import assert_within, run_ssdns

pytest.importorskip("kubernetes")

T = 5.0  # --timeout of the cases: start-up, a restart or a scale of the sandbox (about 1 s), and the faults
# The cases whose first poll hangs (that look must begin with at least disrupt.FAIR_LOOK left to count as
# the API's failure, exit 4) or whose final check runs in the reserve: a quarter of --timeout must hold a
# loaded machine's start-up and a 3-pod check.
SLOW_START = 8.0


def args(command: str, kubeconfig, nameserver, *extra: str, timeout: float = T) -> list[str]:
    more = ["--ordinal", "2"] if command == "restart-test" else ["--to", "1"]
    return [command, "--statefulset", "web", "--namespace", "default", "--cluster-domain", "cluster.local",
            "--kubeconfig", str(kubeconfig), "--nameserver", str(nameserver), "--timeout", str(timeout), "--yes",
            *more, *extra]


def error_line(run) -> str:
    """The run's one error line: the last line on stderr, the only one from the error boundary."""
    assert "Traceback" not in run.stderr, run.stderr
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ssdns:")]
    assert len(errors) == 1 and lines[-1] == errors[0], run.stderr
    return errors[0]


def writes(sb) -> list[tuple[str, str | None, str | None]]:
    return [(r.verb, r.resource, r.name) for r in sb.sandbox.api.requests if r.verb in ("delete", "patch")]


def pod_uid(sb, name: str) -> str:
    return next(p.uid for p in sb.world.pods if p.name == name)


def after(method: str, *, then: str, only: str | None = None, nth: int = 1):
    """A rule: requests pass until the nth `method` request has passed; from then on each request (each
    one whose method is `only`, when given) gets `then`."""
    def rule(m: str, path: str, seen: list[tuple[str, str]]) -> str:
        passed = sum(1 for sm, _ in seen if sm == method)
        return then if passed >= nth and (only is None or m == only) else "pass"
    return rule


def every(method: str, then: str):
    return lambda m, path, seen: then if m == method else "pass"


def run_through(sb, tmp_path, rule, command: str, *extra: str, timeout: float = T, faulted: bool = True):
    """The command against the sandbox's API behind the proxy; the fault happened, the run ended in time."""
    with ApiProxy(sb.sandbox.api_url, rule) as proxy:
        run = run_ssdns(*args(command, proxy.kubeconfig(tmp_path / "kc"), sb.sandbox.nameserver, *extra,
                              timeout=timeout), timeout=60)
    assert proxy.faulted.is_set() == faulted, proxy.seen
    assert_within(run, timeout)
    return run


# --- the API fails at each stage --------------------------------------------------------------


@pytest.mark.parametrize("command", ["restart-test", "scale-test"])
@pytest.mark.parametrize("mode", ["hang", "trickle"])
def test_api_failing_from_the_start_changes_nothing(command, mode, tmp_path):
    with BadApi(mode) as api:
        run = run_ssdns(*args(command, api.kubeconfig(tmp_path / "kc"), "127.0.0.1:9"), timeout=60)
    assert run.returncode == 4, run
    line = error_line(run)
    assert "cannot get statefulsets web" in line and "did not answer in time" in line, line
    assert "before that" not in line  # nothing was changed, so nothing is said about it
    assert_within(run, T)
    assert not [r for r in api.requests if not r.startswith("GET ")]


@pytest.mark.parametrize("mode", ["hang", "trickle", "close"])
def test_restart_test_whose_delete_gets_no_answer(sandbox_factory, tmp_path, mode):
    """The delete is sent and never answered: the run says the pod may be deleted all the same."""
    sb = sandbox_factory()
    uid = pod_uid(sb, "web-2")
    run = run_through(sb, tmp_path, every("DELETE", mode), "restart-test")
    assert run.returncode == 4, run
    line = error_line(run)
    assert "cannot delete pods web-2" in line and "web-2 may have been deleted all the same" in line, line
    assert "kubectl get pod web-2 -n default" in line
    if mode == "trickle":  # the delete reached the API: its answer did not come back in time
        assert writes(sb) == [("delete", "pods", "web-2")]
    else:
        assert writes(sb) == [] and pod_uid(sb, "web-2") == uid


@pytest.mark.parametrize("mode", ["hang", "trickle", "close"])
def test_restart_test_whose_api_fails_while_the_replacement_is_awaited(sandbox_factory, tmp_path, mode):
    """The delete goes through, then every call fails: the run ends by its deadline, naming the pod it deleted."""
    sb = sandbox_factory()
    run = run_through(sb, tmp_path, after("DELETE", then=mode), "restart-test")
    assert run.returncode == 4, run
    line = error_line(run)
    assert "cannot get statefulsets web" in line, line
    assert "before that, deleted web-2 (uid" in line and "not back: Ready not reached" in line, line
    assert writes(sb) == [("delete", "pods", "web-2")]


def test_restart_test_whose_api_hangs_at_the_final_check(sandbox_factory, tmp_path):
    """Restarted fine; the final check's API reads (the third read of the StatefulSet) hang."""
    sb = sandbox_factory()

    def rule(m: str, path: str, seen) -> str:
        reads = sum(1 for sm, sp in seen if sm == "GET" and sp.endswith("/statefulsets/web"))
        return "hang" if reads >= 2 else "pass"

    run = run_through(sb, tmp_path, rule, "restart-test")
    assert run.returncode == 4, run
    line = error_line(run)
    assert "did not answer in time" in line and "before that, restarted web-2 (back with its identity in" in line


@pytest.mark.parametrize("mode", ["hang", "close"])
def test_scale_test_whose_scale_gets_no_answer(sandbox_factory, tmp_path, mode):
    """Neither the scale nor the restore is answered: the line says the count may be off, and the fix."""
    sb = sandbox_factory()
    run = run_through(sb, tmp_path, every("PATCH", mode), "scale-test")
    assert run.returncode == 4, run
    line = error_line(run)
    assert "cannot patch statefulsets/scale web" in line, line
    assert "scaling web to 1 got no answer; restoring it failed too" in line, line
    assert "web may be left at 1 replicas; put it back with 'kubectl scale statefulset web --replicas=3 -n default'" in line
    assert sb.world.sts.replicas == 3  # the proxy sent neither on


@pytest.mark.parametrize("mode", ["hang", "trickle", "close"])
def test_scale_test_cut_off_after_scaling_down_says_it_is_left_scaled_down(sandbox_factory, tmp_path, mode):
    """Scaled down, then the API stops answering, the restore too: the StatefulSet may be left at 1
    replica, and the one line says so and how to put it back."""
    sb = sandbox_factory()
    run = run_through(sb, tmp_path, after("PATCH", then=mode), "scale-test", timeout=SLOW_START)
    assert run.returncode == 4, run
    line = error_line(run)
    assert "before that, scaled web to 1; restoring it failed too" in line, line
    # No answer to the restore: it may have been done (trickle: it was, its answer did not come back).
    assert "web may be left at 1 replicas; put it back with 'kubectl scale statefulset web --replicas=3 -n default'" in line
    assert sb.world.sts.replicas == (3 if mode == "trickle" else 1)
    assert "web: NOT restored" in run.stderr  # the progress said it as it happened, too


def test_scale_test_whose_polling_hangs_restores_the_count(sandbox_factory, tmp_path):
    """Scaled down, then the reads hang (the writes still work): the count is restored in the time kept for it."""
    sb = sandbox_factory()
    run = run_through(sb, tmp_path, after("PATCH", then="hang", only="GET"), "scale-test", timeout=SLOW_START)
    assert run.returncode == 4, run
    line = error_line(run)
    assert "cannot list pods in namespace default" in line and "did not answer in time" in line, line
    assert line.endswith("before that, scaled web to 1; restored 3 replicas"), line
    assert sb.world.sts.replicas == 3
    assert writes(sb) == [("patch", "statefulsets", "web")] * 2


# --- DNS stops answering mid-run ----------------------------------------------------------------


def stop_dns_at(sb, method: str):
    """A rule that passes everything, and stops the sandbox's DNS when the first `method` request comes."""
    def rule(m: str, path: str, seen) -> str:
        if m == method and not any(sm == method for sm, _ in seen):
            asyncio.run_coroutine_threadsafe(sb.sandbox.dns.stop(), sb.loop).result(5)
        return "pass"
    return rule


def test_restart_test_whose_dns_stops_answering(sandbox_factory, tmp_path):
    sb = sandbox_factory()
    run = run_through(sb, tmp_path, stop_dns_at(sb, "DELETE"), "restart-test", faulted=False)
    assert run.returncode == 3, run
    line = error_line(run)
    assert "no nameserver answered" in line, line
    assert "before that, deleted web-2 (uid" in line and "not back: DNS not reached" in line, line


def test_scale_test_whose_dns_stops_answering(sandbox_factory, tmp_path):
    sb = sandbox_factory()
    run = run_through(sb, tmp_path, stop_dns_at(sb, "PATCH"), "scale-test", faulted=False)
    assert run.returncode == 3, run
    line = error_line(run)
    assert "no nameserver answered" in line and line.endswith("before that, scaled web to 1 and back to 3"), line
    assert sb.world.sts.replicas == 3


# --- a cluster slower than --timeout ------------------------------------------------------------


def test_restart_test_slower_than_its_timeout_still_reports(sandbox_factory, tmp_path):
    """The replacement is Ready after 30 s: waiting stops a quarter of --timeout early, and the final
    check runs in that time: a report, exit 1, by the deadline."""
    sb = sandbox_factory(ready_delay=30)
    run = run_ssdns(*args("restart-test", sb.sandbox.write_kubeconfig(tmp_path / "kc"), sb.sandbox.nameserver,
                          timeout=SLOW_START), "--output", "json", timeout=60)
    assert run.returncode == 1, run
    assert '"check": "restart.converged"' in run.stdout and "Ready not reached before the deadline" in run.stdout
    assert "Traceback" not in run.stderr
    assert_within(run, SLOW_START)


@pytest.mark.parametrize("slow, waited, done", [
    ({"terminate_delay": 30}, "web-1, web-2 to go", "scaled web to 1; restored 3 replicas"),
    ({"ready_delay": 30}, "web-1, web-2 to be Ready", "scaled web to 1 and back to 3"),
])
def test_scale_test_slower_than_its_timeout_restores_and_says_so(sandbox_factory, tmp_path, slow, waited, done):
    sb = sandbox_factory(**slow)
    run = run_ssdns(*args("scale-test", sb.sandbox.write_kubeconfig(tmp_path / "kc"), sb.sandbox.nameserver),
                    timeout=60)
    assert run.returncode == 3, run
    line = error_line(run)
    assert f"{waited} did not happen in time" in line and "raise --timeout" in line, line
    assert line.endswith(f"before that, {done}"), line
    assert sb.world.sts.replicas == 3
    assert_within(run, T)


# --- a StatefulSet that is not settled: refused before anything changes -------------------------


@pytest.mark.parametrize("command", ["restart-test", "scale-test"])
@pytest.mark.parametrize("fault, says", [
    ("stuck-rollout:web-1", "a rollout of web is under way (to revision web-5d8c7b9f4; web-2 not updated yet): "
                            "wait for it to finish"),
    ("stuck-terminating:web-1", "web-1 is terminating (stuck? its node may be gone)"),
    ("stuck-not-ready:web-0", "web-0 is not Ready: fix that first"),
])
def test_unsettled_statefulset_is_refused(sandbox_factory, tmp_path, command, fault, says):
    sb = sandbox_factory(faults=[fault])
    run = run_ssdns(*args(command, sb.sandbox.write_kubeconfig(tmp_path / "kc"), sb.sandbox.nameserver), timeout=60)
    assert run.returncode == 3, run
    line = run.one_line()
    assert f"{command} changes nothing while {says}" in line, line
    assert "kubectl" in line  # what to look at, or wait for
    assert writes(sb) == [] and sb.world.sts.replicas == 3
    assert_within(run, T)


# --- the deadline rules themselves (disrupt.py), without a cluster ------------------------------


def test_a_final_check_with_no_time_left_is_not_started():
    """Nothing is asked (no API, no DNS: both addresses would refuse): exit 3, saying why."""
    from ssdns.converge import Progress
    from ssdns.disrupt import FINAL_MIN, Disruption
    from ssdns.errors import CANNOT_RUN, CannotRun
    from ssdns.target import ApiOptions, Nameserver, Target

    target = Target("nginx", "default", "cluster.local", (Nameserver("127.0.0.1", 9),), statefulset="web", timeout=4.0,
                    deadline=time.monotonic() + FINAL_MIN / 2)
    d = Disruption(target, ApiOptions("on", "/nonexistent/kubeconfig"), Progress(False))
    with pytest.raises(CannotRun) as caught:
        asyncio.run(d.conclude(target))
    assert caught.value.exit_code == CANNOT_RUN
    assert str(caught.value) == "the deadline (--timeout 4 s) passed before the final check could start; raise --timeout"


def test_an_error_after_a_change_says_the_change_with_its_own_exit_code():
    from ssdns.disrupt import said
    from ssdns.errors import ApiError, SsdnsError

    exc = ApiError("timeout", "list", "pods", namespace="default", reason="no complete answer within 2.0 s")
    out = said(exc, "before that, scaled web to 1; restored 3 replicas")
    assert isinstance(out, SsdnsError) and out.exit_code == exc.exit_code == 4
    assert str(out).startswith("cannot list pods in namespace default") and str(out).endswith("restored 3 replicas")


def test_polling_never_looks_nor_sleeps_past_its_deadline():
    from ssdns.converge import Progress
    from ssdns.disrupt import poll_until

    looks: list[float] = []

    async def look() -> bool:
        looks.append(time.monotonic())
        return False

    async def go() -> tuple[bool, float, float]:
        deadline = time.monotonic() + 0.6
        ok = await poll_until(look, deadline, Progress(False), lambda: "", every=0.25)
        return ok, deadline, time.monotonic()

    ok, deadline, ended = asyncio.run(go())
    assert not ok and looks and all(t < deadline for t in looks)
    assert ended - deadline < 0.2  # no sleep of `every` past it (slack: a loaded machine)


@pytest.mark.parametrize("had, raised", [(0.5, False), (3.0, True)])
def test_a_look_that_times_out_is_the_deadline_only_when_it_had_too_little_time(had, raised):
    """A look begun just before the deadline and cut off there is the deadline (poll_until says False);
    one that had a fair time and got no answer is the API's failure (the ApiError goes on: exit 4)."""
    from ssdns.converge import Progress
    from ssdns.disrupt import poll_until
    from ssdns.errors import ApiError

    async def look() -> bool:
        raise ApiError("timeout", "list", "pods", reason="no complete answer")

    async def go() -> bool:
        return await poll_until(look, time.monotonic() + had, Progress(False), lambda: "")

    if raised:
        with pytest.raises(ApiError):
            asyncio.run(go())
    else:
        assert asyncio.run(go()) is False


def _facts(revisions: list[str | None], *, current: str | None = "r1", update: str | None = "r1",
           strategy: str = "RollingUpdate", partition: int = 0):
    from ssdns.facts import ClusterFacts, PodFacts, StatefulSetFacts

    sts = StatefulSetFacts("web", len(revisions), "nginx", "app=web", current_revision=current,
                           update_revision=update, update_strategy=strategy, partition=partition)
    pods = {f"web-{i}": PodFacts(f"web-{i}", f"uid-{i}", [f"127.0.0.{i + 1}"], True, False, "Running", None, 0,
                                 f"web-{i}", "nginx", revision=r) for i, r in enumerate(revisions)}
    return ClusterFacts("default", sts, None, pods)


@pytest.mark.parametrize("facts, says", [
    (_facts(["r1", "r1", "r1"]), None),
    # status.currentRevision lagging a finished rollout: every pod runs the update revision
    (_facts(["r2", "r2", "r2"], current="r1", update="r2"), None),
    # a staged rollout: the pods below the partition stay at the old revision on purpose
    (_facts(["r1", "r2", "r2"], current="r1", update="r2", partition=1), None),
    (_facts(["r1", "r1", "r2"], current="r1", update="r2"), "web-0, web-1 not updated yet): wait for it to finish"),
    (_facts(["r1", "r2", "r2"], current="r1", update="r2", strategy="OnDelete"),
     "with updateStrategy OnDelete a deleted pod comes back at the new revision"),
    # pods that do not say their revision: the StatefulSet's status decides
    (_facts([None, None, None], current="r1", update="r2"), "(to revision r2; currentRevision r1)"),
])
def test_a_rollout_is_judged_by_the_pods_revisions(facts, says):
    from ssdns.disrupt import unsettled

    why = unsettled(facts, "default")
    assert why is None if says is None else (why is not None and says in why), why
