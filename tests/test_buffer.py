"""Tests for dis_logging.buffer: order, batching, overflow policies, shedding and the ledger."""

from __future__ import annotations

import logging
import threading
import time
from typing import List, Optional, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dis_logging.buffer import Batch, Item, RecordBuffer

INFO, WARNING = logging.INFO, logging.WARNING


def fill(buffer: RecordBuffer, count: int, level: int = INFO, size: int = 10, start: int = 0):
    for i in range(start, start + count):
        buffer.put(f"{i:0{size}d}".encode(), None, level)


def take(buffer: RecordBuffer, records: int = 10, data_bytes: int = 10_000) -> Batch:
    batch = buffer.take(records, data_bytes)
    assert batch is not None
    return batch


def payloads(batch: Optional[Batch]) -> List[str]:
    assert batch is not None
    return [cast(bytes, item[1]).decode() for item in batch.items]


def invariant_holds(buffer: RecordBuffer) -> bool:
    c = buffer.snapshot()
    return c.emitted == c.sent + c.dropped + c.failed + c.queued


class TestOrderAndBatches:
    def test_batches_keep_emission_order_across_levels(self):
        """Batches hold records in emission order even when levels alternate."""
        buffer = RecordBuffer(100, 10_000)
        for i in range(6):
            buffer.put(str(i).encode(), None, WARNING if i % 2 else INFO)
        assert ["0", "1", "2", "3", "4", "5"] == payloads(buffer.take(10, 10_000))

    def test_batch_record_limit(self):
        """A batch holds at most max_records records."""
        buffer = RecordBuffer(100, 10_000)
        fill(buffer, 25)
        assert [10, 10, 5] == [len(take(buffer, 10, 10_000)) for _ in range(3)]

    def test_batch_byte_limit(self):
        """A batch's payload stays within max_bytes."""
        buffer = RecordBuffer(100, 10_000)
        fill(buffer, 10, size=100)
        batch = take(buffer, 100, 350)
        assert (3, 300) == (len(batch), batch.data_bytes)

    def test_single_oversized_record_still_forms_a_batch(self):
        """A record larger than the batch budget is sent alone rather than blocking the queue."""
        buffer = RecordBuffer(100, 10_000)
        buffer.put(b"x" * 500, None, INFO)
        assert 1 == len(take(buffer, 10, 100))

    def test_take_from_empty_is_none(self):
        """Taking from an empty buffer returns None."""
        assert RecordBuffer(10, 100).take(10, 100) is None

    def test_put_reports_a_ready_batch(self):
        """put returns True once a full batch by records or bytes is buffered."""
        buffer = RecordBuffer(100, 10_000, batch_records=3, batch_bytes=1000)
        results = [buffer.put(b"x", None, INFO) for _ in range(3)]
        assert [False, False, True] == results
        big = RecordBuffer(100, 10_000, batch_records=100, batch_bytes=50)
        assert big.put(b"y" * 60, None, INFO)

    def test_retried_records_go_back_to_the_front(self):
        """Records settled for retry are taken again before newer records, in their old order."""
        buffer = RecordBuffer(100, 10_000)
        fill(buffer, 3)
        batch = take(buffer, 3, 10_000)
        fill(buffer, 2, start=3)
        buffer.settle(batch, sent=batch.items[1:2], retry=[batch.items[0], batch.items[2]])
        assert ["0000000000", "0000000002", "0000000003", "0000000004"] == payloads(
            buffer.take(10, 10_000)
        )

    def test_retry_merges_with_older_buffered_records(self):
        """With two batches in flight, a retried later batch merges in sequence order."""
        buffer = RecordBuffer(100, 10_000)
        fill(buffer, 4)
        first = take(buffer, 2, 10_000)
        second = take(buffer, 2, 10_000)
        buffer.settle(second, retry=second.items)
        buffer.settle(first, retry=first.items)
        assert ["0000000000", "0000000001", "0000000002", "0000000003"] == payloads(
            buffer.take(10, 10_000)
        )


