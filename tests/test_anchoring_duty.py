"""Which block is due for anchoring, and whose duty it is: functions of the finalized chain."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from consensus.block import build_block
from node.anchoring import due_checkpoint, on_duty
from proof.chain import AnchorRef, FinalizationProof, Genesis
from proof.hashing import sha256d
from storage.anchor_store import AnchoredCheckpoint, AnchorStore
from storage.chain_store import ChainStore
from storage.db import Store
from tests.chain_fixtures import TestChain as ChainFixture
from tests.chain_fixtures import make_chain, random_roots

EVERY_BLOCKS = 4
EVERY_MS = 1_000
CREATED_MS = 10_000


class Chain:
    """Finalized headers in a real store, with the timestamps a test chooses."""

    def __init__(self, store: Store) -> None:
        base = make_chain()
        self.genesis = Genesis(
            chain_name="duty",
            validators=base.genesis.validators,
            created_at_ms=CREATED_MS,
            anchor_every_blocks=EVERY_BLOCKS,
            anchor_every_ms=EVERY_MS,
            anchor_final_depth=3,
        )
        self.test_chain = ChainFixture(keys=base.keys, genesis=self.genesis)
        self.store = store
        self.chain = ChainStore(store)
        self.anchors = AnchorStore(store)

    def add(self, roots: int, timestamp_ms: int) -> int:
        t = self.test_chain
        parent = t.blocks[-1].header if t.blocks else None
        block = build_block(
            genesis=self.genesis, view=len(t.blocks), parent=parent, log=t.log,
            roots=random_roots(roots), timestamp_ms=timestamp_ms,
        )
        t.log.extend_roots(block.roots)
        t.blocks.append(block)
        with self.store.batch() as batch:
            self.chain.stage_finalized(batch, block.header, FinalizationProof(headers=(), certificate=t.certify(block)))
        self.chain.commit_tip(block.header)
        return block.header.height

    def record_anchor(self, height: int) -> None:
        header = self.chain.header_at(height)
        assert header is not None
        ref = AnchorRef(txid=b"\1" * 32, vout=1, anchored_block_hash=header.hash, btc_block_hash=b"\2" * 32, btc_height=7)
        with self.store.batch() as batch:
            self.anchors.stage_recorded(batch, [(height, ref)], self.chain.tip_height + 1)

    def due(self, now_ms: int | None = None) -> int | None:
        """The due height, by default with the clock at the tip's timestamp (chain time only)."""
        tip = self.chain.tip_header
        clock_ms = now_ms if now_ms is not None else (tip.timestamp_ms if tip else CREATED_MS)
        due = due_checkpoint(self.genesis, self.chain, self.anchors, clock_ms)
        return None if due is None else due.header.height


@pytest.fixture
def chain(tmp_path) -> Iterator[Chain]:
    with Store(tmp_path / "db") as store:
        yield Chain(store)


def test_an_idle_chain_needs_no_anchor(chain):
    for i in range(10):
        chain.add(0, CREATED_MS + 10_000 * (i + 1))
    assert chain.due() is None


def test_the_block_k_blocks_after_the_last_anchor_is_due_when_roots_arrived(chain):
    for i in range(6):
        chain.add(2, CREATED_MS - 5_000 + i)
    assert chain.due() == EVERY_BLOCKS


def test_the_first_block_past_the_time_limit_is_due_before_k_blocks(chain):
    chain.add(1, CREATED_MS + 10)
    chain.add(0, CREATED_MS + EVERY_MS)
    chain.add(0, CREATED_MS + EVERY_MS + 1)
    assert chain.due() == 2


def test_nothing_is_due_before_k_blocks_or_t_ms(chain):
    chain.add(1, CREATED_MS + 10)
    chain.add(0, CREATED_MS + 20)
    assert chain.due() is None


def test_the_last_roots_before_a_pause_are_due_once_t_passes_on_the_clock(chain):
    """An idle chain adds no blocks, so chain time stops; the validator's clock takes over."""
    height = chain.add(1, CREATED_MS + 10)
    assert chain.due(now_ms=CREATED_MS + EVERY_MS - 1) is None
    assert chain.due(now_ms=CREATED_MS + EVERY_MS) == height
    due = due_checkpoint(chain.genesis, chain.chain, chain.anchors, CREATED_MS + 5 * EVERY_MS)
    assert due is not None and due.due_at_ms == CREATED_MS + EVERY_MS


