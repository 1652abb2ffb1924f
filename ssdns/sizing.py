"""How large a check is, and what that turns on: below WORKER_FROM pods a check uses no child process (worker.py);
a small check without HTTP, the API or other resolvers runs without asyncio (smallcheck.py). Standard library
only: cli.py asks this before anything heavy is imported."""

from __future__ import annotations

import os

WORKER_FROM = 100  # pods: below this a second interpreter (~30 ms to start) does not pay
CPU_MAX = "/sys/fs/cgroup/cpu.max"  # cgroup v2, as containers see their own


def cpus() -> float:
    """The cores this process may use: its CPU affinity, capped by a cgroup CPU quota (a container's
    `resources.limits.cpu`)."""
    n = float(len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else float(os.cpu_count() or 1)
    try:
        with open(CPU_MAX) as f:  # "max 100000" or "<quota> <period>"
            quota, period = f.read().split()[:2]
        if quota != "max":
            n = min(n, int(quota) / int(period))
    except (OSError, ValueError):
        pass
    return n


def worker_wanted(pods: int) -> bool:
    """Whether a check of this many pods uses a child process. SSDNS_WORKER=0 never does, =1 always (tests)."""
    mode = os.environ.get("SSDNS_WORKER", "auto")
    if mode in ("0", "1"):
        return mode == "1"
    return pods >= WORKER_FROM and cpus() >= 2


def replicas_in(argv: list[str]) -> int | None:
    """--replicas N from a command line, by a cheap look, not a parse (prestart: before the options exist)."""
    for i, arg in enumerate(argv):
        value = arg[len("--replicas="):] if arg.startswith("--replicas=") else (
            argv[i + 1] if arg == "--replicas" and i + 1 < len(argv) else None)
        if value is not None:
            return int(value) if value.isascii() and value.isdigit() else None
    return None
