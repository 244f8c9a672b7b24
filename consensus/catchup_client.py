"""Which peer a lagging core asks for finalized blocks, and which answers it accepts.

Pure and clocked by the core's ``now_ms``. The rules, each against one way a
Byzantine validator could keep a laggard behind:

- **One request in flight, matched by id.** A request carries a fresh id; only an
  answer from the peer asked, repeating that id, is taken. Stale or unsolicited
  answers are dropped without touching the request in flight, so they can neither
  use it up nor stand in for the real answer.
- **Requests time out.** An answer that does not come within ``timeout_ms`` frees the
  slot and benches the peer (longer on each strike, reset when it delivers), so a
  peer that never answers costs one timeout, not the catch-up.
- **Nobody can aim the laggard.** A trigger (a certificate from far ahead, a
  finalization of an unknown block) says *that* we are behind, never *whom* to ask:
  the peer is chosen here, preferring peers that delivered blocks before, then in
  rotation, skipping benched peers. A peer that keeps delivering is asked again at
  once, so a partial answer continues where it came from.
- **Pipelined.** That next request leaves before the blocks just delivered are
  applied, so the peer builds the next answer while we write this one. Its answer then
  waits behind the apply, so its timeout is extended by ``allowance_ms`` (the core
  grants so much per root handed over); still one request in flight, bounded wait.
- **Never stuck.** When every peer is benched, the one benched longest ago is asked.
- **Bounded.** One request, one score and one bench time per validator.
"""

from __future__ import annotations

from dataclasses import dataclass

CATCHUP_RETRY_MS = 1_000
"""Least time between two catch-up requests that do not continue a delivering answer."""
CATCHUP_TIMEOUT_MS = 2_000
"""An answer later than this is given up on; the peer is benched."""
CATCHUP_BENCH_MS_MAX = 60_000
"""Longest a peer that timed out or answered falsely is passed over."""
INVALID_ANSWER_STRIKES = 4
"""Strikes a false answer counts, against one for a timeout."""
APPLY_ALLOWANCE_MS_PER_1000_ROOTS = 50
"""Timeout added to a pipelined request per 1,000 roots the driver is applying meanwhile
(20,000 roots/s: a few times slower than a loaded 2-core node applies them)."""


@dataclass(frozen=True)
class InFlight:
    request_id: int
    peer: int
    from_height: int
    sent_ms: int
    allowance_ms: int = 0
    """Extra wait granted because the answer is queued behind an apply of our own."""


class CatchUpClient:
    """The requester's side of catch-up for a core with index ``me`` among ``n`` validators."""

    def __init__(
        self, *, n: int, me: int | None, retry_ms: int = CATCHUP_RETRY_MS, timeout_ms: int = CATCHUP_TIMEOUT_MS
    ) -> None:
        self._n = n
        self._me = me
        self._retry_ms = retry_ms
        self._timeout_ms = timeout_ms
        self._next_id = 1
        self._last_sent_ms: int | None = None
        self._rotation = -1 if me is None else me
        self.in_flight: InFlight | None = None
        self._delivered = [0] * n
        self._strikes = [0] * n
        self._benched_until_ms = [0] * n

    @property
    def peers(self) -> list[int]:
        return [peer for peer in range(self._n) if peer != self._me]

    def expire(self, now_ms: int) -> bool:
        """Give up on a request older than the timeout (benching its peer); True if one was given up."""
        flight = self.in_flight
        if flight is None or now_ms - flight.sent_ms < self._timeout_ms + flight.allowance_ms:
            return False
        self.in_flight = None
        self._strike(flight.peer, 1, now_ms)
        return True

    def start(
        self, from_height: int, now_ms: int, *, continue_with: int | None = None, allowance_ms: int = 0
    ) -> InFlight | None:
        """A new request from ``from_height`` if one may leave now; None if one is in flight or it is too soon.

        ``continue_with``: the peer whose answer just delivered blocks; it is asked again
        at once, with ``allowance_ms`` added to its timeout for the apply its answer will
        wait behind. Otherwise a request waits ``retry_ms`` after the last one and goes
        to the best peer not benched.
        """
        if self.in_flight is not None:
            return None
        if continue_with is not None:
            peer: int | None = continue_with
        else:
            if self._last_sent_ms is not None and now_ms - self._last_sent_ms < self._retry_ms:
                return None
            peer = self._choose(now_ms)
        if peer is None:
            return None
        flight = InFlight(request_id=self._next_id, peer=peer, from_height=from_height, sent_ms=now_ms,
                          allowance_ms=allowance_ms if continue_with is not None else 0)
        self._next_id += 1
        self._last_sent_ms = now_ms
        self.in_flight = flight
        return flight

    def accept(self, sender: int, request_id: int) -> InFlight | None:
        """The request an answer from ``sender`` with ``request_id`` settles, or None (drop the answer)."""
        flight = self.in_flight
        if flight is None or flight.peer != sender or flight.request_id != request_id:
            return None
        self.in_flight = None
        return flight

    def delivered(self, peer: int, blocks: int) -> None:
        """An accepted answer proved ``blocks`` new blocks (0: the peer had nothing newer for us)."""
        if blocks > 0:
            self._delivered[peer] += blocks
            self._strikes[peer] = 0
            self._benched_until_ms[peer] = 0
        else:
            self._delivered[peer] //= 2  # a peer that has stopped being ahead fades from first choice

    def refuted(self, peer: int, now_ms: int) -> None:
        """An accepted answer failed verification: a peer that sends false history is benched long."""
        self._delivered[peer] = 0
        self._strike(peer, INVALID_ANSWER_STRIKES, now_ms)

    def benched(self, peer: int, now_ms: int) -> bool:
        return self._benched_until_ms[peer] > now_ms

    def _strike(self, peer: int, strikes: int, now_ms: int) -> None:
        self._strikes[peer] = min(self._strikes[peer] + strikes, 16)
        bench_ms = min(self._timeout_ms << (self._strikes[peer] - 1), CATCHUP_BENCH_MS_MAX)
        self._benched_until_ms[peer] = now_ms + bench_ms

    def _choose(self, now_ms: int) -> int | None:
        """Among peers not benched: the ones that delivered most, then the next in rotation.

        When every peer is benched (a long partition makes every request time out), the
        one whose bench ends first: a laggard always has someone to ask.
        """
        peers = self.peers
        if not peers:
            return None
        candidates = [peer for peer in peers if not self.benched(peer, now_ms)]
        if not candidates:
            soonest = min(self._benched_until_ms[peer] for peer in peers)
            candidates = [peer for peer in peers if self._benched_until_ms[peer] == soonest]
        best = max(self._delivered[peer] for peer in candidates)
        ordered = [(self._rotation + step) % self._n for step in range(1, self._n + 1)]
        for peer in ordered:
            if peer in candidates and self._delivered[peer] == best:
                self._rotation = peer
                return peer
        return None
