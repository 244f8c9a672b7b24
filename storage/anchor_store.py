"""Anchors in the node's store (prefix keys.ANCHOR = 0x13): what the proof bundles cite.

Four record kinds, each under its own sub-prefix byte after 0x13::

    0x13 'c' height u64           AnchoredCheckpoint: a confirmed anchor of the finalized
                                  block at that Pantheon height, with its SPV material
    0x13 'f' height u64           the anchor recorded in the chain for that height (the
                                  latest AnchorRef a finalized block carried for it)
    0x13 'm' b"recorded"          (last anchored height recorded, count of recorded heights)
    0x13 'r' height u64           this validator's own anchor lifecycle record, encoded by
                                  anchor.state (opaque here: storage does not import anchor/)
    0x13 'h' btc height u32       80-byte Bitcoin header of the best chain, cached so that
                                  bundles can show confirmations without an RPC call

Recorded anchors are written in the finalized block's own batch (``stage_recorded``),
so "which checkpoint is due next" is a function of the finalized chain alone and every
validator computes the same answer. Checkpoints and cached headers are rebuilt from
bitcoind at any time (the anchoring task does it), so they are written without fsync.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from proof import cbor
from proof.chain import AnchorRef
from proof.errors import DecodeError
from proof.hashing import HASH_SIZE, sha256d
from storage import keys
from storage.db import BatchWriter, Store
from storage.errors import StoreError

BTC_HEADER_SIZE = 80
NETWORK_NAMES = frozenset({"main", "test", "testnet4", "signet", "regtest"})
NETWORK_NAME_SIZE_MAX = 16
RAW_TX_SIZE_MAX = 100_000
# A Bitcoin block has fewer than 2**17 transactions, so a branch has at most 17 hashes.
BRANCH_HASHES_MAX = 17
BTC_HEIGHT_MAX = 2**31 - 1
# headers_after never returns more than this, whatever the caller asks.
HEADERS_AFTER_MAX = 144
RECORDS_LISTED_MAX = 1000

_CHECKPOINT = keys.ANCHOR + b"c"
_RECORDED = keys.ANCHOR + b"f"
_META_RECORDED = keys.ANCHOR + b"m" + b"recorded"
_OWN = keys.ANCHOR + b"r"
_HEADER = keys.ANCHOR + b"h"
_U32 = struct.Struct(">I")


class AnchorRecordError(StoreError, ValueError):
    """An anchor record (checkpoint or cached header) that breaks its own size rules."""


@dataclass(frozen=True)
class AnchoredCheckpoint:
    """A confirmed Bitcoin anchor of one finalized Pantheon block, with its SPV material."""

    height: int
    block_hash: bytes
    network: str
    raw_tx: bytes
    tx_index: int
    branch: tuple[bytes, ...]
    header: bytes
    btc_height: int

    def __post_init__(self) -> None:
        if not isinstance(self.block_hash, bytes) or len(self.block_hash) != HASH_SIZE:
            raise AnchorRecordError("checkpoint block_hash must be 32 bytes")
        if self.network not in NETWORK_NAMES:
            raise AnchorRecordError(f"checkpoint network {self.network!r} is not one of {sorted(NETWORK_NAMES)}")
        if not isinstance(self.header, bytes) or len(self.header) != BTC_HEADER_SIZE:
            raise AnchorRecordError("checkpoint header must be 80 bytes")
        if len(self.branch) > BRANCH_HASHES_MAX or any(len(h) != HASH_SIZE for h in self.branch):
            raise AnchorRecordError(f"checkpoint branch must be at most {BRANCH_HASHES_MAX} hashes of 32 bytes")

    @property
    def btc_block_hash(self) -> bytes:
        """Internal byte order, like every hash here (proof.spv.hash_to_hex prints it)."""
        return sha256d(self.header)

    def encode(self) -> bytes:
        return cbor.encode(
            {
                "h": self.height,
                "blk": self.block_hash,
                "net": self.network,
                "tx": self.raw_tx,
                "txi": self.tx_index,
                "br": list(self.branch),
                "hdr": self.header,
                "bth": self.btc_height,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> AnchoredCheckpoint:
        fields = cbor.expect_map(
            cbor.decode(data, max_size=2 * RAW_TX_SIZE_MAX),
            "anchored checkpoint",
            {"h", "blk", "net", "tx", "txi", "br", "hdr", "bth"},
        )
        try:
            return cls(
                height=cbor.expect_uint(fields["h"], "checkpoint height"),
                block_hash=cbor.expect_bytes(fields["blk"], "checkpoint block hash", size=HASH_SIZE),
                network=cbor.expect_text(fields["net"], "checkpoint network", max_size=NETWORK_NAME_SIZE_MAX),
                raw_tx=cbor.expect_bytes(fields["tx"], "checkpoint raw tx", max_size=RAW_TX_SIZE_MAX),
                tx_index=cbor.expect_uint(fields["txi"], "checkpoint tx index", max_value=2**32 - 1),
                branch=tuple(
                    cbor.expect_bytes(h, "checkpoint branch hash", size=HASH_SIZE)
                    for h in cbor.expect_list(fields["br"], "checkpoint branch", max_items=BRANCH_HASHES_MAX)
                ),
                header=cbor.expect_bytes(fields["hdr"], "checkpoint header", size=BTC_HEADER_SIZE),
                btc_height=cbor.expect_uint(fields["bth"], "checkpoint btc height", max_value=BTC_HEIGHT_MAX),
            )
        except AnchorRecordError as exc:
            raise DecodeError(f"anchored checkpoint is inconsistent: {exc}") from exc


@dataclass(frozen=True)
class RecordedAnchor:
    """The AnchorRef a finalized block recorded for one anchored height, and where."""

    height: int
    ref: AnchorRef
    recorded_at: int

    def encode(self) -> bytes:
        return cbor.encode({"h": self.height, "ref": self.ref.to_cbor(), "at": self.recorded_at})

    @classmethod
    def decode(cls, data: bytes) -> RecordedAnchor:
        fields = cbor.expect_map(cbor.decode(data, max_size=4096), "recorded anchor", {"h", "ref", "at"})
        return cls(
            height=cbor.expect_uint(fields["h"], "recorded anchor height"),
            ref=AnchorRef.from_cbor(fields["ref"]),
            recorded_at=cbor.expect_uint(fields["at"], "recorded anchor block height"),
        )


class AnchorStore:
    def __init__(self, store: Store) -> None:
        self._store = store

    # ---- what the chain recorded (written with the finalized block) --------------

    def recorded_summary(self) -> tuple[int, int]:
        """(highest anchored height recorded in the chain, number of heights recorded); (0, 0) at first."""
        raw = self._store.get(_META_RECORDED)
        if raw is None:
            return 0, 0
        last, count = struct.unpack(">QQ", raw)
        return last, count

    def stage_recorded(self, batch: BatchWriter, refs: list[tuple[int, AnchorRef]], recorded_at: int) -> None:
        """Write the AnchorRefs of the finalized block at ``recorded_at`` into that block's
        batch; each comes with the height of the block it anchors. A later ref for a
        height replaces the earlier one (a re-recording after a Bitcoin reorg)."""
        self.stage_recorded_run(batch, [(refs, recorded_at)])

    def stage_recorded_run(self, batch: BatchWriter, blocks: list[tuple[list[tuple[int, AnchorRef]], int]]) -> None:
        """:meth:`stage_recorded` for consecutive finalized blocks written in one batch, as
        ``(refs, recorded_at)`` in height order. The summary counts every height once across
        the run: the batch is not in the store yet, so a block's records cannot be read back
        for the next (counting from the store made validators that applied two recording
        blocks at once undercount, and their anchor duty then differed from the others')."""
        last, count = self.recorded_summary()
        seen: set[int] = set()
        for refs, recorded_at in blocks:
            for height, ref in refs:
                if height not in seen and self._store.get(_RECORDED + keys.u64(height)) is None:
                    count += 1
                seen.add(height)
                last = max(last, height)
                batch.put(_RECORDED + keys.u64(height), RecordedAnchor(height, ref, recorded_at).encode())
        if seen:
            batch.put(_META_RECORDED, struct.pack(">QQ", last, count))

    def recorded(self, height: int) -> RecordedAnchor | None:
        raw = self._store.get(_RECORDED + keys.u64(height))
        return None if raw is None else RecordedAnchor.decode(raw)

    def recorded_from(self, height: int, count_max: int) -> list[RecordedAnchor]:
        """Recorded anchors of anchored heights >= ``height``, lowest first, at most ``count_max``."""
        out = []
        for _key, value in self._store.scan(_RECORDED + keys.u64(height), _RECORDED + b"\xff" * 9):
            out.append(RecordedAnchor.decode(value))
            if len(out) >= count_max:
                break
        return out

    # ---- checkpoints (confirmed, with SPV material) -------------------------------

    def put_checkpoint(self, checkpoint: AnchoredCheckpoint) -> None:
        with self._store.batch(sync=False) as batch:
            batch.put(_CHECKPOINT + keys.u64(checkpoint.height), checkpoint.encode())

    def delete_checkpoint(self, height: int) -> None:
        with self._store.batch(sync=False) as batch:
            batch.delete(_CHECKPOINT + keys.u64(height))

    def checkpoint_at(self, height: int) -> AnchoredCheckpoint | None:
        raw = self._store.get(_CHECKPOINT + keys.u64(height))
        return None if raw is None else AnchoredCheckpoint.decode(raw)

    def checkpoint_covering(self, height: int) -> AnchoredCheckpoint | None:
        """The confirmed anchor of the LOWEST anchored Pantheon height >= ``height``."""
        for _key, value in self._store.scan(_CHECKPOINT + keys.u64(height), _CHECKPOINT + b"\xff" * 9):
            return AnchoredCheckpoint.decode(value)
        return None

    def checkpoint_count(self) -> int:
        return sum(1 for _ in self._store.iterate(_CHECKPOINT))

    def checkpoints(self, count_max: int = RECORDS_LISTED_MAX) -> list[AnchoredCheckpoint]:
        out = []
        for _key, value in self._store.iterate(_CHECKPOINT):
            out.append(AnchoredCheckpoint.decode(value))
            if len(out) >= count_max:
                break
        return out

    # ---- cached Bitcoin headers ---------------------------------------------------

    def put_headers(self, headers: dict[int, bytes]) -> None:
        """Cache best-chain headers by Bitcoin height (a reorg overwrites them)."""
        with self._store.batch(sync=False) as batch:
            for btc_height, header in headers.items():
                if len(header) != BTC_HEADER_SIZE or not 0 <= btc_height <= BTC_HEIGHT_MAX:
                    raise AnchorRecordError(f"header at {btc_height} must be {BTC_HEADER_SIZE} bytes")
                batch.put(_HEADER + _U32.pack(btc_height), header)

    def header_at(self, btc_height: int) -> bytes | None:
        if not 0 <= btc_height <= BTC_HEIGHT_MAX:
            return None
        return self._store.get(_HEADER + _U32.pack(btc_height))

    def headers_after(self, checkpoint: AnchoredCheckpoint, count_max: int) -> list[bytes]:
        """Up to ``count_max`` cached headers following ``checkpoint.header``, each linked
        to the one before by its prev-hash field (a stale cached header ends the list)."""
        out: list[bytes] = []
        previous_hash = sha256d(checkpoint.header)
        for offset in range(1, min(count_max, HEADERS_AFTER_MAX) + 1):
            header = self.header_at(checkpoint.btc_height + offset)
            if header is None or header[4:36] != previous_hash:
                break
            out.append(header)
            previous_hash = sha256d(header)
        return out

    def confirmations(self, checkpoint: AnchoredCheckpoint) -> int:
        return 1 + len(self.headers_after(checkpoint, HEADERS_AFTER_MAX))

    # ---- this validator's own anchor transactions ----------------------------------

    def put_own(self, height: int, encoded_record: bytes) -> None:
        """Synced: a broadcast transaction must be tracked after a crash, not built again."""
        with self._store.batch(sync=True) as batch:
            batch.put(_OWN + keys.u64(height), encoded_record)

    def own(self, height: int) -> bytes | None:
        return self._store.get(_OWN + keys.u64(height))

    def own_records(self, count_max: int = RECORDS_LISTED_MAX) -> list[tuple[int, bytes]]:
        out = []
        for key, value in self._store.iterate(_OWN):
            out.append((keys.U64.unpack(key[len(_OWN) :])[0], value))
            if len(out) >= count_max:
                break
        return out


def checkpoint_json(checkpoint: AnchoredCheckpoint, confirmations: int) -> dict[str, Any]:
    """The API's view of a checkpoint; hashes in Bitcoin's display order."""
    return {
        "height": checkpoint.height,
        "block_hash": checkpoint.block_hash.hex(),
        "network": checkpoint.network,
        "btc_block_hash": checkpoint.btc_block_hash[::-1].hex(),
        "btc_height": checkpoint.btc_height,
        "confirmations": confirmations,
    }
