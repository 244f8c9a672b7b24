"""Every rejection rule of the bundle verifier, by name, and the switch that proves each is tested.

Why names: ``docs/proof-format.md`` section 6 lists the checks in order and section 11
maps each to the vectors that catch it. A vector set is complete when switching off any
single check makes at least one vector change verdict; ``tests/test_check_coverage.py``
proves it by running every vector with each check of :data:`CHECKS` switched off in turn.

How: a rule is written ``if <violation> and enforced("name"): raise ...``. In
production nothing is ever switched off, so ``enforced`` returns True, and it is
evaluated only once a violation was found: the valid path pays nothing. Only
:func:`switched_off` (used by that test alone) turns one rule off.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

CHECKS: dict[str, str] = {
    # step 0
    "pin.chain-id": "0: the genesis hash equals the expected chain id",
    # step 1, canonical CBOR (section 2)
    "cbor.size": "1: input at most 4 MiB",
    "cbor.tag": "1: no tags (major type 6)",
    "cbor.shortest": "1: every argument in its shortest form",
    "cbor.indefinite": "1: no indefinite lengths",
    "cbor.float": "1: no floats",
    "cbor.simple": "1: no simple value but false, true, null",
    "cbor.utf8": "1: text strings are valid UTF-8",
    "cbor.depth": "1: nesting depth at most 32",
    "cbor.items": "1: at most 65,536 data items",
    "cbor.key-type": "1: map keys are integers or text",
    "cbor.key-duplicate": "1: no two equal map keys",
    "cbor.key-order": "1: map keys in canonical order",
    "cbor.trailing": "1: no bytes after the top-level item",
    # step 1, records (sections 4 and 5)
    "record.version": "1: bundle v is 1",
    "record.unknown-field": "1: no unknown field in any record",
    "record.witness": "1: the Bitcoin tx is stored without witness",
    "record.header-height": "1: header height at least 1",
    "record.genesis-parent": "1: the zero parent exactly at height 1",
    "record.proposer": "1: header proposer below 100",
    "record.nullify-zero": "1: a certificate's block hash is zero exactly for nullify",
    "record.signer-order": "1: signer indices strictly increasing (no validator counted twice)",
    "record.signer-bound": "1: signer indices below 100",
    "record.signature-size": "1: signatures of 1..3309 bytes",
    "record.finality-kind": "1: the finalization certificate has kind 3 (finalize)",
    # step 2
    "chain.id": "2: header.chain is the genesis chain id",
    "chain.vset": "2: header.vset is the genesis validator-set hash",
    # step 3
    "finality.header-chain-id": "3.1: every finality header names the chain",
    "finality.header-parent": "3.1: every finality header's parent is the hash of the one before",
    "finality.header-height": "3.1: every finality header's height is the one before's plus 1",
    "finality.cert-block": "3.2: the certificate is for the last header's hash",
    "finality.cert-view": "3.2: the certificate's view is the last header's view",
    "finality.quorum": "3.3: at least 2f+1 signatures",
    "finality.signer-known": "3.4: every signer index is below n",
    "finality.signature": "3.5: every signature verifies, also those above the quorum",
    # step 4
    "inclusion.index": "4: index below log_size",
    "inclusion.path-length": "4: path has the length RFC 9162 prescribes",
    "inclusion.root": "4: the path folds to log_root",
    # step 5
    "bitcoin.network": "5.1: net is one of the five names",
    "bitcoin.tx-compact-size": "5.2: canonical compact sizes",
    "bitcoin.tx-no-inputs": "5.2: at least one input",
    "bitcoin.tx-no-outputs": "5.2: at least one output",
    "bitcoin.tx-value": "5.2: every output value at most 21,000,000 BTC",
    "bitcoin.tx-trailing": "5.2: no bytes after the lock time",
    "bitcoin.tx-64-bytes": "5.3: the transaction is not 64 bytes",
    "bitcoin.branch-index": "5.4: txi below 2^len(branch)",
    "bitcoin.branch-left-duplicate": "5.4: a right child never equals its left sibling",
    "bitcoin.branch-right-duplicate": "5.4: once duplicated, every higher left child is duplicated too",
    "bitcoin.branch-inner-tx": "5.4: no 64-byte inner node parses as a transaction",
    "bitcoin.merkle-root": "5.4: the branch folds to the header's merkle root",
    "bitcoin.bits-negative": "5.5: bits encode no negative target",
    "bitcoin.bits-overflow": "5.5: bits encode no target above 2^256",
    "bitcoin.bits-zero": "5.5: bits encode no zero target",
    "bitcoin.pow-limit": "5.5: target at most the network's limit",
    "bitcoin.work-floor": "5.5: on main, target at most the work floor's",
    "bitcoin.pow": "5.5: the header hash meets its target",
    "bitcoin.op-return-count": "5.6: exactly one OP_RETURN output",
    "bitcoin.anchor-script": "5.6: that output is exactly an anchor script",
    "bitcoin.anchored-block": "5.6: the anchored hash is the bundle's block hash",
    "bitcoin.header-link": "5.7: each further header builds on the one before",
    # step 6
    "policy.pending": "6: under a policy, the bundle is anchored",
    "policy.network": "6: the anchor is on the required network",
    "policy.confirmations": "6: at least N confirmations",
}

_switched_off: set[str] = set()


def enforced(check: str) -> bool:
    """True unless the coverage test switched ``check`` off. Ask only once the rule is broken."""
    assert check in CHECKS, f"unknown check {check!r}"
    return check not in _switched_off


@contextmanager
def switched_off(check: str) -> Iterator[None]:
    """Run the body with one check off: for tests/test_check_coverage.py, never for a verdict."""
    if check not in CHECKS:
        raise KeyError(f"unknown check {check!r}")
    _switched_off.add(check)
    try:
        yield
    finally:
        _switched_off.discard(check)
