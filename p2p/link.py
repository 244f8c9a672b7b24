"""One authenticated, encrypted link over any trio stream: the handshake driver and framed IO.

This is the thin IO layer around the sans-IO :mod:`p2p.handshake` and :mod:`p2p.frames`.
It works on any ``trio.abc.Stream`` (a TCP socket in production, a memory stream or a
:class:`p2p.faults.FaultyStream` in tests). Every stream failure surfaces as one of the
transport's own exceptions so callers need to handle only :class:`LinkClosed`,
:class:`FrameError` and :class:`HandshakeError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import trio

from p2p.errors import HandshakeError, HandshakeFailure, LinkClosed
from p2p.frames import Channel, Frame, FrameOpener, FrameSealer
from p2p.handshake import HANDSHAKE_RECORD_BYTES_MAX, RECORD_LENGTH_SIZE, Handshake, HandshakeResult, LocalIdentity

RECEIVE_CHUNK_BYTES = 256 * 1024

_STREAM_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class Link:
    """An authenticated peer: frames in, frames out. One sender task and one receiver task at most."""

    def __init__(self, stream: trio.abc.Stream, result: HandshakeResult, trailing: bytes = b"") -> None:
        self.stream = stream
        self.peer_index = result.peer_index
        self.initiator = result.initiator
        self._sealer = FrameSealer(result.send_key)
        self._opener = FrameOpener(result.receive_key)
        self._opener.receive_data(trailing)

    async def send(self, channel: Channel, payload: bytes) -> int:
        """Send one frame; returns its size on the wire."""
        wire = self._sealer.seal(channel, payload)
        try:
            await self.stream.send_all(wire)
        except _STREAM_ERRORS as exc:
            raise LinkClosed(f"send to validator {self.peer_index} failed: {exc!r}") from None
        return len(wire)

    async def receive(self) -> Frame:
        """The next frame from the peer. Raises FrameError on anything not authentic, LinkClosed at EOF."""
        while True:
            frame = self._opener.next_frame()
            if frame is not None:
                return frame
            try:
                data = await self.stream.receive_some(RECEIVE_CHUNK_BYTES)
            except _STREAM_ERRORS as exc:
                raise LinkClosed(f"receive from validator {self.peer_index} failed: {exc!r}") from None
            if not data:
                where = "inside a frame" if self._opener.buffered_bytes else "at a frame boundary"
                raise LinkClosed(f"validator {self.peer_index} closed the connection {where}")
            self._opener.receive_data(data)

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)


HANDSHAKE_READ_BYTES = RECORD_LENGTH_SIZE + HANDSHAKE_RECORD_BYTES_MAX
"""Reads during the handshake take at most one largest record, so a pending handshake buffers little."""


async def run_handshake(stream: trio.abc.Stream, handshake: Handshake, timeout_s: float,
                        idle_timeout_s: float | None = None) -> Link:
    """Drive ``handshake`` over ``stream`` to completion within ``timeout_s`` seconds.

    With ``idle_timeout_s``, a peer that lets that long pass without sending a byte is
    refused at once (``idle``) instead of holding the connection for the whole ``timeout_s``.
    """
    idle_s = math.inf if idle_timeout_s is None else idle_timeout_s
    with trio.move_on_after(timeout_s) as scope:
        try:
            outgoing = handshake.data_to_send()
            if outgoing:
                await stream.send_all(outgoing)
            while not handshake.complete:
                with trio.move_on_after(idle_s) as idle:
                    data = await stream.receive_some(HANDSHAKE_READ_BYTES)
                if idle.cancelled_caught:
                    raise HandshakeError(HandshakeFailure.IDLE,
                                         f"peer sent nothing for {idle_s:g} s during the handshake")
                if not data:
                    raise HandshakeError(HandshakeFailure.CLOSED, "peer closed the connection during the handshake")
                handshake.receive_data(data)
                outgoing = handshake.data_to_send()
                if outgoing:
                    await stream.send_all(outgoing)
        except _STREAM_ERRORS as exc:
            raise HandshakeError(HandshakeFailure.CLOSED, f"connection failed during the handshake ({exc!r})") from None
    if scope.cancelled_caught:
        raise HandshakeError(HandshakeFailure.TIMEOUT, f"handshake not complete after {timeout_s:g} s")
    return Link(stream, handshake.result, handshake.trailing_data())


async def establish(stream: trio.abc.Stream, identity: LocalIdentity, directory: Mapping[int, bytes], *,
                    peer_index: int | None, timeout_s: float, idle_timeout_s: float | None = None) -> Link:
    """Authenticate ``stream``: as initiator when we dialed ``peer_index``, as responder when it is None."""
    if peer_index is None:
        handshake = Handshake.responder(identity, directory)
    else:
        handshake = Handshake.initiator(identity, directory, peer_index)
    return await run_handshake(stream, handshake, timeout_s, idle_timeout_s)
