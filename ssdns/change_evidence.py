"""What restart-test, scale-test and --state add to a run's evidence (evidence.py): how the StatefulSet
changed. Apart from evidence.py so that a plain check, which a CronJob may run every minute, does not
create their classes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ssdns.frozen import frozen

if TYPE_CHECKING:
    from ssdns.converge import Convergence
    from ssdns.facts import ClusterFacts, PvcFacts


@frozen
class RestartEvidence:
    """restart-test: the pods it deleted, and how each came back."""

    planned: list[str]  # pods restart-test meant to delete, in order
    convergences: list[Convergence]  # those it did delete, with how each came back
    volumes_before: dict[str, dict[str, str | None]]  # pod -> claim -> volume
    after: ClusterFacts

    def time_for(self, pod: str) -> float | None:
        """The slowest step of the pod's convergence, in ms."""
        conv = next((c for c in self.convergences if c.pod == pod), None)
        times = [t for t in (conv.ready_s, conv.dns_s, conv.http_s) if t is not None] if conv else []
        return max(times) * 1000 if times else None


@frozen
class ScaleEvidence:
    """scale-test: the order pods went and came back in, and their volumes."""

    statefulset: str
    policy: str  # podManagementPolicy
    replicas: int  # the count scaled from and back to
    to: int
    removed: list[str]  # the pods scaling down removes
    gone_order: list[str]  # the order they went
    came_order: list[str]  # the order they came back
    volumes_before: dict[str, dict[str, str | None]]
    pvcs_down: dict[str, PvcFacts]  # the claims while scaled down
    after: ClusterFacts


@frozen
class HistoryEvidence:
    """--state: the previous run's snapshot and this run's."""

    previous: dict  # the last stored snapshot (identity.snapshot's shape)
    current: dict
