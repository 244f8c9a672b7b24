"""The pre-authentication budget of the p2p port, as a specification.

Before a connecting party has proved it holds a genesis validator key, the responder
spends no ML-DSA signature and no ML-KEM encapsulation on it; one source address cannot
hold more than its share of the pending-handshake slots; a validator gets a slot however
many sources hold the rest; and a connection that sends nothing is closed quickly.
Signing and encapsulation are counted by spies on the two primitives the handshake uses.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import pytest
import trio
import trio.testing

import p2p.handshake
from p2p.admission import AdmissionTable, Admitted, ProofBudget, source_of
from p2p.errors import HandshakeError, HandshakeFailure
from p2p.handshake import Handshake, LocalIdentity, Proof, record
from p2p.link import establish
from p2p.peers import REFUSAL_LOG_INTERVAL_S, PeerManager, TransportSettings
from proof import mldsa
from proof.mldsa import SigningKey

CHAIN = bytes(range(32))
KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(4)]
DIRECTORY = {i: KEYS[i].public_key for i in range(4)}
LOOPBACK = "127.0.0.1"
DEADLINE_S = 10.0
REPLAYS = 20


def identity(index: int) -> LocalIdentity:
    return LocalIdentity(CHAIN, index, KEYS[index])


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts every ML-DSA signature and verification and every ML-KEM encapsulation made in this process."""
    counts: Counter[str] = Counter()
    real_sign = mldsa.SigningKey.sign
    real_verify = mldsa.verify
    real_kem = p2p.handshake.MLKEM768PublicKey

    def counting_sign(self: SigningKey, message: bytes) -> bytes:
        counts["sign"] += 1
        return real_sign(self, message)

    class CountingKem:
        def __init__(self, inner: object) -> None:
            self._inner = inner

        @classmethod
        def from_public_bytes(cls, data: bytes) -> "CountingKem":
            return cls(real_kem.from_public_bytes(data))

        def encapsulate(self) -> tuple[bytes, bytes]:
            counts["encapsulate"] += 1
            return self._inner.encapsulate()  # type: ignore[attr-defined]

    def counting_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
        counts["verify"] += 1
        return real_verify(public_key, message, signature)

    monkeypatch.setattr(mldsa.SigningKey, "sign", counting_sign)
    monkeypatch.setattr(mldsa, "verify", counting_verify)
    monkeypatch.setattr(p2p.handshake, "MLKEM768PublicKey", CountingKem)
    yield counts


def replayed_hello(sender: int = 3, target: int = 1) -> bytes:
    """A HELLO of validator ``sender`` to ``target``, as anyone on the path saw it go by."""
    return Handshake.initiator(identity(sender), DIRECTORY, target).data_to_send()


def test_a_replayed_hello_makes_the_responder_neither_sign_nor_encapsulate(work: Counter[str]) -> None:
    hello = replayed_hello()
    work.clear()
    for _ in range(REPLAYS):
        responder = Handshake.responder(identity(1), DIRECTORY)
        responder.receive_data(hello)
        assert responder.data_to_send(), "the responder answers a HELLO (with a challenge)"
    assert work == Counter()


def test_an_initiator_that_cannot_sign_gets_no_signature_and_no_encapsulation(work: Counter[str]) -> None:
    hello = replayed_hello()
    work.clear()
    responder = Handshake.responder(identity(1), DIRECTORY)
    responder.receive_data(hello)
    answer = responder.data_to_send()
    forged = answer[4:11]
    forged = forged[:6] + bytes([3]) + bytes(mldsa.SIGNATURE_SIZE)
    with pytest.raises(HandshakeError):
        responder.receive_data(len(forged).to_bytes(4, "big") + forged)
    assert (work["sign"], work["encapsulate"]) == (0, 0)


@contextlib.asynccontextmanager
async def responder_node(settings: TransportSettings = TransportSettings()) -> AsyncIterator[PeerManager]:
    """Validator 0 listening on loopback, dialing nobody (so it signs only for those who dial it)."""
    manager = PeerManager(identity(0), DIRECTORY, {}, settings, listen=None,
                          listeners=await trio.open_tcp_listeners(0, host=LOOPBACK))
    async with trio.open_nursery() as nursery:
        await nursery.start(manager.run)
        yield manager
        nursery.cancel_scope.cancel()


async def connect_from(source: str, port: int) -> trio.SocketStream:
    return await trio.open_tcp_stream(LOOPBACK, port, local_address=source)


