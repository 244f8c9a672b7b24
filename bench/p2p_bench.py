"""p2p transport benchmark: handshake latency and encrypted frame throughput over loopback.

Run: ``.venv/bin/python -m bench.p2p_bench [--handshakes N] [--frames N] [--frame-bytes N]``.

Measures, on this machine:
- the handshake as pure computation (both state machines in one thread: X25519, ML-KEM-768,
  two ML-DSA-65 signatures and two verifications), and over a real loopback TCP connection
  (connect + both sides of the handshake, run concurrently in one trio process);
- one :class:`p2p.link.Link` pushing ``--frames`` frames of ``--frame-bytes`` over loopback
  TCP to a receiver in the same process (so both ends share one core's Python time);
- the same through two :class:`p2p.peers.PeerManager` (send queue, writer, reader, inbound
  channel), the producer refilling the send queue only below half its bound so nothing drops.
"""

from __future__ import annotations

import argparse
import statistics
import time

import trio

from p2p.frames import Channel
from p2p.handshake import Handshake, LocalIdentity
from p2p.link import Link, establish
from p2p.peers import PeerAddress, PeerManager, TransportSettings
from proof.mldsa import SigningKey

CHAIN = bytes(range(32))
KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(2)]
DIRECTORY = {i: KEYS[i].public_key for i in range(2)}
LOOPBACK = "127.0.0.1"
TIMEOUT_S = 30.0


def identity(index: int) -> LocalIdentity:
    return LocalIdentity(CHAIN, index, KEYS[index])


def bench_handshake_sans_io(count: int) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        initiator = Handshake.initiator(identity(0), DIRECTORY, 1)
        responder = Handshake.responder(identity(1), DIRECTORY)
        while not responder.complete:
            responder.receive_data(initiator.data_to_send())
            initiator.receive_data(responder.data_to_send())
        times.append(time.perf_counter() - start)
    return times


async def loopback_pair() -> tuple[Link, Link]:
    """A dialer and listener Link over one fresh loopback TCP connection."""
    listeners = await trio.open_tcp_listeners(0, host=LOOPBACK)
    port = listeners[0].socket.getsockname()[1]
    links: dict[str, Link] = {}

    async def listen() -> None:
        stream = await listeners[0].accept()
        links["listener"] = await establish(stream, identity(1), DIRECTORY, peer_index=None, timeout_s=TIMEOUT_S)

    async def dial() -> None:
        stream = await trio.open_tcp_stream(LOOPBACK, port)
        links["dialer"] = await establish(stream, identity(0), DIRECTORY, peer_index=1, timeout_s=TIMEOUT_S)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(listen)
        nursery.start_soon(dial)
    await listeners[0].aclose()
    return links["dialer"], links["listener"]


async def bench_handshake_tcp(count: int) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        dialer, listener = await loopback_pair()
        times.append(time.perf_counter() - start)
        await dialer.aclose()
        await listener.aclose()
    return times


async def bench_link(frames: int, frame_bytes: int) -> float:
    dialer, listener = await loopback_pair()
    payload = bytes(frame_bytes)

    async def send() -> None:
        for _ in range(frames):
            await dialer.send(Channel.CATCHUP, payload)

    async def receive() -> None:
        for _ in range(frames):
            await listener.receive()

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        nursery.start_soon(receive)
    elapsed = time.perf_counter() - start
    await dialer.aclose()
    await listener.aclose()
    return elapsed


async def bench_managers(frames: int, frame_bytes: int) -> float:
    listeners = [await trio.open_tcp_listeners(0, host=LOOPBACK) for _ in range(2)]
    ports = [ls[0].socket.getsockname()[1] for ls in listeners]
    settings = TransportSettings()
    managers = [PeerManager(identity(i), DIRECTORY, {1 - i: PeerAddress(LOOPBACK, ports[1 - i])}, settings,
                            listeners=listeners[i]) for i in range(2)]
    payload = bytes(frame_bytes)
    refill_below = settings.send_queue_frames_max // 2

    async def produce() -> None:
        sent = 0
        while sent < frames:
            (row,) = managers[0].peer_table()
            room = max(0, refill_below - row.queued_frames)
            for _ in range(min(room, frames - sent)):
                managers[0].send(1, Channel.CATCHUP, payload)
            sent += min(room, frames - sent)
            await trio.sleep(0 if room else 0.0005)

    async with trio.open_nursery() as nursery:
        for manager in managers:
            await nursery.start(manager.run)
        with trio.fail_after(TIMEOUT_S):
            await managers[0].wait_connected([1])
            await managers[1].wait_connected([0])
        start = time.perf_counter()
        nursery.start_soon(produce)
        with trio.fail_after(TIMEOUT_S * 10):
            for _ in range(frames):
                await managers[1].inbound.receive()
        elapsed = time.perf_counter() - start
        assert managers[0].peer_table()[0].frames_dropped == 0
        nursery.cancel_scope.cancel()
    return elapsed


def report_rate(label: str, frames: int, frame_bytes: int, elapsed: float) -> None:
    print(f"{label:<34} {frames / elapsed:>10,.0f} frames/s  {frames * frame_bytes / elapsed / 1e6:>8.1f} MB/s"
          f"  ({frames} x {frame_bytes} B in {elapsed:.2f} s)")


async def main_async(args: argparse.Namespace) -> None:
    sans_io = bench_handshake_sans_io(args.handshakes)
    print(f"{'handshake, sans-IO (both sides)':<34} median {statistics.median(sans_io) * 1e3:6.2f} ms"
          f"  p90 {sorted(sans_io)[int(len(sans_io) * 0.9)] * 1e3:6.2f} ms  (n={len(sans_io)})")
    tcp = await bench_handshake_tcp(args.handshakes)
    print(f"{'handshake, loopback TCP (connect)':<34} median {statistics.median(tcp) * 1e3:6.2f} ms"
          f"  p90 {sorted(tcp)[int(len(tcp) * 0.9)] * 1e3:6.2f} ms  (n={len(tcp)})")
    report_rate("link, loopback TCP", args.frames, args.frame_bytes, await bench_link(args.frames, args.frame_bytes))
    report_rate("PeerManager, loopback TCP", args.frames, args.frame_bytes,
                await bench_managers(args.frames, args.frame_bytes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--handshakes", type=int, default=50)
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--frame-bytes", type=int, default=32 * 1024)
    trio.run(main_async, parser.parse_args())


if __name__ == "__main__":
    main()
