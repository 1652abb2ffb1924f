"""The code stays readable: no function outside the sandbox above cyclomatic complexity 15 (radon)."""

from __future__ import annotations

from pathlib import Path

from radon.complexity import add_inner_blocks, cc_visit

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 15
# Functions being rewritten in work in flight; each leaves this list when it is split. Nothing may be
# added to it. (Empty: observe.py's observe, the last one, is a small class now.)
KNOWN: set[tuple[str, str]] = set()


def test_no_function_outside_the_sandbox_is_above_the_limit():
    over = []
    for path in sorted((ROOT / "ssdns").rglob("*.py")):
        if "sandbox" in path.parts:
            continue
        for block in add_inner_blocks(cc_visit(path.read_text())):
            if block.complexity > LIMIT and (path.name, block.name) not in KNOWN:
                over.append(f"{path.relative_to(ROOT)}:{block.lineno} {block.name} ({block.complexity})")
    assert over == []
