"""bitcoind's RPC results as typed, validated values: one frozen dataclass and one parser per call.

bitcoind is outside the validator's trust boundary (docs/operator.md, "bitcoind trouble"):
a buggy, misconfigured, upgraded or compromised one can answer anything. So no caller
reads a raw JSON value: every result the node uses goes through a parser here that
checks its shape (object, list, string), each field's JSON type (a bool is not an int),
its range (heights, confirmations, amounts), hex lengths (a hash is 64 hex digits, a
header 160) and, where the caller knows it, that the answer is about what was asked
(the block hash, the txid). Extra keys are ignored (bitcoind adds fields between
releases); missing ones are not.

Parsers are pure and raise ReplyShapeError with what was wrong; anchor.rpc turns it
into BitcoindReplyInvalid naming the method and the bitcoind, so that an operator sees
one specific error and the node one error type. Hashes and txids come back in internal
byte order (proof.spv.hex_to_hash), amounts as Decimal BTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from proof.errors import DecodeError
from proof.hashing import HASH_SIZE, sha256d
from proof.spv import HEADER_SIZE, TX_SIZE_MAX, hex_to_hash, parse_transaction

# Bitcoin's height is near 10**6 after 16 years; anything past this bound is a lie.
HEIGHT_MAX = 100_000_000
# bitcoind's own limit on supply (21 million BTC), the bound on any amount it reports.
BTC_AMOUNT_MAX = Decimal(21_000_000)
SATOSHI_DECIMALS = 8
# A 4 MWU block holds fewer than 2**17 transactions (60-byte minimum each).
BLOCK_TX_COUNT_MAX = 1 << 17
# A BIP 37 merkle block matching one transaction of the largest block, with room to spare.
MERKLE_BLOCK_SIZE_MAX = 64 * 1024
# A PSBT of a small anchor transaction (a few inputs, one OP_RETURN, change) is a few KB.
PSBT_SIZE_MAX = 1024 * 1024
# Wallet errors listed by signrawtransactionwithwallet or psbtbumpfee, kept for the message.
ERRORS_LISTED_MAX = 16
TEXT_SIZE_MAX = 500
# Characters of a reply's value quoted in an error message.
CLIP_SIZE = 60
KNOWN_CHAINS = frozenset({"main", "test", "testnet4", "signet", "regtest"})
_HEX = re.compile(r"[0-9a-fA-F]*")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


class ReplyShapeError(ValueError):
    """A result does not have the shape, types or ranges its method promises."""


# --------------------------------------------------------------------------- field readers


def _object(value: object, what: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ReplyShapeError(f"{what} is {_kind(value)}, expected a JSON object")
    return value


def _field(obj: dict[str, object], key: str) -> object:
    if key not in obj:
        raise ReplyShapeError(f"result has no {key!r}")
    return obj[key]


def _int(value: object, what: str, low: int, high: int) -> int:
    if type(value) is not int:
        raise ReplyShapeError(f"{what} is {_kind(value)}, expected an integer")
    if not low <= value <= high:
        raise ReplyShapeError(f"{what} {_clip(value)} is outside {low}..{high}")
    return value


def _bool(value: object, what: str) -> bool:
    if type(value) is not bool:
        raise ReplyShapeError(f"{what} is {_kind(value)}, expected true or false")
    return value


def _str(value: object, what: str, size_max: int = TEXT_SIZE_MAX) -> str:
    if not isinstance(value, str):
        raise ReplyShapeError(f"{what} is {_kind(value)}, expected a string")
    if len(value) > size_max:
        raise ReplyShapeError(f"{what} is {len(value)} characters, above {size_max}")
    return value


def _hex(value: object, what: str, *, size_min: int, size_max: int) -> bytes:
    """Hex text of a byte string of ``size_min..size_max`` bytes."""
    text = _str(value, what, 2 * size_max)
    if len(text) % 2 or not _HEX.fullmatch(text):
        raise ReplyShapeError(f"{what} is not hex: {_clip(text)}")
    if len(text) < 2 * size_min:
        raise ReplyShapeError(f"{what} is {len(text) // 2} bytes, expected at least {size_min}")
    return bytes.fromhex(text)


def _hash(value: object, what: str) -> bytes:
    """A txid or block hash as bitcoind prints it (64 hex digits), in internal byte order."""
    text = _str(value, what, 2 * HASH_SIZE)
    if len(text) != 2 * HASH_SIZE or not _HEX.fullmatch(text):
        raise ReplyShapeError(f"{what} {_clip(text)} is not a 64-digit hex hash")
    return hex_to_hash(text)


def _optional_hash(obj: dict[str, object], key: str) -> bytes | None:
    value = obj.get(key)
    return None if value is None else _hash(value, key)


def _amount(value: object, what: str) -> Decimal:
    """A BTC amount (bitcoind prints 8 decimals; json is read with parse_float=Decimal)."""
    if type(value) is not int and not isinstance(value, Decimal):
        raise ReplyShapeError(f"{what} is {_kind(value)}, expected a BTC amount")
    amount = Decimal(value)
    if not amount.is_finite() or abs(amount) > BTC_AMOUNT_MAX:
        raise ReplyShapeError(f"{what} {_clip(value)} is not an amount of at most {BTC_AMOUNT_MAX} BTC")
    if amount != amount.quantize(Decimal(1).scaleb(-SATOSHI_DECIMALS)):
        raise ReplyShapeError(f"{what} {_clip(value)} is not a whole number of satoshi")
    return amount


def _texts(value: object, what: str) -> tuple[str, ...]:
    """Wallet errors for a message: a list of strings (psbtbumpfee) or of objects with an
    "error" string (signrawtransactionwithwallet); anything else is described, not printed."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ReplyShapeError(f"{what} is {_kind(value)}, expected a list")
    return tuple(_text_of(item) for item in value[:ERRORS_LISTED_MAX])


