"""Bitcoin anchoring: RPC client, OP_RETURN anchor transactions, confirmations, SPV material."""
