"""The flusher's persist step: buffered records -> the on-disk spool, apart from the send step.

A :class:`Persister` belongs to a :class:`~dis_logging.flusher.Flusher` that has a spool. It runs
its own thread (``dis-logging-spool``), so neither a request in flight nor a backoff ever keeps
records from disk:

* ``spool_mode="always"``: every buffered record is written at least every ``flush_interval``,
  and earlier when the queue passes its high-water mark;
* ``spool_mode="outage"``: while the flusher counts an outage (repeated failures) every buffered
  record is written; otherwise only when the queue passes its high-water mark, and then the
  oldest records, until the queue is back under half of that mark.

A record that finds the memory queue full hands the oldest batch over (:meth:`Persister.hand_off`):
the batch leaves the queue at once and waits, with at most ``max_queue_records`` others, for the
persist thread. When that hand-off is full too, the caller waits at most :data:`HANDOFF_WAIT` for
the persist thread to take a batch from it (and after one such wait ran out, nobody waits again
until the persist thread made progress: a hung disk costs the application one wait, not one per
record). So a burst that outruns the thread is not dropped while the spool has room, the caller
never touches the disk, and memory stays bounded by twice the queue's bound.

When the spool cannot take a batch (``spool_max_bytes`` reached, disk full, I/O error) the records
stay in memory for the send step, and the persister tries again after ``flush_interval``; only the
memory queue's own overflow policy can then drop records.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Callable, Deque, Final, Optional, Sequence, Set

from dis_logging._report import ReporterLike, error_key
from dis_logging.buffer import Batch, RecordBuffer
from dis_logging.client import Entry

if TYPE_CHECKING:  # the flusher imports this module; the protocol lives there
    from dis_logging.flusher import SpoolLike

__all__ = ["HANDOFF_WAIT", "HIGH_WATER", "Persister"]

#: Thread name of the persist step.
THREAD_NAME: Final = "dis-logging-spool"
#: Fraction of ``max_queue_records``/``max_queue_bytes`` at which the persist step wakes early.
HIGH_WATER: Final = 0.5
#: Longest wait, in seconds, of a caller's thread whose record finds both the queue and the
#: hand-off full, before the record falls back to the memory queue's overflow policy.
HANDOFF_WAIT: Final = 0.25
#: Shortest pause, in seconds, before writing to a spool that refused a batch is tried again.
MIN_RETRY_PAUSE: Final = 0.1


class Persister:
    """Moves buffered records into the spool from its own thread and from overflowing callers.

    Args:
        buffer: the memory queue; the persister installs its spill hooks on it.
        get_spool: returns the spool, opening it on first use; ``None`` while it is unusable.
        take: cuts the next batch from ``buffer`` and serializes it; ``None`` when it is empty.
        serialize: serializes a batch cut raw from ``buffer`` (the hand-off takes batches on the
            caller's thread, where nothing is serialized); ``None`` when nothing of it is left.
        mode: ``"always"`` or ``"outage"`` (see the module docstring).
        batch_records: records per spool transaction at most.
        batch_bytes: payload bytes per spool transaction at most.
        flush_interval: seconds between two writes of everything buffered (``"always"``, or an
            outage), and the pause after the spool refused a batch.
        reporter: diagnostics channel.
        sending_threads: thread idents the handler ignores records from; the thread adds itself.
        in_outage: tells whether the send step counts an outage now.
        on_stored: called after records were stored (wakes the send step).
        on_spool_used: called after every spool write (brings the counters up to date with what
            the spool adopted or lost).
        is_unusable: tells, without any I/O, that the spool could not be opened lately (the
            hand-off then leaves records to the overflow policy); default: never.
        clock: monotonic time source; default :func:`time.monotonic`.
    """

    def __init__(
        self,
        buffer: RecordBuffer,
        get_spool: Callable[[], Optional[SpoolLike]],
        *,
        take: Callable[[], Optional[Batch]],
        serialize: Callable[[Batch], Optional[Batch]],
        mode: str,
        batch_records: int,
        batch_bytes: int,
        flush_interval: float,
        reporter: ReporterLike,
        sending_threads: Set[int],
        in_outage: Callable[[], bool],
        on_stored: Callable[[], None],
        on_spool_used: Callable[[], None],
        is_unusable: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.buffer = buffer
        self.mode = mode
        self.batch_records = batch_records
        self.batch_bytes = batch_bytes
        self.flush_interval = flush_interval
        self._get_spool = get_spool
        self._take = take
        self._serialize = serialize
        self._reporter = reporter
        self._sending_threads = sending_threads
        self._in_outage = in_outage
        self._on_stored = on_stored
        self._on_spool_used = on_spool_used
        self._is_unusable = is_unusable
        self._clock = clock
        self._writer = threading.Lock()  # one writer at a time keeps the spool oldest first
        self._event = threading.Event()
        self._stop = threading.Event()
        self._paused_until = 0.0
        self._thread: Optional[threading.Thread] = None
        # Batches overflowing callers took out of the queue for the persist thread, oldest first.
        self._handoff: Deque[Batch] = deque()
        self._handoff_records = 0
        self._handoff_ready = threading.Condition(threading.Lock())  # notified when one leaves
        # Set when a caller's wait for the hand-off ran out (the persist step is stuck, on a hung
        # disk say): later callers do not wait at all until the persist step takes a batch again.
        self._stalled = False
        self._low_records = max(int(buffer.max_records * HIGH_WATER) // 2, 1)
        self._low_bytes = max(int(buffer.max_bytes * HIGH_WATER) // 2, 1)
        buffer.set_spill(
            self.wake,
            self.hand_off,
            high_records=max(int(buffer.max_records * HIGH_WATER), 1),
            high_bytes=max(int(buffer.max_bytes * HIGH_WATER), 1),
        )

    def __repr__(self) -> str:
        alive = self._thread is not None and self._thread.is_alive()
        return f"Persister(mode={self.mode!r}, running={alive})"

    @property
    def is_accepting(self) -> bool:
        """Whether the spool takes records now (it exists and did not just refuse a batch)."""
        return self._clock() >= self._paused_until and self._get_spool() is not None

    def start(self, name: str = THREAD_NAME) -> bool:
        """Start the thread unless it runs or was stopped; ``True`` when it runs afterwards.

        Args:
            name: the thread's name; default ``dis-logging-spool``.
        """
        if self._thread is not None:
            return self._thread.is_alive()
        if self._stop.is_set():
            return False
        thread = threading.Thread(target=self._run, name=name, daemon=True)
        try:
            thread.start()
        except RuntimeError as exc:  # no new threads at interpreter shutdown
            self._reporter.report(error_key(exc), f"cannot start the spool thread: {exc}")
            return False
        self._thread = thread
        return True

    def resume(self) -> None:
        """Forget a pause after a refusal: the next write tries the spool at once."""
        self._paused_until = 0.0

    def wake(self) -> None:
        """Ask the thread to write now (the high-water hook; cheap when already asked)."""
        if not self._event.is_set():
            self._event.set()

    def stop(self) -> None:
        """Ask the thread to exit; does not wait."""
        self._stop.set()
        self._event.set()
        with self._handoff_ready:
            self._handoff_ready.notify_all()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the thread; ``True`` when it is not running."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(max(timeout, 0.0))
        return not thread.is_alive()

    @property
    def has_handoff(self) -> bool:
        """Whether batches handed off by overflowing callers wait to be written."""
        return bool(self._handoff)

    def persist(self, *, everything: bool) -> int:
        """Write handed-off batches, then buffered records, to the spool, oldest first.

        The writer slot is taken per batch, so the send step's own writes (failed batches in an
        outage) interleave with a long run instead of waiting for all of it.

        Args:
            everything: write every buffered record; ``False`` writes only while the queue is at
                or above half its high-water mark.

        Returns:
            How many records were stored; 0 when the spool is unusable or paused after a refusal.
        """
        stored = 0
        buffer = self.buffer
        while True:
            with self._writer:
                spool = self._get_spool()
                if spool is None or self._clock() < self._paused_until:
                    self._return_handoff()
                    break
                parked = self._pop_handoff()
                if parked is not None:
                    batch = self._serialize(parked)
                    if batch is None:
                        continue  # every record of it was dropped as oversize
                else:
                    if not (
                        everything
                        or len(buffer) >= self._low_records
                        or buffer.buffered_bytes >= self._low_bytes
                    ):
                        break
                    batch = self._take()
                    if batch is None:
                        break
                count = self._store(spool, batch)
                stored += count
                if count < len(batch):
                    self._return_handoff()
                    break
        if stored:
            self._on_stored()
        return stored

    def hand_off(self) -> None:
        """On a caller's thread whose record finds the queue full: move the oldest batch out.

        The batch is parked for the persist thread while fewer than ``max_queue_records``
        records are parked. When that many are parked already, the caller waits at most
        :data:`HANDOFF_WAIT` for the persist thread to start writing one of them; once such a
        wait ran out, later callers do not wait until the persist thread makes progress. The
        caller never touches the disk. While the spool is paused or unusable it returns at once,
        and the overflow policy applies.
        """
        if self._stop.is_set() or self._clock() < self._paused_until or self._is_unusable():
            return
        limit = self.buffer.max_records
        with self._handoff_ready:
            if self._handoff_records >= limit:
                if self._stalled:
                    return  # one caller waited in vain already: no more waits until progress
                self.wake()
                deadline = time.monotonic() + HANDOFF_WAIT
                while self._handoff_records >= limit:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self._stalled = True
                        return
                    if self._stop.is_set():
                        return
                    if self._clock() < self._paused_until:
                        return
                    self._handoff_ready.wait(remaining)
            batch = self.buffer.take(self.batch_records, self.batch_bytes)
            if batch is not None:
                self._handoff.append(batch)
                self._handoff_records += len(batch)
        self.wake()

    def _pop_handoff(self) -> Optional[Batch]:
        with self._handoff_ready:
            if not self._handoff:
                return None
            batch = self._handoff.popleft()
            self._handoff_records -= len(batch)
            self._stalled = False
            self._handoff_ready.notify_all()
            return batch

    def _return_handoff(self) -> None:
        """Put parked batches back at the front of the queue (the spool refuses records now)."""
        while True:
            batch = self._pop_handoff()
            if batch is None:
                return
            self.buffer.settle(batch, unsent=batch.items)

    def put_entries(self, entries: Sequence[Entry]) -> int:
        """Store entries the send step could not deliver (in an outage), under the writer slot.

        Args:
            entries: ``(data, partition_key)`` pairs, oldest first.

        Returns:
            How many leading entries were stored; 0 while the spool is paused or unusable.
        """
        with self._writer:
            if self._clock() < self._paused_until:
                return 0
            spool = self._get_spool()
            if spool is None:
                return 0
            try:
                stored = spool.put(entries)
            finally:
                self._on_spool_used()
            if stored < len(entries):
                self._refused(stored, len(entries))
            return stored

    def _store(self, spool: SpoolLike, batch: Batch) -> int:
        """Spool one batch; what it refuses goes back to the queue (caller holds the slot)."""
        stored = 0
        try:
            stored = spool.put(batch.entries)
        finally:
            # Whatever happened, every record of the batch is settled: stored ones now count as
            # spooled, the rest return to the front of the queue unchanged (not as retries).
            items = batch.items
            self.buffer.settle(batch, spooled=items[:stored], unsent=items[stored:])
            self._on_spool_used()
        if stored < len(batch):
            self._refused(stored, len(batch))
        return stored

    def _refused(self, stored: int, offered: int) -> None:
        """Pause writing for a while and report the refusal (once per report window)."""
        self._paused_until = self._clock() + max(self.flush_interval, MIN_RETRY_PAUSE)
        self._reporter.report(
            ("SpoolRefused", None),
            f"the spool took {stored} of {offered} record(s) (full at spool_max_bytes, disk full"
            " or unusable); the rest stay in memory and are sent from there",
        )

    def _run(self) -> None:
        ident = threading.get_ident()
        self._sending_threads.add(ident)
        try:
            while not self._stop.is_set():
                self._event.wait(self.flush_interval)
                self._event.clear()
                if self._stop.is_set():
                    break
                everything = self.mode == "always" or self._in_outage()
                try:
                    self.persist(everything=everything)
                except BaseException as exc:  # noqa: BLE001 - the persist thread must survive anything
                    # (SystemExit from a user's callable too; see Flusher._run)
                    self._reporter.report(
                        error_key(exc), f"unexpected error in the spool thread: {exc!r}"
                    )
        finally:
            self._sending_threads.discard(ident)
