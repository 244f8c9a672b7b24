"""The node's anchoring task: who anchors which block, when, and how the chain learns of it.

Theory of operation
===================

Which block is due (``due_checkpoint``) is a function of the finalized chain only, so
every validator computes the same answer. Let A be the highest Pantheon height whose
anchor some finalized block has recorded (0 at first). The due checkpoint is the first
finalized height h > A whose block added roots since A (an idle chain needs no new
anchor) and that is either K = genesis.anchor_every_blocks blocks past A or
T = genesis.anchor_every_ms past A's timestamp (block timestamps are agreed by
consensus, so T is measured on the chain). An idle chain adds no blocks, so the
last roots before a pause would never see a block K later or T later: once T has
passed on the validator's own clock, the first block with new roots is due as well
(clocks only decide *when*, within their skew; the duty rotation below is unchanged).

Duty: validator ``(count + attempt) % n`` anchors it (its finalized tip, at or above
the due block, so that one anchor covers everything finalized meanwhile), where ``count`` is the number of
heights recorded so far (it rotates the duty from one checkpoint to the next) and
``attempt`` is how many [bitcoin] fallback_ms periods have passed since the due
block's timestamp. A validator starts an anchor only in the first half of its turn, so
that the anchor has the second half to get into a block every validator has read
before the next turn begins. So if the designated validator is down, or its bitcoind is, or
its anchor is stuck, the next validator in rotation takes over once the deadline
passes, and so on round the validator set. A validator never builds two anchors for
one height, across crashes too: the record with its signed transaction is persisted
before the first broadcast, and at start the wallet's anchors with no record are
adopted (``_reconcile_wallet``). Two validators may anchor the same height after a
fallback, which is harmless (either record covers it), and rare: every validator
reads new Bitcoin blocks for anchors while a checkpoint is due (anchor.scan), offers
what it sees, and does not fall back while an anchor of the due block is in a block.
When the highest recorded anchor is lost (in no best-chain block and not in the
mempool for LOST_AFTER_MS, e.g. double-spent), its block is due again at once.

Validators learn of each other's anchors through the chain: the validator that
broadcast an anchor offers its AnchorRef (txid, vout, anchored block, Bitcoin block
and height) to its own block proposals once the transaction is confirmed
(``refs_to_propose``); every validator checks each AnchorRef of a proposal against
its own bitcoind before voting (``check_refs``); the finalized block records it
(storage.anchor_store, in the block's own batch), which moves A on. A Bitcoin reorg
that moves the anchor to another block makes its broadcaster offer a new AnchorRef
for the same height, which replaces the recorded one.

Every validator then follows the recorded anchors with its own bitcoind: a recorded
anchor whose Bitcoin block is on the best chain becomes an AnchoredCheckpoint (SPV
material extracted and checked), one whose block left the best chain loses it until
it is found again in any block above the fork. The best chain's headers are cached
(one walk back from the tip per tick, to the first cached header that still matches),
and every recorded anchor less than REORG_DEPTH_MAX deep is compared with them on
every tick, so a reorg of any depth up to that bound is followed; a deeper one raises
the reorg_too_deep alert.

Failures: a bitcoind that is down, slow, on another network, has an empty wallet or
answers nonsense never stops the chain. Every answer is read through BitcoindRPC's
typed calls (anchor.replies), so a malformed one is a BitcoindReplyInvalid like any
other error of the BitcoindError family, never a KeyError or TypeError in a tick.
Each tick runs in a worker thread; its error is logged (at once when its kind changes,
then at most once per ERROR_LOG_INTERVAL_MS with a repeat count), shown in status and
health (``bitcoind_ok``, ``bitcoind_error_kind``, counts by kind) and in metrics, and
the next tick tries again, so anchoring resumes by itself once bitcoind is healthy.
While bitcoind is not healthy no anchor is offered to a proposal, and a proposal's
anchors that cannot be checked get no vote from this validator (``check_refs`` raises
a BitcoindError, which the runtime catches). Nothing is lost: the lifecycle records
are in the store and the due checkpoint is recomputed from the chain.
"""

from __future__ import annotations

import logging
import os
from collections import deque
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from anchor.payload import decode_payload
from anchor.scan import anchors_in_block
from anchor.rpc import (
    BitcoindAuthError,
    BitcoindError,
    BitcoindReplyInvalid,
    BitcoindRPC,
    BitcoindRPCError,
    BitcoindUnavailable,
    BitcoindWrongNetwork,
    WalletEmptyError,
)
from anchor.spv import SpvMaterialError, extract_spv_material
from anchor.state import Alert, AnchorRecord, AnchorState, AnchorStateError, decode_record, encode_record
from anchor.tracker import AnchorTracker
from anchor.tx import SAT_PER_BTC, AnchorTxError, vsize_of
from node.config import BitcoinSection
from node.logs import event
from proof.chain import ANCHORS_PER_BLOCK_MAX, AnchorRef, BlockHeader, Genesis
from proof.errors import DecodeError, PantheonError
from proof.hashing import sha256d
from proof.spv import hash_to_hex, parse_transaction
from storage.anchor_store import HEADERS_AFTER_MAX, AnchoredCheckpoint, AnchorStore, RecordedAnchor
from storage.chain_store import ChainStore

log = logging.getLogger("pantheon.anchoring")

