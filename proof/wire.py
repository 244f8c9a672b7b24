"""The one size bound the transport and the consensus layer must agree on.

A p2p frame carries one consensus message; a catch-up answer must fit one frame.
Both ``p2p`` and ``consensus`` import ``proof`` and not each other, so the bound
lives here, once: ``p2p.frames.MAX_FRAME_BYTES`` and
``consensus.messages.MESSAGE_SIZE_MAX`` are this constant under their own names.
"""

from __future__ import annotations

MESSAGE_BYTES_MAX = 4 * 1024 * 1024
"""Largest payload of one p2p frame, and so of one encoded consensus message."""
