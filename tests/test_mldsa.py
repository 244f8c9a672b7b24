"""ML-DSA-65 through every backend present on this machine."""

import pytest

from proof import mldsa
from proof.errors import SignatureError

BACKENDS = mldsa.available_backends()
MESSAGE = b"pantheon test message"


def test_fips204_sizes():
    key = mldsa.SigningKey.generate()
    signature = key.sign(MESSAGE)
    assert len(key.public_key) == mldsa.PUBLIC_KEY_SIZE == 1952
    assert len(signature) == mldsa.SIGNATURE_SIZE == 3309
    assert len(key.seed) == mldsa.SEED_SIZE == 32


def test_signature_verifies_and_binds_the_message():
    key = mldsa.SigningKey.generate()
    signature = key.sign(MESSAGE)
    assert mldsa.verify(key.public_key, MESSAGE, signature)
    assert not mldsa.verify(key.public_key, MESSAGE + b"!", signature)


def test_every_flipped_bit_in_a_signature_sample_is_rejected():
    key = mldsa.SigningKey.generate()
    signature = bytearray(key.sign(MESSAGE))
    for position in range(0, len(signature), 97):
        signature[position] ^= 0x01
        assert not mldsa.verify(key.public_key, MESSAGE, bytes(signature))
        signature[position] ^= 0x01


def test_wrong_sizes_are_rejected_not_raised():
    key = mldsa.SigningKey.generate()
    signature = key.sign(MESSAGE)
    assert not mldsa.verify(key.public_key[:-1], MESSAGE, signature)
    assert not mldsa.verify(key.public_key, MESSAGE, signature[:-1])
    assert not mldsa.verify(key.public_key, MESSAGE, signature + b"\x00")


def test_seed_round_trip_gives_the_same_public_key():
    key = mldsa.SigningKey.generate()
    assert mldsa.SigningKey(key.seed).public_key == key.public_key


def test_seed_of_wrong_length_is_refused():
    with pytest.raises(SignatureError, match="32 bytes"):
        mldsa.SigningKey(b"\x00" * 31)


def test_repr_does_not_leak_the_seed():
    key = mldsa.SigningKey.generate()
    assert key.seed.hex() not in repr(key)


def test_unknown_backend_name_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(mldsa.BACKEND_ENV, "no-such-backend")
    with pytest.raises(SignatureError, match="not available"):
        mldsa._select_backend()


@pytest.mark.parametrize("signer", BACKENDS, ids=lambda b: b.name)
@pytest.mark.parametrize("verifier", BACKENDS, ids=lambda b: b.name)
def test_backends_cross_verify(signer, verifier):
    secret, public = signer.generate()
    signature = signer.sign(secret, MESSAGE)
    assert verifier.verify(public, MESSAGE, signature)
    assert not verifier.verify(public, MESSAGE[:-1], signature)


@pytest.mark.skipif(
    len(BACKENDS) > 1, reason="liboqs is present: cross-verification runs above instead"
)
def test_liboqs_is_absent_so_only_the_default_backend_runs():
    assert mldsa._liboqs_library_present() is False
    assert [b.name for b in BACKENDS] == ["cryptography"]