# Own anchors in flight (not final, or final but not yet recorded) before new ones wait.
OWN_ACTIVE_MAX = 64
# Recorded anchors followed per tick (a cached-header comparison each; RPCs only for
# those whose block left the best chain).
FOLLOW_PER_TICK_MAX = 1024
# The deepest Bitcoin reorg followed: a day of blocks, the size of the header cache.
# Every recorded anchor less deep than this is checked against the best chain on every
# tick; a reorg deeper than this raises the reorg_too_deep alert.
REORG_DEPTH_MAX = HEADERS_AFTER_MAX
# Blocks fetched per tick (getblock) while looking for a re-mined anchor.
SCAN_BLOCKS_PER_TICK = 32
UNPLACED_MAX = 64
# A leader offers its confirmed anchors only if bitcoind answered this recently.
REFS_FRESH_MS = 3 * 1000
ALERT_REORG_TOO_DEEP = "reorg_too_deep"
# A recorded anchor counts as lost (its checkpoint due again) once it has been neither in a
# best-chain block nor in the mempool this long: while bitcoind disconnects blocks in a
# reorg, their transactions are briefly in neither, and that must not start a new anchor.
LOST_AFTER_MS = 10_000
ALERT_LOST = "lost"
"""A recorded anchor whose transaction this validator's bitcoind has in no best-chain block and
not in its mempool for LOST_AFTER_MS (a reorg dropped its block and the transaction with it).
The highest recorded one makes its block due again; an older one is covered by the later
anchors, whose checkpoints commit to the whole log."""
# The same kind of anchoring error is logged at most this often (with a count of repeats).
ERROR_LOG_INTERVAL_MS = 60 * 1000
# Error kind of anchoring failures that are not bitcoind's (see BitcoindError.kind for those).
KIND_ANCHORING = "anchoring"
# The fee budget's window (bitcoin.fee_budget_sat_per_day).
DAY_MS = 24 * 3600 * 1000
# Virtual size assumed for a new anchor when checking the budget before it is funded (one
# or two wallet inputs, change and the OP_RETURN are 150-220 vB); its real fee counts after.
ANCHOR_VSIZE_ESTIMATE = 250
ALERT_FEE_BUDGET = "fee_budget"
# Most recent wallet transaction entries compared with the records at start (reconciliation).
RECONCILE_WALLET_TXS_MAX = 1000
# Fault injection for the restart tests: when this names a file that exists at the moment
# bitcoind accepts one of our transactions, the file is removed and the process SIGKILLs
# itself, the worst moment for a crash (the transaction is out, nothing says so yet).
FAULT_KILL_AFTER_SEND_ENV = "PANTHEON_FAULT_KILL_AFTER_SEND"


class AnchoringError(PantheonError):
    """The node's anchoring cannot be set up as configured."""


class AnchorRefInvalid(PantheonError):
    """A proposal's AnchorRef that this validator's bitcoind contradicts."""


def rpc_from_config(config: BitcoinSection, resolve: Callable[[str], Path], *, timeout_ms: int) -> BitcoindRPC:
    parts = urlsplit(config.rpc_url)
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        raise AnchoringError(f"bitcoin.rpc_url {config.rpc_url!r} must look like http://127.0.0.1:18443")
    if config.rpc_cookie_file:
        credentials: dict[str, Any] = {"cookie_path": resolve(config.rpc_cookie_file)}
    elif config.rpc_user:
        credentials = {"user": config.rpc_user, "password": config.rpc_password}
    else:
        raise AnchoringError("[bitcoin] needs rpc_cookie_file, or rpc_user and rpc_password")
    return BitcoindRPC(
        parts.port, host=parts.hostname, wallet=config.wallet, timeout_s=timeout_ms / 1000, **credentials
    )


# --------------------------------------------------------------------------- duty (pure over the stores)


@dataclass(frozen=True)
class DueCheckpoint:
    header: BlockHeader
    due_at_ms: int
    """When it became due: its timestamp, or A's timestamp + T when due by the clock."""


def due_checkpoint(
    genesis: Genesis, chain: ChainStore, anchors: AnchorStore, now_ms: int, lost: frozenset[int] = frozenset()
) -> DueCheckpoint | None:
    """The finalized block whose anchor is due now, or None (see the module docstring).

    ``lost`` holds recorded heights whose anchor this validator's bitcoind has neither in
    a best-chain block nor in its mempool (double-spent, or evicted and not resent). When
    the highest recorded anchor is lost, nothing covers its block any more: that block is
    due again at once, even on an idle chain that adds no block to count from."""
    last, _count = anchors.recorded_summary()
    if last in lost:
        lost_header = _header(chain, last)
        return DueCheckpoint(lost_header, lost_header.timestamp_ms)
    tip = chain.tip_height
    if tip <= last:
        return None
    base = chain.header_at(last) if last else None
    base_size = base.log_size if base else 0
    base_ms = base.timestamp_ms if base else genesis.created_at_ms
    tip_header = chain.tip_header
    if tip_header is None or tip_header.log_size <= base_size:
        return None
    low, high = last + 1, tip
    while low < high:
        middle = (low + high) // 2
        if _header(chain, middle).log_size > base_size:
            high = middle
        else:
            low = middle + 1
    every_blocks = max(genesis.anchor_every_blocks, 1)
    for height in range(low, min(last + every_blocks, tip) + 1):
        header = _header(chain, height)
        if height - last >= every_blocks or header.timestamp_ms - base_ms >= genesis.anchor_every_ms:
            return DueCheckpoint(header, header.timestamp_ms)
    first = _header(chain, low)
    if low - last >= every_blocks:
        return DueCheckpoint(first, first.timestamp_ms)
    if now_ms - base_ms >= genesis.anchor_every_ms:
        return DueCheckpoint(first, max(first.timestamp_ms, base_ms + genesis.anchor_every_ms))
    return None


def _header(chain: ChainStore, height: int) -> BlockHeader:
    header = chain.header_at(height)
    if header is None:
        raise AnchoringError(f"finalized header {height} is missing below the tip {chain.tip_height}")
    return header


