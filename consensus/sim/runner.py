"""One seeded simulation run, and runs of many seeds.

A run builds n validators (the Byzantine ones picked by the seed), a seeded network
and fault plan, then pops events off the virtual-time queue one at a time. Each pop
is one *step*: a delivery, a timer, a driver answer, a crash or a restart. After
every step the invariant checker reports what broke, and the first violation stops
the run with its seed, step and details.

The run's *trace hash* is SHA-256 over every step (time, kind, node, and the bytes
delivered) and every finalized block hash: two runs of one seed must produce the same
trace hash, which is how determinism is tested.
"""

from __future__ import annotations

import hashlib
import struct
import traceback
from dataclasses import dataclass, field, fields
from typing import Any

from consensus.actions import Evidence, Finalized
from consensus.core import CoreConfig
from consensus.crypto import SIM_SIGNATURE_SIZE, MLDSASigner, MLDSAVerifier, Signer, Verifier, sim_validators
from consensus.events import Event
from consensus.messages import MESSAGE_SIZE_MAX, Message, Vote, decode_message
from consensus.safety import SafetyState
from consensus.sim.byzantine import BEHAVIOURS, ByzantineNode
from consensus.sim.faults import FaultMix, plan_faults, with_laggard
from consensus.sim.invariants import INVARIANTS, InvariantChecker, Violation
from consensus.sim.mempool import RootStream
from consensus.sim.network import LINK_DELAY_MS_MAX, STALL_MS_MAX, LinkStats, Network
from consensus.sim.node import SimNode
from consensus.sim.rng import derive_rng
from consensus.sim.scheduler import Scheduler
from consensus.sim.traffic import Cost, CountingVerifier, Traffic, message_kind
from proof.errors import DecodeError
from proof.chain import FinalizationProof, Genesis, VoteKind, verify_finalization
from proof.mldsa import SIGNATURE_SIZE, SigningKey
from proof.mldsa import verify as mldsa_verify

# Core timing for simulated runs: a WAN-like network (20-140 ms one way) with
# timeouts a few round trips long, so views time out under faults, not on healthy links.
SIM_BASE_TIMEOUT_MS = 600
SIM_MAX_TIMEOUT_MS = 2_400
SIM_BLOCK_ROOTS_MAX = 16
# Seeds with the runtime's sizes: full blocks of the node's default roots bound, signatures
# of ML-DSA-65's size, and one validator down for most of the time before GST, so that
# its catch-up has to span several frames (what small blocks never exercise).
SIZES = ("small", "real", "mixed")
REAL_SIZES_SHARE = 0.03
REAL_BLOCK_ROOTS_MAX = 10_000
REAL_LAGGARD_DOWNTIME_MS = 4_500
# Virtual-time shape of a run: faults until GST, then a synchronous network for the
# progress bound plus this long, so a stall after GST is always seen.
DEFAULT_GST_MS = 5_000
AFTER_PROGRESS_BOUND_MS = 4_000
DEFAULT_STEPS_MAX = 500_000
# After GST a block must be finalized within (f + PROGRESS_TIMEOUTS) max timeouts (f
# Byzantine leaders in a row, then a few views to resynchronise), plus the time
# messages stalled before GST may still be in flight.
PROGRESS_TIMEOUTS = 3
BOOT_SPREAD_MS_MAX = 50
DECODE_CACHE_ENTRIES_MAX = 4_096
VALIDATORS_MAX = 31

_DELIVER, _TIMER, _LOCAL, _CRASH, _RESTART, _BOOT = range(6)


