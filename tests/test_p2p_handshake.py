"""The p2p handshake as a specification: sans-IO, two state machines back to back, no sockets."""

from __future__ import annotations

import struct

import pytest

from p2p.errors import HandshakeError, HandshakeFailure, P2PConfigError
from p2p.handshake import (
    HANDSHAKE_RECORD_BYTES_MAX,
    MAGIC,
    PROTOCOL_VERSION,
    Handshake,
    Hello,
    LocalIdentity,
    MessageType,
    Reply,
    record,
)
from proof import mldsa
from proof.mldsa import SigningKey

CHAIN = bytes(range(32))
OTHER_CHAIN = bytes(range(1, 33))
KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(5)]
DIRECTORY = {i: KEYS[i].public_key for i in range(4)}


def identity(index: int, *, chain: bytes = CHAIN, key: SigningKey | None = None) -> LocalIdentity:
    return LocalIdentity(chain, index, key or KEYS[index])


def run(initiator: Handshake, responder: Handshake) -> None:
    responder.receive_data(initiator.data_to_send())
    initiator.receive_data(responder.data_to_send())
    responder.receive_data(initiator.data_to_send())


def refusal(excinfo: pytest.ExceptionInfo[HandshakeError]) -> HandshakeFailure:
    return excinfo.value.reason


def body_of(wire: bytes) -> bytes:
    (length,) = struct.unpack_from(">I", wire)
    assert len(wire) == 4 + length
    return wire[4:]


@pytest.mark.parametrize(("dialer", "listener"), [(0, 1), (1, 0)])
def test_handshake_authenticates_both_sides_and_agrees_on_keys(dialer: int, listener: int) -> None:
    initiator = Handshake.initiator(identity(dialer), DIRECTORY, listener)
    responder = Handshake.responder(identity(listener), DIRECTORY)
    run(initiator, responder)
    assert initiator.complete and responder.complete
    assert initiator.result.peer_index == listener
    assert responder.result.peer_index == dialer
    assert initiator.result.send_key == responder.result.receive_key
    assert initiator.result.receive_key == responder.result.send_key
    assert initiator.result.transcript_hash == responder.result.transcript_hash


def test_each_direction_gets_its_own_key() -> None:
    initiator = Handshake.initiator(identity(0), DIRECTORY, 1)
    responder = Handshake.responder(identity(1), DIRECTORY)
    run(initiator, responder)
    assert initiator.result.send_key != initiator.result.receive_key


def test_two_handshakes_between_the_same_pair_derive_unrelated_keys() -> None:
    keys = []
    for _ in range(2):
        initiator = Handshake.initiator(identity(0), DIRECTORY, 1)
        responder = Handshake.responder(identity(1), DIRECTORY)
        run(initiator, responder)
        keys.append(initiator.result.send_key)
    assert keys[0] != keys[1]


def test_handshake_completes_when_bytes_arrive_one_at_a_time() -> None:
    initiator = Handshake.initiator(identity(0), DIRECTORY, 1)
    responder = Handshake.responder(identity(1), DIRECTORY)
    for sender, receiver in ((initiator, responder), (responder, initiator), (initiator, responder)):
        for byte in sender.data_to_send():
            receiver.receive_data(bytes([byte]))
    assert initiator.complete and responder.complete


def test_bytes_after_the_last_handshake_message_are_kept_for_the_frame_layer() -> None:
    initiator = Handshake.initiator(identity(0), DIRECTORY, 1)
    responder = Handshake.responder(identity(1), DIRECTORY)
    responder.receive_data(initiator.data_to_send())
    initiator.receive_data(responder.data_to_send())
    responder.receive_data(initiator.data_to_send() + b"first frame")
    assert responder.trailing_data() == b"first frame"


def test_hello_from_an_index_the_genesis_does_not_list_is_refused() -> None:
    stranger = Handshake.initiator(identity(4), {**DIRECTORY, 4: KEYS[4].public_key}, 1)
    responder = Handshake.responder(identity(1), DIRECTORY)
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(stranger.data_to_send())
    assert refusal(excinfo) is HandshakeFailure.UNKNOWN_VALIDATOR


def test_hello_with_a_key_other_than_the_genesis_key_is_refused() -> None:
    impostor_view = {**DIRECTORY, 2: KEYS[4].public_key}
    impostor = Handshake.initiator(identity(2, key=KEYS[4]), impostor_view, 1)
    responder = Handshake.responder(identity(1), DIRECTORY)
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(impostor.data_to_send())
    assert refusal(excinfo) is HandshakeFailure.KEY_MISMATCH


def test_reply_with_a_key_other_than_the_genesis_key_is_refused() -> None:
    initiator = Handshake.initiator(identity(0), DIRECTORY, 1)
    impostor = Handshake.responder(identity(1, key=KEYS[4]), {**DIRECTORY, 1: KEYS[4].public_key})
    impostor.receive_data(initiator.data_to_send())
    with pytest.raises(HandshakeError) as excinfo:
        initiator.receive_data(impostor.data_to_send())
    assert refusal(excinfo) is HandshakeFailure.KEY_MISMATCH