async def is_open(stream: trio.SocketStream, within_s: float = 0.3) -> bool:
    """True when the peer has neither closed nor reset ``stream`` within ``within_s``."""
    with trio.move_on_after(within_s):
        try:
            return bool(await stream.receive_some(1))
        except trio.BrokenResourceError:
            return False
    return True


async def handshake_as(index: int, source: str, port: int) -> int:
    stream = await connect_from(source, port)
    link = await establish(stream, identity(index), DIRECTORY, peer_index=0, timeout_s=DEADLINE_S)
    await link.aclose()
    return link.peer_index


async def test_replayed_hellos_over_tcp_cost_the_validator_no_signature(work: Counter[str]) -> None:
    hello = replayed_hello(target=0)
    async with responder_node() as node:
        assert node.listen_port is not None
        work.clear()
        for _ in range(REPLAYS):
            stream = await connect_from("127.0.0.2", node.listen_port)
            await stream.send_all(hello)
            with trio.fail_after(DEADLINE_S):
                assert await stream.receive_some(65536)
            await stream.aclose()
    assert work == Counter()


async def test_one_source_cannot_take_every_pending_handshake_slot() -> None:
    settings = TransportSettings()
    async with responder_node(settings) as node:
        assert node.listen_port is not None
        held = [await connect_from("127.0.0.2", node.listen_port) for _ in range(settings.pending_handshakes_max)]
        await trio.sleep(0.1)
        with trio.fail_after(DEADLINE_S):
            assert await handshake_as(1, "127.0.0.3", node.listen_port) == 0
        for stream in held:
            await stream.aclose()


async def test_a_source_past_its_share_is_closed_while_its_first_connections_stay() -> None:
    settings = TransportSettings()
    share = settings.pending_handshakes_per_source_max
    async with responder_node(settings) as node:
        assert node.listen_port is not None
        held = [await connect_from("127.0.0.2", node.listen_port) for _ in range(share)]
        extra = await connect_from("127.0.0.2", node.listen_port)
        assert not await is_open(extra)
        assert all([await is_open(stream, 0.01) for stream in held])
        for stream in [*held, extra]:
            await stream.aclose()


@pytest.mark.parametrize(("sources_count", "per_source"), [(16, 8), (100, 1)])
async def test_many_sources_filling_every_slot_do_not_lock_a_validator_out(sources_count: int,
                                                                           per_source: int) -> None:
    settings = TransportSettings()
    assert sources_count * per_source > settings.pending_handshakes_max
    sources = [f"127.0.{n // 250}.{2 + n % 250}" for n in range(sources_count)]
    async with responder_node(settings) as node:
        assert node.listen_port is not None
        held = [await connect_from(source, node.listen_port) for source in sources for _ in range(per_source)]
        await trio.sleep(0.1)
        with trio.fail_after(DEADLINE_S):
            assert await handshake_as(2, LOOPBACK, node.listen_port) == 0
        for stream in held:
            await stream.aclose()


async def test_a_connection_that_sends_nothing_is_closed_within_the_preauth_idle_timeout(
        autojump_clock: trio.testing.MockClock) -> None:
    manager = PeerManager(identity(0), DIRECTORY, {}, listen=None)
    async with trio.open_nursery() as nursery:
        await nursery.start(manager.run)
        local, remote = trio.testing.memory_stream_pair()
        started = trio.current_time()
        manager.accept(local, "memory:silent")
        with trio.fail_after(DEADLINE_S):
            assert await remote.receive_some() == b""
        assert trio.current_time() - started <= 1.0
        nursery.cancel_scope.cancel()


async def test_junk_proofs_past_a_sources_budget_are_refused_without_verifying(work: Counter[str]) -> None:
    settings = TransportSettings(preauth_proofs_per_source_burst=4, preauth_proof_interval_ms=60_000)
    hello = replayed_hello(target=0)
    junk = record(Proof(bytes(mldsa.SIGNATURE_SIZE)).encode())
    async with responder_node(settings) as node:
        assert node.listen_port is not None
        work.clear()
        for _ in range(3 * settings.preauth_proofs_per_source_burst):
            stream = await connect_from("127.0.0.2", node.listen_port)
            await stream.send_all(hello)
            with trio.fail_after(DEADLINE_S):
                assert await stream.receive_some(65536)
                await stream.send_all(junk)
                while await stream.receive_some(65536):
                    pass
            await stream.aclose()
        assert await handshake_as(1, "127.0.0.3", node.listen_port) == 0
    assert node.handshake_failures["bad_signature"] == settings.preauth_proofs_per_source_burst
    assert node.handshake_failures["rate_limited"] == 2 * settings.preauth_proofs_per_source_burst
    honest_handshake_verifies = 2
    assert work["verify"] == settings.preauth_proofs_per_source_burst + honest_handshake_verifies


