"""The benchmark script runs end to end at N=3 and produces its tables (no timing is asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_bench_runs_and_writes_tables(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# notes kept\n")
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--pods", "3", "--repeat", "1",
                          "--no-baseline", "--no-startup", "--results", str(results)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "| N | ssdns wall |" in run.stdout
    assert "| N | DNS queries (stats) | formula 2N+4 |" in run.stdout
    row = next(line for line in run.stdout.splitlines() if line.startswith("| 3 | 10 | 10 |"))
    assert "| 3 | 3 |" in row  # 3 HTTP requests, formula N
    text = results.read_text()
    assert text.startswith("# notes kept") and "bench:begin" in text and "bench:end" in text



def test_fleet_bench_runs_and_writes_its_block(tmp_path):
    """bench/fleet.py at 3 StatefulSets of 2 pods against one of 6: its table and its RESULTS.md block."""
    results = tmp_path / "RESULTS.md"
    results.write_text("# notes kept\n")
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "fleet.py"), "--statefulsets", "3", "--pods", "2",
                          "--repeat", "1", "--results", str(results)], capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "| `check --all` | 3 x 2 |" in run.stdout and "| `check --statefulset big` | 1 x 6 |" in run.stdout
    text = results.read_text()
    assert text.startswith("# notes kept") and "fleet:begin" in text and "fleet:end" in text


def test_fleet_bench_with_every_resolver_writes_its_own_block(tmp_path):
    """--resolvers all: both checks ask every DNS replica; the plain fleet block is left as it was."""
    results = tmp_path / "RESULTS.md"
    results.write_text("# notes kept\n<!-- fleet:begin (x) -->\nplain figures\n<!-- fleet:end -->\n")
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "fleet.py"), "--statefulsets", "3", "--pods", "2",
                          "--repeat", "1", "--resolvers", "all", "--results", str(results)], capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "| `check --all --resolvers all --transport udp` | 3 x 2 |" in run.stdout
    assert "Fleet verdicts: {'pass': 3, 'warn': 0, 'fail': 0, 'error': 0}" in run.stdout  # the replicas agree
    text = results.read_text()
    assert "plain figures" in text and "fleet-resolvers:begin" in text and "fleet-resolvers:end" in text


def test_startup_bench_reuses_a_kept_venv_only_when_the_same_interpreter_made_it(tmp_path):
    """bench/startup.py --venvs DIR names its venvs by position (venv0: the first --python): a later run with
    another --python took the venv the first made and labelled its times with the new interpreter's version."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import startup
    finally:
        sys.path.remove(str(ROOT / "bench"))
    venv = tmp_path / "venv0"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    assert startup.made_by(venv, sys.executable)
    assert not startup.made_by(tmp_path / "none", sys.executable)
    other = startup.DEBIAN_PYTHON
    if not Path(other).exists() or os.path.realpath(other) == os.path.realpath(sys._base_executable):
        pytest.skip(f"no second interpreter here ({other})")
    assert not startup.made_by(venv, other)


def test_startup_bench_counts_no_imports_of_a_run_that_failed():
    """Its -X importtime breakdown took any run's stderr: a check that failed (the sandbox gone, a usage error)
    gave a breakdown of whatever it imported before failing, printed as the check's."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import startup
    finally:
        sys.path.remove(str(ROOT / "bench"))
    failing = [sys.executable, "-X", "importtime", "-c", "import json; raise SystemExit(3)"]
    with pytest.raises(RuntimeError, match="exited 3"):
        startup.import_parts(failing, dict(os.environ), 1)
