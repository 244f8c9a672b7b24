"""The anchor OP_RETURN payload: PNTH, version 1, 32-byte Pantheon block hash; decoded strictly."""

import os

import pytest
from bitcoin.core.script import OP_RETURN, CScript

from anchor.payload import PAYLOAD_SIZE, SCRIPT_SIZE, decode_payload, encode_payload, encode_script
from proof.errors import DecodeError, EncodeError

BLOCK_HASH = bytes(range(32))


def test_payload_is_magic_version_and_hash():
    assert encode_payload(BLOCK_HASH) == b"PNTH\x01" + BLOCK_HASH
    assert PAYLOAD_SIZE == 37 and SCRIPT_SIZE == 39


def test_script_is_what_python_bitcoinlib_builds_for_op_return_and_the_payload():
    assert encode_script(BLOCK_HASH) == bytes(CScript([OP_RETURN, encode_payload(BLOCK_HASH)]))


@pytest.mark.parametrize("encoded", [encode_payload, encode_script], ids=["payload", "script"])
def test_decode_returns_the_block_hash(encoded):
    block_hash = os.urandom(32)
    assert decode_payload(encoded(block_hash)) == block_hash


@pytest.mark.parametrize(
    "data, message",
    [
        (b"PNTX\x01" + BLOCK_HASH, "starts with"),
        (b"PNTH\x02" + BLOCK_HASH, "version is 2"),
        (b"PNTH\x01" + BLOCK_HASH[:31], "36 bytes"),
        (b"PNTH\x01" + BLOCK_HASH + b"\x00", "38 bytes"),
        (b"\x6a\x4c\x25" + b"PNTH\x01" + BLOCK_HASH, "script is 40 bytes"),
        (b"\x6a\x24" + b"PNTH\x01" + BLOCK_HASH[:31] + b"\x00", "opcode 0x24"),
        (encode_script(BLOCK_HASH) + b"\x00", "script is 40 bytes"),
        (b"", "0 bytes"),
    ],
    ids=["magic", "version", "short", "long", "pushdata1", "wrong-push", "script-extra", "empty"],
)
def test_anything_but_the_exact_form_is_refused(data, message):
    with pytest.raises(DecodeError, match=message):
        decode_payload(data)


@pytest.mark.parametrize("value", [b"\x00" * 31, b"\x00" * 33, "00" * 32])
def test_block_hash_of_wrong_size_or_type_cannot_be_encoded(value):
    with pytest.raises(EncodeError, match="32 bytes"):
        encode_payload(value)
