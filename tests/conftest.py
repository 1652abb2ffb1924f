"""Shared fixtures: the sandbox on a background event loop, and the CLI run in-process."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import threading
import time

import pytest

from ssdns.cli import main
from ssdns.sandbox import Sandbox, make_world


class ThreadedSandbox:
    """The sandbox on its own loop in a thread, so the real CLI (which runs asyncio.run) can check it."""

    def __init__(self, world):
        self.world = world
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sandbox = Sandbox(world)
        self.call(self.sandbox.start())

    def call(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def change(self, fn) -> None:
        """Mutate the world on the sandbox's own thread, then re-sync the listeners."""
        async def go():
            fn(self.world)
            self.world.changed()
            await self.sandbox.sync()
        self.call(go())

    def stop(self) -> None:
        self.call(self.sandbox.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def args(self, *extra: str) -> list[str]:
        return [*self.sandbox.check_args(), "--timeout", "5", "--api", "off", *extra]

    def api_args(self, tmp_path, *extra: str, api: str = "on") -> list[str]:
        """Check arguments that cross-check the sandbox's Kubernetes API through a written kubeconfig."""
        kubeconfig = self.sandbox.write_kubeconfig(tmp_path / "kubeconfig")
        return [*self.sandbox.check_args(), "--timeout", "5", "--api", api, "--kubeconfig", str(kubeconfig),
                *extra]


@pytest.fixture(autouse=True)
def no_real_cluster(monkeypatch, tmp_path):
    """Tests must never reach a real cluster: hide any kubeconfig and in-cluster credentials."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)


@pytest.fixture
def sandbox_factory():
    made = []

    def make(pods: int = 3, faults=(), **world_kw) -> ThreadedSandbox:
        from ssdns.sandbox import apply_fault

        world = make_world(pods, **world_kw)
        for spec in faults:
            apply_fault(world, spec)
        sb = ThreadedSandbox(world)
        made.append(sb)
        return sb

    yield make
    for sb in made:
        sb.stop()


@pytest.fixture
def sandbox(sandbox_factory):
    return sandbox_factory()



def until(fn, timeout: float = 5.0, every: float = 0.02):
    """Poll fn() until it returns something truthy; bounded in count and by timeout."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / every) + 2):
        value = fn()
        if value:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(every)
    raise AssertionError(f"not reached within {timeout} s: {getattr(fn, '__name__', fn)}")


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def run_json(argv: list[str]) -> tuple[int, dict]:
    code, out, err = run_cli([*argv, "--output", "json"])
    assert out, f"no JSON on stdout; stderr: {err}"
    return code, json.loads(out)


def failures(report: dict, check: str | None = None) -> list[dict]:
    return [f for f in report["findings"] if f["status"] == "fail" and (check is None or f["check"] == check)]
