"""Build, fund, sign, broadcast and fee-bump the anchor transaction.

The transaction is built with python-bitcoinlib (one OP_RETURN output carrying the
anchor payload, version 2), then handed to the bitcoind wallet: ``fundrawtransaction``
adds inputs and a change output (Knots refuses to relay a transaction whose only
output is OP_RETURN) and signals BIP 125 replaceability so that a replacement can
raise the fee later. Before anything is broadcast (a new anchor or a fee-bumped
replacement alike) the wallet's result is parsed again with the auditor's parser
(proof.spv) and checked: the wallet must not have changed what is anchored, and the
fee must be under the operator's cap.

No address is ever handled here, so python-bitcoinlib's process-wide network
selection (``bitcoin.SelectParams``) plays no part: the same code serves every
network, and several validators in one process cannot disturb each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from bitcoin.core import CMutableTransaction, CMutableTxOut, CTransaction
from bitcoin.core.script import CScript

from anchor.payload import decode_payload, encode_script
from anchor.rpc import BitcoindRPC
from proof.errors import DecodeError, PantheonError
from proof.spv import Transaction, hash_to_hex, hex_to_hash, parse_transaction

TX_VERSION = 2
# nSequence at or below this signals BIP 125 replaceability.
SEQUENCE_RBF_MAX = 0xFFFFFFFD
SAT_PER_BTC = 100_000_000
# sat/vB -> BTC/kvB (the unit of sendrawtransaction's maxfeerate).
_SAT_VB_TO_BTC_KVB = Decimal(1000) / SAT_PER_BTC
FEE_RATE_MAX_SAT_VB_DEFAULT = Decimal(500)
WITNESS_SCALE = 4
# Knots (-rejectparasites, on by default) refuses to relay a transaction whose nLockTime is 21
# ("parasite-cat21"). The wallet's psbtbumpfee sets a replacement's lock time to the tip height,
# or one time in ten up to 99 blocks below it (anti-fee-sniping), so on a chain whose tip is
# at most 120 (a fresh regtest or signet) about one bump in a thousand gets 21. A replacement
# is not committed until it is sent, so the wallet is simply asked again.
PARASITE_LOCK_TIME = 21
BUMP_ASKS_MAX = 4
# See fee_within_cap: the wallet's size estimate exceeds the signed size by at most this per input.
FEE_ROUNDING_VBYTES_PER_INPUT = 1


class AnchorTxError(PantheonError):
    """The anchor transaction could not be built, or the wallet's result is not what we asked for."""


@dataclass(frozen=True)
class AnchorTx:
    """A signed anchor transaction, as broadcast (or ready to be)."""

    txid: str
    raw_tx: bytes
    block_hash: bytes
    vout: int
    fee_sat: int
    vsize: int

    @property
    def fee_rate_sat_vb(self) -> Decimal:
        return Decimal(self.fee_sat) / Decimal(self.vsize)

    @property
    def raw_tx_hex(self) -> str:
        return self.raw_tx.hex()


def build_unfunded(block_hash: bytes) -> bytes:
    """The anchor transaction before funding: no inputs, one zero-value OP_RETURN output."""
    tx = CMutableTransaction([], [CMutableTxOut(0, CScript(encode_script(block_hash)))], nVersion=TX_VERSION)
    return tx.serialize()


def vsize_of(tx: Transaction, raw_tx: bytes) -> int:
    """Virtual size (BIP 141): weight / 4, rounded up."""
    weight = tx.stripped_size * (WITNESS_SCALE - 1) + len(raw_tx)
    return math.ceil(weight / WITNESS_SCALE)


def _btc_to_sat(amount: Decimal) -> int:
    sat = Decimal(amount) * SAT_PER_BTC
    if sat != sat.to_integral_value():
        raise AnchorTxError(f"bitcoind reported an amount of {amount} BTC, not a whole number of satoshi")
    return int(sat)


