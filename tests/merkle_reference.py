"""RFC 9162 Merkle tree definitions, written out literally, for tests only.

Everything here is computed recursively over the full list of leaf *inputs*, the
way RFC 9162 section 2.1 states it, with no cleverness: it is slow and obviously
right, so that the fast code in ``proof.merkle`` and ``proof.compact`` can be
checked against it. The two verification algorithms are transcribed step by step
from sections 2.1.3.2 and 2.1.4.2 (numbered comments follow the RFC's steps); they
are a second, independent verifier that the production one must agree with.

Hashing uses plain ``hashlib`` rather than ``proof.merkle`` so that a bug in the
production hash functions cannot hide in both.
"""

from __future__ import annotations

import hashlib


def _hash(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf(entry: bytes) -> bytes:
    """MTH({d(0)}) = HASH(0x00 || d(0))."""
    return _hash(b"\x00" + entry)


def _split(n: int) -> int:
    """k: the largest power of two smaller than n (requires n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(entries: list[bytes]) -> bytes:
    """RFC 9162 2.1.1: MTH(D[n])."""
    n = len(entries)
    if n == 0:
        return _hash(b"")
    if n == 1:
        return leaf(entries[0])
    k = _split(n)
    return _hash(b"\x01" + mth(entries[:k]) + mth(entries[k:]))


def path(m: int, entries: list[bytes]) -> list[bytes]:
    """RFC 9162 2.1.3.1: PATH(m, D[n]), the inclusion proof of entry m (0 <= m < n)."""
    n = len(entries)
    if not 0 <= m < n:
        raise ValueError(f"PATH({m}, D[{n}]) is undefined")
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return path(m, entries[:k]) + [mth(entries[k:])]
    return path(m - k, entries[k:]) + [mth(entries[:k])]


def proof(m: int, entries: list[bytes]) -> list[bytes]:
    """RFC 9162 2.1.4.1: PROOF(m, D[n]) = SUBPROOF(m, D[n], true), for 0 < m <= n."""
    n = len(entries)
    if not 0 < m <= n:
        raise ValueError(f"PROOF({m}, D[{n}]) is undefined")
    return _subproof(m, entries, True)


def _subproof(m: int, entries: list[bytes], b: bool) -> list[bytes]:
    n = len(entries)
    if m == n:
        return [] if b else [mth(entries)]
    k = _split(n)
    if m <= k:
        return _subproof(m, entries[:k], b) + [mth(entries[k:])]
    return _subproof(m - k, entries[k:], False) + [mth(entries[:k])]


def rfc_verify_inclusion(
    leaf_index: int, tree_size: int, hash_: bytes, inclusion_path: list[bytes], root_hash: bytes
) -> bool:
    """RFC 9162 2.1.3.2, step by step."""
    # 1. Compare leaf_index from the inclusion_proof against tree_size.
    if leaf_index >= tree_size:
        return False
    # 2. Set fn to leaf_index and sn to tree_size - 1.
    fn, sn = leaf_index, tree_size - 1
    # 3. Set r to hash.
    r = hash_
    # 4. For each value p in the inclusion_path array:
    for p in inclusion_path:
        # a. If sn is 0, stop the iteration and fail the proof verification.
        if sn == 0:
            return False
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            # i. Set r to HASH(0x01 || p || r).
            r = _hash(b"\x01" + p + r)
            # ii. If LSB(fn) is not set, right-shift both fn and sn equally until
            #     either LSB(fn) is set or fn is 0.
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            # Otherwise: i. Set r to HASH(0x01 || r || p).
            r = _hash(b"\x01" + r + p)
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 5. Compare sn to 0. Compare r against the root_hash.
    return sn == 0 and r == root_hash


def rfc_verify_consistency(
    first: int,
    second: int,
    first_hash: bytes,
    second_hash: bytes,
    consistency_path: list[bytes],
) -> bool:
    """RFC 9162 2.1.4.2, step by step, for 0 < first < second (the RFC's domain)."""
    if not 0 < first < second:
        raise ValueError("RFC 9162 2.1.4.2 is defined for 0 < first < second")
    # 1. If consistency_path is an empty array, stop and fail the proof verification.
    if not consistency_path:
        return False
    consistency_path = list(consistency_path)
    # 2. If first is an exact power of 2, then prepend first_hash to the consistency_path array.
    if first & (first - 1) == 0:
        consistency_path = [first_hash] + consistency_path
    # 3. Set fn to first - 1 and sn to second - 1.
    fn, sn = first - 1, second - 1
    # 4. If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is not set.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. Set both fr and sr to the first value in the consistency_path array.
    fr = sr = consistency_path[0]
    # 6. For each subsequent value c in the consistency_path array:
    for c in consistency_path[1:]:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            return False
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            # i. Set fr to HASH(0x01 || c || fr).  ii. Set sr to HASH(0x01 || c || sr).
            fr = _hash(b"\x01" + c + fr)
            sr = _hash(b"\x01" + c + sr)
            # iii. If LSB(fn) is not set, then right-shift both fn and sn equally
            #      until either LSB(fn) is set or fn is 0.
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            # Otherwise: i. Set sr to HASH(0x01 || sr || c).
            sr = _hash(b"\x01" + sr + c)
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 7. Verify that fr == first_hash, sr == second_hash and sn is 0.
    return fr == first_hash and sr == second_hash and sn == 0


def path_sides(m: int, n: int) -> tuple[str, ...]:
    """Which side each node of PATH(m, D[n]) sits on, lowest first, from the same recursion.

    Two (index, size) pairs with equal sides hash a given path identically, so the
    path cannot tell them apart: that is the RFC's format, not a verifier bug.
    """
    if not 0 <= m < n:
        raise ValueError(f"PATH({m}, D[{n}]) is undefined")
    if n == 1:
        return ()
    k = _split(n)
    if m < k:
        return path_sides(m, k) + ("right",)
    return path_sides(m - k, n - k) + ("left",)


def proof_shape(m: int, n: int) -> tuple[str, ...]:
    """The role of each node of PROOF(m, D[n]), lowest first, from the SUBPROOF recursion.

    "seed": the old tree's last perfect subtree (absent when that is the old root
    itself); "right": a node only the new tree has; "left": a node both trees share.
    Equal shapes mean a given proof is hashed identically for both size pairs.
    """
    if not 0 < m <= n:
        raise ValueError(f"PROOF({m}, D[{n}]) is undefined")
    return _subproof_shape(m, n, True)


def _subproof_shape(m: int, n: int, b: bool) -> tuple[str, ...]:
    if m == n:
        return () if b else ("seed",)
    k = _split(n)
    if m <= k:
        return _subproof_shape(m, k, b) + ("right",)
    return _subproof_shape(m - k, n - k, False) + ("left",)
