"""Pluggable vote signatures: real ML-DSA-65 for nodes, keyed HMAC for the simulator.

The core never calls ML-DSA directly. A simulated run signs thousands of votes per
seed, and ML-DSA signing is randomized and costs about a millisecond, which would make
runs slow and traces seed-dependent only in part. ``SimSigner``/``SimVerifier`` give
the same interface with HMAC-SHA256 keyed per validator: deterministic, cheap, and
still unforgeable by a Byzantine simulated validator that does not hold the key.
They are for the simulator and tests only; a real node uses the ML-DSA pair.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Protocol

from proof.chain import Genesis
from proof.mldsa import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SigningKey
from proof.mldsa import verify as mldsa_verify

SIM_SIGNATURE_SIZE = 32


class Signer(Protocol):
    """This validator's signing half."""

    index: int

    def sign(self, message: bytes) -> bytes: ...


class Verifier(Protocol):
    """Checks a signature by validator index (the index pins the key through the genesis)."""

    def verify(self, index: int, message: bytes, signature: bytes) -> bool: ...


class MLDSASigner:
    """Signs with this validator's ML-DSA-65 key."""

    def __init__(self, key: SigningKey, index: int) -> None:
        self.key = key
        self.index = index

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)


class MLDSAVerifier:
    """Verifies ML-DSA-65 signatures against the public keys fixed by the genesis."""

    def __init__(self, genesis: Genesis) -> None:
        self._keys = genesis.validators

    def verify(self, index: int, message: bytes, signature: bytes) -> bool:
        if not 0 <= index < len(self._keys):
            return False
        return mldsa_verify(self._keys[index], message, signature)


class SimSigner:
    """HMAC-SHA256 under a per-validator seed: deterministic signatures for simulation.

    ``signature_size`` pads the tag with zeros (up to ML-DSA-65's 3,309 bytes) so that a
    simulated certificate weighs what a real one does on the wire.
    """

    def __init__(self, index: int, seed: bytes, signature_size: int = SIM_SIGNATURE_SIZE) -> None:
        if not SIM_SIGNATURE_SIZE <= signature_size <= SIGNATURE_SIZE:
            raise ValueError(f"signature_size must be {SIM_SIGNATURE_SIZE}..{SIGNATURE_SIZE}")
        self.index = index
        self._seed = bytes(seed)
        self._padding = bytes(signature_size - SIM_SIGNATURE_SIZE)

    def sign(self, message: bytes) -> bytes:
        return hmac.new(self._seed, message, hashlib.sha256).digest() + self._padding


class SimVerifier:
    """Checks SimSigner signatures, given every validator's seed (index = position)."""

    def __init__(self, seeds: Sequence[bytes], signature_size: int = SIM_SIGNATURE_SIZE) -> None:
        self._seeds = tuple(bytes(seed) for seed in seeds)
        self._padding = bytes(signature_size - SIM_SIGNATURE_SIZE)

    def verify(self, index: int, message: bytes, signature: bytes) -> bool:
        if not 0 <= index < len(self._seeds) or len(signature) != SIM_SIGNATURE_SIZE + len(self._padding):
            return False
        expected = hmac.new(self._seeds[index], message, hashlib.sha256).digest() + self._padding
        return hmac.compare_digest(expected, signature)


def sim_seed(index: int, salt: bytes = b"") -> bytes:
    """The simulator's signing seed of validator ``index`` (salted per run if wanted)."""
    return hashlib.sha256(b"pantheon/sim-seed/v1" + salt + index.to_bytes(4, "big")).digest()


def sim_public_key(seed: bytes) -> bytes:
    """A stand-in 'public key' of genesis size for a simulated validator.

    A genesis must list keys of ML-DSA-65 size; simulated validators have none, so
    each gets a distinct deterministic placeholder derived from its seed. It is never
    used to verify anything (SimVerifier holds the seeds).
    """
    blocks = (PUBLIC_KEY_SIZE + 31) // 32
    stream = b"".join(hashlib.sha256(seed + counter.to_bytes(4, "big")).digest() for counter in range(blocks))
    return stream[:PUBLIC_KEY_SIZE]


def sim_validators(
    n: int, salt: bytes = b"", signature_size: int = SIM_SIGNATURE_SIZE
) -> tuple[list[SimSigner], SimVerifier, tuple[bytes, ...]]:
    """Signers, the shared verifier and placeholder public keys for ``n`` simulated validators."""
    seeds = [sim_seed(index, salt) for index in range(n)]
    signers = [SimSigner(index, seed, signature_size) for index, seed in enumerate(seeds)]
    return signers, SimVerifier(seeds, signature_size), tuple(sim_public_key(seed) for seed in seeds)