def _text_of(item: object) -> str:
    if isinstance(item, dict) and isinstance(item.get("error"), str):
        item = item["error"]
    return _clip(item) if isinstance(item, str) else _kind(item)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, Decimal, float)):
        return f"the number {_clip(value)}"
    if isinstance(value, str):
        return f"the string {_clip(value)}"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _clip(value: object) -> str:
    """A short printable form of a string or number from a reply, cut before it is copied."""
    if isinstance(value, str):
        return repr(value[:CLIP_SIZE]) + (f"... ({len(value)} characters)" if len(value) > CLIP_SIZE else "")
    text = str(value)
    return text if len(text) <= CLIP_SIZE else text[:CLIP_SIZE] + f"... ({len(text)} digits)"


# --------------------------------------------------------------------------- node calls


@dataclass(frozen=True)
class ChainInfo:
    """getblockchaininfo: which network bitcoind follows and how far."""

    chain: str
    blocks: int
    best_block_hash: bytes


def parse_chain_info(value: object) -> ChainInfo:
    obj = _object(value, "result")
    chain = _str(_field(obj, "chain"), "chain", 32)
    if chain not in KNOWN_CHAINS:
        raise ReplyShapeError(f"chain {_clip(chain)} is none of {', '.join(sorted(KNOWN_CHAINS))}")
    return ChainInfo(
        chain=chain,
        blocks=_int(_field(obj, "blocks"), "blocks", 0, HEIGHT_MAX),
        best_block_hash=_hash(_field(obj, "bestblockhash"), "bestblockhash"),
    )


def parse_hash(value: object) -> bytes:
    """getbestblockhash, sendrawtransaction: one hash or txid."""
    return _hash(value, "result")


@dataclass(frozen=True)
class HeaderInfo:
    """getblockheader (verbose): where a block is. ``confirmations`` is -1 for a block
    off the best chain, else at least 1 (bitcoind never says 0 of a block)."""

    block_hash: bytes
    height: int
    confirmations: int
    previous: bytes | None

    @property
    def on_best_chain(self) -> bool:
        return self.confirmations >= 1


def _confirmations(obj: dict[str, object]) -> int:
    confirmations = _int(_field(obj, "confirmations"), "confirmations", -1, HEIGHT_MAX + 1)
    if confirmations == 0:
        raise ReplyShapeError("confirmations is 0, which bitcoind never reports of a block")
    return confirmations


def _same_block(obj: dict[str, object], block_hash: bytes) -> bytes:
    answered = _hash(_field(obj, "hash"), "hash")
    if answered != block_hash:
        raise ReplyShapeError(f"answer is about block {answered[::-1].hex()}, not the one asked for")
    return answered


def parse_header_info(value: object, block_hash: bytes) -> HeaderInfo:
    obj = _object(value, "result")
    height = _int(_field(obj, "height"), "height", 0, HEIGHT_MAX)
    previous = _optional_hash(obj, "previousblockhash")
    if previous is None and height > 0:
        raise ReplyShapeError(f"block at height {height} has no previousblockhash")
    return HeaderInfo(
        block_hash=_same_block(obj, block_hash), height=height, confirmations=_confirmations(obj), previous=previous
    )


