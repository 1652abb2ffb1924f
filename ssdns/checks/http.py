"""HTTP identity: each pod, asked on its own IP, answers as itself (and not as another pod)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ssdns.checks.registry import Verdict, check, failed, passed
from ssdns.evidence import Evidence, Need
from ssdns.names import ordinal
from ssdns.target import Target

# A pattern that must match at the end of the body: a body cut at the read cap can never prove it.
_END_ANCHORED = r"(?<!\\)(?:\$|\\Z)\)*$"  # compiled (and cached by `re`) when first used


def expected_body(target: Target, pod: str, ordinal_: int | None) -> str:
    """--expect with its fields filled in for this pod (escaped for --match regex)."""
    fields: dict[str, object] = {
        "pod": pod, "fqdn": target.pod_fqdn(pod).rstrip("."), "ordinal": "" if ordinal_ is None else ordinal_,
        "service": target.service, "namespace": target.namespace, "statefulset": target.statefulset or ""}
    if target.match == "regex":
        fields = {k: re.escape(str(v)) for k, v in fields.items()}
    return target.expect.format(**fields)


def cut_short(target: Target, truncated: bool) -> bool:
    """A body cut at the read cap cannot pass an exact match or an end-anchored pattern."""
    return truncated and (target.match == "exact" or (target.match == "regex"
                                                        and re.search(_END_ANCHORED, target.expect) is not None))


def body_matches(target: Target, expected: str, body: str, truncated: bool = False) -> bool:
    if cut_short(target, truncated):
        return False
    if target.match == "exact":
        return body.strip() == expected
    if target.match == "contains":
        return expected in body
    return re.search(expected, body) is not None


@check("http.identity", place=50, needs=(Need.DNS, Need.HTTP), column="HTTP",
       title="each pod answers HTTP on its own IP with its own identity (--expect)")
def identity(ev: Evidence) -> Iterator[Verdict]:
    t = ev.target
    for name in ev.pods:
        h = ev.dns.pods[name].http
        if h is None:
            continue
        want = expected_body(t, name, ordinal(name, t.statefulset))
        body = h.body or ""
        if h.error or h.status is None:
            yield failed(name, f"{h.url}: {h.error}", url=h.url)
        elif not 200 <= h.status < 300:
            moved = f" (a redirect to {h.location}; not followed)" if h.location else ""
            yield failed(name, f"{h.url} answered HTTP {h.status}{moved}", url=h.url, status=h.status)
        elif cut_short(t, h.truncated):
            how = "exactly" if t.match == "exact" else "a pattern anchored at its end"
            yield failed(name, f"{name} answered a body longer than ssdns reads (cut at the cap, starting "
                         f"{_short(body)}): it cannot match {how} {want!r}", url=h.url, body=_short(body, 200),
                         truncated=True)
        elif body_matches(t, want, body):
            yield passed(name, f"answered {_short(body)}")
        else:
            yield _mismatch(ev, name, want, h.url, body, h.truncated)


def _mismatch(ev: Evidence, name: str, want: str, url: str, body: str, truncated: bool) -> Verdict:
    """Who claims to be whom: a body that is another pod's name is an identity swap."""
    text = body.strip()
    other = text if text in ev.dns.pods and text != name else None
    if other:
        return failed(name, f"{name} answered as {other}: identity swap (the pod at {url} says it is {other})",
                      url=url, body=_short(body, 200), other_pod=other)
    how = "" if ev.target.match == "exact" else ev.target.match + " "
    cut = " in the part ssdns reads (the body is longer)" if truncated else ""
    return failed(name, f"{name} answered {_short(body)}, expected {how}{want!r}{cut}", url=url,
                  body=_short(body, 200), **({"truncated": True} if truncated else {}))


def _short(body: str, limit: int = 60) -> str:
    text = body.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")
