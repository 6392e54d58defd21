"""Tests of the spool's persist step (dis_logging._persist) and the buffer's spill hooks."""

from __future__ import annotations

import logging
import threading
from typing import List, Optional, Tuple

from dis_logging._persist import HIGH_WATER, Persister
from dis_logging._report import Reporter
from dis_logging.buffer import Batch, RecordBuffer

Entry = Tuple[bytes, Optional[str]]


class FakeSpool:
    """Stores entries in a list; refuses everything beyond ``capacity`` entries."""

    def __init__(self, capacity: int = 10**9) -> None:
        self.rows: List[Entry] = []
        self.capacity = capacity
        self.puts = 0
        self.threads: List[str] = []

    @property
    def pending_records(self) -> int:
        return len(self.rows)

    def put(self, entries):
        self.puts += 1
        self.threads.append(threading.current_thread().name)
        room = max(self.capacity - len(self.rows), 0)
        self.rows.extend(list(entries)[:room])
        return min(room, len(entries))

    def read(self, max_records, max_bytes):
        return [], []

    def ack(self, ids):
        return None

    def close(self):
        return None


def make(capacity: int = 10**9, records: int = 100, mode: str = "outage"):
    buffer = RecordBuffer(records, 1_000_000, batch_records=10, batch_bytes=100_000)
    spool = FakeSpool(capacity)
    lines: List[str] = []
    stored_events: List[int] = []

    def take() -> Optional[Batch]:
        return buffer.take(10, 100_000)

    persister = Persister(
        buffer,
        lambda: spool,
        take=take,
        serialize=lambda batch: batch,
        mode=mode,
        batch_records=10,
        batch_bytes=100_000,
        flush_interval=60.0,
        reporter=Reporter(lines.append, interval=60.0),
        sending_threads=set(),
        in_outage=lambda: False,
        on_stored=lambda: stored_events.append(1),
        on_spool_used=lambda: None,
    )
    return buffer, spool, persister, lines


def fill(buffer: RecordBuffer, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        buffer.put(b"r%03d" % i, None, logging.INFO)


class TestHooks:
    def test_high_water_wakes_the_persist_step(self):
        """A put that reaches half the queue's bound sets the persist step's event."""
        buffer, _, persister, _ = make(records=100)
        fill(buffer, int(100 * HIGH_WATER) - 1)
        assert not persister._event.is_set()
        fill(buffer, 1, start=99)
        assert persister._event.is_set()

    def test_full_queue_hands_off_instead_of_dropping(self):
        """Records beyond a full queue are handed off, not shed, and nothing touches the disk."""
        buffer, spool, _, _ = make(records=20)
        fill(buffer, 35)
        counts = buffer.snapshot()
        assert (35, 0) == (counts.emitted, counts.dropped)
        assert 0 == spool.puts  # the caller's thread wrote nothing

    def test_hand_off_never_opens_the_spool_on_the_caller(self):
        """The hand-off parks batches without asking for the spool, so no caller opens it."""
        buffer, spool, persister, _ = make(records=20)
        callers: List[str] = []

        def get_spool():
            callers.append(threading.current_thread().name)
            return spool

        persister._get_spool = get_spool
        fill(buffer, 35)
        assert [] == callers
        assert (35, 0) == (buffer.snapshot().emitted, buffer.snapshot().dropped)

    def test_hand_off_leaves_records_to_the_policy_when_the_spool_is_unusable(self):
        """While the spool could not be opened, a full queue sheds per its overflow policy."""
        buffer, spool, persister, _ = make(records=20)
        persister._is_unusable = lambda: True
        fill(buffer, 35)
        counts = buffer.snapshot()
        assert (35, 15, 20) == (counts.emitted, counts.dropped, counts.queued)
        assert 0 == spool.puts

    def test_parked_batches_are_written_first_and_in_order(self):
        """persist() writes handed-off batches before newer buffered records, oldest first."""
        buffer, spool, persister, _ = make(records=20)
        fill(buffer, 35)
        assert 35 == persister.persist(everything=True)
        assert [b"r%03d" % i for i in range(35)] == [data for data, _ in spool.rows]
        counts = buffer.snapshot()
        assert (0, 35, 0) == (counts.queued, counts.spooled, counts.dropped)


class TestPersist:
    def test_outside_an_outage_only_the_excess_is_written(self):
        """Below the high-water mark nothing moves; above it the oldest go down to half of it."""
        buffer, spool, persister, _ = make(records=100)
        fill(buffer, 20)
        assert 0 == persister.persist(everything=False)
        fill(buffer, 40, start=20)
        stored = persister.persist(everything=False)
        assert stored > 0
        assert len(buffer) < 100 * HIGH_WATER / 2 + 10
        assert [b"r%03d" % i for i in range(stored)] == [data for data, _ in spool.rows]

    def test_refused_records_stay_in_memory_and_writes_pause(self):
        """What the spool refuses goes back to the queue unchanged, and writing pauses."""
        buffer, _, persister, lines = make(capacity=15, records=100)
        fill(buffer, 30)
        assert 15 == persister.persist(everything=True)
        counts = buffer.snapshot()
        assert (15, 15, 0, 0) == (counts.queued, counts.spooled, counts.dropped, counts.retried)
        assert not persister.is_accepting
        assert 0 == persister.put_entries([(b"x", None)])
        assert 1 == len(lines)
        persister.resume()
        assert persister.is_accepting

    def test_always_mode_thread_writes_within_the_interval(self):
        """The persist thread of "always" mode writes buffered records without being asked."""
        buffer, spool, persister, _ = make(records=100, mode="always")
        persister.flush_interval = 0.01
        fill(buffer, 3)
        assert persister.start()
        try:
            pause = threading.Event()
            for _ in range(500):
                if len(spool.rows) == 3:
                    break
                pause.wait(0.01)
        finally:
            persister.stop()
            assert persister.join(5.0)
        assert 3 == len(spool.rows)
        assert {"dis-logging-spool"} == set(spool.threads)

    def test_a_stuck_spool_never_blocks_the_caller_for_long(self, monkeypatch):
        """With the spool stuck, one caller waits the hand-off bound; later ones shed at once."""
        import dis_logging._persist as persist_module

        monkeypatch.setattr(persist_module, "HANDOFF_WAIT", 0.01)
        buffer, spool, persister, _ = make(records=20)
        release = threading.Event()
        original_put = spool.put

        def stuck_put(entries):
            release.wait(30)
            return original_put(entries)

        spool.put = stuck_put
        persister.flush_interval = 0.01
        assert persister.start()
        try:
            fill(buffer, 200)  # returns: queue and hand-off full, the rest shed per the policy
            counts = buffer.snapshot()
            assert 200 == counts.emitted
            assert counts.dropped > 0
            assert counts.queued + counts.dropped == 200  # nothing reached the stuck spool yet
            assert persister._stalled  # the callers after the first wait shed without waiting
        finally:
            release.set()
            persister.stop()
            assert persister.join(5.0)