@dataclass(frozen=True)
class SimConfig:
    """Everything a run depends on besides its seed."""

    validators: int = 4
    byzantine: int = 1
    faults: FaultMix = field(default_factory=FaultMix)
    behaviours: tuple[str, ...] = tuple(BEHAVIOURS)
    horizon_ms: int | None = None  # None: GST + progress bound + AFTER_PROGRESS_BOUND_MS
    gst_ms: int = DEFAULT_GST_MS
    steps_max: int = DEFAULT_STEPS_MAX
    real_crypto: bool = False
    quorum_override: int | None = None
    invariants: tuple[str, ...] = INVARIANTS
    base_timeout_ms: int = SIM_BASE_TIMEOUT_MS
    max_timeout_ms: int = SIM_MAX_TIMEOUT_MS
    sizes: str = "mixed"
    """``small``: tiny blocks and signatures (fast); ``real``: the runtime's sizes; ``mixed``:
    real in a seeded share (REAL_SIZES_SHARE) of the seeds."""

    def __post_init__(self) -> None:
        n = self.validators
        if self.sizes not in SIZES:
            raise ValueError(f"--sizes must be one of {', '.join(SIZES)}, got {self.sizes!r}")
        if not 1 <= n <= VALIDATORS_MAX or (n - 1) % 3:
            raise ValueError(f"--validators must be 3f+1 (1, 4, 7, ...) and at most {VALIDATORS_MAX}, got {n}")
        if not 0 <= self.byzantine <= (n - 1) // 3:
            raise ValueError(f"--byzantine must be 0..f = {(n - 1) // 3} for {n} validators, got {self.byzantine}")
        unknown = sorted(set(self.behaviours) - set(BEHAVIOURS))
        if unknown or not self.behaviours:
            raise ValueError(f"unknown behaviour(s) {unknown}: choose from {', '.join(BEHAVIOURS)}")
        if not 0 <= self.gst_ms <= self.end_ms:
            raise ValueError("need 0 <= gst_ms <= horizon_ms")
        if self.steps_max < 1:
            raise ValueError("steps_max must be positive")
        if self.quorum_override is not None and not 1 <= self.quorum_override <= n:
            raise ValueError(f"--quorum-override must be 1..{n}, got {self.quorum_override}")

    @property
    def f(self) -> int:
        return (self.validators - 1) // 3

    @property
    def byzantine_count(self) -> int:
        """Byzantine validators actually run: none when the fault mix excludes them."""
        return self.byzantine if self.faults.byzantine else 0

    def real_sizes(self, seed: int) -> bool:
        """Whether ``seed`` runs with the runtime's block and signature sizes."""
        if self.sizes != "mixed":
            return self.sizes == "real"
        return derive_rng(seed, "sizes").random() < REAL_SIZES_SHARE

    def core_config(self, real_sizes: bool = False) -> CoreConfig:
        return CoreConfig(
            base_timeout_ms=self.base_timeout_ms,
            max_timeout_ms=self.max_timeout_ms,
            block_roots_max=REAL_BLOCK_ROOTS_MAX if real_sizes else SIM_BLOCK_ROOTS_MAX,
            quorum_override=self.quorum_override,
        )

    @property
    def progress_bound_ms(self) -> int:
        return (self.f + PROGRESS_TIMEOUTS) * self.max_timeout_ms + STALL_MS_MAX + LINK_DELAY_MS_MAX

    @property
    def end_ms(self) -> int:
        """The virtual time a run stops at (unless a violation stops it first)."""
        if self.horizon_ms is not None:
            return self.horizon_ms
        return self.gst_ms + self.progress_bound_ms + AFTER_PROGRESS_BOUND_MS


@dataclass
class RunResult:
    """What one seed did. ``violation`` is None when every invariant held."""

    seed: int
    steps: int
    time_ms: int
    violation: Violation | None
    trace_hash: str
    height_max: int
    height_min: int
    finality_ms: list[int]
    views_max: int
    links: LinkStats
    byzantine: dict[int, str]
    behaviour_stats: dict[int, dict[str, int]]
    evidence_against: dict[int, int]
    honest_counters: dict[str, int]
    core_counters: dict[str, int]
    invalid_blocks: int
    crashes: int
    partitions: int
    mean_link_delay_ms: float
    signers_seen: set[int]
    real_sizes: bool = False
    rejoin_worst_ms: int = 0
    catchup_blocks: int = 0
    cost: Cost | None = None
    finalized_heights: int = 0


