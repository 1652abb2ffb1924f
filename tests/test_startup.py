"""Start-up of a small check: a CronJob may run `ssdns check --no-http --api off` every minute, so that run
imports what it uses and nothing else, and compiles no regular expression it does not use. (How fast it
starts is measured in bench/, never asserted here.)"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from ssdns.cli import COMMANDS, _command_in, build_parser

# The ssdns modules a DNS-only check without the API imports: the command line, the run without asyncio
# (smallcheck.py), every check family (the catalogue lists them all, so their own imports must stay light) and
# the text report. A module added here is a start-up cost on every run: import it where its path uses it
# instead, if it can be.
DNS_ONLY = {
    "ssdns", "ssdns.cli", "ssdns.helpformat", "ssdns.gcpace", "ssdns.errors", "ssdns.frozen", "ssdns.commands", "ssdns.options", "ssdns.target",
    "ssdns.sizing", "ssdns.smallcheck", "ssdns.check", "ssdns.evidence", "ssdns.expected", "ssdns.model",
    "ssdns.names", "ssdns.observations", "ssdns.dnssync", "ssdns.dnsfeatures", "ssdns.dnsquery", "ssdns.report", "ssdns.termination",
    "ssdns.identity",
    "ssdns.checks", "ssdns.checks.registry", "ssdns.checks.words", "ssdns.checks.api", "ssdns.checks.disruption",
    "ssdns.checks.dns", "ssdns.checks.history", "ssdns.checks.http", "ssdns.checks.records",
    "ssdns.checks.resolvers", "ssdns.checks.rollout", "ssdns.checks.storage", "ssdns.checks.wiring",
}
# What other paths use, never this one: asyncio and what runs on it (the asyncio front end, its DNS client, the
# worker), the API's facts and client, HTTP, --resolvers, --state, the sandbox, the other commands' options and
# evidence; dnspython's whole-message parser (unusual replies only: a healthy world gives none,
# dnsquery._plain reads the rest); json (JSON output, the worker's pipe).
NOT_ON_THIS_PATH = {"asyncio", "ssdns.aio", "ssdns.observe", "ssdns.dnsclient", "ssdns.worker", "aiohttp",
                    "kubernetes", "yaml", "uvloop", "ssdns.facts", "ssdns.kube", "ssdns.httpprobe",
                    "ssdns.httpobs", "ssdns.resolvers", "ssdns.state", "ssdns.sandbox", "ssdns.restart",
                    "ssdns.other_options", "ssdns.change_evidence", "dns.message", "json",
                    # dns.renderer's imports: bound lazily (ssdns/dnsfeatures.py), the TXT answer parsed without them
                    "dns.tsig", "dns.rrset", "dns.edns", "hashlib",
                    "idna.core"}  # idna: its version read from a file, the package bound lazily (dnsfeatures.py)
# Standard-library modules this path does without, unless the interpreter's start loaded them (a site's .pth):
# email (importlib.metadata imports it as it runs; dnspython asks it about idna, ssdns/dnsfeatures.py answers),
# shutil (argparse's help formatter asks it for the width: ssdns/helpformat.py) and pathlib (ssdns/target.py).
NOT_IMPORTED_HERE = {"email", "shutil", "pathlib"}

PROBE = """
import sys
started = sorted(sys.modules)
import re
from ssdns.cli import main
rc = main(sys.argv[1:])
# what ran: a module bound lazily and never used (importlib.util.LazyLoader: ssdns/dnsfeatures.py) did not
loaded = sorted(n for n, m in list(sys.modules.items()) if type(m).__name__ != "_LazyModule")
files = sorted(f for m in list(sys.modules.values()) if isinstance(f := getattr(m, "__file__", None), str))
patterns = sorted(f"{m}.{k}" for m in list(sys.modules) if m.startswith("ssdns")
                  for k, v in vars(sys.modules[m]).items() if isinstance(v, re.Pattern))
