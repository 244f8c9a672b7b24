"""Submitting the journal head to a validator, and turning its receipt into a proof bundle.

``submit`` posts the current head (the chain hash of the last complete entry) and keeps
the node's receipt in the sidecar. It can be run again at any time: the node answers a
repeated root with the same receipt, and the sidecar file is rewritten with it.

``upgrade`` asks the node for the bundle of every submitted head not yet anchored in
Bitcoin, checks each one (the root is the head; the bundle verifies against the
journal's genesis) before storing it, and when a head becomes anchored appends an
``anchor`` entry holding the head and the bundle's digest. Nothing a node sends is
stored unchecked.
"""

from __future__ import annotations

from dataclasses import dataclass

from proof.bundle import Bundle, Claim, verify_bundle
from proof.chain import Genesis
from proof.errors import DecodeError, ProofError
from proof.spv import hash_to_hex

from journal.anchors import Receipt, Sidecar
from journal.client import NodeClient
from journal.entry import Entry, Kind, digest
from journal.errors import SubmitError
from journal.verify import ChainWalker
from journal.writer import Journal

ANCHOR_ACTION = "anchor"


def submit_head(walker: ChainWalker, sidecar: Sidecar, client: NodeClient) -> Receipt:
    """Send the head after the last entry to the node; store and return its receipt."""
    if walker.length == 0:
        raise SubmitError("the journal has no entries to submit")
    seq, head = walker.length - 1, walker.head
    answer = client.submit(head)
    receipt = Receipt(seq=seq, head=head, node=client.url, state=answer["state"],
                      received_at_ms=answer["received_at_ms"], index=answer.get("index"))
    sidecar.put_receipt(receipt)
    return receipt


@dataclass(frozen=True)
class Upgrade:
    """What one submitted head has become: 'submitted' (no bundle yet), 'certified' or 'anchored'."""

    seq: int
    head: bytes
    state: str
    claim: Claim | None
    anchor_entry: Entry | None


def upgrade(
    walker: ChainWalker, sidecar: Sidecar, client: NodeClient, genesis: Genesis, journal: Journal | None
) -> list[Upgrade]:
    """Fetch, check and store the bundles of submitted heads after the latest anchored one.

    ``journal``, when given (opened for writing), receives an ``anchor`` entry for each
    head that became anchored in Bitcoin.
    """
    anchored_seq = max((b.seq for b in sidecar.bundles() if Bundle.decode(b.read()).anchored), default=-1)
    results = []
    for receipt in sidecar.receipts():
        if receipt.seq <= anchored_seq:
            continue
        walker.check_head(receipt.seq, receipt.head, f"the receipt from {receipt.node}")
        data = client.proof(receipt.head)
        if data is None:
            results.append(Upgrade(receipt.seq, receipt.head, "submitted", None, None))
            continue
        claim = _checked(data, receipt.head, genesis, client.url)
        sidecar.put_bundle(receipt.seq, receipt.head, data)
        entry = None
        if claim.anchored and journal is not None:
            entry = journal.append(Kind.ANCHOR, ANCHOR_ACTION, {"head": receipt.head, "bundle": digest(data)},
                                   meta=_anchor_meta(receipt.seq, claim))
        results.append(Upgrade(receipt.seq, receipt.head, "anchored" if claim.anchored else "certified", claim, entry))
    return results


def _checked(data: bytes, head: bytes, genesis: Genesis, url: str) -> Claim:
    try:
        bundle = Bundle.decode(data)
        if bundle.root != head:
            raise ProofError(f"the node answered with a bundle for root {bundle.root.hex()[:16]}…")
        return verify_bundle(data, genesis=genesis)
    except (ProofError, DecodeError) as exc:
        raise SubmitError(f"node {url} served a bundle for head {head.hex()[:16]}… that does not verify: {exc}") from exc


def _anchor_meta(seq: int, claim: Claim) -> dict[str, str | int]:
    assert claim.txid is not None and claim.btc_block_hash is not None and claim.bitcoin_network is not None
    return {
        "seq": seq,
        "chain": claim.chain_id.hex(),
        "height": claim.height,
        "log_index": claim.index,
        "btc_network": claim.bitcoin_network,
        "btc_txid": hash_to_hex(claim.txid),
        "btc_block": hash_to_hex(claim.btc_block_hash),
    }
