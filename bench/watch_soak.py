"""Soak of `ssdns watch`: do its memory and open file descriptors stay flat over many full checks and
pod replacements?

The sandbox runs as its own process (`python -m ssdns sandbox`, short controller delays), `ssdns watch`
as another (`--interval 0.01`: one full check after the other), and this script replaces pods through
the sandbox's API (a DELETE, as an eviction does), one at a time, each after the previous one converged
(`ssdns_watch_replacements_total` went up). It reads the watch's RSS (VmRSS) and open fds
(/proc/PID/fd, the fewest and most of 20 readings over 2 s: sockets come and go with each check) at the
start (after the first check), after 1,000 and after 10,000 full checks (--checks), with the
replacements done by then. Nothing is asserted: the numbers go to bench/RESULTS.md by hand.

    python bench/watch_soak.py                        # 10,000 checks and 1,000 replacements: ~15 minutes
    python bench/watch_soak.py --checks 200 --replacements 20   # a quick look
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def metric(text: str, name: str, labels: str = "") -> float:
    m = re.search(rf"^{name}\{{[^}}]*{labels}[^}}]*\}} ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checks", type=int, default=10_000)
    ap.add_argument("--replacements", type=int, default=1_000)
    ap.add_argument("--pods", type=int, default=3)
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KUBECONFIG": "/nonexistent"}
    tmp = Path(tempfile.mkdtemp(prefix="ssdns-soak-"))
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "ssdns", "sandbox", "--pods", str(args.pods), "--terminate-delay", "0.02",
         "--ready-delay", "0.05", "--dns-delay", "0.05", "--kubeconfig-out", str(tmp / "kc"), "--duration", "3600"],
        stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    lines = [sandbox.stdout.readline() for _ in range(4)]
    api = re.search(r"Kubernetes API at (\S+);", "".join(lines)).group(1)
    check = next(ln for ln in lines if ln.strip().startswith("ssdns check")).split()[2:]
    check = [a for a in check if a not in ("--replicas", str(args.pods))]
    port = 9799
    watch = subprocess.Popen(
        [sys.executable, "-m", "ssdns", "watch", *check, "--listen", f"127.0.0.1:{port}", "--interval", "0.01",
         "--probe-interval", "0.05", "--settle", "0.1", "--give-up", "30", "--state", str(tmp / "state.json")],
        stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    rows = []
    try:
        def scrape() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:  # noqa: S310
                return r.read().decode()

        for _ in range(600):
            try:
                if metric(scrape(), "ssdns_watch_full_checks_total") >= 1:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        t0 = time.monotonic()

        def sample(label: str) -> None:
            text = scrape()
            open_fds = []
            for _ in range(20):  # sockets come and go with each check: the fewest and the most over 2 s
                open_fds.append(fds(watch.pid))
                time.sleep(0.1)
            rows.append((label, int(metric(text, "ssdns_watch_full_checks_total")),
                         int(sum(float(x) for x in re.findall(r"^ssdns_watch_replacements_total\{[^}]*\} (\S+)$",
                                                              text, re.M))),
                         rss_kib(watch.pid), f"{min(open_fds)}-{max(open_fds)}", time.monotonic() - t0))
            print(rows[-1], flush=True)

        sample("start")
        done, pod, marks = 0, 0, sorted({m for m in (1_000, args.checks) if m <= args.checks})
        while marks:
            text = scrape()
            checks = metric(text, "ssdns_watch_full_checks_total")
            if checks >= marks[0]:
                sample(f"after {marks.pop(0):,} checks")
                continue
            finished = sum(float(x) for x in re.findall(r"^ssdns_watch_replacements_total\{[^}]*\} (\S+)$", text, re.M))
            if done < args.replacements and finished >= done:
                name = f"web-{pod % args.pods}"
                req = urllib.request.Request(f"{api}/api/v1/namespaces/default/pods/{name}", method="DELETE")
                try:
                    urllib.request.urlopen(req, timeout=5).close()  # noqa: S310 - the sandbox, on loopback
                    done += 1
                    pod += 1
                except OSError:
                    pass  # the pod is between its delete and its replacement: try again
            time.sleep(0.02)
        while done < args.replacements:
            time.sleep(0.1)
            finished = sum(float(x) for x in re.findall(r"^ssdns_watch_replacements_total\{[^}]*\} (\S+)$",
                                                        scrape(), re.M))
            if finished >= done:
                req = urllib.request.Request(f"{api}/api/v1/namespaces/default/pods/web-{pod % args.pods}",
                                             method="DELETE")
                try:
                    urllib.request.urlopen(req, timeout=5).close()  # noqa: S310
                    done, pod = done + 1, pod + 1
                except OSError:
                    pass
        if rows[-1][2] < args.replacements:
            time.sleep(2)
            sample("after the replacements")
    finally:
        watch.send_signal(signal.SIGTERM)
        code = watch.wait(10)
        sandbox.send_signal(signal.SIGTERM)
        sandbox.wait(10)
    print(f"\nwatch exit code after SIGTERM: {code}")
    print("| when | full checks | replacements probed | RSS (MiB) | open fds (fewest-most over 2 s) | seconds |")
    print("|---|---|---|---|---|---|")
    for label, checks, repl, rss, nfd, secs in rows:
        print(f"| {label} | {checks:,} | {repl:,} | {rss / 1024:.1f} | {nfd} | {secs:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
