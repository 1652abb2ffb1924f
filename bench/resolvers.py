"""Every resolver at scale: N pods, the path plus 3 replicas, --transport both, against one resolver.

    python bench/resolvers.py                      # N=1000, 5 rounds; rewrites its block of bench/RESULTS.md
    python bench/resolvers.py --pods 200 --repeat 1 --results -   # a quick look, nothing written
    python bench/resolvers.py --before /work/before   # also the previous tree's two runs, alternating

The world: four knotd servers on loopback (127.56.0.1-4, free ports), all serving the same headless
Service zone of N pods (tests/knotdns.py). The first is the path (--nameserver); the other three are the
"replicas" (--resolvers HOST:PORT,...: a list needs no API). Two ssdns runs, alternating in rounds so
load from the machine's other users hits both alike: the single resolver (today's run, UDP) and every
resolver over UDP and TCP (--transport both). DNS only (--no-http): HTTP would be the same in both.

Reported, medians of the rounds: wall time (fork to reap), the ratio all/single (per round, then the median),
CPU (user + system: steadier than wall on a shared machine), peak RSS (GNU time), and
the DNS queries from the JSON's stats against the documented count: the single run's queries plus one
per question for each of the 3 replicas over UDP and over TCP and for the path over TCP (7 per question).
With --before, the previous tree's single and all runs join the same rounds: its ratio, and each run's
wall against its own before (medians of the per-round quotients).
Loopback only; every wait is bounded (knotd's start by tests/knotdns.py, each run by a timeout).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from knotdns import KnotServer, Pod, headless_zones  # noqa: E402
from run import ENV, measure  # noqa: E402

HOSTS = ["127.56.0.1", "127.56.0.2", "127.56.0.3", "127.56.0.4"]
BEGIN, END = "<!-- resolvers:begin -->", "<!-- resolvers:end -->"


def pod_ip(i: int) -> str:
    return f"127.92.{i // 250}.{i % 250 + 1}"


def ssdns(n: int, path: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ssdns", "check", "--service", "nginx", "--namespace", "default",
            "--statefulset", "web", "--replicas", str(n), "--port-name", "web", "--cluster-domain",
            "cluster.local", "--nameserver", path, "--api", "off", "--no-http", "--timeout", "60", "-o", "json",
            *extra]


def bench(n: int, repeat: int, log, before: Path | None = None) -> dict:
    zones = headless_zones([Pod(f"web-{i}", pod_ip(i)) for i in range(n)], port=8080)
    servers = [KnotServer(zones, address=h) for h in HOSTS]
    for s in servers:
        s.__enter__()
    try:
        path, replicas = (f"{s.host}:{s.port}" for s in servers[:1]), [f"{s.host}:{s.port}" for s in servers[1:]]
        path_ns = next(path)
        cmds = {"single": ssdns(n, path_ns),
                "all": ssdns(n, path_ns, "--resolvers", ",".join(replicas), "--transport", "both")}
        cwds = {"single": ROOT, "all": ROOT}
        if before is not None:  # another tree's ssdns (main before a change), from its own directory
            for k in ("single", "all"):
                cmds[f"{k} before"], cwds[f"{k} before"] = cmds[k], before
        runs: dict[str, list] = {k: [] for k in cmds}
        for name, cmd in cmds.items():  # warm-up
            measure(cmd, 120 + 0.05 * n, env=ENV, cwd=cwds[name])
        for r in range(repeat):
            for name, cmd in cmds.items():
                run = measure(cmd, 120 + 0.05 * n, env=ENV, cwd=cwds[name])
                if run.rc not in (0, 1):
                    raise RuntimeError(f"{name} exited {run.rc}: {run.stderr[-500:]}")
                runs[name].append(run)
                log(f"  N={n} round {r + 1} {name}: {run.wall:.2f} s, {run.maxrss_kib // 1024} MiB")
    finally:
        for s in servers:
            s.__exit__(None, None, None)
    single, every = (json.loads(runs[k][-1].stdout) for k in ("single", "all"))
    questions = len(single["lookups"])
    expected = single["stats"]["dns_queries"] + 7 * questions
    wall = {k: statistics.median(r.wall for r in v) for k, v in runs.items()}
    rss = {k: statistics.median(r.maxrss_kib for r in v) / 1024 for k, v in runs.items()}
    cpu = {k: statistics.median(r.cpu for r in v) for k, v in runs.items()}
    log(f"  N={n} medians: " + ", ".join(f"{k} {wall[k]:.2f} s wall, {cpu[k]:.2f} s CPU" for k in runs))

    def per_round(a: str, b: str) -> float | None:
        if a not in runs or b not in runs:
            return None
        return statistics.median(x.wall / y.wall for x, y in zip(runs[a], runs[b], strict=True))

    before = {"ratio": per_round("all before", "single before"), "single": per_round("single", "single before"),
              "all": per_round("all", "all before")}
    return {"n": n, "repeat": repeat, "before": before, "cpu": cpu, "questions": questions,
            "single_queries": single["stats"]["dns_queries"],
            "all_queries": every["stats"]["dns_queries"], "expected": expected, "wall": wall, "rss": rss,
            "ratio": per_round("all", "single"), "verdict": every["ok"],
            "failed": [f["check"] for f in every["findings"] if f["status"] != "pass"]}


def render(rows: list[dict]) -> str:
    import importlib.util
    import os
    import platform
    import time

    uv = "uvloop" if importlib.util.find_spec("uvloop") else "no uvloop"

    lines = [f"Every resolver at scale (`bench/resolvers.py`), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
             f"{os.cpu_count()} cores, Python {platform.python_version()} ({uv}), load {os.getloadavg()[0]:.1f}: "
             "4 knotd on loopback, DNS only, medians of alternating rounds.", "",
             "| N | questions | queries single | queries all (documented) | wall single | wall all | "
             "ratio (<= 2.5) | CPU single | CPU all | RSS single | RSS all (<= 100 MiB) | "
             "ratio before | single / single before | all / all before | findings |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]

    def x(v: float | None, unit: str = "x") -> str:
        return "-" if v is None else f"{v:.2f}{unit}"

    for r in rows:
        exact = "exact" if r["all_queries"] == r["expected"] else f"expected {r['expected']}"
        b = r["before"]
        lines.append(f"| {r['n']} | {r['questions']} | {r['single_queries']} | {r['all_queries']} ({exact}) | "
                     f"{r['wall']['single']:.2f} s | {r['wall']['all']:.2f} s | {r['ratio']:.2f} | "
                     f"{r['cpu']['single']:.2f} s | {r['cpu']['all']:.2f} s | "
                     f"{r['rss']['single']:.0f} MiB | {r['rss']['all']:.0f} MiB | "
                     f"{x(b['ratio'], '')} | {x(b['single'])} | {x(b['all'])} | "
                     f"{', '.join(sorted(set(r['failed']))) or 'none'} |")
    return "\n".join(lines)


def write(path: Path, block: str) -> None:
    text = path.read_text() if path.exists() else ""
    body = f"{BEGIN}\n{block}\n{END}"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + body + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n## Every resolver (issue 12)\n\n" + body + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pods", default="1000", help="comma-separated pod counts (default 1000)")
    ap.add_argument("--repeat", type=int, default=5, help="rounds, medians kept (default 5)")
    ap.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"), help="file to update, or - (print only)")
    ap.add_argument("--before", metavar="TREE", type=Path,
                    help="also run every resolver with another checkout's ssdns, alternating (all / all before)")
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    for tree in (ROOT, *([args.before] if args.before else [])):  # as installed: byte-compiled (bench/run.py)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "ssdns")], check=True, timeout=120)
    rows = [bench(int(n), max(1, args.repeat), log, args.before) for n in args.pods.split(",")]
    block = render(rows)
    print(block)
    if args.results != "-":
        write(Path(args.results), block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
