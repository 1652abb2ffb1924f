"""ssdns's value classes (`@frozen`, ssdns/frozen.py): dataclasses whose repr, equality and hashing are
dataclass(frozen=True)'s, and whose immutability the type checker enforces (CI runs mypy on ssdns)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from dataclasses import field
from pathlib import Path

import pytest

from ssdns.frozen import frozen

ROOT = Path(__file__).resolve().parent.parent


def _pair(body: str) -> tuple[type, type]:
    """The same class body made by dataclass(frozen=True) and by @frozen."""
    made = []
    for decorate in (dataclasses.dataclass(frozen=True), frozen):
        ns: dict = {"field": field}
        exec(textwrap.dedent(body), ns)  # a class body written in this file
        made.append(decorate(ns["C"]))
    return made[0], made[1]


PLAIN = """
class C:
    '''x'''
    name: str
    values: tuple = ()
    elapsed: float = field(default=0.0, compare=False)
    secret: str = field(default="", repr=False)
"""


def test_repr_equality_and_hashing_are_a_frozen_dataclass_s():
    real, ours = _pair(PLAIN)
    for cls in (real, ours):
        a, b = cls("web-0", ("1.2.3.4",), 1.5, "s"), cls("web-0", ("1.2.3.4",), 9.0, "s")
        assert a == b and hash(a) == hash(b)  # elapsed is not compared
        assert a != cls("web-1") and a != cls("web-0", ("1.2.3.4",), 1.5, "t")
        assert a != ("web-0", ("1.2.3.4",), "s") and {a: 1}[b] == 1
        assert repr(a).endswith("C(name='web-0', values=('1.2.3.4',), elapsed=1.5)")  # secret is not shown
    assert repr(real("web-0")).split(".")[-1] == repr(ours("web-0")).split(".")[-1]
    assert ours("a") != real("a")  # another class: never equal, as between two dataclasses


def test_an_unhashable_field_makes_the_value_unhashable_and_replace_fields_asdict_work():
    real, ours = _pair("class C:\n    '''x'''\n    name: str\n    details: dict = field(default_factory=dict)\n")
    for cls in (real, ours):
        v = cls("a", {"k": 1})
        with pytest.raises(TypeError, match="unhashable"):
            hash(v)
        assert dataclasses.replace(v, name="b") == cls("b", {"k": 1})
        assert dataclasses.asdict(v) == {"name": "a", "details": {"k": 1}}
        assert [f.name for f in dataclasses.fields(v)] == ["name", "details"]
        assert cls("a").details is not cls("a").details  # default_factory: one dict each


def test_a_class_s_own_methods_are_kept_as_dataclass_keeps_them():
    own = """
class C:
    '''x'''
    name: str
    def __repr__(self): return "own repr"
    def __eq__(self, other): return True
"""
    real, ours = _pair(own)
    for cls in (real, ours):
        assert repr(cls("a")) == "own repr" and cls("a") == cls("b")
        assert hash(cls("a")) == hash(cls("a"))  # __eq__ alone: dataclass still adds __hash__ from the fields
    hashed = "class C:\n    '''x'''\n    name: str\n    def __hash__(self): return 7\n"
    for cls in _pair(hashed):
        assert hash(cls("a")) == 7


def test_a_class_without_compared_fields_equals_its_own_kind():
    for cls in _pair("class C:\n    '''x'''\n    n: int = field(default=0, compare=False)\n"):
        assert cls(1) == cls(2) and hash(cls(1)) == hash(cls(2))


SNIPPET = """
from dataclasses import replace

from ssdns.dnsquery import Lookup, Outcome
from ssdns.frozen import frozen
from ssdns.model import Finding, Status
from ssdns.target import Nameserver, Target


@frozen
class Own:
    '''x'''
    name: str


finding = Finding("dns.pod", Status.PASS, "web-0", "ok")
finding.message = "changed"
target = Target("nginx", "default", "cluster.local", (Nameserver("10.96.0.10"),))
target.replicas = 3
lookup = Lookup("web-0.nginx.default.svc.cluster.local.", "A", Outcome.OK)
lookup.values = ()
own = Own("a")
own.name = "b"
fine = replace(target, replicas=3), replace(own, name="c")
"""


def test_mypy_rejects_assigning_a_field_of_a_value_class(tmp_path):
    """At run time nothing refuses it (ssdns/frozen.py says why); CI's mypy does, for each class."""
    (tmp_path / "snippet.py").write_text(SNIPPET)
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", "--follow-imports", "silent",
                           "--cache-dir", str(tmp_path / "cache"), "snippet.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    errors = [line for line in proc.stdout.splitlines() if ": error:" in line]
    lines = SNIPPET.splitlines()
    wrong = sorted({lines[int(e.split(":")[1]) - 1].strip() for e in errors})
    assert wrong == sorted(['finding.message = "changed"', "target.replicas = 3", "lookup.values = ()",
                            'own.name = "b"']), proc.stdout + proc.stderr
    assert all("is read-only" in e for e in errors), errors