class TestOverflow:
    def test_drop_oldest_counts_exactly(self):
        """drop_oldest keeps the newest records and counts every eviction."""
        buffer = RecordBuffer(5, 10_000)
        fill(buffer, 12)
        assert ["0000000007", "0000000008", "0000000009", "0000000010", "0000000011"] == payloads(
            buffer.take(10, 10_000)
        )
        assert {"overflow": 7} == buffer.snapshot().drops

    @pytest.mark.parametrize("overflow", ["drop_oldest", "drop_newest", "block"])
    def test_a_record_over_the_whole_bound_enters_only_an_empty_buffer(self, overflow):
        """A record plus its key larger than max_bytes (a record cut to max_record_bytes, which
        the handler caps at this bound, with a partition key) is queued alone into an empty
        buffer, and refused by a buffer that holds anything (it was refused even when empty,
        counted as overflow: with a small max_queue_bytes every cut record with a key was lost)."""
        buffer = RecordBuffer(10, 1000, overflow=overflow, block_timeout=0.0)
        buffer.put(b"x" * 1000, "key", INFO)
        assert (1, {}) == (len(buffer), buffer.snapshot().drops)
        buffer.put(b"y" * 1000, "key", INFO)
        assert (1, {"overflow": 1}) == (len(buffer), buffer.snapshot().drops)

    def test_drop_newest_counts_exactly(self):
        """drop_newest keeps the oldest records and counts every refusal."""
        buffer = RecordBuffer(5, 10_000, overflow="drop_newest")
        fill(buffer, 12)
        assert ["0000000000", "0000000001", "0000000002", "0000000003", "0000000004"] == payloads(
            buffer.take(10, 10_000)
        )
        assert 7 == buffer.snapshot().dropped

    def test_byte_bound(self):
        """The byte bound limits the buffer as well as the record bound."""
        buffer = RecordBuffer(1000, 55)
        fill(buffer, 10)
        counts = buffer.snapshot()
        assert (5, 50, 5) == (counts.queued, counts.queued_bytes, counts.dropped)

    @pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
    def test_low_priority_records_are_shed_first(self, policy):
        """When full, INFO records are dropped before any WARNING record, whatever the policy."""
        buffer = RecordBuffer(4, 10_000, overflow=policy)
        buffer.put(b"w1", None, WARNING)
        buffer.put(b"i1", None, INFO)
        buffer.put(b"w2", None, WARNING)
        buffer.put(b"i2", None, INFO)
        buffer.put(b"w3", None, WARNING)
        buffer.put(b"w4", None, WARNING)
        buffer.put(b"i3", None, INFO)
        kept = payloads(buffer.take(10, 10_000))
        assert ["w1", "w2", "w3", "w4"] == kept
        assert 3 == buffer.snapshot().dropped

    def test_priority_records_evict_each_other_when_nothing_else_is_left(self):
        """With only WARNING records left, drop_oldest evicts the oldest of them."""
        buffer = RecordBuffer(2, 10_000)
        for name in (b"w1", b"w2", b"w3"):
            buffer.put(name, None, WARNING)
        assert ["w2", "w3"] == payloads(buffer.take(10, 10_000))

    def test_block_waits_for_room(self):
        """block waits until the consumer makes room, then queues the record."""
        woke = threading.Event()
        buffer = RecordBuffer(2, 10_000, overflow="block", block_timeout=5.0, wake=woke.set)
        fill(buffer, 2)

        def consume():
            woke.wait(5)
            buffer.take(1, 10_000)

        thread = threading.Thread(target=consume)
        thread.start()
        buffer.put(b"late", None, INFO)
        thread.join(5)
        assert (0, 2) == (buffer.snapshot().dropped, len(buffer))

    def test_block_gives_up_after_timeout(self):
        """block refuses the record after block_timeout when no room appears."""
        buffer = RecordBuffer(1, 10_000, overflow="block", block_timeout=0.05)
        fill(buffer, 1)
        start = time.monotonic()
        buffer.put(b"late", None, INFO)
        assert time.monotonic() - start >= 0.04
        assert 1 == buffer.snapshot().dropped

    def test_block_does_not_wait_after_close(self):
        """After close(), a blocking put refuses at once."""
        buffer = RecordBuffer(1, 10_000, overflow="block", block_timeout=10.0)
        fill(buffer, 1)
        buffer.close()
        start = time.monotonic()
        buffer.put(b"late", None, INFO)
        assert time.monotonic() - start < 1.0

    def test_requeue_over_bound_sheds(self):
        """Records coming back over the bound are shed by policy and counted."""
        buffer = RecordBuffer(3, 10_000)
        fill(buffer, 3)
        batch = take(buffer, 3, 10_000)
        fill(buffer, 3, start=3)
        buffer.settle(batch, retry=batch.items)
        counts = buffer.snapshot()
        assert (3, 3) == (counts.queued, counts.dropped)
        assert invariant_holds(buffer)


