"""The authenticated key agreement that opens every validator link, as a sans-IO state machine.

Theory of operation (four messages and a key confirmation, initiator I dials responder R):

    I -> R  HELLO      chain id, I's index, I's ML-DSA-65 key, X25519 share, ML-KEM-768 encapsulation key
    R -> I  CHALLENGE  chain id, R's index, R's ML-DSA-65 key, X25519 share, fresh 32-byte nonce
    I -> R  PROOF      I's signature over H(initiator-label, HELLO, CHALLENGE)
    R -> I  REPLY      ML-KEM-768 ciphertext, R's signature over H(responder-label, HELLO, CHALLENGE, PROOF,
                       REPLY without signature)
    I -> R  FINISH     HMAC under the confirmation key over the full transcript hash

**The initiator proves itself first.** Everything in a HELLO is public (a HELLO seen on
the wire can be replayed by anyone), so the responder answers it only with a CHALLENGE:
its own public facts and a fresh random nonce, nothing that costs it a signature or an
encapsulation. It signs and encapsulates only once PROOF verifies under the directory key
of the index the HELLO claimed, over a transcript that contains the nonce: only the
holder of that genesis key can produce it, and no recorded PROOF fits a new nonce. The
most an unauthenticated party can make the responder spend is one signature
*verification* (about a seventh of a signature) per connection, which costs it a
connection and 6.5 KB; :mod:`p2p.admission` bounds how many such connections it may
hold at once.

Both validator keys are pinned by the genesis (the *directory*: index -> public key), so
each side refuses a peer whose claimed index is unknown or whose key differs from the
directory's before signing anything: R on HELLO, I on CHALLENGE. The chain id (genesis
hash) travels in the first message, so nodes of different chains never get past HELLO.
Both signatures cover the chain id, both indices, both identity keys, both X25519 shares
and the ML-KEM encapsulation key; R's also covers the ML-KEM ciphertext and I's PROOF.
The one thing I cannot sign is the ciphertext (it does not exist yet when I signs), so
FINISH confirms it: its MAC key comes from the shared secrets and it covers the hash of
the whole transcript, so R adopts a link only after I has shown it derived the same keys
from the same ciphertext. The role labels differ, so a signature can never be reflected
into the other role.

Frame keys come from HKDF-SHA256 over X25519 secret || ML-KEM-768 secret, salted with
the hash of the transcript: the link stays confidential if either X25519 or ML-KEM holds
(hybrid), and the two directions get independent keys.

The machine never touches a socket: ``receive_data`` takes bytes as they arrive,
``data_to_send`` hands back bytes to write, ``complete``/``result`` say when and with what
it finished, ``peer_proven`` says whether the peer has proved its identity yet. Any
failure raises :class:`HandshakeError` and leaves the machine failed.

Wire records: ``u32 length (big endian) || body``; every body starts with
``MAGIC || u16 version || u8 type``; every field has a fixed size, so each message type
has one exact length, checked before parsing.
"""

from __future__ import annotations

import enum
import hmac
import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from p2p.errors import HandshakeError, HandshakeFailure, P2PConfigError
from proof import mldsa
from proof.hashing import TAG_HANDSHAKE, tagged_hash

PROTOCOL_VERSION = 2
"""2: the initiator proves itself (PROOF over a fresh CHALLENGE) before the responder signs; FINISH added."""
MAGIC = b"PNTH"
CHAIN_ID_SIZE = 32
VALIDATOR_INDEX_MAX = 0xFFFF
X25519_PUBLIC_SIZE = 32
MLKEM768_ENCAPSULATION_KEY_SIZE = 1184
MLKEM768_CIPHERTEXT_SIZE = 1088
CHALLENGE_NONCE_SIZE = 32
FINISH_MAC_SIZE = 32
FRAME_KEY_SIZE = 32

RECORD_LENGTH_SIZE = 4
HANDSHAKE_RECORD_BYTES_MAX = 8192
"""Largest handshake body accepted; the largest real one (REPLY) is 4,404 bytes."""

