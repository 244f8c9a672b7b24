"""The life of one anchor transaction: observations in, actions out, no IO and no clock inside.

Theory of operation
===================

An anchor puts one Pantheon block hash on Bitcoin. Between the wallet signing it and
the anchor being safe to cite, Bitcoin can do several things to it; this module names
each one as a state or a transition, and the driver (anchor.tracker) only observes
bitcoind and carries out what this module asks.

States::

    BUILT ──Broadcasted──> BROADCAST ──Observed(in a best-chain block)──> CONFIRMED(k)
      │                      ^   │                                          │   │
      │                      │   └─Observed(k >= final_depth)──> FINAL <────┘   │
      │                      └─────────Observed(block left best chain)──────────┘
      └─Observed(in mempool or a block: sent before a crash)──> BROADCAST/CONFIRMED/FINAL

    BUILT/BROADCAST/CONFIRMED ──Observed(conflict in a block)──> DOUBLE_SPENT

- BUILT: signed, not yet accepted by bitcoind. Observed with the transaction nowhere
  asks for Broadcast(raw) again (rate limited).
- BROADCAST: bitcoind has it (or had it); waiting for a block. Two timers run from
  ``now_ms`` values the driver passes in:
  * evicted (not in the mempool, not in a block): Broadcast(raw) again;
  * unconfirmed ``bump_after_ms`` after this txid was first broadcast: BumpFee to
    max(old * factor, old + 1 sat/vB), or to ``fee_rate_max`` when that would stop
    less than 1 sat/vB short of it (next_fee_rate_sat_kvb). Once less than 1 sat/vB
    below the cap the record stays as it is, sets ``fee_capped`` and emits one Alert;
    nothing spins.
  Every Broadcast or BumpFee sets ``attempt_at_ms``; no new one is emitted before
  ``attempt_interval_ms`` has passed, whatever the driver reports back (or fails to).
  A due bump takes precedence over a rebroadcast: the replacement fixes both.
- CONFIRMED(k): one of our txids (the current one or one it replaced: a miner may
  have mined the older version) is in a block on the best chain, k confirmations.
  An observation without it is a reorg: back to BROADCAST, and if the transaction
  is not back in the mempool either, the evicted rule rebroadcasts it at once.
- FINAL: k reached ``final_depth``. Sticky: no event is accepted any more, so no
  later observation can undo it. The depth is the operator's statement of how deep
  a reorg they are prepared to ignore.
- DOUBLE_SPENT: none of our versions is in a best-chain block and another
  transaction spending the same inputs is (the wallet's own use of its coins, or a
  compromised wallet). The anchor can never confirm: one Alert, nothing is sent any
  more (rebroadcasting it would be refused forever), and the node anchors the
  checkpoint again with a new transaction. Sticky like FINAL.

A conflict that only waits in the mempool (``Conflict.MEMPOOL``) is not one of our
versions, so it is never taken for a fee bump: the record waits, sends nothing (bitcoind
would refuse it) and says why in ``last_error``, with one Alert, until the conflict
confirms (DOUBLE_SPENT) or leaves the mempool (then the evicted rule rebroadcasts).

Events and their legality are a table (TRANSITIONS); anything else raises
IllegalTransition, and an event that contradicts the record (a Broadcasted for
another txid, a Bumped that does not pay more) raises AnchorEventError.

Units: fee rates are integers in sat/kvB (Bitcoin Core's own CFeeRate unit), so the
record has one exact canonical encoding; 1 sat/vB is 1000 sat/kvB.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Union

from anchor.payload import BLOCK_HASH_SIZE, decode_payload
from proof import cbor
from proof.errors import DecodeError, PantheonError
from proof.hashing import HASH_SIZE
from proof.spv import MONEY_MAX_SAT, hash_to_hex, parse_transaction

RECORD_VERSION = 1
# An anchor is a few hundred bytes (wallet inputs, change, OP_RETURN); this generous
# bound keeps a corrupted record or a strange wallet answer from holding megabytes.
RAW_TX_SIZE_MAX = 100_000
# Fee bumps one anchor may go through; each one costs at least 1 sat/vB more, so
# a sane fee cap is reached long before.
BUMPS_MAX = 32
ERROR_TEXT_MAX_BYTES = 500
RECORD_SIZE_MAX = 2 * RAW_TX_SIZE_MAX
HEIGHT_MAX = 2**31 - 1
TIME_MS_MAX = 2**63 - 1
COUNTER_MAX = 2**32 - 1
FEE_RATE_SAT_KVB_MAX = 10**12
SAT_KVB_PER_SAT_VB = 1000
# BIP 125 rule 4 with the default incremental relay fee: a replacement of the same
# size must pay at least 1 sat/vB more.
FEE_RATE_STEP_MIN_SAT_KVB = 1 * SAT_KVB_PER_SAT_VB
FINAL_DEPTH_MAX = 10_000
BUMP_FACTOR_PERCENT_DEFAULT = 150
BUMP_FACTOR_PERCENT_MAX = 1000
ATTEMPT_INTERVAL_MS_DEFAULT = 60_000

ALERT_FEE_CAPPED = "fee_capped"
ALERT_BROADCAST_FAILED = "broadcast_failed"
ALERT_REORG = "reorg"
ALERT_EVICTED = "evicted"
ALERT_CONFLICT = "conflict"
ALERT_DOUBLE_SPENT = "double_spent"
ALERT_KINDS = frozenset(
    {ALERT_FEE_CAPPED, ALERT_BROADCAST_FAILED, ALERT_REORG, ALERT_EVICTED, ALERT_CONFLICT, ALERT_DOUBLE_SPENT}
)


class AnchorStateError(PantheonError):
    """An anchor record or event that breaks the lifecycle's rules."""


