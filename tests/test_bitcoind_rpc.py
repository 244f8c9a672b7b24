"""The bitcoind JSON-RPC client and the regtest node helper, against a real bitcoind."""

import socket
from decimal import Decimal

import pytest

from anchor.rpc import BitcoindAuthError, BitcoindRPC, BitcoindRPCError, BitcoindUnavailable
from devnet.bitcoind import BitcoindStartError, RegtestNode

pytestmark = pytest.mark.bitcoind

RPC_METHOD_NOT_FOUND = -32601
RPC_WALLET_NOT_FOUND = -18


def test_call_to_a_stopped_bitcoind_is_unavailable_with_its_address(bitcoind_paths):  # noqa: F811
    node = RegtestNode(bitcoind_paths)
    node.start()
    rpc = node.rpc()
    node.stop()
    with pytest.raises(BitcoindUnavailable, match=f"bitcoind at 127.0.0.1:{node.rpc_port} is not reachable"):
        rpc.call("getblockchaininfo")


def test_call_to_a_port_nobody_listens_on_is_unavailable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    rpc = BitcoindRPC(port, user="u", password="p", timeout_s=2)
    with pytest.raises(BitcoindUnavailable, match=f"127.0.0.1:{port} is not reachable.*Connection refused"):
        rpc.call("getblockchaininfo")


def test_server_that_never_answers_is_unavailable_after_the_timeout():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        rpc = BitcoindRPC(silent.getsockname()[1], user="u", password="p", timeout_s=0.2)
        with pytest.raises(BitcoindUnavailable, match="got no answer within 0.2 s"):
            rpc.call("getblockchaininfo")


def test_node_answers_and_stop_leaves_nothing_running(bitcoind_paths):  # noqa: F811
    node = RegtestNode(bitcoind_paths)
    with node:
        assert node.rpc().call("getblockchaininfo")["chain"] == "regtest"
        process = node._process
    assert process.returncode is not None
    assert not node.datadir.exists()


def test_wrong_password_is_an_auth_error(regtest_node):  # noqa: F811
    rpc = BitcoindRPC(regtest_node.rpc_port, user="__cookie__", password="wrong")
    with pytest.raises(BitcoindAuthError, match="refused the RPC credentials"):
        rpc.call("getblockchaininfo")


def test_cookie_is_read_again_when_bitcoind_refuses_the_cached_one(regtest_node, tmp_path):  # noqa: F811
    cookie = tmp_path / ".cookie"
    cookie.write_text("__cookie__:stale")
    rpc = BitcoindRPC(regtest_node.rpc_port, cookie_path=cookie)
    with pytest.raises(BitcoindAuthError):
        rpc.call("getblockcount")
    cookie.write_text(regtest_node.cookie_path.read_text())
    assert rpc.call("getblockcount") == 0


def test_rpc_error_carries_bitcoinds_code_and_message(regtest_node):  # noqa: F811
    with pytest.raises(BitcoindRPCError) as raised:
        regtest_node.rpc().call("nosuchmethod")
    assert raised.value.code == RPC_METHOD_NOT_FOUND
    assert "Method not found" in str(raised.value)


def test_wallet_calls_go_to_the_named_wallet(regtest_node):  # noqa: F811
    wallet = regtest_node.create_wallet("first")
    assert wallet.call("getwalletinfo")["walletname"] == "first"
    with pytest.raises(BitcoindRPCError) as raised:
        regtest_node.rpc(wallet="missing").call("getwalletinfo")
    assert raised.value.code == RPC_WALLET_NOT_FOUND


def test_amounts_come_back_as_decimal(regtest_node):  # noqa: F811
    wallet = regtest_node.create_wallet("w")
    wallet.call("generatetoaddress", 101, wallet.call("getnewaddress"))
    assert wallet.call("getbalance") == Decimal("50.00000000")


def test_bitcoind_refusing_its_arguments_is_a_start_error_with_its_message(bitcoind_paths):  # noqa: F811
    node = RegtestNode(bitcoind_paths, extra_args=["-nosuchoption=1"])
    with pytest.raises(BitcoindStartError, match="nosuchoption"):
        node.start()
    assert not node.running
