"""JSON for programs that a person can still read: the outer levels indented, one line per element below.

json.dump with indent runs the pure-Python encoder (and json.dump always does, even without indent):
~15% of a 5,000-pod check's CPU. Here every element below `expand` levels is one json.dumps call, the C
encoder, and one line: `"pods": [` then a pod per line. The output is the same JSON value.
"""

from __future__ import annotations

import json
from typing import IO, Any


def dumps(obj: Any, expand: int = 2) -> str:
    out: list[str] = []
    _walk(obj, out, 0, expand)
    return "".join(out)


def dump(obj: Any, fp: IO[str], expand: int = 2) -> None:
    """dumps(obj) written to fp in pieces (a 5,000-pod report is ~10 MB; it is never one string)."""
    out: list[str] = []

    def flush() -> None:
        fp.write("".join(out))
        out.clear()

    _walk(obj, out, 0, expand, flush)
    flush()


def _walk(obj: Any, out: list[str], depth: int, expand: int, flush: Any = None) -> None:
    if depth >= expand or not isinstance(obj, dict | list) or not obj:
        out.append(json.dumps(obj, ensure_ascii=False))
        return
    pad, close = "\n" + "  " * (depth + 1), "\n" + "  " * depth
    is_dict = isinstance(obj, dict)
    out.append("{" if is_dict else "[")
    items = obj.items() if isinstance(obj, dict) else enumerate(obj)
    for i, (key, value) in enumerate(items):
        out.append(("," if i else "") + pad + (_key(key) + ": " if is_dict else ""))
        _walk(value, out, depth + 1, expand, flush)
        if flush is not None and len(out) >= 4096:
            flush()
    out.append(close + ("}" if is_dict else "]"))


def _key(key: Any) -> str:
    """A key as json.dumps writes it: str(key) would make True "True" and None "None", not "true" and "null"."""
    return json.dumps(key) if isinstance(key, str) else json.dumps({key: 0})[1:-4]
