"""Audit packages: selective disclosure that still verifies to the proved head, and every way to break one."""

from __future__ import annotations

import dataclasses

import pytest

from journal.entry import Entry, Kind, digest, key_fingerprint
from journal.errors import ChainError, PackageError
from journal.package import Package, build_package, verify_package
from journal.writer import Journal, load
from proof import cbor
from proof.errors import DecodeError, ProofError
from proof.mldsa import SigningKey
from tests.test_journal_fixtures import clock, proved_chain


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A 20-entry journal with a rotation at 10 and a secret at 18, its head proved on a one-validator chain."""
    directory = tmp_path_factory.mktemp("package") / "journal"
    with Journal.create(directory, clock_ms=clock()) as journal:
        for i in range(1, 20):
            if i == 10:
                journal.rotate_key()
            elif i == 18:
                journal.note("secret-step", {"patient-record": digest(b"alice's scan")})
            else:
                journal.note(f"step-{i}", {"x": digest(str(i).encode())})
    chain = proved_chain()
    loaded = load(directory)
    bundle = chain.bundle_for(loaded.walker.head)
    return loaded, chain, bundle


def package_of(setup, disclose=(17,), **changes) -> Package:
    loaded, chain, bundle = setup
    package = build_package(loaded.entries, disclose, head_seq=19, genesis=chain.genesis_bytes, bundle=bundle)
    return dataclasses.replace(package, **changes)


def test_a_package_proves_entry_17_without_revealing_entry_18(setup):
    package = package_of(setup)
    data = package.encode()
    claim = verify_package(data)
    assert [e.seq for e in claim.entries] == [0, 10, 17]
    assert claim.report.withheld == 17 and claim.report.head == setup[0].walker.head
    assert b"secret-step" not in data and digest(b"alice's scan") not in data


def test_key_rotations_are_always_disclosed_and_the_keys_listed(setup):
    package = package_of(setup, disclose=(3,))
    assert [e.seq for e in package.chain if isinstance(e, Entry)] == [0, 3, 10]
    assert package.keys == setup[0].report.keys


def test_the_package_pins_the_chain_and_the_producer(setup):
    data = package_of(setup).encode()
    loaded, chain, _ = setup
    producer = key_fingerprint(loaded.report.keys[0])
    assert verify_package(data, chain_id=chain.chain.genesis.hash, producer=producer).producer == producer
    with pytest.raises(PackageError) as caught:
        verify_package(data, chain_id=bytes(32))
    assert caught.value.reason == "chain-id"
    with pytest.raises(ChainError) as caught:
        verify_package(data, producer=bytes(32))
    assert (caught.value.seq, caught.value.reason) == (0, "first-key")


def test_an_edited_disclosed_entry_fails_its_signature(setup):
    package = package_of(setup)
    chain = list(package.chain)
    position = next(i for i, item in enumerate(chain) if isinstance(item, Entry) and item.seq == 17)
    chain[position] = dataclasses.replace(chain[position], action="step-seventeen")
    with pytest.raises(ChainError) as caught:
        verify_package(dataclasses.replace(package, chain=tuple(chain)).encode())
    assert (caught.value.seq, caught.value.reason) == (17, "signature")


def test_an_altered_withheld_digest_breaks_the_chain_to_the_proved_head(setup):
    package = package_of(setup)
    chain = list(package.chain)
    run = next(i for i, item in enumerate(chain) if isinstance(item, bytes))
    chain[run] = b"\x00" + chain[run][1:]
    with pytest.raises(ChainError) as caught:
        verify_package(dataclasses.replace(package, chain=tuple(chain)).encode())
    assert caught.value.reason == "prev"


def test_a_changed_last_withheld_digest_fails_against_the_bundle(setup):
    package = package_of(setup)
    chain = list(package.chain)
    chain[-1] = chain[-1][:-1] + bytes([chain[-1][-1] ^ 1])
    with pytest.raises(PackageError) as caught:
        verify_package(dataclasses.replace(package, chain=tuple(chain)).encode())
    assert caught.value.reason == "head"


def test_a_dropped_tail_fails_against_the_bundle(setup):
    package = package_of(setup)
    chain = list(package.chain)
    chain[-1] = chain[-1][:-32]
    with pytest.raises(PackageError) as caught:
        verify_package(dataclasses.replace(package, chain=tuple(chain)).encode())
    assert caught.value.reason == "head"


def test_a_withheld_key_rotation_makes_the_next_disclosed_entry_fail(setup):
    loaded = setup[0]
    package = package_of(setup)
    chain: list = []
    for entry in loaded.entries:
        if entry.seq in (0, 17):
            chain.append(entry)
        elif chain and isinstance(chain[-1], bytes):
            chain[-1] += entry.digest
        else:
            chain.append(entry.digest)
    forged = dataclasses.replace(package, chain=tuple(chain), keys=package.keys[:1])
    with pytest.raises(ChainError) as caught:
        verify_package(forged.encode())
    assert (caught.value.seq, caught.value.reason) == (17, "key-unknown")


def test_a_key_list_that_is_not_the_rotations_fails(setup):
    package = package_of(setup, keys=(setup[0].report.keys[0], SigningKey.generate().public_key))
    with pytest.raises(PackageError) as caught:
        verify_package(package.encode())
    assert caught.value.reason == "keys"


def test_a_bundle_for_another_root_fails(setup):
    other = setup[1].bundle_for(b"\x42" * 32)
    with pytest.raises(PackageError) as caught:
        verify_package(package_of(setup, bundle=other).encode())
    assert caught.value.reason == "head"


def test_a_bundle_from_another_chain_fails(setup):
    stranger = proved_chain()
    bundle = stranger.bundle_for(setup[0].walker.head)
    with pytest.raises(ProofError, match="package bundle: .*another chain"):
        verify_package(package_of(setup, bundle=bundle).encode())


def test_entry_0_cannot_be_withheld(setup):
    loaded = setup[0]
    package = package_of(setup)
    chain = (b"".join(e.digest for e in loaded.entries[:17]), loaded.entries[17],
             b"".join(e.digest for e in loaded.entries[18:]))
    with pytest.raises(ChainError) as caught:
        verify_package(dataclasses.replace(package, chain=chain).encode())
    assert (caught.value.seq, caught.value.reason) == (0, "first-entry")


def test_adjacent_withheld_runs_are_refused(setup):
    package = package_of(setup)
    chain = list(package.chain)
    chain[-1:] = [chain[-1][:32], chain[-1][32:]]
    with pytest.raises(DecodeError, match="adjacent withheld runs"):
        verify_package(dataclasses.replace(package, chain=tuple(chain)).encode())


@pytest.mark.parametrize("change, message", [
    (lambda v: v.update(v=2), "version 2 is not supported"),
    (lambda v: v.update(extra=1), "unknown field"),
    (lambda v: v["chain"].__setitem__(-1, v["chain"][-1][:-1]), "positive multiple of 32"),
])
def test_a_malformed_package_is_a_decode_error(setup, change, message):
    value = package_of(setup).to_cbor()
    change(value)
    with pytest.raises(DecodeError, match=message):
        verify_package(cbor.encode(value))


def test_trailing_bytes_after_a_package_are_refused(setup):
    with pytest.raises(DecodeError, match="trailing"):
        verify_package(package_of(setup).encode() + b"\x00")


def test_an_export_cannot_disclose_entries_after_the_proved_head(setup):
    loaded, chain, bundle = setup
    with pytest.raises(PackageError) as caught:
        build_package(loaded.entries, (5,), head_seq=4, genesis=chain.genesis_bytes, bundle=bundle)
    assert caught.value.reason == "not-covered"


def test_an_intent_whose_outcome_is_withheld_shows_as_open_among_the_disclosed(tmp_path):
    directory = tmp_path / "journal"
    with Journal.create(directory, clock_ms=clock()) as journal:
        with journal.action("train") as act:
            act.outcome()
    loaded = load(directory)
    chain = proved_chain()
    package = build_package(loaded.entries, (1,), head_seq=2, genesis=chain.genesis_bytes,
                            bundle=chain.bundle_for(loaded.walker.head))
    claim = verify_package(package.encode())
    assert [i.seq for i in claim.report.open_intents] == [1] and claim.entries[-1].kind == Kind.INTENT
