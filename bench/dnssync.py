#!/usr/bin/env python3
"""The blocking DNS client (ssdns/dnssync.py) against the asyncio one (ssdns/dnsclient.py in asyncio.run), on
a DNS-only check's questions against the sandbox: the Service's A and AAAA, SRV, the DNS version and each pod's
A, then the PTR of every address they gave.

Two measures, each in alternating rounds after a warm-up, medians reported:

* **in process**: one check's questions (both batches), wall and CPU time, per pod count (3 and 100 by default):
  the loop itself (asyncio is imported once by then);
* **whole process** (3 pods): `python -c` importing the client and asking those questions, as the small check's
  path will, against `python -c pass`: what the import of asyncio and its loop costs a start.

    python bench/dnssync.py                    # ~1 min
    python bench/dnssync.py --pods 3,100,1000 --repeat 31

Only loopback traffic (the sandbox in its own process); every run has a timeout, every loop a count. Nothing is
asserted about timings.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from run import ENV, PY, SandboxProcess  # noqa: E402  (bench/ is not a package)

from ssdns.dnsclient import DnsClient  # noqa: E402
from ssdns.dnssync import BlockingClient  # noqa: E402
from ssdns.names import reverse_name  # noqa: E402
from ssdns.target import Nameserver  # noqa: E402

TIMEOUT = 10.0  # each run's deadline


def questions(check_args: list[str]) -> list[tuple[str, str, int]]:
    """The first batch of a DNS-only check of the sandbox whose `ssdns check` arguments these are."""
    opt = {k: v for k, v in itertools.pairwise(check_args) if k.startswith("--")}
    svc = f"{opt['--service']}.{opt['--namespace']}.svc.{opt['--cluster-domain']}."
    n = int(opt["--replicas"])
    return [(svc, "A", n), (svc, "AAAA", 0), (f"_{opt['--port-name']}._tcp.{svc}", "SRV", n),
            (f"dns-version.{opt['--cluster-domain']}.", "TXT", 0),
            *((f"{opt['--statefulset']}-{i}.{svc}", "A", 0) for i in range(n))]


def ptrs(looks) -> list[tuple[str, str, int]]:
    return [(reverse_name(ip), "PTR", 0) for ip in sorted({v for lk in looks if lk.rdtype == "A" for v in lk.values})]


def blocking(ns: tuple[Nameserver, ...], qs: list) -> int:
    with BlockingClient(ns, time.monotonic() + TIMEOUT) as client:
        first = client.ask(qs)
        client.ask(ptrs(first))
        return sum(lk.ok for lk in client.lookups())


def with_asyncio(ns: tuple[Nameserver, ...], qs: list) -> int:
    async def go() -> int:
        client = DnsClient(ns, time.monotonic() + TIMEOUT)
        try:
            first = await asyncio.gather(*(client.lookup(*q) for q in qs))
            await asyncio.gather(*(client.lookup(*q) for q in ptrs(first)))
            return sum(lk.ok for lk in client.lookups())
        finally:
            client.close()

    return asyncio.run(go())


def in_process(ns: tuple[Nameserver, ...], qs: list, repeat: int) -> dict[str, tuple[float, float]]:
    """{client: (median wall ms, median CPU ms)}, the two alternating (which goes first, too)."""
    runs: dict[str, list[tuple[float, float]]] = {"blocking": [], "asyncio": []}
    fns = {"blocking": blocking, "asyncio": with_asyncio}
    oks = {name: fn(ns, qs) for name, fn in fns.items()}  # warm-up; both must get the same answers
    if oks["blocking"] != oks["asyncio"]:
        raise RuntimeError(f"the clients disagree: {oks}")
    for r in range(repeat):
        for name in (("blocking", "asyncio") if r % 2 == 0 else ("asyncio", "blocking")):
            wall, cpu = time.perf_counter(), time.process_time()
            fns[name](ns, qs)
            runs[name].append(((time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000))
    return {name: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for name, v in runs.items()}


def _program(client: str, ns: Nameserver, qs: list) -> str:
    head = f"import time\nfrom ssdns.target import Nameserver\nns = (Nameserver({ns.host!r}, {ns.port}),)\nqs = {qs!r}\n"
    if client == "blocking":
        return head + (
            "from ssdns.dnssync import BlockingClient\n"
            "with BlockingClient(ns, time.monotonic() + 10) as c:\n"
            "    c.ask(qs)\n"
        )
    return head + (
        "import asyncio\nfrom ssdns.dnsclient import DnsClient\n"
        "async def go():\n"
        "    c = DnsClient(ns, time.monotonic() + 10)\n"
        "    await asyncio.gather(*(c.lookup(*q) for q in qs))\n"
        "    c.close()\n"
        "asyncio.run(go())\n"
    )


def whole_process(ns: Nameserver, qs: list, repeat: int) -> dict[str, float]:
    """Median wall ms of `python -c` asking qs with each client, and of `python -c pass`."""
    env = {**ENV, "PYTHONPATH": str(ROOT)}
    cmds = {"pass": [PY, "-c", "pass"], "blocking": [PY, "-c", _program("blocking", ns, qs)],
            "asyncio": [PY, "-c", _program("asyncio", ns, qs)]}
    times: dict[str, list[float]] = {k: [] for k in cmds}
    order = list(cmds)
    for r in range(repeat + 1):  # the first round is a warm-up
        for name in (order if r % 2 == 0 else order[::-1]):
            start = time.perf_counter()
            subprocess.run(cmds[name], env=env, check=True, timeout=30, stdout=subprocess.DEVNULL)
            if r:
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(v) for name, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pods", default="3,100", help="pod counts, comma-separated (default 3,100)")
    ap.add_argument("--repeat", type=int, default=21, help="rounds (default 21)")
    args = ap.parse_args()
    pods = [int(p) for p in args.pods.split(",")]
    if not 1 <= args.repeat <= 500 or not all(1 <= p <= 5000 for p in pods):
        ap.error("--repeat: 1 to 500; --pods: 1 to 5000 each")
    subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "ssdns")], check=True, timeout=120)
    print(f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, {args.repeat} alternating rounds, medians")
    print("\nIn process, one check's questions (both batches):")
    print(f"{'pods':>5} {'questions':>9} {'blocking ms':>12} {'asyncio ms':>11} {'ratio':>6} "
          f"{'blocking CPU':>13} {'asyncio CPU':>12}")
    for n in pods:
        with SandboxProcess(n, duration=900) as sb:
            ns = (Nameserver(sb.ns_host, sb.ns_port),)
            qs = questions(sb.check_args)
            got = in_process(ns, qs, args.repeat)
            (bw, bc), (aw, ac) = got["blocking"], got["asyncio"]
            print(f"{n:>5} {len(qs) + n:>9} {bw:>12.2f} {aw:>11.2f} {bw / aw:>6.2f} {bc:>13.2f} {ac:>12.2f}")
            if n == pods[0]:
                whole, asked = whole_process(ns[0], qs, args.repeat), len(qs)
    print(f"\nWhole process, {pods[0]} pods' first batch ({asked} questions), `python -c`:")
    for name in ("pass", "blocking", "asyncio"):
        above = f"  ({whole[name] - whole['pass']:.1f} above pass)" if name != "pass" else ""
        print(f"  {name:<9} {whole[name]:7.1f} ms{above}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
