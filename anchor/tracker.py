"""Drive anchor records through their lifecycle (anchor.state) against one bitcoind.

Blocking calls, meant for a worker thread (``trio.to_thread.run_sync``). The tracker
keeps no state of its own: everything is in the AnchorRecord it is handed and
returns, which the node persists. So a restart (of the node or of bitcoind, even on
another port) loses nothing: build a new tracker and go on polling the same record.

How one poll sees bitcoind (``_observe``), cheapest question first:

1. A record that knows its block asks ``getblockheader``: confirmations >= 1 means
   the block, and so the anchor in it, is on the best chain; -1 means the block is
   stale (a reorg).
2. Otherwise every version of the transaction (the current txid and the ones fee
   bumps replaced, newest first) is looked up with the wallet's ``gettransaction``,
   which follows reorgs and knows the block of a confirmed transaction without
   -txindex; that block is checked with ``getblockheader`` as in 1.
3. Not in a best-chain block: ``getmempoolentry`` of the current txid tells
   "waiting" (in the mempool) from "evicted or reorged away" (nowhere). The state
   machine rebroadcasts the raw transaction in the second case.

Before that, a BROADCAST record adopts a replacement the wallet made of its current
txid (``gettransaction``'s ``replaced_by_txid``, or a ``mempoolconflicts`` or
``walletconflicts`` entry that anchors the same block): if a fee bump succeeded in
bitcoind but its answer was lost (timeout, crash), the record follows the wallet
instead of rebroadcasting a transaction bitcoind has already replaced. A conflicting
transaction that is not an anchor of the same block is a foreign spend of the inputs:
the observation carries it as a Conflict (waiting in the mempool, or in a block: the
anchor is double-spent) and the state machine stops sending.

Every answer is read through BitcoindRPC's typed calls (anchor.replies), so a reply of
the wrong shape is a BitcoindReplyInvalid, never a KeyError or TypeError here.

Errors: BitcoindUnavailable and BitcoindReplyInvalid propagate as they are from ``poll``
(the caller keeps its record and polls again later); a refused broadcast or bump becomes a
BroadcastFailed event, so the record carries the reason and the retry is rate
limited like any other attempt. ``anchor`` propagates what building the
transaction raises (BitcoindUnavailable, WalletEmptyError, AnchorTxError): nothing
exists yet then. ``build`` only signs: the caller persists the BUILT record, then
``send`` broadcasts it and always returns a record (BUILT still, with the reason, if
the broadcast did not go through), so a crash at any point leaves a record that
knows every transaction the wallet may have sent.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal, InvalidOperation

from anchor.replies import HeaderInfo, WalletTx
from anchor.rpc import BitcoindReplyInvalid, BitcoindRPC, BitcoindRPCError, BitcoindUnavailable
from anchor.spv import SpvMaterial, extract_spv_material
from anchor.state import (
    ATTEMPT_INTERVAL_MS_DEFAULT,
    BUMP_FACTOR_PERCENT_DEFAULT,
    BUMPS_MAX,
    FEE_RATE_SAT_KVB_MAX,
    SAT_KVB_PER_SAT_VB,
    Action,
    Alert,
    AnchorPolicy,
    AnchorRecord,
    AnchorState,
    AnchorStateError,
    Broadcast,
    BroadcastFailed,
    Broadcasted,
    Conflict,
    BumpFee,
    Bumped,
    Event,
    Observed,
    built,
    step,
    truncate_text,
)
from anchor.tx import (
    SAT_PER_BTC,
    AnchorTx,
    AnchorTxError,
    bump_fee,
    check_anchor,
    create_anchor,
    send_fee_rate_max_sat_vb,
    vsize_of,
)
from proof.errors import DecodeError
from proof.spv import hash_to_hex, parse_transaction, pow_limit

logger = logging.getLogger("pantheon.anchor")

# bitcoind RPC error codes (src/rpc/protocol.h) the tracker reads as answers, not failures.
RPC_VERIFY_ALREADY_IN_CHAIN = -27  # sendrawtransaction: the transaction is already in a block
# Actions one poll can carry out: the state machine asks for at most a bump or a
# rebroadcast plus its alerts, and each answer adds at most one alert.
ACTIONS_PER_POLL_MAX = 8


def sat_vb_to_sat_kvb(rate_sat_vb: Decimal | int | str) -> int:
    """An operator's sat/vB setting as the record's exact sat/kvB integer."""
    try:
        rate = Decimal(rate_sat_vb) * SAT_KVB_PER_SAT_VB
    except InvalidOperation as exc:
        raise AnchorStateError(f"fee rate {rate_sat_vb!r} is not a number of sat/vB") from exc
    if rate != rate.to_integral_value() or not 0 < rate <= FEE_RATE_SAT_KVB_MAX:
        raise AnchorStateError(
            f"fee rate {rate_sat_vb} sat/vB must be positive, at most {FEE_RATE_SAT_KVB_MAX // 1000} sat/vB, "
            "with at most 3 decimals"
        )
    return int(rate)


def sat_kvb_to_sat_vb(rate_sat_kvb: int) -> Decimal:
    return Decimal(rate_sat_kvb) / SAT_KVB_PER_SAT_VB


def _log_alert(alert: Alert) -> None:
    logger.warning("anchor alert %s: %s", alert.kind, alert.detail)


class AnchorTracker:
    """Creates anchors and moves their records along; ``rpc`` is a wallet client
    (``BitcoindRPC(..., wallet=name)``), used for node calls as well."""

    def __init__(
        self,
        rpc: BitcoindRPC,
        *,
        network: str,
        fee_rate_sat_vb: Decimal | int | str,
        fee_rate_max_sat_vb: Decimal | int | str,
        bump_after_ms: int,
        final_depth: int,
        bump_factor_percent: int = BUMP_FACTOR_PERCENT_DEFAULT,
        attempt_interval_ms: int = ATTEMPT_INTERVAL_MS_DEFAULT,
        on_alert: Callable[[Alert], None] = _log_alert,
        on_sent: Callable[[bytes], None] | None = None,
    ) -> None:
        pow_limit(network)
        self.rpc = rpc
        self.network = network
        self.policy = AnchorPolicy(
            fee_rate_sat_kvb=sat_vb_to_sat_kvb(fee_rate_sat_vb),
            fee_rate_max_sat_kvb=sat_vb_to_sat_kvb(fee_rate_max_sat_vb),
            bump_after_ms=bump_after_ms,
            final_depth=final_depth,
            bump_factor_percent=bump_factor_percent,
            attempt_interval_ms=attempt_interval_ms,
        )
        self.on_alert = on_alert
        self.on_sent = on_sent
        """Called with the txid as soon as sendrawtransaction accepted a transaction, before
        the record says so: the node's crash test hook (node.anchoring.FAULT_KILL_AFTER_SEND_ENV)."""

    @property
    def _tx_fee_rate_max_sat_vb(self) -> Decimal:
        """The cap handed to anchor.tx, which allows for the wallet's fee rounding itself."""
        return sat_kvb_to_sat_vb(self.policy.fee_rate_max_sat_kvb)

    # ----------------------------------------------------------------- public API

    def build(self, pantheon_block_hash: bytes, now_ms: int, fee_rate_sat_kvb: int | None = None) -> AnchorRecord:
        """Fund and sign an anchor of ``pantheon_block_hash`` at ``fee_rate_sat_kvb`` (the
        policy's rate if None; never above its cap); its BUILT record, nothing sent.

        The caller persists this record before ``send``: a crash between the broadcast
        and the record would otherwise leave a transaction out that no record knows,
        and the restarted node would build and pay for a second one.
        """
        rate_sat_kvb = self.policy.fee_rate_sat_kvb if fee_rate_sat_kvb is None else fee_rate_sat_kvb
        if not 0 < rate_sat_kvb <= self.policy.fee_rate_max_sat_kvb:
            raise AnchorStateError(
                f"fee rate {rate_sat_kvb} sat/kvB is outside 1..{self.policy.fee_rate_max_sat_kvb} sat/kvB (the cap)"
            )
        signed = create_anchor(
            self.rpc,
            pantheon_block_hash,
            fee_rate_sat_vb=sat_kvb_to_sat_vb(rate_sat_kvb),
            fee_rate_max_sat_vb=self._tx_fee_rate_max_sat_vb,
            send=False,
        )
        record, _first_broadcast = built(
            pantheon_block_hash,
            signed.raw_tx,
            fee_rate_sat_kvb=rate_sat_kvb,
            fee_sat=signed.fee_sat,
            now_ms=now_ms,
        )
        return record

    def send(self, record: AnchorRecord, now_ms: int) -> AnchorRecord:
        """The first broadcast of a BUILT record (``build``), once the caller has persisted it.
        A failure leaves it BUILT with the reason; ``poll`` retries it."""
        if record.state is not AnchorState.BUILT:
            raise AnchorStateError(f"{record.describe()}: only a built anchor is sent for the first time")
        return self._execute(
            record, (Broadcast(record.txid, record.raw_tx),), now_ms, self.policy, unavailable_fails_broadcast=True
        )

    def adopt(self, wallet_tx: WalletTx, pantheon_block_hash: bytes, now_ms: int) -> AnchorRecord:
        """The BUILT record of an anchor the wallet holds but no record knows (its record was
        lost: a store restored from an older backup, say); ``poll`` then finds where it is,
        exactly as for a record built before a crash. Raises AnchorTxError unless it is a
        well-formed anchor of ``pantheon_block_hash`` with a known fee."""
        check_anchor(wallet_tx.raw_tx, pantheon_block_hash)
        if wallet_tx.fee_btc is None:
            raise AnchorTxError(f"the wallet shows {hash_to_hex(wallet_tx.txid)} without the fee it paid")
        fee_sat = _btc_to_sat(-wallet_tx.fee_btc)
        fee_rate_sat_kvb = math.ceil(fee_sat * SAT_KVB_PER_SAT_VB / _vsize(wallet_tx.raw_tx))
        try:
            record, _rebroadcast = built(
                pantheon_block_hash, wallet_tx.raw_tx, fee_rate_sat_kvb=fee_rate_sat_kvb, fee_sat=fee_sat, now_ms=now_ms
            )
        except AnchorStateError as exc:
            raise AnchorTxError(f"wallet transaction {hash_to_hex(wallet_tx.txid)} does not fit a record: {exc}") from exc
        return record

    def anchor(self, pantheon_block_hash: bytes, now_ms: int) -> AnchorRecord:
        """``build`` then ``send`` with nothing persisted between, for a caller that keeps
        no store (tests, one-off tools); the node persists the BUILT record in between."""
        return self.send(self.build(pantheon_block_hash, now_ms), now_ms)

    def poll(self, record: AnchorRecord, now_ms: int, fee_rate_max_sat_kvb: int | None = None) -> AnchorRecord:
        """Observe bitcoind once, apply what it shows, carry out what that asks for.
        ``fee_rate_max_sat_kvb`` lowers the cap for this poll's bumps (the node's fee
        budget); at it the record is fee_capped as at the configured cap."""
        if record.state in (AnchorState.FINAL, AnchorState.DOUBLE_SPENT):
            return record
        policy = self.policy
        if fee_rate_max_sat_kvb is not None and fee_rate_max_sat_kvb < policy.fee_rate_max_sat_kvb:
            policy = replace(policy, fee_rate_max_sat_kvb=max(fee_rate_max_sat_kvb, policy.fee_rate_sat_kvb))
        record = self._adopt_wallet_replacements(record, now_ms, policy)
        record, actions = step(record, self._observe(record, now_ms), policy)
        return self._execute(record, actions, now_ms, policy)

    def spv_material(self, record: AnchorRecord) -> SpvMaterial:
        """The SPV proof of a confirmed anchor (anchor.spv; checked before it is returned)."""
        if record.state not in (AnchorState.CONFIRMED, AnchorState.FINAL):
            raise AnchorStateError(f"{record.describe()}: SPV material exists once the anchor is confirmed")
        assert record.confirmed_txid is not None and record.block_hash is not None
        return extract_spv_material(
            self.rpc, hash_to_hex(record.confirmed_txid), hash_to_hex(record.block_hash), network=self.network
        )

    # ----------------------------------------------------------------- observing

    def _observe(self, record: AnchorRecord, now_ms: int) -> Observed:
        if record.block_hash is not None:
            header = self.rpc.header_info(record.block_hash)
            if header is not None and header.on_best_chain:
                return self._observed_in(record.confirmed_txid, header, now_ms)
        current: WalletTx | None = None
        for txid in record.txids:
            wallet_tx = self.rpc.wallet_tx(txid)
            if txid == record.txid:
                current = wallet_tx
            if wallet_tx is None or wallet_tx.confirmations < 1 or wallet_tx.block_hash is None:
                continue
            header = self.rpc.header_info(wallet_tx.block_hash)
            if header is not None and header.on_best_chain:
                return self._observed_in(txid, header, now_ms)
        if self.rpc.in_mempool(record.txid):
            return Observed(now_ms, in_mempool=True)
        return Observed(now_ms, in_mempool=False, conflict=_conflict_of(current))

    @staticmethod
    def _observed_in(txid: bytes | None, header: HeaderInfo, now_ms: int) -> Observed:
        return Observed(
            now_ms,
            in_mempool=False,
            confirmed_txid=txid,
            block_hash=header.block_hash,
            block_height=header.height,
            confirmations=header.confirmations,
        )

    def _adopt_wallet_replacements(self, record: AnchorRecord, now_ms: int, policy: AnchorPolicy) -> AnchorRecord:
        for _ in range(BUMPS_MAX):
            if record.state is not AnchorState.BROADCAST:
                return record
            wallet_tx = self.rpc.wallet_tx(record.txid)
            replacement = None if wallet_tx is None else self._replacement_of(wallet_tx, record)
            if replacement is None:
                return record
            if replacement.fee_btc is None:
                raise AnchorTxError(
                    f"the wallet shows replacement {hash_to_hex(replacement.txid)} without the fee it paid"
                )
            raw_tx = replacement.raw_tx
            fee_sat = _btc_to_sat(-replacement.fee_btc)
            vsize = _vsize(raw_tx)
            record, actions = step(
                record,
                Bumped(raw_tx, math.ceil(fee_sat * SAT_KVB_PER_SAT_VB / vsize), fee_sat, now_ms),
                policy,
            )
            self._alert_all(actions)
        return record

    def _replacement_of(self, wallet_tx: WalletTx, record: AnchorRecord) -> WalletTx | None:
        """The wallet transaction that replaced ``wallet_tx`` and is itself an anchor of the
        same block: ``replaced_by_txid`` after the wallet's own bumpfee, else a
        ``mempoolconflicts`` or ``walletconflicts`` entry (anchor.tx.bump_fee signs with
        PSBTs and broadcasts the replacement itself, so the wallet only sees a conflict).
        A conflict that anchors nothing of ours is a foreign spend of the inputs, never a
        fee bump: ``_observe`` reports it as a Conflict."""
        candidates = [wallet_tx.replaced_by] if wallet_tx.replaced_by is not None else []
        candidates += [*wallet_tx.mempool_conflicts, *wallet_tx.wallet_conflicts]
        for txid in dict.fromkeys(candidates):
            if txid in record.txids:
                continue
            candidate = self.rpc.wallet_tx(txid)
            if candidate is not None and candidate.confirmations >= 0 and _anchors(
                candidate.raw_tx, record.pantheon_block_hash
            ):
                return candidate
        return None

    # ----------------------------------------------------------------- acting

    def _execute(
        self,
        record: AnchorRecord,
        actions: tuple[Action, ...],
        now_ms: int,
        policy: AnchorPolicy,
        *,
        unavailable_fails_broadcast: bool = False,
    ) -> AnchorRecord:
        queue = list(actions)
        done = 0
        while queue:
            done += 1
            if done > ACTIONS_PER_POLL_MAX:
                raise AssertionError(f"anchor state machine asked for more than {ACTIONS_PER_POLL_MAX} actions")
            action = queue.pop(0)
            if isinstance(action, Alert):
                self.on_alert(action)
                continue
            try:
                event = self._carry_out(record, action, now_ms, sat_kvb_to_sat_vb(policy.fee_rate_max_sat_kvb))
            except (BitcoindUnavailable, BitcoindReplyInvalid) as exc:
                if not unavailable_fails_broadcast:
                    raise
                event = BroadcastFailed(truncate_text(str(exc)), now_ms)
            except (BitcoindRPCError, AnchorTxError) as exc:
                event = BroadcastFailed(truncate_text(str(exc)), now_ms)
            record, more = step(record, event, policy)
            queue.extend(more)
        return record

    def _carry_out(
        self, record: AnchorRecord, action: Broadcast | BumpFee, now_ms: int, fee_rate_max_sat_vb: Decimal
    ) -> Event:
        current = _as_anchor_tx(record)
        if isinstance(action, Broadcast):
            # A rebroadcast is of a transaction already paid for: only the configured cap
            # applies (a lowered one must not refuse what was sent under a higher one).
            return self._broadcast(action, send_fee_rate_max_sat_vb(current, self._tx_fee_rate_max_sat_vb), now_ms)
        replacement = bump_fee(
            self.rpc,
            current,
            fee_rate_sat_vb=sat_kvb_to_sat_vb(action.fee_rate_sat_kvb),
            fee_rate_max_sat_vb=fee_rate_max_sat_vb,
        )
        return Bumped(replacement.raw_tx, action.fee_rate_sat_kvb, replacement.fee_sat, now_ms)

    def _broadcast(self, action: Broadcast, fee_rate_max_sat_vb: Decimal, now_ms: int) -> Event:
        max_fee_rate_btc_kvb = fee_rate_max_sat_vb * SAT_KVB_PER_SAT_VB / SAT_PER_BTC
        try:
            txid = self.rpc.send_raw_transaction(action.raw_tx, max_fee_rate_btc_kvb)
        except BitcoindRPCError as exc:
            if exc.code == RPC_VERIFY_ALREADY_IN_CHAIN:
                # Already in a block: bitcoind has it, the next observation finds where.
                return Broadcasted(action.txid, now_ms)
            raise
        if self.on_sent is not None:
            self.on_sent(txid)
        if txid != action.txid:
            raise AnchorTxError(f"bitcoind accepted {hash_to_hex(txid)} for anchor {hash_to_hex(action.txid)}")
        return Broadcasted(action.txid, now_ms)

    def _alert_all(self, actions: tuple[Action, ...]) -> None:
        for action in actions:
            if not isinstance(action, Alert):
                raise AssertionError(f"expected only alerts, got {type(action).__name__}")
            self.on_alert(action)