def parse_raw_header(value: object, block_hash: bytes) -> bytes:
    """getblockheader (not verbose): the 80-byte header, which must hash to ``block_hash``."""
    header = _hex(value, "result", size_min=HEADER_SIZE, size_max=HEADER_SIZE)
    if sha256d(header) != block_hash:
        raise ReplyShapeError(f"header does not hash to block {block_hash[::-1].hex()}")
    return header


@dataclass(frozen=True)
class BlockInfo:
    """getblock (verbosity 1): a block's place and its transactions' txids."""

    header: HeaderInfo
    txids: tuple[bytes, ...]


def parse_block_info(value: object, block_hash: bytes) -> BlockInfo:
    header = parse_header_info(value, block_hash)
    txs = _field(_object(value, "result"), "tx")
    if not isinstance(txs, list) or not 1 <= len(txs) <= BLOCK_TX_COUNT_MAX:
        raise ReplyShapeError(f"tx is {_kind(txs)}, expected a list of 1..{BLOCK_TX_COUNT_MAX} txids")
    return BlockInfo(header=header, txids=tuple(_hash(txid, "txid") for txid in txs))


# A serialized block is at most 4 MB.
RAW_BLOCK_SIZE_MAX = 4_000_000


def parse_raw_block(value: object) -> bytes:
    """getblock (verbosity 0): hex of at least a header and one transaction."""
    return _hex(value, "result", size_min=HEADER_SIZE + 61, size_max=RAW_BLOCK_SIZE_MAX)


def parse_raw_transaction(value: object, txid: bytes) -> bytes:
    """getrawtransaction (not verbose): a transaction that parses and has ``txid``."""
    raw = _hex(value, "result", size_min=1, size_max=TX_SIZE_MAX)
    try:
        parsed = parse_transaction(raw)
    except DecodeError as exc:
        raise ReplyShapeError(f"transaction does not parse: {exc}") from exc
    if parsed.txid != txid:
        raise ReplyShapeError(f"transaction has txid {parsed.txid[::-1].hex()}, not the one asked for")
    return raw


def parse_merkle_block_hex(value: object) -> bytes:
    """gettxoutproof: the BIP 37 merkle block's bytes (anchor.spv parses the tree)."""
    return _hex(value, "result", size_min=HEADER_SIZE + 4, size_max=MERKLE_BLOCK_SIZE_MAX)


def parse_mempool_entry(value: object) -> bool:
    """getmempoolentry: an object when the transaction waits in the mempool."""
    _object(value, "result")
    return True


# --------------------------------------------------------------------------- wallet calls


@dataclass(frozen=True)
class WalletTx:
    """gettransaction: a wallet transaction's place and, when it replaced or was
    replaced, the txids involved. ``confirmations`` < 0 means conflicted."""

    txid: bytes
    confirmations: int
    block_hash: bytes | None
    raw_tx: bytes
    fee_btc: Decimal | None
    replaced_by: bytes | None
    mempool_conflicts: tuple[bytes, ...]
    wallet_conflicts: tuple[bytes, ...] = ()
    """Wallet transactions spending the same inputs, in a block or not (``walletconflicts``)."""


def parse_wallet_tx(value: object, txid: bytes) -> WalletTx:
    obj = _object(value, "result")
    answered = _hash(_field(obj, "txid"), "txid")
    if answered != txid:
        raise ReplyShapeError(f"answer is about txid {answered[::-1].hex()}, not the one asked for")
    confirmations = _int(_field(obj, "confirmations"), "confirmations", -HEIGHT_MAX, HEIGHT_MAX + 1)
    block_hash = _optional_hash(obj, "blockhash")
    if confirmations >= 1 and block_hash is None:
        raise ReplyShapeError(f"confirmed ({confirmations}) without a blockhash")
    conflicts = obj.get("mempoolconflicts")
    if conflicts is not None and (not isinstance(conflicts, list) or len(conflicts) > BLOCK_TX_COUNT_MAX):
        raise ReplyShapeError(f"mempoolconflicts is {_kind(conflicts)}, expected a list of txids")
    wallet_conflicts = obj.get("walletconflicts")
    if wallet_conflicts is not None and (
        not isinstance(wallet_conflicts, list) or len(wallet_conflicts) > BLOCK_TX_COUNT_MAX
    ):
        raise ReplyShapeError(f"walletconflicts is {_kind(wallet_conflicts)}, expected a list of txids")
    fee = obj.get("fee")
    return WalletTx(
        txid=answered,
        confirmations=confirmations,
        block_hash=block_hash,
        raw_tx=_hex(_field(obj, "hex"), "hex", size_min=1, size_max=TX_SIZE_MAX),
        fee_btc=None if fee is None else _amount(fee, "fee"),
        replaced_by=_optional_hash(obj, "replaced_by_txid"),
        mempool_conflicts=tuple(_hash(t, "mempoolconflicts entry") for t in conflicts or ()),
        wallet_conflicts=tuple(_hash(t, "walletconflicts entry") for t in wallet_conflicts or ()),
    )


