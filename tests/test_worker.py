"""The worker (ssdns/worker.py): HTTP probes and large DNS answers handled by a child process give the
same observations as in-process, under the same deadline, with no orphan; a dead or stuck worker never
leaves a pod unprobed or an answer unread."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import failures, run_json

from ssdns import sizing, worker
from ssdns.httpobs import HttpRequest
from ssdns.worker import Worker

ROOT = Path(__file__).resolve().parent.parent


def _comparable(report: dict) -> tuple:
    pods = {p["name"]: (p["http"]["status"], p["http"]["body"], p["http"]["error"]) for p in report["pods"]}
    found = sorted((f["check"], f["subject"], f["status"], f["message"]) for f in report["findings"])
    return pods, found, report["stats"]["http_requests"]


def test_the_worker_sees_what_the_check_sees_in_process(sandbox_factory, monkeypatch):
    sb = sandbox_factory(pods=5, faults=["wrong-name:web-1=web-2", "no-http:web-3"])
    seen = {}
    for mode in ("0", "1"):
        monkeypatch.setenv("SSDNS_WORKER", mode)
        code, report = run_json(sb.args())
        assert code == 1
        seen[mode] = _comparable(report)
    assert seen["0"] == seen["1"]
    pods, found, requests = seen["1"]
    assert requests == 5 and pods["web-0"][:2] == (200, "web-0") and pods["web-1"][1] == "web-2"
    assert "cannot connect" in pods["web-3"][2]


def test_large_answers_parsed_by_the_worker_are_the_same(sandbox_factory, monkeypatch):
    # 150 pods: the Service's A set and the SRV set come over TCP, both past worker.BIG_ANSWER bytes.
    sb = sandbox_factory(pods=150, faults=["extra-ip"])
    seen = {}
    for mode in ("0", "1"):
        monkeypatch.setenv("SSDNS_WORKER", mode)
        code, report = run_json(sb.args("--no-http", "--timeout", "20"))
        assert code == 1
        big = {(lk["name"], lk["type"]): lk for lk in report["lookups"] if lk["tcp"]}
        seen[mode] = (sorted((f["check"], f["subject"], f["status"]) for f in report["findings"]),
                      {k: (lk["outcome"], lk["values"], lk["ttl"]) for k, lk in big.items()})
    assert seen["0"] == seen["1"]
    findings, big = seen["1"]
    assert len(big) == 2 and all(len(values) >= 150 for _, values, _ in big.values())
    # The stale IP in the large A set, found in the child's parse as in this process's.
    assert [f for f in findings if f[2] != "pass"] == [("dns.service-members", "nginx.default.svc.cluster.local",
                                                        "fail")]


def test_an_answer_the_worker_does_not_parse_in_time_is_parsed_here(monkeypatch):
    import dns.message

    reply = dns.message.make_response(dns.message.make_query("big.example.", "TXT"))
    reply.answer.append(dns.rrset.from_text("big.example.", 30, "IN", "TXT", *[f'"{i:04d}{"x" * 90}"' for i in range(60)]))
    wire = reply.to_wire()
    assert len(wire) >= worker.BIG_ANSWER
    monkeypatch.setattr(worker, "PARSE_WAIT", 0.3)

    async def go():
        # a child that reads and never answers
        monkeypatch.setattr(worker, "command", lambda *_: [sys.executable, "-c", "import time; time.sleep(30)"])
        async with Worker("/", time.monotonic() + 10) as w:
            t0 = time.monotonic()
            got = await w.classify(wire, "big.example.", "TXT", "127.0.0.1:53", True)
            return got, time.monotonic() - t0

    got, took = asyncio.run(go())
    assert got.ok and len(got.values) == 60 and got.tcp and got.server == "127.0.0.1:53"
    assert 0.3 <= took < 0.3 + 2.0, took  # PARSE_WAIT, then parsed here (an upper bound with slack)


def test_through_the_worker_a_hanging_pod_is_cut_at_the_deadline(sandbox_factory, monkeypatch):
    monkeypatch.setenv("SSDNS_WORKER", "1")
    sb = sandbox_factory(faults=["http-hang:web-1"])
    t0 = time.monotonic()
    code, report = run_json(sb.args("--timeout", "2"))
    took = time.monotonic() - t0
    assert code == 1 and took < 2 + 1.0, took  # the deadline holds, worker start-up included
    [fail] = failures(report)
    assert (fail["check"], fail["subject"]) == ("http.identity", "web-1") and "no answer within" in fail["message"]


def test_a_worker_that_dies_leaves_no_pod_unprobed(sandbox):
    pods = sandbox.world.pods
    port = sandbox.world.port

    async def go():
        async with Worker("/", time.monotonic() + 10) as prober:
            first = await prober.probe(HttpRequest(pods[0].name, pods[0].ip, port, "x"))
            assert prober._proc is not None
            prober._proc.kill()  # as the OOM killer would
            rest = await asyncio.gather(*(prober.probe(HttpRequest(p.name, p.ip, port, "x")) for p in pods[1:]))
            return [first, *rest], prober.requests_sent

    observations, sent = asyncio.run(go())
    assert [(o.status, o.body) for o in observations] == [(200, p.name) for p in pods]
    assert sent == len(pods)


def test_garbage_from_the_worker_kills_it_and_the_probes_go_on(sandbox, monkeypatch):
    pods = sandbox.world.pods
    port = sandbox.world.port

    async def go():
        prober = Worker("/", time.monotonic() + 10)
        # A child that answers nonsense: `python -c` printing a line that is no answer, then waiting.
        monkeypatch.setattr(worker, "command", lambda *_: [
            sys.executable, "-c", "import sys, time; print('not json', flush=True); time.sleep(30)"])
        async with prober:
            got = await asyncio.gather(*(prober.probe(HttpRequest(p.name, p.ip, port, "x")) for p in pods))
            proc = prober._proc
        return got, proc

    got, proc = asyncio.run(go())
    assert [(o.status, o.body) for o in got] == [(200, p.name) for p in pods], [o.error for o in got]
    assert proc is not None and proc.returncode is not None  # killed, not left to run on


@pytest.mark.parametrize("answer", [  # Python expressions: the line the child prints
    repr('[0, "x"]'),  # an answer of the wrong length
    repr('[0, 1, {"status": 200}]'),  # an observation missing its fields
    repr('[0, 1, {"pod": "web-0", "bogus": true}]'),  # a field that is none
    repr('[0, "one", {}]'),  # a count that is no number
    repr('[[0], 1, {}]'),  # an id that is no id
    repr('[0, 1, {}'),  # cut short: no JSON
    "'[0, ' + ' ' * (2 << 20)",  # a line past LINE_LIMIT
])
def test_an_answer_of_the_wrong_shape_leaves_no_probe_waiting(sandbox, monkeypatch, answer):
    """The child reads the first job and answers it with its own id but nothing a probe is made of: that
    job, too, is done in this process (it was once dropped, and its probe waited until the deadline)."""
    pods = sandbox.world.pods
    port = sandbox.world.port
    child = f"import sys, time; sys.stdin.readline(); print({answer}, flush=True); time.sleep(30)"

    async def go():
        prober = Worker("/", time.monotonic() + 10)
        monkeypatch.setattr(worker, "command", lambda *_: [sys.executable, "-c", child])
        async with prober:
            got = await asyncio.wait_for(
                asyncio.gather(*(prober.probe(HttpRequest(p.name, p.ip, port, "x")) for p in pods)), 8)
            return got, prober.requests_sent

    got, sent = asyncio.run(go())
    assert [(o.status, o.body) for o in got] == [(200, p.name) for p in pods]
    assert sent == len(pods)  # each request counted once, wherever it was sent from


def test_a_worker_that_stops_answering_is_given_up_and_its_probes_done_here(sandbox, monkeypatch):
    """A child that stops (SIGSTOP: a frozen cgroup, a debugger) holds its jobs: after STALL seconds without
    an answer they are done in this process, not left to wait until the deadline."""
    pods = sandbox.world.pods
    port = sandbox.world.port

    async def go():
        async with Worker("/", time.monotonic() + 20) as prober:
            first = await prober.probe(HttpRequest(pods[0].name, pods[0].ip, port, "x"))  # started and working
            monkeypatch.setattr(worker, "STALL", 1.0)
            proc = prober._proc
            assert proc is not None and proc.returncode is None and not prober._gone
            proc.send_signal(signal.SIGSTOP)
            rest = await asyncio.wait_for(
                asyncio.gather(*(prober.probe(HttpRequest(p.name, p.ip, port, "x")) for p in pods[1:])), 10)
            return [first, *rest], proc

    got, proc = asyncio.run(go())
    assert [(o.status, o.body) for o in got] == [(200, p.name) for p in pods]
    assert proc.returncode is not None  # killed (SIGKILL ends a stopped process too), not left behind


def test_an_idle_worker_is_not_given_up(sandbox, monkeypatch):
    """Silence with no job in hand is no stall: the child stays and answers the next job."""
    pods = sandbox.world.pods
    port = sandbox.world.port

    async def go():
        async with Worker("/", time.monotonic() + 20) as prober:
            first = await prober.probe(HttpRequest(pods[0].name, pods[0].ip, port, "x"))  # started and working
            monkeypatch.setattr(worker, "STALL", 0.2)
            proc = prober._proc
            await asyncio.sleep(1.0)  # idle for five times STALL: nothing is waiting, nothing to give up
            assert proc is not None and proc.returncode is None and not prober._gone
            second = await prober.probe(HttpRequest(pods[1].name, pods[1].ip, port, "x"))
            return first, second, prober._gone

    first, second, gone = asyncio.run(go())
    assert (first.status, second.status, gone) == (200, 200, False)


def test_ctrl_c_ends_the_run_and_its_worker(sandbox_factory, tmp_path):
    sb = sandbox_factory(faults=["http-hang:web-0", "http-hang:web-1", "http-hang:web-2"])
    env = {**os.environ, "SSDNS_WORKER": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "ssdns", *sb.args("--timeout", "20")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not (children := _workers(parent=proc.pid)) and time.monotonic() < deadline:  # until it runs
            time.sleep(0.05)
        assert children, "the worker never started"
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        _out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err.decode()
    deadline = time.monotonic() + 3
    while set(children) & set(_workers()) and time.monotonic() < deadline:  # an orphan has another parent
        time.sleep(0.05)
    assert not set(children) & set(_workers()), "the worker outlived the run"


def _workers(parent: int | None = None) -> list[int]:
    """The worker children running (of `parent`, when given)."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().split(b"\0")
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if any(b"ssdns.worker" in part for part in cmd) and parent in (None, ppid):
                found.append(int(d.name))
    return found


