"""Property tests (hypothesis) for everything that parses user input: body templates, state files,
kubeconfig handling, nameserver and port syntax, HTTP paths. The property is always the same
promise: any input is either accepted and usable, or refused with the one error type that becomes
one line and a documented exit code; never another exception."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ssdns.errors import SsdnsError, UsageError
from ssdns.checks.history import compare_snapshots
from ssdns.identity import changes
from ssdns.report import render_history
from ssdns.state import StateError, parse_doc, validate
from ssdns.target import (MAX_TEMPLATE_WIDTH, TEMPLATE_FIELDS, ApiOptions, Nameserver, check_path, check_template,
                          parse_nameserver)

# CI runs the same examples every time (a fresh machine has no example database): a property that
# fails, fails on every run, not one run in ten. SSDNS_HYPOTHESIS=explore draws new ones.
settings.register_profile("ssdns", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=2000)
settings.load_profile(os.environ.get("SSDNS_HYPOTHESIS", "ssdns"))

FIELDS = {"pod": "web-0", "fqdn": "web-0.nginx.default.svc.cluster.local", "ordinal": 0, "service": "nginx",
          "namespace": "default", "statefulset": "web"}

# Text that looks like templates: braces, field names, format specs and junk, mixed.
template_parts = st.one_of(
    st.text(max_size=5),
    st.sampled_from(["{", "}", "{{", "}}", ":", "!", ".", "[", "]", "0", "99999999999", ">", "<", "^", "d", "s"]),
    st.sampled_from([f"{{{f}}}" for f in TEMPLATE_FIELDS] + ["{pod.__class__}", "{pod[0]}", "{}", "{0}"]),
    st.builds(lambda f, spec: f"{{{f}:{spec}}}", st.sampled_from(TEMPLATE_FIELDS),
              st.text(alphabet="<>=^+- #0123456789,_.dsxXobeEfFgG%n{}", max_size=14)),
)
templates = st.lists(template_parts, max_size=8).map("".join)


@settings(max_examples=400, deadline=None)
@given(templates)
@example("{pod:{}\n}")  # found by this test: the message quoted the newline, and was two lines
@example("{\n}")
@example("{pod!\n}")
def test_a_template_is_refused_in_one_line_or_renders_boundedly(text):
    try:
        check_template(text)
    except UsageError as exc:
        assert "\n" not in str(exc)
        return
    try:
        body = text.format(**FIELDS)
    except (ValueError, TypeError):  # a spec the field's type refuses ({pod:d}): the CLI words it
        return
    # Accepted: it names fields only, so it renders, and no field grows past the width bound.
    assert len(body) <= len(text) + (MAX_TEMPLATE_WIDTH + 60) * text.count("{")


@given(st.sampled_from(TEMPLATE_FIELDS), st.integers(min_value=MAX_TEMPLATE_WIDTH + 1, max_value=10**30))
def test_huge_widths_are_refused(field, width):
    with pytest.raises(UsageError, match="widths and precisions go up to"):
        check_template(f"{{{field}:>{width}}}")


# State files: arbitrary bytes, arbitrary JSON, and a good document with one part broken.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


def good_doc() -> dict:
    pod = {"name": "web-0", "uid": "u1", "ips": ["10.0.0.1"], "dns_ips": ["10.0.0.1"], "node": "n1",
           "identity": "web-0", "volumes": {"www": "pv-1"}, "seen_at": "2026-11-30T10:00:00Z"}
    snap = {"taken_at": "2026-11-30T10:00:00Z", "ok": True, "replicas": 1, "service_ips": ["10.0.0.1"],
            "pods": {"0": pod}, "changes": {}, "broken": []}
    return {"schema": "ssdns.state/v1", "target": {"namespace": "default", "statefulset": "web", "service": "nginx"},
            "history": [snap]}


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


PATHS = [p for p in _paths(good_doc()) if p]


@st.composite
def broken_docs(draw):
    doc = good_doc()
    path = draw(st.sampled_from(PATHS))
    node = doc
    for key in path[:-1]:
        node = node[key]
    if draw(st.booleans()):
        del node[path[-1]]
    else:
        node[path[-1]] = draw(json_values)
    return json.dumps(doc).encode()


def usable(doc) -> None:
    """What ssdns does with a state it accepted: compare the last snapshot, render the timeline."""
    last = doc["history"][-1] if doc["history"] else None
    if last is not None:
        compare_snapshots(last, last)
        changes(last, last)
    render_history(doc, "the state", None)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()), broken_docs()))
def test_a_state_file_is_refused_in_one_line_or_fully_usable(data):
    try:
        doc = validate(parse_doc(data, "state file s.json"), None, "state file s.json")
    except StateError as exc:
        assert "\n" not in str(exc) and "left untouched" in str(exc)
        return
    usable(doc)


# Nameserver and port syntax.
hosts = st.one_of(st.ip_addresses().map(str), st.text(max_size=12),
                  st.sampled_from(["localhost", "kube-dns", "[::1]", "::1", "[::1", "1.2.3", "256.1.1.1"]))
ports = st.one_of(st.integers(min_value=-5, max_value=70000).map(str), st.text(max_size=6))


@settings(max_examples=400)
@given(hosts, st.one_of(st.none(), ports))
def test_a_nameserver_is_refused_in_one_line_or_is_an_ip_and_a_port(host, port):
    text = host if port is None else (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    try:
        ns = parse_nameserver(text)
    except UsageError as exc:
        assert "\n" not in str(exc)
        return
    ipaddress.ip_address(ns.host)
    assert 1 <= ns.port <= 65535
    assert parse_nameserver(str(ns)) == ns  # what ssdns prints, it reads back the same


@given(st.ip_addresses(), st.integers(min_value=1, max_value=65535))
def test_every_ip_and_port_is_accepted(ip, port):
    ns = Nameserver(str(ip), port)
    assert parse_nameserver(str(ns)) == ns


@given(ports)
def test_a_port_option_is_refused_by_argparse_or_in_range(text):
    from ssdns.cli import _port

    try:
        value = _port(text)
    except argparse.ArgumentTypeError:
        return
    assert 1 <= value <= 65535 and text.isascii() and int(text) == value


@given(st.text(max_size=40))
def test_a_path_is_refused_or_has_nothing_that_splits_a_request(text):
    try:
        check_path(text)
    except UsageError:
        return
    assert text.startswith("/") and not any(c in text for c in "\r\n\t \x00")


# Kubeconfig handling: whatever the file holds, loading it is an Api or one ApiUnavailable line.
kubeconfigs = st.one_of(
    st.binary(max_size=120).map(lambda b: b.decode("latin-1")),
    json_values.map(json.dumps),
    st.sampled_from([
        "", "{{{: [", "- a\n- b\n", "apiVersion: v1\nkind: Config\n",
        "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\ncurrent-context: x\nusers: []\n",
        "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\n"
        "clusters:\n- name: k\n  cluster: {server: 'http://127.0.0.1:9'}\nusers:\n- name: u\n  user: {token: t}\n",
        "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\n"
        "clusters:\n- name: k\n  cluster: {server: 7}\nusers:\n- name: u\n  user: [1, 2]\n",
    ]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kubeconfigs)
def test_a_kubeconfig_loads_or_is_one_line(tmp_path, text):
    from ssdns import kube

    path = tmp_path / "kc"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        api = kube.api_client(ApiOptions("on", str(path)))
    except SsdnsError as exc:
        assert "\n" not in str(exc) and "cannot load Kubernetes credentials" in str(exc)
        return
    assert api.server
    api.close()


def _reverse_by_ipaddress(text: str) -> str | None:
    try:
        return ipaddress.ip_address(text).reverse_pointer + "."
    except ValueError:
        return None


@settings(max_examples=500, deadline=None)
@given(st.ip_addresses().map(str)
       | st.lists(st.sampled_from(["0", "00", "01", "1", "9", "25", "255", "256", "999", "1000", "", "-1", "+1",
                                   " 1", "٣", "²", "0x1", "1e2"]), min_size=1, max_size=6).map(".".join)
       | st.text(alphabet="0123456789.:abcdef%", max_size=20))
@example("127.91.0.1")
@example("010.0.0.1")
def test_a_reverse_name_is_what_ipaddress_says_or_the_ip_is_refused(text):
    """names.reverse_name reads a dotted quad itself (a hot path): it must agree with ipaddress on every
    input, and refuse (ValueError) what ipaddress refuses."""
    from ssdns.names import reverse_name

    want = _reverse_by_ipaddress(text)
    if want is None:
        with pytest.raises(ValueError):
            reverse_name(text)
    else:
        assert reverse_name(text) == want