def check_anchor(raw_tx: bytes, block_hash: bytes) -> tuple[Transaction, int]:
    """Parse the wallet's transaction and check it still anchors ``block_hash``:
    version 2, exactly one OP_RETURN output and it decodes to the hash, a change
    output beside it, every input replaceable. Returns the parsed transaction and the OP_RETURN output index."""
    try:
        tx = parse_transaction(raw_tx)
    except DecodeError as exc:
        raise AnchorTxError(f"the wallet returned a transaction that does not parse: {exc}") from exc
    if tx.version != TX_VERSION:
        raise AnchorTxError(f"anchor transaction has version {tx.version}, expected {TX_VERSION}")
    op_returns = tx.op_return_outputs()
    if len(op_returns) != 1:
        raise AnchorTxError(f"anchor transaction has {len(op_returns)} OP_RETURN outputs, expected 1")
    vout, script = op_returns[0]
    try:
        anchored = decode_payload(script)
    except DecodeError as exc:
        raise AnchorTxError(f"anchor output {vout} is not a Pantheon anchor: {exc}") from exc
    if anchored != block_hash:
        raise AnchorTxError(f"anchor output {vout} carries {anchored.hex()}, expected {block_hash.hex()}")
    if len(tx.outputs) < 2:
        raise AnchorTxError("anchor transaction has no change output, so default relay policy would drop it")
    sequences = _input_sequences(raw_tx, tx)
    if any(sequence > SEQUENCE_RBF_MAX for sequence in sequences):
        raise AnchorTxError("anchor transaction does not signal replaceability (BIP 125), so it could not be fee-bumped")
    return tx, vout


def _input_sequences(raw_tx: bytes, tx: Transaction) -> list[int]:
    """nSequence of every input, read with python-bitcoinlib (a second, independent parser)."""
    parsed = CTransaction.deserialize(raw_tx)
    if len(parsed.vin) != tx.input_count:
        raise AnchorTxError("python-bitcoinlib and proof.spv disagree on the anchor transaction's inputs")
    return [txin.nSequence for txin in parsed.vin]


def fund(wallet: BitcoindRPC, block_hash: bytes, *, fee_rate_sat_vb: Decimal) -> tuple[bytes, int]:
    """Unsigned anchor transaction with the wallet's inputs and change, at
    ``fee_rate_sat_vb``, and the fee in satoshi it pays."""
    result = wallet.fund_raw_transaction(build_unfunded(block_hash), Decimal(fee_rate_sat_vb))
    check_anchor(result.raw_tx, block_hash)
    return result.raw_tx, _btc_to_sat(result.fee_btc)


def sign(wallet: BitcoindRPC, funded: bytes) -> bytes:
    result = wallet.sign_raw_transaction(funded)
    if not result.complete:
        raise AnchorTxError(f"the wallet could not sign every input: {list(result.errors)}")
    return result.raw_tx


def broadcast(wallet: BitcoindRPC, signed_tx: bytes, *, fee_rate_max_sat_vb: Decimal) -> str:
    """Send to the network; bitcoind also refuses it above ``fee_rate_max_sat_vb``."""
    txid = wallet.send_raw_transaction(signed_tx, Decimal(fee_rate_max_sat_vb) * _SAT_VB_TO_BTC_KVB)
    return hash_to_hex(txid)


def fee_within_cap(fee_sat: int, vsize: int, input_count: int, fee_rate_max_sat_vb: Decimal) -> bool:
    """True if ``fee_sat`` is what a transaction of ``vsize`` asked for at most the cap may pay.

    The wallet sizes a transaction before signing it, counting every signature at its
    largest DER encoding, then rounds the fee up; the signed transaction is then up to
    one vbyte per input smaller than the size the fee was computed for (measured
    here: 2.5 sat/vB asked, 2.516 paid). So a fee counts as within the cap when it is
    at most the cap times (vsize + FEE_ROUNDING_VBYTES_PER_INPUT per input), rounded up:
    asking for exactly the cap is then always accepted, and nothing above the cap's
    own rounding is.
    """
    allowed = Decimal(fee_rate_max_sat_vb) * (vsize + FEE_ROUNDING_VBYTES_PER_INPUT * input_count)
    return fee_sat <= math.ceil(allowed)


def send_fee_rate_max_sat_vb(record: AnchorTx, fee_rate_max_sat_vb: Decimal) -> Decimal:
    """The ``maxfeerate`` for sendrawtransaction: the cap, or the transaction's own rate
    (rounded up to 0.001 sat/vB) when the wallet's rounding put it a hair above the cap;
    the cap itself was checked by ``fee_within_cap`` already."""
    own = (Decimal(record.fee_sat) / Decimal(record.vsize)).quantize(Decimal("0.001"), rounding=ROUND_CEILING)
    return max(Decimal(fee_rate_max_sat_vb), own)


def _record(raw_tx: bytes, block_hash: bytes, fee_sat: int, fee_rate_max_sat_vb: Decimal) -> AnchorTx:
    tx, vout = check_anchor(raw_tx, block_hash)
    record = AnchorTx(
        txid=hash_to_hex(tx.txid),
        raw_tx=raw_tx,
        block_hash=block_hash,
        vout=vout,
        fee_sat=fee_sat,
        vsize=vsize_of(tx, raw_tx),
    )
    if not fee_within_cap(fee_sat, record.vsize, tx.input_count, fee_rate_max_sat_vb):
        raise AnchorTxError(
            f"anchor transaction would pay {record.fee_rate_sat_vb:.2f} sat/vB, above the cap "
            f"of {fee_rate_max_sat_vb} sat/vB"
        )
    return record


