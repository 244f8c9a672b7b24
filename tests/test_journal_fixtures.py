"""Helpers shared by the journal tests (no tests here): journals with a fixed clock, rewritten
files, and proof bundles for a journal head on a small real chain."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

from journal.entry import Entry, Kind, digest, sign_entry
from journal.records import MAGIC, frame, scan
from journal.writer import JOURNAL_FILE, Journal
from proof.bundle import Bundle
from proof.mldsa import SigningKey
from tests import merkle_reference
from tests import chain_fixtures

TIME_BASE_MS = 1_767_225_600_000


def clock() -> Callable[[], int]:
    """A deterministic clock: one millisecond per call."""
    ticks = count()
    return lambda: TIME_BASE_MS + next(ticks)


def sample_journal(directory: Path, *, key: SigningKey | None = None) -> Journal:
    """A journal of 8 entries: init, two actions (one failed), a note, an open intent (6), a note."""
    journal = Journal.create(directory, key=key, clock_ms=clock(), meta={"system": "test"})
    with journal.action("fetch", {"source": digest(b"source")}) as act:
        act.outcome({"data": digest(b"data")})
    try:
        with journal.action("train", {"data": digest(b"data")}):
            raise RuntimeError("diverged")
    except RuntimeError:
        pass
    journal.note("checkpoint", {"model": digest(b"model")}, meta={"round": 3})
    journal.append(Kind.INTENT, "deploy", {"model": digest(b"model")})
    journal.note("monitor", meta={"alerts": 0})
    return journal


def payloads(directory: Path) -> list[bytes]:
    return list(scan((directory / JOURNAL_FILE).read_bytes()).payloads)


def rewrite(directory: Path, records: list[bytes]) -> None:
    """Replace the journal file by these record payloads, correctly framed (so only the entries are wrong)."""
    (directory / JOURNAL_FILE).write_bytes(MAGIC + b"".join(frame(p) for p in records))


def resign(entry: Entry, key: SigningKey, **changes) -> Entry:
    """``entry`` with ``changes``, signed by ``key`` (which it then names as its signer)."""
    fields = dict(seq=entry.seq, prev=entry.prev, time_ms=entry.time_ms, kind=entry.kind, action=entry.action,
                  inputs=entry.inputs, meta=entry.meta, outputs=entry.outputs, ref=entry.ref, pubkey=entry.pubkey)
    fields.update(changes)
    return sign_entry(key, **fields)


@dataclass
class ProvedChain:
    """A one-validator chain whose blocks log journal heads, for pending bundles without a node."""

    chain: chain_fixtures.TestChain
    logged: list[bytes] = field(default_factory=list)

    @property
    def genesis_bytes(self) -> bytes:
        return self.chain.genesis.encode()

    def bundle_for(self, root: bytes, *, others: int = 2) -> bytes:
        """A pending bundle proving ``root`` in a new block (with ``others`` other roots before it)."""
        roots = [os.urandom(32) for _ in range(others)] + [root]
        before = self.chain.log.size
        block = self.chain.add_block(b"".join(roots))
        self.logged += roots
        index = before + others
        bundle = Bundle(root=root, index=index, path=tuple(merkle_reference.path(index, self.logged)),
                        header=block.header, finality=self.chain.proofs[-1])
        return bundle.encode()


def proved_chain() -> ProvedChain:
    return ProvedChain(chain_fixtures.make_chain(1, name="journal-tests"))
