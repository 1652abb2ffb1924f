"""ssdns/jsonout.py: the same JSON value as json.dumps, laid out for a person (a pod per line)."""

from __future__ import annotations

import io
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from ssdns import jsonout

# json.dumps takes keys of these types too, and writes them as it writes the values (True: "true").
KEYS = st.text(max_size=5) | st.booleans() | st.none() | st.integers() | st.floats(allow_nan=False)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(JSON, st.integers(min_value=0, max_value=5))
def test_any_value_comes_back_the_same(value, expand):
    text = jsonout.dumps(value, expand)
    assert json.loads(text) == json.loads(json.dumps(value))
    out = io.StringIO()
    jsonout.dump(value, out, expand)
    assert out.getvalue() == text
    # Unexpanded, an element is written exactly as json.dumps writes it (non-ASCII kept, keys converted).
    assert jsonout.dumps(value, 0) == json.dumps(value, ensure_ascii=False)


def test_a_report_has_its_sections_indented_and_an_element_per_line():
    report = {"ok": True, "pods": [{"name": "web-0", "ips": ["10.0.0.1"]}, {"name": "web-1", "ips": []}],
              "notes": [], "target": {"service": "nginx"}}
    assert jsonout.dumps(report).splitlines() == [
        "{",
        '  "ok": true,',
        '  "pods": [',
        '    {"name": "web-0", "ips": ["10.0.0.1"]},',
        '    {"name": "web-1", "ips": []}',
        "  ],",
        '  "notes": [],',
        '  "target": {',
        '    "service": "nginx"',
        "  }",
        "}",
    ]


def test_a_long_report_is_written_in_pieces_not_one_string():
    class Counting(io.StringIO):
        writes = 0

        def write(self, s):
            Counting.writes += 1
            return super().write(s)

    big = {"findings": [{"check": "dns.pod", "subject": f"web-{i}"} for i in range(10_000)]}
    out = Counting()
    jsonout.dump(big, out)
    assert json.loads(out.getvalue()) == big and Counting.writes > 2
