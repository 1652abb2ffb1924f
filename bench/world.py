"""A world of real, fast servers for the bench: knotd serving the headless Service's records on
127.55.0.1:53 (or the next free 127.55.0.x when another world holds it) and nginx answering each pod's name on its own loopback IP (127.91.x.y), one worker each.
Neither is Python, so what the bench measures is the client, not the server (the sandbox is Python and
shares the 2 cores: against it every client looks alike).

Port 53 because adnshost (a baseline) cannot ask another port. Loopback only; every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parent.parent
NS_HOST, NS_PORT = "127.55.0.1", 53


def free_ns_host() -> str:
    """127.55.0.1, or the first 127.55.0.x whose port 53 is free: two worlds (two people benchmarking, or a
    world held open while the tests run) do not collide."""
    for i in range(1, 255):
        host = f"127.55.0.{i}"
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
                u.bind((host, NS_PORT))
                t.bind((host, NS_PORT))
        except OSError:
            continue
        return host
    raise RuntimeError(f"every 127.55.0.x:{NS_PORT} is taken")


def available() -> str | None:
    """None when knotd and nginx are there, else what is missing."""
    missing = [tool for tool, path in (("knotd", "/usr/sbin/knotd"), ("nginx", "/usr/sbin/nginx"))
               if shutil.which(tool) is None and not os.access(path, os.X_OK)]
    return " and ".join(missing) + " not installed" if missing else None


def pod_ip(i: int) -> str:
    return f"127.91.{i // 250}.{i % 250 + 1}"


class KnotNginxWorld:
    def __init__(self, pods: int, ready_timeout: float = 60.0):
        self.pods, self.ready_timeout = pods, ready_timeout
        self.ns_host, self.ns_port = NS_HOST, NS_PORT
        self.nameserver = f"{NS_HOST}:{NS_PORT}"
        self.http_port = 0
        self.check_args: list[str] = []
        self._knot = None
        self._nginx: subprocess.Popen | None = None
        self._dir = ""

    def __enter__(self) -> Self:
        sys.path.insert(0, str(ROOT / "tests"))
        from knotdns import KnotServer, Pod, headless_zones

        self._dir = tempfile.mkdtemp(prefix="ssdns-bench-world-")
        try:
            with socket.socket() as s:  # a port free on the first pod's address
                s.bind((pod_ip(0), 0))
                self.http_port = s.getsockname()[1]
            pods = [Pod(f"web-{i}", pod_ip(i)) for i in range(self.pods)]
            self.ns_host = free_ns_host()
            self.nameserver = f"{self.ns_host}:{NS_PORT}"
            self._knot = KnotServer(headless_zones(pods, port=self.http_port), address=self.ns_host, port=NS_PORT)
            self._knot.__enter__()
            self._start_nginx()
        except BaseException:
            self.__exit__()
            raise
        self.check_args = ["check", "--service", "nginx", "--namespace", "default", "--statefulset", "web",
                           "--replicas", str(self.pods), "--port-name", "web", "--cluster-domain", "cluster.local",
                           "--nameserver", self.nameserver, "--port", str(self.http_port)]
        return self

    def _start_nginx(self) -> None:
        d = self._dir
        servers = "".join(f'  server {{ listen {pod_ip(i)}:{self.http_port}; return 200 "web-{i}"; }}\n'
                          for i in range(self.pods))
        temp = "".join(f"  {k}_temp_path {d}/{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf = (f"daemon off;\nmaster_process off;\nworker_processes 1;\nworker_rlimit_nofile {self.pods + 1024};\n"
                f"pid {d}/nginx.pid;\nerror_log {d}/error.log;\n"
                f"events {{ worker_connections {self.pods + 1024}; }}\n"  # its listening sockets count too
                f"http {{\n  access_log off;\n  default_type text/plain;\n{temp}{servers}}}\n")
        Path(d, "nginx.conf").write_text(conf)
        self._nginx = subprocess.Popen(["nginx", "-p", d, "-c", f"{d}/nginx.conf"], stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + self.ready_timeout
        last = pod_ip(self.pods - 1)
        for _ in range(100000):  # bounded by the deadline too
            if self._nginx.poll() is not None:
                log = Path(d, "error.log").read_text() if Path(d, "error.log").exists() else ""
                raise RuntimeError(f"nginx exited with {self._nginx.returncode}: {log[-2000:]}")
            try:
                with socket.create_connection((last, self.http_port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not listen on {last}:{self.http_port} "
                                       f"within {self.ready_timeout:g} s") from None
                time.sleep(0.01)

    def cpu_seconds(self) -> float:
        """CPU of knotd and nginx so far (from /proc)."""
        total = 0.0
        for proc in (getattr(self._knot, "_proc", None), self._nginx):
            if proc is None or proc.poll() is not None:
                continue
            try:
                with open(f"/proc/{proc.pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except OSError:
                pass
        return total

    def __exit__(self, *exc) -> None:
        if self._nginx is not None and self._nginx.poll() is None:
            self._nginx.send_signal(signal.SIGQUIT)  # graceful stop
            try:
                self._nginx.wait(10)
            except subprocess.TimeoutExpired:
                self._nginx.kill()
                self._nginx.wait(5)
        if self._knot is not None:
            self._knot.__exit__(None, None, None)
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