def test_the_worker_runs_this_ssdns_not_one_in_the_working_directory(sandbox_factory, tmp_path, monkeypatch):
    # An `ssdns/` where the check is started (a checkout, or a planted one) must not run as the worker.
    planted = tmp_path / "ssdns"
    planted.mkdir()
    (planted / "__init__.py").write_text("")
    (planted / "worker.py").write_text("import pathlib; pathlib.Path(__file__).with_name('RAN').write_text('x')\n"
                                       "def main(argv): return 0\n")
    sb = sandbox_factory(pods=3)
    monkeypatch.setenv("SSDNS_WORKER", "1")
    monkeypatch.chdir(tmp_path)
    code, report = run_json(sb.args())
    assert code == 0 and report["stats"]["http_requests"] == 3
    assert not (planted / "RAN").exists()


@pytest.mark.parametrize("quota, affinity, pods, want", [
    ("max 100000", 2, 1000, True),
    ("max 100000", 1, 1000, False),  # one core: a second process only competes with this one
    ("100000 100000", 4, 1000, False),  # limits.cpu: 1
    ("250000 100000", 4, 1000, True),
    ("max 100000", 2, 50, False),  # too few pods to pay for a second interpreter
])
def test_the_worker_is_used_with_two_cores_and_enough_pods(tmp_path, monkeypatch, quota, affinity, pods, want):
    monkeypatch.delenv("SSDNS_WORKER", raising=False)
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text(quota + "\n")
    monkeypatch.setattr(sizing, "CPU_MAX", str(cpu_max))
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(affinity)))
    assert worker.wanted(pods) is want
    monkeypatch.setenv("SSDNS_WORKER", "0")
    assert worker.wanted(10_000) is False
    monkeypatch.setenv("SSDNS_WORKER", "1")
    assert worker.wanted(1) is True


