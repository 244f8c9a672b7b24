"""Fuzz targets: every decoder and parser that takes outside bytes raises only its documented errors.

Each target feeds a parser random bytes and mutations of real encodings (bits flipped,
bytes inserted, deleted or overwritten, the input cut or spliced with another), and
checks that what escapes is the documented error class and nothing else: no
``KeyError``, ``IndexError``, ``RecursionError``, ``MemoryError`` or other crash. The
hypothesis deadline is what catches a parser that hangs or works without bound.

``make fuzz`` runs them long (``PANTHEON_FUZZ_EXAMPLES``, default here 120 per target)
with hypothesis statistics, which print the examples run per target. The bitcoind RPC
replies have their own targets (tests/test_bitcoind_hostile_fuzz.py), as do arbitrary
consensus event sequences (tests/test_consensus_fuzz.py). A crashing input a long run
finds becomes a named test of its own, so the suite runs it every time (none so far).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.block import Block
from consensus.messages import (
    CatchUpRequest,
    CatchUpResponse,
    CertificateMessage,
    EquivocationEvidence,
    InvalidBlockEvidence,
    decode_message,
)
from consensus.safety import SafetyState
from journal.entry import Entry
from journal.errors import ChainError, JournalError
from journal.package import Package, verify_package
from p2p.errors import FrameError, HandshakeError
from p2p.frames import Channel, FrameOpener, FrameSealer
from p2p.handshake import Handshake, LocalIdentity
from proof import cbor
from proof.bundle import Bundle, verify_bundle
from proof.chain import BlockHeader, Certificate, FinalizationProof, Genesis, VoteKind
from proof.errors import DecodeError, ProofError
from proof.mldsa import SigningKey
from proof.spv import parse_header, parse_transaction
from tests.test_consensus_harness import Cast, fresh_roots

FUZZ_EXAMPLES = int(os.environ.get("PANTHEON_FUZZ_EXAMPLES", "120"))
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=2_000, suppress_health_check=[HealthCheck.too_slow])
VECTORS = Path(__file__).parent / "vectors"

# ---------------------------------------------------------------- seeds: real encodings

CAST = Cast(salt=b"fuzz-decoders")
_FIRST = CAST.block(0, roots=fresh_roots(b"fuzz-a", 3))
_SECOND = CAST.block(1, _FIRST, roots=fresh_roots(b"fuzz-b", 2))
_CERT = CAST.certificate(VoteKind.FINALIZE, 1, _SECOND.hash)
CONSENSUS_SEEDS = [
    CAST.vote(1, VoteKind.NOTARIZE, 3, _FIRST.hash).encode(),
    CAST.proposal(_FIRST).encode(),
    CertificateMessage(_CERT, block=_SECOND).encode(),
    CatchUpRequest(request_id=7, from_height=1, max_blocks=64).encode(),
    CatchUpResponse(request_id=7, blocks=((_FIRST, _CERT),), tail=(_SECOND.header,)).encode(),
]
RECORD_SEEDS = {
    "header": _FIRST.header.encode(),
    "certificate": _CERT.encode(),
    "finalization": FinalizationProof(headers=(_SECOND.header,), certificate=_CERT).encode(),
    "genesis": CAST.genesis.encode(),
    "block": _FIRST.encode(),
    "safety": SafetyState(view=9, finalize_votes=(3, 5), entry=_CERT).encode(),
    "evidence": EquivocationEvidence(
        CAST.vote(2, VoteKind.NOTARIZE, 4, b"\1" * 32), CAST.vote(2, VoteKind.NOTARIZE, 4, b"\2" * 32)
    ).encode(),
    "invalid-block": InvalidBlockEvidence(CAST.vote(0, VoteKind.NOTARIZE, 4, b"\1" * 32), "repeats a root").encode(),
}
BUNDLE_GENESIS = Genesis.decode((VECTORS / "bundles" / "genesis-v4.cbor").read_bytes())
BUNDLE_SEEDS = [path.read_bytes() for path in sorted((VECTORS / "bundles" / "valid").glob("*v4*.cbor"))[:6]]
PACKAGE_SEEDS = [path.read_bytes() for path in sorted((VECTORS / "journal" / "packages" / "valid").glob("*.cbor"))]
GENESIS_BLOCK_HEADER = bytes.fromhex(
    "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e"
    "67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c"
)
GENESIS_COINBASE = bytes.fromhex(
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d01"
    "04455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f662073"
    "65636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe55482719"
    "67f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a"
    "4c702b6bf11d5fac00000000"
)


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """Random bytes, or a real encoding with a few edits (or spliced with another)."""
    if not seeds or draw(st.integers(min_value=0, max_value=9)) == 0:
        return draw(st.binary(max_size=512))
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        edit = draw(st.sampled_from(("flip", "insert", "delete", "set", "cut", "splice")))
        at = draw(st.integers(min_value=0, max_value=max(0, len(data) - 1)))
        if edit == "flip" and data:
            data[at] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=9))
        elif edit == "delete" and data:
            del data[at : at + draw(st.integers(min_value=1, max_value=9))]
        elif edit == "set" and data:
            data[at] = draw(st.sampled_from((0x00, 0x17, 0x18, 0x1B, 0x5F, 0x9F, 0xBF, 0xF5, 0xF9, 0xFF)))
        elif edit == "cut":
            del data[at:]
        elif edit == "splice":
            other = draw(st.sampled_from(seeds))
            data[at:] = other[draw(st.integers(min_value=0, max_value=max(0, len(other) - 1))) :]
    return bytes(data)


def _only(errors: tuple[type[BaseException], ...], parse: Callable[[], object]) -> None:
    try:
        parse()
    except errors:
        pass


# ---------------------------------------------------------------- targets

@FUZZ
@given(mutated(CONSENSUS_SEEDS))
def test_fuzz_consensus_messages(data: bytes) -> None:
    _only((DecodeError,), lambda: decode_message(data))


RECORD_DECODERS: dict[str, Callable[[bytes], object]] = {
    "header": BlockHeader.decode,
    "certificate": Certificate.decode,
    "finalization": FinalizationProof.decode,
    "genesis": Genesis.decode,
    "block": Block.decode,
    "safety": SafetyState.decode,
    "evidence": EquivocationEvidence.decode,
    "invalid-block": InvalidBlockEvidence.decode,
}


@pytest.mark.parametrize("record", sorted(RECORD_DECODERS))
def test_fuzz_chain_and_consensus_records(record: str) -> None:
    @FUZZ
    @given(mutated([RECORD_SEEDS[record]]))
    def target(data: bytes) -> None:
        _only((DecodeError,), lambda: RECORD_DECODERS[record](data))

    target()


@FUZZ
@given(mutated(CONSENSUS_SEEDS + list(RECORD_SEEDS.values())))
def test_fuzz_canonical_cbor(data: bytes) -> None:
    _only((DecodeError,), lambda: cbor.decode(data, max_size=1 << 16))


@FUZZ
@given(mutated(BUNDLE_SEEDS))
def test_fuzz_proof_bundles(data: bytes) -> None:
    _only((DecodeError,), lambda: Bundle.decode(data))
    _only((DecodeError, ProofError), lambda: verify_bundle(data, genesis=BUNDLE_GENESIS))


@FUZZ
@given(mutated([GENESIS_COINBASE]))
def test_fuzz_bitcoin_transactions(data: bytes) -> None:
    _only((DecodeError, ProofError), lambda: parse_transaction(data))


@FUZZ
@given(mutated([GENESIS_BLOCK_HEADER]))
def test_fuzz_bitcoin_headers(data: bytes) -> None:
    _only((DecodeError, ProofError), lambda: parse_header(data))


@FUZZ
@given(mutated(PACKAGE_SEEDS))
def test_fuzz_journal_packages(data: bytes) -> None:
    # An entry inside a package that does not decode is ChainError (reason "decode"), by the spec.
    _only((DecodeError, ChainError), lambda: Package.decode(data))
    _only((DecodeError, ProofError, JournalError), lambda: verify_package(data))


@FUZZ
@given(mutated(PACKAGE_SEEDS))
def test_fuzz_journal_entries(data: bytes) -> None:
    _only((DecodeError, JournalError), lambda: Entry.decode(data))


KEY = bytes(range(32))
_SEALER = FrameSealer(KEY)
FRAME_SEEDS = [_SEALER.seal(Channel.CONSENSUS, payload) for payload in (b"", b"vote", bytes(300))]


@FUZZ
@given(st.lists(mutated(FRAME_SEEDS), min_size=1, max_size=4))
def test_fuzz_p2p_frames(chunks: list[bytes]) -> None:
    opener = FrameOpener(KEY)
    try:
        for chunk in chunks:
            opener.receive_data(chunk)
            while opener.next_frame() is not None:
                pass
    except FrameError:
        pass


_RESPONDER_KEY, _INITIATOR_KEY = SigningKey(bytes(32)), SigningKey(bytes([1]) * 32)
DIRECTORY = {0: _RESPONDER_KEY.public_key, 1: _INITIATOR_KEY.public_key}
RESPONDER = LocalIdentity(chain_id=CAST.genesis.hash, index=0, signing_key=_RESPONDER_KEY)
_INITIATOR = Handshake.initiator(LocalIdentity(chain_id=CAST.genesis.hash, index=1, signing_key=_INITIATOR_KEY),
                                 DIRECTORY, 0)
HELLO_SEEDS = [_INITIATOR.data_to_send()]


@FUZZ
@given(st.lists(mutated(HELLO_SEEDS), min_size=1, max_size=3))
def test_fuzz_p2p_handshake_responder(chunks: list[bytes]) -> None:
    handshake = Handshake.responder(RESPONDER, DIRECTORY)
    try:
        for chunk in chunks:
            handshake.receive_data(chunk)
    except HandshakeError:
        pass


HTTP_PATHS = st.sampled_from(
    ["/v1/roots", "/v1/roots/", "/v1/blocks/", "/v1/anchored/", "/v1/consistency?size1=", "/v1/evidence?limit=",
     "/v1/anchors?from_height=", "/v1/proofs/", "/v1/checkpoints/latest?format="]
)
HTTP_CONTENT_TYPES = st.sampled_from(["application/json", "application/octet-stream", "text/plain", "", "application/cbor"])
JSON_SEEDS = [b'{"roots": ["' + b"ab" * 32 + b'"]}', b'{"roots": []}', b"[" * 50 + b"]" * 50, b'{"roots": "x"}']


URL_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=24)
"""Any printable text, digits of every script included (control characters cannot be put in a URL)."""


@FUZZ
@given(HTTP_PATHS, URL_TEXT, HTTP_CONTENT_TYPES, mutated(JSON_SEEDS))
def test_fuzz_http_paths_and_bodies_never_get_a_server_error(path: str, suffix: str, content_type: str, body: bytes) -> None:
    """Any path, query or body a client sends is answered below 500 (a 4xx names the mistake)."""
    import httpx
    import trio

    from node.api import build_app
    from node.tokens import TokenTable
    from tests.test_api import StandIn

    app = build_app(StandIn(TokenTable({})), roots_per_request_max=4, body_bytes_max=4_096)

    async def ask() -> int:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            headers = {"Content-Type": content_type, "Authorization": "Bearer pnt_x"}
            method = "POST" if path == "/v1/roots" else "GET"
            response = await client.request(method, path + suffix, content=body, headers=headers)
            return response.status_code

    assert trio.run(ask) < 500