class Simulation:
    """One run: the world around the nodes (clock, links, faults) and the checker."""

    def __init__(self, config: SimConfig, seed: int) -> None:
        self.config = config
        self.seed = seed
        n = config.validators
        self.scheduler: Scheduler[tuple[Any, ...]] = Scheduler()
        self.real_sizes = config.real_sizes(seed)
        self.genesis, signers, self.verifier, self._verify_sig = _keys(config, seed, self.real_sizes)
        picked = derive_rng(seed, "byzantine", "pick")
        self.byzantine = tuple(sorted(picked.sample(range(n), config.byzantine_count)))
        self.honest = tuple(i for i in range(n) if i not in self.byzantine)
        self.plan = plan_faults(
            seed, mix=config.faults, n=n, f=config.f, honest=self.honest, gst_ms=config.gst_ms
        )
        if self.real_sizes and config.faults.crash and self.honest:
            self.plan = with_laggard(self.plan, seed, self.honest, REAL_LAGGARD_DOWNTIME_MS, config.gst_ms)
        self.network = Network(seed=seed, n=n, mix=config.faults, plan=self.plan, gst_ms=config.gst_ms)
        self.checker = InvariantChecker(
            honest=self.honest,
            verify_certificate=self._verify_finalization,
            gst_ms=config.gst_ms,
            progress_bound_ms=config.progress_bound_ms,
            enabled=config.invariants,
        )
        core_config = config.core_config(self.real_sizes)
        roots_per_block_max = core_config.block_roots_max
        choose = derive_rng(seed, "byzantine", "behaviour")
        self.traffic = Traffic(n)
        self.counting_verifiers = [CountingVerifier(self.verifier) for _ in range(n)]
        self.nodes: list[SimNode] = []
        self.behaviour_of: dict[int, str] = {}
        for index in range(n):
            common: dict[str, Any] = dict(
                index=index,
                genesis=self.genesis,
                signer=signers[index],
                verifier=self.counting_verifiers[index],
                config=core_config,
                mempool=RootStream(seed, index, roots_per_block_max=roots_per_block_max, full=self.real_sizes),
                host=self,
            )
            if index in self.byzantine:
                name = choose.choice(sorted(config.behaviours))
                self.behaviour_of[index] = name
                node: SimNode = ByzantineNode(
                    behaviour=BEHAVIOURS[name], rng=derive_rng(seed, "behaviour", index), **common
                )
            else:
                node = SimNode(**common)
            self.nodes.append(node)
        self.trace = hashlib.sha256()
        self.step = 0
        self.first_final_ms: dict[int, int] = {}
        self.finality_ms: list[int] = []
        self.evidence_against: dict[int, int] = {}
        self.invalid_blocks = 0
        self.signers_seen: set[int] = set()
        self._decoded: dict[bytes, Message | str] = {}

    # -- Host interface (called by nodes) -------------------------------------------------

    def transmit(self, src: int, dst: int, data: bytes) -> None:
        now_ms = self.scheduler.now_ms
        self.traffic.sent(src, len(data), message_kind(self.decode(data)) if src in self.checker.honest else None)
        for time_ms in self.network.transmit(src, dst, len(data), now_ms):
            self.scheduler.at(time_ms, (_DELIVER, dst, src, data))

    def timer(self, node: int, incarnation: int, token: int, view: int, delay_ms: int) -> None:
        self.scheduler.after(delay_ms, (_TIMER, node, incarnation, token, view))

    def local(self, node: int, incarnation: int, event: Event, delay_ms: int) -> None:
        self.scheduler.after(delay_ms, (_LOCAL, node, incarnation, event))

    def finalized(self, node: int, action: Finalized) -> None:
        if node not in self.checker.honest:
            return
        block = action.block
        header = block.header
        self.trace.update(b"F" + bytes([node]) + header.hash)
        self.signers_seen.update(action.certificate.signers)
        if header.height not in self.first_final_ms:
            now_ms = self.scheduler.now_ms
            self.first_final_ms[header.height] = now_ms
            self.finality_ms.append(now_ms - header.timestamp_ms)
        self.checker.finalized(node, block, action.certificate, action.descendants)

    def vote_sent(self, node: int, vote: Vote, persisted: SafetyState | None) -> None:
        checker = self.checker
        checker.vote_sent(node, vote.kind.name, vote.view, vote.block_hash)
        if node in checker.honest and "persisted-votes" in checker.enabled and not _covers(persisted, vote):
            checker.violate(
                "persisted-votes",
                node,
                f"{vote.kind.name} vote for view {vote.view} left before a Persist covering it "
                f"(disk holds {persisted})",
            )

    def evidence(self, node: int, action: Evidence) -> None:
        if node not in self.checker.honest:
            return
        accused = action.record.signer
        self.evidence_against[accused] = self.evidence_against.get(accused, 0) + 1
        self.checker.evidence(node, accused, action.record.describe())

    def decode(self, data: bytes) -> Message:
        """Strict decode, memoized per run: a broadcast's n-1 identical copies decode once.

        ``decode_message`` is a pure function of the bytes and messages are immutable, so
        handing every receiver the same result (or the same DecodeError) is exactly what
        decoding each copy would do, at a fraction of the cost.
        """
        cache = self._decoded
        hit = cache.get(data)
        if hit is None:
            try:
                hit = decode_message(data)
            except DecodeError as error:
                hit = str(error)
            if len(cache) >= DECODE_CACHE_ENTRIES_MAX:
                cache.clear()
            cache[data] = hit
        if type(hit) is str:
            raise DecodeError(hit)
        return hit

    def mark_invalid(self, block_hash: bytes) -> None:
        self.invalid_blocks += 1
        self.checker.mark_invalid(block_hash)

    def oversize(self, node: int, size_bytes: int) -> None:
        if node in self.checker.honest and "frame-size" in self.checker.enabled:
            self.checker.violate(
                "frame-size", node, f"tried to send {size_bytes} bytes, more than one frame ({MESSAGE_SIZE_MAX})"
            )

    # -- the run --------------------------------------------------------------------------

    def run(self) -> RunResult:
        scheduler = self.scheduler
        boot_rng = derive_rng(self.seed, "boot")
        for index in range(self.config.validators):
            scheduler.at(boot_rng.randint(0, BOOT_SPREAD_MS_MAX), (_BOOT, index))
        for crash in self.plan.crashes:
            scheduler.at(crash.at_ms, (_CRASH, crash.node))
            scheduler.at(crash.restart_ms, (_RESTART, crash.node))
        violation = self._loop()
        if violation is None:
            # Virtual time ran to the horizon (nothing happened after the last event), unless
            # the step guard stopped the run early: then the clock stands where it stopped.
            end_ms = scheduler.now_ms if self.step >= self.config.steps_max else self.config.end_ms
            self.checker.at_step(self.step, max(scheduler.now_ms, end_ms))
            self.checker.tick()
            violations = self.checker.drain()
            violation = violations[0] if violations else None
        return self._result(violation)

    def _loop(self) -> Violation | None:
        scheduler = self.scheduler
        checker = self.checker
        horizon_ms = self.config.end_ms
        steps_max = self.config.steps_max
        trace = self.trace
        nodes = self.nodes
        pack = struct.pack
        while self.step < steps_max:
            due_ms = scheduler.next_time_ms()
            if due_ms is None or due_ms > horizon_ms:
                return None
            item = scheduler.pop()
            self.step += 1
            checker.at_step(self.step, due_ms)
            kind = item[0]
            node = nodes[item[1]]
            try:
                if kind == _DELIVER:
                    _, _, src, data = item
                    if self.network.cut_at_delivery(src, node.index, due_ms) or not node.up:
                        if not node.up:
                            self.network.stats.to_down_node += 1
                        continue
                    self.network.stats.delivered += 1
                    trace.update(pack(">QBBB", due_ms, kind, node.index, src))
                    trace.update(data)
                    node.receive(src, data, due_ms)
                elif kind == _TIMER:
                    trace.update(pack(">QBBQ", due_ms, kind, node.index, item[4]))
                    node.timer_fired(item[2], item[3], item[4], due_ms)
                elif kind == _LOCAL:
                    trace.update(pack(">QBB", due_ms, kind, node.index))
                    node.local(item[2], item[3], due_ms)
                elif kind == _CRASH:
                    trace.update(pack(">QBB", due_ms, kind, node.index))
                    node.crash()
                    checker.crashed(node.index)
                elif kind in (_RESTART, _BOOT):
                    trace.update(pack(">QBB", due_ms, kind, node.index))
                    self._boot(node, due_ms)
            except Exception as exc:  # noqa: BLE001 - any crash of the code under test is a finding
                detail = "".join(traceback.format_exception(exc)[-6:]).strip()
                return Violation("exception", self.step, due_ms, node.index, f"{type(exc).__name__}: {exc}\n{detail}")
            checker.tick()
            violations = checker.drain()
            if violations:
                return violations[0]
        return None

    def _boot(self, node: SimNode, now_ms: int) -> None:
        if node.index in self.checker.honest:
            disk = node.disk
            header = disk.blocks[-1][0].header if disk.blocks else None
            self.checker.restarted(
                node.index, 0 if header is None else header.height,
                bytes(32) if header is None else header.hash, disk.log,
            )
        node.boot(now_ms)

    def _verify_finalization(self, block: Any, certificate: Any, descendants: tuple[Any, ...]) -> None:
        proof = FinalizationProof(headers=tuple(descendants), certificate=certificate)
        verify_finalization(self.genesis, block.header, proof, verify_sig=self._verify_sig)

    def _result(self, violation: Violation | None) -> RunResult:
        honest_nodes = [self.nodes[i] for i in self.honest]
        heights = [len(node.disk.blocks) for node in honest_nodes] or [0]
        views = [node.core.view for node in self.nodes if node.core is not None] or [0]
        totals: dict[str, int] = {}
        core_totals: dict[str, int] = {}
        for node in honest_nodes:
            for name in (f.name for f in fields(node.counters)):
                totals[name] = totals.get(name, 0) + getattr(node.counters, name)
            if node.core is not None:
                for name, count in node.core.counters.items():
                    core_totals[name] = core_totals.get(name, 0) + count
        behaviour_stats = {
            index: node.behaviour.stats() for index, node in enumerate(self.nodes) if isinstance(node, ByzantineNode)
        }
        return RunResult(
            seed=self.seed,
            steps=self.step,
            time_ms=self.scheduler.now_ms,
            violation=violation,
            trace_hash=self.trace.hexdigest(),
            height_max=max(heights),
            height_min=min(heights),
            finality_ms=self.finality_ms,
            views_max=max(views),
            links=self.network.stats,
            byzantine=dict(self.behaviour_of),
            behaviour_stats=behaviour_stats,
            evidence_against=dict(self.evidence_against),
            honest_counters=totals,
            core_counters=core_totals,
            invalid_blocks=self.invalid_blocks,
            crashes=len(self.plan.crashes),
            partitions=len(self.plan.partitions),
            mean_link_delay_ms=self.network.mean_healthy_delay_ms(),
            signers_seen=self.signers_seen,
            real_sizes=self.real_sizes,
            rejoin_worst_ms=self.checker.rejoin_worst_ms,
            catchup_blocks=core_totals.get("catchup_blocks", 0),
            cost=Cost.of(self.honest, self.traffic, self.counting_verifiers),
            finalized_heights=len(self.first_final_ms),
        )


