"""A validator refuses a block that repeats a root: one already logged, or one an unfinalized
ancestor carries. Roots waiting in its mempool (the usual case) cost no lookup."""

from __future__ import annotations

import os

import pytest

from consensus.block import build_block
from node.runtime import Node
from proof.compact import CompactRange


@pytest.fixture
def node(idle_node):
    return idle_node


def block_of(node: Node, roots: bytes, parent=None, log: CompactRange | None = None, view: int = 1):
    return build_block(genesis=node.genesis, view=view, parent=parent, log=log or node.log.compact_range(),
                       roots=roots, timestamp_ms=1)


def test_a_block_of_fresh_roots_passes(node):
    assert node._block_fault(block_of(node, os.urandom(32 * 50)), ()) is None


def test_a_block_of_roots_waiting_in_the_mempool_passes(node):
    roots = os.urandom(32 * 50)
    node.mempool.admit(roots, 1, owner="peer:1", durable=False)
    assert node._block_fault(block_of(node, roots), ()) is None


def test_a_block_repeating_a_logged_root_is_refused(node):
    logged = os.urandom(32 * 3)
    node.log.append(logged)
    fault = node._block_fault(block_of(node, os.urandom(32 * 10) + logged[32:64]), ())
    assert fault is not None and logged[32:64].hex()[:16] in fault


def test_a_block_repeating_a_root_of_an_unfinalized_ancestor_is_refused(node):
    first_roots = os.urandom(32 * 20)
    node.mempool.admit(first_roots, 1, owner="peer:1", durable=False)
    first = block_of(node, first_roots)
    edge = node.log.compact_range()
    edge.extend_roots(first_roots)
    child = block_of(node, os.urandom(32 * 5) + first_roots[64:96], parent=first.header, log=edge, view=2)
    fault = node._block_fault(child, (first,))
    assert fault is not None and first_roots[64:96].hex()[:16] in fault
