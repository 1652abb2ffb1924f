"""In a pod (KUBERNETES_SERVICE_HOST set, no --kubeconfig): the service account's token and CA, read
without the kubernetes package (ssdns/incluster.py). The sandbox's API behind an HTTPS proxy with a
self-signed certificate stands in for the API server; the service account's directory is a temporary one
(kube.SA_DIR), as the kubelet would mount it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from badapi import ApiProxy, self_signed

pytest.importorskip("kubernetes")

from ssdns import incluster, kube
from ssdns.errors import ApiError, ApiUnavailable
from ssdns.target import ApiOptions

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "eyJhbGciOiJSUzI1NiJ9.ssdns-test"

# A check run as `python -c`, with the service account's directory given first (a pod mounts it at
# kube.SA_DIR); it prints, last, whether the kubernetes package was imported, and the exit code.
RUN = ("import sys\nfrom pathlib import Path\nimport ssdns.kube as kube\nkube.SA_DIR = Path(sys.argv.pop(1))\n"
       "from ssdns.cli import main\nrc = main(sys.argv[1:])\nprint('kubernetes' in sys.modules, rc)\nsys.exit(rc)")


@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> Path:
    return self_signed(tmp_path_factory.mktemp("tls"))


def service_account(where: Path, cert: Path, token: str = TOKEN) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    (where / "token").write_text(token)
    (where / "ca.crt").write_bytes((cert / "cert.pem").read_bytes())
    (where / "namespace").write_text("default")
    return where


def in_pod(monkeypatch, port: int, host: str = "127.0.0.1") -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(port))


def test_a_check_in_a_pod_reads_the_api_without_the_kubernetes_package(sandbox, cert, tmp_path, monkeypatch):
    sa = service_account(tmp_path / "sa", cert)
    with ApiProxy(sandbox.sandbox.api_url, lambda *_: "pass", tls=cert) as proxy:
        in_pod(monkeypatch, proxy.port)
        args = [a for a in sandbox.args("--output", "json") if a not in ("--api", "off")]
        proc = subprocess.run([sys.executable, "-c", RUN, str(sa), *args, "--api", "on"],
                              capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    *report, last = proc.stdout.strip().splitlines()
    assert last == "False 0"  # the API was read, and the kubernetes package never imported
    doc = json.loads("\n".join(report))
    assert doc["target"]["api"] == "on" and any(f["check"].startswith("api.") for f in doc["findings"])
    assert proxy.seen and all(h.get("authorization") == f"Bearer {TOKEN}" for h in proxy.headers)
    assert all(h.get("user-agent") == "ssdns" for h in proxy.headers)


def test_the_api_server_must_present_the_clusters_ca(sandbox, cert, tmp_path, monkeypatch):
    """A server whose certificate the service account's CA did not sign is refused: exit 4, one line."""
    other = self_signed(tmp_path / "other")
    sa = service_account(tmp_path / "sa", other)
    with ApiProxy(sandbox.sandbox.api_url, lambda *_: "pass", tls=cert) as proxy:
        in_pod(monkeypatch, proxy.port)
        args = [a for a in sandbox.args() if a not in ("--api", "off")]
        proc = subprocess.run([sys.executable, "-c", RUN, str(sa), *args, "--api", "on"],
                              capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert proc.returncode == 4, (proc.stdout, proc.stderr)
    [line] = proc.stderr.strip().splitlines()
    assert "certificate verify failed" in line and "the service account's ca.crt" in line
    assert "Traceback" not in proc.stderr
    assert not proxy.seen  # nothing was sent to a server that could not prove who it is


@pytest.mark.parametrize("broken, words", [
    ("no-port", "KUBERNETES_SERVICE_PORT is not set"),
    ("no-token", "token does not exist"),
    ("empty-token", "token is empty"),
    ("two-lines", "token holds more than one line"),
    ("no-ca", "ca.crt does not exist"),
    # The environment is the kubelet's, but a pod spec may set it: a port that is no port said "unreachable ...
    # check --kubeconfig/--context", and a host with a path sent the token to another URL on another port.
    ("port=abc", "KUBERNETES_SERVICE_PORT 'abc' is not a port"),
    ("port=99999", "KUBERNETES_SERVICE_PORT '99999' is not a port"),
    ("host=127.0.0.1/x?", "KUBERNETES_SERVICE_HOST '127.0.0.1/x?' is not a host name or IP address"),
    ("host=evil@127.0.0.1", "is not a host name or IP address"),
])
def test_a_broken_service_account_is_one_line(cert, tmp_path, monkeypatch, broken, words):
    sa = service_account(tmp_path / "sa", cert)
    in_pod(monkeypatch, 6443)
    if broken == "no-port":
        monkeypatch.delenv("KUBERNETES_SERVICE_PORT")
    if broken == "no-token":
        (sa / "token").unlink()
    if broken == "empty-token":
        (sa / "token").write_text("")
    if broken == "two-lines":
        (sa / "token").write_text("abc\ndef\n")
    if broken == "no-ca":
        (sa / "ca.crt").unlink()
    if broken.startswith(("port=", "host=")):
        monkeypatch.setenv(f"KUBERNETES_SERVICE_{broken[:4].upper()}", broken[5:])
    monkeypatch.setattr(kube, "SA_DIR", sa)
    with pytest.raises(ApiUnavailable) as got:
        kube.api_client(ApiOptions("on"))
    assert str(got.value).startswith("cannot load Kubernetes credentials (in-cluster service account): ")
    assert words in str(got.value)


def test_a_rotated_token_is_used_from_the_next_minute_on(sandbox, cert, tmp_path, monkeypatch):
    sa = service_account(tmp_path / "sa", cert)
    monkeypatch.setattr(kube, "SA_DIR", sa)
    with ApiProxy(sandbox.sandbox.api_url, lambda *_: "pass", tls=cert) as proxy:
        in_pod(monkeypatch, proxy.port)
        api = kube.api_client(ApiOptions("on"))
        try:
            path = "/api/v1/namespaces/default/services"
            kube.request(api, "GET", path, verb="list", resource="services")
            (sa / "token").write_text("rotated")
            kube.request(api, "GET", path, verb="list", resource="services")  # within the minute: the old one
            monkeypatch.setattr(incluster, "TOKEN_TTL", 0.0)
            kube.request(api, "GET", path, verb="list", resource="services")
            (sa / "token").unlink()  # caught mid-rotation: the token in hand
            kube.request(api, "GET", path, verb="list", resource="services")
        finally:
            api.close()
    assert [h["authorization"] for h in proxy.headers] == [f"Bearer {TOKEN}", f"Bearer {TOKEN}", "Bearer rotated",
                                                           "Bearer rotated"]


def test_the_request_line_is_what_the_official_client_sends(cert, tmp_path, monkeypatch):
    """Query parameters percent-encoded as the kubernetes package encodes them (a label selector with
    spaces, commas and parentheses); an IPv6 service host in brackets."""
    sa = service_account(tmp_path / "sa", cert)
    in_pod(monkeypatch, 443, host="fd00::1")
    account = incluster.ServiceAccount(sa, 4)
    url, headers = account.prepare("GET", "/api/v1/namespaces/default/pods",
                                   {"labelSelector": "app=web,tier in (a,b)"}, {"Accept": "application/json"})
    assert url == "https://[fd00::1]:443/api/v1/namespaces/default/pods?labelSelector=app%3Dweb%2Ctier%20in%20%28a%2Cb%29"
    assert headers["Accept"] == "application/json" and headers["Authorization"] == f"Bearer {TOKEN}"


def test_an_unreachable_api_server_in_a_pod_is_an_api_error(cert, tmp_path, monkeypatch):
    sa = service_account(tmp_path / "sa", cert)
    monkeypatch.setattr(kube, "SA_DIR", sa)
    in_pod(monkeypatch, 9)  # discard: nothing listens on loopback
    api = kube.api_client(ApiOptions("on"))
    try:
        with pytest.raises(ApiError) as got:
            kube.request(api, "GET", "/api/v1/namespaces/default/services", verb="list", resource="services")
    finally:
        api.close()
    assert "connection refused" in str(got.value).lower()
