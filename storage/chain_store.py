"""Finalized blocks, their finalization proofs, consensus safety state and evidence.

A block's body is not stored twice: the roots of the block at height h are the log
entries ``[parent.log_size, header.log_size)``, already kept by the Merkle log. A
finalized block is therefore its header, its finalization proof, and the log append,
written together in one atomic batch by :meth:`ChainStore.stage_finalized` plus the
log's own staged append.
"""

from __future__ import annotations

from proof.chain import BlockHeader, FinalizationProof
from storage import keys
from storage.db import BatchWriter, Store
from storage.errors import StoreError

_TIP = keys.CHAIN_META + b"tip"
_SAFETY = keys.CONSENSUS_SAFETY + b"state"
EVIDENCE_RECORDS_MAX = 10_000


class ChainStore:
    def __init__(self, store: Store) -> None:
        self._store = store
        raw = store.get(_TIP)
        self._tip_height = 0 if raw is None else keys.U64.unpack(raw)[0]
        self._tip_header = self.header_at(self._tip_height) if self._tip_height else None
        self._evidence_count = sum(1 for _ in store.iterate(keys.EVIDENCE))

    @property
    def tip_height(self) -> int:
        return self._tip_height

    @property
    def tip_header(self) -> BlockHeader | None:
        return self._tip_header

    def stage_finalized(
        self, batch: BatchWriter, header: BlockHeader, proof: FinalizationProof, *, after: int | None = None
    ) -> None:
        """Write a finalized block's records into the caller's batch (call :meth:`commit_tip` after).

        ``after``: the height this block follows when several are staged in one batch
        (default: the stored tip)."""
        follows = self._tip_height if after is None else after
        if header.height != follows + 1:
            raise StoreError(f"finalized height {header.height} does not follow height {follows}")
        height = keys.u64(header.height)
        batch.put(keys.BLOCK_BY_HEIGHT + height, header.encode())
        batch.put(keys.BLOCK_BY_HASH + header.hash, height)
        batch.put(keys.CERTIFICATE + height, proof.encode())
        batch.put(_TIP, height)

    def commit_tip(self, header: BlockHeader) -> None:
        """Advance the in-memory tip after the batch holding ``header`` was written."""
        self._tip_height = header.height
        self._tip_header = header

    # Reads answer up to the committed tip only. A node writes a finalization batch in a
    # worker thread and goes on serving meanwhile: the batch's records are in the store
    # before commit_tip (and the log's commit) move past them, and a block read then would
    # name log entries the log does not hold yet (MerkleLog.index_of does the same).

    def header_at(self, height: int) -> BlockHeader | None:
        if height > self._tip_height:
            return None
        raw = self._store.get(keys.BLOCK_BY_HEIGHT + keys.u64(height))
        return None if raw is None else BlockHeader.decode(raw)

    def finalization_at(self, height: int) -> FinalizationProof | None:
        if height > self._tip_height:
            return None
        raw = self._store.get(keys.CERTIFICATE + keys.u64(height))
        return None if raw is None else FinalizationProof.decode(raw)

    def height_of(self, block_hash: bytes) -> int | None:
        raw = self._store.get(keys.BLOCK_BY_HASH + block_hash)
        height = None if raw is None else keys.U64.unpack(raw)[0]
        return height if height is not None and height <= self._tip_height else None

    def log_range(self, height: int) -> tuple[int, int] | None:
        """The log indices ``[start, end)`` of the roots of the block at ``height``."""
        header = self.header_at(height)
        if header is None:
            return None
        parent = self.header_at(height - 1) if height > 1 else None
        return (parent.log_size if parent else 0), header.log_size

    def height_of_log_index(self, index: int) -> int | None:
        """The height of the finalized block that carried log entry ``index`` (binary search)."""
        if self._tip_header is None or index >= self._tip_header.log_size:
            return None
        low, high = 1, self._tip_height
        while low < high:
            middle = (low + high) // 2
            header = self.header_at(middle)
            assert header is not None, f"finalized header {middle} missing below tip {self._tip_height}"
            if header.log_size > index:
                high = middle
            else:
                low = middle + 1
        return low

    def keep_unfinalized(self, block_hash: bytes, encoded_block: bytes) -> None:
        """Durably keep a block this validator voted on or proposed, until it is finalized.

        A notarized block whose honest voters all crashed would otherwise be gone, and
        the chain could stall on it forever (Simplex needs the notarized block to extend).
        """
        with self._store.batch(sync=True) as batch:
            batch.put(keys.UNFINALIZED_BLOCK + block_hash, encoded_block)

    def unfinalized(self) -> list[bytes]:
        return [value for _key, value in self._store.iterate(keys.UNFINALIZED_BLOCK)]

    def drop_unfinalized(self, batch: BatchWriter, block_hashes: list[bytes]) -> None:
        for block_hash in block_hashes:
            batch.delete(keys.UNFINALIZED_BLOCK + block_hash)

    def load_safety(self) -> bytes | None:
        return self._store.get(_SAFETY)

    def save_safety(self, encoded: bytes) -> None:
        """Durable before any vote it protects leaves the node (synced write)."""
        with self._store.batch(sync=True) as batch:
            batch.put(_SAFETY, encoded)

    def add_evidence(self, encoded: bytes) -> None:
        """Keep an equivocation record; past the bound, later ones are dropped (the first suffice)."""
        if self._evidence_count >= EVIDENCE_RECORDS_MAX:
            return
        with self._store.batch(sync=True) as batch:
            batch.put(keys.EVIDENCE + keys.u64(self._evidence_count), encoded)
        self._evidence_count += 1

    def evidence(self) -> list[bytes]:
        return [value for _key, value in self._store.iterate(keys.EVIDENCE)]

    def evidence_page(self, start: int, count_max: int) -> list[bytes]:
        """Evidence records ``start, start+1, ...``, at most ``count_max``: the API serves
        them a page at a time, since all of them can be 10,000 records of about 7 KB."""
        out = []
        for _key, value in self._store.scan(keys.EVIDENCE + keys.u64(start), keys.EVIDENCE + b"\xff" * 9):
            out.append(value)
            if len(out) >= count_max:
                break
        return out