_HEADER = struct.Struct(">4sHB")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")

_LABEL_RESPONDER_SIGNATURE = b"\x01"
_LABEL_INITIATOR_SIGNATURE = b"\x02"
_LABEL_KEYS = b"\x03"
_LABEL_FINISH = b"\x04"
_HKDF_INFO = b"pantheon/p2p/v2 frame keys"


class MessageType(enum.IntEnum):
    HELLO = 1
    CHALLENGE = 2
    PROOF = 3
    REPLY = 4
    FINISH = 5


_HELLO_FIELDS = (CHAIN_ID_SIZE, 2, mldsa.PUBLIC_KEY_SIZE, X25519_PUBLIC_SIZE, MLKEM768_ENCAPSULATION_KEY_SIZE)
_CHALLENGE_FIELDS = (CHAIN_ID_SIZE, 2, mldsa.PUBLIC_KEY_SIZE, X25519_PUBLIC_SIZE, CHALLENGE_NONCE_SIZE)
_PROOF_FIELDS = (mldsa.SIGNATURE_SIZE,)
_REPLY_FIELDS = (MLKEM768_CIPHERTEXT_SIZE, mldsa.SIGNATURE_SIZE)
_FINISH_FIELDS = (FINISH_MAC_SIZE,)
_BODY_SIZE = {
    MessageType.HELLO: _HEADER.size + sum(_HELLO_FIELDS),
    MessageType.CHALLENGE: _HEADER.size + sum(_CHALLENGE_FIELDS),
    MessageType.PROOF: _HEADER.size + sum(_PROOF_FIELDS),
    MessageType.REPLY: _HEADER.size + sum(_REPLY_FIELDS),
    MessageType.FINISH: _HEADER.size + sum(_FINISH_FIELDS),
}
assert max(_BODY_SIZE.values()) <= HANDSHAKE_RECORD_BYTES_MAX


def _fail(reason: HandshakeFailure, detail: str) -> HandshakeError:
    return HandshakeError(reason, detail)


def _check_size(what: str, value: bytes, size: int) -> None:
    if len(value) != size:
        raise _fail(HandshakeFailure.MALFORMED, f"{what} must be {size} bytes, got {len(value)}")


def _check_index(index: int) -> None:
    if not 0 <= index <= VALIDATOR_INDEX_MAX:
        raise _fail(HandshakeFailure.MALFORMED, f"validator index {index} outside 0..{VALIDATOR_INDEX_MAX}")


def _split(body: bytes, sizes: tuple[int, ...]) -> list[bytes]:
    fields = []
    offset = _HEADER.size
    for size in sizes:
        fields.append(body[offset : offset + size])
        offset += size
    return fields


def _header(kind: MessageType) -> bytes:
    return _HEADER.pack(MAGIC, PROTOCOL_VERSION, kind)


@dataclass(frozen=True)
class Hello:
    chain_id: bytes
    index: int
    identity_key: bytes
    x25519_public: bytes
    mlkem_encapsulation_key: bytes

    def __post_init__(self) -> None:
        _check_size("chain id", self.chain_id, CHAIN_ID_SIZE)
        _check_index(self.index)
        _check_size("ML-DSA-65 public key", self.identity_key, mldsa.PUBLIC_KEY_SIZE)
        _check_size("X25519 share", self.x25519_public, X25519_PUBLIC_SIZE)
        _check_size("ML-KEM-768 encapsulation key", self.mlkem_encapsulation_key, MLKEM768_ENCAPSULATION_KEY_SIZE)

    def encode(self) -> bytes:
        return b"".join((_header(MessageType.HELLO), self.chain_id, _U16.pack(self.index), self.identity_key,
                         self.x25519_public, self.mlkem_encapsulation_key))

    @classmethod
    def decode(cls, body: bytes) -> "Hello":
        chain_id, index, key, share, ek = _split(body, _HELLO_FIELDS)
        return cls(chain_id, _U16.unpack(index)[0], key, share, ek)


