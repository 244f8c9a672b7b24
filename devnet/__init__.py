"""Local development network: bitcoind on regtest, keys, genesis, validators, load."""
