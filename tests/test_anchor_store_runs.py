"""Recorded anchors count the same however finalized blocks are grouped into batches.

Found by the fresh-clone CI: a validator applies waiting finalized blocks as one batch
(node.runtime), and the count of recorded heights was read back from the store for each
block of the batch, which does not hold the earlier blocks' records yet. A validator that
applied two recording blocks at once counted one, the anchor duty (count + attempt) % n
then named another validator on it than on its peers, and two anchors were built for one
checkpoint (or none until a fallback)."""

from __future__ import annotations

from proof.chain import AnchorRef
from storage.anchor_store import AnchorStore
from storage.db import Store


def ref(n: int) -> AnchorRef:
    return AnchorRef(txid=bytes([n]) * 32, vout=1, anchored_block_hash=bytes([n]) * 32,
                     btc_block_hash=bytes([n + 1]) * 32, btc_height=n)


BLOCKS = [([(3, ref(3))], 4), ([], 5), ([(6, ref(6))], 7), ([(6, ref(9)), (8, ref(8))], 9)]
"""(AnchorRefs with the heights they anchor, the height recording them); height 6 recorded twice."""


def test_a_run_of_recording_blocks_in_one_batch_counts_each_height_once(tmp_path):
    with Store(tmp_path / "one-by-one") as store:
        one_by_one = AnchorStore(store)
        for refs, at in BLOCKS:
            with store.batch() as batch:
                one_by_one.stage_recorded(batch, refs, at)
        expected = one_by_one.recorded_summary()
    with Store(tmp_path / "run") as store:
        run = AnchorStore(store)
        with store.batch() as batch:
            run.stage_recorded_run(batch, BLOCKS)
        assert run.recorded_summary() == expected == (8, 3)
        assert run.recorded(6).ref == ref(9)
