"""Group commit: one synced write for all the submissions that arrive together.

A receipt promises that its roots survive kill -9 and power loss, so each submission
used to write its own synced LevelDB batch, on the event loop, before answering. Under
load that is one fsync per request, and the loop (consensus, gossip, every other
request) waited on each. Here submissions hand their records to one writer task. While
it writes a batch in a worker thread (plyvel releases the GIL), the next submissions
gather in the following batch; each request waits only for the batch that holds its
own records, and is answered after that batch is synced, never before.

A request whose roots were all already waiting here still waits: their records may be in
a batch that is not yet synced (another request's), and its receipt promises the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from node.mempool import Admission, Mempool
from storage.db import Store
from storage.errors import StoreWriteError


@dataclass(eq=False)
class Flush:
    """One synced batch: the admissions it makes durable, and when it is done, how it ended."""

    admissions: list[Admission] = field(default_factory=list)
    done: trio.Event = field(default_factory=trio.Event)
    error: StoreWriteError | None = None


class GroupCommit:
    """Writes the mempool records of many submissions in one synced batch at a time."""

    def __init__(self, store: Store, mempool: Mempool,
                 on_flushed: Callable[[int], None] = lambda admissions: None) -> None:
        """``on_flushed(admissions)`` is told how many submissions each batch made durable (for metrics)."""
        self._store = store
        self._mempool = mempool
        self._on_flushed = on_flushed
        self._open = Flush()
        self._in_flight: Flush | None = None
        self._wake = trio.Event()

    def add(self, admission: Admission) -> Flush | None:
        """The batch to wait for before ``admission``'s receipt may go out (None: nothing is
        unsynced, neither its records nor any other's)."""
        if admission.to_persist:
            self._open.admissions.append(admission)
            self._wake.set()
            return self._open
        if self._open.admissions:
            return self._open
        return self._in_flight

    async def wait(self, flush: Flush | None) -> None:
        """Return once ``flush`` is synced; raise its StoreWriteError if it failed."""
        if flush is None:
            return
        await flush.done.wait()
        if flush.error is not None:
            raise flush.error

    async def run(self) -> None:
        """The writer task: one batch at a time, for as long as the node runs."""
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            if not self._open.admissions:
                continue
            flush, self._open = self._open, Flush()
            self._in_flight = flush
            try:
                await trio.to_thread.run_sync(self._write, flush.admissions)
            except StoreWriteError as exc:
                flush.error = exc
                for admission in flush.admissions:
                    self._mempool.abandon(admission)
            finally:
                self._in_flight = None
                flush.done.set()
            self._on_flushed(len(flush.admissions))

    def _write(self, admissions: list[Admission]) -> None:
        with self._store.batch(sync=True) as batch:
            for admission in admissions:
                self._mempool.stage(admission, batch)
