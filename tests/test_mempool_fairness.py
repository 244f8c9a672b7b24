"""Issue 14, finding 4 (mempool part): no submitter takes more than its share of the mempool,
and a block takes roots from every submitter, so a backlog never queues anyone else behind it.

A submitter is a token for roots posted to this node, or ``peer:<index>`` for roots a
validator gossiped (node.gossip).
"""

import pytest

from node.config import ConfigError, load_config
from node.mempool import Mempool, MempoolFull, ShareExceeded
from storage.db import Store
from storage.merkle_log import MerkleLog


def roots(*seeds: int) -> bytes:
    return b"".join(seed.to_bytes(32, "big") for seed in seeds)


def split(data: bytes) -> list[bytes]:
    return [data[i : i + 32] for i in range(0, len(data), 32)]


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "db") as s:
        yield s


def test_a_submitter_past_its_share_is_refused_while_another_is_admitted(store):
    pool = Mempool(store, MerkleLog(store), roots_max=100, share_roots_max=10)
    pool.admit(roots(*range(1, 11)), 10, owner="flood")
    with pytest.raises(ShareExceeded, match="'flood' holds 10 roots waiting here, its share of 10"):
        pool.admit(roots(11), 11, owner="flood")
    assert pool.admit(roots(12), 12, owner="quiet").states == ("new",)
    assert len(pool) == 11 and pool.held_by("flood") == 10 and pool.held_by("quiet") == 1


def test_roots_already_waiting_do_not_count_against_the_share(store):
    pool = Mempool(store, MerkleLog(store), roots_max=100, share_roots_max=2)
    pool.admit(roots(1, 2), 10, owner="a")
    assert pool.admit(roots(1, 2), 11, owner="a").states == ("pending", "pending")


def test_a_refused_submission_stores_nothing(tmp_path):
    with Store(tmp_path / "db") as store:
        pool = Mempool(store, MerkleLog(store), roots_max=100, share_roots_max=2)
        pool.admit(roots(1), 10, owner="a")
        with pytest.raises(ShareExceeded):
            pool.admit(roots(2, 3), 11, owner="a")
    with Store(tmp_path / "db") as store:
        assert len(Mempool(store, MerkleLog(store), roots_max=100)) == 1


def test_the_share_frees_as_roots_are_finalized(store):
    pool = Mempool(store, MerkleLog(store), roots_max=100, share_roots_max=2)
    pool.admit(roots(1, 2), 10, owner="a")
    pool.forget(roots(1))
    assert pool.held_by("a") == 1
    assert pool.admit(roots(3), 11, owner="a").states == ("new",)


def test_shares_survive_a_restart(tmp_path):
    with Store(tmp_path / "db") as store:
        Mempool(store, MerkleLog(store), roots_max=100).admit(roots(1, 2), 10, owner="a")
    with Store(tmp_path / "db") as store:
        pool = Mempool(store, MerkleLog(store), roots_max=100, share_roots_max=2)
        assert pool.held_by("a") == 2
        with pytest.raises(ShareExceeded):
            pool.admit(roots(3), 11, owner="a")


def test_the_whole_mempool_bound_still_holds_across_submitters(store):
    pool = Mempool(store, MerkleLog(store), roots_max=3, share_roots_max=2)
    pool.admit(roots(1, 2), 10, owner="a")
    pool.admit(roots(3), 10, owner="b")
    with pytest.raises(MempoolFull):
        pool.admit(roots(4), 11, owner="c")


def test_a_block_takes_the_quiet_submitters_root_even_behind_an_older_backlog(store):
    """The regression: take() was oldest-first, so one token's backlog of N roots delayed
    everybody else's by N / block_roots_max blocks."""
    pool = Mempool(store, MerkleLog(store), roots_max=10_000)
    pool.admit(roots(*range(1, 1001)), 10, owner="flood")
    pool.admit(roots(5000), 20, owner="quiet")
    block = split(pool.take(100))
    assert roots(5000) in block
    assert block.count(roots(5000)) == 1 and len(block) == 100


def test_a_block_is_split_evenly_and_unused_room_goes_to_the_others(store):
    pool = Mempool(store, MerkleLog(store), roots_max=10_000)
    pool.admit(roots(*range(1, 101)), 10, owner="a")
    pool.admit(roots(*range(1001, 1101)), 10, owner="b")
    pool.admit(roots(2001, 2002), 10, owner="c")
    block = split(pool.take(50))
    by_owner = {name: sum(1 for r in block if int.from_bytes(r, "big") // 1000 == k)
                for k, name in enumerate("abc")}
    assert by_owner == {"a": 24, "b": 24, "c": 2}
    assert len(set(block)) == 50


def test_each_submitter_is_taken_oldest_first_and_roots_in_flight_are_skipped(store):
    pool = Mempool(store, MerkleLog(store), roots_max=100)
    pool.admit(roots(1, 2, 3), 10, owner="a")
    pool.admit(roots(11, 12, 13), 10, owner="b")
    assert set(split(pool.take(4))) == set(split(roots(1, 2, 11, 12)))
    assert set(split(pool.take(4, exclude=[{roots(1), roots(11)}]))) == set(split(roots(2, 3, 12, 13)))


def test_finalized_roots_taken_out_of_order_are_never_offered_again(store):
    pool = Mempool(store, MerkleLog(store), roots_max=1000)
    pool.admit(roots(*range(1, 301)), 10, owner="a")
    middle = roots(*range(100, 200))
    pool.forget(middle)
    left = set(split(pool.take(1000)))
    assert left == set(split(roots(*range(1, 100), *range(200, 301))))
    assert pool.held_by("a") == 200


@pytest.mark.parametrize("key", ["submitter_share_percent", "gossip_share_percent"])
@pytest.mark.parametrize("value", [0, 101])
def test_a_share_of_nothing_or_over_everything_is_a_config_error(tmp_path, key, value):
    path = tmp_path / "node.toml"
    path.write_text(f"[mempool]\n{key} = {value}\n")
    with pytest.raises(ConfigError, match=f"mempool.{key} must be from 1 to 100, got {value}"):
        load_config(path)


def test_the_shares_in_roots_follow_the_mempool_size(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text("[mempool]\nroots_max = 1000\nsubmitter_share_percent = 10\ngossip_share_percent = 40\n")
    mempool = load_config(path).mempool
    assert (mempool.share_roots_max, mempool.gossip_roots_max) == (100, 400)
