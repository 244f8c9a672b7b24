"""The mempool against a model of what it promises, under random sequences of operations.

The mempool keeps roots by *arrival* (node.mempool), with one record per durable
submission deleted a finalization after its last root is logged. That bookkeeping is
easy to get subtly wrong in ways no hand-written case thinks of: a root moved from a
gossip arrival to a submission, a record deleted while a root of it still waits, a
restart between a finalization and the deletion that follows. The model is plain sets:

- waiting: every root admitted and not yet finalized, once;
- durable: the waiting roots some producer submitted (a restart keeps exactly these);
- logged: the finalized roots, which never come back.
"""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from node.mempool import Mempool, split_roots, stored_arrivals
from storage.db import Store
from storage.merkle_log import MerkleLog

UNIVERSE = [bytes([seed]) * 32 for seed in range(1, 25)]
OWNERS = ["alice", "bob", "peer:1", "peer:2"]


class MempoolModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self._dir = tempfile.mkdtemp(prefix="mempool-model-")
        self.store = Store(self._dir)
        self.log = MerkleLog(self.store)
        self.pool = Mempool(self.store, self.log, roots_max=len(UNIVERSE))
        self.waiting: dict[bytes, str] = {}
        self.durable: set[bytes] = set()
        self.logged: set[bytes] = set()
        self.last_block: set[bytes] = set()
        self.clock = 0

    def teardown(self) -> None:
        import shutil

        self.store.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    @rule(owner=st.sampled_from(OWNERS), picks=st.lists(st.sampled_from(UNIVERSE), min_size=1, max_size=8))
    def admit(self, owner: str, picks: list[bytes]) -> None:
        durable = not owner.startswith("peer:")
        self.clock += 1
        admission = self.pool.admit(b"".join(picks), self.clock, owner=owner, durable=durable)
        expected = []
        for position, root in enumerate(picks):
            if root in self.logged:
                expected.append("logged")
            elif root in self.waiting or root in picks[:position]:
                expected.append("pending")
            else:
                expected.append("new")
        assert list(admission.states) == expected
        for root in picks:
            if root in self.logged:
                continue
            if root not in self.waiting:
                self.waiting[root] = owner
                if durable:
                    self.durable.add(root)
            elif durable and root not in self.durable:
                self.waiting[root] = owner  # a gossiped root a producer submitted moves to it
                self.durable.add(root)

    @rule(owner=st.sampled_from(OWNERS[:2]), picks=st.lists(st.sampled_from(UNIVERSE), min_size=1, max_size=8))
    def submission_whose_group_commit_fails(self, owner: str, picks: list[bytes]) -> None:
        """Its record is never written (a full disk): its roots wait as gossip would."""
        self.clock += 1
        admission = self.pool.admit(b"".join(picks), self.clock, owner=owner, write=False)
        self.pool.abandon(admission)
        for root in picks:
            if root not in self.logged and (root not in self.waiting or root not in self.durable):
                self.waiting[root] = owner

    @precondition(lambda self: self.waiting)
    @rule(data=st.data())
    def finalize(self, data: st.DataObject) -> None:
        """What the node does with a finalized block: the append and the deletion of finished
        records in one batch, then forget."""
        block = data.draw(st.lists(st.sampled_from(sorted(self.waiting)), min_size=1, unique=True))
        staged = self.log.stage_append(b"".join(block))
        with self.store.batch() as batch:
            staged.write_to(batch)
            self.pool.delete_finished(batch)
        self.log.commit(staged)
        self.pool.forget(b"".join(block))
        for root in block:
            del self.waiting[root]
            self.durable.discard(root)
            self.logged.add(root)
        self.last_block = set(block)

    @rule()
    def restart(self) -> None:
        self.store.close()
        self.store = Store(self._dir)
        self.log = MerkleLog(self.store)
        self.pool = Mempool(self.store, self.log, roots_max=len(UNIVERSE))
        self.waiting = {root: owner for root, owner in self.waiting.items() if root in self.durable}
        self.last_block = set()

    @rule(count=st.integers(min_value=1, max_value=30))
    def take(self, count: int) -> None:
        taken = split_roots(self.pool.take(count))
        assert len(taken) == len(set(taken)) == min(count, len(self.waiting))
        assert set(taken) <= set(self.waiting)

    @invariant()
    def the_waiting_roots_are_the_models(self) -> None:
        assert len(self.pool) == len(self.waiting)
        assert all(root in self.pool for root in self.waiting)
        assert {root for root in self.waiting if self.pool.is_durable(root)} == self.durable

    @invariant()
    def every_owner_holds_what_the_model_says(self) -> None:
        for owner in OWNERS:
            assert self.pool.held_by(owner) == sum(1 for held in self.waiting.values() if held == owner), owner

    @invariant()
    def every_durable_root_is_in_a_record_and_records_hold_nothing_else_unlogged(self) -> None:
        recorded = [set(split_roots(data)) for _key, _at, _owner, data in stored_arrivals(self.store)]
        assert self.durable <= set().union(*recorded)
        assert all(roots - self.logged <= self.durable for roots in recorded)

    @invariant()
    def a_record_of_logged_roots_lasts_until_the_next_finalization_only(self) -> None:
        """Deleted in the batch of the finalization after the one that logged its last root
        (or at start): any left must have finished in the latest finalization."""
        for _key, _at, _owner, data in stored_arrivals(self.store):
            roots = set(split_roots(data))
            if roots <= self.logged:
                assert roots & self.last_block, "a finished record outlived the next finalization"


TestMempoolModel = MempoolModel.TestCase
TestMempoolModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
