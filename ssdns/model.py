"""The one result model every output renders: findings, per-pod facts, run statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

SCHEMA = "ssdns.check/v1"


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Finding:
    check: str  # a stable id, e.g. "dns.pod"
    status: Status
    subject: str  # the pod name when the finding is about one pod, else the DNS name
    message: str
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {"check": self.check, "status": self.status.value, "subject": self.subject,
               "message": self.message}
        if self.details:
            out["details"] = self.details
        return out


@dataclass
class PodView:
    name: str
    ordinal: int | None
    fqdn: str
    ips: list[str]
    ptr: dict[str, list[str]] = field(default_factory=dict)
    http: dict | None = None
    source: str = "expected"  # expected (from --statefulset/--replicas or the API) or how it was discovered
    api: dict | None = None  # facts from the Kubernetes API, when it was used

    def to_dict(self) -> dict:
        out = {"name": self.name, "ordinal": self.ordinal, "fqdn": self.fqdn, "ips": self.ips,
               "ptr": self.ptr, "http": self.http, "source": self.source}
        if self.api is not None:
            out["api"] = self.api
        return out


@dataclass
class Result:
    target: dict
    service: dict
    pods: list[PodView]
    findings: list[Finding]
    notes: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    lookups: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.status is Status.FAIL for f in self.findings)

    def count(self, status: Status) -> int:
        return sum(1 for f in self.findings if f.status is status)

    def findings_for(self, check: str, subject: str) -> list[Finding]:
        return [f for f in self.findings if f.check == check and f.subject == subject]

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "ok": self.ok,
            "summary": {s.value: self.count(s) for s in Status},
            "target": self.target,
            "service": self.service,
            "pods": [p.to_dict() for p in self.pods],
            "findings": [f.to_dict() for f in self.findings],
            "notes": self.notes,
            "stats": self.stats,
            "lookups": self.lookups,
        }