@dataclass(frozen=True)
class Challenge:
    """The responder's public facts and a fresh nonce: all it gives before the initiator proves itself."""

    chain_id: bytes
    index: int
    identity_key: bytes
    x25519_public: bytes
    nonce: bytes

    def __post_init__(self) -> None:
        _check_size("chain id", self.chain_id, CHAIN_ID_SIZE)
        _check_index(self.index)
        _check_size("ML-DSA-65 public key", self.identity_key, mldsa.PUBLIC_KEY_SIZE)
        _check_size("X25519 share", self.x25519_public, X25519_PUBLIC_SIZE)
        _check_size("challenge nonce", self.nonce, CHALLENGE_NONCE_SIZE)

    def encode(self) -> bytes:
        return b"".join((_header(MessageType.CHALLENGE), self.chain_id, _U16.pack(self.index), self.identity_key,
                         self.x25519_public, self.nonce))

    @classmethod
    def decode(cls, body: bytes) -> "Challenge":
        chain_id, index, key, share, nonce = _split(body, _CHALLENGE_FIELDS)
        return cls(chain_id, _U16.unpack(index)[0], key, share, nonce)


@dataclass(frozen=True)
class Proof:
    """The initiator's signature over HELLO and the responder's fresh CHALLENGE."""

    signature: bytes

    def __post_init__(self) -> None:
        _check_size("ML-DSA-65 signature", self.signature, mldsa.SIGNATURE_SIZE)

    def encode(self) -> bytes:
        return _header(MessageType.PROOF) + self.signature

    @classmethod
    def decode(cls, body: bytes) -> "Proof":
        (signature,) = _split(body, _PROOF_FIELDS)
        return cls(signature)


@dataclass(frozen=True)
class Reply:
    mlkem_ciphertext: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_size("ML-KEM-768 ciphertext", self.mlkem_ciphertext, MLKEM768_CIPHERTEXT_SIZE)
        _check_size("ML-DSA-65 signature", self.signature, mldsa.SIGNATURE_SIZE)

    def encode_unsigned(self) -> bytes:
        """The part of the body the responder's signature covers (everything before it)."""
        return _header(MessageType.REPLY) + self.mlkem_ciphertext

    def encode(self) -> bytes:
        return self.encode_unsigned() + self.signature

    @classmethod
    def decode(cls, body: bytes) -> "Reply":
        ciphertext, signature = _split(body, _REPLY_FIELDS)
        return cls(ciphertext, signature)


@dataclass(frozen=True)
class Finish:
    """Key confirmation: HMAC-SHA256 under the confirmation key over the transcript hash."""

    mac: bytes

    def __post_init__(self) -> None:
        _check_size("FINISH MAC", self.mac, FINISH_MAC_SIZE)

    def encode(self) -> bytes:
        return _header(MessageType.FINISH) + self.mac

    @classmethod
    def decode(cls, body: bytes) -> "Finish":
        (mac,) = _split(body, _FINISH_FIELDS)
        return cls(mac)


Message = Hello | Challenge | Proof | Reply | Finish
_DECODERS = {MessageType.HELLO: Hello.decode, MessageType.CHALLENGE: Challenge.decode,
             MessageType.PROOF: Proof.decode, MessageType.REPLY: Reply.decode, MessageType.FINISH: Finish.decode}


