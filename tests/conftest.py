"""Shared pytest configuration: fixtures that start a real regtest bitcoind live in conftest_bitcoind."""

pytest_plugins = ["tests.conftest_bitcoind"]
