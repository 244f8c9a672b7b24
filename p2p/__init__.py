"""Post-quantum authenticated peer-to-peer transport on trio."""