def test_hello_from_another_chain_is_refused() -> None:
    foreigner = Handshake.initiator(identity(0, chain=OTHER_CHAIN), DIRECTORY, 1)
    responder = Handshake.responder(identity(1), DIRECTORY)
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(foreigner.data_to_send())
    assert refusal(excinfo) is HandshakeFailure.CHAIN_ID_MISMATCH


def test_reply_from_another_chain_is_refused() -> None:
    initiator = Handshake.initiator(identity(0), DIRECTORY, 1)
    foreigner = Handshake.responder(identity(1, chain=OTHER_CHAIN), DIRECTORY)
    hello = body_of(initiator.data_to_send())
    foreigner.receive_data(record(hello[:7] + OTHER_CHAIN + hello[7 + 32 :]))
    with pytest.raises(HandshakeError) as excinfo:
        initiator.receive_data(foreigner.data_to_send())
    assert refusal(excinfo) is HandshakeFailure.CHAIN_ID_MISMATCH


def test_hello_of_another_protocol_version_is_refused() -> None:
    responder = Handshake.responder(identity(1), DIRECTORY)
    hello = body_of(Handshake.initiator(identity(0), DIRECTORY, 1).data_to_send())
    other_version = hello[:4] + struct.pack(">H", PROTOCOL_VERSION + 1) + hello[6:]
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(record(other_version))
    assert refusal(excinfo) is HandshakeFailure.VERSION_MISMATCH


def test_a_stream_that_does_not_start_with_the_magic_is_refused() -> None:
    responder = Handshake.responder(identity(1), DIRECTORY)
    hello = body_of(Handshake.initiator(identity(0), DIRECTORY, 1).data_to_send())
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(record(b"HTTP" + hello[len(MAGIC) :]))
    assert refusal(excinfo) is HandshakeFailure.BAD_MAGIC


def test_a_reply_signed_by_a_key_other_than_the_claimed_one_is_refused() -> None:
    initiator = Handshake.initiator(identity(0), DIRECTORY, 1)
    responder = Handshake.responder(identity(1), DIRECTORY)
    responder.receive_data(initiator.data_to_send())
    reply = Reply.decode(body_of(responder.data_to_send()))
    forged = Reply(reply.chain_id, reply.index, reply.identity_key, reply.x25519_public, reply.mlkem_ciphertext,
                   KEYS[4].sign(b"anything"))
    with pytest.raises(HandshakeError) as excinfo:
        initiator.receive_data(record(forged.encode()))
    assert refusal(excinfo) is HandshakeFailure.BAD_SIGNATURE


def test_an_auth_signed_by_a_key_other_than_the_claimed_one_is_refused() -> None:
    initiator = Handshake.initiator(identity(0), DIRECTORY, 1)
    responder = Handshake.responder(identity(1), DIRECTORY)
    responder.receive_data(initiator.data_to_send())
    initiator.receive_data(responder.data_to_send())
    auth = body_of(initiator.data_to_send())
    forged = auth[:7] + KEYS[4].sign(b"anything")
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(record(forged))
    assert refusal(excinfo) is HandshakeFailure.BAD_SIGNATURE


def test_a_responder_signature_replayed_as_the_initiator_signature_is_refused() -> None:
    initiator = Handshake.initiator(identity(0), DIRECTORY, 1)
    responder = Handshake.responder(identity(1), DIRECTORY)
    hello = initiator.data_to_send()
    responder.receive_data(hello)
    reply = Reply.decode(body_of(responder.data_to_send()))
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(record(bytes(body_of(hello)[:4]) + struct.pack(">HB", PROTOCOL_VERSION,
                                                                             MessageType.AUTH) + reply.signature))
    assert refusal(excinfo) is HandshakeFailure.BAD_SIGNATURE


def test_a_hello_altered_in_transit_makes_the_initiator_refuse_the_reply() -> None:
    initiator = Handshake.initiator(identity(0), DIRECTORY, 1)
    responder = Handshake.responder(identity(1), DIRECTORY)
    hello = bytearray(initiator.data_to_send())
    hello[-1] ^= 0x01
    responder.receive_data(bytes(hello))
    with pytest.raises(HandshakeError) as excinfo:
        initiator.receive_data(responder.data_to_send())
    assert refusal(excinfo) is HandshakeFailure.BAD_SIGNATURE


@pytest.mark.parametrize("field_offset", [7, 7 + 32, 7 + 34, 7 + 34 + mldsa.PUBLIC_KEY_SIZE,
                                          7 + 34 + mldsa.PUBLIC_KEY_SIZE + 32, -1])
