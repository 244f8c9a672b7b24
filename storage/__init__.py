"""LevelDB (plyvel) store: key layout, atomic batches, the Merkle log, blocks and certificates."""