import json
print(json.dumps({"rc": rc, "modules": loaded, "patterns": patterns, "files": files, "started": started}))
"""


def test_dns_only_check_imports_only_what_it_uses(sandbox):
    proc = subprocess.run([sys.executable, "-c", PROBE, *sandbox.args("--no-http")], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["rc"] == 0  # the check ran and passed: this is the path a healthy CronJob takes
    modules = set(got["modules"])
    assert {m for m in modules if m.startswith("ssdns")} - DNS_ONLY == set()
    assert {m for m in modules if m in NOT_ON_THIS_PATH or m.split(".")[0] in NOT_ON_THIS_PATH} == set()
    assert NOT_IMPORTED_HERE & (modules - set(got["started"])) == set()
    assert got["patterns"] == []  # compiled when first used (re caches them), not at import
    # In the image, every standard-library module this path imports has its bytecode (see the next test).
    excluded = _stdlib_not_compiled_in_image()
    stdlib = Path(sysconfig.get_path("stdlib")).resolve()
    used = [f for f in got["files"] if Path(f).resolve().is_relative_to(stdlib) and "-packages" not in f]
    assert used and [f for f in used if excluded.search(f)] == []


def test_without_a_site_the_check_imports_no_email_shutil_or_pathlib(sandbox):
    """As an ordinary install starts (no .pth of this machine's site loads them first): the packages found where
    the site would find them, ssdns from this tree, nothing run at start-up."""
    import site

    path = [str(Path(__file__).resolve().parent.parent), *site.getsitepackages(), site.getusersitepackages()]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    proc = subprocess.run([sys.executable, "-S", "-c", PROBE, *sandbox.args("--no-http")], capture_output=True,
                          text=True, timeout=30, env=env)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["rc"] == 0 and not NOT_IMPORTED_HERE & set(got["started"])
    assert NOT_IMPORTED_HERE & set(got["modules"]) == set()


DOCKERFILE = Path(__file__).resolve().parent.parent / "Dockerfile"


def _stdlib_not_compiled_in_image() -> re.Pattern:
    """What the Dockerfile's byte-compiling of the standard library leaves out (compileall -x)."""
    text = DOCKERFILE.read_text()
    m = re.search(r"python -m compileall [^\n]*-x '([^']+)'[^\n]*\\\n[^\n]*sysconfig[^\n]*\"stdlib\"", text)
    assert m, "the Dockerfile does not byte-compile the standard library"
    return re.compile(m.group(1))


def test_the_image_byte_compiles_the_standard_library_after_installing():
    """python:3.12-slim ships the standard library without .pyc files, and the image runs with
    PYTHONDONTWRITEBYTECODE on a read-only root: without this step every run compiles each stdlib module it
    imports (~0.6 s of CPU for a 3-pod DNS-only check, bench/startup.py). It runs in the final stage, after
    pip, before the image drops to its user."""
    final = DOCKERFILE.read_text().split("\nFROM ")[-1]
    at, pip, user = final.find("python -m compileall"), final.find("pip install"), final.find("\nUSER ")
    assert 0 <= pip < at < user
    assert not _stdlib_not_compiled_in_image().search("/usr/local/lib/python3.12/asyncio/base_events.py")


def _help(argv: list[str], only: str | None) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        build_parser(only).parse_args(argv)
    return out.getvalue()


def test_the_help_is_as_wide_as_argparse_makes_it(monkeypatch):
    """ssdns/helpformat.py: argparse's formatter without shutil, the same help at every width."""
    from ssdns import helpformat

    def helps() -> dict:
        out = {}
        for columns in ("40", "100", None):
            if columns is None:
                monkeypatch.delenv("COLUMNS", raising=False)
            else:
                monkeypatch.setenv("COLUMNS", columns)
            out[columns] = {c: _help([c, "--help"], c) for c in ("check", "watch")}
        return out

    ours = helps()
    monkeypatch.setattr(helpformat, "HelpFormatter", argparse.RawDescriptionHelpFormatter)
    assert helps() == ours
    assert ours["40"] != ours["100"]  # the width took


def test_building_only_the_command_run_changes_no_help():
    """main builds only the options of the command it runs: every command's --help, and ssdns --help, are
    the same as with every command built."""
    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert tuple(sub.choices) == COMMANDS
    for command in COMMANDS:
        assert _help([command, "--help"], command) == _help([command, "--help"], None)
        assert _help(["--help"], command) == _help(["--help"], None)


@pytest.mark.parametrize("argv, command", [
    (["check", "nginx"], "check"), (["--version"], None), (["-h", "watch"], "watch"), ([], None),
    (["chekc", "nginx"], None), (["history", "--state", "check"], "history"),
])
def test_the_command_is_the_first_word_that_is_not_an_option(argv, command):
    assert _command_in(argv) == command


def test_the_executable_ends_with_the_run_exit_code_and_its_whole_output(sandbox_factory):
    """`python -m ssdns` (and the `ssdns` script) end the process at once after the run: the exit code and
    every byte of the report still arrive through a pipe."""
    for faults, code in (((), 0), (("missing-dns:web-1",), 1)):
        sb = sandbox_factory(pods=3, faults=faults)
        proc = subprocess.run([sys.executable, "-m", "ssdns", *sb.args("--no-http", "--output", "json")],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == code, proc.stderr
        assert proc.stdout.endswith("}\n") and json.loads(proc.stdout)["ok"] is (code == 0)
        assert [p["name"] for p in json.loads(proc.stdout)["pods"]] == ["web-0", "web-1", "web-2"]


def test_the_collector_is_slow_only_while_the_executable_starts(monkeypatch):
    """gcpace: start-up at a slow pace; once a run starts, start-up's objects frozen once and Python's own pace
    back (at the slow pace for a whole run, a 5,000-pod check's peak RSS grew by 11 MiB). A program that runs
    checks without the executable's start_up() (these tests) never freezes: its runs' garbage stays collectable."""
    import gc

    from ssdns import gcpace

    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    try:
        gcpace.running()
        assert gc.get_freeze_count() == frozen and gc.get_threshold() == before  # no start_up(): nothing
        gcpace.start_up()
        assert gc.get_threshold()[0] == gcpace.START_UP
        gcpace.running()
        assert gc.get_threshold() == gcpace.DEFAULT and gc.get_freeze_count() >= frozen
        count = gc.get_freeze_count()
        gcpace.running()  # once per process
        assert gc.get_freeze_count() == count
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
