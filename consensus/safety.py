"""The state a validator persists so that, restarted, it never casts a conflicting vote.

Simplex is safe as long as no honest validator casts two different votes of one kind
in one view, and none casts both FINALIZE(v) and NULLIFY(v) (2f+1 of each would share
an honest validator). NOTARIZE(v) and NULLIFY(v) from one validator are allowed. So:

- ``view``: the current view. NOTARIZE votes are cast only in the current view; a
  FINALIZE vote for view v only on seeing v's notarization while in v, and only
  after the state recording entry into v + 1 (with v in ``finalize_votes``) has been
  persisted. So no NOTARIZE or FINALIZE vote is ever cast in a view below ``view``.
- ``notarize``: the block hash this validator voted to notarize in ``view``, if any.
- ``nullify``: whether it voted to nullify ``view``.
- ``finalize_votes``: the views below ``view`` in which it voted FINALIZE, complete
  for every view from ``finalize_votes_from`` on. A validator may still vote
  NULLIFY for an earlier view w (to fill a view whose certificate was lost, see the
  core) only if ``w >= finalize_votes_from`` and w is not listed.
- ``entry``: the certificate that moved this validator into ``view``, and ``lock``:
  the highest notarization above the finalized tip it knows. Certificates otherwise
  live in memory only; after a crash these two let the validator show its peers how
  it reached its view and which block the chain continues from, which a peer that
  missed them needs to advance (when every copy of a certificate is lost, no view can
  be re-voted and the chain would stall).

A restarted core built from this state re-enters ``view`` knowing what it already
signed, so it votes for no second block and never nullifies a view it finalized.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from proof import cbor
from proof.chain import CERTIFICATE_SIZE_MAX, UINT64_MAX, Certificate, ChainRecordError, VoteKind
from proof.errors import DecodeError
from proof.hashing import HASH_SIZE

FINALIZE_VOTES_KEPT_MAX = 256
"""Finalize-vote views remembered; older ones are forgotten (which only forbids more)."""
SAFETY_STATE_SIZE_MAX = 256 + 9 * FINALIZE_VOTES_KEPT_MAX + 2 * CERTIFICATE_SIZE_MAX


class SafetyStateError(ChainRecordError):
    """A safety state whose fields are out of range or inconsistent."""


def _check_view(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= UINT64_MAX:
        raise SafetyStateError(f"{what} must be an integer in 0..2**64-1, got {value!r}")


@dataclass(frozen=True)
class SafetyState:
    view: int = 0
    notarize: bytes | None = None
    nullify: bool = False
    finalize_votes: tuple[int, ...] = ()
    finalize_votes_from: int = 0
    entry: Certificate | None = None
    lock: Certificate | None = None

    def __post_init__(self) -> None:
        _check_view(self.view, "safety view")
        _check_view(self.finalize_votes_from, "safety finalize_votes_from")
        if self.notarize is not None and (not isinstance(self.notarize, bytes) or len(self.notarize) != HASH_SIZE):
            raise SafetyStateError(f"safety notarize must be a {HASH_SIZE}-byte block hash or None")
        if not isinstance(self.nullify, bool):
            raise SafetyStateError("safety nullify must be a bool")
        if not isinstance(self.finalize_votes, tuple) or len(self.finalize_votes) > FINALIZE_VOTES_KEPT_MAX:
            raise SafetyStateError(f"safety finalize_votes must be a tuple of at most {FINALIZE_VOTES_KEPT_MAX}")
        previous = self.finalize_votes_from - 1
        for view in self.finalize_votes:
            _check_view(view, "safety finalize vote view")
            if not previous < view < self.view:
                raise SafetyStateError(
                    "safety finalize_votes must increase strictly, from finalize_votes_from, below view"
                )
            previous = view
        if self.entry is not None and not isinstance(self.entry, Certificate):
            raise SafetyStateError("safety entry must be a Certificate or None")
        if self.lock is not None and (not isinstance(self.lock, Certificate) or self.lock.kind != VoteKind.NOTARIZE):
            raise SafetyStateError("safety lock must be a notarization Certificate or None")

    def may_nullify(self, view: int) -> bool:
        """Whether a NULLIFY vote for ``view`` can never contradict a FINALIZE vote of ours."""
        if view == self.view:
            return True
        return self.finalize_votes_from <= view < self.view and view not in self.finalize_votes

    def to_cbor(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "view": self.view,
            "nullify": self.nullify,
            "fin": list(self.finalize_votes),
            "fin_from": self.finalize_votes_from,
        }
        if self.notarize is not None:
            fields["notarize"] = self.notarize
        if self.entry is not None:
            fields["entry"] = self.entry.to_cbor()
        if self.lock is not None:
            fields["lock"] = self.lock.to_cbor()
        return fields

    def encode(self) -> bytes:
        """Canonical bytes, what the driver writes to disk."""
        return cbor.encode(self.to_cbor())

    @classmethod
    def decode(cls, data: bytes) -> SafetyState:
        fields = cbor.expect_map(
            cbor.decode(data, max_size=SAFETY_STATE_SIZE_MAX),
            "safety state",
            {"view", "nullify", "fin", "fin_from"},
            {"notarize", "entry", "lock"},
        )
        notarize = (
            cbor.expect_bytes(fields["notarize"], "safety notarize", size=HASH_SIZE) if "notarize" in fields else None
        )
        votes = cbor.expect_list(fields["fin"], "safety fin", max_items=FINALIZE_VOTES_KEPT_MAX)
        try:
            entry = Certificate.from_cbor(fields["entry"]) if "entry" in fields else None
            lock = Certificate.from_cbor(fields["lock"]) if "lock" in fields else None
            return cls(
                view=cbor.expect_uint(fields["view"], "safety view"),
                notarize=notarize,
                nullify=cbor.expect_bool(fields["nullify"], "safety nullify"),
                finalize_votes=tuple(cbor.expect_uint(view, "safety fin view") for view in votes),
                finalize_votes_from=cbor.expect_uint(fields["fin_from"], "safety fin_from"),
                entry=entry,
                lock=lock,
            )
        except SafetyStateError as error:
            raise DecodeError(f"safety state: {error}") from None

    def enter(
        self,
        view: int,
        *,
        finalized_vote: bool = False,
        entry: Certificate | None = None,
        lock: Certificate | None = None,
    ) -> SafetyState:
        """The state on entering a higher view; ``finalized_vote``: we vote FINALIZE(self.view) on leaving it."""
        if view <= self.view:
            raise SafetyStateError(f"views only move forward: {view} is not above {self.view}")
        votes = self.finalize_votes + ((self.view,) if finalized_vote else ())
        votes_from = self.finalize_votes_from
        if len(votes) > FINALIZE_VOTES_KEPT_MAX:
            # Trim before building: the constructor refuses an over-long record, and the
            # persisted state must never be one a restart cannot load.
            votes_from = votes[-FINALIZE_VOTES_KEPT_MAX]
            votes = votes[-FINALIZE_VOTES_KEPT_MAX:]
        return SafetyState(view=view, finalize_votes=votes, finalize_votes_from=votes_from, entry=entry, lock=lock)

    def with_notarize(self, block_hash: bytes) -> SafetyState:
        if self.notarize is not None or self.nullify:
            raise SafetyStateError(f"view {self.view} already has a notarize or nullify vote")
        return dataclasses.replace(self, notarize=block_hash)

    def with_nullify(self) -> SafetyState:
        return dataclasses.replace(self, nullify=True)

    def forget_below(self, view: int) -> SafetyState:
        """Drop the finalize record below ``view`` (finalized views are never voted in again)."""
        if view <= self.finalize_votes_from:
            return self
        kept = tuple(v for v in self.finalize_votes if v >= view)
        return dataclasses.replace(self, finalize_votes=kept, finalize_votes_from=min(view, self.view))
