"""JSON for programs that a person can still read: the outer levels indented, one line per element below.

json.dump with indent runs the pure-Python encoder (and json.dump always does, even without indent):
~15% of a 5,000-pod check's CPU. Here every element below `expand` levels is one call of the C
encoder, and one line: `"pods": [` then a pod per line. The output is the same JSON value.
"""

from __future__ import annotations

import json
import json.encoder
from json.encoder import encode_basestring
from typing import IO, Any

_ENCODER = json.JSONEncoder(ensure_ascii=False)
# One C encoder for every element: json.dumps(x, ensure_ascii=False) builds a JSONEncoder and a C encoder per
# call, which is most of its cost for a small element (8,000 of them at 1,000 pods: 59 -> 29 ms). No
# circular-reference check: what is written is a tree made by to_dict. The Python encoder where there is no C one.
c_make_encoder = getattr(json.encoder, "c_make_encoder", None)  # CPython's _json; not in the type stubs
_C = (c_make_encoder(None, _ENCODER.default, encode_basestring, None, ": ", ", ", False, False, True)
      if c_make_encoder is not None else None)


def _one(obj: Any) -> str:
    if _C is None or isinstance(obj, str):
        return _ENCODER.encode(obj)
    return "".join(_C(obj, 0))


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
        out.append(_one(obj))
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