def _conflict_of(current: WalletTx | None) -> Conflict:
    """What the wallet says spends the inputs of an anchor that is neither in a best-chain
    block nor in the mempool: negative confirmations mean a conflicting transaction is in
    a block (bitcoind's wallet counts its depth below zero), ``mempoolconflicts`` one that
    waits. The versions of the anchor itself were looked for first, so either is foreign."""
    if current is None:
        return Conflict.NONE
    if current.confirmations < 0:
        return Conflict.BLOCK
    return Conflict.MEMPOOL if current.mempool_conflicts else Conflict.NONE


def _anchors(raw_tx: bytes, pantheon_block_hash: bytes) -> bool:
    """Whether ``raw_tx`` is a well-formed anchor of ``pantheon_block_hash`` (a fee bump of
    ours is; a foreign transaction spending the same inputs is not)."""
    try:
        check_anchor(raw_tx, pantheon_block_hash)
    except AnchorTxError:
        return False
    return True


def _as_anchor_tx(record: AnchorRecord) -> AnchorTx:
    """The record's current version as anchor.tx describes a transaction."""
    tx, vout = check_anchor(record.raw_tx, record.pantheon_block_hash)
    return AnchorTx(
        txid=hash_to_hex(record.txid),
        raw_tx=record.raw_tx,
        block_hash=record.pantheon_block_hash,
        vout=vout,
        fee_sat=record.fee_sat,
        vsize=vsize_of(tx, record.raw_tx),
    )


def _btc_to_sat(amount_btc: Decimal) -> int:
    sat = amount_btc * SAT_PER_BTC
    if sat != sat.to_integral_value() or sat < 0:
        raise AnchorTxError(f"bitcoind reported a fee of {amount_btc} BTC, not a whole number of satoshi")
    return int(sat)


def _vsize(raw_tx: bytes) -> int:
    try:
        return vsize_of(parse_transaction(raw_tx), raw_tx)
    except DecodeError as exc:
        raise AnchorTxError(f"the wallet's replacement transaction does not parse: {exc}") from exc