def decode_body(body: bytes, expected: MessageType) -> Message:
    """Parse one handshake body, checking magic, version, type and exact length in that order."""
    if len(body) < _HEADER.size:
        raise _fail(HandshakeFailure.MALFORMED, f"handshake message of {len(body)} bytes is shorter than its header")
    magic, version, kind = _HEADER.unpack_from(body)
    if magic != MAGIC:
        raise _fail(HandshakeFailure.BAD_MAGIC, f"peer is not speaking the Pantheon p2p protocol (magic {magic!r})")
    if version != PROTOCOL_VERSION:
        raise _fail(HandshakeFailure.VERSION_MISMATCH,
                    f"peer speaks protocol version {version}, we speak {PROTOCOL_VERSION}")
    if kind != expected:
        raise _fail(HandshakeFailure.MALFORMED, f"expected handshake message {expected.name}, got type {kind}")
    if len(body) != _BODY_SIZE[expected]:
        raise _fail(HandshakeFailure.MALFORMED,
                    f"{expected.name} must be {_BODY_SIZE[expected]} bytes, got {len(body)}")
    return _DECODERS[expected](body)


def record(body: bytes) -> bytes:
    """A handshake message as it goes on the wire."""
    return _U32.pack(len(body)) + body


def _length_prefixed(*parts: bytes) -> list[bytes]:
    return [piece for part in parts for piece in (_U32.pack(len(part)), part)]


def _transcript_hash(label: bytes, *messages: bytes) -> bytes:
    return tagged_hash(TAG_HANDSHAKE, label, *_length_prefixed(*messages))


def proof_message(hello_body: bytes, challenge_body: bytes) -> bytes:
    """What the initiator's PROOF signature signs: H(0x02 || lp(HELLO) || lp(CHALLENGE))."""
    return _transcript_hash(_LABEL_INITIATOR_SIGNATURE, hello_body, challenge_body)


@dataclass(frozen=True)
class LocalIdentity:
    """Who this node is on the network: the chain it belongs to and its validator key."""

    chain_id: bytes
    index: int
    signing_key: mldsa.SigningKey

    def __post_init__(self) -> None:
        if len(self.chain_id) != CHAIN_ID_SIZE:
            raise P2PConfigError(f"chain id must be {CHAIN_ID_SIZE} bytes (the genesis hash), got {len(self.chain_id)}")
        if not 0 <= self.index <= VALIDATOR_INDEX_MAX:
            raise P2PConfigError(f"validator index {self.index} outside 0..{VALIDATOR_INDEX_MAX}")

    def check_against(self, directory: Mapping[int, bytes]) -> None:
        """Refuse to start when our own key is not the one the genesis lists for our index."""
        if directory.get(self.index) != self.signing_key.public_key:
            raise P2PConfigError(
                f"validator key {self.signing_key.public_key[:8].hex()}... is not the genesis key of "
                f"validator {self.index}; wrong key file or wrong genesis")


@dataclass(frozen=True)
class HandshakeResult:
    """An authenticated peer and the frame keys for both directions."""

    peer_index: int
    initiator: bool
    send_key: bytes
    receive_key: bytes
    transcript_hash: bytes

    def __repr__(self) -> str:
        return f"HandshakeResult(peer_index={self.peer_index}, initiator={self.initiator})"


class Role(enum.Enum):
    INITIATOR = "initiator"
    RESPONDER = "responder"


class _State(enum.Enum):
    AWAIT_HELLO = "await_hello"
    AWAIT_CHALLENGE = "await_challenge"
    AWAIT_PROOF = "await_proof"
    AWAIT_REPLY = "await_reply"
    AWAIT_FINISH = "await_finish"
    DONE = "done"
    FAILED = "failed"


_EXPECTED = {
    _State.AWAIT_HELLO: MessageType.HELLO,
    _State.AWAIT_CHALLENGE: MessageType.CHALLENGE,
    _State.AWAIT_PROOF: MessageType.PROOF,
    _State.AWAIT_REPLY: MessageType.REPLY,
    _State.AWAIT_FINISH: MessageType.FINISH,
}


@dataclass(frozen=True)
class _SessionKeys:
    to_responder: bytes
    to_initiator: bytes
    finish: bytes


