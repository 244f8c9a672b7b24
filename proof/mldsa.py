"""ML-DSA-65 (FIPS 204) signatures behind a small backend interface.

The default backend is pyca ``cryptography`` (OpenSSL's ML-DSA). ``liboqs-python``
is an optional second backend, used only when the liboqs C library is already on
the machine: ``import oqs`` without it tries to download and build liboqs at import
time, so it is never imported unless :func:`_liboqs_library_present` says so.

Pantheon signs with the *pure* ML-DSA variant and an empty FIPS 204 context string;
domain separation lives inside the signed message (see :mod:`proof.hashing`), which
every implementation (including browser ones without context support) can check.
"""

from __future__ import annotations

import ctypes.util
import os
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey, MLDSA65PublicKey

from proof.errors import SignatureError

PUBLIC_KEY_SIZE = 1952
SIGNATURE_SIZE = 3309
SEED_SIZE = 32

BACKEND_ENV = "PANTHEON_MLDSA_BACKEND"


class Backend(Protocol):
    """What Pantheon needs from an ML-DSA-65 implementation."""

    name: str

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool: ...

    def generate(self) -> tuple[bytes, bytes]:
        """A fresh key pair as (backend-specific secret key bytes, public key)."""
        ...

    def sign(self, secret_key: bytes, message: bytes) -> bytes: ...


class CryptographyBackend:
    """pyca ``cryptography``; secret keys are the 32-byte FIPS 204 seed."""

    name = "cryptography"

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
            return False
        try:
            MLDSA65PublicKey.from_public_bytes(public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def generate(self) -> tuple[bytes, bytes]:
        key = MLDSA65PrivateKey.generate()
        return key.private_bytes_raw(), key.public_key().public_bytes_raw()

    def sign(self, secret_key: bytes, message: bytes) -> bytes:
        return MLDSA65PrivateKey.from_seed_bytes(secret_key).sign(message)


def _liboqs_library_present() -> bool:
    """True when the liboqs shared library can be loaded without a build."""
    install_path = os.environ.get("OQS_INSTALL_PATH")
    if install_path and os.path.isdir(install_path):
        return True
    return ctypes.util.find_library("oqs") is not None


class LiboqsBackend:
    """liboqs through ``liboqs-python``; secret keys are liboqs' expanded form."""

    name = "liboqs"
    _ALGORITHM = "ML-DSA-65"

    def __init__(self) -> None:
        if not _liboqs_library_present():
            raise SignatureError("liboqs backend requested but the liboqs library is not installed")
        import oqs  # guarded above: the library is present, so no build is attempted

        self._oqs = oqs

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
            return False
        with self._oqs.Signature(self._ALGORITHM) as verifier:
            return bool(verifier.verify(message, signature, public_key))

    def generate(self) -> tuple[bytes, bytes]:
        with self._oqs.Signature(self._ALGORITHM) as signer:
            public_key = bytes(signer.generate_keypair())
            return bytes(signer.export_secret_key()), public_key

    def sign(self, secret_key: bytes, message: bytes) -> bytes:
        with self._oqs.Signature(self._ALGORITHM, secret_key) as signer:
            return bytes(signer.sign(message))


def available_backends() -> list[Backend]:
    """Every backend usable on this machine, the default first."""
    backends: list[Backend] = [CryptographyBackend()]
    if _liboqs_library_present():
        try:
            backends.append(LiboqsBackend())
        except (ImportError, RuntimeError, SignatureError):
            pass
    return backends


def _select_backend() -> Backend:
    wanted = os.environ.get(BACKEND_ENV, "cryptography")
    for backend in available_backends():
        if backend.name == wanted:
            return backend
    raise SignatureError(
        f"{BACKEND_ENV}={wanted!r} is not available here; "
        f"available: {', '.join(b.name for b in available_backends())}"
    )


_BACKEND: Backend | None = None


def backend() -> Backend:
    """The backend in use (chosen once per process, by ``PANTHEON_MLDSA_BACKEND``)."""
    global _BACKEND
    if _BACKEND is None:
        _BACKEND = _select_backend()
    return _BACKEND


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True iff ``signature`` is a valid ML-DSA-65 signature of ``message``."""
    return backend().verify(public_key, message, signature)


class SigningKey:
    """An ML-DSA-65 signing key, kept as its 32-byte FIPS 204 seed (what key files hold)."""

    __slots__ = ("_key", "public_key", "seed")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_SIZE:
            raise SignatureError(f"ML-DSA-65 seed must be {SEED_SIZE} bytes, got {len(seed)}")
        self._key = MLDSA65PrivateKey.from_seed_bytes(seed)
        self.seed = bytes(seed)
        self.public_key = self._key.public_key().public_bytes_raw()

    @classmethod
    def generate(cls) -> "SigningKey":
        return cls(MLDSA65PrivateKey.generate().private_bytes_raw())

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"SigningKey(public_key={self.public_key[:8].hex()}...)"
