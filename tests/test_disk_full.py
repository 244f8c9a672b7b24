"""A full disk: writes are refused with a clear error, nothing partial is stored, and the node resumes.

The disk is a real tmpfs of a few MiB mounted over the data directory (needs root,
as CI and these machines have; elsewhere the tests skip saying so). Before this, the
validator died with a plyvel IOError traceback when its disk filled.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from devnet import cluster
from node.api import build_app
from storage.db import Store
from storage.errors import StoreWriteError
from node.tokens import add_token, load_tokens
from tests.network_harness import random_roots, running, wait_until
from tests.test_api import StandIn

pytestmark = pytest.mark.timeout(300)


def _mount_small_disk(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root (run the suite as root, as CI does)")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if result.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode(errors='replace').strip()}")


def _unmount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    path = tmp_path / "small"
    _mount_small_disk(path, "1m")
    yield path
    _unmount(path)


def test_a_write_to_a_full_disk_raises_a_clear_error_and_stores_nothing(small_disk) -> None:
    store = Store(small_disk / "db")
    written = 0
    with pytest.raises(StoreWriteError, match="No space left on device.*nothing of this write was stored"):
        for batch_number in range(10_000):
            with store.batch() as batch:
                for item in range(100):
                    batch.put(b"k%08d-%03d" % (batch_number, item), os.urandom(100))
            written = batch_number + 1
    assert written > 0
    assert store.get(b"k%08d-%03d" % (written, 0)) is None  # the failed batch left nothing
    assert store.get(b"k%08d-%03d" % (written - 1, 99)) is not None


async def test_a_submission_the_node_cannot_store_is_a_507_naming_the_full_disk(tmp_path) -> None:
    secret = add_token(tmp_path / "tokens.toml", "producer-a")
    service = StandIn(load_tokens(tmp_path / "tokens.toml"))
    service.fail_with = StoreWriteError("cannot write to store /data: No space left on device")
    transport = httpx.ASGITransport(app=build_app(service, roots_per_request_max=4, body_bytes_max=4_096))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        response = await client.post(
            "/v1/roots", json={"roots": ["ab" * 32]}, headers={"Authorization": f"Bearer {secret}"}
        )
    assert response.status_code == 507
    assert "disk is full" in response.json()["error"] and "another validator" in response.json()["error"]


def test_a_validator_whose_disk_fills_stops_cleanly_and_resumes_with_the_same_log_once_space_is_freed(tmp_path) -> None:
    state = cluster.create(tmp_path / "devnet", 4)
    data = Path(state.nodes[3].config).parent / "data"
    _mount_small_disk(data, "1m")
    try:
        with running(state) as network:
            submitted = 0
            entry = state.nodes[3]
            while cluster.is_running(entry) and submitted < 200_000:
                response = network.submit(submitted // 1_000 % 3, random_roots(1_000))
                submitted += 1_000 if response.status_code == 202 else 0
                time.sleep(0.05)  # pace the load: the quota per token would refuse a tighter loop
            wait_until(lambda: not cluster.is_running(entry) or cluster.pid_alive(entry.pid) is False,
                       deadline_s=60, what="validator 3 to stop on its full disk")
            log_text = Path(entry.log).read_text(errors="replace")
            assert "No space left on device" in log_text and "nothing of this write was stored" in log_text
            assert "Traceback" not in log_text
            subprocess.run(["mount", "-o", "remount,size=256m", str(data)], check=True)
            entry.pid = None
            cluster.start_node(entry)
            wait_until(lambda: len(set(network.log_sizes())) == 1 and network.status(3)["ok"], deadline_s=180,
                       what="the validator to resume and catch up")
            assert len({network.status(index)["log_root"] for index in range(4)}) == 1
    finally:
        cluster.stop(state)
        _unmount(data)
