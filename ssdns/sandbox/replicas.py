"""The sandbox's cluster DNS replicas: kube-system/kube-dns, one CoreDNS-like server per replica.

Each replica is the sandbox's DNS server (dnsserver.py) on its own loopback address (127.54.1.<k+1>)
and the main server's port, with its own view of the world: the world itself, or, under a fault,
a frozen copy (stale-replica), the world without some pods' names (replica-nxdomain), nothing at all
(replica-down: not started), late answers (slow-replica), or the world followed later than the others
(lagging-replica: its own lag instead of dns_delay). The API publishes them as the EndpointSlice of
kube-system/kube-dns (objects.py), each endpoint named by its pod and node, as a real cluster does.
"""

from __future__ import annotations

from ssdns.sandbox.dnsserver import DnsServer
from ssdns.sandbox.records import Records, records
from ssdns.sandbox.world import DnsReplica, World

SLOW_REPLICA_DELAY = 5.0  # slow-replica: past the 4.5 s conntrack-race signature


def replica_view(replica: DnsReplica):
    """What one replica serves, from the world (or from its frozen copy)."""

    def view(world: World) -> Records:
        recs = replica.frozen if replica.frozen is not None else records(world)
        if replica.frozen is not None:  # frozen before the sandbox bound the pods' port: SRV gets today's
            recs = {owner: {t: [_srv_port(v, world.port) for v in vs] if t == "SRV" else vs for t, vs in types.items()}
                    for owner, types in recs.items()}
        if not replica.nxdomain:
            return recs
        gone = {world.pod_fqdn(p).lower() for p in replica.nxdomain}
        return {owner: types for owner, types in recs.items() if owner not in gone}

    return view


def _srv_port(value: str, port: int) -> str:
    prio, weight, _, target = value.split()
    return f"{prio} {weight} {port} {target}"


def servers(world: World, port: int) -> list[DnsServer]:
    """A server per replica that is up, on the main DNS server's port (the EndpointSlice has one port)."""
    return [DnsServer(world, r.ip, port, view=replica_view(r), delay=r.slow, lag=_lag(world, r))
            for r in world.dns_replicas if r.up]


def _lag(world: World, replica: DnsReplica):
    """How late the replica follows the world, read at each change (a test may set it while running)."""
    return lambda: world.dns_delay if replica.lag is None else replica.lag


def freeze(world: World, k: int) -> None:
    """stale-replica:K: replica K keeps the world as it is now; then the last pod moves to a new IP
    (re-created elsewhere), a change every other server follows and replica K misses."""
    replica = world.dns_replicas[k]
    replica.frozen = records(world)
    if world.pods:
        last = world.pods[-1]
        new = world.replace_pod(last.name)
        for field in ("answer_as", "in_dns", "http_up"):
            setattr(new, field, getattr(last, field))