def create_anchor(
    wallet: BitcoindRPC,
    block_hash: bytes,
    *,
    fee_rate_sat_vb: Decimal,
    fee_rate_max_sat_vb: Decimal = FEE_RATE_MAX_SAT_VB_DEFAULT,
    send: bool = True,
) -> AnchorTx:
    """Fund, sign, check and (unless ``send`` is false) broadcast an anchor of ``block_hash``."""
    _check_fee_rate(fee_rate_sat_vb, fee_rate_max_sat_vb)
    funded, fee_sat = fund(wallet, block_hash, fee_rate_sat_vb=fee_rate_sat_vb)
    signed_tx = sign(wallet, funded)
    record = _record(signed_tx, block_hash, fee_sat, fee_rate_max_sat_vb)
    if send:
        txid = broadcast(wallet, signed_tx, fee_rate_max_sat_vb=send_fee_rate_max_sat_vb(record, fee_rate_max_sat_vb))
        if txid != record.txid:
            raise AnchorTxError(f"bitcoind accepted txid {txid}, but the signed transaction's txid is {record.txid}")
    return record


def _check_fee_rate(fee_rate_sat_vb: Decimal, fee_rate_max_sat_vb: Decimal) -> None:
    if not 0 < fee_rate_sat_vb <= fee_rate_max_sat_vb:
        raise AnchorTxError(
            f"fee rate {fee_rate_sat_vb} sat/vB is outside (0, {fee_rate_max_sat_vb}] sat/vB, the operator's cap"
        )


def bump_fee(
    wallet: BitcoindRPC,
    anchor: AnchorTx,
    *,
    fee_rate_sat_vb: Decimal,
    fee_rate_max_sat_vb: Decimal = FEE_RATE_MAX_SAT_VB_DEFAULT,
) -> AnchorTx:
    """Replace ``anchor`` (BIP 125) at a higher fee rate, checked against the cap BEFORE it is sent.

    ``psbtbumpfee`` builds the replacement without broadcasting it (the fee comes out
    of the change), the wallet signs it (``walletprocesspsbt``, ``finalizepsbt``), and
    only a replacement that still anchors the same block and pays at most the cap
    (with the wallet's rounding, see ``fee_within_cap``) is handed to
    ``sendrawtransaction``. The wallet's plain ``bumpfee`` broadcasts first, so a
    refusal there would come too late. Returns the replacement's record (a new txid).
    """
    _check_fee_rate(fee_rate_sat_vb, fee_rate_max_sat_vb)
    for _ in range(BUMP_ASKS_MAX):
        raw_tx, fee_btc = _signed_replacement(wallet, anchor, Decimal(fee_rate_sat_vb))
        if check_anchor(raw_tx, anchor.block_hash)[0].lock_time != PARASITE_LOCK_TIME:
            break
    else:
        raise AnchorTxError(
            f"the wallet gave every one of {BUMP_ASKS_MAX} replacements of {anchor.txid} lock time "
            f"{PARASITE_LOCK_TIME}, which Knots refuses to relay (parasite-cat21); it picks lock times "
            "near the tip, so this passes once the chain is past height 120"
        )
    record = _record(raw_tx, anchor.block_hash, _btc_to_sat(fee_btc), fee_rate_max_sat_vb)
    txid = broadcast(wallet, raw_tx, fee_rate_max_sat_vb=send_fee_rate_max_sat_vb(record, fee_rate_max_sat_vb))
    if txid != record.txid:
        raise AnchorTxError(f"bitcoind accepted txid {txid}, but the replacement's txid is {record.txid}")
    return record


def _signed_replacement(wallet: BitcoindRPC, anchor: AnchorTx, fee_rate_sat_vb: Decimal) -> tuple[bytes, Decimal]:
    """The wallet's signed replacement of ``anchor`` (not sent) and the fee it pays in BTC."""
    result = wallet.psbt_bump_fee(hex_to_hash(anchor.txid), fee_rate_sat_vb)
    if result.errors:
        raise AnchorTxError(f"psbtbumpfee of {anchor.txid} reported errors: {list(result.errors)}")
    processed = wallet.process_psbt(result.psbt)
    finalized = wallet.finalize_psbt(processed.psbt)
    if finalized.raw_tx is None:
        raise AnchorTxError(f"the wallet could not sign every input of the replacement of {anchor.txid}")
    return finalized.raw_tx, result.fee_btc
