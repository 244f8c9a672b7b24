"""Pending proof bundles: inclusion + header + finalization proof, checked against the genesis."""

import pytest

from proof.bundle import Bundle, verify_bundle
from proof.errors import DecodeError, PantheonError, ProofError
from tests.chain_fixtures import make_chain, random_roots
from tests.merkle_reference import path as reference_path


@pytest.fixture(scope="module")
def chain():
    c = make_chain()
    c.add_block(random_roots(5))
    c.add_block(random_roots(3))
    return c


def bundle_for(chain, index):
    tip = chain.blocks[-1]
    entries = [b.roots[i : i + 32] for b in chain.blocks for i in range(0, len(b.roots), 32)]
    root = entries[index]
    path = tuple(reference_path(index, entries[: tip.header.log_size]))
    return Bundle(root=root, index=index, path=path, header=tip.header, finality=chain.proofs[-1])


def test_valid_bundle_states_exactly_what_it_proves(chain):
    claim = verify_bundle(bundle_for(chain, 6).encode(), genesis=chain.genesis)
    assert claim.index == 6 and claim.log_size == 8 and claim.height == 2
    assert claim.signers == (0, 1, 2)
    assert "entry 6 of the log of size 8" in claim.summary()


def test_bundle_pinned_to_another_chain_id_is_refused(chain):
    with pytest.raises(ProofError, match="chain id"):
        verify_bundle(bundle_for(chain, 0).encode(), genesis=chain.genesis, chain_id=b"\x00" * 32)


def test_bundle_checked_against_another_genesis_is_refused(chain):
    other = make_chain(name="other")
    with pytest.raises(ProofError, match="another chain"):
        verify_bundle(bundle_for(chain, 0).encode(), genesis=other.genesis)


def test_wrong_index_is_refused(chain):
    bundle = bundle_for(chain, 3)
    moved = Bundle(bundle.root, 4, bundle.path, bundle.header, bundle.finality)
    with pytest.raises(ProofError):
        verify_bundle(moved.encode(), genesis=chain.genesis)


def test_every_byte_flip_is_refused(chain):
    """Any change to any byte is rejected (or could only re-decode to the same claim, which canonical CBOR forbids)."""
    data = bytearray(bundle_for(chain, 2).encode())
    reference = verify_bundle(bytes(data), genesis=chain.genesis)
    accepted = []
    for position in range(0, len(data), 7):
        data[position] ^= 0x01
        try:
            claim = verify_bundle(bytes(data), genesis=chain.genesis)
            accepted.append((position, claim == reference))
        except (ProofError, DecodeError, PantheonError):
            pass
        data[position] ^= 0x01
    assert accepted == []


def test_trailing_bytes_are_refused(chain):
    with pytest.raises(DecodeError, match="trailing"):
        verify_bundle(bundle_for(chain, 0).encode() + b"\x00", genesis=chain.genesis)