def on_duty(count: int, due_timestamp_ms: int, now_ms: int, fallback_ms: int, n: int) -> int | None:
    """The validator whose turn it is to anchor the due block now, or None in the second half
    of a turn: an anchor built then could not be in a block that the others have seen before
    the next validator's turn, which would then anchor the checkpoint a second time."""
    window = max(fallback_ms, 1)
    elapsed = max(0, now_ms - due_timestamp_ms)
    if elapsed % window >= window - window // 2:
        return None
    return (count + elapsed // window) % n


# --------------------------------------------------------------------------- status


@dataclass
class AnchoringStatus:
    """What status, health and metrics show; written by the worker thread, read by the API."""

    network: str
    bitcoind_ok: bool = False
    wallet_empty: bool = False
    last_error: str = ""
    last_contact_ms: int = 0
    btc_height: int | None = None
    last_txid: str | None = None
    alerts: list[str] = field(default_factory=list)
    error_kind: str = ""
    """Kind of the last tick's error (BitcoindError.kind, or "anchoring"); "" when it went through."""
    budget_wait_ms: int = 0
    """How long the fee budget keeps the due checkpoint from being anchored (0: it does not)."""
    errors_total: dict[str, int] = field(default_factory=dict)
    """Errors since start by kind, ticks and anchor checks; replaced, never mutated, so a
    reader in another thread always sees one consistent mapping."""

    def as_json(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "bitcoind_ok": self.bitcoind_ok,
            "wallet_empty": self.wallet_empty,
            "last_error": self.last_error,
            "btc_height": self.btc_height,
            "last_txid": self.last_txid,
            "alerts": list(self.alerts),
            "bitcoind_error_kind": self.error_kind,
            "bitcoind_errors": dict(self.errors_total),
            "budget_wait_ms": self.budget_wait_ms,
        }


# --------------------------------------------------------------------------- the task


class Anchorer:
    """One validator's anchoring. ``tick`` is blocking (run it in a worker thread);
    ``refs_to_propose`` and the status are cheap reads for the trio thread."""

    def __init__(
        self,
        *,
        genesis: Genesis,
        index: int,
        config: BitcoinSection,
        resolve: Callable[[str], Path],
        anchors: AnchorStore,
        chain: ChainStore,
    ) -> None:
        self.genesis = genesis
        self.index = index
        self.config = config
        self.network = config.network  # bitcoind's own chain names, as in bundles and `verify --require-network`
        self.anchors = anchors
        self.chain = chain
        self.rpc = rpc_from_config(config, resolve, timeout_ms=config.rpc_timeout_ms)
        self.check_rpc = rpc_from_config(config, resolve, timeout_ms=config.check_timeout_ms)
        self.tracker = AnchorTracker(
            self.rpc,
            network=self.network,
            fee_rate_sat_vb=config.fee_rate_sat_vb,
            fee_rate_max_sat_vb=config.fee_rate_max_sat_vb,
            bump_after_ms=config.bump_after_ms,
            final_depth=max(genesis.anchor_final_depth, 1),
            attempt_interval_ms=max(config.poll_interval_ms, 1000),
            on_alert=self._on_alert,
            on_sent=_kill_after_send_hook(os.environ.get(FAULT_KILL_AFTER_SEND_ENV, "")),
        )
        self.status = AnchoringStatus(network=self.network)
        self._lock = threading.Lock()
        self._ready: tuple[tuple[int, AnchorRef], ...] = ()
        self._active: dict[int, AnchorRecord] = {}
        for height, raw in anchors.own_records(count_max=10**6):
            record = decode_record(raw)
            if not self._settled(height, record):
                self._active[height] = record
            self.status.last_txid = hash_to_hex(record.txid)
        self._follow_floor = 0
        self._tip_height = 0
        """Height of the best chain's tip the header cache ends at (``_sync_headers``)."""
        self._scan_from: int | None = None
        """Lowest Bitcoin height where the chain changed under a followed anchor (see _find_remined)."""
        self._block_txids: dict[bytes, frozenset[bytes]] = {}
        self._standing_alerts: frozenset[str] = frozenset()
        self._budget_logged_ms = 0
        self._lost: frozenset[int] = frozenset()
        """Recorded heights whose anchor is neither in a best-chain block nor in the mempool."""
        self._missing_since_ms: dict[int, int] = {}
        self._unscanned: deque[tuple[int, bytes]] = deque(maxlen=REORG_DEPTH_MAX)
        """New best-chain blocks (height, hash) not yet scanned for anchors (anchor.scan)."""
        self._headers_synced = False
        self._seen: dict[int, AnchorRef] = {}
        """Anchors seen in best-chain blocks, by anchored height, whoever broadcast them."""
        self._unplaced: dict[bytes, AnchorRef] = {}
        """Anchors seen in best-chain blocks of Pantheon blocks this validator has not applied
        yet (another validator's tip may be a block ahead), by anchored block hash; looked
        up again each tick, at most UNPLACED_MAX."""
        self._reconciled = False
        self._record_error_logged_ms: dict[int, int] = {}
        self._logged_kind = ""
        self._logged_at_ms = 0
        self._repeats = 0

    # ---- one tick (worker thread) -------------------------------------------------

    def tick(self, now_ms: int) -> None:
        """Ask bitcoind about everything in flight, anchor the due block if on duty."""
        try:
            self.status.btc_height = self.rpc.chain_info(self.network).blocks
            if not self._reconciled:
                self._reconcile_wallet(now_ms)
                self._reconciled = True
            own = self._poll_own(now_ms)
            moved = self._follow_recorded(now_ms)
            due = due_checkpoint(self.genesis, self.chain, self.anchors, now_ms, self._lost)
            seen = self._scan_for_anchors(due)
            # One ref per anchored height (a proposal may not carry two anchors of one block).
            ready = dict(reversed([*own, *moved, *seen]))
            self._ready = tuple(sorted(ready.items()))[:ANCHORS_PER_BLOCK_MAX]
            self._anchor_if_on_duty(due, now_ms)
        except WalletEmptyError as exc:
            self._failed(exc, now_ms, reachable=True, wallet_empty=True)
            return
        except (BitcoindUnavailable, BitcoindAuthError, BitcoindReplyInvalid, BitcoindWrongNetwork) as exc:
            self._ready = ()
            self._failed(exc, now_ms, reachable=False)
            return
        except (BitcoindRPCError, AnchorTxError, AnchorStateError, SpvMaterialError, AnchoringError, DecodeError) as exc:
            self._failed(exc, now_ms, reachable=True)
            return
        if not self.status.bitcoind_ok or self.status.last_error:
            event(log, logging.INFO, "bitcoind reachable, anchoring running", bitcoind=self.rpc.address,
                  btc_height=self.status.btc_height)
        self._logged_kind = ""
        self._repeats = 0
        self.status.bitcoind_ok = True
        self.status.wallet_empty = False
        self.status.last_error = ""
        self.status.error_kind = ""
        self.status.last_contact_ms = now_ms
        self.status.alerts = sorted(
            {alert for r in self._active.values() for alert in r.alerts} | self._standing_alerts
        )

    def _failed(self, exc: PantheonError, now_ms: int, *, reachable: bool, wallet_empty: bool = False) -> None:
        """Show the error in status and count it; log it when its kind changes, else at most
        once per ERROR_LOG_INTERVAL_MS, so a bitcoind failing every tick cannot flood the log."""
        kind = _kind_of(exc)
        self._count_error(kind)
        if kind != self._logged_kind or now_ms - self._logged_at_ms >= ERROR_LOG_INTERVAL_MS:
            event(log, logging.WARNING, "anchoring paused, the chain keeps finalizing", kind=kind,
                  repeats=self._repeats, error=str(exc)[:300])
            self._logged_kind, self._logged_at_ms, self._repeats = kind, now_ms, 0
        else:
            self._repeats += 1
        self.status.last_error = str(exc)[:500]
        self.status.error_kind = kind
        self.status.wallet_empty = wallet_empty
        self.status.bitcoind_ok = reachable
        if reachable:
            self.status.last_contact_ms = now_ms

    def _count_error(self, kind: str) -> None:
        with self._lock:
            errors = self.status.errors_total
            self.status.errors_total = {**errors, kind: errors.get(kind, 0) + 1}

    def _on_alert(self, alert: Alert) -> None:
        event(log, logging.WARNING, "anchor alert", kind=alert.kind, detail=alert.detail[:300])

    # ---- own anchors ----------------------------------------------------------------

    def _settled(self, height: int, record: AnchorRecord) -> bool:
        """Final and recorded in the chain (by us or by someone else), or double-spent
        (it can never confirm; the checkpoint is anchored anew): nothing left to do."""
        if record.state is AnchorState.DOUBLE_SPENT:
            return True
        recorded = self.anchors.recorded(height)
        return record.state is AnchorState.FINAL and recorded is not None

    def _reconcile_wallet(self, now_ms: int) -> None:
        """Adopt every anchor of a finalized block that the wallet sent and no record knows.

        Records are persisted before their first broadcast, so this finds something only
        when the store lost records the wallet did not (a data directory restored from a
        backup older than the wallet): the wallet's anchor is then tracked like any other,
        never built and paid for a second time. Conflicted and replaced transactions are
        skipped (they never confirm); a transaction anchoring another chain's block, or
        anything that is not an anchor, is left alone. Runs once, at the first tick that
        reaches bitcoind, over the wallet's RECONCILE_WALLET_TXS_MAX latest entries.
        """
        known: set[bytes] = set()
        for _height, raw in self.anchors.own_records(count_max=10**6):
            known.update(decode_record(raw).txids)
        for txid in self.rpc.wallet_txids(RECONCILE_WALLET_TXS_MAX):
            if txid in known:
                continue
            wallet_tx = self.rpc.wallet_tx(txid)
            if wallet_tx is None or wallet_tx.confirmations < 0 or wallet_tx.replaced_by is not None:
                continue
            anchored = _anchored_block_of(wallet_tx.raw_tx)
            height = None if anchored is None else self.chain.height_of(anchored)
            if anchored is None or height is None or self.anchors.own(height) is not None:
                continue
            record = self.tracker.adopt(wallet_tx, anchored, now_ms)
            self.anchors.put_own(height, encode_record(record))
            self._active[height] = record
            known.update(record.txids)
            event(log, logging.WARNING, "anchor adopted from the wallet: it had no record", height=height,
                  txid=hash_to_hex(record.txid), fee_sat=record.fee_sat)

    def _poll_own(self, now_ms: int) -> list[tuple[int, AnchorRef]]:
        """Move own anchors along; the AnchorRefs of those confirmed and not yet recorded."""
        ready: list[tuple[int, AnchorRef]] = []
        spends = self._spends_last_day(now_ms) if self.config.fee_budget_sat_per_day else {}
        for height in sorted(self._active):
            record = self._active[height]
            try:
                polled = self.tracker.poll(record, now_ms, self._budget_cap_sat_kvb(height, record, spends))
            except (BitcoindRPCError, AnchorTxError, AnchorStateError, DecodeError) as exc:
                self._record_failed(height, record, exc, now_ms)
                continue
            if polled != record:
                self.anchors.put_own(height, encode_record(polled))
                if polled.state != record.state:
                    event(log, logging.INFO, "anchor " + polled.state.value, height=height,
                          txid=hash_to_hex(polled.txid), btc_height=polled.block_height,
                          confirmations=polled.confirmations)
                self._active[height] = polled
            ref = self._ref_to_offer(height, polled)
            if ref is not None:
                ready.append((height, ref))
            if self._settled(height, polled):
                del self._active[height]
        self._record_error_logged_ms = {h: t for h, t in self._record_error_logged_ms.items() if h in self._active}
        return ready

    def _record_failed(self, height: int, record: AnchorRecord, exc: PantheonError, now_ms: int) -> None:
        """One record's trouble (a wallet answer that contradicts it, say) is that record's
        alone: it is counted and logged (at most once per ERROR_LOG_INTERVAL_MS per height)
        and the tick goes on with the other records and the anchoring duty. A bitcoind
        that cannot answer at all still ends the tick (BitcoindUnavailable and kin)."""
        self._count_error(_kind_of(exc))
        logged_ms = self._record_error_logged_ms.get(height)
        if logged_ms is None or now_ms - logged_ms >= ERROR_LOG_INTERVAL_MS:
            self._record_error_logged_ms[height] = now_ms
            event(log, logging.WARNING, "anchor record not moved on this tick", height=height,
                  txid=hash_to_hex(record.txid), error=str(exc)[:300])

    def _ref_to_offer(self, height: int, record: AnchorRecord) -> AnchorRef | None:
        """The AnchorRef of a confirmed own anchor that the chain has not recorded as it is now."""
        if record.state not in (AnchorState.CONFIRMED, AnchorState.FINAL):
            return None
        assert record.confirmed_txid is not None and record.block_hash is not None
        assert record.block_height is not None
        recorded = self.anchors.recorded(height)
        if recorded is not None:
            if recorded.ref.txid not in record.txids and height not in self._lost:
                return None
            if recorded.ref.txid == record.confirmed_txid and recorded.ref.btc_block_hash == record.block_hash:
                return None
        if record.confirmed_txid == record.txid:
            raw_tx = record.raw_tx
        else:
            raw_tx = self.rpc.raw_transaction(record.confirmed_txid, record.block_hash)
        vout = _anchor_vout(raw_tx, record.pantheon_block_hash)
        return AnchorRef(
            txid=record.confirmed_txid,
            vout=vout,
            anchored_block_hash=record.pantheon_block_hash,
            btc_block_hash=record.block_hash,
            btc_height=record.block_height,
        )

    def _anchor_if_on_duty(self, due: DueCheckpoint | None, now_ms: int) -> None:
        """Anchor our finalized tip if an anchor is due and it is our turn.

        The due block decides *whether* and *whose turn* (the same for every validator);
        what is anchored is the validator's finalized tip, at or above the due block, so
        one anchor covers every block finalized while the previous one was in flight and
        anchoring never falls behind a fast chain. An anchor of the due block or above
        already seen in a best-chain block (``_seen``, whoever sent it) is waited for: it
        is offered to the next proposal, so no fallback anchors the checkpoint again.
        """
        if due is None or any(height >= due.header.height for height in [*self._active, *self._seen]):
            return
        _last, count = self.anchors.recorded_summary()
        if on_duty(count, due.due_at_ms, now_ms, self.config.fallback_ms, self.genesis.n) != self.index:
            return
        if len(self._active) >= OWN_ACTIVE_MAX:
            raise AnchoringError(f"{OWN_ACTIVE_MAX} own anchors are still in flight; not starting another")
        target = self.chain.tip_header
        if target is None:
            return
        existing = self.anchors.own(target.height)
        if existing is not None and decode_record(existing).state is not AnchorState.DOUBLE_SPENT:
            return
        fee_rate_sat_kvb = self._new_anchor_fee_rate_sat_kvb()
        if self._over_budget(fee_rate_sat_kvb * ANCHOR_VSIZE_ESTIMATE // 1000, due, now_ms):
            return
        record = self.tracker.build(target.hash, now_ms, fee_rate_sat_kvb)
        self.anchors.put_own(target.height, encode_record(record))
        self._active[target.height] = record
        record = self.tracker.send(record, now_ms)
        self.anchors.put_own(target.height, encode_record(record))
        self._active[target.height] = record
        self.status.last_txid = hash_to_hex(record.txid)
        event(log, logging.INFO, "anchor built", height=target.height, due=due.header.height, block=target.hash.hex()[:16],
              txid=hash_to_hex(record.txid), state=record.state.value, error=record.last_error[:200])

    def _new_anchor_fee_rate_sat_kvb(self) -> int:
        """bitcoind's estimatesmartfee for bitcoin.fee_estimate_blocks, within
        [fee_rate_sat_vb, fee_rate_max_sat_vb]; fee_rate_sat_vb when estimation is off or
        bitcoind has too little data to estimate."""
        policy = self.tracker.policy
        if self.config.fee_estimate_blocks == 0:
            return policy.fee_rate_sat_kvb
        estimate = self.rpc.fee_estimate(self.config.fee_estimate_blocks).fee_rate_btc_kvb
        if estimate is None:
            return policy.fee_rate_sat_kvb
        estimated_sat_kvb = int(estimate * SAT_PER_BTC)
        return min(max(estimated_sat_kvb, policy.fee_rate_sat_kvb), policy.fee_rate_max_sat_kvb)

    def _over_budget(self, fee_sat: int, due: DueCheckpoint, now_ms: int) -> bool:
        """Whether a new anchor paying about ``fee_sat`` would take this validator's fees of
        the last 24 hours past bitcoin.fee_budget_sat_per_day. If so, the fee_budget alert
        stands, with how long until older spends leave the window (the time to anchor it
        causes, in status as ``budget_wait_ms``), and is logged at most once per
        ERROR_LOG_INTERVAL_MS. Each record counts its current fee (bumps included) at its
        last broadcast; a double-spent one never paid. Bumps are held to the budget too
        (``_budget_cap_sat_kvb``)."""
        budget = self.config.fee_budget_sat_per_day
        wait_ms = 0
        if budget:
            spends = sorted(self._spends_last_day(now_ms).values())
            total = sum(fee for _at, fee in spends)
            for spent_at_ms, fee in sorted(spends):
                if total + fee_sat <= budget:
                    break
                total -= fee
                wait_ms = spent_at_ms + DAY_MS - now_ms
            if total + fee_sat > budget:
                wait_ms = DAY_MS
        self.status.budget_wait_ms = wait_ms
        if not wait_ms:
            self._standing_alerts = self._standing_alerts - {ALERT_FEE_BUDGET}
            return False
        if ALERT_FEE_BUDGET not in self._standing_alerts or now_ms - self._budget_logged_ms >= ERROR_LOG_INTERVAL_MS:
            self._budget_logged_ms = now_ms
            event(log, logging.WARNING, "anchor alert", kind=ALERT_FEE_BUDGET,
                  detail=f"an anchor of about {fee_sat} sat would pass the fee budget of {budget} sat per 24 h; "
                         f"the checkpoint at height {due.header.height} waits about {wait_ms // 60_000} min more "
                         "before it can be anchored (raise bitcoin.fee_budget_sat_per_day to anchor sooner)")
        self._standing_alerts = self._standing_alerts | {ALERT_FEE_BUDGET}
        return True

    def _spends_last_day(self, now_ms: int) -> dict[int, tuple[int, int]]:
        """Height -> (time, fee in sat) of own anchors broadcast within DAY_MS."""
        spends = {}
        for height, raw in self.anchors.own_records(count_max=10**6):
            record = decode_record(raw)
            spent_at_ms = record.broadcast_at_ms if record.broadcast_at_ms is not None else record.attempt_at_ms
            if record.state is not AnchorState.DOUBLE_SPENT and spent_at_ms is not None:
                if now_ms - spent_at_ms < DAY_MS:
                    spends[height] = (spent_at_ms, record.fee_sat)
        return spends

    def _budget_cap_sat_kvb(
        self, height: int, record: AnchorRecord, spends: dict[int, tuple[int, int]]
    ) -> int | None:
        """The highest fee rate a bump of ``record`` may pay within the fee budget, given the
        day's ``spends`` (None: no budget). At it the record is fee_capped, as at
        fee_rate_max_sat_vb."""
        budget = self.config.fee_budget_sat_per_day
        if not budget or record.state is not AnchorState.BROADCAST:
            return None
        others_sat = sum(fee for spent_height, (_at, fee) in spends.items() if spent_height != height)
        vsize = vsize_of(parse_transaction(record.raw_tx), record.raw_tx)
        return max(0, budget - others_sat) * 1000 // vsize

    # ---- recorded anchors (every validator) -----------------------------------------

    def _follow_recorded(self, now_ms: int) -> list[tuple[int, AnchorRef]]:
        """Follow the recorded anchors; AnchorRefs of those a reorg moved to another block
        (any validator may offer them: every voter checks them like any other).

        Every recorded anchor whose Bitcoin block is less than REORG_DEPTH_MAX deep is
        followed on every tick, whatever its confirmations: the check is a comparison with
        the cached best-chain header at its height (``_sync_headers`` keeps the cache in
        line with the best chain at the cost of one or two RPCs per new block), so a reorg
        of any depth up to the bound is seen. Only anchors whose block left the best chain
        cost RPCs: their transaction is looked for in the blocks above the fork.
        """
        tip_height = self.status.btc_height
        assert tip_height is not None
        self._tip_height = tip_height
        window_low = max(0, tip_height - REORG_DEPTH_MAX + 1)
        followed: list[RecordedAnchor] = []
        for recorded in self.anchors.recorded_from(self._follow_floor, FOLLOW_PER_TICK_MAX):
            if recorded.ref.btc_height < window_low and not followed and self._checkpoint_height(recorded) < window_low:
                self._follow_floor = recorded.height + 1
                continue
            followed.append(recorded)
        lowest = min((self._checkpoint_height(r) for r in followed), default=tip_height)
        self._sync_headers(max(window_low, min(lowest, tip_height)))
        moved: list[tuple[int, AnchorRef]] = []
        lost: set[int] = set()
        missing_since_ms: dict[int, int] = {}
        still_missing = False
        for recorded in followed:
            confirmations, where = self._follow_one(recorded)
            if where is not None:
                moved.append((recorded.height, where))
            if confirmations > 0:
                continue
            still_missing = True
            if self.rpc.in_mempool(recorded.ref.txid):
                continue
            since_ms = self._missing_since_ms.get(recorded.height, now_ms)
            missing_since_ms[recorded.height] = since_ms
            if now_ms - since_ms >= LOST_AFTER_MS:
                lost.add(recorded.height)
        self._missing_since_ms = missing_since_ms
        if not still_missing:
            self._scan_from = None
        if lost != self._lost:
            event(log, logging.WARNING if lost else logging.INFO, "recorded anchors lost on Bitcoin",
                  heights=sorted(lost)[:16])
        self._lost = frozenset(lost)
        return moved

    def _scan_for_anchors(self, due: DueCheckpoint | None) -> list[tuple[int, AnchorRef]]:
        """While a checkpoint is due, read each new best-chain block once (at most
        SCAN_BLOCKS_PER_TICK per tick) for anchors of finalized blocks at or above the due
        one, whoever broadcast them; the AnchorRefs of those still on the best chain and
        not recorded as they are. Any validator offers them, so an anchor is recorded
        at the next proposal, not only when its broadcaster next leads."""
        if due is None:
            self._unscanned.clear()
            self._seen = {}
            self._unplaced = {}
            return []
        for _ in range(min(SCAN_BLOCKS_PER_TICK, len(self._unscanned))):
            btc_height, block_hash = self._unscanned.popleft()
            if not self._on_best_chain(block_hash, btc_height):
                continue
            for found in anchors_in_block(self.rpc.raw_block(block_hash), block_hash):
                self._unplaced.setdefault(found.anchored_block_hash, AnchorRef(
                    txid=found.txid,
                    vout=found.vout,
                    anchored_block_hash=found.anchored_block_hash,
                    btc_block_hash=block_hash,
                    btc_height=btc_height,
                ))
        for anchored, ref in list(self._unplaced.items()):
            height = self.chain.height_of(anchored)
            if height is None and self._on_best_chain(ref.btc_block_hash, ref.btc_height):
                continue
            del self._unplaced[anchored]
            if height is not None and height >= due.header.height and height not in self._seen:
                self._seen[height] = ref
        while len(self._unplaced) > UNPLACED_MAX:
            del self._unplaced[next(iter(self._unplaced))]
        self._seen = {
            height: ref
            for height, ref in self._seen.items()
            if height >= due.header.height and self._on_best_chain(ref.btc_block_hash, ref.btc_height)
        }
        return sorted(self._seen.items())

    def _checkpoint_height(self, recorded: RecordedAnchor) -> int:
        """The Bitcoin height the anchor is at now: its checkpoint's, else the recorded one."""
        checkpoint = self.anchors.checkpoint_at(recorded.height)
        return recorded.ref.btc_height if checkpoint is None else checkpoint.btc_height

    def _on_best_chain(self, btc_block_hash: bytes, btc_height: int) -> int:
        """Confirmations of the block if the cached best chain holds it at ``btc_height``, else 0."""
        tip_height = self._tip_height
        cached = self.anchors.header_at(btc_height)
        if btc_height > tip_height or cached is None or sha256d(cached) != btc_block_hash:
            return 0
        return tip_height - btc_height + 1

    def _follow_one(self, recorded: RecordedAnchor) -> tuple[int, AnchorRef | None]:
        """Keep the checkpoint of one recorded anchor in line with the best chain: its
        confirmations, and a new AnchorRef if the anchor is now in another block.

        The anchor is looked for first in the block its checkpoint (or the chain's record)
        names, then, once that block left the best chain, in every best-chain block above
        the fork (``_find_remined``), so a re-mined anchor is confirmed again by every
        validator, whoever broadcast it and whatever its record says. A checkpoint whose
        block left the best chain is deleted at once: no bundle cites a stale block.
        """
        ref: AnchorRef = recorded.ref
        stored = self.anchors.checkpoint_at(recorded.height)
        checkpoint = stored
        if checkpoint is not None and parse_transaction(checkpoint.raw_tx).txid != ref.txid:
            checkpoint = None
        if checkpoint is None:
            btc_block_hash, btc_height = ref.btc_block_hash, ref.btc_height
        else:
            btc_block_hash, btc_height = checkpoint.btc_block_hash, checkpoint.btc_height
        confirmations = self._on_best_chain(btc_block_hash, btc_height)
        if confirmations == 0:
            if stored is not None:
                self.anchors.delete_checkpoint(recorded.height)
                event(log, logging.WARNING, "anchored checkpoint left the best chain, pending again",
                      height=recorded.height, btc_block=hash_to_hex(btc_block_hash))
                stored = checkpoint = None
            self._scan_from = min(btc_height, self._scan_from if self._scan_from is not None else btc_height)
            found = self._find_remined(ref.txid)
            if found is None:
                return 0, None
            btc_block_hash, btc_height = found
            confirmations = self._on_best_chain(btc_block_hash, btc_height)
        if checkpoint is None or checkpoint.btc_block_hash != btc_block_hash:
            material = extract_spv_material(
                self.rpc, hash_to_hex(ref.txid), hash_to_hex(btc_block_hash), network=self.network
            )
            self.anchors.put_checkpoint(
                AnchoredCheckpoint(
                    height=recorded.height,
                    block_hash=ref.anchored_block_hash,
                    network=self.network,
                    raw_tx=material.raw_tx,
                    tx_index=material.index,
                    branch=material.branch,
                    header=material.header,
                    btc_height=btc_height,
                )
            )
            event(log, logging.INFO, "anchored", height=recorded.height, txid=hash_to_hex(ref.txid),
                  btc_block=hash_to_hex(btc_block_hash), btc_height=btc_height)
        if btc_block_hash == ref.btc_block_hash:
            return confirmations, None
        return confirmations, AnchorRef(
            txid=ref.txid,
            vout=ref.vout,
            anchored_block_hash=ref.anchored_block_hash,
            btc_block_hash=btc_block_hash,
            btc_height=btc_height,
        )

    def _find_remined(self, txid: bytes) -> tuple[bytes, int] | None:
        """(block hash, height) of the best-chain block holding ``txid``, looked for in every
        block from the fork (``_scan_from``: the lowest height where a followed anchor or
        the header cache saw the chain change) to the tip. Each block's txids are fetched
        once (``getblock``) and kept while some anchor is missing; at most
        SCAN_BLOCKS_PER_TICK new blocks per tick, so a long search spreads over ticks."""
        tip_height = self._tip_height
        assert self._scan_from is not None
        fetched = 0
        for btc_height in range(max(self._scan_from, tip_height - REORG_DEPTH_MAX + 1), tip_height + 1):
            cached = self.anchors.header_at(btc_height)
            if cached is None:
                return None
            block_hash = sha256d(cached)
            txids = self._block_txids.get(block_hash)
            if txids is None:
                if fetched >= SCAN_BLOCKS_PER_TICK:
                    return None
                fetched += 1
                txids = frozenset(self.rpc.block_info(block_hash).txids)
                if len(self._block_txids) >= REORG_DEPTH_MAX:
                    self._block_txids.pop(next(iter(self._block_txids)))
                self._block_txids[block_hash] = txids
            if txid in txids:
                return block_hash, btc_height
        return None

    def _sync_headers(self, lowest_btc_height: int) -> None:
        """Bring the cached best-chain headers from the tip down to ``lowest_btc_height`` in
        line with bitcoind, walking back from the tip only until a cached header matches
        (the common ancestor: nothing below it changed). A walk of REORG_DEPTH_MAX blocks
        that meets no matching cached header while replacing cached ones is a reorg
        deeper than this node follows: the alert ``reorg_too_deep`` says so."""
        block_hash: bytes | None = self.rpc.best_block_hash()
        fetched: dict[int, bytes] = {}
        replaced_low: int | None = None
        met_ancestor = False
        for step_number in range(REORG_DEPTH_MAX):
            info = None if block_hash is None else self.rpc.header_info(block_hash)
            if step_number == 0 and info is not None:
                # The tip the cache now ends at: confirmations count from it, not from the
                # getblockchaininfo answer of a moment ago (a block may have come between).
                self._tip_height = info.height
            if info is None or info.height < lowest_btc_height:
                met_ancestor = True
                break
            cached = self.anchors.header_at(info.height)
            if cached is not None and sha256d(cached) == info.block_hash:
                met_ancestor = True
                break
            if cached is not None:
                replaced_low = info.height
            fetched[info.height] = self.rpc.raw_header(info.block_hash)
            block_hash = info.previous
        if fetched:
            self.anchors.put_headers(fetched)
        relinked = self._relink_headers(lowest_btc_height)
        if relinked:
            replaced_low = min(relinked) if replaced_low is None else min(replaced_low, min(relinked))
            fetched.update(relinked)
        if fetched and self._headers_synced:
            # New blocks since the last tick (the first sync fills the cache: nothing new).
            self._unscanned.extend((height, sha256d(raw)) for height, raw in sorted(fetched.items()))
        self._headers_synced = True
        if replaced_low is not None:
            self._scan_from = replaced_low if self._scan_from is None else min(self._scan_from, replaced_low)
            self._block_txids.clear()
        if not met_ancestor and replaced_low is not None:
            self._alert_reorg_too_deep()

    def _relink_headers(self, lowest_btc_height: int) -> dict[int, bytes]:
        """Repair cached headers from the tip down to ``lowest_btc_height`` that do not link up.

        The walk above stops at the first cached header that matches the best chain, which
        proves nothing about heights it never reached: a height that was below every
        followed anchor during a reorg keeps its stale header, and an anchor recorded there
        later (a re-mined transaction moves down too) would never be confirmed. Blocks are
        immutable, so a cache whose every header names the one below as its parent, up to
        the best tip, is the best chain; each header that breaks the link is refetched by
        the parent hash the header above it names (no RPC while the cache links up).
        """
        above = self.anchors.header_at(self._tip_height)
        if above is None:
            return {}
        relinked: dict[int, bytes] = {}
        for height in range(self._tip_height - 1, max(lowest_btc_height, 0) - 1, -1):
            parent_hash = above[4:36]
            cached = self.anchors.header_at(height)
            if cached is None or sha256d(cached) != parent_hash:
                cached = self.rpc.raw_header(parent_hash)
                relinked[height] = cached
            above = cached
        if relinked:
            self.anchors.put_headers(relinked)
            event(log, logging.INFO, "cached Bitcoin headers repaired after a reorg", heights=sorted(relinked)[:16])
        return relinked

    def _alert_reorg_too_deep(self) -> None:
        event(log, logging.ERROR, "anchor alert", kind=ALERT_REORG_TOO_DEEP,
              detail=f"Bitcoin reorganised more than {REORG_DEPTH_MAX} blocks: anchors that deep are no longer "
                     "followed; check bitcoind and the recorded anchors by hand")
        self._standing_alerts = self._standing_alerts | {ALERT_REORG_TOO_DEEP}

    # ---- proposals and votes ----------------------------------------------------------

    def refs_to_propose(self, now_ms: int, exclude: Iterable[AnchorRef]) -> tuple[AnchorRef, ...]:
        """Confirmed own anchors to put in our next proposal (not those already in a
        pending ancestor), only while bitcoind answers, since peers check them."""
        if not self.status.bitcoind_ok or now_ms - self.status.last_contact_ms > REFS_FRESH_MS:
            return ()
        excluded = set(exclude)
        offered = []
        for height, ref in self._ready:
            recorded = self.anchors.recorded(height)
            if ref not in excluded and (recorded is None or recorded.ref != ref):
                offered.append(ref)
        return tuple(offered)

    def check_refs(self, refs: tuple[AnchorRef, ...]) -> None:
        """Raise AnchorRefInvalid unless each ref's transaction is in its Bitcoin block, on
        the best chain at the stated height, with the anchor payload at ``vout``.
        A bitcoind that cannot answer (down, slow, malformed replies, another network)
        raises its BitcoindError, counted in status; the caller withholds its vote."""
        try:
            self._check_refs(refs)
        except BitcoindError as exc:
            self._count_error(_kind_of(exc))
            raise

    def _check_refs(self, refs: tuple[AnchorRef, ...]) -> None:
        if refs:
            self.check_rpc.chain_info(self.network)
        for ref in refs:
            try:
                header = self.check_rpc.header_info(ref.btc_block_hash)
                raw_tx = self.check_rpc.raw_transaction(ref.txid, ref.btc_block_hash)
            except BitcoindRPCError as exc:
                raise AnchorRefInvalid(f"anchor {hash_to_hex(ref.txid)}: bitcoind says {exc}") from exc
            if header is None or not header.on_best_chain or header.height != ref.btc_height:
                raise AnchorRefInvalid(
                    f"anchor {hash_to_hex(ref.txid)}: Bitcoin block {hash_to_hex(ref.btc_block_hash)} is not on the "
                    f"best chain at height {ref.btc_height}"
                )
            try:
                tx = parse_transaction(raw_tx)
                outputs = dict(tx.op_return_outputs())
                anchored = decode_payload(outputs[ref.vout]) if ref.vout in outputs else None
            except DecodeError as exc:
                raise AnchorRefInvalid(f"anchor {hash_to_hex(ref.txid)}: {exc}") from exc
            if tx.txid != ref.txid or anchored != ref.anchored_block_hash:
                raise AnchorRefInvalid(
                    f"anchor {hash_to_hex(ref.txid)}: output {ref.vout} does not anchor "
                    f"{ref.anchored_block_hash.hex()[:16]}"
                )

    # ---- API views ----------------------------------------------------------------------

    @property
    def lost_heights(self) -> frozenset[int]:
        """Recorded heights whose anchor is lost on Bitcoin as this validator sees it (ALERT_LOST)."""
        return self._lost

    def counts(self) -> dict[str, int]:
        """Own anchors in flight by kind, from memory (cheap enough for every status call)."""
        records = list(self._active.values())
        return {
            "pending": sum(1 for r in records if r.state in (AnchorState.BUILT, AnchorState.BROADCAST)),
            "confirmed": sum(1 for r in records if r.state in (AnchorState.CONFIRMED, AnchorState.FINAL)),
        }

    def own_json(self) -> dict[int, dict[str, Any]]:
        out = {}
        for height, raw in self.anchors.own_records():
            record = self._active.get(height) or decode_record(raw)
            out[height] = record_json(record)
        return out


def record_json(record: AnchorRecord) -> dict[str, Any]:
    return {
        "state": record.state.value,
        "txid": hash_to_hex(record.txid),
        "replaced_txids": [hash_to_hex(t) for t in record.replaced_txids],
        "fee_rate_sat_vb": str(Decimal(record.fee_rate_sat_kvb) / 1000),
        "btc_block_hash": hash_to_hex(record.block_hash) if record.block_hash else None,
        "btc_height": record.block_height,
        "confirmations": record.confirmations,
        "alerts": list(record.alerts),
        "last_error": record.last_error,
        "reorgs": record.reorgs,
        "fee_sat": record.fee_sat,
    }


def _anchor_vout(raw_tx: bytes, block_hash: bytes) -> int:
    for vout, script in parse_transaction(raw_tx).op_return_outputs():
        if decode_payload(script) == block_hash:
            return vout
    raise AnchoringError(f"confirmed anchor transaction carries no anchor of {block_hash.hex()[:16]}")


def _anchored_block_of(raw_tx: bytes) -> bytes | None:
    """The Pantheon block hash a transaction's one anchor output carries, or None if it
    does not parse or has no single Pantheon anchor output."""
    try:
        outputs = parse_transaction(raw_tx).op_return_outputs()
        anchored = [decode_payload(script) for _vout, script in outputs]
    except DecodeError:
        return None
    return anchored[0] if len(anchored) == 1 else None


def _kill_after_send_hook(trigger: str) -> Callable[[bytes], None] | None:
    """The FAULT_KILL_AFTER_SEND_ENV hook, or None when the variable is unset."""
    if not trigger:
        return None
    trigger_path = Path(trigger)

    def kill_if_armed(_txid: bytes) -> None:
        try:
            trigger_path.unlink()
        except FileNotFoundError:
            return
        os.kill(os.getpid(), signal.SIGKILL)

    return kill_if_armed


def _kind_of(exc: PantheonError) -> str:
    return exc.kind if isinstance(exc, BitcoindError) else KIND_ANCHORING
