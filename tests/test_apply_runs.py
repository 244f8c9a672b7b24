"""Finalized blocks are applied in order by the node's applier task; blocks already waiting
go into one batch together, never more roots than one log append takes."""

from __future__ import annotations

import pytest
import trio

from consensus.actions import Finalized
from node.runtime import APPLY_RUN_ROOTS_MAX, Node
from tests.chain_fixtures import make_chain, random_roots


@pytest.fixture
def node(idle_node):
    return idle_node


async def apply_all(node: Node, chain) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node._apply_loop)
        for block, proof in zip(chain.blocks, chain.proofs):
            node._applying.append(block)
            await node._apply_send.send((block, Finalized(block, proof.certificate)))
        with trio.fail_after(60):
            while node._applying:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()


async def test_waiting_blocks_past_one_append_are_split_into_runs_and_all_applied_in_order(node):
    chain = make_chain()
    per_block = APPLY_RUN_ROOTS_MAX * 2 // 5
    for _ in range(4):
        chain.add_block(random_roots(per_block))
    await apply_all(node, chain)
    last = chain.blocks[-1].header
    assert node.chain.tip_height == 4
    assert (node.log.size, node.log.root()) == (last.log_size, last.log_root)
    assert [node.chain.header_at(h).hash for h in range(1, 5)] == [b.hash for b in chain.blocks]


async def test_a_finalized_root_leaves_the_mempool_when_its_block_is_applied(node):
    chain = make_chain()
    roots = random_roots(10)
    node.mempool.admit(roots, 1, owner="producer")
    chain.add_block(roots)
    await apply_all(node, chain)
    assert len(node.mempool) == 0
    assert node.log.index_of(roots[:32]) == 0


def test_a_block_whose_batch_is_written_but_not_yet_applied_is_not_served(node):
    """Catch-up answers are read from the store; a run's batch is visible there before the log
    moves past it, and serving it then stopped the node ("end ... is outside the log")."""
    chain = make_chain()
    block = chain.add_block(random_roots(100))
    staged = node.log.stage_append(block.roots)
    with node.store.batch() as batch:
        staged.write_to(batch)
        node.chain.stage_finalized(batch, block.header, chain.proofs[0])
    assert node.read_finalized(1) is None
    node.log.commit(staged)
    node.chain.commit_tip(block.header)
    served, proof = node.read_finalized(1)
    assert served.hash == block.hash and proof == chain.proofs[0]
