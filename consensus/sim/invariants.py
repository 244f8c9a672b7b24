"""The properties a run must never break, checked after every simulator step.

Checks are incremental: every state change an invariant depends on (a block
finalized, a vote or evidence emitted by an honest node, the clock advancing)
goes through this module the moment it happens, so "checked after every step"
costs O(1) per change instead of a rescan of every log.

Invariants (names are what a violation report prints):

- ``agreement``: at most one block is finalized per height across all honest nodes.
- ``certificate``: every finalized block carries a valid 2f+1 certificate for its hash.
- ``prefix``: each honest finalized log is a hash chain from height 1 whose log
  sizes and roots match the roots it carries; with ``agreement`` this makes honest
  logs prefixes of one another (blocks and log roots compared per height).
- ``unique-roots``: no audit root enters the finalized log twice.
- ``honest-votes``: no honest node votes for a block the simulator knows is invalid.
- ``honest-evidence``: no honest node is ever accused of equivocation.
- ``persisted-votes``: an honest node's vote leaves only once the SafetyState on its
  disk already commits it to that vote (the driver completes each Persist first, and
  the core puts the Persist first), so a crash right after sending cannot make it
  vote differently on restart.
- ``progress``: after GST a new block is finalized within ``progress_bound_ms``.
- ``rejoin``: after GST, every honest validator that is up (laggards and restarted
  ones included) finalizes each height within ``rejoin_bound_ms`` of the first honest
  validator that did, counted from GST or from its own restart, whichever is later.
  ``progress`` alone is met by 2f+1 validators while a laggard never catches up.
- ``frame-size``: no honest validator tries to send a message larger than one p2p
  frame (the runtime's transport refuses it, so such a message never arrives).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from proof.compact import CompactRange
from proof.errors import PantheonError

INVARIANTS: tuple[str, ...] = (
    "agreement",
    "certificate",
    "prefix",
    "unique-roots",
    "honest-votes",
    "honest-evidence",
    "persisted-votes",
    "progress",
    "rejoin",
    "frame-size",
)
GENESIS_PARENT = bytes(32)
LOGS_MEMO_MAX = 1_024
"""Logs after recently checked blocks, kept so that n nodes finalizing one block hash its roots once."""
ROOT_SIZE = 32


@dataclass(frozen=True)
class Violation:
    """One broken invariant: enough to find the step again from the seed."""

    invariant: str
    step: int
    time_ms: int
    node: int | None
    details: str

    def describe(self) -> str:
        where = f"node {self.node}" if self.node is not None else "network"
        return f"invariant {self.invariant} broken at step {self.step} (t={self.time_ms} ms, {where}): {self.details}"


@dataclass(frozen=True)
class CanonicalEntry:
    """What the first honest node to finalize a height finalized there."""

    block_hash: bytes
    log_size: int
    log_root: bytes
    node: int
    time_ms: int


@dataclass
class _NodeLog:
    height: int = 0
    tip_hash: bytes = GENESIS_PARENT
    log: CompactRange = field(default_factory=CompactRange)


def _hex(value: bytes) -> str:
    return value[:8].hex()


class InvariantChecker:
    """Receives every invariant-relevant change of a run and collects violations.

    ``verify_certificate(block, certificate, descendants)`` raises a
    :class:`PantheonError` unless ``certificate`` is a valid 2f+1 finalization of the
    block (directly, or of the last of ``descendants``, the headers linking the block
    to the certified one); the runner binds it to
    :func:`proof.chain.verify_finalization` with the run's signature check.
    """

    def __init__(
        self,
        *,
        honest: Iterable[int],
        verify_certificate: Callable[[Any, Any, tuple[Any, ...]], None],
        gst_ms: int,
        progress_bound_ms: int,
        rejoin_bound_ms: int | None = None,
        enabled: Iterable[str] = INVARIANTS,
    ) -> None:
        self.honest = frozenset(honest)
        self.enabled = frozenset(enabled)
        unknown = self.enabled - set(INVARIANTS)
        if unknown:
            raise ValueError(f"unknown invariant(s) {sorted(unknown)}: choose from {INVARIANTS}")
        self._verify_certificate = verify_certificate
        self.gst_ms = gst_ms
        self.progress_bound_ms = progress_bound_ms
        self.rejoin_bound_ms = progress_bound_ms if rejoin_bound_ms is None else rejoin_bound_ms
        self.up_since_ms: dict[int, int] = {}
        self._rejoin_reported: dict[int, int] = {}
        self.rejoin_worst_ms = 0
        """Longest any honest validator that was up stayed a height behind after GST."""
        self.canonical: dict[int, CanonicalEntry] = {}
        self.finalized_roots: set[bytes] = set()
        self.invalid_blocks: set[bytes] = set()
        self.last_progress_ms = 0
        self._logs: dict[int, _NodeLog] = {}
        self._log_after: dict[bytes, CompactRange] = {}
        self._pending: list[Violation] = []
        self.step = 0
        self.now_ms = 0

    # -- inputs -------------------------------------------------------------------------

    def at_step(self, step: int, now_ms: int) -> None:
        """Stamp the violations that the coming changes may raise."""
        self.step = step
        self.now_ms = now_ms

    def mark_invalid(self, block_hash: bytes) -> None:
        """A block the simulator built invalid on purpose (a Byzantine proposal)."""
        self.invalid_blocks.add(block_hash)

    def restarted(self, node: int, height: int, tip_hash: bytes, log: CompactRange) -> None:
        """A node rebooted from its disk: its log continues from what it persisted."""
        self._logs[node] = _NodeLog(height, tip_hash, log.copy())
        if node in self.honest:
            self.up_since_ms[node] = self.now_ms

    def crashed(self, node: int) -> None:
        """A node went down: nothing is expected of it until it restarts."""
        self.up_since_ms.pop(node, None)

    def finalized(self, node: int, block: Any, certificate: Any, descendants: tuple[Any, ...] = ()) -> None:
        """An honest node finalized ``block`` (a :class:`consensus.block.Block`)."""
        if node not in self.honest:
            return
        header = block.header
        block_hash = header.hash
        height = header.height
        if "certificate" in self.enabled:
            self._check_certificate(node, block, certificate, descendants)
        state = self._logs.setdefault(node, _NodeLog())
        if "prefix" in self.enabled:
            self._check_chain(node, state, block)
        state.height = height
        state.tip_hash = block_hash
        entry = self.canonical.get(height)
        if entry is None:
            self.canonical[height] = CanonicalEntry(
                block_hash, header.log_size, header.log_root, node, self.now_ms
            )
            self.last_progress_ms = max(self.last_progress_ms, self.now_ms)
            if "unique-roots" in self.enabled:
                self._check_unique_roots(node, block)
        elif "agreement" in self.enabled and entry.block_hash != block_hash:
            self._violate(
                "agreement",
                node,
                f"height {height}: finalized block {_hex(block_hash)} but node {entry.node} "
                f"finalized {_hex(entry.block_hash)} (log root {_hex(header.log_root)} vs "
                f"{_hex(entry.log_root)})",
            )

    def vote_sent(self, node: int, kind_name: str, view: int, block_hash: bytes) -> None:
        """An honest node emitted a vote."""
        if "honest-votes" in self.enabled and node in self.honest and block_hash in self.invalid_blocks:
            self._violate(
                "honest-votes", node, f"{kind_name} vote in view {view} for invalid block {_hex(block_hash)}"
            )

    def evidence(self, node: int, accused: int, details: str) -> None:
        """A node reported equivocation evidence against validator ``accused``."""
        if "honest-evidence" in self.enabled and accused in self.honest:
            self._violate("honest-evidence", node, f"honest validator {accused} accused: {details}")

    def tick(self) -> None:
        """The clock advanced: check progress and every honest validator's rejoining after GST."""
        if self.now_ms < self.gst_ms:
            return
        if "rejoin" in self.enabled:
            self._check_rejoin()
        if "progress" not in self.enabled:
            return
        since_ms = max(self.gst_ms, self.last_progress_ms)
        if self.now_ms - since_ms > self.progress_bound_ms:
            self._violate(
                "progress",
                None,
                f"no new block finalized for {self.now_ms - since_ms} ms after GST "
                f"(bound {self.progress_bound_ms} ms; highest height {len(self.canonical)})",
            )
            # Report a stall once, not on every later step.
            self.last_progress_ms = self.now_ms

    def drain(self) -> list[Violation]:
        """Violations raised since the last drain."""
        pending, self._pending = self._pending, []
        return pending

    # -- checks -------------------------------------------------------------------------

    def _check_rejoin(self) -> None:
        canonical = self.canonical
        for node, up_ms in self.up_since_ms.items():
            state = self._logs.get(node)
            height = 0 if state is None else state.height
            entry = canonical.get(height + 1)
            if entry is None or self._rejoin_reported.get(node) == height:
                continue
            lagging_ms = self.now_ms - max(entry.time_ms, self.gst_ms, up_ms)
            if lagging_ms > self.rejoin_worst_ms:
                self.rejoin_worst_ms = lagging_ms
            if lagging_ms > self.rejoin_bound_ms:
                self._rejoin_reported[node] = height
                self._violate(
                    "rejoin",
                    node,
                    f"stuck at height {height} for {lagging_ms} ms after GST while height {height + 1} "
                    f"was finalized by node {entry.node} (bound {self.rejoin_bound_ms} ms; highest height "
                    f"{len(canonical)})",
                )

    def _check_certificate(self, node: int, block: Any, certificate: Any, descendants: tuple[Any, ...]) -> None:
        try:
            self._verify_certificate(block, certificate, descendants)
        except PantheonError as exc:
            self._violate("certificate", node, f"height {block.header.height}: {exc}")

    def _check_chain(self, node: int, state: _NodeLog, block: Any) -> None:
        header = block.header
        if header.height != state.height + 1:
            self._violate(
                "prefix", node, f"finalized height {header.height} right after height {state.height}"
            )
            return
        if header.parent != state.tip_hash:
            self._violate(
                "prefix",
                node,
                f"height {header.height}: parent {_hex(header.parent)} is not the previous "
                f"finalized block {_hex(state.tip_hash)}",
            )
            return
        known = self._log_after.get(header.hash)
        if known is not None:
            # Another node already checked this block on this same parent: a parent hash
            # fixes the parent's log size and root, so the log after it is the same.
            state.log = known.copy()
            return
        state.log.extend_roots(block.roots)
        if state.log.size == header.log_size and state.log.root() == header.log_root:
            self._log_after[header.hash] = state.log.copy()
            if len(self._log_after) > LOGS_MEMO_MAX:
                del self._log_after[next(iter(self._log_after))]
        else:
            self._violate(
                "prefix",
                node,
                f"height {header.height}: header says log size {header.log_size} root "
                f"{_hex(header.log_root)}, its roots give size {state.log.size} root {_hex(state.log.root())}",
            )

    def _check_unique_roots(self, node: int, block: Any) -> None:
        roots = block.roots
        seen = self.finalized_roots
        for start in range(0, len(roots), ROOT_SIZE):
            root = roots[start : start + ROOT_SIZE]
            if root in seen:
                self._violate(
                    "unique-roots", node, f"height {block.header.height}: root {_hex(root)} finalized again"
                )
                return
            seen.add(root)

    def violate(self, invariant: str, node: int | None, details: str) -> None:
        """Record a violation found by a check that lives with the runner (it sees the disks)."""
        self._violate(invariant, node, details)

    def _violate(self, invariant: str, node: int | None, details: str) -> None:
        self._pending.append(Violation(invariant, self.step, self.now_ms, node, details))


def check_logs(
    logs: dict[int, list[tuple[Any, ...]]],
    *,
    verify_certificate: Callable[[Any, Any, tuple[Any, ...]], None],
    enabled: Iterable[str] = ("agreement", "certificate", "prefix", "unique-roots"),
) -> list[Violation]:
    """Check finished honest histories at once.

    ``logs`` maps a node to its finalized entries in order, each
    ``(block, certificate)`` or ``(block, certificate, descendants)``.

    The same rules as during a run, for histories that did not come from one (tests
    hand it fabricated bad states to prove the checker catches them).
    """
    checker = InvariantChecker(
        honest=logs.keys(),
        verify_certificate=verify_certificate,
        gst_ms=0,
        progress_bound_ms=0,
        enabled=[name for name in enabled if name != "progress"],
    )
    step = 0
    for node in sorted(logs):
        for entry in logs[node]:
            step += 1
            checker.at_step(step, 0)
            checker.finalized(node, *entry)
    return checker.drain()
