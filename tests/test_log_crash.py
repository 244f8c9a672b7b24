"""Crash safety of the Merkle log: SIGKILL a writer at random moments, reopen, check everything.

A child process (tests/log_crash_child.py) appends random batches in a loop and
fsyncs an acknowledgement line after each append returns. The parent kills it
with SIGKILL once it has acknowledged a random number of appends (the kill lands
wherever the child happens to be: hashing, inside the LevelDB write, fsyncing,
or writing the acknowledgement), then reopens the store and checks:

- it opens, and the log is at least as long as the last acknowledged size, with
  the acknowledged root at that size (an acknowledged append is never lost);
- the new root is consistent with the root seen after the previous kill;
- the root index (its run files, and what it rebuilt from the entries) and the entries
  are exact inverses, with no gap;
- every stored perfect-subtree node equals the hash recomputed from the leaves,
  and no other node is stored; the root equals the MTH of the leaf hashes;
- sampled inclusion and consistency proofs verify;
- in block mode, the newest block record and the log agree (written in one batch);
- appending still works.

Kills: 30 by default (about 3 s); set PANTHEON_LOG_CRASH_KILLS for a longer run, and
PANTHEON_LOG_CRASH_SEED to replay one (the seed is printed on failure).
"""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from proof.compact import CompactRange
from proof.merkle import leaf_hash, node_hash, verify_consistency, verify_inclusion
from storage import keys
from storage.db import Store
from storage.merkle_log import TILE_LEVEL, MerkleLog
from storage.root_index import keys_of

KILLS = int(os.environ.get("PANTHEON_LOG_CRASH_KILLS", "30"))
SEED = int(os.environ.get("PANTHEON_LOG_CRASH_SEED", str(random.SystemRandom().randrange(2**32))))
ACKS_BEFORE_KILL_MAX = 6
ACK_TIMEOUT_S = 30.0
ACK_POLL_S = 0.001
PROOF_SAMPLES = 12
CHILD = Path(__file__).with_name("log_crash_child.py")
REPO = Path(__file__).resolve().parent.parent


def test_log_survives_repeated_sigkill_of_its_writer(tmp_path):
    rng = random.Random(SEED)
    db_dir = tmp_path / "db"
    ack_path = tmp_path / "acks"
    ack_path.touch()
    previous = None  # (size, root) seen at the last reopen
    for kill in range(KILLS):
        mode = "block" if kill % 2 else "append"
        context = f"seed {SEED}, kill {kill}, mode {mode}"
        try:
            acked = _run_child_until_killed(rng, db_dir, ack_path, kill, mode, tmp_path, context)
            previous = _check_reopened_log(rng, db_dir, acked, previous, mode, context)
        except Exception as exc:
            exc.add_note(f"replay with PANTHEON_LOG_CRASH_SEED={SEED} ({context})")
            raise


def _run_child_until_killed(rng, db_dir, ack_path, kill, mode, tmp_path, context):
    wanted = _ack_count(ack_path) + rng.randint(1, ACKS_BEFORE_KILL_MAX)
    with open(tmp_path / f"child-{kill}.stderr", "wb") as stderr:
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(db_dir), str(ack_path), str(rng.randrange(2**32)), mode],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            deadline = time.monotonic() + ACK_TIMEOUT_S
            while _ack_count(ack_path) < wanted:
                if child.poll() is not None:
                    raise AssertionError(f"{context}: child died: {_read(stderr.name)}")
                assert time.monotonic() < deadline, f"{context}: too few acks in {ACK_TIMEOUT_S} s"
                time.sleep(ACK_POLL_S)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
    assert child.returncode == -signal.SIGKILL, f"{context}: child ended by itself ({child.returncode})"
    return _acks(ack_path)[-1]


def _check_reopened_log(rng, db_dir, acked, previous, mode, context):
    acked_size, acked_root = acked
    with Store(db_dir) as store:
        log = MerkleLog(store)
        size = log.size
        assert size >= acked_size, f"{context}: acknowledged size {acked_size} lost, log has {size}"
        assert log.root(acked_size) == acked_root, f"{context}: acknowledged root changed"
        root = log.root()
        if previous is not None:
            previous_size, previous_root = previous
            proof = log.consistency_proof(previous_size, size)
            verify_consistency(previous_size, size, proof, previous_root, root)

        tiles = b"".join(value for _, value in store.iterate(keys.LOG_TILE))
        entries = [tiles[i : i + 32] for i in range(0, len(tiles), 32)]
        assert len(entries) == size, f"{context}: {len(entries)} entries for size {size}"
        listed = np.sort(np.concatenate([np.asarray(run) for run in log.index_keys()] or [np.array([], dtype="<u8")]))
        assert listed.tolist() == np.sort(keys_of(tiles)).tolist(), f"{context}: the root index lists {len(listed)} keys"
        assert all(log.index_of(entry) == index for index, entry in enumerate(entries)), context
        assert not list(store.iterate(keys.LOG_INDEX)), f"{context}: format 2 index records in a format 3 store"

        leaves = [leaf_hash(entry) for entry in entries]
        assert _stored_nodes(store) == _perfect_nodes(leaves), f"{context}: nodes differ from leaves"
        edge = CompactRange()
        edge.extend(leaves)
        assert root == edge.root(), f"{context}: root differs from the MTH of the leaves"

        for _ in range(PROOF_SAMPLES):
            tree_size = rng.randint(1, size)
            index = rng.randrange(tree_size)
            tree_root = log.root(tree_size)
            path = log.inclusion_proof(index, tree_size)
            verify_inclusion(leaves[index], index, tree_size, path, tree_root)
            older = rng.randint(1, tree_size)
            proof = log.consistency_proof(older, tree_size)
            verify_consistency(older, tree_size, proof, log.root(older), tree_root)

        blocks = [value for _, value in store.iterate(keys.BLOCK_BY_HEIGHT)]
        for block in blocks:
            block_size = keys.U64.unpack(block[:8])[0]
            assert block[8:] == log.root(block_size), f"{context}: a block's log root is not the log's"
        if mode == "block":
            newest_block_size = keys.U64.unpack(blocks[-1][:8])[0]
            assert newest_block_size == size, f"{context}: newest block and log disagree"

        fresh = [rng.randbytes(32) for _ in range(3)]
        result = log.append(fresh + [entries[0]])
        assert list(result.indices) == [size, size + 1, size + 2, 0], context
        edge.extend(leaf_hash(r) for r in fresh)
        assert result.root == edge.root(), context
        log.close()
        return result.new_size, result.root


def _ack_count(ack_path):
    return ack_path.read_bytes().count(b"\n")


def _acks(ack_path):
    """Acknowledged (size, root) pairs: complete lines only (a torn last line was never acked)."""
    text = ack_path.read_bytes()
    lines = text.split(b"\n")[:-1]
    pairs = (line.split() for line in lines)
    return [(int(size), bytes.fromhex(root.decode())) for size, root in pairs]


def _stored_nodes(store):
    return {(key[1], keys.U64.unpack(key[2:])[0]): value for key, value in store.iterate(keys.LOG_NODE)}


def _perfect_nodes(leaves):
    """Every complete perfect subtree of a tile or more (level >= TILE_LEVEL), from the leaves alone."""
    nodes = {}
    level, row = 0, leaves
    while len(row) > 1:
        row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row) - 1, 2)]
        level += 1
        if level >= TILE_LEVEL:
            nodes.update(((level, index), value) for index, value in enumerate(row))
    return nodes


def _read(path):
    return Path(path).read_text(errors="replace")[-2000:]
