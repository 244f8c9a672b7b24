"""The LevelDB Store and the key layout."""

import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proof.errors import PantheonError
from storage import keys
from storage.db import Store
from storage.errors import StoreError

LOCK_HOLDER_READY = "ready"
CHILD_READY_TIMEOUT_S = 30


def test_open_creates_a_missing_directory(tmp_path):
    path = tmp_path / "fresh"
    with Store(path) as store:
        assert store.get(b"anything") is None
    assert (path / "CURRENT").exists()


def test_open_without_create_refuses_a_missing_directory_naming_it(tmp_path):
    path = tmp_path / "absent"
    with pytest.raises(StoreError, match=str(path)):
        Store(path, create_if_missing=False)


def test_store_error_is_a_pantheon_error():
    assert issubclass(StoreError, PantheonError)


def test_second_open_in_the_same_process_is_refused_as_locked(tmp_path):
    with Store(tmp_path / "db"):
        with pytest.raises(StoreError, match=r"locked.*" + str(tmp_path / "db")):
            Store(tmp_path / "db")


def test_open_while_another_process_holds_the_store_is_refused_as_locked(tmp_path):
    path = tmp_path / "db"
    holder_code = (
        "import sys; from storage.db import Store\n"
        "store = Store(sys.argv[1])\n"
        f"print({LOCK_HOLDER_READY!r}, flush=True)\n"
        "sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", holder_code, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    try:
        # readline blocks until the holder has the store open (or has died: then "").
        assert holder.stdout.readline().strip() == LOCK_HOLDER_READY
        with pytest.raises(StoreError, match=r"locked.*another process"):
            Store(path)
    finally:
        holder.stdin.close()
        holder.wait(timeout=CHILD_READY_TIMEOUT_S)
    with Store(path) as store:
        assert store.get(b"k") is None


def test_corrupt_store_is_refused_naming_the_path(tmp_path):
    path = tmp_path / "db"
    with Store(path) as store:
        with store.batch() as batch:
            batch.put(b"k", b"v")
    (path / "CURRENT").write_text("MANIFEST-999999\n")
    with pytest.raises(StoreError, match=r"corrupt.*" + str(path)):
        Store(path)


def test_batch_writes_every_record_and_they_survive_reopen(tmp_path):
    with Store(tmp_path / "db") as store:
        with store.batch(sync=True) as batch:
            batch.put(b"a", b"1")
            batch.put(b"b", b"2")
    with Store(tmp_path / "db") as store:
        assert store.get(b"a") == b"1"
        assert store.get(b"b") == b"2"


def test_batch_that_raises_writes_nothing(tmp_path):
    class Abort(Exception):
        pass

    with Store(tmp_path / "db") as store:
        with pytest.raises(Abort):
            with store.batch() as batch:
                batch.put(b"a", b"1")
                raise Abort
        assert store.get(b"a") is None


def test_batch_delete_removes_a_record(tmp_path):
    with Store(tmp_path / "db") as store:
        with store.batch() as batch:
            batch.put(b"a", b"1")
        with store.batch() as batch:
            batch.delete(b"a")
        assert store.get(b"a") is None


def test_iterate_yields_only_the_prefix_in_key_order(tmp_path):
    with Store(tmp_path / "db") as store:
        with store.batch() as batch:
            for key in (b"\x02\x03", b"\x01\xff", b"\x02\x01", b"\x03\x00", b"\x02\x02"):
                batch.put(key, key[1:])
        assert list(store.iterate(b"\x02")) == [
            (b"\x02\x01", b"\x01"),
            (b"\x02\x02", b"\x02"),
            (b"\x02\x03", b"\x03"),
        ]


def test_scan_yields_keys_from_start_up_to_but_excluding_stop(tmp_path):
    with Store(tmp_path / "db") as store:
        with store.batch() as batch:
            for key in (b"a", b"b", b"c", b"d"):
                batch.put(key, key.upper())
        assert list(store.scan(b"b", b"d")) == [(b"b", b"B"), (b"c", b"C")]


def test_context_manager_closes_the_store(tmp_path):
    with Store(tmp_path / "db") as store:
        assert not store.closed
    assert store.closed


def test_every_record_kind_has_its_own_prefix():
    assert len(set(keys.ALL_PREFIXES)) == len(keys.ALL_PREFIXES)
    assert all(len(prefix) == 1 for prefix in keys.ALL_PREFIXES)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, keys.U64_MAX), st.integers(0, keys.U64_MAX))
def test_u64_key_order_equals_numeric_order(a, b):
    assert (keys.u64(a) < keys.u64(b)) == (a < b)
    assert len(keys.u64(a)) == 8


@settings(max_examples=100, deadline=None)
@given(st.integers(1, keys.LEVEL_MAX), st.integers(0, keys.U64_MAX), st.integers(0, keys.U64_MAX))
def test_log_node_keys_of_one_level_sort_by_index(level, a, b):
    assert (keys.log_node(level, a) < keys.log_node(level, b)) == (a < b)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, keys.LEVEL_MAX - 1), st.integers(0, keys.U64_MAX), st.integers(0, keys.U64_MAX))
def test_log_node_keys_of_a_lower_level_sort_first(level, a, b):
    assert keys.log_node(level, a) < keys.log_node(level + 1, b)


def test_log_node_key_refuses_level_zero_because_leaves_are_entries():
    with pytest.raises(ValueError, match="level 0"):
        keys.log_node(0, 0)
