"""Encrypted, authenticated, ordered frames: the link after the handshake, sans-IO.

Wire format of one frame::

    u32 length L (big endian) || ChaCha20-Poly1305(key, nonce, plaintext, aad = the 4 length bytes)
    plaintext = u8 channel || payload
    nonce     = 4 zero bytes || u64 frame counter (big endian)

Each direction has its own key (from the handshake) and its own counter starting at 0 and
incremented per frame, so a nonce is never reused under a key. The receiver does not read a
counter off the wire: it *expects* the next one, so a replayed, reordered, dropped or
altered frame fails authentication and the link must be dropped (consensus messages are
re-derivable; a link we cannot trust is not). The length is checked against
:data:`MAX_FRAME_BYTES` as soon as its 4 bytes arrive, before any of the body is buffered.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from proof.wire import MESSAGE_BYTES_MAX

from p2p.errors import FrameError, OversizeFrameError

MAX_FRAME_BYTES = MESSAGE_BYTES_MAX
"""Largest payload one frame carries (a full block of 10,000 roots is about 320 KB)."""

LENGTH_SIZE = 4
CHANNEL_SIZE = 1
AEAD_TAG_SIZE = 16
FRAME_OVERHEAD_BYTES = LENGTH_SIZE + CHANNEL_SIZE + AEAD_TAG_SIZE
CIPHERTEXT_BYTES_MIN = CHANNEL_SIZE + AEAD_TAG_SIZE
CIPHERTEXT_BYTES_MAX = MAX_FRAME_BYTES + CHANNEL_SIZE + AEAD_TAG_SIZE
COUNTER_MAX = 2**64 - 1

_U32 = struct.Struct(">I")
_NONCE = struct.Struct(">4xQ")


class Channel(enum.IntEnum):
    """What a frame is for. The transport only routes and prioritises by it (lower = sent first)."""

    KEEPALIVE = 0
    CONSENSUS = 1
    GOSSIP = 2
    CATCHUP = 3


_CHANNELS = frozenset(int(c) for c in Channel)


@dataclass(frozen=True)
class Frame:
    channel: Channel
    payload: bytes


class FrameSealer:
    """The sending half of a link: turns payloads into wire bytes, one counter per frame."""

    def __init__(self, key: bytes) -> None:
        self._aead = ChaCha20Poly1305(key)
        self._counter = 0

    def seal(self, channel: Channel, payload: bytes) -> bytes:
        if len(payload) > MAX_FRAME_BYTES:
            raise OversizeFrameError(f"payload of {len(payload)} bytes exceeds MAX_FRAME_BYTES={MAX_FRAME_BYTES}")
        if self._counter > COUNTER_MAX:
            raise FrameError("frame counter exhausted; the link must be re-established")
        header = _U32.pack(CHANNEL_SIZE + len(payload) + AEAD_TAG_SIZE)
        ciphertext = self._aead.encrypt(_NONCE.pack(self._counter), bytes((channel,)) + payload, header)
        self._counter += 1
        return header + ciphertext


class FrameOpener:
    """The receiving half of a link: feed it bytes, take frames out, in order."""

    def __init__(self, key: bytes) -> None:
        self._aead = ChaCha20Poly1305(key)
        self._counter = 0
        self._buffer = bytearray()
        self._offset = 0
        self._failed = False

    def receive_data(self, data: bytes) -> None:
        if self._offset and self._offset * 2 >= len(self._buffer):
            del self._buffer[: self._offset]
            self._offset = 0
        self._buffer += data

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer) - self._offset

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None until more bytes arrive. Raises FrameError for ever after a failure."""
        if self._failed:
            raise FrameError("link already failed authentication")
        if self.buffered_bytes < LENGTH_SIZE:
            return None
        (length,) = _U32.unpack_from(self._buffer, self._offset)
        if length > CIPHERTEXT_BYTES_MAX:
            self._failed = True
            raise OversizeFrameError(
                f"peer announced a frame of {length} bytes, limit {CIPHERTEXT_BYTES_MAX} "
                f"(MAX_FRAME_BYTES={MAX_FRAME_BYTES})")
        if length < CIPHERTEXT_BYTES_MIN:
            self._failed = True
            raise FrameError(
                f"peer announced a frame of {length} bytes, shorter than the {CIPHERTEXT_BYTES_MIN}-byte minimum")
        start = self._offset + LENGTH_SIZE
        end = start + length
        if len(self._buffer) < end:
            return None
        if self._counter > COUNTER_MAX:
            self._failed = True
            raise FrameError("frame counter exhausted; the link must be re-established")
        view = memoryview(self._buffer)
        try:
            plaintext = self._aead.decrypt(_NONCE.pack(self._counter), view[start:end], view[self._offset:start])
        except InvalidTag:
            self._failed = True
            raise FrameError(
                f"frame {self._counter} failed authentication (altered, replayed or reordered)") from None
        finally:
            view.release()
        self._counter += 1
        self._offset = end
        if plaintext[0] not in _CHANNELS:
            self._failed = True
            raise FrameError(f"frame {self._counter - 1} names unknown channel {plaintext[0]}")
        return Frame(Channel(plaintext[0]), plaintext[1:])
