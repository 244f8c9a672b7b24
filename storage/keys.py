"""The LevelDB key layout: every record kind Pantheon stores, in one table.

One store holds everything a node persists. Each record kind owns one prefix byte,
so kinds never collide and a prefix scan visits exactly one kind. Integers in keys
are unsigned big-endian of fixed width, so LevelDB's bytewise key order equals
numeric order (a scan by height or index runs in order, and sequential appends
land next to each other, which keeps LevelDB's key prefix compression effective).

======  ==================  ======================================  ===========================
prefix  kind                key after the prefix                    value
======  ==================  ======================================  ===========================
0x01    (retired)           format 1 kept one log entry a record    refused at open (format 2)
0x02    log node            level: u8 (>= 4), index: u64            32-byte hash of the perfect
                                                                    subtree of 2**level leaves
                                                                    starting at index << level
0x03    log index           the audit root's first 8 bytes          indices: u64 each, of the logged
                                                                    roots that start with them (one,
                                                                    unless two roots share 8 bytes)
0x04    log metadata        name: ASCII (``size``,                  ``size``: u64 leaf count;
                            ``format``)                             ``format``: u8, 2
0x05    log tile            tile: u64                               the audit roots of entries
                                                                    16 * tile .. 16 * tile + 15
                                                                    (fewer in the last tile)
0x10    block by height     height: u64                             finalized block header
0x11    block by hash       block hash: 32 bytes                    height: u64
0x12    certificate         height: u64                             finalization proof
0x13    anchor              kind byte + key (anchor_store.py)       checkpoints, recorded anchors,
                                                                    own lifecycle records, headers
0x14    chain metadata      name: ASCII (e.g. ``tip``)              chain singletons (``tip``: u64)
0x15    unfinalized block   block hash: 32 bytes                    the block (header + roots)
                                                                    a validator voted on or
                                                                    proposed, until finalized
0x20    consensus safety    ``state``                               SafetyState (CBOR), synced
0x30    mempool (per root)  audit root: 32 bytes                    received at: u64 ms, owner;
                                                                    format 3 and before: rewritten
                                                                    as arrivals at start
0x31    evidence            sequence: u64                           equivocation evidence (CBOR)
0x32    mempool arrival     sequence: u64                           received at: u64 ms, owner
                                                                    length: u8, owner (UTF-8),
                                                                    the roots of one submission
======  ==================  ======================================  ===========================

Log entries are stored 16 to a record (a *tile*, 0x05), and node hashes only for
subtrees of 16 leaves or more (level >= 4): a subtree below that lies inside one tile
and is hashed from it on read (at most 31 SHA-256). A record per entry and per node
cost LevelDB about 6 us of CPU per root in writes and compaction at 3M roots. One
record a root remains, the root -> index map, whose keys are random: it is keyed by
the root's first 8 bytes (a lookup compares the whole root with the entry it names),
which saves LevelDB another 0.9 us per root at 3M roots and 30 bytes of disk.
Every prefix is claimed here, so a new record kind takes its byte from this
table and never invents its own.
"""

from __future__ import annotations

import struct

U64 = struct.Struct(">Q")
U64_MAX = 2**64 - 1
# A level byte bounds the tree to 2**255 leaves; u64 indices bound it far below that.
LEVEL_MAX = 63

LOG_ENTRY_RETIRED = b"\x01"
LOG_NODE = b"\x02"
LOG_INDEX = b"\x03"
LOG_META = b"\x04"
LOG_TILE = b"\x05"
BLOCK_BY_HEIGHT = b"\x10"
BLOCK_BY_HASH = b"\x11"
CERTIFICATE = b"\x12"
ANCHOR = b"\x13"
CHAIN_META = b"\x14"
UNFINALIZED_BLOCK = b"\x15"
CONSENSUS_SAFETY = b"\x20"
MEMPOOL = b"\x30"
EVIDENCE = b"\x31"
MEMPOOL_ARRIVAL = b"\x32"

ALL_PREFIXES = (
    LOG_ENTRY_RETIRED,
    LOG_NODE,
    LOG_INDEX,
    LOG_META,
    LOG_TILE,
    BLOCK_BY_HEIGHT,
    BLOCK_BY_HASH,
    CERTIFICATE,
    ANCHOR,
    CHAIN_META,
    UNFINALIZED_BLOCK,
    CONSENSUS_SAFETY,
    MEMPOOL,
    EVIDENCE,
    MEMPOOL_ARRIVAL,
)

LOG_SIZE = LOG_META + b"size"
LOG_FORMAT = LOG_META + b"format"


def u64(value: int) -> bytes:
    """Fixed-width big-endian encoding: key order equals numeric order."""
    return U64.pack(value)


def log_tile(tile: int) -> bytes:
    return LOG_TILE + U64.pack(tile)


def log_node(level: int, index: int) -> bytes:
    if not 1 <= level <= LEVEL_MAX:
        raise ValueError(f"log node level {level} outside 1..{LEVEL_MAX}")
    return LOG_NODE + bytes((level,)) + U64.pack(index)


INDEX_KEY_BYTES = 8
"""Bytes of an audit root that key it in the root index (storage.root_index; format 2's
LOG_INDEX records). Two roots sharing them (2**32 work to find a pair, 2**64 to match a
given root) are both listed under the key."""


def log_index(audit_root: bytes) -> bytes:
    """The key of a format 2 index record (deleted when such a store is upgraded)."""
    return LOG_INDEX + audit_root[:INDEX_KEY_BYTES]
