"""Bundle sizes: the anchored bundle of a 4-validator chain at a 10M-root log stays under 16 KB.

Real parts (a header and a 3-of-4 and a 5-of-7 ML-DSA-65 finalize certificate, an
anchor transaction) from the shipped vectors, with the parts that grow with scale
made as large as they get: a 24-node inclusion path (a 10,000,000-entry log needs
ceil(log2(10^7)) = 24), a 14-node Bitcoin merkle branch (a block of up to 16,384
transactions), and the confirming headers node/bundles.py adds (anchor_final_depth - 1).
"""

from pathlib import Path

from node.bundles import BUNDLE_HEADERS_AFTER_MAX
from proof.bundle import BitcoinAnchor, Bundle
from proof.chain import Genesis

VECTORS = Path(__file__).parent / "vectors" / "bundles"
BUDGET_BYTES = 16 * 1024
LOG_SIZE = 10_000_000
PATH_NODES = (LOG_SIZE - 1).bit_length()
BRANCH_NODES = 14


def scaled(name: str, *, anchored: bool, confirming: int) -> Bundle:
    bundle = Bundle.decode((VECTORS / "valid" / f"{name}.cbor").read_bytes())
    path = tuple(bytes([i]) * 32 for i in range(PATH_NODES))
    bitcoin = None
    if anchored:
        assert bundle.bitcoin is not None
        part = bundle.bitcoin
        bitcoin = BitcoinAnchor(
            network=part.network, tx=part.tx, tx_index=(1 << BRANCH_NODES) - 2,
            branch=tuple(bytes([0x80 + i]) * 32 for i in range(BRANCH_NODES)),
            header=part.header, more=(part.header,) * confirming,
        )
    return Bundle(bundle.root, 9_999_999, path, bundle.header, bundle.finality, bitcoin)


def test_a_10m_log_path_has_24_nodes():
    assert PATH_NODES == 24


def test_the_anchored_4_validator_bundle_at_a_10m_log_is_under_16_kb():
    genesis = Genesis.decode((VECTORS / "genesis-v4.cbor").read_bytes())
    confirming = genesis.anchor_final_depth - 1
    sizes = {
        (state, n): len(scaled(name, anchored=state == "anchored", confirming=confirming).encode())
        for state, n, name in [
            ("pending", 4, "pending-v4-size1029"), ("anchored", 4, "anchored-v4-size1029"),
            ("pending", 7, "pending-v7-size1029"), ("anchored", 7, "anchored-v7-size1029"),
        ]
    }
    worst = len(scaled("anchored-v4-size1029", anchored=True, confirming=BUNDLE_HEADERS_AFTER_MAX).encode())
    print(f"\nbundle sizes at a 10M-root log (24-node path, {BRANCH_NODES}-node Bitcoin branch, "
          f"{confirming} confirming headers):")
    for (state, n), size in sizes.items():
        print(f"  {state:<8} {n} validators: {size:>6} bytes")  # signatures: as in the vector
    print(f"  anchored 4 validators with the most confirming headers a node adds ({BUNDLE_HEADERS_AFTER_MAX}): {worst} bytes")
    print(f"  genesis: 4 validators {len((VECTORS / 'genesis-v4.cbor').read_bytes())} bytes, "
          f"7 validators {len((VECTORS / 'genesis-v7.cbor').read_bytes())} bytes")
    assert sizes[("anchored", 4)] < BUDGET_BYTES
    assert worst < BUDGET_BYTES
