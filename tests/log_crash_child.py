"""Child process of tests/test_log_crash.py: append to a Merkle log until killed.

Usage: ``python tests/log_crash_child.py DB_DIR ACK_FILE SEED MODE``. After each
append has returned (its LevelDB batch written with sync=True), one line
``<size> <root hex>`` is appended to ACK_FILE and fsynced: the parent treats
that line as the acknowledgement a client would have received.

MODE ``append`` uses ``MerkleLog.append``. MODE ``block`` stages the append and
writes it in one batch together with a block record (``keys.BLOCK_BY_HEIGHT``:
size u64 || log root), as block finalization will, so the parent can check that
the two always survive together.

Each batch mixes fresh random roots with roots appended before, so that the
idempotent path is also under the knife. The root index (storage.root_index) writes runs
of 64 entries or more to files and stops merging at 512 here, so that its worker thread
merges, writes and deletes run files all the time and the kill lands among those too.
"""

from __future__ import annotations

import os
import random
import sys

from storage import keys, root_index
from storage.db import Store
from storage.merkle_log import MerkleLog

root_index.PERSIST_ENTRIES_MIN = 64
root_index.RUN_ENTRIES_MAX = 512

BATCH_ROOTS_MAX = 48
REPEATED_ROOTS_MAX = 4
REMEMBERED_ROOTS_MAX = 256


def main(db_dir: str, ack_path: str, seed: int, mode: str) -> None:
    rng = random.Random(seed)
    store = Store(db_dir)
    log = MerkleLog(store)
    remembered: list[bytes] = []
    height = _last_height(store)
    with open(ack_path, "ab") as ack:
        while True:
            fresh = [rng.randbytes(32) for _ in range(rng.randint(1, BATCH_ROOTS_MAX))]
            repeated = rng.sample(remembered, min(len(remembered), rng.randint(0, REPEATED_ROOTS_MAX)))
            batch = fresh + repeated
            rng.shuffle(batch)
            if mode == "block":
                staged = log.stage_append(batch)
                height += 1
                with store.batch(sync=True) as write:
                    staged.write_to(write)
                    block = keys.u64(staged.new_size) + staged.root
                    write.put(keys.BLOCK_BY_HEIGHT + keys.u64(height), block)
                result = log.commit(staged)
            else:
                result = log.append(batch)
            remembered = (remembered + fresh)[-REMEMBERED_ROOTS_MAX:]
            ack.write(b"%d %s\n" % (result.new_size, result.root.hex().encode()))
            ack.flush()
            os.fsync(ack.fileno())


def _last_height(store: Store) -> int:
    height = 0
    for key, _ in store.iterate(keys.BLOCK_BY_HEIGHT):
        height = keys.U64.unpack(key[1:])[0]
    return height


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