@dataclass(frozen=True)
class FeeEstimate:
    """estimatesmartfee: the fee rate (BTC/kvB) for the target, or None when bitcoind has
    too little data (it then answers with "errors" and no "feerate", as on a fresh regtest)."""

    fee_rate_btc_kvb: Decimal | None


def parse_fee_estimate(value: object) -> FeeEstimate:
    obj = _object(value, "result")
    rate = obj.get("feerate")
    return FeeEstimate(None if rate is None else _amount(rate, "feerate"))


# listtransactions entries read when a node reconciles its wallet with its records at start.
WALLET_TXS_LISTED_MAX = 10_000


def parse_wallet_txids(value: object) -> tuple[bytes, ...]:
    """listtransactions: the distinct txids of the entries, newest first (bitcoind lists
    oldest first; one transaction can have several entries, one per output)."""
    if not isinstance(value, list) or len(value) > WALLET_TXS_LISTED_MAX:
        raise ReplyShapeError(f"result is {_kind(value)}, expected a list of at most {WALLET_TXS_LISTED_MAX} entries")
    txids = [_hash(_field(_object(entry, "entry"), "txid"), "txid") for entry in value]
    return tuple(dict.fromkeys(reversed(txids)))


@dataclass(frozen=True)
class FundedTx:
    """fundrawtransaction: the transaction with the wallet's inputs and change, and its fee."""

    raw_tx: bytes
    fee_btc: Decimal


def parse_funded_tx(value: object) -> FundedTx:
    obj = _object(value, "result")
    fee = _amount(_field(obj, "fee"), "fee")
    if fee < 0:
        raise ReplyShapeError(f"fee {fee} is negative")
    return FundedTx(raw_tx=_hex(_field(obj, "hex"), "hex", size_min=1, size_max=TX_SIZE_MAX), fee_btc=fee)


@dataclass(frozen=True)
class SignedTx:
    """signrawtransactionwithwallet: the signed transaction, whether every input is signed."""

    raw_tx: bytes
    complete: bool
    errors: tuple[str, ...]


def parse_signed_tx(value: object) -> SignedTx:
    obj = _object(value, "result")
    return SignedTx(
        raw_tx=_hex(_field(obj, "hex"), "hex", size_min=1, size_max=TX_SIZE_MAX),
        complete=_bool(_field(obj, "complete"), "complete"),
        errors=_texts(obj.get("errors"), "errors"),
    )


@dataclass(frozen=True)
class PsbtBump:
    """psbtbumpfee: the unsigned replacement and the fee it pays."""

    psbt: str
    fee_btc: Decimal
    errors: tuple[str, ...]


def _psbt(value: object, what: str) -> str:
    text = _str(value, what, PSBT_SIZE_MAX)
    if not text or not _BASE64.fullmatch(text):
        raise ReplyShapeError(f"{what} is not base64")
    return text


def parse_psbt_bump(value: object) -> PsbtBump:
    obj = _object(value, "result")
    fee = _amount(_field(obj, "fee"), "fee")
    if fee < 0:
        raise ReplyShapeError(f"fee {fee} is negative")
    return PsbtBump(psbt=_psbt(_field(obj, "psbt"), "psbt"), fee_btc=fee, errors=_texts(obj.get("errors"), "errors"))


@dataclass(frozen=True)
class ProcessedPsbt:
    """walletprocesspsbt: the PSBT with the wallet's signatures."""

    psbt: str
    complete: bool


def parse_processed_psbt(value: object) -> ProcessedPsbt:
    obj = _object(value, "result")
    return ProcessedPsbt(psbt=_psbt(_field(obj, "psbt"), "psbt"), complete=_bool(_field(obj, "complete"), "complete"))


@dataclass(frozen=True)
class FinalizedPsbt:
    """finalizepsbt (extract): the network transaction once complete, else nothing."""

    raw_tx: bytes | None
    complete: bool


def parse_finalized_psbt(value: object) -> FinalizedPsbt:
    obj = _object(value, "result")
    complete = _bool(_field(obj, "complete"), "complete")
    if not complete:
        return FinalizedPsbt(raw_tx=None, complete=False)
    return FinalizedPsbt(raw_tx=_hex(_field(obj, "hex"), "hex", size_min=1, size_max=TX_SIZE_MAX), complete=True)
