"""Proof material served by a node: bundles, certified blocks, consistency proofs, checkpoint notes.

A bundle is *anchored* as soon as the node's AnchorStore holds a confirmed anchor of a
finalized block at or above the root's block (``checkpoint_covering``): the inclusion
path is then taken at that block's log size, so the one anchor proves every root
logged up to it. Otherwise the bundle is *pending*: inclusion at the latest finalized
block. Every function returns None when the node has nothing to serve yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.keyfiles import read_key_file
from proof import note
from proof.bundle import AnchorRecord, BitcoinAnchor, Bundle, CertifiedBlock, ConsistencyRecord
from proof.chain import BlockHeader
from proof.mldsa import SigningKey
from proof.spv import parse_transaction
from storage.anchor_store import AnchoredCheckpoint, AnchorStore

if TYPE_CHECKING:
    from node.runtime import Node

BUNDLE_HEADERS_AFTER_MAX = 11
"""Bitcoin headers after the anchor's block put in a bundle: genesis.anchor_final_depth - 1,
at most this many (12 confirmations; 891 bytes, inside the 16 KB budget)."""


def anchor_store_of(node: Node) -> AnchorStore | None:
    """The node's AnchorStore (``node.anchor_store``), or None on a node without one."""
    return getattr(node, "anchor_store", None)


def strip_witness(raw_tx: bytes) -> bytes:
    """The transaction without its witness: the bytes its txid commits to (what a bundle holds)."""
    tx = parse_transaction(raw_tx)
    if not tx.has_witness:
        return raw_tx
    body_size = tx.stripped_size - 8
    return raw_tx[:4] + raw_tx[6 : 6 + body_size] + raw_tx[-4:]


def bitcoin_part(node: Node, checkpoint: AnchoredCheckpoint, store: AnchorStore) -> BitcoinAnchor:
    depth = max(0, min(node.genesis.anchor_final_depth - 1, BUNDLE_HEADERS_AFTER_MAX))
    return BitcoinAnchor(
        network=checkpoint.network,
        tx=strip_witness(checkpoint.raw_tx),
        tx_index=checkpoint.tx_index,
        branch=tuple(checkpoint.branch),
        header=checkpoint.header,
        more=tuple(store.headers_after(checkpoint, depth)[:depth]),
    )


def _anchored_header(node: Node, checkpoint: AnchoredCheckpoint) -> BlockHeader | None:
    header = node.chain.header_at(checkpoint.height)
    if header is None or header.hash != checkpoint.block_hash:
        return None
    return header


def proof_bundle(node: Node, root: bytes) -> bytes | None:
    """The anchored bundle when an anchor covers the root's block, else the pending one."""
    index = node.log.index_of(root)
    tip = node.chain.tip_header
    if index is None or tip is None or index >= tip.log_size:
        return None
    store = anchor_store_of(node)
    height = node.chain.height_of_log_index(index)
    checkpoint = store.checkpoint_covering(height) if store is not None and height is not None else None
    header = _anchored_header(node, checkpoint) if checkpoint is not None else None
    if checkpoint is not None and header is not None and store is not None:
        finality = node.chain.finalization_at(header.height)
        if finality is not None:
            return Bundle(
                root=root,
                index=index,
                path=tuple(node.log.inclusion_proof(index, header.log_size)),
                header=header,
                finality=finality,
                bitcoin=bitcoin_part(node, checkpoint, store),
            ).encode()
    finality = node.chain.finalization_at(tip.height)
    if finality is None:
        return None
    path = tuple(node.log.inclusion_proof(index, tip.log_size))
    return Bundle(root=root, index=index, path=path, header=tip, finality=finality).encode()


def certified_block(node: Node, height: int) -> bytes | None:
    """The finalized header at ``height`` with its finalization proof (CBOR)."""
    if height < 1:
        return None
    header = node.chain.header_at(height)
    finality = node.chain.finalization_at(height)
    if header is None or finality is None:
        return None
    return CertifiedBlock(header=header, finality=finality).encode()


def _block_of_size(node: Node, size: int) -> CertifiedBlock | None:
    """The first finalized block whose log has exactly ``size`` entries (a certified log state)."""
    if size < 1:
        return None
    height = node.chain.height_of_log_index(size - 1)
    if height is None:
        return None
    header = node.chain.header_at(height)
    finality = node.chain.finalization_at(height)
    if header is None or finality is None or header.log_size != size:
        return None
    return CertifiedBlock(header=header, finality=finality)


def consistency_proof(node: Node, size1: int, size2: int) -> bytes | None:
    """RFC 9162 consistency between two certified log states, both ends with their certificates.

    Sizes must be log sizes of finalized blocks (block boundaries), 1 <= size1 <= size2:
    only those log states carry the validators' signatures.
    """
    if not 1 <= size1 <= size2:
        return None
    old = _block_of_size(node, size1)
    new = _block_of_size(node, size2)
    if old is None or new is None:
        return None
    path = tuple(node.log.consistency_proof(size1, size2)) if size1 < size2 else ()
    return ConsistencyRecord(old=old, new=new, path=path).encode()


def anchor_record(node: Node, height: int) -> bytes | None:
    """The confirmed anchor of the lowest anchored height >= ``height``, with its SPV material."""
    store = anchor_store_of(node)
    if store is None or height < 1:
        return None
    checkpoint = store.checkpoint_covering(height)
    if checkpoint is None or _anchored_header(node, checkpoint) is None:
        return None
    return AnchorRecord(
        height=checkpoint.height,
        block_hash=checkpoint.block_hash,
        bitcoin=bitcoin_part(node, checkpoint, store),
        btc_height=checkpoint.btc_height,
    ).encode()


def checkpoint_note(node: Node, key: SigningKey | None = None) -> str | None:
    """The latest certified log state as a C2SP checkpoint note signed by this node's validator key.

    ``key`` defaults to the one in the node's key file (proof/note.py says why the
    serving validator signs, and what that means for a note's reader).
    """
    tip = node.chain.tip_header
    if tip is None:
        return None
    if key is None:
        key = read_key_file(node.config.resolve(node.config.node.key_file))
    name = note.origin(node.genesis.hash)
    text = note.checkpoint_text(name, tip.log_size, tip.log_root)
    return note.signed_note(text, [note.signature_line(name, key.public_key, text, key.sign)])


class NodeProofs:
    """What the API's proof routes call (node.api.ProofSource), bound to one node.

    The note is signed once per finalized tip (ML-DSA signing costs about 1 ms) with the
    validator key read from the node's key file on first use.
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self._key: SigningKey | None = None
        self._note: tuple[bytes, str] | None = None

    def certified_block(self, height: int) -> bytes | None:
        return certified_block(self.node, height)

    def consistency(self, size1: int, size2: int | None) -> bytes | None:
        tip = self.node.chain.tip_header
        if size2 is None:
            if tip is None:
                return None
            size2 = tip.log_size
        return consistency_proof(self.node, size1, size2)

    def anchor_record(self, height: int) -> bytes | None:
        return anchor_record(self.node, height)

    def checkpoint_note(self) -> str | None:
        tip = self.node.chain.tip_header
        if tip is None:
            return None
        if self._note is not None and self._note[0] == tip.hash:
            return self._note[1]
        if self._key is None:
            config = self.node.config
            self._key = read_key_file(config.resolve(config.node.key_file))
        text = checkpoint_note(self.node, self._key)
        if text is not None:
            self._note = (tip.hash, text)
        return text
