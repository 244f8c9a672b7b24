"""Crash safety of the journal: SIGKILL a real writer process at random moments, reopen, check.

The child (this file run as a script) appends in a loop: actions (intent, then a short
random pause standing in for the work, then the outcome), notes, and now and then a key
rotation. After each append returns it writes ``<seq> <head hex>`` to an acknowledgement
file and fsyncs it: that line is what a caller was promised. The parent kills the child
with SIGKILL once it has acknowledged a random number of appends (the kill lands wherever
the child is: signing, writing the record, fsyncing, inside the action's block, between
the rotation's key file and its entry), then checks:

- the journal opens read-only and verifies (every signature and link) up to its last
  complete entry; a torn tail, if any, is reported and cut off only by ``repair``;
- no acknowledged entry is lost: the chain hash after the last acknowledged seq is the
  acknowledged head;
- every intent without an outcome is reported as open ("started, no recorded outcome");
- the journal opens for writing again (the producer key file matches the active key,
  also after a kill in the middle of a rotation) and the next child appends on.

Kills: 60 by default (about 10 s); PANTHEON_JOURNAL_CRASH_KILLS for a longer run,
PANTHEON_JOURNAL_CRASH_SEED to replay one (the seed is printed on failure).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from journal.entry import Kind, digest
from journal.writer import Journal, load, repair

KILLS = int(os.environ.get("PANTHEON_JOURNAL_CRASH_KILLS", "60"))
SEED = int(os.environ.get("PANTHEON_JOURNAL_CRASH_SEED", str(random.SystemRandom().randrange(2**32))))
ACKS_BEFORE_KILL_MAX = 8
ACK_TIMEOUT_S = 30.0
ACK_POLL_S = 0.001
REPO = Path(__file__).resolve().parent.parent


def test_journal_survives_repeated_sigkill_of_its_writer(tmp_path):
    rng = random.Random(SEED)
    directory = tmp_path / "journal"
    Journal.create(directory).close()
    acks = tmp_path / "acks"
    acks.touch()
    torn_seen = 0
    for kill in range(KILLS):
        context = f"seed {SEED}, kill {kill}"
        try:
            _run_child_until_killed(rng, directory, acks, tmp_path / f"child-{kill}.stderr", context)
            torn_seen += _check_reopened(directory, _acks(acks)[-1], context)
        except Exception as exc:
            exc.add_note(f"replay with PANTHEON_JOURNAL_CRASH_SEED={SEED} ({context})")
            raise
    entries = load(directory).entries
    rotations_seen = sum(1 for e in entries if e.kind == Kind.KEY_ROTATION) - 1
    print(f"{KILLS} kills, {len(entries)} entries, {rotations_seen} rotations, {torn_seen} torn tails repaired")
    assert len(entries) > KILLS


def _run_child_until_killed(rng, directory, acks, stderr_path, context):
    wanted = _ack_count(acks) + rng.randint(1, ACKS_BEFORE_KILL_MAX)
    with open(stderr_path, "wb") as stderr:
        child = subprocess.Popen(
            [sys.executable, __file__, str(directory), str(acks), str(rng.randrange(2**32))],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr,
        )
        try:
            deadline = time.monotonic() + ACK_TIMEOUT_S
            while _ack_count(acks) < wanted:
                if child.poll() is not None:
                    raise AssertionError(f"{context}: child died: {stderr_path.read_text(errors='replace')[-2000:]}")
                assert time.monotonic() < deadline, f"{context}: too few acks in {ACK_TIMEOUT_S} s"
                time.sleep(ACK_POLL_S)
            time.sleep(rng.random() * 0.01)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
    assert child.returncode == -signal.SIGKILL, f"{context}: child ended by itself ({child.returncode})"


def _check_reopened(directory, acked, context):
    acked_seq, acked_head = acked
    loaded = load(directory)
    walker = loaded.walker
    assert walker.length > acked_seq, f"{context}: acknowledged entry {acked_seq} lost ({walker.length} entries)"
    assert walker.chain_hash_at(acked_seq) == acked_head, f"{context}: acknowledged head changed"
    closed = {e.ref for e in loaded.entries if e.kind == Kind.OUTCOME}
    unclosed = {e.seq for e in loaded.entries if e.kind == Kind.INTENT and e.seq not in closed}
    assert {i.seq for i in loaded.report.open_intents} == unclosed, f"{context}: open intents misreported"
    torn = 0
    if loaded.torn is not None:
        assert repair(directory) == loaded.torn, context
        torn = 1
    with Journal.open(directory) as journal:
        assert journal.size == walker.length and journal.head == walker.head, context
    return torn


def _ack_count(path):
    return path.read_bytes().count(b"\n")


def _acks(path):
    """Acknowledged (seq, head) pairs: complete lines only (a torn last line was never acknowledged)."""
    lines = path.read_bytes().split(b"\n")[:-1]
    return [(int(seq), bytes.fromhex(head.decode())) for seq, head in (line.split() for line in lines)]


def _child(directory: str, ack_path: str, seed: int) -> None:
    """Append until killed, acknowledging each durable entry."""
    rng = random.Random(seed)
    journal = Journal.open(Path(directory))
    with open(ack_path, "ab") as ack:

        def acknowledge(entry):
            ack.write(b"%d %s\n" % (entry.seq, journal.head.hex().encode()))
            ack.flush()
            os.fsync(ack.fileno())

        while True:
            choice = rng.random()
            if choice < 0.05:
                acknowledge(journal.rotate_key())
            elif choice < 0.3:
                acknowledge(journal.note("heartbeat", {"state": digest(rng.randbytes(16))}, meta={"n": rng.randrange(99)}))
            else:
                with journal.action("aggregate", {"update": digest(rng.randbytes(32))}) as act:
                    acknowledge(act.intent)
                    time.sleep(rng.random() * 0.004)
                    acknowledge(act.outcome({"model": digest(rng.randbytes(32))}))


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], int(sys.argv[3]))
