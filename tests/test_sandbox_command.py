"""`ssdns sandbox` in one process, `ssdns check` from another, as a person would use them."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys


def test_sandbox_prints_a_check_command_that_works_from_another_process(tmp_path):
    kubeconfig = tmp_path / "sandbox.kubeconfig"
    sb = subprocess.Popen([sys.executable, "-m", "ssdns", "sandbox", "--pods", "4", "--fault", "no-http:web-3",
                           "--duration", "60", "--kubeconfig-out", str(kubeconfig)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [sb.stdout.readline() for _ in range(4)]
        assert "4 pods" in lines[0] and "Kubernetes API at http://127." in lines[1]
        cmd = shlex.split(lines[3])
        assert cmd[:2] == ["ssdns", "check"] and kubeconfig.exists()
        check = subprocess.run([sys.executable, "-m", "ssdns", *cmd[1:], "--output", "json"],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 1, check.stderr
        report = json.loads(check.stdout)
        assert report["target"]["api"] != "off"
        assert [(f["check"], f["subject"]) for f in report["findings"] if f["status"] == "fail"] == [
            ("http.identity", "web-3")]
    finally:
        sb.send_signal(signal.SIGTERM)
        assert sb.wait(timeout=10) == 0
