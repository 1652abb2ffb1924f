"""Pure parsing of what a pod's own files say: resolv.conf, nameservers, zones."""

from __future__ import annotations

import pytest

from ssdns.errors import UsageError
from ssdns.target import (
    Nameserver,
    check_zone,
    default_namespace,
    parse_nameserver,
    read_resolv_conf,
    zone_from_search,
)


def test_pod_resolv_conf_gives_nameservers_and_zone(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# kubelet\nnameserver 10.96.0.10\nnameserver fd00::a\n"
                    "search prod.svc.k8s.example svc.k8s.example k8s.example ec2.internal\noptions ndots:5\n")
    rc = read_resolv_conf(conf)
    assert rc.nameservers == (Nameserver("10.96.0.10"), Nameserver("fd00::a"))
    assert zone_from_search(rc.search) == "k8s.example"


def test_missing_resolv_conf_is_empty(tmp_path):
    assert read_resolv_conf(tmp_path / "none").nameservers == ()
    assert read_resolv_conf(tmp_path).nameservers == ()  # a directory: nothing to read, no traceback


def test_resolv_conf_and_namespace_file_that_are_not_utf8_are_read_as_far_as_they_go(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_bytes(b"# r\xe9solveur\nnameserver 10.96.0.10\nsearch prod.svc.cluster.local svc.cluster.local cluster.local\n")
    rc = read_resolv_conf(str(conf))
    assert rc.nameservers == (Nameserver("10.96.0.10"),) and zone_from_search(rc.search) == "cluster.local"
    ns = tmp_path / "namespace"
    ns.write_bytes(b"prod\n")
    assert default_namespace(ns) == "prod" and default_namespace(tmp_path / "none") == "default"


@pytest.mark.parametrize("text, want", [
    ("10.96.0.10", Nameserver("10.96.0.10", 53)),
    ("127.0.0.1:5353", Nameserver("127.0.0.1", 5353)),
    ("[::1]:5353", Nameserver("::1", 5353)),
    ("fd00::10", Nameserver("fd00::10", 53)),
])
def test_nameserver_forms(text, want):
    assert parse_nameserver(text) == want


@pytest.mark.parametrize("text", ["kube-dns", "[::1", "1.2.3.4:x", "[::1]x"])
def test_bad_nameservers(text):
    with pytest.raises(UsageError):
        parse_nameserver(text)


def test_zone_is_normalised():
    assert check_zone("Cluster.Local.") == "cluster.local"
    with pytest.raises(UsageError):
        check_zone("bad_zone.local")
