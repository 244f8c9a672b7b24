"""proof.chain: canonical records and the certificate checks an offline auditor runs."""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import pytest

from proof.chain import (
    GENESIS_PARENT,
    AnchorRef,
    BlockHeader,
    Certificate,
    ChainRecordError,
    FinalizationProof,
    Genesis,
    VoteKind,
    verify_certificate,
    verify_finalization,
    vote_message,
)
from proof.errors import DecodeError, ProofError
from proof.mldsa import SigningKey


@lru_cache(maxsize=1)
def keys() -> tuple[SigningKey, ...]:
    return tuple(SigningKey(bytes([index + 1]) * 32) for index in range(4))


def genesis(name: str = "pantheon-test") -> Genesis:
    return Genesis(
        chain_name=name,
        validators=tuple(key.public_key for key in keys()),
        created_at_ms=1_700_000_000_000,
        anchor_every_blocks=10,
        anchor_every_ms=600_000,
        anchor_final_depth=6,
    )


def header(chain: Genesis, *, height: int = 1, parent: bytes = GENESIS_PARENT, view: int = 0) -> BlockHeader:
    return BlockHeader(
        chain_id=chain.hash,
        height=height,
        view=view,
        parent=parent,
        timestamp_ms=1_700_000_000_123 + height,
        proposer=view % chain.n,
        log_size=3 * height,
        log_root=bytes([height]) * 32,
        validator_set=chain.validator_set_hash,
        anchors=(AnchorRef(txid=b"\1" * 32, vout=1, anchored_block_hash=b"\2" * 32, btc_block_hash=b"\3" * 32, btc_height=812_345),),
        body_hash=b"\4" * 32,
    )


def certify(chain: Genesis, kind: VoteKind, view: int, block_hash: bytes, signers=(0, 1, 2)) -> Certificate:
    message = vote_message(chain.hash, kind, view, block_hash)
    return Certificate(
        kind=kind, view=view, block_hash=block_hash, signatures=tuple((i, keys()[i].sign(message)) for i in signers)
    )


@lru_cache(maxsize=1)
def finalization() -> tuple[Genesis, BlockHeader, Certificate]:
    chain = genesis()
    head = header(chain)
    return chain, head, certify(chain, VoteKind.FINALIZE, head.view, head.hash)


# ---------------------------------------------------------------- genesis


def test_genesis_needs_three_f_plus_one_validators() -> None:
    base = genesis()
    for count in (2, 3, 5, 6):
        with pytest.raises(ChainRecordError, match="3f\\+1"):
            dataclasses.replace(base, validators=tuple(bytes([i]) * 1952 for i in range(count)))


def test_single_validator_devnet_genesis_has_quorum_one() -> None:
    single = dataclasses.replace(genesis(), validators=genesis().validators[:1])
    assert (single.f, single.quorum) == (0, 1)


def test_genesis_of_four_tolerates_one_fault_with_quorum_three() -> None:
    assert (genesis().f, genesis().quorum) == (1, 3)


def test_genesis_refuses_duplicate_validator_keys() -> None:
    base = genesis()
    with pytest.raises(ChainRecordError, match="distinct"):
        dataclasses.replace(base, validators=base.validators[:3] + base.validators[:1])


def test_genesis_refuses_keys_of_the_wrong_size() -> None:
    base = genesis()
    with pytest.raises(ChainRecordError, match="1952"):
        dataclasses.replace(base, validators=base.validators[:3] + (b"\0" * 1951,))


def test_genesis_round_trips_through_its_encoding() -> None:
    assert Genesis.decode(genesis().encode()) == genesis()


def test_the_chain_id_depends_on_every_genesis_field() -> None:
    base = genesis()
    variants = [
        dataclasses.replace(base, chain_name="other"),
        dataclasses.replace(base, created_at_ms=base.created_at_ms + 1),
        dataclasses.replace(base, anchor_every_blocks=11),
        dataclasses.replace(base, anchor_every_ms=1),
        dataclasses.replace(base, anchor_final_depth=7),
        dataclasses.replace(base, validators=base.validators[1:] + base.validators[:1]),
    ]
    assert len({base.hash, *(variant.hash for variant in variants)}) == len(variants) + 1


# ---------------------------------------------------------------- headers and certificates


def test_header_round_trips_through_its_encoding() -> None:
    head = header(genesis())
    assert BlockHeader.decode(head.encode()) == head


def test_certificate_round_trips_through_its_encoding() -> None:
    cert = finalization()[2]
    assert Certificate.decode(cert.encode()) == cert


def test_only_the_first_block_has_the_genesis_parent() -> None:
    with pytest.raises(ChainRecordError):
        header(genesis(), height=2, parent=GENESIS_PARENT)
    with pytest.raises(ChainRecordError):
        header(genesis(), height=1, parent=b"\5" * 32)


def test_a_certificate_with_unsorted_signers_does_not_decode() -> None:
    cert = finalization()[2]
    fields = cert.to_cbor()
    fields["sigs"] = list(reversed(fields["sigs"]))
    from proof import cbor

    with pytest.raises(DecodeError, match="increasing"):
        Certificate.decode(cbor.encode(fields))


def test_a_header_with_an_unknown_field_does_not_decode() -> None:
    from proof import cbor

    fields = header(genesis()).to_cbor()
    fields["extra"] = 1
    with pytest.raises(DecodeError, match="unknown"):
        BlockHeader.decode(cbor.encode(fields))


