"""Smoke test of bench/storage_scale.py: tiny sizes, every expected figure printed as a number."""

import math
import subprocess
import sys

# The names the docs and docs/performance.md quote; each must appear once, as a finite number.
EXPECTED = (
    "nproc", "batch", "proofs",
    "roots", "append_roots_per_s", "append_roots_per_s_last_tenth", "append_last_tenth_over_first",
    "append_cpu_last_tenth_over_first",
    *(f"append_roots_per_s_tenth_{tenth}" for tenth in range(1, 11)),
    "append_batch_p50_ms", "append_batch_p99_ms", "append_batch_max_ms",
    "inclusion_p50_ms", "inclusion_p99_ms", "inclusion_reads_per_proof_mean", "inclusion_reads_per_proof_max",
    "consistency_p50_ms", "consistency_p99_ms", "consistency_reads_per_proof_mean",
    "consistency_reads_per_proof_max",
    "inclusion_cpu_p99_ms", "consistency_cpu_p99_ms", "reference_task_p50_ms", "reference_task_p99_ms",
    "inclusion_preempted_calls", "inclusion_major_faults", "inclusion_p99_ms_not_preempted", "settle_s", "rss_mb_after_appends",
    "leveldb_table_writes_mb", "leveldb_write_amplification",
    "append_main_thread_cpu_us_per_root", "append_process_cpu_us_per_root",
    "rss_mb_max", "rss_anon_mb_max", "rss_file_mb_max", "disk_bytes", "disk_bytes_per_root", "disk_table_bytes", "disk_wal_bytes",
    "disk_bytes_per_root_compacted",
    "ours_at_pymerkle_size_append_roots_per_s", "ours_at_pymerkle_size_inclusion_p99_ms",
    "ours_at_pymerkle_size_rss_mb_max", "ours_at_pymerkle_size_disk_bytes_per_root",
    "pymerkle_roots", "pymerkle_root_matches_ours", "pymerkle_append_roots_per_s",
    "pymerkle_inclusion_p50_ms", "pymerkle_inclusion_p99_ms", "pymerkle_consistency_p50_ms",
    "pymerkle_consistency_p99_ms", "pymerkle_inclusion_verified_by_ours", "pymerkle_consistency_verified_by_pymerkle",
    "pymerkle_rss_mb_max", "pymerkle_disk_bytes_per_root",
    "pymerkle_mem_root_matches_ours", "pymerkle_mem_append_roots_per_s", "pymerkle_mem_inclusion_p99_ms",
    "pymerkle_mem_rss_mb_max",
    "append_ratio_vs_pymerkle", "inclusion_p50_ratio_vs_pymerkle", "inclusion_p99_ratio_vs_pymerkle",
    "consistency_p50_ratio_vs_pymerkle", "consistency_p99_ratio_vs_pymerkle", "rss_ratio_vs_pymerkle", "rss_anon_ratio_vs_pymerkle",
    "append_cpu_ratio_vs_pymerkle", "inclusion_cpu_p99_ratio_vs_pymerkle", "consistency_cpu_p99_ratio_vs_pymerkle",
    "disk_ratio_vs_pymerkle", "append_ratio_vs_pymerkle_mem", "rss_ratio_vs_pymerkle_mem",
)  # fmt: skip


def test_storage_scale_bench_prints_every_figure():
    result = subprocess.run(
        [sys.executable, "-m", "bench.storage_scale", "--roots", "20000", "--pymerkle-roots", "2000", "--proofs", "200"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    values: dict[str, float] = {}
    for line in result.stdout.splitlines():
        name, sep, value = line.partition("=")
        assert sep and name not in values, f"not a single name=value line: {line!r}"
        values[name] = float(value)  # every value is a number
        assert math.isfinite(values[name]), line
    missing = [name for name in EXPECTED if name not in values]
    assert not missing, f"missing from the output: {missing}"
    assert values["roots"] == 20000 and values["pymerkle_roots"] == 2000
    assert values["pymerkle_root_matches_ours"] == 1 and values["pymerkle_mem_root_matches_ours"] == 1
    assert values["pymerkle_inclusion_verified_by_ours"] == 200
    assert values["pymerkle_consistency_verified_by_pymerkle"] == 200


def test_store_compact_compacts_the_whole_key_range(tmp_path):
    """The bench's compacted disk figure relies on Store.compact doing a full compaction.

    (plyvel's ``compact_range()`` without bounds compacts nothing: see Store.compact.)
    """
    import hashlib

    from storage.db import Store
    from storage.merkle_log import MerkleLog

    path = tmp_path / "db"
    with Store(path) as store:
        log = MerkleLog(store)
        for batch in range(60):
            log.append(hashlib.shake_256(b"compact %d" % batch).digest(1000 * 32))
        root = log.root()
    with Store(path) as store:
        assert store.property("leveldb.num-files-at-level0") != "0"  # the replayed log, at least
        store.compact()
        files = [int(store.property(f"leveldb.num-files-at-level{level}")) for level in range(7)]
        assert files[0] == 0, files
        assert sum(1 for count in files if count) == 1, files  # every table in one level: nothing overlaps
        log = MerkleLog(store)
        assert log.size == 60_000 and log.root() == root
