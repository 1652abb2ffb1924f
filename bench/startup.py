#!/usr/bin/env python3
"""Start-up of a small check where users run it: issue 11's `ssdns check --api off --no-http` of 3 pods,
the whole process, against `python -c pass` run by the same interpreter in the same place.

Shapes, each measured against its own `python -c pass`:

* **installed** (the production shape): an ordinary, non-editable install of this tree in a fresh venv
  without the machine's site-packages, with the image's extras (`ssdns[kube,metrics,junit,fast]`), byte-
  compiled by pip as at install, setuptools removed as in python:3.12-slim; run as users run it, through
  the `ssdns` console script. This machine's own site-packages add ~40 ms to every start (an editable-install
  finder, a certifi .pth) that an ordinary install, and the image, do not have.
* **without the standard library's bytecode**: the first installed shape, run as python:3.12-slim runs it. The
  official image deletes every .pyc of the standard library, and PYTHONDONTWRITEBYTECODE with a read-only
  root means none is written: each start compiles every stdlib module it imports. The Dockerfile compiles
  the standard library now; this shape is the image before that (PYTHONPYCACHEPREFIX: a cache with only
  the venv's packages, so Python compiles the stdlib modules and reads the packages' .pyc).
* **dev**: this tree with PYTHONPATH and the machine's interpreter and site, as bench/run.py measures it.

The image is that installed shape: a venv at /usr/local with the same wheels, run through the same `ssdns`
script (its ENTRYPOINT). Its interpreter is Debian's in CI's stand-in base (.ci/image), which is the default
second interpreter here, and python:3.12's upstream (`--python` a 3.12 to measure that one).

The world is the sandbox (`ssdns sandbox --pods 3`, this tree). Commands run in rounds, alternating, after a
warm-up each; medians are reported, with the difference check - pass ("above the interpreter"). Then
`-X importtime` of the installed shape's check: the median cumulative ms of each top-level import, the
breakdown of what is left above the interpreter. Nothing is asserted about timings.

    python bench/startup.py                          # ~3 min: venvs built in a temporary directory
    python bench/startup.py --venvs DIR --before TREE   # keep (and reuse) the venvs; TREE alternating
    python bench/startup.py --python /root/.pyenv/versions/3.12.1/bin/python3   # another interpreter

Only loopback traffic; every run has a timeout, every loop a count.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from run import ENV, PY, SandboxProcess  # noqa: E402  (bench/ is not a package)

EXTRAS = "kube,metrics,junit,fast"  # the Dockerfile's
TARGET = 0.10  # s, issue 11: the whole process of a 3-pod DNS-only check
DEBIAN_PYTHON = "/usr/bin/python3"  # the interpreter of .ci/image's stand-in base (Debian's, in a venv at /usr/local)


def make_venv(python: str, venv: Path, tree: Path) -> Path:
    """A venv of `python` without the machine's site-packages, `tree` installed into it as pip installs a
    release: not editable, byte-compiled, with the image's extras; no setuptools (as python:3.12-slim)."""
    if (venv / "bin" / "python").exists() and not made_by(venv, python):
        shutil.rmtree(venv)  # a kept --venvs DIR: another interpreter's venv under this name (venvN is the Nth --python)
    if not (venv / "bin" / "python").exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    with tempfile.TemporaryDirectory(prefix="ssdns-src-") as src:
        # From a copy of what a release holds: pip builds in the source directory, and the tree stays clean.
        for part in ("pyproject.toml", "README.md"):
            shutil.copy(tree / part, src)
        shutil.copytree(tree / "ssdns", Path(src) / "ssdns", ignore=shutil.ignore_patterns("__pycache__"))
        # Reinstalled each time: the copy in the venv is the tree as it is now.
        subprocess.run([*pip, "install", "--force-reinstall", "--no-deps", src], check=True, timeout=600)
        subprocess.run([*pip, "install", f"{src}[{EXTRAS}]"], check=True, timeout=900)
    subprocess.run([*pip, "uninstall", "-y", "setuptools"], check=False, timeout=120, capture_output=True)
    return venv


def made_by(venv: Path, python: str) -> bool:
    """Whether `python` made this venv (the interpreter its pyvenv.cfg names)."""
    try:
        cfg = dict(line.split(" = ", 1) for line in (venv / "pyvenv.cfg").read_text().splitlines() if " = " in line)
    except OSError:
        return False
    base = subprocess.run([python, "-c", "import sys; print(sys._base_executable)"], capture_output=True, text=True,
                          timeout=30).stdout.strip()
    return bool(base) and os.path.realpath(cfg.get("executable", "")) == os.path.realpath(base)