def assert_every_byte_flip_is_caught(data: bytes, decode, identity) -> None:
    """Flip one bit of each byte: the result must fail to decode or decode to a different record."""
    original = identity(decode(data))
    for position in range(len(data)):
        mutated = bytearray(data)
        mutated[position] ^= 1 << (position % 8)
        try:
            record = decode(bytes(mutated))
        except DecodeError:
            continue
        assert identity(record) != original, f"flip at byte {position} went unnoticed"


def test_any_byte_flip_of_a_header_fails_to_decode_or_changes_its_hash() -> None:
    assert_every_byte_flip_is_caught(header(genesis()).encode(), BlockHeader.decode, lambda h: h.hash)


def test_any_byte_flip_of_a_genesis_fails_to_decode_or_changes_the_chain_id() -> None:
    assert_every_byte_flip_is_caught(genesis().encode(), Genesis.decode, lambda g: g.hash)


def test_any_byte_flip_of_a_certificate_fails_to_decode_or_changes_its_content() -> None:
    cert = finalization()[2]
    assert_every_byte_flip_is_caught(cert.encode(), Certificate.decode, lambda c: c.encode())


def test_a_valid_certificate_verifies() -> None:
    chain, _, cert = finalization()
    verify_certificate(chain, cert)


def test_a_certificate_below_quorum_is_rejected() -> None:
    chain, _, cert = finalization()
    with pytest.raises(ProofError, match="quorum"):
        verify_certificate(chain, dataclasses.replace(cert, signatures=cert.signatures[:2]))


def test_a_certificate_signed_by_an_index_outside_the_genesis_is_rejected() -> None:
    chain, _, cert = finalization()
    outside = cert.signatures + ((4, cert.signatures[0][1]),)
    with pytest.raises(ProofError, match="not one of"):
        verify_certificate(chain, dataclasses.replace(cert, signatures=outside))


def test_a_certificate_with_a_signature_under_the_wrong_index_is_rejected() -> None:
    chain, _, cert = finalization()
    moved = ((0, cert.signatures[0][1]), (1, cert.signatures[0][1]), cert.signatures[2])
    with pytest.raises(ProofError, match="validator 1"):
        verify_certificate(chain, dataclasses.replace(cert, signatures=moved))


def test_a_certificate_for_another_chain_is_rejected() -> None:
    chain, _, cert = finalization()
    with pytest.raises(ProofError, match="does not verify"):
        verify_certificate(genesis("another-chain"), cert)


def test_a_certificate_relabelled_to_another_kind_or_view_is_rejected() -> None:
    chain, _, cert = finalization()
    for changed in (dataclasses.replace(cert, kind=VoteKind.NOTARIZE), dataclasses.replace(cert, view=cert.view + 1)):
        with pytest.raises(ProofError):
            verify_certificate(chain, changed)


def test_nullify_certificates_carry_the_zero_block_hash_and_no_other_does() -> None:
    with pytest.raises(ChainRecordError):
        Certificate(kind=VoteKind.NULLIFY, view=1, block_hash=b"\1" * 32, signatures=((0, b"s"),))
    with pytest.raises(ChainRecordError):
        Certificate(kind=VoteKind.FINALIZE, view=1, block_hash=bytes(32), signatures=((0, b"s"),))


# ---------------------------------------------------------------- finalization proofs


def test_a_block_certified_itself_is_proven_final_by_its_certificate_alone() -> None:
    chain, head, cert = finalization()
    verify_finalization(chain, head, FinalizationProof(headers=(), certificate=cert))


def test_an_ancestor_is_proven_final_by_the_linking_headers_and_the_descendant_certificate() -> None:
    chain = genesis()
    first = header(chain)
    second = header(chain, height=2, parent=first.hash, view=1)
    third = header(chain, height=3, parent=second.hash, view=2)
    cert = certify(chain, VoteKind.FINALIZE, third.view, third.hash)
    proof = FinalizationProof(headers=(second, third), certificate=cert)
    verify_finalization(chain, first, proof)
    assert FinalizationProof.decode(proof.encode()) == proof


def test_a_finalization_proof_with_a_broken_link_is_rejected() -> None:
    chain = genesis()
    first = header(chain)
    stranger = header(chain, height=2, parent=b"\6" * 32, view=1)
    cert = certify(chain, VoteKind.FINALIZE, stranger.view, stranger.hash)
    with pytest.raises(ProofError, match="does not extend"):
        verify_finalization(chain, first, FinalizationProof(headers=(stranger,), certificate=cert))


def test_a_finalization_proof_whose_certificate_is_for_another_block_is_rejected() -> None:
    chain, head, _ = finalization()
    other = certify(chain, VoteKind.FINALIZE, head.view, b"\7" * 32)
    with pytest.raises(ProofError, match="another block"):
        verify_finalization(chain, head, FinalizationProof(headers=(), certificate=other))


def test_a_finalization_proof_needs_a_finalize_certificate() -> None:
    chain, head, _ = finalization()
    notarization = certify(chain, VoteKind.NOTARIZE, head.view, head.hash)
    with pytest.raises(ChainRecordError):
        FinalizationProof(headers=(), certificate=notarization)
