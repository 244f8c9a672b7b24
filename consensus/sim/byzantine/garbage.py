"""Garbage sender: mixes malformed bytes into its traffic.

Random bytes, truncations, trailing bytes, flipped bits, unknown message types,
unknown fields, absurd declared lengths: the receiver must decode strictly, drop,
count, and carry on. Its real messages still go out too, so the run keeps moving.
"""

from __future__ import annotations

from consensus.messages import Message
from consensus.sim.byzantine.base import Behaviour
from proof import cbor
from proof.errors import DecodeError

GARBAGE_PROBABILITY = 0.5
RANDOM_BYTES_MAX = 256

VARIANTS: tuple[str, ...] = (
    "random",
    "truncated",
    "trailing",
    "bitflip",
    "unknown_type",
    "unknown_field",
    "huge_length",
)


class Garbage(Behaviour):
    name = "garbage"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.variants: dict[str, int] = {}

    def send(self, to: int, message: Message, now_ms: int) -> None:
        data = message.encode()
        if self.rng.random() < GARBAGE_PROBABILITY:
            variant = self.rng.choice(VARIANTS)
            self.node.transmit(to, self._garble(variant, data))
            self.committed += 1
            self.variants[variant] = self.variants.get(variant, 0) + 1
        self.node.transmit(to, data)

    def stats(self) -> dict[str, int]:
        return {"committed": self.committed, **{f"variant_{k}": v for k, v in sorted(self.variants.items())}}

    def _garble(self, variant: str, data: bytes) -> bytes:
        rng = self.rng
        if variant == "random":
            return rng.randbytes(rng.randint(0, RANDOM_BYTES_MAX))
        if variant == "truncated":
            return data[: rng.randrange(len(data))]
        if variant == "trailing":
            return data + bytes([rng.randrange(256)])
        if variant == "bitflip":
            position = rng.randrange(len(data) * 8)
            flipped = bytearray(data)
            flipped[position // 8] ^= 1 << (position % 8)
            return bytes(flipped)
        if variant == "unknown_type":
            return cbor.encode({"t": rng.randint(6, 1000)})
        if variant == "unknown_field":
            try:
                fields = cbor.decode(data)
            except DecodeError:
                return data[:-1]
            fields["zz"] = rng.randint(0, 100)
            return cbor.encode(fields)
        if variant == "huge_length":
            # A byte string claiming 2**32-1 bytes, followed by a few.
            return b"\xa1\x61t\x5a\xff\xff\xff\xff" + rng.randbytes(8)
        raise ValueError(f"unknown garbage variant {variant!r}")