def timed(cmd: list[str], env: dict, timeout: float = 30) -> tuple[float, float]:
    """Wall time (fork to reap) and CPU time (user + system, from os.wait4) of one run; a failed run raises."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        took = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{cmd[:3]}... exited {proc.returncode}: {err.read().decode()[-500:]}")
    return took, usage.ru_utime + usage.ru_stime


def rounds(cmds: dict[str, tuple[list[str], dict]], repeat: int) -> dict[str, list[tuple[float, float]]]:
    """Every command once per round, in turn (a burst of load hits all alike); a warm-up each first."""
    for cmd, env in cmds.values():
        timed(cmd, env)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in cmds}
    for _ in range(repeat):
        for name, (cmd, env) in cmds.items():
            times[name].append(timed(cmd, env))
    return times


IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")
# The parts of a small check's imports worth naming: each module's cumulative time where it is first imported.
PARTS = {
    "asyncio": "asyncio (with ssl, concurrent.futures, logging)",
    "dns._features": "dns._features (importlib.metadata, and the version of idna)",
    "dns.rdtypes.txtbase": "dns.rdtypes.txtbase (the dns-version TXT: dns.renderer, dns.tsig, dns.rrset)",
    "argparse": "argparse",
    "dataclasses": "dataclasses (the module; inspect)",
    "ssdns.checks": "ssdns.checks (every family, the catalogue)",
}


def import_parts(cmd: list[str], env: dict, repeat: int) -> dict[str, float]:
    """Median ms of the named parts, the self time of ssdns's and dnspython's own modules, and all imports."""
    seen: dict[str, list[float]] = {}
    for _ in range(repeat):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:  # a failed check's imports are not the check's
            raise RuntimeError(f"{cmd[:3]}... exited {proc.returncode}: {proc.stderr[-500:]}")
        run = {"ssdns's own modules (self: their classes, dataclasses made at import)": 0.0,
               "dnspython's own modules (self)": 0.0, "every import (top level, cumulative)": 0.0}
        for line in proc.stderr.splitlines():
            m = IMPORT_LINE.match(line)
            if not m:
                continue
            own, total, name = int(m.group(1)) / 1000, int(m.group(2)) / 1000, m.group(4)
            if name in PARTS:
                run[PARTS[name]] = total
            if name == "ssdns" or name.startswith("ssdns."):
                run["ssdns's own modules (self: their classes, dataclasses made at import)"] += own
            if name == "dns" or name.startswith("dns."):
                run["dnspython's own modules (self)"] += own
            if len(m.group(3)) == 1:
                run["every import (top level, cumulative)"] += total
        for k, v in run.items():
            seen.setdefault(k, []).append(v)
    return {k: statistics.median(v + [0.0] * (repeat - len(v))) for k, v in seen.items()}


def no_stdlib_bytecode(venv: Path, prefix: Path) -> Path:
    """A bytecode cache (PYTHONPYCACHEPREFIX) that holds the venv's site-packages and nothing of the standard
    library: run with it, Python finds no .pyc for a stdlib module and compiles it, as in python:3.12-slim (the
    official image deletes the stdlib's .pyc; PYTHONDONTWRITEBYTECODE and a read-only root keep it so) unless
    the Dockerfile compiles it. The packages' bytecode is there, as pip wrote it at install."""
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    shutil.rmtree(prefix, ignore_errors=True)
    subprocess.run([python, "-m", "compileall", "-q", site], env={**os.environ, "PYTHONPYCACHEPREFIX": str(prefix)},
                   check=True, timeout=600, stdout=subprocess.DEVNULL)
    return prefix


def interpreters(given: list[str]) -> list[str]:
    if given:
        return given
    found = [PY]
    if os.access(DEBIAN_PYTHON, os.X_OK) and os.path.realpath(DEBIAN_PYTHON) != os.path.realpath(PY):
        found.append(DEBIAN_PYTHON)
    return found


def version_of(python: str) -> str:
    out = subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                         capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=15, help="rounds (default 15)")
    ap.add_argument("--python", action="append", default=[], metavar="PATH",
                    help=f"an interpreter to make an installed venv of (repeatable; default: this one, and "
                         f"{DEBIAN_PYTHON} when it is another, the interpreter of .ci/image's stand-in base)")
    ap.add_argument("--before", type=Path, metavar="TREE",
                    help="another checkout (e.g. main before a change), installed the same way, alternating")
    ap.add_argument("--venvs", type=Path, metavar="DIR", help="keep the venvs here and reuse them (default: a "
                    "temporary directory, removed)")
    ap.add_argument("--no-slim", action="store_true",
                    help="skip the shape without the standard library's bytecode (python:3.12-slim as it ships)")
    ap.add_argument("--no-dev", action="store_true", help="skip the dev shape (this tree on PYTHONPATH)")
    args = ap.parse_args()
    if not 1 <= args.repeat <= 200:
        ap.error("--repeat: 1 to 200")

    def log(msg: str) -> None:
        print(f"[startup] {msg}", file=sys.stderr, flush=True)

    subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "ssdns")], check=True, timeout=120)
    tmp = tempfile.mkdtemp(prefix="ssdns-startup-")
    where = args.venvs or Path(tmp)
    clean = {k: v for k, v in ENV.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    shapes: list[tuple[str, list[str], list[str], dict]] = []  # (label, python, the check's command prefix, env)
    try:
        for i, python in enumerate(interpreters(args.python)):
            label = f"installed, Python {version_of(python)} ({python})"
            trees = [("", ROOT), *([(" before", args.before)] if args.before else [])]
            venvs = []
            for suffix, tree in trees:
                venv = make_venv(python, where / f"venv{i}{suffix.strip()}", tree)
                venvs.append(venv)
                log(f"installed {tree} into {venv}")
                shapes.append((label + suffix, [str(venv / "bin" / "python")], [str(venv / "bin" / "ssdns")], clean))
            if i == 0 and not args.no_slim:
                prefix = no_stdlib_bytecode(venvs[0], where / "pycache-slim")
                shapes.append((f"{label} without the standard library's bytecode (python:3.12-slim as it ships)",
                               [str(venvs[0] / "bin" / "python")], [str(venvs[0] / "bin" / "ssdns")],
                               {**clean, "PYTHONPYCACHEPREFIX": str(prefix), "PYTHONDONTWRITEBYTECODE": "1"}))
        if not args.no_dev:
            shapes.append((f"dev: PYTHONPATH={ROOT}, this machine's site", [PY], [PY, "-m", "ssdns"],
                           {**ENV, "PYTHONPATH": str(ROOT)}))
        with SandboxProcess(3, duration=900) as sb:
            check = [*sb.check_args, "--api", "off", "--no-http"]
            cmds: dict[str, tuple[list[str], dict]] = {}
            for label, python, ssdns, env in shapes:
                cmds[f"{label}|pass"] = ([*python, "-c", "pass"], env)
                cmds[f"{label}|check"] = ([*ssdns, *check], env)
            log(f"{args.repeat} rounds of {len(cmds)} commands")
            times = rounds(cmds, args.repeat)
            first = shapes[0]
            runs = max(5, args.repeat // 3)
            parts = import_parts([*first[1], "-X", "importtime", first[2][0], *check], first[3], runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    wall = {name: statistics.median(t[0] for t in v) for name, v in times.items()}
    cpu = {name: statistics.median(t[1] for t in v) for name, v in times.items()}
    print(f"\n3-pod DNS-only check (`ssdns check --api off --no-http`, the sandbox), whole process, "
          f"medians of {args.repeat} alternating rounds (wall; CPU = user + system); target {TARGET:.2f} s wall\n")
    print("| shape | `python -c pass` | `ssdns check` | above the interpreter | the check's wall range |")
    print("|---|---|---|---|---|")
    for label, *_ in shapes:
        p, c = f"{label}|pass", f"{label}|check"
        lo, hi = min(t[0] for t in times[c]), max(t[0] for t in times[c])
        print(f"| {label} | {wall[p]:.3f} s (CPU {cpu[p]:.3f}) | {wall[c]:.3f} s (CPU {cpu[c]:.3f}) | "
              f"{wall[c] - wall[p]:.3f} s (CPU {cpu[c] - cpu[p]:.3f}) | {lo:.3f}-{hi:.3f} s |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    print(f"\nWhere the first shape's imports go (`-X importtime` of its `ssdns` script, ms, median of {runs} runs; "
          "a part is counted where it is first imported, so parts overlap the own-modules rows):\n")
    for name, ms in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"    {ms:6.1f} ms  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
