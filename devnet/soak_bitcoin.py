"""What the soak asks of the devnet's regtest bitcoind: restart it, flush it, reorg it, ask it.

Blocking RPC calls (the soak runs them with ``trio.to_thread``), over devnet.regtest's
client; the soak's own view of Bitcoin, independent of what the validators report.
"""

from __future__ import annotations

import time
from typing import Any

from anchor.rpc import RPC_WALLET_ERROR, BitcoindRPCError
from devnet import regtest

RPC_BLOCK_NOT_FOUND = -5
WALLETS_DEADLINE_S = 60.0


def mine_competing_branch(info: dict[str, Any], depth: int) -> tuple[int, int]:
    """Invalidate the top ``depth`` blocks and mine ``depth + 1`` in their place: a longer branch."""
    miner = regtest.rpc(info, regtest.MINER_WALLET)
    tip = miner.call("getblockcount")
    miner.call("invalidateblock", miner.call("getblockhash", tip - depth + 1))
    miner.call("generatetoaddress", depth + 1, miner.call("getnewaddress"))
    return tip, miner.call("getblockcount")


def restart_bitcoind(info: dict[str, Any]) -> None:
    """Start bitcoind again and load its wallets, which the devnet's miner may be loading too."""
    regtest.start_bitcoind(info)
    deadline = time.monotonic() + WALLETS_DEADLINE_S
    while True:
        try:
            regtest.load_wallets(info)
            return
        except BitcoindRPCError as exc:
            if exc.code != RPC_WALLET_ERROR or time.monotonic() > deadline:  # -4: "Wallet already loading"
                raise
        time.sleep(0.2)


def flush_chainstate(info: dict[str, Any]) -> None:
    regtest.rpc(info).call("gettxoutsetinfo", "none")


def best_chain_membership(info: dict[str, Any], block_hashes: set[str]) -> dict[str, bool]:
    """For each block hash: is it on bitcoind's best chain? (A stale block has confirmations
    -1; a block bitcoind lost or never had is not found.)"""
    node = regtest.rpc(info)
    member = {}
    for block_hash in block_hashes:
        try:
            member[block_hash] = node.call("getblockheader", block_hash)["confirmations"] >= 1
        except BitcoindRPCError as exc:
            if exc.code != RPC_BLOCK_NOT_FOUND:
                raise
            member[block_hash] = False
    return member
