"""New roots are gossiped to the peers connected now; a peer that is down gets them in the
blocks that carry them, not as a backlog of gossip on reconnect."""

from __future__ import annotations

import os

import pytest

from node.runtime import GOSSIP_ROOTS_PER_FRAME_MAX, Node


@pytest.fixture
def node(idle_node):
    return idle_node


def queued(node: Node) -> dict[int, int]:
    return {index: peer.queue.frames for index, peer in node.peers._peers.items()}


def test_roots_are_gossiped_only_to_connected_peers(node, monkeypatch):
    monkeypatch.setattr(node.peers, "connected_peers", lambda: frozenset({2}))
    node._gossip(os.urandom(32 * 10))
    assert queued(node) == {1: 0, 2: 1, 3: 0}


def test_nothing_is_queued_while_no_peer_is_connected(node):
    node._gossip(os.urandom(32 * 10))
    assert set(queued(node).values()) == {0}


def test_a_large_submission_is_gossiped_in_frames_that_each_fit(node, monkeypatch):
    monkeypatch.setattr(node.peers, "connected_peers", lambda: frozenset({1, 3}))
    node._gossip(os.urandom(32 * (GOSSIP_ROOTS_PER_FRAME_MAX + 1)))
    assert queued(node) == {1: 2, 2: 0, 3: 2}
