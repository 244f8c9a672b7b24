"""The validator process: config, keys, mempool, consensus driver, HTTP API, CLI."""
