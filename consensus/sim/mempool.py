"""Honest mempools: a deterministic stream of fresh 32-byte audit roots per node.

A proposal always takes roots the stream never handed out before, so a node can
never re-propose a root that is finalized (or pending in an unfinalized ancestor):
the roots of a nullified proposal are simply abandoned, which costs nothing here
because the simulator studies ordering, not submission.
"""

from __future__ import annotations

from consensus.sim.rng import derive_rng

ROOT_SIZE = 32


class RootStream:
    """Fresh random roots for one node, fixed by the run seed and the node index."""

    def __init__(self, seed: int, node: int, *, roots_per_block_max: int, full: bool = False) -> None:
        if roots_per_block_max < 1:
            raise ValueError(f"roots_per_block_max must be >= 1, got {roots_per_block_max}")
        self._rng = derive_rng(seed, "mempool", node)
        self._roots_per_block_max = roots_per_block_max
        self._full = full

    def next_batch(self) -> bytes:
        """Between 0 and ``roots_per_block_max`` new roots, concatenated (always the most when ``full``)."""
        count = self._roots_per_block_max if self._full else self._rng.randint(0, self._roots_per_block_max)
        return self._rng.randbytes(ROOT_SIZE * count)
