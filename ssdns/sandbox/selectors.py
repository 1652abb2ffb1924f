"""Label and field selectors as the API server parses them: text in, a predicate out."""

from __future__ import annotations

import re


def _split_top(text: str) -> list[str]:
    """Split on the commas outside parentheses: `a in (x,y),b` is two requirements."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [p.strip() for p in out if p.strip()]


_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VAL = r"[-A-Za-z0-9_.]*"


def parse_label_selector(text: str):
    """`a=b,c!=d,e in (x,y),f notin (z),g,!h` -> a predicate on a labels dict; ValueError when bad."""
    reqs: list[tuple[str, str, set[str]]] = []  # (key, operator, values): `a=b` is `a in (b)`
    for part in _split_top(text or ""):
        if m := re.fullmatch(rf"({_KEY})\s+(in|notin)\s+\(([^()]*)\)", part):
            values = {v.strip() for v in m.group(3).split(",") if v.strip()}
            reqs.append((m.group(1), m.group(2), values))
        elif m := re.fullmatch(rf"({_KEY})\s*(==|=|!=)\s*({_VAL})", part):
            reqs.append((m.group(1), "notin" if m.group(2) == "!=" else "in", {m.group(3)}))
        elif m := re.fullmatch(rf"!\s*({_KEY})", part):
            reqs.append((m.group(1), "!", set()))
        elif m := re.fullmatch(rf"({_KEY})", part):
            reqs.append((m.group(1), "exists", set()))
        else:
            raise ValueError(f"unable to parse requirement: found '{part}'")

    def match(labels: dict[str, str] | None) -> bool:
        labels = labels or {}
        for key, op, values in reqs:
            have = labels.get(key)
            if op == "in" and have not in values:
                return False
            if op == "notin" and have in values:
                return False
            if op == "exists" and key not in labels:
                return False
            if op == "!" and key in labels:
                return False
        return True

    return match


def parse_field_selector(text: str, supported: dict[str, str]):
    """`metadata.name=web-0,status.phase!=Failed` over a serialized object; ValueError when bad."""
    reqs = []
    for part in _split_top(text or ""):
        m = re.fullmatch(r"([A-Za-z.]+)\s*(==|=|!=)\s*(.*)", part)
        if not m:
            raise ValueError(f"invalid selector: '{part}'; can't understand '{part}'")
        if m.group(1) not in supported:
            raise ValueError(f'field label not supported: {m.group(1)}')
        reqs.append((supported[m.group(1)], m.group(2) == "!=", m.group(3)))

    def value(obj: dict, path: str) -> str:
        node: object = obj
        for key in path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        return "" if node is None else str(node)

    return lambda obj: all((value(obj, path) != want) if neg else (value(obj, path) == want)
                           for path, neg, want in reqs)
