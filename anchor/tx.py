"""Build, fund, sign, broadcast and fee-bump the anchor transaction.

The transaction is built with python-bitcoinlib (one OP_RETURN output carrying the
anchor payload, version 2), then handed to the bitcoind wallet: ``fundrawtransaction``
adds inputs and a change output (Knots refuses to relay a transaction whose only
output is OP_RETURN) and signals BIP 125 replaceability so that ``bumpfee`` can
raise the fee later. Before anything is broadcast the wallet's result is parsed
again with the auditor's parser (proof.spv) and checked: the wallet must not have
changed what is anchored, and the fee must be under the operator's cap.

No address is ever handled here, so python-bitcoinlib's process-wide network
selection (``bitcoin.SelectParams``) plays no part: the same code serves every
network, and several validators in one process cannot disturb each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from bitcoin.core import CMutableTransaction, CMutableTxOut, CTransaction
from bitcoin.core.script import CScript

from anchor.payload import decode_payload, encode_script
from anchor.rpc import BitcoindRPC
from proof.errors import DecodeError, PantheonError
from proof.spv import Transaction, hash_to_hex, parse_transaction

TX_VERSION = 2
# nSequence at or below this signals BIP 125 replaceability.
SEQUENCE_RBF_MAX = 0xFFFFFFFD
SAT_PER_BTC = 100_000_000
# sat/vB -> BTC/kvB (the unit of sendrawtransaction's maxfeerate).
_SAT_VB_TO_BTC_KVB = Decimal(1000) / SAT_PER_BTC
FEE_RATE_MAX_SAT_VB_DEFAULT = Decimal(500)
WITNESS_SCALE = 4


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
    result = wallet.call(
        "fundrawtransaction",
        build_unfunded(block_hash).hex(),
        {"fee_rate": Decimal(fee_rate_sat_vb), "replaceable": True},
    )
    funded = bytes.fromhex(result["hex"])
    check_anchor(funded, block_hash)
    return funded, _btc_to_sat(result["fee"])


def sign(wallet: BitcoindRPC, funded: bytes) -> bytes:
    result = wallet.call("signrawtransactionwithwallet", funded.hex())
    if not result.get("complete"):
        raise AnchorTxError(f"the wallet could not sign every input: {result.get('errors')}")
    return bytes.fromhex(result["hex"])


def broadcast(wallet: BitcoindRPC, signed_tx: bytes, *, fee_rate_max_sat_vb: Decimal) -> str:
    """Send to the network; bitcoind also refuses it above ``fee_rate_max_sat_vb``."""
    return wallet.call("sendrawtransaction", signed_tx.hex(), Decimal(fee_rate_max_sat_vb) * _SAT_VB_TO_BTC_KVB)


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
    if record.fee_rate_sat_vb > fee_rate_max_sat_vb:
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
        txid = broadcast(wallet, signed_tx, fee_rate_max_sat_vb=fee_rate_max_sat_vb)
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
    """Replace ``anchor`` (BIP 125) by the wallet's ``bumpfee`` at a higher fee rate.

    The fee comes out of the change; the OP_RETURN is kept, and checked to be kept.
    Returns the replacement's record (a new txid).
    """
    _check_fee_rate(fee_rate_sat_vb, fee_rate_max_sat_vb)
    result = wallet.call("bumpfee", anchor.txid, {"fee_rate": Decimal(fee_rate_sat_vb)})
    if result.get("errors"):
        raise AnchorTxError(f"bumpfee of {anchor.txid} reported errors: {result['errors']}")
    replacement = wallet.call("gettransaction", result["txid"])
    raw_tx = bytes.fromhex(replacement["hex"])
    record = _record(raw_tx, anchor.block_hash, _btc_to_sat(result["fee"]), fee_rate_max_sat_vb)
    if record.txid != result["txid"]:
        raise AnchorTxError(f"bumpfee reported txid {result['txid']}, but the replacement's txid is {record.txid}")
    return record
