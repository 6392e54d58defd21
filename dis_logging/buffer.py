"""The bounded, thread-safe record queue between the application's threads and the flusher.

:class:`RecordBuffer` holds encoded records in two ``collections.deque`` objects, one for records
below ``priority_level`` (DEBUG and INFO by default) and one for the rest, so that shedding the
oldest low-priority record is O(1) however full the buffer is. Every record carries a sequence
number; batches are cut from the front of both deques in sequence order, which keeps emission
order, and records that must be sent again go back to the front in their original place.

The buffer is also the ledger: one lock guards the queue and the counters, so a :meth:`snapshot`
always satisfies ``emitted + adopted == sent + dropped + failed + queued + spooled`` (``queued``
includes records in flight; ``adopted`` and ``spooled`` stay 0 without a spool).

With a spool, the flusher installs two spill hooks (:meth:`RecordBuffer.set_spill`): one wakes its
persist step when the queue passes a high-water mark, the other lets a record that finds the queue
full hand the oldest batch to the spool on the caller's thread before any record is shed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import (
    Callable,
    Deque,
    Dict,
    Final,
    Iterable,
    List,
    Optional,
    Sequence,
    Tuple,
    cast,
)

from dis_logging.config import DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_BATCH_RECORDS
from dis_logging.serializer import Payload

__all__ = ["Batch", "BufferCounts", "FlushWatch", "Item", "RecordBuffer"]

#: One queued record: (sequence number, payload, partition key, level number, time of first failure
#: on the flusher's clock or 0.0 before any failure). The payload is ``bytes``, or a record captured
#: on the caller's thread that the flusher serializes (:meth:`RecordBuffer.resolve`); from the
#: first send attempt on, it is ``bytes``.
Item = Tuple[int, Payload, Optional[str], int, float]


def payload_size(data: Payload) -> int:
    """Bytes a payload counts for: its length, or a captured record's estimate (item 1).

    Args:
        data: ``bytes`` or a captured record.

    Returns:
        The size in bytes used for ``max_queue_bytes`` and for cutting batches.
    """
    return len(data) if data.__class__ is bytes else data[1]  # estimate of a capture


def _item_size(item: Item) -> int:
    data = item[1]
    size = len(data) if data.__class__ is bytes else data[1]  # estimate of a capture
    return size if item[2] is None else size + len(item[2])


OVERFLOW_DROP_OLDEST: Final = "drop_oldest"
OVERFLOW_DROP_NEWEST: Final = "drop_newest"
OVERFLOW_BLOCK: Final = "block"


@dataclass(frozen=True)
class Batch:
    """Records cut from the buffer for one PutRecords request, oldest first.

    Attributes:
        items: the queued records, in sequence order.
        data_bytes: total payload bytes (partition keys excluded, as DIS counts them); estimated
            for captured records until :meth:`RecordBuffer.resolve` serialized them.
        token: identifies the batch while it is in flight.
    """

    items: Tuple[Item, ...]
    data_bytes: int
    token: int

    @property
    def entries(self) -> List[Tuple[bytes, Optional[str]]]:
        """``(data, partition_key)`` pairs, as ``DISClient.put_records`` takes them.

        Only for a batch whose payloads are all ``bytes`` (see :attr:`is_serialized`).
        """
        pairs = [(item[1], item[2]) for item in self.items]
        return cast(List[Tuple[bytes, Optional[str]]], pairs)

    @property
    def is_serialized(self) -> bool:
        """Whether every payload is ``bytes`` (nothing left for the serialize step)."""
        return all(item[1].__class__ is bytes for item in self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class BufferCounts:
    """Counters of a :class:`RecordBuffer` at one instant (see :meth:`RecordBuffer.snapshot`).

    Attributes:
        emitted: records offered to the buffer (including those refused at once).
        sent: records DIS acknowledged.
        dropped: records discarded by the overflow or oversize policy or left unsent at close.
        failed: records DIS rejected permanently, or that ran out of retry time.
        retried: resends of records (a record resent twice counts twice).
        queued: records buffered or in flight.
        in_flight: the part of ``queued`` that is in flight.
        queued_bytes: payload bytes buffered (not in flight).
        drops: ``dropped`` split by reason (``"overflow"``, ``"oversize"``, ``"close"``, ...).
        spooled: records handed to the on-disk spool and not yet sent, failed or lost from it.
        adopted: records the spool found on disk rather than received from this buffer.
    """

    emitted: int
    sent: int
    dropped: int
    failed: int
    retried: int
    queued: int
    in_flight: int
    queued_bytes: int
    drops: Dict[str, int]
    spooled: int = 0
    adopted: int = 0


class FlushWatch:
    """Tracks whether any record up to ``target`` was lost while a flush waits for it.

    Made by :meth:`RecordBuffer.watch`; the buffer sets ``lost`` under its lock.

    Args:
        target: the highest sequence number the flush covers.

    Attributes:
        target: as passed.
        lost: ``True`` once a record with sequence number ``<= target`` was dropped or failed.
    """

    __slots__ = ("lost", "target")

    def __init__(self, target: int) -> None:
        self.target = target
        self.lost = False


#: Seconds between two checks of :attr:`RecordBuffer.stop_blocking` by a waiting "block" put.
BLOCK_POLL: Final = 0.05


class RecordBuffer:
    """Bounded FIFO of encoded records with level-aware shedding and exact loss counters.

    Args:
        max_records: records the buffer holds at most (in-flight batches not included), >= 1;
            no default.
        max_bytes: payload and key bytes the buffer holds at most, >= 1; no default. A single
            record larger than this is always refused.
        overflow: what a full buffer does with a new record: ``"drop_oldest"`` (default) evicts
            the oldest record, ``"drop_newest"`` refuses the new one, ``"block"`` waits up to
            ``block_timeout`` seconds for room and then refuses it. Whatever the policy, a record
            below ``priority_level`` is shed before any record at or above it.
        block_timeout: seconds a ``"block"`` put waits; default 1.0; ``0`` does not wait, so
            ``"block"`` then behaves like ``"drop_newest"``.
        priority_level: records at this level number or above are kept in preference; default
            ``logging.WARNING``. ``0`` treats all records alike (all are priority records).
        batch_records: a put that brings the buffer to this many records reports "batch ready";
            default :data:`~dis_logging.config.DEFAULT_MAX_BATCH_RECORDS` (500). ``0`` makes
            every put report it.
        batch_bytes: likewise in payload and key bytes; default
            :data:`~dis_logging.config.DEFAULT_MAX_BATCH_BYTES` (1,000,000).
        wake: called (without the lock) when a ``"block"`` put starts waiting, so the consumer
            drains; default ``None``, no call.
        on_lost: called (without the lock, on the thread that settles or drains) with the
            payloads given up on and a reason: ``"failed"`` from :meth:`settle`, the drop reason
            from :meth:`drain`, ``"close"`` for records of a batch that comes back after
            :meth:`close`; default ``None``, no call. It must not raise.
        on_late: called (without the lock) when a batch settles after :meth:`close`, with a
            one-line account of its records (sent, failed, dropped); default ``None``, no call.
            It must not raise.

    Raises:
        ValueError: ``overflow`` is not one of the three policies.
    """

    def __init__(
        self,
        max_records: int,
        max_bytes: int,
        *,
        overflow: str = OVERFLOW_DROP_OLDEST,
        block_timeout: float = 1.0,
        priority_level: int = logging.WARNING,
        batch_records: int = DEFAULT_MAX_BATCH_RECORDS,
        batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        wake: Optional[Callable[[], None]] = None,
        on_lost: Optional[Callable[[List[Payload], str], None]] = None,
        on_late: Optional[Callable[[str], None]] = None,
    ) -> None:
        if overflow not in (OVERFLOW_DROP_OLDEST, OVERFLOW_DROP_NEWEST, OVERFLOW_BLOCK):
            raise ValueError(f"unknown overflow policy {overflow!r}")
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.overflow = overflow
        self.block_timeout = block_timeout
        self.priority_level = priority_level
        self.batch_records = batch_records
        self.batch_bytes = batch_bytes
        self._wake = wake
        self._on_lost = on_lost
        self._on_late = on_late
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self._settled = threading.Condition(self._lock)
        self._low: Deque[Item] = deque()
        self._high: Deque[Item] = deque()
        self._bytes = 0  # payload + key bytes buffered (not in flight)
        self._seq = 0
        self._tokens = 0
        self._in_flight: Dict[int, Tuple[int, int]] = {}  # token -> (records, lowest seq)
        self._in_flight_records = 0
        self._watches: List[FlushWatch] = []
        self._closed = False
        #: Set (without the lock: a signal handler may do it) when the process is about to end
        #: (SIGTERM): "block" puts stop waiting, within BLOCK_POLL, and no put waits any more.
        self.stop_blocking = False
        self._close_token = 0  # batches up to this token were taken before close()
        self._sent = 0
        self._failed = 0
        self._retried = 0
        self._drops: Dict[str, int] = {}
        self._spooled = 0
        self._adopted = 0
        # Spill hooks (see set_spill); None without a spool.
        self._on_high_water: Optional[Callable[[], None]] = None
        self._on_full: Optional[Callable[[], None]] = None
        self._high_records = max_records + 1
        self._high_bytes = max_bytes + 1
        # Records refused on a reentrant path (a signal handler, or logging from inside the
        # handler) are noted here without the lock, which this thread may be holding already,
        # and folded into the counters by the next caller that holds the lock. list.append and
        # a slice deletion are each atomic under the GIL.
        self._reentrant: List[None] = []

    def __repr__(self) -> str:
        return (
            f"RecordBuffer(records={len(self._low) + len(self._high)}/{self.max_records}, "
            f"bytes={self._bytes}/{self.max_bytes}, "
            f"overflow={self.overflow!r})"
        )

    def __len__(self) -> int:
        return len(self._low) + len(self._high)

    def set_spill(
        self,
        on_high_water: Callable[[], None],
        on_full: Callable[[], None],
        *,
        high_records: int,
        high_bytes: int,
    ) -> None:
        """Install the spool's hooks; called once by a flusher that has a spool.

        Args:
            on_high_water: called (without the lock, on the caller's thread) after a put that left
                at least ``high_records`` records or ``high_bytes`` bytes buffered; it must be
                cheap (an ``Event.set``).
            on_full: called (without the lock, on the caller's thread) when a record finds the
                buffer full, before the overflow policy sheds anything; it may move the oldest
                records out of the buffer and must return within a bounded time.
            high_records: the high-water mark in records, >= 1.
            high_bytes: the high-water mark in payload and key bytes, >= 1.
        """
        self._high_records = high_records
        self._high_bytes = high_bytes
        self._on_full = on_full
        self._on_high_water = on_high_water

    @property
    def buffered_bytes(self) -> int:
        """Payload and key bytes buffered now, not in flight (read without the lock)."""
        return self._bytes

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest record offered so far, refused ones included.

        0 before the first record.
        """
        return self._seq

    def put(self, data: Payload, key: Optional[str], levelno: int) -> bool:
        """Queue one record, shedding per the overflow policy when full.

        Under the ``"block"`` policy this may wait up to ``block_timeout`` seconds for room.

        Args:
            data: the encoded payload, or a captured record (its estimated size counts).
            key: the partition key, or ``None`` for none; its length counts towards ``max_bytes``.
            levelno: the record's level number; decides which deque it joins.

        Returns:
            ``True`` when the buffer now holds at least one full batch (time to wake the consumer);
            ``False`` otherwise, including when the record was refused (counted as an
            ``"overflow"`` drop).
        """
        size = len(data) if data.__class__ is bytes else data[1]  # estimate of a capture
        if key is not None:
            size += len(key)
        high = levelno >= self.priority_level
        on_full = self._on_full
        if on_full is not None and (
            len(self._low) + len(self._high) >= self.max_records
            or self._bytes + size > self.max_bytes
        ):
            # Read without the lock: a stale answer only means one spill more or less.
            on_full()
        with self._lock:
            if self._reentrant:
                self._absorb_reentrant()
            count = len(self._low) + len(self._high)
            total = self._bytes + size
            if count >= self.max_records or total > self.max_bytes or self._closed:
                # A "block" wait releases the lock, so the sequence number is taken afterwards:
                # each deque must stay sorted by it.
                if self._closed or not self._make_room(size, high) or self._closed:
                    # After close() nothing drains the buffer any more, and a "block" wait
                    # releases the lock, so close() may have run meanwhile: such a record is
                    # counted, never left queued.
                    self._seq += 1
                    self._count_drop("closed" if self._closed else "overflow", self._seq)
                    return False
                count = len(self._low) + len(self._high)
                total = self._bytes + size
            seq = self._seq = self._seq + 1
            (self._high if high else self._low).append((seq, data, key, levelno, 0.0))
            self._bytes = total
            ready = count + 1 >= self.batch_records or total >= self.batch_bytes
            spill = self._on_high_water is not None and (
                count + 1 >= self._high_records or total >= self._high_bytes
            )
        if spill and self._on_high_water is not None:
            self._on_high_water()
        return ready

    def refuse(self, reason: str) -> None:
        """Count one record that never entered the buffer (for example, oversize with ``"drop"``).

        Args:
            reason: the drop reason reported in :attr:`BufferCounts.drops`.
        """
        with self._lock:
            self._seq += 1
            self._count_drop(reason, self._seq)

    def refuse_reentrant(self) -> None:
        """Count one record refused on a reentrant path, without taking the lock.

        For a record logged by a signal handler or by code the handler itself runs (a filter,
        formatter or partition key that logs) while this thread may hold the lock: taking it
        again would deadlock. The record is counted as dropped, reason ``"reentrant"``, as soon as
        any thread next holds the lock (every :meth:`snapshot` does).
        """
        self._reentrant.append(None)

    def take(self, max_records: int, max_bytes: int) -> Optional[Batch]:
        """Cut the oldest records into a batch and mark them in flight.

        Args:
            max_records: records per batch at most, >= 1.
            max_bytes: payload bytes per batch at most (partition keys excluded); a single larger
                record still forms a batch on its own.

        Returns:
            The batch, or ``None`` when the buffer is empty.
        """
        with self._lock:
            low, high = self._low, self._high
            if not low and not high:
                return None
            items: List[Item] = []
            size = 0
            keyed = 0
            if not low or not high:
                # One level class queued (the usual case): pop in order from that deque alone,
                # without comparing the heads of both each time.
                source = low or high
                popleft = source.popleft
                append = items.append
                for _ in range(min(max_records, len(source))):
                    item = popleft()
                    data = item[1]
                    length = len(data) if data.__class__ is bytes else data[1]  # estimate
                    if size + length > max_bytes and items:
                        source.appendleft(item)
                        break
                    append(item)
                    size += length
                    key = item[2]
                    keyed += length if key is None else length + len(key)
                return self._cut(items, size, keyed)
            while len(items) < max_records and (low or high):
                if not high or (low and low[0][0] < high[0][0]):
                    source = low
                else:
                    source = high
                item = source[0]
                data = item[1]
                length = len(data) if data.__class__ is bytes else data[1]  # estimate of a capture
                if items and size + length > max_bytes:
                    break
                source.popleft()
                items.append(item)
                size += length
                keyed += length if item[2] is None else length + len(item[2])
            return self._cut(items, size, keyed)

    def _cut(self, items: List[Item], size: int, keyed: int) -> Batch:
        """Book ``items``, just taken off the deques, as one batch in flight (lock held)."""
        self._bytes -= keyed
        self._tokens += 1
        batch = Batch(tuple(items), size, self._tokens)
        self._in_flight[batch.token] = (len(items), items[0][0])
        self._in_flight_records += len(items)
        self._space.notify_all()
        return batch

    def resolve(
        self, batch: Batch, payloads: Sequence[Optional[bytes]], max_bytes: int
    ) -> Optional[Batch]:
        """Swap a batch's payloads for their serialized bytes; keep it within ``max_bytes``.

        The flusher calls this after :func:`~dis_logging.serializer.serialize_payloads`, outside
        the lock. Records serialized to ``None`` (oversize with ``oversize="drop"``) are counted
        as dropped, reason ``"oversize"``. When the real sizes push the batch past ``max_bytes``
        (the capture's estimate was low), the records that no longer fit go back to the front of
        the buffer, already serialized; items past the end of a shorter ``payloads`` (a
        serialize step stopped by its byte budget) go back as they are.

        Args:
            batch: a batch from :meth:`take`, still in flight.
            payloads: one entry per item of ``batch``, in order, or per leading item.
            max_bytes: payload bytes per batch at most; the first record always stays.

        Returns:
            The batch to send (same token), or ``None`` when no record of it is left to send.
        """
        keep: List[Item] = []
        back: List[Item] = []
        dropped: List[Item] = []
        size = 0
        items = batch.items
        if len(payloads) == len(items):
            # The usual outcome: every record serialized, and the batch still within its limit.
            try:
                size = sum(map(len, payloads))  # type: ignore[arg-type]  # a None: TypeError
            except TypeError:
                size = -1
            if 0 <= size <= max_bytes:
                # Same records, same order: the ledger's entry for the batch stays as it is.
                if batch.token not in self._in_flight:
                    return None  # forgotten by a fork reset
                serialized = cast(Sequence[bytes], payloads)  # no None: sum() took every len
                ready: Tuple[Item, ...] = tuple(
                    [
                        (seq, data, key, lv, first)
                        for (seq, _, key, lv, first), data in zip(items, serialized)
                    ]
                )
                return Batch(ready, size, batch.token)
            size = 0
        for item, data in zip(items, payloads):
            if data is None:
                dropped.append(item)
                continue
            resolved = (item[0], data, item[2], item[3], item[4])
            if back or (keep and size + len(data) > max_bytes):
                back.append(resolved)
                continue
            keep.append(resolved)
            size += len(data)
        back.extend(batch.items[len(payloads) :])  # not serialized: back as they are
        with self._lock:
            if self._in_flight.pop(batch.token, None) is None:
                return None  # forgotten by a fork reset
            self._in_flight_records -= len(batch.items)
            if dropped:
                self._drops["oversize"] = self._drops.get("oversize", 0) + len(dropped)
                if self._watches:
                    self._mark_lost(min(item[0] for item in dropped))
            if back and self._closed:
                # Nothing drains a closed buffer: what does not fit goes, counted.
                self._drops["close"] = self._drops.get("close", 0) + len(back)
                if self._watches:
                    self._mark_lost(back[0][0])
            elif back:
                self._requeue(back)
            if not keep:
                self._settled.notify_all()
                return None
            self._in_flight[batch.token] = (len(keep), keep[0][0])
            self._in_flight_records += len(keep)
            if dropped or back:
                self._settled.notify_all()
        return Batch(tuple(keep), size, batch.token)

    def settle(
        self,
        batch: Batch,
        *,
        sent: Sequence[Item] = (),
        retry: Sequence[Item] = (),
        failed: Sequence[Item] = (),
        spooled: Sequence[Item] = (),
        dropped: Sequence[Item] = (),
        drop_reason: str = "spool_full",
        unsent: Sequence[Item] = (),
    ) -> None:
        """Record the outcome of a batch; retried records go back to the front, in order.

        Every item of ``batch`` must appear in exactly one of the groups.

        Args:
            batch: the batch returned by :meth:`take`.
            sent: records DIS acknowledged; default none.
            retry: records to send again; default none. They keep their sequence numbers and
                are placed ahead of newer records. If the buffer is over its bounds afterwards,
                the oldest (``"drop_oldest"``) or newest (other policies) records are shed,
                without blocking.
            failed: records given up on; default none.
            spooled: records handed to the on-disk spool; default none. From now on the spool
                accounts for them.
            dropped: records discarded, counted under ``drop_reason``; default none.
            drop_reason: the reason for ``dropped``; default ``"spool_full"``.
            unsent: records taken but never sent (a rate-limit wait did not fit the caller's
                deadline); they go back to the front like ``retry`` but are not counted as retried.

        A batch that is no longer in flight (settled already, or forgotten by a fork reset) is
        ignored.
        """
        late: List[Item] = []
        with self._lock:
            if self._in_flight.pop(batch.token, None) is None:
                return  # settled already (a fork reset the ledger)
            self._in_flight_records -= len(batch.items)
            closed = self._closed
            in_flight_at_close = closed and batch.token <= self._close_token
            if closed:
                # close() has returned: nothing will send these again. They are the final
                # outcome of the request that was in flight then, and are counted now.
                late = [*retry, *unsent]
                retry = unsent = ()
                if late:
                    self._drops["close"] = self._drops.get("close", 0) + len(late)
            self._sent += len(sent)
            self._failed += len(failed)
            self._spooled += len(spooled)
            if dropped:
                self._drops[drop_reason] = self._drops.get(drop_reason, 0) + len(dropped)
            lost = [item[0] for group in (failed, dropped, late) for item in group]
            if lost and self._watches:
                self._mark_lost(min(lost))
            if retry:
                self._retried += len(retry)
                self._requeue(retry)
            if unsent:
                self._requeue(unsent)
            self._settled.notify_all()
        if failed and self._on_lost is not None:
            self._on_lost([item[1] for item in failed], "failed")
        if late and self._on_lost is not None:
            self._on_lost([item[1] for item in late], "close")
        if dropped and drop_reason in ("close", "exit") and self._on_lost is not None:
            self._on_lost([item[1] for item in dropped], drop_reason)
        if in_flight_at_close and self._on_late is not None:
            self._on_late(
                f"a request still in flight at close() ended: {len(sent)} record(s) sent, "
                f"{len(failed)} failed, {len(late) + len(dropped)} dropped"
                + (f", {len(spooled)} spooled" if spooled else "")
            )

    def count_spool_outcome(self, *, sent: int = 0, failed: int = 0, lost: int = 0) -> None:
        """Count records that left the spool: delivered, rejected, or lost with a corrupt file.

        Args:
            sent: spooled records DIS acknowledged; default 0.
            failed: spooled records DIS rejected for good; default 0.
            lost: spooled records lost with a spool file found corrupt, counted as dropped
                (``"spool_corrupt"``); default 0.
        """
        with self._lock:
            self._sent += sent
            self._failed += failed
            if lost:
                self._drops["spool_corrupt"] = self._drops.get("spool_corrupt", 0) + lost
            self._spooled -= sent + failed + lost

    def count_adopted(self, records: int) -> None:
        """Count records the spool found on disk (orphans, or its own file reopened).

        Args:
            records: how many; they count as ``adopted`` and as ``spooled``.
        """
        with self._lock:
            self._adopted += records
            self._spooled += records

    def is_batch_ready(self, records: int, data_bytes: int) -> bool:
        """Whether ``records`` records or ``data_bytes`` bytes are buffered (read without a lock).

        Args:
            records: the batch size in records.
            data_bytes: the batch size in payload and key bytes.

        Returns:
            ``True`` when a full batch can be cut.
        """
        return len(self._low) + len(self._high) >= records or self._bytes >= data_bytes

    def drain(self, reason: str = "close") -> int:
        """Drop everything buffered (not in flight) and count it under ``reason``.

        Args:
            reason: the drop reason reported in :attr:`BufferCounts.drops`; default
                ``"close"``.

        Returns:
            How many records were dropped.
        """
        lost: List[Item] = []
        with self._lock:
            count = len(self._low) + len(self._high)
            if count:
                if self._on_lost is not None:
                    lost = sorted((*self._low, *self._high), key=lambda item: item[0])
                lowest = min(q[0][0] for q in (self._low, self._high) if q)
                self._drops[reason] = self._drops.get(reason, 0) + count
                self._low.clear()
                self._high.clear()
                self._bytes = 0
                if self._watches:
                    self._mark_lost(lowest)
                self._space.notify_all()
                self._settled.notify_all()
        if lost and self._on_lost is not None:
            self._on_lost([item[1] for item in lost], reason)
        return count

    def close(self) -> None:
        """Close the buffer for good: ``"block"`` puts stop waiting, and from now on every put is
        refused (counted as dropped, reason ``"closed"``) and records of batches that come back
        are dropped (reason ``"close"``) instead of queued, as nothing will send them."""
        with self._lock:
            self._closed = True
            self._close_token = self._tokens
            self._space.notify_all()

    def has_pending(self, upto: int) -> bool:
        """Whether any record with sequence number ``<= upto`` is buffered or in flight.

        Args:
            upto: the highest sequence number of interest, usually a :attr:`last_seq` reading.

        Returns:
            ``True`` when such a record has not been settled yet.
        """
        with self._lock:
            return self._pending_locked(upto)

    def has_buffered(self, upto: Optional[int] = None) -> bool:
        """Whether a buffered (not in-flight) record exists, optionally with seq ``<= upto``.

        Args:
            upto: the highest sequence number of interest; default ``None``, any record.

        Returns:
            ``True`` when the oldest buffered record qualifies.
        """
        with self._lock:
            head = self._head_seq()
        return head is not None and (upto is None or head <= upto)

    def watch(self, target: int) -> FlushWatch:
        """Start watching for losses of records with sequence number ``<= target``.

        Args:
            target: the highest sequence number the caller waits for.

        Returns:
            The watch; pass it to :meth:`unwatch` when done.
        """
        watch = FlushWatch(target)
        with self._lock:
            self._watches.append(watch)
        return watch

    def unwatch(self, watch: FlushWatch) -> None:
        """Stop watching (call in a ``finally``).

        Args:
            watch: a watch from :meth:`watch`; one already removed is ignored.
        """
        with self._lock:
            if watch in self._watches:
                self._watches.remove(watch)

    def wait_settled(self, upto: int, timeout: float) -> bool:
        """Wait until nothing with sequence number ``<= upto`` is buffered or in flight.

        Args:
            upto: the sequence number to wait for.
            timeout: seconds to wait at most; ``0`` only checks.

        Returns:
            ``True`` when nothing up to ``upto`` is pending any more.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._pending_locked(upto):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._settled.wait(remaining)
            return True

    def wait_in_flight(self, upto: int, timeout: float) -> bool:
        """Wait until no batch holding a record with sequence number ``<= upto`` is in flight.

        Args:
            upto: the sequence number to wait for.
            timeout: seconds to wait at most; ``0`` only checks.

        Returns:
            ``True`` when no such batch is in flight any more.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while any(low <= upto for _, low in self._in_flight.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._settled.wait(remaining)
            return True

    def snapshot(self, *, wait: bool = True) -> BufferCounts:
        """Return all counters, read atomically.

        Args:
            wait: wait for the lock (default). ``False`` reads without it when it is taken, for a
                caller that may hold it already (a signal handler); the counters may then be
                off by a record that moves between two of them meanwhile.

        Returns:
            A frozen :class:`BufferCounts`, consistent with itself because every counter is read
            under one lock.
        """
        locked = self._lock.acquire(wait)
        try:
            if locked and self._reentrant:
                self._absorb_reentrant()
            buffered = len(self._low) + len(self._high)
            pending = 0 if locked else len(self._reentrant)
            return BufferCounts(
                emitted=self._seq + pending,  # every put and refuse takes one sequence number
                sent=self._sent,
                dropped=sum(self._drops.values()) + pending,
                failed=self._failed,
                retried=self._retried,
                queued=buffered + self._in_flight_records,
                in_flight=self._in_flight_records,
                queued_bytes=self._bytes,
                drops=self._drops_with(pending),
                spooled=self._spooled,
                adopted=self._adopted,
            )
        finally:
            if locked:
                self._lock.release()

    def _head_seq(self) -> Optional[int]:
        low, high = self._low, self._high
        if low and high:
            return min(low[0][0], high[0][0])
        if low:
            return low[0][0]
        if high:
            return high[0][0]
        return None

    def _pending_locked(self, upto: int) -> bool:
        """:meth:`has_pending` for a caller that already holds the lock."""
        head = self._head_seq()
        if head is not None and head <= upto:
            return True
        return any(low <= upto for _, low in self._in_flight.values())

    def _drops_with(self, reentrant: int) -> Dict[str, int]:
        drops = dict(self._drops)
        if reentrant:
            drops["reentrant"] = drops.get("reentrant", 0) + reentrant
        return drops

    def _absorb_reentrant(self) -> None:
        """Fold the records refused by :meth:`refuse_reentrant` into the counters (lock held)."""
        pending = self._reentrant
        count = len(pending)
        del pending[:count]  # appends made meanwhile stay for the next call
        self._seq += count
        self._drops["reentrant"] = self._drops.get("reentrant", 0) + count
        if self._watches:
            self._mark_lost(self._seq - count + 1)

    def _count_drop(self, reason: str, seq: int) -> None:
        self._drops[reason] = self._drops.get(reason, 0) + 1
        if self._watches:
            self._mark_lost(seq)

    def _mark_lost(self, lowest_seq: int) -> None:
        for watch in self._watches:
            if lowest_seq <= watch.target:
                watch.lost = True

    def _is_full(self, extra_bytes: int) -> bool:
        return (
            len(self._low) + len(self._high) >= self.max_records
            or self._bytes + extra_bytes > self.max_bytes
        )

    def _make_room(self, size: int, high: bool) -> bool:
        """Shed per policy until ``size`` more bytes fit; ``False`` refuses the new record."""
        if size > self.max_bytes:
            # Larger than the whole bound: a record cut to max_record_bytes (which the handler
            # caps at this bound) plus its partition key. It may enter an empty buffer alone;
            # waiting ("block") or shedding could never make room for it otherwise.
            return not self._low and not self._high
        if (
            self.overflow == OVERFLOW_BLOCK
            and self.block_timeout > 0
            and not self._closed
            and not self.stop_blocking
        ):
            self._block(size)
            if not self._is_full(size):
                return True
        if self.overflow == OVERFLOW_DROP_OLDEST:
            while self._low and self._is_full(size):
                self._evict(self._low, oldest=True)
            if not self._is_full(size):
                return True
            if not high:
                return False  # only priority records remain: the new low-priority one goes
            while self._high and self._is_full(size):
                self._evict(self._high, oldest=True)
            return not self._is_full(size)
        # drop_newest, and block after its wait: a priority record may displace the newest
        # low-priority ones; a low-priority record is refused.
        if not high:
            return False
        while self._low and self._is_full(size):
            self._evict(self._low, oldest=False)
        return not self._is_full(size)

    def _block(self, size: int) -> None:
        """Wake the consumer, then wait up to ``block_timeout`` until ``size`` more bytes fit."""
        wake = self._wake
        if wake is not None:
            # Waking runs user-invisible code (an Event.set); do it without holding our lock.
            self._lock.release()
            try:
                wake()
            finally:
                self._lock.acquire()
        deadline = time.monotonic() + self.block_timeout
        while self._is_full(size) and not self._closed and not self.stop_blocking:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            # In slices: stop_blocking is set without the lock, so nothing notifies the wait.
            self._space.wait(min(remaining, BLOCK_POLL))

    def _evict(self, queue: Deque[Item], *, oldest: bool) -> None:
        item = queue.popleft() if oldest else queue.pop()
        self._bytes -= _item_size(item)
        self._count_drop("overflow", item[0])

    def _requeue(self, items: Iterable[Item]) -> None:
        """Put ``items`` back in sequence order ahead of newer records, then enforce bounds."""
        back_low: List[Item] = []
        back_high: List[Item] = []
        for item in items:
            (back_high if item[3] >= self.priority_level else back_low).append(item)
        for queue, back in ((self._low, back_low), (self._high, back_high)):
            if not back:
                continue
            back.sort()
            # Usually every buffered record is newer than the returning ones; with several batches
            # in flight some may be older, so merge just the overlapping head.
            overlap: List[Item] = []
            while queue and queue[0][0] < back[-1][0]:
                overlap.append(queue.popleft())
            merged = sorted(back + overlap) if overlap else back
            queue.extendleft(reversed(merged))
            self._bytes += sum(map(_item_size, back))
        # Returning records may push the buffer over its bounds; shed like a put would, never block.
        oldest = self.overflow == OVERFLOW_DROP_OLDEST
        while (self._low or self._high) and (
            len(self._low) + len(self._high) > self.max_records or self._bytes > self.max_bytes
        ):
            self._evict(self._low if self._low else self._high, oldest=oldest)
