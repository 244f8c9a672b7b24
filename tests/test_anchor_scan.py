"""anchor.scan: the Pantheon anchors of a raw block, and blocks that do not parse."""

import pytest
from bitcoin.core import CMutableTransaction, CMutableTxIn, CMutableTxOut, COutPoint, CScript

from anchor.payload import encode_script
from anchor.scan import FoundAnchor, anchors_in_block
from proof.errors import DecodeError
from proof.hashing import sha256d
from proof.spv import parse_transaction

PANTHEON_HASH = bytes.fromhex("d4" * 32)
HEADER = bytes(range(80))


def tx(outputs, *, witness: bool = False, seed: int = 0) -> bytes:
    built = CMutableTransaction(
        [CMutableTxIn(COutPoint(sha256d(bytes([seed])), 0), nSequence=0xFFFFFFFD)],
        [CMutableTxOut(value, CScript(script)) for value, script in outputs],
        nVersion=2,
    )
    raw = built.serialize()
    if witness:  # BIP 144: marker and flag after the version, one 2-item stack before the lock time
        raw = raw[:4] + b"\x00\x01" + raw[4:-4] + b"\x02\x48" + b"\x01" * 72 + b"\x21" + b"\x02" * 33 + raw[-4:]
    return raw


def block(*txs: bytes) -> bytes:
    return HEADER + bytes([len(txs)]) + b"".join(txs)


CHANGE = (10_000, b"\x00\x14" + b"\x11" * 20)


def test_the_anchor_output_of_each_transaction_is_found_with_its_txid_and_vout():
    plain = tx([CHANGE], seed=1)
    anchor = tx([CHANGE, (0, encode_script(PANTHEON_HASH))], witness=True, seed=2)
    raw = block(plain, anchor)
    assert anchors_in_block(raw, sha256d(HEADER)) == [FoundAnchor(parse_transaction(anchor).txid, 1, PANTHEON_HASH)]


def test_foreign_op_returns_and_two_anchors_in_one_transaction_are_not_anchors():
    foreign = tx([CHANGE, (0, b"\x6a\x04abcd")], seed=3)
    double = tx([(0, encode_script(PANTHEON_HASH)), (0, encode_script(bytes(32)))], seed=4)
    assert anchors_in_block(block(foreign, double), sha256d(HEADER)) == []


@pytest.mark.parametrize(
    "raw, block_hash",
    [
        (block(tx([CHANGE])) + b"\x00", sha256d(HEADER)),
        (block(tx([CHANGE]))[:-1], sha256d(HEADER)),
        (block(tx([CHANGE])), sha256d(b"another header")),
        (HEADER + b"\x00", sha256d(HEADER)),
    ],
    ids=["trailing byte", "truncated", "another block", "no transaction"],
)
def test_a_block_that_does_not_parse_whole_is_a_decode_error(raw, block_hash):
    with pytest.raises(DecodeError):
        anchors_in_block(raw, block_hash)