# ---- the admission table and the proof budget, without sockets ---------------------------------------


def proven_never() -> bool:
    return False


def test_the_table_refuses_a_source_at_its_share_whatever_room_is_left() -> None:
    table = AdmissionTable(total_max=8, per_source_max=2)
    assert all(isinstance(table.admit("a", proven_never), Admitted) for _ in range(2))
    assert table.admit("a", proven_never) is HandshakeFailure.SOURCE_BUSY
    assert isinstance(table.admit("b", proven_never), Admitted)


def test_a_full_table_evicts_the_oldest_handshake_of_the_busiest_source() -> None:
    table = AdmissionTable(total_max=4, per_source_max=3)
    a1, a2, a3 = [table.admit("a", proven_never) for _ in range(3)]
    table.admit("b", proven_never)
    admitted = table.admit("c", proven_never)
    assert isinstance(admitted, Admitted) and isinstance(a1, Admitted)
    assert admitted.evicted is a1.ticket
    assert (table.pending, table.pending_from("a"), table.pending_from("c")) == (4, 2, 1)


def test_a_full_table_refuses_a_source_that_already_holds_as_many_as_the_busiest() -> None:
    table = AdmissionTable(total_max=4, per_source_max=3)
    for source in "aabb":
        table.admit(source, proven_never)
    assert table.admit("a", proven_never) is HandshakeFailure.SLOTS_FULL


def test_a_proven_handshake_is_never_evicted() -> None:
    table = AdmissionTable(total_max=2, per_source_max=1)
    table.admit("validator", lambda: True)
    table.admit("other-validator", lambda: True)
    assert table.admit("newcomer", proven_never) is HandshakeFailure.SLOTS_FULL


def test_one_source_can_never_be_allowed_every_slot() -> None:
    with pytest.raises(ValueError):
        AdmissionTable(total_max=8, per_source_max=8)


def test_releasing_an_evicted_ticket_again_changes_nothing() -> None:
    table = AdmissionTable(total_max=2, per_source_max=1)
    first = table.admit("a", proven_never)
    table.admit("b", proven_never)
    assert isinstance(first, Admitted)
    table.release(first.ticket)
    table.release(first.ticket)
    assert table.pending == 1


@pytest.mark.parametrize(("host", "source"), [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    ("memory:3", "memory:3"),
])
def test_sources_are_ipv4_addresses_and_ipv6_64_networks(host: str, source: str) -> None:
    assert source_of(host) == source


def test_the_proof_budget_allows_a_burst_then_one_per_interval_per_source() -> None:
    budget = ProofBudget(burst=3, interval_s=1.0)
    assert [budget.take("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert budget.take("b", 0.0)
    assert not budget.take("a", 0.5)
    assert budget.take("a", 1.6)
    assert not budget.take("a", 1.7)


def test_the_proof_budget_remembers_a_bounded_number_of_sources() -> None:
    budget = ProofBudget(burst=1, interval_s=1000.0, sources_max=4)
    for n in range(100):
        budget.take(f"s{n}", 0.0)
    assert len(budget._buckets) <= 4
    assert not budget.take("s99", 0.0)


async def test_a_flood_of_refusals_logs_one_line_per_reason_per_interval_and_counts_them_all(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pantheon.p2p")
    settings = TransportSettings(preauth_idle_timeout_ms=3_000)
    flood = 3 * settings.pending_handshakes_per_source_max
    manager = PeerManager(identity(0), DIRECTORY, {}, settings, listen=None)
    async with trio.open_nursery() as nursery:
        await nursery.start(manager.run)
        for _ in range(settings.pending_handshakes_per_source_max + flood):
            local, _remote = trio.testing.memory_stream_pair()
            manager.accept(local, "memory:flood")
        await trio.testing.wait_all_tasks_blocked()
        assert manager.handshake_failures["source_busy"] == flood
        lines = [r.getMessage() for r in caplog.records if "source_busy" in r.getMessage()]
        assert len(lines) == 1 and "memory:flood" in lines[0]
        await trio.sleep(REFUSAL_LOG_INTERVAL_S)
        local, _remote = trio.testing.memory_stream_pair()
        manager.accept(local, "memory:flood")
        await trio.testing.wait_all_tasks_blocked()
        lines = [r.getMessage() for r in caplog.records if "source_busy" in r.getMessage()]
        assert len(lines) == 2 and f"{flood - 1} more source_busy refusals" in lines[1]
        nursery.cancel_scope.cancel()