class TestLedger:
    def test_invariant_through_every_outcome(self):
        """emitted == sent + dropped + failed + queued after sends, failures, drops and refusals."""
        buffer = RecordBuffer(10, 10_000)
        fill(buffer, 15)
        buffer.refuse("oversize")
        batch = take(buffer, 6, 10_000)
        assert invariant_holds(buffer)
        buffer.settle(batch, sent=batch.items[:3], retry=batch.items[3:4], failed=batch.items[4:])
        assert invariant_holds(buffer)
        counts = buffer.snapshot()
        assert (16, 3, 6, 2, 1) == (
            counts.emitted,
            counts.sent,
            counts.dropped,
            counts.failed,
            counts.retried,
        )

    def test_unsent_records_go_back_first_without_counting_a_retry(self):
        """Records returned unsent lead the next batch and are not counted as retried."""
        buffer = RecordBuffer(10, 10_000)
        fill(buffer, 4)
        batch = take(buffer, 2, 10_000)
        buffer.settle(batch, unsent=batch.items)
        again = take(buffer, 4, 10_000)
        assert ([item[0] for item in batch.items], 0, True) == (
            [item[0] for item in again.items[:2]],
            buffer.snapshot().retried,
            invariant_holds(buffer),
        )

    def test_invariant_under_concurrency(self):
        """The invariant holds in every snapshot while producers and a consumer run."""
        buffer = RecordBuffer(500, 1_000_000)
        stop = threading.Event()
        broken = []

        def produce():
            for i in range(5000):
                buffer.put(b"%d" % i, None, INFO)

        def consume():
            while not stop.is_set():
                batch = buffer.take(50, 10_000)
                if batch is not None:
                    buffer.settle(batch, sent=batch.items)

        def check():
            while not stop.is_set():
                if not invariant_holds(buffer):
                    broken.append(buffer.snapshot())

        threads = [threading.Thread(target=produce) for _ in range(4)]
        helpers = [threading.Thread(target=consume), threading.Thread(target=check)]
        for thread in threads + helpers:
            thread.start()
        for thread in threads:
            thread.join()
        stop.set()
        for thread in helpers:
            thread.join()
        assert [] == broken
        assert 20_000 == buffer.snapshot().emitted

    def test_drain_counts_reason(self):
        """drain drops every buffered record under the given reason."""
        buffer = RecordBuffer(10, 10_000)
        fill(buffer, 4)
        assert 4 == buffer.drain("close")
        assert {"close": 4} == buffer.snapshot().drops

    def test_watch_sees_losses_up_to_target(self):
        """A flush watch is marked lost only for records up to its target."""
        buffer = RecordBuffer(2, 10_000, overflow="drop_newest")
        fill(buffer, 2)
        watch = buffer.watch(buffer.last_seq)
        fill(buffer, 1, start=2)  # refused, but newer than the target
        assert not watch.lost
        batch = take(buffer, 1, 10_000)
        buffer.settle(batch, failed=batch.items)
        assert watch.lost
        buffer.unwatch(watch)

    def test_pending_and_wait(self):
        """has_pending and wait_settled follow records through the buffer and flight."""
        buffer = RecordBuffer(10, 10_000)
        fill(buffer, 2)
        target = buffer.last_seq
        batch = take(buffer, 10, 10_000)
        assert (True, False) == (buffer.has_pending(target), buffer.has_buffered(target))
        assert not buffer.wait_settled(target, 0.01)
        buffer.settle(batch, sent=batch.items)
        assert buffer.wait_settled(target, 0.01)


