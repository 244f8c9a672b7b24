"""Every byte of a valid anchored bundle matters: each single-byte change is refused.

Canonical CBOR, strict records and a witness-free transaction leave no byte that could
change without changing a hashed or signed value; this checks it for all bytes of one
anchored bundle (not a sample). Each position gets one bit flipped, the bit rotating
with the position (bit ``position % 8``), so CBOR type bits, lengths and payload bits
are all hit. A flip that verified would have to yield the very same claim (a harmless
alternative encoding) or a different one (a forgery); both are counted and both must
be zero.
"""

import time
from pathlib import Path

from proof.bundle import verify_bundle
from proof.chain import Genesis
from proof.errors import DecodeError, ProofError

VECTORS = Path(__file__).parent / "vectors" / "bundles"
FLIP_BUDGET_S = 30.0


def test_every_single_byte_flip_of_an_anchored_bundle_is_refused():
    genesis = Genesis.decode((VECTORS / "genesis-v4.cbor").read_bytes())
    data = bytearray((VECTORS / "valid" / "anchored-v4-size1029.cbor").read_bytes())
    reference = verify_bundle(bytes(data), genesis=genesis)
    assert reference.anchored
    started = time.monotonic()
    same_claim, other_claim, refused = [], [], 0
    for position in range(len(data)):
        mask = 1 << (position % 8)
        data[position] ^= mask
        try:
            claim = verify_bundle(bytes(data), genesis=genesis)
        except (ProofError, DecodeError):
            refused += 1
        else:
            (same_claim if claim == reference else other_claim).append(position)
        data[position] ^= mask
    elapsed_s = time.monotonic() - started
    print(f"\nbyte flips: {len(data)} positions, {refused} refused, {len(same_claim)} accepted with the same claim, "
          f"{len(other_claim)} accepted with another claim, {elapsed_s:.1f} s")
    assert other_claim == [], f"flips at {other_claim} verify to a different claim"
    assert same_claim == [], f"flips at {same_claim} verify to the same claim: a second encoding exists"
    assert refused == len(data)
    assert elapsed_s < FLIP_BUDGET_S
