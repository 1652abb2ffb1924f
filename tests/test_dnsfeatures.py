"""ssdns/dnsfeatures.py against the installed dnspython: the same answers dnspython gives by itself, without
running importlib.metadata at start-up; and the ordinary import when dnspython's dns._features changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dns._features
import pytest

from ssdns.dnsfeatures import idna_answer

ROOT = Path(__file__).resolve().parent.parent

ANSWERS = """
import json, sys
before = "email" in sys.modules  # importlib.metadata imports email.*: the sign that it ran
{first}
import dns._features, dns.name
idna, idna_2008 = dns._features._cache.get("idna"), dns.name.have_idna_2008
ran = "email" in sys.modules and not before
later = {{f: dns._features.have(f) for f in ("dnssec", "doh", "trio")}}  # importlib.metadata, loaded now
import importlib.metadata
print(json.dumps({{"idna": idna, "idna_2008": idna_2008, "metadata_ran": ran, "later": later,
                  "dnspython": importlib.metadata.version("dnspython")}}))
"""


def _answers(first: str, path: str = str(ROOT)) -> dict:
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.run([sys.executable, "-c", ANSWERS.format(first=first)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_dnspython_gives_the_same_answers_without_running_importlib_metadata_at_import():
    plain = _answers("")
    spared = _answers("import ssdns.dnsfeatures")
    assert plain["idna"] is not None and plain["metadata_ran"]  # dnspython asked importlib.metadata itself
    assert not spared["metadata_ran"]  # the installed dnspython is one ssdns/dnsfeatures.py knows
    for key in ("idna", "idna_2008", "later", "dnspython"):
        assert spared[key] == plain[key], key


@pytest.mark.parametrize("requirements, version, answer", [
    (["idna>=3.10"], "3.10", True), (["idna>=3.10"], "3.9", False), (["idna>=3.10"], "3.13", True),
    (["idna>=3.20"], "3.13", False), (["idna>=3.10"], "4.0rc1", True), (["idna>=3.10"], None, None),
    (["idna>=3.10,<4"], "3.10", None), (["idna~=3.10"], "3.10", None), ("idna>=3.10", "3.10", None), ([], "3.10", None),
])
def test_idna_is_answered_only_from_a_requirement_of_the_known_form(monkeypatch, requirements, version, answer):
    monkeypatch.setattr(dns._features, "_requirements", {**dns._features._requirements, "idna": requirements})
    assert idna_answer(dns._features, version) is answer


def test_a_dns_features_without_force_or_its_comparison_is_left_to_dnspython(monkeypatch):
    monkeypatch.delattr(dns._features, "force")
    assert idna_answer(dns._features, "3.10") is None


def test_a_dns_features_that_uses_importlib_metadata_at_import_is_imported_the_ordinary_way(tmp_path):
    """A future dnspython whose dns._features reads a version as it is imported: no error, the real answer."""
    fake = tmp_path / "dns"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "_features.py").write_text(
        "from importlib.metadata import version\n"
        "PIP = version('pip')\n"
        "_cache = {}\n"
        "def have(feature):\n"
        "    return _cache.get(feature, False)\n")
    code = ("import ssdns.dnsfeatures, dns._features, importlib.metadata\n"
            "assert dns._features.PIP == importlib.metadata.version('pip')\n"
            "assert dns._features._cache == {}\n"  # nothing forced: no requirements of the known form
            "print('ok')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


RENDER = """
import json, sys
{first}
import dns.rdtypes.txtbase, dns.rdata, dns.rdatatype
txt = dns.rdata.from_text("IN", "TXT", '"1.1.0" "two words"')  # parsed: the renderer is not needed
ran_before_use = "dns.tsig" in sys.modules
import dns.message
query = dns.message.make_query("dns-version.cluster.local.", "TXT", use_edns=0, want_dnssec=True)
query.id = 7
reply = dns.message.from_wire(dns.message.make_response(query).to_wire())
print(json.dumps({{"txt": txt.to_wire().hex(), "query": query.to_wire().hex(), "reply_id": reply.id,
                  "ran_before_use": ran_before_use}}))
"""


def test_the_lazy_renderer_renders_as_dnspython_does_once_used():
    """txtbase without dns.renderer run until something renders; then the same bytes as dnspython alone."""
    def run(first: str) -> dict:
        proc = subprocess.run([sys.executable, "-c", RENDER.format(first=first)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    plain, spared = run(""), run("import ssdns.dnsfeatures")
    assert plain["ran_before_use"] and not spared["ran_before_use"]
    assert {k: v for k, v in spared.items() if k != "ran_before_use"} == \
        {k: v for k, v in plain.items() if k != "ran_before_use"}


IDNA = """
import json, sys
import dns._features
dns._features._requirements["idna"] = {requirement!r}  # dnspython's answer: IDNA 2008 through idna, or 2003
dns._features._cache.clear()
{first}
import dns.name
loaded_before_use = "idna.core" in sys.modules
out = {{"have_idna_2008": dns.name.have_idna_2008, "loaded_before_use": loaded_before_use}}
for text in ("bücher.example.", "faß.de.", "xn--bcher-kva.example.", "plain.example.", "a\\u200db.example."):
    try:
        name = dns.name.from_unicode(text)
        out[text] = [name.to_wire().hex(), name.to_unicode()]
    except Exception as exc:
        out[text] = [type(exc).__name__, str(exc)]
print(json.dumps(out))
"""


@pytest.mark.parametrize("requirement", [["idna>=3.0"], ["idna>=99.0"]], ids=["idna-2008", "idna-2003"])
def test_names_that_are_not_ascii_convert_as_dnspython_does_with_idna_bound_lazily(requirement):
    """dns.name imported with the idna package bound, not run: the same wire, text and errors as dnspython
    alone, and idna's tables loaded only for a name that needs them."""
    def run(first: str) -> dict:
        code = IDNA.format(requirement=requirement, first=first)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    plain, spared = run(""), run("import ssdns.dnsfeatures")
    assert plain["have_idna_2008"] is (requirement == ["idna>=3.0"])
    assert plain.pop("loaded_before_use") is (requirement == ["idna>=3.0"])  # dnspython alone: at its import
    assert not spared.pop("loaded_before_use")
    assert spared == plain


def test_idna_version_is_read_as_the_package_says_it():
    import idna

    from ssdns.dnsfeatures import _idna_version

    assert _idna_version() == idna.__version__