def test_an_idle_chain_needs_no_anchor_whatever_the_clock_says(chain):
    chain.add(0, CREATED_MS + 10)
    assert chain.due(now_ms=CREATED_MS + 100 * EVERY_MS) is None


def test_roots_after_an_idle_stretch_make_their_own_block_due(chain):
    for i in range(6):
        chain.add(0, CREATED_MS - 5_000 + i)
    height = chain.add(3, CREATED_MS - 4_000)
    assert chain.due() == height


def test_a_recorded_anchor_moves_the_next_due_block_past_it(chain):
    for i in range(9):
        chain.add(1, CREATED_MS - 5_000 + i)
    assert chain.due() == EVERY_BLOCKS
    chain.record_anchor(EVERY_BLOCKS)
    assert chain.due() == 2 * EVERY_BLOCKS
    assert chain.anchors.recorded_summary() == (EVERY_BLOCKS, 1)


def test_duty_rotates_with_each_recorded_anchor():
    assert [on_duty(count, 0, 0, 1_000, 4) for count in range(5)] == [0, 1, 2, 3, 0]


def test_duty_falls_back_to_the_next_validator_after_each_deadline():
    due_ms, fallback_ms = 50_000, 1_000
    assert on_duty(2, due_ms, due_ms + fallback_ms // 2 - 1, fallback_ms, 4) == 2
    assert on_duty(2, due_ms, due_ms + fallback_ms, fallback_ms, 4) == 3
    assert on_duty(2, due_ms, due_ms + 2 * fallback_ms, fallback_ms, 4) == 0


def test_nobody_starts_an_anchor_in_the_second_half_of_a_turn():
    """An anchor started then would not be in a block the others have read before the next
    validator's turn, which would anchor the checkpoint a second time."""
    due_ms, fallback_ms = 50_000, 1_000
    assert on_duty(2, due_ms, due_ms + fallback_ms // 2, fallback_ms, 4) is None
    assert on_duty(2, due_ms, due_ms + fallback_ms - 1, fallback_ms, 4) is None
    assert on_duty(2, due_ms, due_ms + fallback_ms + fallback_ms // 2, fallback_ms, 4) is None


def test_a_clock_behind_the_due_block_keeps_the_designated_validator():
    assert on_duty(1, 50_000, 40_000, 1_000, 4) == 1


def _checkpoint(height: int, btc_height: int, header: bytes) -> AnchoredCheckpoint:
    return AnchoredCheckpoint(
        height=height, block_hash=bytes([height]) * 32, network="regtest", raw_tx=b"\0" * 60,
        tx_index=0, branch=(), header=header, btc_height=btc_height,
    )


def _linked_headers(count: int) -> list[bytes]:
    headers, previous = [], b"\0" * 32
    for i in range(count):
        header = b"\1\0\0\0" + previous + bytes([i]) * 44
        headers.append(header)
        previous = sha256d(header)
    return headers


def test_checkpoint_covering_is_the_lowest_anchored_height_at_or_above(chain):
    headers = _linked_headers(1)
    for height in (5, 10):
        chain.anchors.put_checkpoint(_checkpoint(height, 100 + height, headers[0]))
    assert chain.anchors.checkpoint_covering(1).height == 5
    assert chain.anchors.checkpoint_covering(5).height == 5
    assert chain.anchors.checkpoint_covering(6).height == 10
    assert chain.anchors.checkpoint_covering(11) is None
    chain.anchors.delete_checkpoint(5)
    assert chain.anchors.checkpoint_covering(1).height == 10


def test_headers_after_follow_the_prev_hash_links_and_stop_at_a_stale_one(chain):
    headers = _linked_headers(5)
    checkpoint = _checkpoint(3, 200, headers[0])
    chain.anchors.put_headers({200 + i: h for i, h in enumerate(headers)})
    assert chain.anchors.headers_after(checkpoint, 10) == headers[1:]
    assert chain.anchors.headers_after(checkpoint, 2) == headers[1:3]
    chain.anchors.put_headers({202: b"\1\0\0\0" + b"\x09" * 32 + b"\7" * 44})
    assert chain.anchors.headers_after(checkpoint, 10) == headers[1:2]
    assert chain.anchors.confirmations(checkpoint) == 2
