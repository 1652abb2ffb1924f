"""Bad input gets one line and exit 2 from the real executable; start-up stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest


def ssdns(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ssdns", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args, says", [
    (["check", "--service", "Web_1", "--nameserver", "127.0.0.1"], "not a valid DNS label"),
    (["check", "--service", "9web", "--nameserver", "127.0.0.1"], "start with a letter"),
    (["check", "nginx", "-n", "Prod", "--nameserver", "127.0.0.1"], "namespace 'Prod'"),
    (["check", "nginx", "--output", "yaml"], "invalid choice: 'yaml'"),
    (["check", "nginx", "--nameserver", "127.0.0.1", "--port-name", "a-very-long-port-name"], "1-15 lower-case"),
    (["check", "nginx", "--port", "70000"], "out of range"),
    (["check", "nginx", "--port", "0"], "out of range"),
    (["check", "nginx", "--nameserver", "dns.example"], "not an IP address"),
    (["check", "nginx", "--nameserver", "127.0.0.1:99999"], "out of range"),
    (["check", "nginx", "--nameserver", "127.0.0.1", "--expect", "(", "--match", "regex"], "not a valid regular expression"),
    (["check", "nginx", "--nameserver", "127.0.0.1", "--expect", "{podname}"], "is not a field"),
    (["check", "nginx", "--nameserver", "127.0.0.1", "--timeout", "-1"], "out of range"),
    (["check", "nginx", "--nameserver", "127.0.0.1", "--replicas", "3"], "--replicas needs --statefulset"),
    (["check", "nginx", "--nameserver", "127.0.0.1", "--cluster-domain", "a..b"], "not a valid DNS label"),
    (["check", "--nameserver", "127.0.0.1"], "no Service given"),
    (["check", "nginx", "--nameserver", "127.0.0.1", "--path", "x"], "must start with '/'"),
    (["demo", "--fault", "bogus"], "unknown fault 'bogus'"),
    (["demo", "--fault", "no-http:web-9"], "no pod 'web-9'"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_2(args, says):
    proc = ssdns(*args)
    assert proc.returncode == 2, proc
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ssdns: error: "), proc.stderr
    assert says in lines[0] and "Traceback" not in proc.stderr


def test_help_documents_exit_codes():
    for args in (["--help"], ["check", "--help"]):
        proc = ssdns(*args)
        assert proc.returncode == 0
        for code in ("0  every check passed", "1  a check failed", "2  bad usage", "3  could not run"):
            assert code in proc.stdout


def test_demo_runs_end_to_end():
    proc = ssdns("demo", "--color", "never")
    assert proc.returncode == 0, proc.stderr
    assert "PASS: 0 failed" in proc.stdout
    proc = ssdns("demo", "--fault", "wrong-name:web-1=web-2", "--output", "json")
    assert proc.returncode == 1 and '"ok": false' in proc.stdout


def test_dns_only_check_does_not_import_aiohttp_or_kubernetes(sandbox):
    """A CronJob runs this every minute: a DNS-only run must not pay for aiohttp or the kubernetes client."""
    code = ("import sys\nfrom ssdns.cli import main\nrc = main(sys.argv[1:])\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'aiohttp', 'kubernetes'}), rc)")
    proc = subprocess.run([sys.executable, "-c", code, *sandbox.args("--no-http", "--output", "json")],
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[] 0"


def test_help_loads_only_the_standard_library():
    code = ("import sys\nfrom ssdns.cli import build_parser\nbuild_parser()\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'dns', 'aiohttp', 'kubernetes'}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert proc.stdout.strip() == "[]", proc.stderr


def test_every_sandbox_fault_is_documented_in_help_and_readme():
    from pathlib import Path

    from ssdns.cli import FAULT_HELP
    from ssdns.sandbox.faults import FAULTS

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for kind in FAULTS:
        assert kind in FAULT_HELP, kind
        assert f"`{kind}" in readme, kind


@pytest.mark.parametrize("args, code, says", [
    (["history", "--state", "{tmp}/corrupt.json"], 2, "not valid JSON"),
    (["history", "--state", "{tmp}/none.json"], 2, "does not exist yet"),
    (["check", "nginx", "--nameserver", "127.0.0.1", "--api", "off", "--state", "configmap:s"], 2, "drop --api off"),
    (["check", "nginx", "--nameserver", "127.0.0.1", "--pushgateway", "ftp://x"], 2, "http:// or https://"),
])
def test_state_and_output_problems_are_one_line(tmp_path, args, code, says):
    (tmp_path / "corrupt.json").write_text("{bad")
    proc = ssdns(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert proc.returncode == code and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and says in proc.stderr
    assert (tmp_path / "corrupt.json").read_text() == "{bad"


def test_demo_and_sandbox_work_without_the_kubernetes_client():
    """`pip install .` (no [kube] extra) must still give a working demo: the API part is skipped, and said so."""
    code = ("import sys\nsys.modules['kubernetes'] = None  # as if not installed\n"
            "from ssdns.cli import main\nraise SystemExit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "demo", "--color", "never"], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'ssdns[kube]'" in proc.stdout and "PASS: 0 failed" in proc.stdout
    proc = subprocess.run([sys.executable, "-c", code, "sandbox", "--duration", "0.5"], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0 and "no Kubernetes API" in proc.stderr and "ssdns check" in proc.stdout