class IllegalTransition(AnchorStateError):
    """An event the record's state does not accept (for instance anything once FINAL)."""

    def __init__(self, state: AnchorState, event: object) -> None:
        super().__init__(
            f"anchor in state {state.value} does not accept {type(event).__name__}; "
            f"it accepts: {', '.join(sorted(t.__name__ for t in TRANSITIONS[state])) or 'nothing (final)'}"
        )
        self.state = state
        self.event = event


class AnchorEventError(AnchorStateError):
    """An event whose content contradicts the record it is applied to."""


class AnchorState(enum.Enum):
    BUILT = "built"
    BROADCAST = "broadcast"
    CONFIRMED = "confirmed"
    FINAL = "final"
    DOUBLE_SPENT = "double_spent"


class Conflict(enum.Enum):
    """Another transaction (not one of the record's versions) spending the anchor's inputs."""

    NONE = "none"
    MEMPOOL = "mempool"
    BLOCK = "block"


def _check_uint(value: object, what: str, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise AnchorStateError(f"{what} must be an integer in 0..{maximum}, got {value!r:.80}")


def _check_hash(value: object, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise AnchorStateError(f"{what} must be {HASH_SIZE} bytes, got {value!r:.80}")


def _check_text(value: object, what: str) -> None:
    if not isinstance(value, str) or len(value.encode("utf-8", "surrogatepass")) > ERROR_TEXT_MAX_BYTES:
        raise AnchorStateError(f"{what} must be text of at most {ERROR_TEXT_MAX_BYTES} bytes, got {value!r:.80}")


def truncate_text(text: str) -> str:
    """``text`` cut to at most ERROR_TEXT_MAX_BYTES of UTF-8, for reasons taken from exceptions."""
    return text.encode("utf-8", "surrogatepass")[:ERROR_TEXT_MAX_BYTES].decode("utf-8", "ignore")


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class AnchorPolicy:
    """The operator's settings. Not stored in the record: a changed setting (a higher
    fee cap, say) applies to anchors already in flight at their next observation."""

    fee_rate_sat_kvb: int
    fee_rate_max_sat_kvb: int
    bump_after_ms: int
    final_depth: int
    bump_factor_percent: int = BUMP_FACTOR_PERCENT_DEFAULT
    attempt_interval_ms: int = ATTEMPT_INTERVAL_MS_DEFAULT

    def __post_init__(self) -> None:
        _check_uint(self.fee_rate_max_sat_kvb, "fee_rate_max_sat_kvb", FEE_RATE_SAT_KVB_MAX)
        if not 0 < self.fee_rate_sat_kvb <= self.fee_rate_max_sat_kvb:
            raise AnchorStateError(
                f"fee rate {self.fee_rate_sat_kvb} sat/kvB must be in 1..{self.fee_rate_max_sat_kvb} "
                "sat/kvB (the fee cap)"
            )
        _check_uint(self.bump_after_ms, "bump_after_ms", TIME_MS_MAX)
        _check_uint(self.attempt_interval_ms, "attempt_interval_ms", TIME_MS_MAX)
        if not 1 <= self.final_depth <= FINAL_DEPTH_MAX:
            raise AnchorStateError(f"final_depth must be in 1..{FINAL_DEPTH_MAX}, got {self.final_depth!r}")
        if not 100 < self.bump_factor_percent <= BUMP_FACTOR_PERCENT_MAX:
            raise AnchorStateError(
                f"bump_factor_percent must be in 101..{BUMP_FACTOR_PERCENT_MAX}, got {self.bump_factor_percent!r}"
            )


def next_fee_rate_sat_kvb(current_sat_kvb: int, bumps: int, policy: AnchorPolicy) -> int | None:
    """The fee rate of the next replacement, or None when no further bump is allowed
    (the cap is less than FEE_RATE_STEP_MIN_SAT_KVB away, or BUMPS_MAX replacements already).

    The last step lands exactly on the cap: a step that would stop short of it by less
    than the 1 sat/vB a replacement must add goes to the cap at once (2 -> 3 -> 4.5 ->
    7 for a cap of 7, not 6.75, from which no replacement is allowed and whose cap alert
    would never fire). So the bumps always end at the cap, and then ``fee_capped`` is raised.
    """
    cap = policy.fee_rate_max_sat_kvb
    if cap - current_sat_kvb < FEE_RATE_STEP_MIN_SAT_KVB or bumps >= BUMPS_MAX:
        return None
    scaled = -(-current_sat_kvb * policy.bump_factor_percent // 100)
    proposed = max(scaled, current_sat_kvb + FEE_RATE_STEP_MIN_SAT_KVB)
    return cap if cap - proposed < FEE_RATE_STEP_MIN_SAT_KVB else proposed


# --------------------------------------------------------------------------- record


@dataclass(frozen=True)
class AnchorRecord:
    """Everything the node persists about one anchor; ``txid`` is derived from ``raw_tx``.

    Hashes are in Bitcoin's internal byte order (proof.spv.hash_to_hex prints them).
    ``txid``/``raw_tx`` are the latest version (what a rebroadcast sends);
    ``replaced_txids`` the versions fee bumps replaced, oldest first;
    ``confirmed_txid`` the version that is in ``block_hash`` (usually ``txid``).
    """

    pantheon_block_hash: bytes
    state: AnchorState
    raw_tx: bytes
    fee_rate_sat_kvb: int
    fee_sat: int
    replaced_txids: tuple[bytes, ...] = ()
    broadcast_at_ms: int | None = None
    attempt_at_ms: int | None = None
    confirmed_txid: bytes | None = None
    block_hash: bytes | None = None
    block_height: int | None = None
    confirmations: int = 0
    fee_capped: bool = False
    last_error: str = ""
    rebroadcasts: int = 0
    reorgs: int = 0
    txid: bytes = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.pantheon_block_hash, bytes) or len(self.pantheon_block_hash) != BLOCK_HASH_SIZE:
            raise AnchorStateError(f"anchored Pantheon block hash must be {BLOCK_HASH_SIZE} bytes")
        if not isinstance(self.state, AnchorState):
            raise AnchorStateError(f"state must be an AnchorState, got {self.state!r:.80}")
        object.__setattr__(self, "txid", _anchor_txid(self.raw_tx, self.pantheon_block_hash))
        _check_uint(self.fee_rate_sat_kvb, "fee_rate_sat_kvb", FEE_RATE_SAT_KVB_MAX)
        _check_uint(self.fee_sat, "fee_sat", MONEY_MAX_SAT)
        if not isinstance(self.replaced_txids, tuple) or len(self.replaced_txids) > BUMPS_MAX:
            raise AnchorStateError(f"replaced_txids must be a tuple of at most {BUMPS_MAX} txids")
        for txid in self.replaced_txids:
            _check_hash(txid, "replaced txid")
        if len(set(self.replaced_txids) | {self.txid}) != len(self.replaced_txids) + 1:
            raise AnchorStateError("a txid appears twice among the current and replaced txids")
        for name in ("broadcast_at_ms", "attempt_at_ms"):
            if getattr(self, name) is not None:
                _check_uint(getattr(self, name), name, TIME_MS_MAX)
        _check_uint(self.confirmations, "confirmations", HEIGHT_MAX)
        if not isinstance(self.fee_capped, bool):
            raise AnchorStateError("fee_capped must be a bool")
        _check_text(self.last_error, "last_error")
        _check_uint(self.rebroadcasts, "rebroadcasts", COUNTER_MAX)
        _check_uint(self.reorgs, "reorgs", COUNTER_MAX)
        self._check_state_fields()

    def _check_state_fields(self) -> None:
        confirmed = self.state in (AnchorState.CONFIRMED, AnchorState.FINAL)
        if confirmed:
            _check_hash(self.confirmed_txid, "confirmed_txid")
            _check_hash(self.block_hash, "block_hash")
            _check_uint(self.block_height, "block_height", HEIGHT_MAX)
            if self.confirmed_txid not in self.txids:
                raise AnchorStateError("confirmed_txid is neither the current txid nor one it replaced")
            if self.confirmations < 1:
                raise AnchorStateError(f"a {self.state.value} anchor needs at least 1 confirmation")
        elif (self.confirmed_txid, self.block_hash, self.block_height, self.confirmations) != (None, None, None, 0):
            raise AnchorStateError(f"a {self.state.value} anchor has no block, confirmed txid or confirmations")
        if self.state is not AnchorState.BUILT and self.broadcast_at_ms is None:
            raise AnchorStateError(f"a {self.state.value} anchor needs broadcast_at_ms")

    @property
    def txids(self) -> tuple[bytes, ...]:
        """Every version, newest first: the order in which the driver looks for them."""
        return (self.txid, *reversed(self.replaced_txids))

    @property
    def alerts(self) -> tuple[str, ...]:
        """Alert kinds that are still standing, for status and metrics."""
        standing = []
        if self.fee_capped:
            standing.append(ALERT_FEE_CAPPED)
        if self.last_error:
            standing.append(ALERT_BROADCAST_FAILED)
        if self.state is AnchorState.DOUBLE_SPENT:
            standing.append(ALERT_DOUBLE_SPENT)
        return tuple(standing)

    def describe(self) -> str:
        text = f"anchor of {self.pantheon_block_hash.hex()} by {hash_to_hex(self.txid)}: {self.state.value}"
        if self.block_hash is not None:
            text += f" in block {hash_to_hex(self.block_hash)} at height {self.block_height}"
            text += f" ({self.confirmations} confirmations)"
        return text


def _anchor_txid(raw_tx: object, pantheon_block_hash: bytes) -> bytes:
    """The txid of ``raw_tx``, after checking it anchors ``pantheon_block_hash``: a
    record (or a bump) can never come to stand for another block's anchor."""
    if not isinstance(raw_tx, bytes) or not 0 < len(raw_tx) <= RAW_TX_SIZE_MAX:
        raise AnchorStateError(f"raw_tx must be 1..{RAW_TX_SIZE_MAX} bytes")
    try:
        tx = parse_transaction(raw_tx)
        scripts = [script for _, script in tx.op_return_outputs()]
        if len(scripts) != 1:
            raise AnchorStateError(f"raw_tx has {len(scripts)} OP_RETURN outputs, an anchor has exactly 1")
        anchored = decode_payload(scripts[0])
    except DecodeError as exc:
        raise AnchorStateError(f"raw_tx is not an anchor transaction: {exc}") from exc
    if anchored != pantheon_block_hash:
        raise AnchorStateError(f"raw_tx anchors {anchored.hex()}, the record is for {pantheon_block_hash.hex()}")
    return tx.txid


# --------------------------------------------------------------------------- events


def _check_now(now_ms: object) -> None:
    _check_uint(now_ms, "now_ms", TIME_MS_MAX)


@dataclass(frozen=True)
class Broadcasted:
    """bitcoind accepted ``txid`` (sendrawtransaction returned it)."""

    txid: bytes
    now_ms: int

    def __post_init__(self) -> None:
        _check_hash(self.txid, "Broadcasted.txid")
        _check_now(self.now_ms)


@dataclass(frozen=True)
class Bumped:
    """The wallet replaced the current version by ``raw_tx`` at ``fee_rate_sat_kvb``."""

    raw_tx: bytes
    fee_rate_sat_kvb: int
    fee_sat: int
    now_ms: int

    def __post_init__(self) -> None:
        if not isinstance(self.raw_tx, bytes) or not 0 < len(self.raw_tx) <= RAW_TX_SIZE_MAX:
            raise AnchorStateError(f"Bumped.raw_tx must be 1..{RAW_TX_SIZE_MAX} bytes")
        _check_uint(self.fee_rate_sat_kvb, "Bumped.fee_rate_sat_kvb", FEE_RATE_SAT_KVB_MAX)
        _check_uint(self.fee_sat, "Bumped.fee_sat", MONEY_MAX_SAT)
        _check_now(self.now_ms)


@dataclass(frozen=True)
class BroadcastFailed:
    """A Broadcast or BumpFee was refused (policy, funds, conflicts); ``reason`` says why."""

    reason: str
    now_ms: int

    def __post_init__(self) -> None:
        _check_text(self.reason, "BroadcastFailed.reason")
        if not self.reason:
            raise AnchorStateError("BroadcastFailed needs a reason")
        _check_now(self.now_ms)


@dataclass(frozen=True)
class Observed:
    """What bitcoind shows now. ``confirmed_txid`` is set when one of the record's txids
    is in ``block_hash`` and that block is on the best chain (``confirmations`` >= 1);
    ``in_mempool`` is about the current txid; ``conflict`` is about a transaction that is
    none of the record's versions and spends its inputs (only when neither holds)."""

    now_ms: int
    in_mempool: bool
    confirmed_txid: bytes | None = None
    block_hash: bytes | None = None
    block_height: int | None = None
    confirmations: int = 0
    conflict: Conflict = Conflict.NONE

    def __post_init__(self) -> None:
        _check_now(self.now_ms)
        if not isinstance(self.in_mempool, bool):
            raise AnchorStateError("Observed.in_mempool must be a bool")
        if not isinstance(self.conflict, Conflict):
            raise AnchorStateError(f"Observed.conflict must be a Conflict, got {self.conflict!r:.80}")
        if self.conflict is not Conflict.NONE and (self.in_mempool or self.confirmed_txid is not None):
            raise AnchorStateError("Observed with a conflict has the anchor neither in the mempool nor in a block")
        if self.confirmed_txid is None:
            if (self.block_hash, self.block_height, self.confirmations) != (None, None, 0):
                raise AnchorStateError("Observed without confirmed_txid carries no block or confirmations")
            return
        _check_hash(self.confirmed_txid, "Observed.confirmed_txid")
        _check_hash(self.block_hash, "Observed.block_hash")
        _check_uint(self.block_height, "Observed.block_height", HEIGHT_MAX)
        _check_uint(self.confirmations, "Observed.confirmations", HEIGHT_MAX)
        if self.confirmations < 1:
            raise AnchorStateError("Observed in a block needs at least 1 confirmation (a stale block is not observed)")


Event = Union[Broadcasted, Bumped, BroadcastFailed, Observed]


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Broadcast:
    """Send ``raw_tx`` (sendrawtransaction) and answer Broadcasted or BroadcastFailed."""

    txid: bytes
    raw_tx: bytes


@dataclass(frozen=True)
class BumpFee:
    """Replace ``txid`` at ``fee_rate_sat_kvb`` (wallet bumpfee) and answer Bumped or BroadcastFailed."""

    txid: bytes
    fee_rate_sat_kvb: int


@dataclass(frozen=True)
class Alert:
    """Something the operator should see (log, status, metrics); needs no answer."""

    kind: str
    detail: str

    def __post_init__(self) -> None:
        if self.kind not in ALERT_KINDS:
            raise AnchorStateError(f"unknown alert kind {self.kind!r}; known: {', '.join(sorted(ALERT_KINDS))}")


Action = Union[Broadcast, BumpFee, Alert]
Step = tuple[AnchorRecord, tuple[Action, ...]]


# --------------------------------------------------------------------------- transitions


def built(
    pantheon_block_hash: bytes, raw_tx: bytes, *, fee_rate_sat_kvb: int, fee_sat: int, now_ms: int
) -> Step:
    """The record of a freshly signed anchor, and its first Broadcast."""
    _check_now(now_ms)
    record = AnchorRecord(
        pantheon_block_hash=pantheon_block_hash,
        state=AnchorState.BUILT,
        raw_tx=raw_tx,
        fee_rate_sat_kvb=fee_rate_sat_kvb,
        fee_sat=fee_sat,
        attempt_at_ms=now_ms,
    )
    return record, (Broadcast(record.txid, record.raw_tx),)


def step(record: AnchorRecord, event: Event, policy: AnchorPolicy) -> Step:
    """Apply ``event``: the new record and the actions to carry out, in order."""
    allowed = TRANSITIONS[record.state].get(type(event))
    if allowed is None:
        raise IllegalTransition(record.state, event)
    new_record, actions = _HANDLERS[type(event)](record, event, policy)
    if new_record.state not in allowed:
        raise AssertionError(
            f"{type(event).__name__} took {record.state.value} to {new_record.state.value}, "
            f"outside the table ({', '.join(sorted(s.value for s in allowed))})"
        )
    return new_record, actions


def _attempt_allowed(record: AnchorRecord, now_ms: int, policy: AnchorPolicy) -> bool:
    """Rate limit on Broadcast/BumpFee. A clock that went backwards allows one attempt
    (and restarts the interval from the new time) rather than stalling the anchor."""
    if record.attempt_at_ms is None:
        return True
    return not 0 <= now_ms - record.attempt_at_ms < policy.attempt_interval_ms


def _on_broadcasted(record: AnchorRecord, event: Broadcasted, policy: AnchorPolicy) -> Step:
    if event.txid != record.txid:
        raise AnchorEventError(
            f"Broadcasted names {hash_to_hex(event.txid)}, but the anchor's current txid is {hash_to_hex(record.txid)}"
        )
    if record.state is AnchorState.BUILT:
        return replace(record, state=AnchorState.BROADCAST, broadcast_at_ms=event.now_ms, last_error=""), ()
    return replace(record, rebroadcasts=record.rebroadcasts + 1, last_error=""), ()


def _on_bumped(record: AnchorRecord, event: Bumped, policy: AnchorPolicy) -> Step:
    if len(record.replaced_txids) >= BUMPS_MAX:
        raise AnchorEventError(f"anchor was already replaced {BUMPS_MAX} times")
    if event.fee_rate_sat_kvb <= record.fee_rate_sat_kvb:
        raise AnchorEventError(
            f"replacement pays {event.fee_rate_sat_kvb} sat/kvB, not more than the {record.fee_rate_sat_kvb} "
            "sat/kvB it replaces"
        )
    try:
        bumped = replace(
            record,
            raw_tx=event.raw_tx,
            fee_rate_sat_kvb=event.fee_rate_sat_kvb,
            fee_sat=event.fee_sat,
            replaced_txids=(*record.replaced_txids, record.txid),
            broadcast_at_ms=event.now_ms,
            fee_capped=False,
            last_error="",
        )
    except AnchorStateError as exc:
        raise AnchorEventError(f"replacement does not fit the anchor: {exc}") from exc
    return bumped, ()


def _on_broadcast_failed(record: AnchorRecord, event: BroadcastFailed, policy: AnchorPolicy) -> Step:
    return replace(record, last_error=event.reason), (Alert(ALERT_BROADCAST_FAILED, event.reason),)


def _on_observed(record: AnchorRecord, event: Observed, policy: AnchorPolicy) -> Step:
    if event.confirmed_txid is not None:
        return _on_confirmed(record, event, policy)
    actions: list[Action] = []
    if record.state is AnchorState.CONFIRMED:
        assert record.block_hash is not None
        actions.append(
            Alert(
                ALERT_REORG,
                f"block {hash_to_hex(record.block_hash)} at height {record.block_height} left the best chain; "
                f"anchor {hash_to_hex(record.txid)} is pending again",
            )
        )
        record = replace(
            record,
            state=AnchorState.BROADCAST,
            confirmed_txid=None,
            block_hash=None,
            block_height=None,
            confirmations=0,
            reorgs=record.reorgs + 1,
            broadcast_at_ms=event.now_ms,
        )
    if event.conflict is Conflict.BLOCK:
        actions.append(
            Alert(
                ALERT_DOUBLE_SPENT,
                f"anchor {hash_to_hex(record.txid)}: another transaction spending its inputs is in a best-chain "
                "block, so it can never confirm; nothing more is sent for it, the checkpoint is anchored anew",
            )
        )
        double_spent = replace(
            record,
            state=AnchorState.DOUBLE_SPENT,
            broadcast_at_ms=event.now_ms if record.broadcast_at_ms is None else record.broadcast_at_ms,
            fee_capped=False,
            last_error="",
        )
        return double_spent, tuple(actions)
    if event.conflict is Conflict.MEMPOOL:
        reason = (
            f"anchor {hash_to_hex(record.txid)}: another transaction spending its inputs waits in the mempool; "
            "nothing is sent until it confirms or leaves"
        )
        if record.last_error != reason:
            actions.append(Alert(ALERT_CONFLICT, reason))
            record = replace(record, last_error=reason)
        return record, tuple(actions)
    if record.state is AnchorState.BUILT:
        if event.in_mempool:
            return replace(record, state=AnchorState.BROADCAST, broadcast_at_ms=event.now_ms, last_error=""), ()
        if not _attempt_allowed(record, event.now_ms, policy):
            return record, ()
        record = replace(record, attempt_at_ms=event.now_ms)
        return record, (Broadcast(record.txid, record.raw_tx),)
    record, pending_actions = _pending(record, event, policy)
    return record, (*actions, *pending_actions)


def _pending(record: AnchorRecord, event: Observed, policy: AnchorPolicy) -> Step:
    """BROADCAST and not in a block: bump when overdue, rebroadcast when evicted."""
    assert record.broadcast_at_ms is not None
    actions: list[Action] = []
    overdue = event.now_ms - record.broadcast_at_ms >= policy.bump_after_ms
    if overdue:
        new_rate = next_fee_rate_sat_kvb(record.fee_rate_sat_kvb, len(record.replaced_txids), policy)
        if new_rate is None:
            if not record.fee_capped:
                record = replace(record, fee_capped=True)
                actions.append(
                    Alert(
                        ALERT_FEE_CAPPED,
                        f"anchor {hash_to_hex(record.txid)} unconfirmed after {policy.bump_after_ms} ms at "
                        f"{record.fee_rate_sat_kvb} sat/kvB, which is the cap ({policy.fee_rate_max_sat_kvb} "
                        f"sat/kvB, {len(record.replaced_txids)} bumps): raise the cap or wait",
                    )
                )
        elif _attempt_allowed(record, event.now_ms, policy):
            record = replace(record, attempt_at_ms=event.now_ms, fee_capped=False)
            return record, (*actions, BumpFee(record.txid, new_rate))
    if not event.in_mempool and _attempt_allowed(record, event.now_ms, policy):
        record = replace(record, attempt_at_ms=event.now_ms)
        actions.append(
            Alert(ALERT_EVICTED, f"anchor {hash_to_hex(record.txid)} is neither in the mempool nor in a block")
        )
        actions.append(Broadcast(record.txid, record.raw_tx))
    return record, tuple(actions)


def _on_confirmed(record: AnchorRecord, event: Observed, policy: AnchorPolicy) -> Step:
    if event.confirmed_txid not in record.txids:
        raise AnchorEventError(
            f"observed {hash_to_hex(event.confirmed_txid or b'')} confirmed, which is not a version of "
            f"anchor {hash_to_hex(record.txid)}"
        )
    actions: tuple[Action, ...] = ()
    reorgs = record.reorgs
    if record.block_hash is not None and record.block_hash != event.block_hash:
        assert event.block_hash is not None
        reorgs += 1
        actions = (
            Alert(
                ALERT_REORG,
                f"anchor {hash_to_hex(record.txid)} moved from block {hash_to_hex(record.block_hash)} to "
                f"{hash_to_hex(event.block_hash)}",
            ),
        )
    state = AnchorState.FINAL if event.confirmations >= policy.final_depth else AnchorState.CONFIRMED
    confirmed = replace(
        record,
        state=state,
        confirmed_txid=event.confirmed_txid,
        block_hash=event.block_hash,
        block_height=event.block_height,
        confirmations=event.confirmations,
        broadcast_at_ms=record.broadcast_at_ms if record.broadcast_at_ms is not None else event.now_ms,
        fee_capped=False,
        last_error="",
        reorgs=reorgs,
    )
    return confirmed, actions


_S = AnchorState
# state -> event type -> the states that event may lead to. Missing: IllegalTransition.
TRANSITIONS: dict[AnchorState, dict[type, frozenset[AnchorState]]] = {
    _S.BUILT: {
        Broadcasted: frozenset({_S.BROADCAST}),
        BroadcastFailed: frozenset({_S.BUILT}),
        Observed: frozenset({_S.BUILT, _S.BROADCAST, _S.CONFIRMED, _S.FINAL, _S.DOUBLE_SPENT}),
    },
    _S.BROADCAST: {
        Broadcasted: frozenset({_S.BROADCAST}),
        Bumped: frozenset({_S.BROADCAST}),
        BroadcastFailed: frozenset({_S.BROADCAST}),
        Observed: frozenset({_S.BROADCAST, _S.CONFIRMED, _S.FINAL, _S.DOUBLE_SPENT}),
    },
    _S.CONFIRMED: {
        Observed: frozenset({_S.BROADCAST, _S.CONFIRMED, _S.FINAL, _S.DOUBLE_SPENT}),
    },
    _S.FINAL: {},
    _S.DOUBLE_SPENT: {},
}

_HANDLERS: dict[type, Callable[[Any, Any, AnchorPolicy], Step]] = {
    Broadcasted: _on_broadcasted,
    Bumped: _on_bumped,
    BroadcastFailed: _on_broadcast_failed,
    Observed: _on_observed,
}


# --------------------------------------------------------------------------- encoding

_REQUIRED_KEYS = frozenset(
    {"v", "blk", "st", "raw", "fee", "fsat", "old", "sent", "try", "ctx", "bb", "bh", "conf", "cap", "err", "rb", "ro"}
)


def encode_record(record: AnchorRecord) -> bytes:
    """Canonical CBOR of ``record``; ``txid`` is not stored (it is derived from raw_tx)."""
    return cbor.encode(
        {
            "v": RECORD_VERSION,
            "blk": record.pantheon_block_hash,
            "st": record.state.value,
            "raw": record.raw_tx,
            "fee": record.fee_rate_sat_kvb,
            "fsat": record.fee_sat,
            "old": list(record.replaced_txids),
            "sent": record.broadcast_at_ms,
            "try": record.attempt_at_ms,
            "ctx": record.confirmed_txid,
            "bb": record.block_hash,
            "bh": record.block_height,
            "conf": record.confirmations,
            "cap": record.fee_capped,
            "err": record.last_error,
            "rb": record.rebroadcasts,
            "ro": record.reorgs,
        }
    )


def _hash32(value: Any, what: str) -> bytes:
    return cbor.expect_bytes(value, what, size=HASH_SIZE)


def _time_ms(value: Any, what: str) -> int:
    return cbor.expect_uint(value, what, max_value=TIME_MS_MAX)


def _height(value: Any, what: str) -> int:
    return cbor.expect_uint(value, what, max_value=HEIGHT_MAX)


def _optional(value: Any, what: str, read: Callable[[Any, str], Any]) -> Any:
    return None if value is None else read(value, what)


def decode_record(data: bytes) -> AnchorRecord:
    """Strict inverse of encode_record: anything else is a DecodeError naming the field."""
    fields = cbor.expect_map(cbor.decode(data, max_size=RECORD_SIZE_MAX), "anchor record", _REQUIRED_KEYS)
    version = cbor.expect_uint(fields["v"], "anchor record version")
    if version != RECORD_VERSION:
        raise DecodeError(f"anchor record version {version}, this software reads {RECORD_VERSION}")
    state_text = cbor.expect_text(fields["st"], "anchor record state", max_size=16)
    try:
        state = AnchorState(state_text)
    except ValueError:
        known = ", ".join(s.value for s in AnchorState)
        raise DecodeError(f"anchor record state {state_text!r} is not one of {known}") from None
    try:
        return AnchorRecord(
            pantheon_block_hash=cbor.expect_bytes(fields["blk"], "anchored block hash", size=BLOCK_HASH_SIZE),
            state=state,
            raw_tx=cbor.expect_bytes(fields["raw"], "anchor raw_tx", max_size=RAW_TX_SIZE_MAX),
            fee_rate_sat_kvb=cbor.expect_uint(fields["fee"], "fee rate", max_value=FEE_RATE_SAT_KVB_MAX),
            fee_sat=cbor.expect_uint(fields["fsat"], "fee", max_value=MONEY_MAX_SAT),
            replaced_txids=tuple(
                _hash32(txid, "replaced txid")
                for txid in cbor.expect_list(fields["old"], "replaced txids", max_items=BUMPS_MAX)
            ),
            broadcast_at_ms=_optional(fields["sent"], "broadcast_at_ms", _time_ms),
            attempt_at_ms=_optional(fields["try"], "attempt_at_ms", _time_ms),
            confirmed_txid=_optional(fields["ctx"], "confirmed txid", _hash32),
            block_hash=_optional(fields["bb"], "Bitcoin block hash", _hash32),
            block_height=_optional(fields["bh"], "Bitcoin block height", _height),
            confirmations=_height(fields["conf"], "confirmations"),
            fee_capped=cbor.expect_bool(fields["cap"], "fee_capped"),
            last_error=cbor.expect_text(fields["err"], "last_error", max_size=ERROR_TEXT_MAX_BYTES),
            rebroadcasts=cbor.expect_uint(fields["rb"], "rebroadcasts", max_value=COUNTER_MAX),
            reorgs=cbor.expect_uint(fields["ro"], "reorgs", max_value=COUNTER_MAX),
        )
    except AnchorStateError as exc:
        raise DecodeError(f"anchor record is inconsistent: {exc}") from exc
