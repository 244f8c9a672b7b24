"""Fixtures for tests against a real regtest bitcoind.

bitcoind comes from devnet.bitcoind.find_or_install: ``$PANTHEON_BITCOIND``, PATH, or
Bitcoin Knots installed once into the user's cache (about 20 s the first time, then
instant; ``make bitcoind`` does it ahead). Every test gets its own node on a fresh
datadir and free ports, stopped afterwards, so tests cannot see each other's chains.

Test modules that need these fixtures import them by name; tests/conftest.py can
register this module once with ``pytest_plugins = ["tests.conftest_bitcoind"]``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from anchor.rpc import BitcoindRPC
from devnet.bitcoind import ANCHOR_TIP_HEIGHT_MIN, BitcoindInstallError, BitcoindPaths, RegtestNode, find_or_install

# Coinbase outputs mature after 100 blocks: 101 gives the wallet one spendable coin.
MATURE_BLOCKS = 101
# Blocks mined first to an output no wallet owns (OP_TRUE), so that the tip is past every lock
# time Knots refuses from a fee bump while the wallet still holds that one coin.
PRELUDE_BLOCKS = ANCHOR_TIP_HEIGHT_MIN - MATURE_BLOCKS
NOBODYS_DESCRIPTOR = "raw(51)"


@dataclass(frozen=True)
class InstallTiming:
    paths: BitcoindPaths
    first_call_s: float


@pytest.fixture(scope="session")
def bitcoind_install() -> InstallTiming:
    started = time.monotonic()
    try:
        paths = find_or_install()
    except BitcoindInstallError as exc:
        pytest.skip(f"no bitcoind on this machine and it could not be installed: {exc}")
    return InstallTiming(paths, time.monotonic() - started)


@pytest.fixture(scope="session")
def bitcoind_paths(bitcoind_install: InstallTiming) -> BitcoindPaths:
    return bitcoind_install.paths


@pytest.fixture
def regtest_node(bitcoind_paths: BitcoindPaths) -> Iterator[RegtestNode]:
    with RegtestNode(bitcoind_paths) as node:
        yield node


@dataclass(frozen=True)
class FundedWallet:
    node: RegtestNode
    wallet: BitcoindRPC
    address: str

    def mine(self, blocks: int = 1) -> list[str]:
        """Mine to a fresh address each time: after invalidateblock, mining to the same
        address would rebuild the very block that was just invalidated."""
        return self.wallet.call("generatetoaddress", blocks, self.wallet.call("getnewaddress"))


def mine_one_mature_coin(wallet: BitcoindRPC, address: str) -> None:
    """A fresh chain, mined to ANCHOR_TIP_HEIGHT_MIN, where ``wallet`` owns exactly one spendable coin."""
    wallet.call("generatetodescriptor", PRELUDE_BLOCKS, NOBODYS_DESCRIPTOR)
    wallet.call("generatetoaddress", MATURE_BLOCKS, address)


@pytest.fixture
def funded_wallet(regtest_node: RegtestNode) -> FundedWallet:
    wallet = regtest_node.create_wallet("anchor")
    address = wallet.call("getnewaddress")
    mine_one_mature_coin(wallet, address)
    return FundedWallet(regtest_node, wallet, address)
