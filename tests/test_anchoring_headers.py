"""The anchorer's cache of best-chain Bitcoin headers links up from the tip, whatever reorgs left in it.

Found by the chaos soak (seed 12): a reorg left a stale header at a height below every
anchor followed at the time; an anchor re-mined there later was never confirmed, on
any node, because its block never matched the cache.
"""

from __future__ import annotations

import struct
from pathlib import Path

from node.anchoring import Anchorer
from node.config import BitcoinSection
from proof.hashing import sha256d
from storage.anchor_store import AnchorStore
from storage.chain_store import ChainStore
from storage.db import Store
from tests.chain_fixtures import make_chain


def header(prev: bytes, salt: int) -> bytes:
    return struct.pack("<I", 0x20000000) + prev + sha256d(struct.pack("<I", salt)) + struct.pack("<III", 1_700_000_000, 0x207FFFFF, salt)


def chain_of(length: int, salt: int, prev: bytes = bytes(32)) -> list[bytes]:
    headers = []
    for height in range(length):
        headers.append(header(prev, salt * 1000 + height))
        prev = sha256d(headers[-1])
    return headers


class HeadersByHash:
    """What the anchorer asks bitcoind for here: a raw header by its hash (and how often)."""

    def __init__(self, headers: list[bytes]) -> None:
        self.by_hash = {sha256d(raw): raw for raw in headers}
        self.calls = 0

    def raw_header(self, block_hash: bytes) -> bytes:
        self.calls += 1
        return self.by_hash[block_hash]


def anchorer_with(tmp_path: Path, cached: dict[int, bytes], rpc: HeadersByHash, tip_height: int) -> Anchorer:
    store = Store(tmp_path / "db")
    anchors = AnchorStore(store)
    anchors.put_headers(cached)
    config = BitcoinSection(enabled=True, network="regtest", rpc_url="http://127.0.0.1:9", rpc_user="u",
                            rpc_password="p", wallet="w")
    anchorer = Anchorer(genesis=make_chain().genesis, index=0, config=config, resolve=Path, anchors=anchors,
                        chain=ChainStore(store))
    anchorer.rpc = rpc  # type: ignore[assignment]
    anchorer._tip_height = tip_height
    return anchorer


def test_a_stale_header_left_below_the_followed_anchors_is_repaired_from_the_tip_down(tmp_path) -> None:
    best = chain_of(11, salt=1)
    stale_fork = chain_of(3, salt=2, prev=sha256d(best[4]))  # heights 5..7 of a branch that lost
    cached = {height: raw for height, raw in enumerate(best)}
    cached[5] = stale_fork[0]
    rpc = HeadersByHash(best)
    anchorer = anchorer_with(tmp_path, cached, rpc, tip_height=10)
    assert anchorer._relink_headers(0) == {5: best[5]}
    assert anchorer.anchors.header_at(5) == best[5]
    assert rpc.calls == 1


def test_a_cache_that_links_up_to_the_tip_costs_no_rpc(tmp_path) -> None:
    best = chain_of(11, salt=3)
    rpc = HeadersByHash(best)
    anchorer = anchorer_with(tmp_path, dict(enumerate(best)), rpc, tip_height=10)
    assert anchorer._relink_headers(0) == {}
    assert rpc.calls == 0


def test_an_anchor_of_a_block_not_applied_here_yet_is_seen_once_the_block_is(tmp_path, monkeypatch) -> None:
    """Another validator anchors its finalized tip, which this validator may not have applied
    when it reads the Bitcoin block holding the anchor. The anchor must still count as seen
    once the block is applied, or this validator falls back and anchors the checkpoint again."""
    from anchor.scan import FoundAnchor
    from node import anchoring

    anchored = b"\x07" * 32
    btc_block = b"\x0b" * 32
    found = FoundAnchor(txid=b"\x01" * 32, vout=0, anchored_block_hash=anchored)
    monkeypatch.setattr(anchoring, "anchors_in_block", lambda raw, block_hash: [found] if block_hash == btc_block else [])
    anchorer = anchorer_with(tmp_path, {}, HeadersByHash([]), tip_height=10)
    monkeypatch.setattr(anchorer, "_on_best_chain", lambda block_hash, height: 1)
    anchorer.rpc.raw_block = lambda block_hash: b""  # type: ignore[attr-defined]
    applied: dict[bytes, int] = {}
    monkeypatch.setattr(anchorer.chain, "height_of", applied.get)
    due = anchoring.DueCheckpoint(header=type("Header", (), {"height": 5})(), due_at_ms=0)  # type: ignore[arg-type]
    anchorer._unscanned.append((100, btc_block))
    assert anchorer._scan_for_anchors(due) == []
    applied[anchored] = 5
    seen = anchorer._scan_for_anchors(due)
    assert [(height, ref.txid, ref.btc_block_hash) for height, ref in seen] == [(5, found.txid, btc_block)]
