"""Encrypted frames as a specification: order, integrity and size bounds, without sockets."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p.errors import FrameError, OversizeFrameError
from p2p.frames import (
    CIPHERTEXT_BYTES_MAX,
    FRAME_OVERHEAD_BYTES,
    MAX_FRAME_BYTES,
    Channel,
    Frame,
    FrameOpener,
    FrameSealer,
)

KEY = bytes(range(32))


def opened(opener: FrameOpener) -> list[Frame]:
    frames = []
    while (frame := opener.next_frame()) is not None:
        frames.append(frame)
    return frames


def test_frames_arrive_in_order_with_their_channels() -> None:
    sealer, opener = FrameSealer(KEY), FrameOpener(KEY)
    opener.receive_data(sealer.seal(Channel.CONSENSUS, b"vote") + sealer.seal(Channel.CATCHUP, b"block"))
    assert opened(opener) == [Frame(Channel.CONSENSUS, b"vote"), Frame(Channel.CATCHUP, b"block")]


def test_a_frame_costs_exactly_the_documented_overhead() -> None:
    assert len(FrameSealer(KEY).seal(Channel.GOSSIP, b"x" * 100)) == 100 + FRAME_OVERHEAD_BYTES


def test_the_same_payload_never_produces_the_same_ciphertext_twice() -> None:
    sealer = FrameSealer(KEY)
    assert sealer.seal(Channel.CONSENSUS, b"vote") != sealer.seal(Channel.CONSENSUS, b"vote")


def test_a_replayed_frame_fails_authentication() -> None:
    sealer, opener = FrameSealer(KEY), FrameOpener(KEY)
    frame = sealer.seal(Channel.CONSENSUS, b"vote")
    opener.receive_data(frame + frame)
    assert opener.next_frame() == Frame(Channel.CONSENSUS, b"vote")
    with pytest.raises(FrameError):
        opener.next_frame()


def test_reordered_frames_fail_authentication() -> None:
    sealer, opener = FrameSealer(KEY), FrameOpener(KEY)
    first, second = sealer.seal(Channel.CONSENSUS, b"1"), sealer.seal(Channel.CONSENSUS, b"2")
    opener.receive_data(second + first)
    with pytest.raises(FrameError):
        opener.next_frame()


def test_a_dropped_frame_makes_the_next_one_fail_authentication() -> None:
    sealer, opener = FrameSealer(KEY), FrameOpener(KEY)
    sealer.seal(Channel.CONSENSUS, b"lost")
    opener.receive_data(sealer.seal(Channel.CONSENSUS, b"next"))
    with pytest.raises(FrameError):
        opener.next_frame()


def test_a_frame_sealed_under_another_key_fails_authentication() -> None:
    opener = FrameOpener(KEY)
    opener.receive_data(FrameSealer(bytes(32)).seal(Channel.CONSENSUS, b"vote"))
    with pytest.raises(FrameError):
        opener.next_frame()


def test_every_single_bit_flip_in_a_frame_is_detected() -> None:
    frame = FrameSealer(KEY).seal(Channel.CONSENSUS, b"a small vote")
    for position in range(len(frame)):
        for bit in range(8):
            altered = bytearray(frame)
            altered[position] ^= 1 << bit
            opener = FrameOpener(KEY)
            opener.receive_data(bytes(altered))
            try:
                frame_out = opener.next_frame()
            except FrameError:
                continue
            assert frame_out is None, f"bit {bit} of byte {position} flipped and the frame still opened"


def test_an_oversize_length_is_refused_before_any_body_byte_arrives() -> None:
    opener = FrameOpener(KEY)
    opener.receive_data(struct.pack(">I", CIPHERTEXT_BYTES_MAX + 1))
    with pytest.raises(OversizeFrameError):
        opener.next_frame()
    assert opener.buffered_bytes == 4


def test_a_huge_length_is_refused_without_buffering_a_body() -> None:
    opener = FrameOpener(KEY)
    opener.receive_data(b"\xff\xff\xff\xff")
    with pytest.raises(OversizeFrameError):
        opener.next_frame()


def test_a_frame_of_exactly_the_maximum_payload_is_accepted() -> None:
    sealer, opener = FrameSealer(KEY), FrameOpener(KEY)
    opener.receive_data(sealer.seal(Channel.CATCHUP, bytes(MAX_FRAME_BYTES)))
    frame = opener.next_frame()
    assert frame is not None and len(frame.payload) == MAX_FRAME_BYTES


def test_sealing_a_payload_over_the_maximum_is_refused() -> None:
    with pytest.raises(OversizeFrameError):
        FrameSealer(KEY).seal(Channel.CATCHUP, bytes(MAX_FRAME_BYTES + 1))


def test_a_length_shorter_than_channel_and_tag_is_refused() -> None:
    opener = FrameOpener(KEY)
    opener.receive_data(struct.pack(">I", 16) + bytes(16))
    with pytest.raises(FrameError):
        opener.next_frame()


def test_an_authentic_frame_on_an_unknown_channel_is_refused() -> None:
    sealer, opener = FrameSealer(KEY), FrameOpener(KEY)
    opener.receive_data(sealer.seal(200, b"?"))  # type: ignore[arg-type]
    with pytest.raises(FrameError):
        opener.next_frame()


def test_an_opener_that_failed_keeps_failing() -> None:
    sealer, opener = FrameSealer(KEY), FrameOpener(KEY)
    opener.receive_data(b"\xff\xff\xff\xff")
    with pytest.raises(FrameError):
        opener.next_frame()
    opener.receive_data(sealer.seal(Channel.CONSENSUS, b"vote"))
    with pytest.raises(FrameError):
        opener.next_frame()


@settings(max_examples=50, deadline=None)
@given(payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=8),
       cuts=st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=40))
def test_frames_split_at_any_offsets_decode_to_the_same_payloads(payloads: list[bytes], cuts: list[int]) -> None:
    sealer, opener = FrameSealer(KEY), FrameOpener(KEY)
    wire = b"".join(sealer.seal(Channel.GOSSIP, p) for p in payloads)
    received: list[Frame] = []
    position, cut = 0, 0
    while position < len(wire):
        step = cuts[cut % len(cuts)]
        opener.receive_data(wire[position : position + step])
        received += opened(opener)
        position, cut = position + step, cut + 1
    assert [f.payload for f in received] == payloads
