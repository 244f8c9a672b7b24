"""Shared pytest configuration: fixtures that start a real regtest bitcoind live in conftest_bitcoind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest_plugins = ["tests.conftest_bitcoind"]


@pytest.fixture
def idle_node(tmp_path) -> Iterator:
    """Validator 0 of a fresh 4-validator devnet, built but not running: its storage,
    mempool, peers and checks, driven directly by a test."""
    from devnet import cluster
    from node.config import load_config
    from node.runtime import Node

    state = cluster.create(tmp_path / "devnet", 4)
    validator = Node(load_config(state.nodes[0].config))
    yield validator
    validator.store.close()
