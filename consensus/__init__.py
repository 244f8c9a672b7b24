"""Sans-IO Simplex-style BFT consensus core and its deterministic simulator."""