class TestShutdownAndReentrancy:
    def test_a_blocked_put_woken_by_close_is_refused_and_counted(self):
        """A "block" put waiting when close() runs is refused and counted, never left queued."""
        buffer = RecordBuffer(2, 10_000, overflow="block", block_timeout=30)
        fill(buffer, 2)
        started = threading.Event()
        results: List[bool] = []

        def put():
            started.set()
            results.append(buffer.put(b"late", None, INFO))

        thread = threading.Thread(target=put)
        thread.start()
        assert started.wait(5)
        deadline = time.monotonic() + 5
        while not buffer._space._waiters and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.001)  # until the put is waiting inside the Condition
        buffer.close()
        assert 2 == buffer.drain("close")
        thread.join(5)
        counts = buffer.snapshot()
        assert ([False], 0, {"close": 2, "closed": 1}) == (results, counts.queued, counts.drops)
        assert invariant_holds(buffer)

    def test_puts_after_close_are_refused(self):
        """Every put after close() is counted as dropped with reason "closed"."""
        buffer = RecordBuffer(10, 10_000)
        buffer.close()
        fill(buffer, 3)
        counts = buffer.snapshot()
        assert (3, 0, {"closed": 3}) == (counts.emitted, counts.queued, counts.drops)

    def test_a_batch_coming_back_after_close_is_counted_once_and_reported(self):
        """Records of a batch in flight at close() that come back for a retry are dropped,
        counted, and their outcome reported once."""
        reports: List[str] = []
        lost: List[str] = []
        buffer = RecordBuffer(
            10,
            10_000,
            on_late=reports.append,
            on_lost=lambda payloads, reason: lost.append(reason),
        )
        fill(buffer, 4)
        batch = take(buffer)
        buffer.close()
        buffer.settle(batch, sent=batch.items[:1], retry=batch.items[1:])
        counts = buffer.snapshot()
        assert (0, 1, {"close": 3}, ["close"]) == (
            counts.queued,
            counts.sent,
            counts.drops,
            lost,
        )
        assert [
            "a request still in flight at close() ended: 1 record(s) sent, 0 failed, 3 dropped"
        ] == reports

    def test_reentrant_refusal_never_takes_the_lock(self):
        """refuse_reentrant() works while the lock is held (a signal handler inside put) and is
        counted by the next snapshot."""
        buffer = RecordBuffer(10, 10_000)
        fill(buffer, 1)
        with buffer._lock:  # as an interrupted put holds it
            buffer.refuse_reentrant()
            unlocked = buffer.snapshot(wait=False)
        counts = buffer.snapshot()
        assert (2, {"reentrant": 1}) == (unlocked.emitted, unlocked.drops)
        assert (2, 1, {"reentrant": 1}) == (counts.emitted, counts.queued, counts.drops)
        assert invariant_holds(buffer)


# One operation of the model test below: ("put", size, captured, keyed, high), ("take", records,
# bytes) or ("resolve", growth per record or None for a drop, ...), ("settle", how).
_operation = st.one_of(
    st.tuples(st.just("put"), st.integers(0, 40), st.booleans(), st.booleans(), st.booleans()),
    st.tuples(st.just("take"), st.integers(1, 6), st.integers(1, 120)),
    st.tuples(
        st.just("resolve"),
        st.lists(st.one_of(st.none(), st.integers(-5, 30)), max_size=8),
        st.integers(1, 120),
    ),
    st.tuples(st.just("settle"), st.sampled_from(["sent", "retry", "failed"])),
)


