"""ssdns/callpool.py: at most `size` calls at once, in order; an abandoned call never starts, or lets its thread
go so that the calls after it are served; daemon threads that close() ends and nothing joins. Then the pool
under kube.py: a call that hangs or trickles still ends at its deadline and does not hold up the next ones."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from badapi import BadApi
from conftest import until
from faultkit import SLACK

from ssdns import kube
from ssdns.callpool import ABANDONED, DONE, CallPool
from ssdns.errors import ApiError
from ssdns.target import ApiOptions

WAIT = 10.0  # seconds an event may take on a loaded machine (a bound, not a speed figure)


def pool_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name and t.is_alive()]


def test_at_most_size_calls_run_at_once_in_order():
    pool = CallPool(3, "test-pool-a")
    release = threading.Event()
    lock = threading.Lock()
    running, most, order = [0], [0], []

    def call(i: int):
        def fn():
            with lock:
                order.append(i)
                running[0] += 1
                most[0] = max(most[0], running[0])
            release.wait(WAIT)
            with lock:
                running[0] -= 1
        return fn

    jobs = [pool.submit(call(i)) for i in range(10)]
    until(lambda: len(order) == 3, WAIT)
    assert pool.serving == 3 and len(pool_threads("test-pool-a")) == 3
    release.set()
    until(lambda: all(j.state == DONE for j in jobs), WAIT)
    assert most[0] == 3 and order == list(range(10))
    pool.close()
    until(lambda: not pool_threads("test-pool-a"), WAIT)
    assert pool.serving == 0


def test_an_abandoned_call_that_has_not_started_never_runs():
    pool = CallPool(1, "test-pool-b")
    gate, ran = threading.Event(), []
    first = pool.submit(lambda: gate.wait(WAIT))
    until(lambda: first.state == "running", WAIT)
    second = pool.submit(lambda: ran.append("second"))
    third = pool.submit(lambda: ran.append("third"))
    pool.abandon(second)
    gate.set()
    until(lambda: third.state == DONE, WAIT)
    assert ran == ["third"] and second.state == ABANDONED
    pool.close()


def test_a_call_that_hangs_lets_its_thread_go_and_the_next_calls_are_served():
    """size 1: the one thread is stuck in a call nobody waits for; the next call gets a thread of its own,
    and the stuck one ends after its call without taking more work."""
    pool = CallPool(1, "test-pool-c")
    stuck, ran = threading.Event(), []
    hung = pool.submit(lambda: stuck.wait(WAIT))
    until(lambda: hung.state == "running", WAIT)
    pool.abandon(hung)
    assert pool.serving == 0
    after = [pool.submit(lambda i=i: ran.append(i)) for i in range(3)]
    until(lambda: all(j.state == DONE for j in after), WAIT)
    assert ran == [0, 1, 2] and len(pool_threads("test-pool-c")) == 2  # the stuck one and its replacement
    stuck.set()
    until(lambda: len(pool_threads("test-pool-c")) == 1, WAIT)  # the let-go thread ended
    assert hung.state == ABANDONED and pool.serving == 1
    pool.close()
    until(lambda: not pool_threads("test-pool-c"), WAIT)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_call_that_raises_ends_its_thread_and_the_pool_goes_on():
    pool = CallPool(1, "test-pool-d")
    ran, gate = [], threading.Event()

    def boom():
        gate.wait(WAIT)
        raise RuntimeError("a bug in a call")

    failing = pool.submit(boom)
    job = pool.submit(lambda: ran.append(1))  # waits for the one thread, which boom then takes down
    until(lambda: failing.state == "running", WAIT)
    gate.set()
    until(lambda: job.state == DONE, WAIT)
    assert ran == [1] and pool.serving == 1
    pool.close()


def test_threads_are_daemons_and_a_closed_pool_serves_again():
    pool = CallPool(2, "test-pool-e")
    job = pool.submit(lambda: None)
    until(lambda: job.state == DONE, WAIT)
    assert all(t.daemon for t in pool_threads("test-pool-e"))
    pool.close()
    until(lambda: not pool_threads("test-pool-e"), WAIT)
    again = pool.submit(lambda: None)
    until(lambda: again.state == DONE, WAIT)
    pool.close()
    with pytest.raises(ValueError):
        CallPool(0)


def test_a_pool_nobody_closes_keeps_no_idle_thread():
    """A client dropped without close() (a state store made per run of a long-lived watch) leaks no thread."""
    pool = CallPool(2, "test-pool-f", idle=0.2)
    jobs = [pool.submit(lambda: None) for _ in range(2)]
    until(lambda: all(j.state == DONE for j in jobs), WAIT)
    until(lambda: not pool_threads("test-pool-f"), WAIT)
    assert pool.serving == 0
    job = pool.submit(lambda: None)  # and serves again when work comes
    until(lambda: job.state == DONE, WAIT)
    pool.close()


def test_api_calls_that_trickle_end_at_their_deadline_and_do_not_hold_up_the_next(tmp_path):
    """Through kube.arequest with a pool of 2: four calls to a server that trickles one byte a second (the read
    timeout never fires) all end at the deadline; the threads stuck in them are let go, so a later call is
    answered at once instead of waiting for them."""
    with BadApi("trickle") as bad:
        api = kube.api_client(ApiOptions("on", str(bad.kubeconfig(tmp_path / "kc"))), calls=2)
        try:
            async def four(deadline: float):
                return await asyncio.gather(*(kube.arequest(api, "GET", f"/api/v1/namespaces/default/pods/p{i}",
                                                            verb="get", resource="pods", name=f"p{i}",
                                                            namespace="default", deadline=deadline)
                                              for i in range(4)), return_exceptions=True)
            started = time.monotonic()
            got = asyncio.run(four(started + 1.0))
            took = time.monotonic() - started
            assert took < 1.0 + SLACK, took
            assert all(isinstance(e, ApiError) and e.kind == "timeout" for e in got), got
            assert len(bad.requests) == 2  # the calls still waiting for a thread at the deadline never went out
            bad.mode = "403"
            later = time.monotonic()
            with pytest.raises(ApiError) as caught:
                asyncio.run(kube.arequest(api, "GET", "/api/v1/namespaces/default/pods/q", verb="get",
                                          resource="pods", name="q", namespace="default", deadline=later + WAIT))
            assert caught.value.status == 403 and time.monotonic() - later < WAIT
        finally:
            api.close()
