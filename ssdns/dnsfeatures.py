"""dnspython without importlib.metadata at start-up, and without its message renderer or the idna package until
they are used: imported before dnspython's first module (dnsquery.py's first import), for its effect.

Why: dns.name asks, as it is imported, whether the idna package is there and recent enough (dnspython's
dns._features.have("idna")), and dns._features answers through importlib.metadata: importing it (email.*,
zipfile, importlib.resources, csv) and reading idna's installed metadata is ~15 ms of a 3-pod check's
~100 ms, for one yes or no. dnspython has no setting for it; its dns._features.force(feature, enabled) is
the way it offers around importlib.metadata, but dns._features imports importlib.metadata at its top.

So: dns._features is imported while `importlib.metadata` names a placeholder for that one import statement,
and then the real module, loaded by the standard library's LazyLoader on its first use (a later have() of
another feature, or anyone's import of it, gets the whole module as before). "idna" is then forced to
dnspython's own answer, computed the same way from idna's version (idna.package_data.__version__, the
version of the installed distribution) and dnspython's own requirement and comparison.

When dnspython changes: a dns._features whose import needs importlib.metadata is imported again the ordinary
way; a requirement for idna of another form, or a dns._features without force or its version comparison,
leaves "idna" to dnspython (it then loads importlib.metadata itself). Both cost the ~15 ms again, never an
answer. tests/test_dnsfeatures.py holds the installed dnspython to this: the same answers, and no
importlib.metadata run on a small check's path.

dns.renderer, the same way: every TXT, SPF and HINFO record type imports it at its top (dns.rdtypes.txtbase,
for to_wire), and it brings dns.tsig, dns.rrset, dns.rdataset, dns.edns and hashlib with OpenSSL (dns.entropy):
~16 ms of -X importtime, ~6 ms of a 3-pod check's wall, to parse the one dns-version TXT answer, which reads
none of it (ssdns builds its questions itself). It is bound lazily: the first use of any of its names (a
to_wire, dns.message) runs it whole. So is the idna package, which dns.name imports at its top when it is
there (idna.core and its tables): it runs at the first name that is not ASCII; its version is read from its
package_data.py, the file `idna.__version__` comes from, without importing it. (A lazy module's first use is
not thread-safe in the Pythons before gh-114763's fix (2024): dnspython runs in the main thread here, and a first use
elsewhere, yarl's `import idna` in observe.py's import thread, races only a name that is not ASCII.)
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any


def _lazy(name: str) -> types.ModuleType | None:
    """Module `name`, executed on its first attribute access (importlib.util.LazyLoader); not in sys.modules."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return None
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _import_sparing(name: str, *spared: str) -> bool:
    """Import module `name` while each `spared` module (not loaded yet) is a placeholder, then bind each lazily:
    in sys.modules, as its package's attribute, and wherever `name` bound the placeholder (`import idna` binds
    a global). A placeholder, not the lazy module itself, for the import statement: the import system looks at
    the __spec__ of a module it finds in sys.modules, and that would run the lazy one. False, and `name` left
    to the ordinary import, when a spared module cannot be found or `name` uses one as it is imported."""
    lazies = {}
    for each in spared:
        if each in sys.modules or (lazy := _lazy(each)) is None:
            return False
        lazies[each] = lazy
    placeholders = {each: types.ModuleType(each) for each in spared}
    sys.modules.update(placeholders)
    module = None
    try:
        module = importlib.import_module(name)
    except Exception:  # noqa: BLE001  (a version that uses it at import: the caller imports it the ordinary way)
        sys.modules.pop(name, None)
    finally:
        for each, lazy in lazies.items():
            sys.modules[each] = lazy
            package, _, attribute = each.rpartition(".")
            if package:
                setattr(sys.modules[package], attribute, lazy)  # what the import system sets on the package
    if module is None:
        return False
    for key, value in list(vars(module).items()):
        for each, placeholder in placeholders.items():
            if value is placeholder:
                setattr(module, key, lazies[each])
    return True


def _import_features() -> Any:
    """dns._features; without running importlib.metadata when that is not loaded yet."""
    if "importlib.metadata" not in sys.modules:
        _import_sparing("dns._features", "importlib.metadata")
    import dns._features

    return dns._features


def idna_answer(features: Any, version: str | None) -> bool | None:
    """What dnspython's have("idna") says for an installed idna of `version`, by its own requirement and
    comparison; None when that cannot be said here: no version, or a dns._features of a form this does not know."""
    table = getattr(features, "_requirements", None)
    requirements = table.get("idna") if isinstance(table, dict) else None
    compare = getattr(features, "_tuple_from_text", None)
    if (not isinstance(requirements, list) or not requirements or not callable(compare)
            or not callable(getattr(features, "force", None))
            or not all(isinstance(r, str) and r.startswith("idna>=") and r[6:].replace(".", "").isdigit()
                       for r in requirements)):
        return None
    if version is None:
        return None
    return all(compare(version) >= compare(r.split(">=", 1)[1]) for r in requirements)


def _idna_version() -> str | None:
    """The installed idna's version, as its package_data.py says it (idna's releases keep it equal to the
    distribution's), read without importing idna (idna.core and its tables: ~2 ms); None: not found or not
    said in the one form idna writes it, and dnspython finds out itself."""
    spec = importlib.util.find_spec("idna")
    places = spec.submodule_search_locations if spec is not None else None
    if not places:
        return None
    try:
        with open(f"{next(iter(places))}/package_data.py", encoding="utf-8") as source:
            text = source.read(4096)
    except (OSError, UnicodeDecodeError):
        return None
    lines = [line for line in text.splitlines() if line.startswith("__version__ = ")]
    if len(lines) != 1:
        return None
    version = lines[0].split(" = ", 1)[1].strip()
    if len(version) < 3 or version[0] not in "'\"" or version[-1] != version[0]:
        return None
    version = version[1:-1]
    return version if version.replace(".", "").isdigit() else None


def spare_metadata() -> None:
    """Import dns._features without running importlib.metadata, and answer its question about idna."""
    if "dns._features" in sys.modules:
        return  # dnspython came first (another path imported it): nothing left to spare
    features = _import_features()
    answer = idna_answer(features, _idna_version())
    if answer is not None:
        features.force("idna", answer)


def spare_idna() -> None:
    """dns.name imported with the idna package bound, not run, until a name that is not ASCII is converted."""
    if "dns.name" not in sys.modules and "idna" not in sys.modules:
        _import_sparing("dns.name", "idna")


def spare_renderer() -> None:
    """dns.rdtypes.txtbase imported with dns.renderer bound, not run, until one of its names is used (above).
    (dns.rdata's `random` is not worth the same: dns.rdtypes.util, which every SRV answer imports, needs it.)"""
    if "dns.rdtypes.txtbase" not in sys.modules:
        _import_sparing("dns.rdtypes.txtbase", "dns.renderer")


spare_metadata()
spare_idna()
spare_renderer()