class TestTakeAndResolveModel:
    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(_operation, max_size=40))
    def test_batches_and_byte_count_follow_a_plain_model(self, operations):
        """take() and resolve() cut, keep and return exactly what a plain sorted-list model does,
        and the buffered byte count always equals the sizes of the records queued."""
        buffer = RecordBuffer(1_000, 1_000_000)
        queued: List[Item] = []  # the model: every queued record, in sequence order
        batch: Optional[Batch] = None  # the one batch in flight, if any

        def size(item: Item) -> int:
            data = item[1]
            length = len(data) if isinstance(data, bytes) else data[1]
            return length + (len(item[2]) if item[2] is not None else 0)

        for op in operations:
            if op[0] == "put":
                _, length, captured, keyed, high = op
                data = ("captured", length) if captured else b"x" * length
                key = "k" * (length % 3 + 1) if keyed else None
                buffer.put(data, key, WARNING if high else INFO)
                queued.append((buffer.last_seq, data, key, WARNING if high else INFO, 0.0))
            elif op[0] == "take" and batch is None:
                _, records, data_bytes = op
                expected: List[Item] = []
                total = 0
                for item in queued[:records]:
                    length = size(item) - (len(item[2]) if item[2] is not None else 0)
                    if expected and total + length > data_bytes:
                        break
                    expected.append(item)
                    total += length
                batch = buffer.take(records, data_bytes)
                assert (expected, total) == (
                    ([], 0) if batch is None else (list(batch.items), batch.data_bytes)
                )
                del queued[: len(expected)]
            elif op[0] == "resolve" and batch is not None:
                _, growth, max_bytes = op
                payloads = [
                    None if g is None else b"y" * max(size(item) + g, 1)
                    for item, g in zip(batch.items, growth)
                ]
                keep: List[Item] = []
                back: List[Item] = []
                total = 0
                for item, data in zip(batch.items, payloads):
                    if data is None:
                        continue
                    resolved = (item[0], data, item[2], item[3], item[4])
                    if back or (keep and total + len(data) > max_bytes):
                        back.append(resolved)
                    else:
                        keep.append(resolved)
                        total += len(data)
                back.extend(batch.items[len(payloads) :])
                batch = buffer.resolve(batch, payloads, max_bytes)
                assert (keep, total) == (
                    ([], 0) if batch is None else (list(batch.items), batch.data_bytes)
                )
                queued = sorted(queued + back)
            elif op[0] == "settle" and batch is not None:
                if op[1] == "sent":
                    buffer.settle(batch, sent=batch.items)
                elif op[1] == "retry":
                    buffer.settle(batch, retry=batch.items)
                else:
                    buffer.settle(batch, failed=batch.items)
                if op[1] == "retry":
                    queued = sorted(queued + list(batch.items))
                batch = None
            counts = buffer.snapshot()
            assert (len(queued), sum(map(size, queued))) == (
                counts.queued - counts.in_flight,
                buffer.buffered_bytes,
            )
            assert invariant_holds(buffer)

    @pytest.mark.parametrize(("limit", "kept"), [(30, 3), (29, 2)])
    def test_resolve_keeps_the_batch_up_to_its_byte_limit_exactly(self, limit, kept):
        """Serialized sizes that reach the limit exactly keep the whole batch; one byte over
        sends the last record back to the front of the buffer, serialized."""
        buffer = RecordBuffer(100, 10_000)
        for _ in range(3):
            buffer.put(("captured", 5), None, INFO)
        batch = buffer.resolve(take(buffer, 3, 100), [b"a" * 10, b"b" * 10, b"c" * 10], limit)
        assert batch is not None
        after = buffer.take(3, 100)
        assert (kept, 10 * kept, [] if kept == 3 else [b"c" * 10]) == (
            len(batch),
            batch.data_bytes,
            [] if after is None else [item[1] for item in after.items],
        )
