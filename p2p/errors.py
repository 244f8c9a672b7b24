"""Exceptions of the p2p transport.

A refused handshake carries a machine-readable :class:`HandshakeFailure` reason so the
peer table and metrics can count refusals by kind, and a message an operator can act on
("peer claims validator 7, which the genesis does not list").
"""

from __future__ import annotations

import enum

from proof.errors import PantheonError


class HandshakeFailure(enum.Enum):
    """Why a handshake was refused. The value is what logs and metrics show.

    ``rate_limited``, ``source_busy``, ``slots_full`` and ``evicted`` are the listener's
    pre-authentication budget (:mod:`p2p.admission`), not the peer's protocol errors: its
    source used up its proof verifications, held too many pending handshakes, found every
    slot taken by sources holding at least as many, or gave up its slot to a less
    represented source. ``idle`` is a connection that sent nothing for the pre-auth idle timeout.
    """

    MALFORMED = "malformed"
    OVERSIZE = "oversize"
    BAD_MAGIC = "bad_magic"
    VERSION_MISMATCH = "version_mismatch"
    CHAIN_ID_MISMATCH = "chain_id_mismatch"
    UNKNOWN_VALIDATOR = "unknown_validator"
    KEY_MISMATCH = "key_mismatch"
    SELF_CONNECTION = "self_connection"
    UNEXPECTED_PEER = "unexpected_peer"
    BAD_KEY_SHARE = "bad_key_share"
    BAD_SIGNATURE = "bad_signature"
    BAD_CONFIRMATION = "bad_confirmation"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    IDLE = "idle"
    CLOSED = "closed"
    SOURCE_BUSY = "source_busy"
    SLOTS_FULL = "slots_full"
    EVICTED = "evicted"


class P2PError(PantheonError):
    """Base class of transport errors."""


class HandshakeError(P2PError):
    """The peer could not be authenticated; the connection must be closed."""

    def __init__(self, reason: HandshakeFailure, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class FrameError(P2PError):
    """A frame failed authentication or decoding; the link can no longer be trusted."""


class OversizeFrameError(FrameError):
    """A frame longer than the protocol allows, refused before its body is read."""


class LinkClosed(P2PError):
    """The remote end closed the stream (or it was cut) at a frame boundary or inside one."""


class P2PConfigError(P2PError, ValueError):
    """The transport was configured inconsistently with the genesis (fix the config, not the peer)."""
