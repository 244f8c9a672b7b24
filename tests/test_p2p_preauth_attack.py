"""Pre-authentication attack on real loopback sockets: validator links must re-establish under it.

Four PeerManagers on 127.0.0.1 form a full mesh. An attacker in a separate process (so its
CPU is not the validators' event loop) then, from ten loopback source addresses
127.0.0.2 ... 127.0.0.11, against every validator's p2p port:

- holds idle TCP connections that never send a byte, reopening each one the moment it is
  closed (far more than ``pending_handshakes_max``);
- hammers a replayed HELLO (another validator's, as anyone on the path sees it), answers
  whatever comes back with a forged, well-formed next message and starts over.

While that runs every validator link is cut, and the mesh must be whole again within
``REESTABLISH_DEADLINE_S``. The time it took is printed (run with ``-s`` to see it), and
the attacker counts the answers it got that are long enough to carry an ML-DSA
signature: there must be none.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from p2p.faults import FaultyStream
from p2p.handshake import Handshake, LocalIdentity
from p2p.peers import PeerAddress, PeerManager, TransportSettings
from proof import mldsa
from proof.mldsa import SigningKey

pytestmark = pytest.mark.timeout(180)

CHAIN = bytes(range(32))
KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(4)]
DIRECTORY = {i: KEYS[i].public_key for i in range(4)}
SETTINGS = TransportSettings(keepalive_interval_ms=500, idle_timeout_ms=5_000, reconnect_initial_ms=20,
                             reconnect_max_ms=200)
LOOPBACK = "127.0.0.1"
ATTACK_SOURCES = [f"127.0.0.{n}" for n in range(2, 12)]
IDLE_PER_SOURCE_PER_TARGET = 10
HAMMERS_PER_SOURCE_PER_TARGET = 1
MESH_DEADLINE_S = 30.0
ATTACK_WARMUP_S = 3.0
REESTABLISH_DEADLINE_S = 5.0
ATTACKER_READY_S = 30.0
REPO = Path(__file__).resolve().parent.parent


class DialedStreams:
    """A TCP connector that wraps every dialed socket so the test can cut it."""

    def __init__(self) -> None:
        self.streams: list[FaultyStream] = []

    async def connect(self, peer_index: int, address: PeerAddress) -> trio.abc.Stream:
        stream = FaultyStream(await trio.open_tcp_stream(address.host, address.port))
        self.streams.append(stream)
        return stream

    def cut_all(self) -> int:
        live = [stream for stream in self.streams if not stream.is_cut]
        for stream in live:
            stream.cut()
        return len(live)


def full_mesh(managers: list[PeerManager]) -> bool:
    return all(manager.connected_peers() == frozenset(set(range(4)) - {manager.identity.index})
               for manager in managers)


def links_established(managers: list[PeerManager]) -> dict[tuple[int, int], int]:
    return {(manager.identity.index, row.index): row.links_established
            for manager in managers for row in manager.peer_table()}


def relinked_since(managers: list[PeerManager], before: dict[tuple[int, int], int]) -> bool:
    """Every validator holds a link to every other one that was established after ``before``."""
    now = links_established(managers)
    return full_mesh(managers) and all(now[pair] > count for pair, count in before.items())


def start_attacker(targets: list[tuple[int, bytes]], proof_bytes: int) -> subprocess.Popen[str]:
    """``targets``: (p2p port, the recorded HELLO to replay at it)."""
    plan = {"targets": [(port, hello.hex()) for port, hello in targets], "sources": ATTACK_SOURCES,
            "idle": IDLE_PER_SOURCE_PER_TARGET, "hammers": HAMMERS_PER_SOURCE_PER_TARGET, "proof_bytes": proof_bytes}
    return subprocess.Popen(
        [sys.executable, "-c", "import sys, tests.test_p2p_preauth_attack as t; t.attacker_main(sys.argv[1])",
         json.dumps(plan)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)})


def wait_for_line(process: subprocess.Popen[str], wanted: str, deadline_s: float) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"attacker exited early: {process.stderr.read() if process.stderr else ''}")
        if line.strip() == wanted:
            return
    raise AssertionError(f"attacker did not print {wanted!r} within {deadline_s} s")


def stop_attacker(process: subprocess.Popen[str]) -> dict:
    """Stop the attacker and return its final tally (its last stdout line, JSON)."""
    process.terminate()
    try:
        out, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return json.loads(out.strip().splitlines()[-1])


async def test_validator_links_reestablish_while_an_attacker_floods_every_p2p_port() -> None:
    opened = [await trio.open_tcp_listeners(0, host=LOOPBACK) for _ in range(4)]
    ports = [listeners[0].socket.getsockname()[1] for listeners in opened]
    dialed = DialedStreams()
    managers = [
        PeerManager(LocalIdentity(CHAIN, i, KEYS[i]), DIRECTORY,
                    {j: PeerAddress(LOOPBACK, ports[j]) for j in range(4) if j != i}, SETTINGS,
                    listeners=opened[i], connector=dialed.connect)
        for i in range(4)
    ]
    recorded_hellos = [Handshake.initiator(LocalIdentity(CHAIN, (i + 1) % 4, KEYS[(i + 1) % 4]), DIRECTORY, i
                                           ).data_to_send() for i in range(4)]
    attacker: subprocess.Popen[str] | None = None
    async with trio.open_nursery() as nursery:
        for manager in managers:
            await nursery.start(manager.run)
        with trio.fail_after(MESH_DEADLINE_S):
            while not full_mesh(managers):
                await trio.sleep(0.01)
        try:
            attacker = start_attacker(list(zip(ports, recorded_hellos)), proof_bytes=3316)
            await trio.to_thread.run_sync(wait_for_line, attacker, "ready", ATTACKER_READY_S)
            await trio.sleep(ATTACK_WARMUP_S)
            before = links_established(managers)
            cut = dialed.cut_all()
            cut_at = trio.current_time()
            print(f"\ncut {cut} validator links under attack")
            with trio.move_on_after(REESTABLISH_DEADLINE_S) as deadline:
                while not relinked_since(managers, before):
                    await trio.sleep(0.01)
            took_s = trio.current_time() - cut_at
        finally:
            report = stop_attacker(attacker) if attacker is not None else {"summary": "not started"}
        print(f"attacker: {report['summary']}")
        for manager in managers:
            print(f"validator {manager.identity.index}: connected to {sorted(manager.connected_peers())}, "
                  f"refusals {dict(manager.handshake_failures)}")
        if deadline.cancelled_caught:
            pytest.fail(f"the mesh was not whole again {REESTABLISH_DEADLINE_S} s after the cut, under attack")
        print(f"every validator link re-established {took_s:.3f} s after the cut, under attack")
        assert report["signed_answers"] == 0, "validators signed for the attacker's replayed HELLOs"
        nursery.cancel_scope.cancel()


# ---- the attacker (runs in its own process: `attacker_main(json plan)`) -------------------------


class _Tally:
    def __init__(self) -> None:
        self.connections = 0
        self.refused_fast = 0
        self.responses = 0
        self.signed_responses = 0
        self.errors = 0


async def _hold_idle(port: int, source: str, tally: _Tally) -> None:
    """One idle connection, reopened at once whenever the validator closes it."""
    while True:
        opened_at = trio.current_time()
        try:
            stream = await trio.open_tcp_stream(LOOPBACK, port, local_address=source)
        except OSError:
            tally.errors += 1
            await trio.sleep(0.05)
            continue
        tally.connections += 1
        try:
            while await stream.receive_some(65536):
                pass
        except (trio.BrokenResourceError, OSError):
            pass
        finally:
            await trio.aclose_forcefully(stream)
        if trio.current_time() - opened_at < 0.1:
            tally.refused_fast += 1
            await trio.sleep(0.02)


async def _hammer(port: int, source: str, hello: bytes, proof_bytes: int, tally: _Tally) -> None:
    """Replay a captured HELLO, read the answer, send a well-formed forgery of the next message, repeat.

    An answer whose record is at least a signature long is counted as signed (v1's REPLY
    carried one; a v2 CHALLENGE is 2,057 bytes and carries none).
    """
    version = hello[8:10]
    body = b"PNTH" + version + b"\x03" + os.urandom(proof_bytes - 7)
    forged = len(body).to_bytes(4, "big") + body
    while True:
        try:
            stream = await trio.open_tcp_stream(LOOPBACK, port, local_address=source)
        except OSError:
            tally.errors += 1
            await trio.sleep(0.05)
            continue
        tally.connections += 1
        try:
            with trio.move_on_after(2):
                await stream.send_all(hello)
                data = await stream.receive_some(65536)
                if len(data) >= 4:
                    tally.responses += 1
                    if int.from_bytes(data[:4], "big") >= mldsa.SIGNATURE_SIZE:
                        tally.signed_responses += 1
                    await stream.send_all(forged)
                    while await stream.receive_some(65536):
                        pass
        except (trio.BrokenResourceError, OSError):
            pass
        finally:
            await trio.aclose_forcefully(stream)
        await trio.sleep(0)


async def _attack(plan: dict) -> None:
    tally = _Tally()
    started = trio.current_time()
    try:
        async with trio.open_nursery() as nursery:
            for port, hello in plan["targets"]:
                for source in plan["sources"]:
                    for _ in range(plan["idle"]):
                        nursery.start_soon(_hold_idle, port, source, tally)
                    for _ in range(plan["hammers"]):
                        nursery.start_soon(_hammer, port, source, bytes.fromhex(hello), plan["proof_bytes"], tally)
            while tally.connections < len(plan["targets"]) * len(plan["sources"]):
                await trio.sleep(0.01)
            print("ready", flush=True)
            with trio.open_signal_receiver(15) as signals:
                async for _ in signals:
                    break
            nursery.cancel_scope.cancel()
    finally:
        elapsed = trio.current_time() - started
        summary = (f"{tally.connections} connections in {elapsed:.1f} s ({tally.refused_fast} closed within 0.1 s), "
                   f"{tally.responses} answers to the replayed HELLO, {tally.signed_responses} of them signed, "
                   f"{tally.errors} connect errors")
        print(json.dumps({"summary": summary, "signed_answers": tally.signed_responses}), flush=True)


def attacker_main(plan_json: str) -> None:
    trio.run(_attack, json.loads(plan_json))
