"""The listener's pre-authentication budget: which inbound connections may hold a handshake slot.

Until a connecting party has signed our fresh challenge with a genesis key (see
:mod:`p2p.handshake`), all the listener knows about it is its source address, and an
attacker can open connections for free. This table decides, when a connection from
source S arrives, whether it gets one of the ``total_max`` pending-handshake slots:

1. S already holds ``per_source_max`` pending handshakes: refuse (``source_busy``).
2. Fewer than ``total_max`` are pending in all: admit.
3. Otherwise take the source M holding the most *unproven* pending handshakes (ties: the
   one whose oldest unproven handshake is oldest). If M holds more than S does, evict M's
   oldest unproven handshake (``evicted``) and admit S; else refuse (``slots_full``).

Why this shape. ``per_source_max < total_max`` (enforced by the settings), so one source
can never fill the table. Eviction from the most represented source means a connection
from a source that holds fewer slots than the attacker's busiest source always gets in,
however many sources the attacker spreads over: validators dial each peer once at a time,
so their sources hold one or two slots, and an attacker filling ``total_max`` slots holds
more than that on some source unless it has ``total_max`` addresses. It then only takes a
slot from the attacker's oldest connection, so a validator's fresh one is evicted last.
A handshake whose peer has proved its key is never evicted: only validators can make one,
and it completes within a round trip. Per-source caps cost a validator nothing unless it
shares its address with the attacker; nothing before authentication can tell those apart.

A second, separate budget bounds *work*: :class:`ProofBudget` is a token bucket per source
on PROOF verifications (about 0.17 ms of ML-DSA each). Without it one source, re-dialing
with junk PROOFs as fast as its pending slots allow, could still keep a core busy; with
it a source gets ``burst`` verifications at once and one more per ``interval_s``, far
more than a validator's dial loop (one dial per peer, backed off) ever uses. A PROOF past
the budget is refused unverified (``rate_limited``).

Sources: an IPv4 address, or the /64 network of an IPv6 address (one host usually holds a
whole /64; counting single IPv6 addresses would hand an attacker 2^64 sources). Anything
that is not an IP address (in-memory links in tests) is its own source.

Pure bookkeeping: no clock, no sockets; :class:`p2p.peers.PeerManager` closes what this
table refuses or evicts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from p2p.errors import HandshakeFailure

IPV6_SOURCE_PREFIX_BITS = 64
PROOF_BUDGET_SOURCES_MAX = 4096
"""Sources whose proof budget is remembered; past it, refilled buckets go first, then the least recent."""


def source_of(host: str) -> str:
    """The address an inbound connection is counted under (see the module docstring)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_SOURCE_PREFIX_BITS), strict=False))
    return str(address)


class Ticket:
    """One admitted connection's slot, held until :meth:`AdmissionTable.release`."""

    def __init__(self, source: str, proven: Callable[[], bool], serial: int) -> None:
        self.source = source
        self.serial = serial
        self._proven = proven

    @property
    def proven(self) -> bool:
        """The peer has signed our challenge with its genesis key: never evicted from here on."""
        return self._proven()

    def __repr__(self) -> str:
        return f"Ticket({self.source!r}, serial={self.serial})"


@dataclass(frozen=True)
class Admitted:
    ticket: Ticket
    evicted: Ticket | None
    """A less deserving pending handshake the caller must now close (its slot was taken over)."""


class AdmissionTable:
    """Pending inbound handshakes by source, within a per-source and a total bound."""

    def __init__(self, total_max: int, per_source_max: int) -> None:
        if not 0 < per_source_max < total_max:
            raise ValueError(f"need 0 < per_source_max ({per_source_max}) < total_max ({total_max}): "
                             "otherwise one source can fill every slot")
        self.total_max = total_max
        self.per_source_max = per_source_max
        self._by_source: dict[str, list[Ticket]] = {}
        self._count = 0
        self._serial = 0

    @property
    def pending(self) -> int:
        return self._count

    def pending_from(self, source: str) -> int:
        return len(self._by_source.get(source, ()))

    def admit(self, source: str, proven: Callable[[], bool]) -> Admitted | HandshakeFailure:
        """A slot for a new connection from ``source``, or the reason it gets none."""
        held = self.pending_from(source)
        if held >= self.per_source_max:
            return HandshakeFailure.SOURCE_BUSY
        evicted = None
        if self._count >= self.total_max:
            evicted = self._eviction_candidate(held)
            if evicted is None:
                return HandshakeFailure.SLOTS_FULL
            self.release(evicted)
        self._serial += 1
        ticket = Ticket(source, proven, self._serial)
        self._by_source.setdefault(source, []).append(ticket)
        self._count += 1
        return Admitted(ticket, evicted)

    def _eviction_candidate(self, newcomer_holds: int) -> Ticket | None:
        best: list[Ticket] = []
        for tickets in self._by_source.values():
            unproven = [ticket for ticket in tickets if not ticket.proven]
            if len(unproven) > len(best) or (unproven and len(unproven) == len(best)
                                             and unproven[0].serial < best[0].serial):
                best = unproven
        if len(best) > newcomer_holds:
            return best[0]
        return None

    def release(self, ticket: Ticket) -> None:
        """Free ``ticket``'s slot (idempotent: an evicted ticket is released once more when its task ends)."""
        tickets = self._by_source.get(ticket.source)
        if tickets is None or ticket not in tickets:
            return
        tickets.remove(ticket)
        self._count -= 1
        if not tickets:
            del self._by_source[ticket.source]


class ProofBudget:
    """Token bucket per source on PROOF verifications: ``burst`` at once, one more per ``interval_s``."""

    def __init__(self, burst: int, interval_s: float, sources_max: int = PROOF_BUDGET_SOURCES_MAX) -> None:
        if burst < 1 or interval_s <= 0 or sources_max < 1:
            raise ValueError("proof budget: burst, interval and sources_max must be positive")
        self.burst = burst
        self.interval_s = interval_s
        self.sources_max = sources_max
        self._buckets: dict[str, tuple[float, float]] = {}
        """source -> (tokens, time of last update); insertion order is least recently updated first."""

    def _tokens(self, source: str, now_s: float) -> float:
        tokens, updated_s = self._buckets.get(source, (float(self.burst), now_s))
        return min(float(self.burst), tokens + max(0.0, now_s - updated_s) / self.interval_s)

    def take(self, source: str, now_s: float) -> bool:
        """Spend one verification for ``source`` at time ``now_s``; False when its bucket is empty."""
        tokens = self._tokens(source, now_s)
        self._buckets.pop(source, None)
        allowed = tokens >= 1.0
        self._buckets[source] = (tokens - 1.0 if allowed else tokens, now_s)
        if len(self._buckets) > self.sources_max:
            self._forget(now_s)
        return allowed

    def _forget(self, now_s: float) -> None:
        for source in [s for s in self._buckets if self._tokens(s, now_s) >= self.burst]:
            del self._buckets[source]
        while len(self._buckets) > self.sources_max:
            del self._buckets[next(iter(self._buckets))]