def _covers(persisted: SafetyState | None, vote: Vote) -> bool:
    """Whether the state on disk already commits the node to ``vote`` (consensus.safety)."""
    if persisted is None:
        return False
    if persisted.view > vote.view:
        return True
    if persisted.view < vote.view:
        return False
    if vote.kind == VoteKind.NOTARIZE:
        return persisted.notarize == vote.block_hash
    if vote.kind == VoteKind.NULLIFY:
        return persisted.nullify
    # A finalize vote for v is signed only once entry into v + 1 is persisted.
    return False


def _keys(config: SimConfig, seed: int, real_sizes: bool) -> tuple[Genesis, list[Signer], Verifier, Any]:
    """The genesis, signers, verifier and a (key, message, signature) check for a run."""
    n = config.validators
    salt = seed.to_bytes(8, "big")
    if config.real_crypto:
        keys = [SigningKey(hashlib.sha256(b"pantheon-sim-key" + salt + bytes([i])).digest()) for i in range(n)]
        genesis = _genesis(tuple(key.public_key for key in keys))
        return genesis, [MLDSASigner(key, i) for i, key in enumerate(keys)], MLDSAVerifier(genesis), mldsa_verify
    signers, verifier, placeholders = sim_validators(
        n, salt=salt, signature_size=SIGNATURE_SIZE if real_sizes else SIM_SIGNATURE_SIZE
    )
    genesis = _genesis(placeholders)
    index_of = {key: index for index, key in enumerate(placeholders)}

    def verify_sig(public_key: bytes, message: bytes, signature: bytes) -> bool:
        index = index_of.get(public_key)
        return index is not None and verifier.verify(index, message, signature)

    return genesis, list(signers), verifier, verify_sig


def _genesis(keys: tuple[bytes, ...]) -> Genesis:
    return Genesis(
        chain_name="pantheon-sim",
        validators=keys,
        created_at_ms=0,
        anchor_every_blocks=100,
        anchor_every_ms=600_000,
        anchor_final_depth=6,
    )


def run_seed(config: SimConfig, seed: int) -> RunResult:
    """Run one seed to its horizon or its first violation."""
    return Simulation(config, seed).run()