def test_a_reply_altered_in_any_field_is_refused(field_offset: int) -> None:
    initiator = Handshake.initiator(identity(0), DIRECTORY, 1)
    responder = Handshake.responder(identity(1), DIRECTORY)
    responder.receive_data(initiator.data_to_send())
    reply = bytearray(body_of(responder.data_to_send()))
    reply[field_offset] ^= 0x01
    with pytest.raises(HandshakeError):
        initiator.receive_data(record(bytes(reply)))
    assert not initiator.complete


def test_an_auth_altered_in_transit_is_refused() -> None:
    initiator = Handshake.initiator(identity(0), DIRECTORY, 1)
    responder = Handshake.responder(identity(1), DIRECTORY)
    responder.receive_data(initiator.data_to_send())
    initiator.receive_data(responder.data_to_send())
    auth = bytearray(initiator.data_to_send())
    auth[100] ^= 0x80
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(bytes(auth))
    assert refusal(excinfo) is HandshakeFailure.BAD_SIGNATURE


def test_a_hello_with_a_degenerate_x25519_share_is_refused() -> None:
    honest = Hello.decode(body_of(Handshake.initiator(identity(0), DIRECTORY, 1).data_to_send()))
    degenerate = Hello(honest.chain_id, honest.index, honest.identity_key, bytes(32), honest.mlkem_encapsulation_key)
    responder = Handshake.responder(identity(1), DIRECTORY)
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(record(degenerate.encode()))
    assert refusal(excinfo) is HandshakeFailure.BAD_KEY_SHARE


def test_a_node_dialing_itself_is_refused() -> None:
    initiator = Handshake.initiator(identity(0), DIRECTORY, 1)
    itself = Handshake.responder(identity(0), DIRECTORY)
    with pytest.raises(HandshakeError) as excinfo:
        itself.receive_data(initiator.data_to_send())
    assert refusal(excinfo) is HandshakeFailure.SELF_CONNECTION


def test_a_reply_echoing_the_initiators_own_key_share_is_refused_as_a_reflection() -> None:
    initiator = Handshake.initiator(identity(0), DIRECTORY, 1)
    hello_wire = initiator.data_to_send()
    own_share = Hello.decode(body_of(hello_wire)).x25519_public
    responder = Handshake.responder(identity(1), DIRECTORY)
    responder.receive_data(hello_wire)
    reply = Reply.decode(body_of(responder.data_to_send()))
    echoed = Reply(reply.chain_id, reply.index, reply.identity_key, own_share, reply.mlkem_ciphertext, reply.signature)
    with pytest.raises(HandshakeError) as excinfo:
        initiator.receive_data(record(echoed.encode()))
    assert refusal(excinfo) is HandshakeFailure.SELF_CONNECTION


def test_a_validator_other_than_the_one_dialed_is_refused() -> None:
    initiator = Handshake.initiator(identity(0), DIRECTORY, 2)
    wrong_peer = Handshake.responder(identity(1), DIRECTORY)
    wrong_peer.receive_data(initiator.data_to_send())
    with pytest.raises(HandshakeError) as excinfo:
        initiator.receive_data(wrong_peer.data_to_send())
    assert refusal(excinfo) is HandshakeFailure.UNEXPECTED_PEER


def test_an_oversize_handshake_record_is_refused_from_its_length_alone() -> None:
    responder = Handshake.responder(identity(1), DIRECTORY)
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(struct.pack(">I", HANDSHAKE_RECORD_BYTES_MAX + 1))
    assert refusal(excinfo) is HandshakeFailure.OVERSIZE


def test_a_truncated_hello_is_refused() -> None:
    responder = Handshake.responder(identity(1), DIRECTORY)
    hello = body_of(Handshake.initiator(identity(0), DIRECTORY, 1).data_to_send())
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(record(hello[:-1]))
    assert refusal(excinfo) is HandshakeFailure.MALFORMED


def test_a_message_of_the_wrong_type_is_refused() -> None:
    responder = Handshake.responder(identity(1), DIRECTORY)
    hello = body_of(Handshake.initiator(identity(0), DIRECTORY, 1).data_to_send())
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(record(hello[:6] + bytes([MessageType.REPLY]) + hello[7:]))
    assert refusal(excinfo) is HandshakeFailure.MALFORMED


def test_a_failed_handshake_stays_failed() -> None:
    responder = Handshake.responder(identity(1), DIRECTORY)
    with pytest.raises(HandshakeError):
        responder.receive_data(struct.pack(">I", HANDSHAKE_RECORD_BYTES_MAX + 1))
    with pytest.raises(HandshakeError):
        responder.receive_data(Handshake.initiator(identity(0), DIRECTORY, 1).data_to_send())
    assert not responder.complete


def test_a_node_whose_key_is_not_its_genesis_key_refuses_to_start() -> None:
    with pytest.raises(P2PConfigError):
        Handshake.responder(identity(1, key=KEYS[4]), DIRECTORY)


def test_hello_fields_of_the_wrong_size_cannot_be_built() -> None:
    with pytest.raises(HandshakeError):
        Hello(CHAIN[:31], 0, KEYS[0].public_key, bytes(32), bytes(1184))
