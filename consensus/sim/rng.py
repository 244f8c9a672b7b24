"""Seed derivation: one independent ``random.Random`` per purpose.

A run is fixed by one integer seed, but drawing every random number from one
generator would make the run fragile: one extra draw in the drop model would shift
every later crash, partition and mempool root, so a replay after a small code change
would no longer explore the same schedule. Each consumer (a link, a fault injector,
a node's mempool, a Byzantine behaviour) therefore gets its own generator, seeded by
SHA-256 over the run seed and a purpose label.
"""

from __future__ import annotations

import hashlib
import random

SEED_MAX = 2**63 - 1


def derive_rng(seed: int, *purpose: str | int) -> random.Random:
    """A generator that depends only on ``seed`` and the ``purpose`` labels."""
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"seed {seed} out of range 0..{SEED_MAX}")
    label = "/".join(str(part) for part in purpose)
    digest = hashlib.sha256(f"pantheon-sim/{seed}/{label}".encode()).digest()
    return random.Random(int.from_bytes(digest, "big"))
