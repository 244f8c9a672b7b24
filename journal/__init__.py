"""Producer side: a signed, hash-chained audit journal and its submission to a node."""