def _derive_keys(x25519_secret: bytes, mlkem_secret: bytes, transcript: bytes) -> _SessionKeys:
    okm = HKDF(algorithm=hashes.SHA256(), length=3 * FRAME_KEY_SIZE, salt=transcript, info=_HKDF_INFO).derive(
        x25519_secret + mlkem_secret)
    return _SessionKeys(okm[:FRAME_KEY_SIZE], okm[FRAME_KEY_SIZE : 2 * FRAME_KEY_SIZE], okm[2 * FRAME_KEY_SIZE :])


def _finish_mac(keys: _SessionKeys, transcript: bytes) -> bytes:
    return hmac.digest(keys.finish, _LABEL_FINISH + transcript, "sha256")


def _x25519(private: X25519PrivateKey, peer_public: bytes) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError as exc:
        raise _fail(HandshakeFailure.BAD_KEY_SHARE, f"X25519 share rejected ({exc})") from None


class Handshake:
    """One side of one handshake. Create with :meth:`initiator` or :meth:`responder`."""

    def __init__(self, role: Role, identity: LocalIdentity, directory: Mapping[int, bytes],
                 expected_peer: int | None, admit_proof: Callable[[], bool] | None = None) -> None:
        identity.check_against(directory)
        self.role = role
        self._admit_proof = admit_proof
        self._identity = identity
        self._directory = directory
        self._expected_peer = expected_peer
        self._x25519: X25519PrivateKey | None = None
        self._x25519_public = b""
        self._mlkem: MLKEM768PrivateKey | None = None
        self._buffer = bytearray()
        self._outgoing = bytearray()
        self._hello = b""
        self._challenge = b""
        self._proof = b""
        self._peer_proven = False
        self._x25519_secret = b""
        self._transcript = b""
        self._session: _SessionKeys | None = None
        self._error: HandshakeError | None = None
        self._result: HandshakeResult | None = None
        if role is Role.INITIATOR:
            self._new_x25519()
            self._mlkem = MLKEM768PrivateKey.generate()
            hello = Hello(identity.chain_id, identity.index, identity.signing_key.public_key, self._x25519_public,
                          self._mlkem.public_key().public_bytes_raw())
            self._hello = hello.encode()
            self._outgoing += record(self._hello)
            self._state = _State.AWAIT_CHALLENGE
        else:
            self._state = _State.AWAIT_HELLO

    @classmethod
    def initiator(cls, identity: LocalIdentity, directory: Mapping[int, bytes], peer_index: int) -> "Handshake":
        """We dialed ``peer_index``; anyone else answering is refused."""
        if peer_index not in directory:
            raise P2PConfigError(f"cannot dial validator {peer_index}: the genesis does not list it")
        return cls(Role.INITIATOR, identity, directory, peer_index)

    @classmethod
    def responder(cls, identity: LocalIdentity, directory: Mapping[int, bytes],
                  admit_proof: Callable[[], bool] | None = None) -> "Handshake":
        """Answer a dialer. ``admit_proof`` is asked before each PROOF is verified (the caller's work
        budget, e.g. :class:`p2p.admission.ProofBudget`); False refuses it unverified (``rate_limited``)."""
        return cls(Role.RESPONDER, identity, directory, None, admit_proof)

    def _new_x25519(self) -> None:
        self._x25519 = X25519PrivateKey.generate()
        self._x25519_public = self._x25519.public_key().public_bytes_raw()

    @property
    def complete(self) -> bool:
        return self._state is _State.DONE

    @property
    def peer_proven(self) -> bool:
        """True once the peer has signed this handshake's fresh transcript with its genesis key."""
        return self._peer_proven

    @property
    def result(self) -> HandshakeResult:
        if self._result is None:
            raise RuntimeError("handshake not complete")
        return self._result

    def data_to_send(self) -> bytes:
        out = bytes(self._outgoing)
        self._outgoing.clear()
        return out

    def trailing_data(self) -> bytes:
        """Bytes that arrived after the last handshake message: the first frames of the link."""
        return bytes(self._buffer)

    def receive_data(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._buffer += data
        try:
            while self._state in _EXPECTED:
                body = self._next_body()
                if body is None:
                    return
                self._handle(body)
        except HandshakeError as exc:
            self._state = _State.FAILED
            self._error = exc
            raise

    def _next_body(self) -> bytes | None:
        if len(self._buffer) < RECORD_LENGTH_SIZE:
            return None
        (length,) = _U32.unpack_from(self._buffer)
        if length > HANDSHAKE_RECORD_BYTES_MAX:
            raise _fail(HandshakeFailure.OVERSIZE,
                        f"handshake message claims {length} bytes, limit {HANDSHAKE_RECORD_BYTES_MAX}")
        end = RECORD_LENGTH_SIZE + length
        if len(self._buffer) < end:
            return None
        body = bytes(self._buffer[RECORD_LENGTH_SIZE:end])
        del self._buffer[:end]
        return body

    def _handle(self, body: bytes) -> None:
        message = decode_body(body, _EXPECTED[self._state])
        if isinstance(message, Hello):
            self._on_hello(body, message)
        elif isinstance(message, Challenge):
            self._on_challenge(body, message)
        elif isinstance(message, Proof):
            self._on_proof(body, message)
        elif isinstance(message, Reply):
            self._on_reply(body, message)
        else:
            self._on_finish(message)

    def _check_peer(self, chain_id: bytes, index: int, identity_key: bytes) -> None:
        if chain_id != self._identity.chain_id:
            raise _fail(HandshakeFailure.CHAIN_ID_MISMATCH,
                        f"peer is on chain {chain_id.hex()[:16]}..., we are on {self._identity.chain_id.hex()[:16]}... "
                        "(different genesis)")
        if index == self._identity.index:
            raise _fail(HandshakeFailure.SELF_CONNECTION,
                        f"peer claims our own index {index}: a connection to ourselves or a duplicated key")
        if index not in self._directory:
            raise _fail(HandshakeFailure.UNKNOWN_VALIDATOR,
                        f"peer claims validator {index}, which the genesis does not list")
        if self._expected_peer is not None and index != self._expected_peer:
            raise _fail(HandshakeFailure.UNEXPECTED_PEER,
                        f"dialed validator {self._expected_peer} but validator {index} answered "
                        "(check the peer address)")
        if identity_key != self._directory[index]:
            raise _fail(HandshakeFailure.KEY_MISMATCH,
                        f"peer's key {identity_key[:8].hex()}... is not the genesis key of validator {index}")

    def _verify_peer_signature(self, signed: bytes, signature: bytes) -> None:
        assert self._expected_peer is not None
        if not mldsa.verify(self._directory[self._expected_peer], signed, signature):
            raise _fail(HandshakeFailure.BAD_SIGNATURE,
                        f"validator {self._expected_peer}'s transcript signature does not verify "
                        "(tampered, forged or replayed handshake)")
        self._peer_proven = True

    # ---- responder ----------------------------------------------------------------

    def _on_hello(self, body: bytes, hello: Hello) -> None:
        """Public facts only: check them and answer with a fresh challenge, spending no signature."""
        self._check_peer(hello.chain_id, hello.index, hello.identity_key)
        self._expected_peer = hello.index
        self._hello = body
        self._new_x25519()
        challenge = Challenge(self._identity.chain_id, self._identity.index, self._identity.signing_key.public_key,
                              self._x25519_public, os.urandom(CHALLENGE_NONCE_SIZE))
        self._challenge = challenge.encode()
        self._outgoing += record(self._challenge)
        self._state = _State.AWAIT_PROOF

    def _on_proof(self, body: bytes, proof: Proof) -> None:
        """The initiator signed our nonce with its genesis key: now, and only now, encapsulate and sign."""
        if self._admit_proof is not None and not self._admit_proof():
            raise _fail(HandshakeFailure.RATE_LIMITED,
                        "this source has used its budget of proof verifications; PROOF refused unverified")
        self._verify_peer_signature(proof_message(self._hello, self._challenge), proof.signature)
        self._proof = body
        hello = Hello.decode(self._hello)
        assert self._x25519 is not None
        x25519_secret = _x25519(self._x25519, hello.x25519_public)
        try:
            mlkem_secret, ciphertext = MLKEM768PublicKey.from_public_bytes(hello.mlkem_encapsulation_key).encapsulate()
        except ValueError as exc:
            raise _fail(HandshakeFailure.BAD_KEY_SHARE, f"ML-KEM-768 encapsulation key rejected ({exc})") from None
        unsigned = Reply(ciphertext, bytes(mldsa.SIGNATURE_SIZE)).encode_unsigned()
        signature = self._identity.signing_key.sign(
            _transcript_hash(_LABEL_RESPONDER_SIGNATURE, self._hello, self._challenge, self._proof, unsigned))
        reply = unsigned + signature
        self._outgoing += record(reply)
        self._keys(x25519_secret, mlkem_secret, reply)
        self._state = _State.AWAIT_FINISH

    def _on_finish(self, finish: Finish) -> None:
        assert self._session is not None
        if not hmac.compare_digest(finish.mac, _finish_mac(self._session, self._transcript)):
            raise _fail(HandshakeFailure.BAD_CONFIRMATION,
                        f"validator {self._expected_peer} derived other session keys (ciphertext altered in transit)")
        self._finish()

    # ---- initiator ----------------------------------------------------------------

    def _on_challenge(self, body: bytes, challenge: Challenge) -> None:
        """Check the responder's public facts before signing anything for it, then prove ourselves."""
        if challenge.x25519_public == self._x25519_public:
            raise _fail(HandshakeFailure.SELF_CONNECTION, "peer echoed our own key share (reflected connection)")
        self._check_peer(challenge.chain_id, challenge.index, challenge.identity_key)
        assert self._x25519 is not None
        self._x25519_secret = _x25519(self._x25519, challenge.x25519_public)
        self._challenge = body
        self._proof = Proof(self._identity.signing_key.sign(proof_message(self._hello, body))).encode()
        self._outgoing += record(self._proof)
        self._state = _State.AWAIT_REPLY

    def _on_reply(self, body: bytes, reply: Reply) -> None:
        self._verify_peer_signature(
            _transcript_hash(_LABEL_RESPONDER_SIGNATURE, self._hello, self._challenge, self._proof,
                             reply.encode_unsigned()),
            reply.signature)
        assert self._mlkem is not None
        try:
            mlkem_secret = self._mlkem.decapsulate(reply.mlkem_ciphertext)
        except ValueError as exc:
            raise _fail(HandshakeFailure.BAD_KEY_SHARE, f"ML-KEM-768 ciphertext rejected ({exc})") from None
        session = self._keys(self._x25519_secret, mlkem_secret, body)
        self._outgoing += record(Finish(_finish_mac(session, self._transcript)).encode())
        self._finish()

    # ---- both ---------------------------------------------------------------------

    def _keys(self, x25519_secret: bytes, mlkem_secret: bytes, reply: bytes) -> _SessionKeys:
        self._transcript = _transcript_hash(_LABEL_KEYS, self._hello, self._challenge, self._proof, reply)
        self._session = _derive_keys(x25519_secret, mlkem_secret, self._transcript)
        return self._session

    def _finish(self) -> None:
        assert self._expected_peer is not None and self._session is not None
        initiator = self.role is Role.INITIATOR
        keys = self._session
        self._result = HandshakeResult(
            peer_index=self._expected_peer,
            initiator=initiator,
            send_key=keys.to_responder if initiator else keys.to_initiator,
            receive_key=keys.to_initiator if initiator else keys.to_responder,
            transcript_hash=self._transcript,
        )
        self._x25519 = self._mlkem = self._session = None
        self._x25519_secret = b""
        self._state = _State.DONE