def test_check_all_shares_one_worker_and_sees_what_it_sees_without(monkeypatch):
    from conftest import run_cli

    from ssdns import worker as worker_module

    started = []
    real = worker_module.Worker.__aenter__

    async def counted(self):
        started.append(self)
        return await real(self)

    monkeypatch.setattr(worker_module.Worker, "__aenter__", counted)
    seen = {}
    for mode in ("0", "1"):
        monkeypatch.setenv("SSDNS_WORKER", mode)
        code, out, err = run_cli(["demo", "--statefulsets", "3", "--fault", "wrong-name:web-b-1=web-b-2", "-o", "json"])
        assert code == 1, err
        doc = json.loads(out)
        seen[mode] = {r["target"]["statefulset"]: ({p["name"]: p["http"]["body"] for p in r["pods"]},
                                                   r["stats"]["http_requests"]) for r in doc["results"]}
    assert seen["0"] == seen["1"]
    assert seen["1"]["web-b"][0]["web-b-1"] == "web-b-2"
    assert len(started) == 1  # one child for the whole run, not one per StatefulSet


def test_a_child_started_early_is_the_one_the_check_uses(sandbox, monkeypatch):
    """cmd_check starts the child before importing the check (worker.start_early): the Worker of the same
    path and deadline adopts it, and it answers as a child started by the Worker would."""
    monkeypatch.setenv("SSDNS_WORKER", "1")
    pods, port = sandbox.world.pods, sandbox.world.port
    deadline = time.monotonic() + 10
    worker.start_early(len(pods), "/", deadline, http=True)
    [early] = worker._early.values()

    async def go():
        async with Worker("/", deadline) as w:
            assert w._proc is early and not worker._early
            return await asyncio.gather(*(w.probe(HttpRequest(p.name, p.ip, port, "x")) for p in pods))

    got = asyncio.run(go())
    assert [(o.status, o.body) for o in got] == [(200, p.name) for p in pods]
    assert early.returncode is not None  # killed and reaped at the end


