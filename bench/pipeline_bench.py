"""A validator's per-root work without the network, step by step, in one process.

Not a test: it prints one ``name=value`` line per figure. For each 10,000-root block it does
what a validator that is not the block's leader does with its roots: admit them as gossip
in batches of 1,000 (``Mempool.admit``), check the block (body hash, repeated roots, the log
root: ``check_extension``'s work, keeping the subtree hashes), check that no root is logged
or in flight (``Node._block_fault``'s work), then append them as the node does (the filter's
lookups, ``stage_append`` with the subtrees, one synced batch with the mempool's removals,
``commit``, the filter, ``forget``). Each step's figure is the main thread's CPU per root;
``process_cpu_us_per_root`` adds LevelDB's compaction thread and the root index's worker.
It leaves out what the network costs (gossip frames, proposals, votes, the HTTP API).

Run: ``.venv/bin/python -m bench.pipeline_bench [--blocks 200]`` (2M roots: about 15 s).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from consensus.block import STORED_SUBTREE_LEVEL, body_hash
from node.mempool import Mempool, split_roots
from storage.db import Store
from storage.logged_filter import LoggedRoots
from storage.merkle_log import MerkleLog

BLOCK_ROOTS = 10_000
GOSSIP_ROOTS = 1_000


def measure(blocks: int) -> list[tuple[str, float | int]]:
    cpu: defaultdict[str, float] = defaultdict(float)

    def timed(step: str, action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        result = action(*args, **kwargs)
        cpu[step] += time.thread_time() - started
        return result

    with tempfile.TemporaryDirectory(prefix="pantheon-pipeline-") as directory, Store(Path(directory) / "db") as store:
        log = MerkleLog(store)
        logged = LoggedRoots(log)
        logged.start()
        logged.wait_ready()
        mempool = Mempool(store, logged, roots_max=4 * BLOCK_ROOTS)
        process_started, wall_started = time.process_time(), time.perf_counter()
        for _ in range(blocks):
            batches = [os.urandom(32 * GOSSIP_ROOTS) for _ in range(BLOCK_ROOTS // GOSSIP_ROOTS)]
            for number, batch in enumerate(batches, 1):
                timed("admit_gossip", mempool.admit, batch, 1, owner="peer:1", durable=False, classify=False,
                      gossip_batch=number)
            roots = b"".join(batches)
            subtrees = timed("check_block", _check_block, log, roots)
            timed("block_fault", lambda: mempool.not_waiting(frozenset(split_roots(roots))))
            split = timed("apply_split", split_roots, roots)
            lookup = timed("apply_filter_lookup", logged.to_look_up, split)
            staged = timed("apply_stage", log.stage_append, split, lookup=lookup, subtrees=subtrees)
            timed("apply_write", _write, store, staged, mempool)
            timed("apply_commit", log.commit, staged)
            timed("apply_filter_add", logged.added, split)
            timed("apply_forget", mempool.forget, split)
        process_s, wall_s = time.process_time() - process_started, time.perf_counter() - wall_started
        size = log.size
        logged.close()
        log.close()
    out: list[tuple[str, float | int]] = [("nproc", os.cpu_count() or 0), ("roots", size)]
    out += [(f"{step}_us_per_root", round(seconds / size * 1e6, 3)) for step, seconds in cpu.items()]
    out += [
        ("main_thread_cpu_us_per_root", round(sum(cpu.values()) / size * 1e6, 3)),
        ("process_cpu_us_per_root", round(process_s / size * 1e6, 3)),
        ("wall_us_per_root", round(wall_s / size * 1e6, 3)),
    ]
    return out


def _check_block(log: MerkleLog, roots: bytes) -> list[bytes]:
    body_hash(roots)
    _ = {roots[i : i + 32] for i in range(0, len(roots), 32)}
    edge = log.compact_range()
    subtrees = edge.extend_roots(roots, keep_level=STORED_SUBTREE_LEVEL)
    edge.root()
    return subtrees


def _write(store: Store, staged: Any, mempool: Mempool) -> None:
    with store.batch(sync=True) as batch:
        staged.write_to(batch)
        mempool.delete_finished(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=200, help="10,000-root blocks to push through (200: 2M roots)")
    args = parser.parse_args()
    for name, value in measure(args.blocks):
        print(f"{name}={value}", flush=True)


if __name__ == "__main__":
    main()
