"""Merkle log benchmark: append throughput, proof latency, reads per proof, bytes per root.

Run: ``.venv/bin/python -m bench.log_bench [--roots N] [--batch N] [--proofs N]``.
Appends N random roots in batches (one synced LevelDB batch each) into a fresh
temporary directory and prints one table. Two same-run references put the append
rate in context on whatever machine this runs: plain SHA-256 over the same roots
(the hashing floor) and raw LevelDB batch puts of the same values, one record per
root, with the same batching, fsync and store options (the storage floor).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time

from proof.merkle import leaf_hash, verify_consistency, verify_inclusion
from storage.db import Store
from storage.merkle_log import MerkleLog

HASH_SIZE = 32


class CountingStore(Store):
    """A Store that counts point reads, to report records read per proof."""

    reads = 0

    def get(self, key: bytes) -> bytes | None:
        self.reads += 1
        return super().get(key)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roots", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--proofs", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    data = rng.randbytes(args.roots * HASH_SIZE)
    batch_bytes = args.batch * HASH_SIZE
    rows: list[tuple[str, str]] = []
    workdir = tempfile.mkdtemp(prefix="pantheon-log-bench-")
    try:
        sha_s = _time_sha256(data)
        raw_s = _time_raw_puts(os.path.join(workdir, "raw"), data, batch_bytes)
        store = CountingStore(os.path.join(workdir, "log"))
        log = MerkleLog(store)
        started = time.perf_counter()
        for offset in range(0, len(data), batch_bytes):
            log.append(data[offset : offset + batch_bytes])
        append_s = time.perf_counter() - started
        assert log.size == args.roots
        started = time.perf_counter()
        again = log.append(data[:batch_bytes])
        reappend_s = time.perf_counter() - started
        assert again.new_size == again.old_size

        rows += [
            ("roots appended", f"{args.roots:,} in batches of {args.batch:,} (synced)"),
            ("append", f"{args.roots / append_s:,.0f} roots/s ({append_s:.2f} s)"),
            ("  ref: sha256 of each root", f"{args.roots / sha_s:,.0f} roots/s -> log is {append_s / sha_s:.1f}x slower"),
            ("  ref: LevelDB raw batch puts", f"{args.roots / raw_s:,.0f} roots/s -> log is {append_s / raw_s:.1f}x slower"),
            ("re-append known batch", f"{reappend_s * 1e3:.2f} ms for {args.batch:,} known roots (idempotent)"),
        ]

        size = log.size
        root = log.root()
        indices = [rng.randrange(size) for _ in range(args.proofs)]
        times, reads = [], []
        for index in indices:
            before = store.reads
            started = time.perf_counter()
            path = log.inclusion_proof(index, size)
            times.append(time.perf_counter() - started)
            reads.append(store.reads - before)
            verify_inclusion(leaf_hash(data[index * HASH_SIZE : (index + 1) * HASH_SIZE]), index, size, path, root)
        rows += _latency_rows(f"inclusion proof at {size:,}", times, reads)

        times, reads = [], []
        for _ in range(args.proofs):
            size1 = rng.randrange(1, size + 1)
            before = store.reads
            started = time.perf_counter()
            path = log.consistency_proof(size1, size)
            times.append(time.perf_counter() - started)
            reads.append(store.reads - before)
            verify_consistency(size1, size, path, log.root(size1), root)
        rows += _latency_rows(f"consistency proof to {size:,}", times, reads)

        log.close()
        store.compact()
        store.close()
        log_bytes = _du_bytes(os.path.join(workdir, "log"))
        rows.append(("bytes on disk per root", f"{log_bytes / args.roots:.1f} (du after compact_range: {log_bytes:,} B)"))
    finally:
        shutil.rmtree(workdir)
    _print_table(rows)


def _time_sha256(data: bytes) -> float:
    sha256 = hashlib.sha256
    started = time.perf_counter()
    for offset in range(0, len(data), HASH_SIZE):
        sha256(b"\x00" + data[offset : offset + HASH_SIZE]).digest()
    return time.perf_counter() - started


def _time_raw_puts(path: str, data: bytes, batch_bytes: int) -> float:
    """One 32-byte value per root under an 8-byte key, same batches, sync and LevelDB options."""
    with Store(path) as store:
        started = time.perf_counter()
        for offset in range(0, len(data), batch_bytes):
            with store.batch(sync=True) as batch:
                put = batch.put
                for position in range(offset, min(offset + batch_bytes, len(data)), HASH_SIZE):
                    put(position.to_bytes(8, "big"), data[position : position + HASH_SIZE])
        return time.perf_counter() - started


def _latency_rows(what: str, times: list[float], reads: list[int]) -> list[tuple[str, str]]:
    micros = sorted(t * 1e6 for t in times)
    p99 = micros[min(len(micros) - 1, int(len(micros) * 0.99))]
    return [
        (what, f"mean {statistics.fmean(micros):.0f} us, p50 {statistics.median(micros):.0f} us, p99 {p99:.0f} us"),
        ("  records read per proof", f"mean {statistics.fmean(reads):.1f}, max {max(reads)}"),
    ]


def _du_bytes(path: str) -> int:
    out = subprocess.run(["du", "-s", "--block-size=1", path], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def _print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"{'measure'.ljust(width)}  value")
    print(f"{'-' * width}  {'-' * 60}")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
