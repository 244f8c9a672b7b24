"""The p2p handshake as a specification: sans-IO, two state machines back to back, no sockets."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pytest

from p2p.errors import HandshakeError, HandshakeFailure, P2PConfigError
from p2p.handshake import (
    HANDSHAKE_RECORD_BYTES_MAX,
    MAGIC,
    PROTOCOL_VERSION,
    Challenge,
    Finish,
    Handshake,
    Hello,
    LocalIdentity,
    MessageType,
    Proof,
    Reply,
    proof_message,
    record,
)
from proof import mldsa
from proof.mldsa import SigningKey

CHAIN = bytes(range(32))
OTHER_CHAIN = bytes(range(1, 33))
KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(5)]
DIRECTORY = {i: KEYS[i].public_key for i in range(4)}
HEADER_SIZE = 7


def identity(index: int, *, chain: bytes = CHAIN, key: SigningKey | None = None) -> LocalIdentity:
    return LocalIdentity(chain, index, key or KEYS[index])


def pair(dialer: int = 0, listener: int = 1) -> tuple[Handshake, Handshake]:
    return Handshake.initiator(identity(dialer), DIRECTORY, listener), Handshake.responder(identity(listener),
                                                                                          DIRECTORY)


def run(initiator: Handshake, responder: Handshake) -> None:
    """HELLO, CHALLENGE, PROOF, REPLY, FINISH."""
    for _ in range(2):
        responder.receive_data(initiator.data_to_send())
        initiator.receive_data(responder.data_to_send())
    responder.receive_data(initiator.data_to_send())


def refusal(excinfo: pytest.ExceptionInfo[HandshakeError]) -> HandshakeFailure:
    return excinfo.value.reason


def body_of(wire: bytes) -> bytes:
    (length,) = struct.unpack_from(">I", wire)
    assert len(wire) == 4 + length
    return wire[4:]


def flipped(wire: bytes, offset: int) -> bytes:
    """``wire`` (a record) with one bit flipped at ``offset`` into its body (negative: from the end)."""
    altered = bytearray(wire)
    altered[4 + offset if offset >= 0 else offset] ^= 0x01
    return bytes(altered)


@dataclass
class Transcript:
    """The wire records of one honest handshake, each captured as it was sent."""

    hello: bytes
    challenge: bytes
    proof: bytes
    reply: bytes
    finish: bytes


def up_to_challenge(initiator: Handshake, responder: Handshake) -> tuple[bytes, bytes]:
    hello = initiator.data_to_send()
    responder.receive_data(hello)
    return hello, responder.data_to_send()


def up_to_proof(initiator: Handshake, responder: Handshake) -> tuple[bytes, bytes, bytes]:
    hello, challenge = up_to_challenge(initiator, responder)
    initiator.receive_data(challenge)
    return hello, challenge, initiator.data_to_send()


def up_to_reply(initiator: Handshake, responder: Handshake) -> tuple[bytes, bytes, bytes, bytes]:
    hello, challenge, proof = up_to_proof(initiator, responder)
    responder.receive_data(proof)
    return hello, challenge, proof, responder.data_to_send()


def honest_transcript() -> Transcript:
    initiator, responder = pair()
    hello, challenge, proof, reply = up_to_reply(initiator, responder)
    initiator.receive_data(reply)
    finish = initiator.data_to_send()
    responder.receive_data(finish)
    assert responder.complete
    return Transcript(hello, challenge, proof, reply, finish)


# ---- an honest handshake -------------------------------------------------------------------


@pytest.mark.parametrize(("dialer", "listener"), [(0, 1), (1, 0)])
def test_handshake_authenticates_both_sides_and_agrees_on_keys(dialer: int, listener: int) -> None:
    initiator, responder = pair(dialer, listener)
    run(initiator, responder)
    assert initiator.complete and responder.complete
    assert initiator.result.peer_index == listener
    assert responder.result.peer_index == dialer
    assert initiator.result.send_key == responder.result.receive_key
    assert initiator.result.receive_key == responder.result.send_key
    assert initiator.result.transcript_hash == responder.result.transcript_hash


def test_messages_have_their_documented_sizes() -> None:
    t = honest_transcript()
    assert [len(body_of(m)) for m in (t.hello, t.challenge, t.proof, t.reply, t.finish)] == [3209, 2057, 3316,
                                                                                           4404, 39]


def test_each_direction_gets_its_own_key() -> None:
    initiator, responder = pair()
    run(initiator, responder)
    assert initiator.result.send_key != initiator.result.receive_key


def test_two_handshakes_between_the_same_pair_derive_unrelated_keys() -> None:
    keys = []
    for _ in range(2):
        initiator, responder = pair()
        run(initiator, responder)
        keys.append(initiator.result.send_key)
    assert keys[0] != keys[1]


def test_handshake_completes_when_bytes_arrive_one_at_a_time() -> None:
    initiator, responder = pair()
    for sender, receiver in ((initiator, responder), (responder, initiator)) * 2 + ((initiator, responder),):
        for byte in sender.data_to_send():
            receiver.receive_data(bytes([byte]))
    assert initiator.complete and responder.complete


def test_bytes_after_the_last_handshake_message_are_kept_for_the_frame_layer() -> None:
    initiator, responder = pair()
    _, _, _, reply = up_to_reply(initiator, responder)
    initiator.receive_data(reply)
    responder.receive_data(initiator.data_to_send() + b"first frame")
    assert responder.complete
    assert responder.trailing_data() == b"first frame"


def test_each_side_counts_its_peer_as_proven_only_once_the_peers_signature_verified() -> None:
    initiator, responder = pair()
    _, _, proof = up_to_proof(initiator, responder)
    assert not responder.peer_proven and not initiator.peer_proven
    responder.receive_data(proof)
    assert responder.peer_proven and not initiator.peer_proven
    initiator.receive_data(responder.data_to_send())
    assert initiator.peer_proven


# ---- the responder gives nothing expensive before the initiator proves itself --------------


def test_a_hello_is_answered_with_a_challenge_not_a_signature() -> None:
    responder = Handshake.responder(identity(1), DIRECTORY)
    responder.receive_data(Handshake.initiator(identity(0), DIRECTORY, 1).data_to_send())
    answer = body_of(responder.data_to_send())
    assert answer[6] == MessageType.CHALLENGE
    challenge = Challenge.decode(answer)
    assert (challenge.chain_id, challenge.index, challenge.identity_key) == (CHAIN, 1, KEYS[1].public_key)
    assert not responder.peer_proven


def test_two_answers_to_one_replayed_hello_carry_different_nonces() -> None:
    hello = Handshake.initiator(identity(0), DIRECTORY, 1).data_to_send()
    nonces = set()
    for _ in range(2):
        responder = Handshake.responder(identity(1), DIRECTORY)
        responder.receive_data(hello)
        nonces.add(Challenge.decode(body_of(responder.data_to_send())).nonce)
    assert len(nonces) == 2


def test_a_proof_recorded_from_an_earlier_handshake_is_refused() -> None:
    earlier = honest_transcript()
    responder = Handshake.responder(identity(1), DIRECTORY)
    responder.receive_data(earlier.hello)
    responder.data_to_send()
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(earlier.proof)
    assert refusal(excinfo) is HandshakeFailure.BAD_SIGNATURE
    assert responder.data_to_send() == b""


def test_a_proof_signed_by_a_key_other_than_the_claimed_one_is_refused() -> None:
    responder = Handshake.responder(identity(1), DIRECTORY)
    hello = Handshake.initiator(identity(0), DIRECTORY, 1).data_to_send()
    responder.receive_data(hello)
    challenge = responder.data_to_send()
    forged = Proof(KEYS[4].sign(proof_message(body_of(hello), body_of(challenge))))
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(record(forged.encode()))
    assert refusal(excinfo) is HandshakeFailure.BAD_SIGNATURE


def test_a_responder_signature_replayed_as_a_proof_is_refused() -> None:
    earlier = honest_transcript()
    initiator, responder = pair()
    up_to_challenge(initiator, responder)
    reflected = Proof(Reply.decode(body_of(earlier.reply)).signature)
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(record(reflected.encode()))
    assert refusal(excinfo) is HandshakeFailure.BAD_SIGNATURE


# ---- refusals on public facts -----------------------------------------------------------------


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


def test_a_challenge_with_a_key_other_than_the_genesis_key_is_refused_before_signing() -> None:
    initiator = Handshake.initiator(identity(0), DIRECTORY, 1)
    impostor = Handshake.responder(identity(1, key=KEYS[4]), {**DIRECTORY, 1: KEYS[4].public_key})
    impostor.receive_data(initiator.data_to_send())
    with pytest.raises(HandshakeError) as excinfo:
        initiator.receive_data(impostor.data_to_send())
    assert refusal(excinfo) is HandshakeFailure.KEY_MISMATCH
    assert initiator.data_to_send() == b""


def test_hello_from_another_chain_is_refused() -> None:
    foreigner = Handshake.initiator(identity(0, chain=OTHER_CHAIN), DIRECTORY, 1)
    responder = Handshake.responder(identity(1), DIRECTORY)
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(foreigner.data_to_send())
    assert refusal(excinfo) is HandshakeFailure.CHAIN_ID_MISMATCH


def test_a_challenge_from_another_chain_is_refused() -> None:
    initiator = Handshake.initiator(identity(0), DIRECTORY, 1)
    foreigner = Handshake.responder(identity(1, chain=OTHER_CHAIN), DIRECTORY)
    hello = body_of(initiator.data_to_send())
    foreigner.receive_data(record(hello[:HEADER_SIZE] + OTHER_CHAIN + hello[HEADER_SIZE + 32 :]))
    with pytest.raises(HandshakeError) as excinfo:
        initiator.receive_data(foreigner.data_to_send())
    assert refusal(excinfo) is HandshakeFailure.CHAIN_ID_MISMATCH


@pytest.mark.parametrize("version", [PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1])
def test_hello_of_another_protocol_version_is_refused(version: int) -> None:
    hello = body_of(Handshake.initiator(identity(0), DIRECTORY, 1).data_to_send())
    other_version = hello[:4] + struct.pack(">H", version) + hello[6:]
    with pytest.raises(HandshakeError) as excinfo:
        Handshake.responder(identity(1), DIRECTORY).receive_data(record(other_version))
    assert refusal(excinfo) is HandshakeFailure.VERSION_MISMATCH


def test_a_stream_that_does_not_start_with_the_magic_is_refused() -> None:
    responder = Handshake.responder(identity(1), DIRECTORY)
    hello = body_of(Handshake.initiator(identity(0), DIRECTORY, 1).data_to_send())
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(record(b"HTTP" + hello[len(MAGIC) :]))
    assert refusal(excinfo) is HandshakeFailure.BAD_MAGIC


def test_a_node_dialing_itself_is_refused() -> None:
    initiator = Handshake.initiator(identity(0), DIRECTORY, 1)
    itself = Handshake.responder(identity(0), DIRECTORY)
    with pytest.raises(HandshakeError) as excinfo:
        itself.receive_data(initiator.data_to_send())
    assert refusal(excinfo) is HandshakeFailure.SELF_CONNECTION


def test_a_challenge_echoing_the_initiators_own_key_share_is_refused_as_a_reflection() -> None:
    initiator, responder = pair()
    hello, challenge = up_to_challenge(initiator, responder)
    own_share = Hello.decode(body_of(hello)).x25519_public
    honest = Challenge.decode(body_of(challenge))
    echoed = Challenge(honest.chain_id, honest.index, honest.identity_key, own_share, honest.nonce)
    with pytest.raises(HandshakeError) as excinfo:
        initiator.receive_data(record(echoed.encode()))
    assert refusal(excinfo) is HandshakeFailure.SELF_CONNECTION


def test_a_validator_other_than_the_one_dialed_is_refused_before_signing() -> None:
    initiator = Handshake.initiator(identity(0), DIRECTORY, 2)
    wrong_peer = Handshake.responder(identity(1), DIRECTORY)
    wrong_peer.receive_data(initiator.data_to_send())
    with pytest.raises(HandshakeError) as excinfo:
        initiator.receive_data(wrong_peer.data_to_send())
    assert refusal(excinfo) is HandshakeFailure.UNEXPECTED_PEER
    assert initiator.data_to_send() == b""


def test_a_challenge_with_a_degenerate_x25519_share_is_refused() -> None:
    initiator, responder = pair()
    _, challenge = up_to_challenge(initiator, responder)
    honest = Challenge.decode(body_of(challenge))
    degenerate = Challenge(honest.chain_id, honest.index, honest.identity_key, bytes(32), honest.nonce)
    with pytest.raises(HandshakeError) as excinfo:
        initiator.receive_data(record(degenerate.encode()))
    assert refusal(excinfo) is HandshakeFailure.BAD_KEY_SHARE


def test_a_proven_hello_with_a_degenerate_x25519_share_is_refused() -> None:
    honest = Hello.decode(body_of(Handshake.initiator(identity(0), DIRECTORY, 1).data_to_send()))
    degenerate = Hello(honest.chain_id, honest.index, honest.identity_key, bytes(32),
                       honest.mlkem_encapsulation_key).encode()
    responder = Handshake.responder(identity(1), DIRECTORY)
    responder.receive_data(record(degenerate))
    challenge = body_of(responder.data_to_send())
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(record(Proof(KEYS[0].sign(proof_message(degenerate, challenge))).encode()))
    assert refusal(excinfo) is HandshakeFailure.BAD_KEY_SHARE


def test_a_proven_hello_with_an_invalid_mlkem_key_is_refused() -> None:
    honest = Hello.decode(body_of(Handshake.initiator(identity(0), DIRECTORY, 1).data_to_send()))
    invalid = Hello(honest.chain_id, honest.index, honest.identity_key, honest.x25519_public,
                    b"\xff" * len(honest.mlkem_encapsulation_key)).encode()
    responder = Handshake.responder(identity(1), DIRECTORY)
    responder.receive_data(record(invalid))
    challenge = body_of(responder.data_to_send())
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(record(Proof(KEYS[0].sign(proof_message(invalid, challenge))).encode()))
    assert refusal(excinfo) is HandshakeFailure.BAD_KEY_SHARE


def test_a_challenge_from_an_index_the_genesis_does_not_list_is_refused() -> None:
    initiator = Handshake.initiator(identity(0), DIRECTORY, 1)
    stranger = Handshake.responder(identity(4), {**DIRECTORY, 4: KEYS[4].public_key})
    stranger.receive_data(initiator.data_to_send())
    with pytest.raises(HandshakeError) as excinfo:
        initiator.receive_data(stranger.data_to_send())
    assert refusal(excinfo) is HandshakeFailure.UNKNOWN_VALIDATOR


def test_a_proof_past_the_callers_budget_is_refused_before_it_is_verified(monkeypatch: pytest.MonkeyPatch) -> None:
    verified = []
    monkeypatch.setattr(mldsa, "verify", lambda *args: verified.append(args) or True)
    initiator = Handshake.initiator(identity(0), DIRECTORY, 1)
    responder = Handshake.responder(identity(1), DIRECTORY, admit_proof=lambda: False)
    _, _, proof = up_to_proof(initiator, responder)
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(proof)
    assert refusal(excinfo) is HandshakeFailure.RATE_LIMITED
    assert verified == [] and responder.data_to_send() == b""


# ---- every binding: altering any message in transit fails the handshake ------------------------


def test_a_hello_altered_in_transit_makes_the_responder_refuse_the_proof() -> None:
    initiator, responder = pair()
    responder.receive_data(flipped(initiator.data_to_send(), -1))
    initiator.receive_data(responder.data_to_send())
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(initiator.data_to_send())
    assert refusal(excinfo) is HandshakeFailure.BAD_SIGNATURE


@pytest.mark.parametrize(("offset", "reason"), [
    (HEADER_SIZE, HandshakeFailure.CHAIN_ID_MISMATCH),
    (HEADER_SIZE + 33, HandshakeFailure.SELF_CONNECTION),
    (HEADER_SIZE + 34, HandshakeFailure.KEY_MISMATCH),
    (HEADER_SIZE + 34 + mldsa.PUBLIC_KEY_SIZE, HandshakeFailure.BAD_SIGNATURE),
    (-1, HandshakeFailure.BAD_SIGNATURE),
])
def test_a_challenge_altered_in_any_field_is_refused(offset: int, reason: HandshakeFailure) -> None:
    initiator, responder = pair()
    _, challenge = up_to_challenge(initiator, responder)
    with pytest.raises(HandshakeError) as excinfo:
        initiator.receive_data(flipped(challenge, offset))
        responder.receive_data(initiator.data_to_send())
    assert refusal(excinfo) is reason
    assert not responder.peer_proven


@pytest.mark.parametrize("offset", [HEADER_SIZE, HEADER_SIZE + 1087, HEADER_SIZE + 1088, -1])
def test_a_reply_altered_in_any_field_is_refused(offset: int) -> None:
    initiator, responder = pair()
    _, _, _, reply = up_to_reply(initiator, responder)
    with pytest.raises(HandshakeError) as excinfo:
        initiator.receive_data(flipped(reply, offset))
    assert refusal(excinfo) is HandshakeFailure.BAD_SIGNATURE
    assert not initiator.complete


def test_a_reply_signed_by_a_key_other_than_the_claimed_one_is_refused() -> None:
    initiator, responder = pair()
    _, _, _, reply = up_to_reply(initiator, responder)
    honest = Reply.decode(body_of(reply))
    forged = Reply(honest.mlkem_ciphertext, KEYS[4].sign(b"anything"))
    with pytest.raises(HandshakeError) as excinfo:
        initiator.receive_data(record(forged.encode()))
    assert refusal(excinfo) is HandshakeFailure.BAD_SIGNATURE


def test_a_proof_altered_in_transit_is_refused() -> None:
    initiator, responder = pair()
    _, _, proof = up_to_proof(initiator, responder)
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(flipped(proof, 100))
    assert refusal(excinfo) is HandshakeFailure.BAD_SIGNATURE


def test_a_finish_altered_in_transit_is_refused() -> None:
    initiator, responder = pair()
    _, _, _, reply = up_to_reply(initiator, responder)
    initiator.receive_data(reply)
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(flipped(initiator.data_to_send(), -1))
    assert refusal(excinfo) is HandshakeFailure.BAD_CONFIRMATION
    assert not responder.complete


def test_a_finish_from_another_session_is_refused() -> None:
    earlier = honest_transcript()
    initiator, responder = pair()
    up_to_reply(initiator, responder)
    with pytest.raises(HandshakeError) as excinfo:
        responder.receive_data(earlier.finish)
    assert refusal(excinfo) is HandshakeFailure.BAD_CONFIRMATION


# ---- framing of handshake records --------------------------------------------------------------


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
        responder.receive_data(record(hello[:6] + bytes([MessageType.PROOF]) + hello[7:]))
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


def test_message_fields_of_the_wrong_size_cannot_be_built() -> None:
    with pytest.raises(HandshakeError):
        Hello(CHAIN[:31], 0, KEYS[0].public_key, bytes(32), bytes(1184))
    with pytest.raises(HandshakeError):
        Challenge(CHAIN, 0, KEYS[0].public_key, bytes(32), bytes(31))
    with pytest.raises(HandshakeError):
        Finish(bytes(31))