def test_a_child_started_early_and_never_used_is_ended(monkeypatch):
    monkeypatch.setenv("SSDNS_WORKER", "1")
    worker.start_early(500, "/", time.monotonic() + 10, http=False)
    [early] = worker._early.values()
    async def other():  # another deadline: not this child's run
        async with Worker("/", time.monotonic() + 5, http=False) as w:
            return w._proc

    assert asyncio.run(other()) is not early
    worker.discard_early()
    assert early.returncode is not None and not worker._early


def test_a_check_that_fails_after_the_early_start_ends_its_child(sandbox, monkeypatch):
    """--state configmap with --api off is refused after the child has started: the child is ended then,
    not left to find its pipe closed."""
    from ssdns.cli import main

    monkeypatch.setenv("SSDNS_WORKER", "1")
    started = []
    start = worker._start  # every child starts there (prestart's, start_early's, the Worker's)
    monkeypatch.setattr(worker, "_start", lambda *a, **k: started.append(start(*a, **k)) or started[-1])
    code = main(sandbox.args("--api", "off", "--state", "configmap:x"))
    assert code == 2 and len(started) == 1
    assert started[0].poll() is not None and not worker._early


def test_a_child_started_before_the_options_are_parsed_is_the_one_the_check_uses(sandbox, monkeypatch):
    """cli.main starts a large check's child before it parses anything (worker.prestart); start_early gives it
    the parsed settings, and the check's HTTP goes through it: one child, whose answers are the pods'."""
    monkeypatch.setenv("SSDNS_WORKER", "1")
    started = []
    start = worker._start
    monkeypatch.setattr(worker, "_start", lambda *a, **k: started.append(start(*a, **k)) or started[-1])
    configured = []
    configure = worker._configure
    monkeypatch.setattr(worker, "_configure", lambda proc, *a: configured.append((proc, *a)) or configure(proc, *a))
    code, report = run_json(sandbox.args())
    assert code == 0, report
    assert len(started) == 1 and [c[0] for c in configured] == started  # the prestarted child, given its settings
    assert configured[0][1:] == ("/", configured[0][2], 64) and report["stats"]["http_requests"] == 3
    assert started[0].poll() is not None and not worker._early and not worker._pre


@pytest.mark.parametrize("extra", [["--no-such-option"], ["--help"], ["--replicas", "x"]])
def test_a_child_started_before_a_usage_error_is_ended(sandbox, monkeypatch, capsys, extra):
    from ssdns.cli import main

    monkeypatch.setenv("SSDNS_WORKER", "1")
    started = []
    start = worker._start
    monkeypatch.setattr(worker, "_start", lambda *a, **k: started.append(start(*a, **k)) or started[-1])
    try:
        code = main([*sandbox.args(), *extra])
    except SystemExit as exc:  # argparse's --help and usage errors
        code = exc.code
    assert code in (0, 2)
    assert all(p.poll() is not None for p in started) and not worker._pre and not worker._early
