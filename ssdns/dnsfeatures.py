"""dnspython without importlib.metadata, and without its message renderer until something renders, at
start-up: imported before dnspython's first module (dnsquery.py's first import), for its effect.

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
to_wire, dns.message) runs it whole.
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


def _import_features() -> Any:
    """dns._features; without running importlib.metadata when that is not loaded yet."""
    lazy = None if "importlib.metadata" in sys.modules else _lazy("importlib.metadata")
    if lazy is None:
        import dns._features

        return dns._features
    # `import importlib.metadata` at the top of dns._features only binds a name: a placeholder for that
    # statement (the import system would run a lazy module by looking at its __spec__), then the lazy module.
    sys.modules["importlib.metadata"] = types.ModuleType("importlib.metadata")
    try:
        import dns._features
    except Exception:  # noqa: BLE001  (a dnspython that uses importlib.metadata at import: the ordinary way)
        sys.modules.pop("dns._features", None)
    finally:
        sys.modules["importlib.metadata"] = lazy
        setattr(importlib, "metadata", lazy)  # noqa: B010  (what the import system sets on the package)
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
    """The installed idna's version, as the package says it (its releases keep it equal to the distribution's);
    None: not importable or not said, and dnspython finds out itself."""
    try:
        from idna.package_data import __version__  # dns.name imports idna itself when it is recent enough
    except ImportError:
        return None
    return __version__ if isinstance(__version__, str) else None


def spare_metadata() -> None:
    """Import dns._features without running importlib.metadata, and answer its question about idna."""
    if "dns._features" in sys.modules:
        return  # dnspython came first (another path imported it): nothing left to spare
    features = _import_features()
    answer = idna_answer(features, _idna_version())
    if answer is not None:
        features.force("idna", answer)


def spare_renderer() -> None:
    """dns.rdtypes.txtbase imported with dns.renderer bound, not run, until one of its names is used (above).
    As for importlib.metadata, a placeholder stands in while txtbase's `import dns.renderer` runs: the import
    system looks at a module's __spec__ when it finds one in sys.modules, which would run the lazy module."""
    if "dns.renderer" in sys.modules or "dns.rdtypes.txtbase" in sys.modules:
        return
    import dns

    lazy = _lazy("dns.renderer")
    if lazy is None:
        return
    sys.modules["dns.renderer"] = types.ModuleType("dns.renderer")
    try:
        import dns.rdtypes.txtbase
    except Exception:  # noqa: BLE001  (a dnspython whose txtbase uses the renderer at import: the ordinary way)
        sys.modules.pop("dns.rdtypes.txtbase", None)
    finally:
        sys.modules["dns.renderer"] = lazy
        setattr(dns, "renderer", lazy)  # noqa: B010  (what the import system sets on the package)


spare_metadata()
spare_renderer()
