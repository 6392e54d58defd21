"""Tests for dis_logging.flusher (with fake senders and spools) and dis_logging._report."""

from __future__ import annotations

import logging
import threading
from typing import List, Optional, Sequence, Tuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dis_logging._report import Reporter, error_key, redact
from dis_logging.buffer import RecordBuffer
from dis_logging.client import PutResult, RecordResult
from dis_logging.errors import RequestError, ServerError, ThrottledError, TransportError
from dis_logging.flusher import (
    RATE_WINDOW,
    SIZER_RETRY_INTERVAL,
    THREAD_NAME,
    Flusher,
    RateLimiter,
)
from dis_logging.retry import RetryPolicy

OK = RecordResult("shardId-0000000000", "1")
THROTTLED = RecordResult(None, None, "DIS.4303", "throttled")
REJECTED = RecordResult(None, None, "DIS.4301", "no such stream")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeSender:
    """A Sender that answers from a script: a per-record pattern or an exception per call."""

    def __init__(self, script: Sequence[object] = ()) -> None:
        self.script = list(script)
        self.calls: List[List[bytes]] = []
        self.stored: List[bytes] = []
        self.closed = False

    def put_records(self, stream_name, entries, *, stream_id=None, partition_id=None, timeout=None):
        data = [d for d, _ in entries]
        self.calls.append(data)
        step = self.script.pop(0) if self.script else None
        if isinstance(step, Exception):
            raise step
        pattern = step if isinstance(step, list) else [OK] * len(data)
        results = tuple(pattern[i % len(pattern)] for i in range(len(data)))
        self.stored.extend(d for d, r in zip(data, results) if r.ok)
        return PutResult(sum(1 for r in results if not r.ok), results, "req-1")

    def close(self) -> None:
        self.closed = True


class FakeSpool:
    def __init__(self, capacity: int = 10**9) -> None:
        self.rows: List[Tuple[int, Tuple[bytes, Optional[str]]]] = []
        self.next_id = 1
        self.capacity = capacity
        self.closed = False

    @property
    def pending_records(self) -> int:
        return len(self.rows)

    def put(self, entries):
        room = max(self.capacity - len(self.rows), 0)
        for entry in list(entries)[:room]:
            self.rows.append((self.next_id, entry))
            self.next_id += 1
        return min(room, len(entries))

    def read(self, max_records, max_bytes):
        chosen = self.rows[:max_records]
        return [i for i, _ in chosen], [e for _, e in chosen]

    def ack(self, ids):
        gone = set(ids)
        self.rows = [row for row in self.rows if row[0] not in gone]

    def close(self):
        self.closed = True


class Lines:
    def __init__(self) -> None:
        self.lines: List[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)


def make(sender, *, records=3, clock=None, spool=None, spool_mode="outage", **kw):
    buffer = RecordBuffer(100, 100_000, batch_records=10, batch_bytes=100_000)
    lines = Lines()
    flusher = Flusher(
        buffer,
        sender,
        stream_name="s",
        batch_records=kw.pop("batch_records", 10),
        batch_bytes=kw.pop("batch_bytes", 100_000),
        flush_interval=kw.pop("flush_interval", 0.05),
        retry=kw.pop("retry", RetryPolicy(initial_backoff=0.0, max_backoff=0.0, jitter=0.0)),
        reporter=Reporter(lines, interval=60.0, secrets=kw.get("secrets", ())),
        sending_threads=set(),
        spool_factory=(lambda: spool) if spool is not None else None,
        spool_mode=spool_mode,
        clock=clock or FakeClock(),
        **kw,
    )
    for i in range(records):
        buffer.put(b"r%d" % i, None, logging.INFO)
    return flusher, buffer, lines


def far() -> float:
    return 10**9


class TestSendOnCaller:
    def test_sends_everything_and_returns_true(self):
        """flush_on_caller sends all queued records and reports success."""
        sender = FakeSender()
        flusher, buffer, _ = make(sender, records=25)
        assert flusher.flush_on_caller(far(), may_wait=True)
        assert [10, 10, 5] == [len(c) for c in sender.calls]
        assert (25, 0) == (buffer.snapshot().sent, buffer.snapshot().queued)

    def test_partial_failure_resends_only_failed_records_in_order(self):
        """Only per-record retryable failures are resent, in their original order, once each."""
        sender = FakeSender([[OK, THROTTLED]])
        flusher, buffer, _ = make(sender, records=6)
        assert flusher.flush_on_caller(far(), may_wait=True)
        assert [[b"r0", b"r1", b"r2", b"r3", b"r4", b"r5"], [b"r1", b"r3", b"r5"]] == sender.calls
        assert sorted(sender.stored) == sorted(set(sender.stored))
        counts = buffer.snapshot()
        assert (6, 3) == (counts.sent, counts.retried)

    def test_whole_request_failure_is_retried(self):
        """A retryable whole-request failure sends the same batch again."""
        sender = FakeSender([ServerError("boom", status=500), TransportError("refused")])
        flusher, buffer, _ = make(sender)
        assert flusher.flush_on_caller(far(), may_wait=True)
        assert 3 == len(sender.calls)
        assert (3, 6) == (buffer.snapshot().sent, buffer.snapshot().retried)

    def test_permanent_error_counts_failed_and_reports_once(self):
        """A permanent error fails the records without retrying and is reported once per window."""
        error = RequestError("stream missing", status=400, code="DIS.4301")
        sender = FakeSender([error, error, error])
        flusher, buffer, lines = make(sender, records=30)
        assert not flusher.flush_on_caller(far(), may_wait=True)
        counts = buffer.snapshot()
        assert (3, 30, 0) == (len(sender.calls), counts.failed, counts.sent)
        assert 1 == len([line for line in lines.lines if "DIS.4301" in line])

    def test_rejected_records_inside_a_reply_are_failed(self):
        """Per-record non-retryable codes count as failed and are not resent."""
        sender = FakeSender([[OK, REJECTED, OK]])
        flusher, buffer, lines = make(sender)
        assert not flusher.flush_on_caller(far(), may_wait=True)
        counts = buffer.snapshot()
        assert (2, 1, 1) == (counts.sent, counts.failed, len(sender.calls))
        assert any("DIS.4301" in line for line in lines.lines)

    def test_gives_up_after_max_retry_time(self):
        """Records failing past max_retry_time are counted as failed instead of retried forever."""
        clock = FakeClock()

        class Aging(FakeSender):
            def put_records(self, *args, **kwargs):
                clock.now += 4.0
                return super().put_records(*args, **kwargs)

        sender = Aging([TransportError("down")] * 10)
        policy = RetryPolicy(initial_backoff=0.0, max_backoff=0.0, jitter=0.0, max_retry_time=10.0)
        flusher, buffer, _ = make(sender, clock=clock, retry=policy)
        assert not flusher.flush_on_caller(far(), may_wait=True)
        assert (3, 0) == (buffer.snapshot().failed, buffer.snapshot().queued)
        assert 4 == len(sender.calls)

    def test_deadline_bounds_the_retries(self):
        """A flush returns False at its deadline and leaves the records queued."""
        clock = FakeClock()

        class Slow(FakeSender):
            def put_records(self, *args, **kwargs):
                clock.now += 1.0
                raise TransportError("down")

        flusher, buffer, _ = make(Slow(), clock=clock)
        assert not flusher.flush_on_caller(clock.now + 3.5, may_wait=True)
        assert 3 == buffer.snapshot().queued

    def test_too_large_reply_halves_batches(self):
        """A 413 reply splits the batch and later batches stay smaller."""
        sender = FakeSender([RequestError("too large", status=413, code="APIG.0201")])
        flusher, _, _ = make(sender, records=8)
        assert flusher.flush_on_caller(far(), may_wait=True)
        assert [8, 4, 4] == [len(c) for c in sender.calls]

    def test_last_error_has_no_secret(self):
        """last_error masks the configured secrets."""
        sender = FakeSender([TransportError("failed with key SECRET-SK")])
        flusher, _, lines = make(sender, secrets=("SECRET-SK",))
        flusher.flush_on_caller(far(), may_wait=True)
        assert "SECRET-SK" not in (flusher.last_error or "")
        assert all("SECRET-SK" not in line for line in lines.lines)

    def test_caller_thread_is_marked_as_sending(self):
        """While the caller sends, its thread ident is in the sending set (recursion guard)."""
        seen = []
        holder: List[Flusher] = []

        class Spy(FakeSender):
            def put_records(self, *args, **kwargs):
                seen.append(threading.get_ident() in holder[0]._sending_threads)
                return super().put_records(*args, **kwargs)

        flusher, _, _ = make(Spy())
        holder.append(flusher)
        flusher.flush_on_caller(far(), may_wait=True)
        assert [True] == seen
        assert threading.get_ident() not in flusher._sending_threads


class TestThread:
    def test_thread_drains_on_interval(self):
        """The named daemon thread sends partial batches after flush_interval."""
        sender = FakeSender()
        buffer = RecordBuffer(100, 100_000)
        flusher = Flusher(
            buffer,
            sender,
            stream_name="s",
            flush_interval=0.02,
            reporter=Reporter(Lines()),
            sending_threads=set(),
        )
        buffer.put(b"x", None, logging.INFO)
        assert flusher.start()
        try:
            assert buffer.wait_settled(buffer.last_seq, 5.0)
            assert [[b"x"]] == sender.calls
            names = [t.name for t in threading.enumerate()]
            assert THREAD_NAME in names
        finally:
            flusher.stop()
            assert flusher.join(5.0)

    def test_thread_survives_unexpected_errors(self):
        """An unexpected exception is reported and the thread keeps sending."""

        class Flaky(FakeSender):
            def put_records(self, *args, **kwargs):
                if not self.calls:
                    self.calls.append([])
                    raise KeyError("bug")
                return super().put_records(*args, **kwargs)

        sender = Flaky()
        lines = Lines()
        buffer = RecordBuffer(100, 100_000)
        flusher = Flusher(
            buffer,
            sender,
            stream_name="s",
            flush_interval=0.01,
            retry=RetryPolicy(initial_backoff=0.01, max_backoff=0.01),
            reporter=Reporter(lines),
            sending_threads=set(),
        )
        buffer.put(b"x", None, logging.INFO)
        flusher.start()
        try:
            assert buffer.wait_settled(buffer.last_seq, 5.0)
            assert [b"x"] == sender.stored
            assert any("KeyError" in line for line in lines.lines)
        finally:
            flusher.stop()
            flusher.join(5.0)


class TestSpoolSeam:
    def test_outage_moves_batches_to_spool_and_replays_them(self):
        """After repeated failures batches go to the spool and are replayed once DIS answers."""
        spool = FakeSpool()
        down = [TransportError("down")] * 2
        sender = FakeSender(down)
        flusher, buffer, _ = make(sender, records=5, spool=spool)
        assert flusher.flush_on_caller(far(), may_wait=True)
        assert 5 == len(sender.stored)
        counts = buffer.snapshot()
        assert (5, 0, 0) == (counts.sent, counts.queued, spool.pending_records)

    def test_always_mode_sends_through_the_spool(self):
        """spool_mode='always' stores each batch before sending it and acks after."""
        spool = FakeSpool()
        sender = FakeSender()
        flusher, buffer, _ = make(sender, records=4, spool=spool, spool_mode="always")
        assert flusher.flush_on_caller(far(), may_wait=True)
        assert (4, 0) == (buffer.snapshot().sent, spool.pending_records)

    def test_full_spool_keeps_records_in_memory(self):
        """Entries a full spool refuses stay in memory and are delivered; nothing is dropped."""
        spool = FakeSpool(capacity=2)
        sender = FakeSender([TransportError("down")] * 2)
        flusher, buffer, _ = make(sender, records=5, spool=spool)
        assert flusher.flush_on_caller(far(), may_wait=True)
        counts = buffer.snapshot()
        assert (5, 0, 0, 0) == (counts.sent, counts.dropped, counts.spooled, spool.pending_records)
        assert sorted(sender.stored) == sorted(b"r%d" % i for i in range(5))

    def test_leftovers_beyond_the_spool_bound_are_dropped_at_close(self):
        """At close, what the full spool cannot take is counted as dropped (spool_full)."""
        spool = FakeSpool(capacity=3)
        flusher, buffer, _ = make(FakeSender(), records=5, spool=spool)
        assert 3 == flusher.spool_leftovers()
        counts = buffer.snapshot()
        assert (3, 2, {"spool_full": 2}) == (counts.spooled, counts.dropped, counts.drops)

    def test_leftovers_go_to_the_spool(self):
        """spool_leftovers moves buffered records to the spool instead of dropping them."""
        spool = FakeSpool()
        flusher, buffer, _ = make(FakeSender(), records=4, spool=spool)
        assert 4 == flusher.spool_leftovers()
        assert (0, 4) == (buffer.snapshot().queued, spool.pending_records)


class TestRateLimiter:
    def test_full_windows_push_requests_to_the_next_window(self):
        """A request that no longer fits the window's budget waits for the next window."""
        limiter = RateLimiter(records_per_second=100, clock=FakeClock())
        waits = [limiter.reserve(100, 0) for _ in range(3)]
        assert pytest.approx([0.0, RATE_WINDOW, 2 * RATE_WINDOW]) == waits

    def test_small_requests_share_a_window(self):
        """Requests go at once while their sum stays within the budget of the window."""
        limiter = RateLimiter(records_per_second=100, bytes_per_second=1000, clock=FakeClock())
        waits = [limiter.reserve(30, 300) for _ in range(4)]
        assert pytest.approx([0.0, 0.0, 0.0, RATE_WINDOW]) == waits

    def test_byte_budget_applies_too(self):
        """The byte budget alone can push a request into the next window."""
        limiter = RateLimiter(bytes_per_second=1000, clock=FakeClock())
        assert pytest.approx([0.0, RATE_WINDOW]) == [limiter.reserve(1, 600) for _ in range(2)]

    def test_a_wait_beyond_max_wait_books_nothing(self):
        """A reservation refused for its wait leaves the window as it was."""
        limiter = RateLimiter(records_per_second=100, clock=FakeClock())
        limiter.reserve(100, 0)
        refused = [limiter.reserve(100, 0, max_wait=0.5) for _ in range(5)]
        assert [None] * 5 == refused
        assert pytest.approx(RATE_WINDOW) == limiter.reserve(100, 0)

    def test_an_expired_window_starts_afresh(self):
        """After a quiet window, the next request goes at once with a new budget."""
        clock = FakeClock()
        limiter = RateLimiter(records_per_second=100, clock=clock)
        limiter.reserve(100, 0)
        clock.now += RATE_WINDOW
        assert 0.0 == limiter.reserve(100, 0)

    def test_unlimited(self):
        """Zero rates never wait."""
        assert 0.0 == RateLimiter().reserve(10**6, 10**9)

    @pytest.mark.parametrize(
        ("configured", "measured", "expected"),
        [
            ((0.0, 0.0), (1800.0, 1.8e6), (1800.0, 1.8e6)),
            ((500.0, 0.0), (1800.0, 1.8e6), (500.0, 1.8e6)),
            ((5000.0, 1e6), (1800.0, 1.8e6), (1800.0, 1e6)),
        ],
    )
    def test_sizer_rates_combine_with_configured_ones(self, configured, measured, expected):
        """The stricter of the configured and the stream's rates applies; 0 means unlimited."""
        limiter = RateLimiter(
            configured[0], configured[1], clock=FakeClock(), sizer=lambda: measured
        )
        limiter.reserve(1, 1)
        assert expected == (limiter.records_per_second, limiter.bytes_per_second)

    def test_sizer_is_asked_once_and_again_only_after_a_failure_interval(self):
        """A sizer that cannot answer is asked again after SIZER_RETRY_INTERVAL, then never."""
        clock = FakeClock()
        answers: List[Optional[Tuple[float, float]]] = [None, (100.0, 0.0)]
        asked: List[float] = []

        def sizer():
            asked.append(clock.now)
            return answers.pop(0)

        limiter = RateLimiter(clock=clock, sizer=sizer)
        limiter.reserve(1, 1)
        clock.now += SIZER_RETRY_INTERVAL - 1
        limiter.reserve(1, 1)
        clock.now += 1
        limiter.reserve(1, 1)
        clock.now += SIZER_RETRY_INTERVAL
        limiter.reserve(1, 1)
        assert ([1000.0, 1000.0 + SIZER_RETRY_INTERVAL], 100.0) == (
            asked,
            limiter.records_per_second,
        )

    def test_provisional_rates_apply_until_the_sizer_answers(self):
        """Before the stream is sized (or after the sizer failed) the provisional budget holds."""
        clock = FakeClock()
        answers: List[Optional[Tuple[float, float]]] = [None, (1800.0, 0.0)]
        limiter = RateLimiter(
            clock=clock, sizer=lambda: answers.pop(0), provisional=(900.0, 900_000.0)
        )
        limiter.reserve(1, 1)
        before = (limiter.records_per_second, limiter.bytes_per_second)
        clock.now += SIZER_RETRY_INTERVAL
        limiter.reserve(1, 1)
        assert ((900.0, 900_000.0), (1800.0, 0.0)) == (
            before,
            (limiter.records_per_second, limiter.bytes_per_second),
        )

    def test_a_finished_request_books_its_window_from_its_end(self):
        """A request that took long counts from when it ended, as DIS may have seen it late."""
        clock = FakeClock()
        limiter = RateLimiter(records_per_second=100, clock=clock)
        grant = limiter.grant(100, 10**6)
        assert grant is not None
        limiter.settle(grant, 100, 1000)
        clock.now += 0.8  # the request was slow on its way
        limiter.finish(grant)
        nxt = limiter.grant(100, 10**6)
        assert nxt is not None
        assert pytest.approx(RATE_WINDOW) == nxt.wait

    def test_requests_ending_out_of_order_keep_the_log_ordered(self):
        """Two requests in flight at once may end in either order; bookings stay consistent."""
        clock = FakeClock()
        limiter = RateLimiter(records_per_second=100, clock=clock)
        first, second = limiter.grant(50, 10**6), limiter.grant(50, 10**6)
        assert first is not None
        assert second is not None
        limiter.settle(first, 50, 1)
        limiter.settle(second, 50, 1)
        clock.now += 0.2
        limiter.finish(second)
        clock.now += 0.3
        limiter.finish(first)
        nxt = limiter.grant(100, 10**6)
        assert nxt is not None
        # The request that ended first (at 0.2) leaves the window first, making room for 50.
        assert pytest.approx((0.2 + RATE_WINDOW - 0.5, 50)) == (nxt.wait, nxt.records)


class TestReporter:
    def test_rate_limited_per_key_with_suppressed_count(self):
        """Repeats within the window are counted and mentioned in the next line."""
        clock = FakeClock()
        lines = Lines()
        reporter = Reporter(lines, interval=10.0, clock=clock)
        assert [True, False, False, True] == [
            reporter.report(("ServerError", 500), "first"),
            reporter.report(("ServerError", 500), "again"),
            reporter.report(("ServerError", 500), "again"),
            reporter.report(("TransportError", None), "other"),
        ]
        clock.now += 11
        reporter.report(("ServerError", 500), "later")
        assert "later (2 similar message(s) suppressed in the last window)" in lines.lines[-1]
        assert all(line.startswith("dis-logging: ") for line in lines.lines)

    def test_writes_to_stderr_by_default(self, capsys):
        """Without a sink, lines go to stderr, not to logging."""
        Reporter().report("k", "hello")
        assert "dis-logging: hello\n" == capsys.readouterr().err

    def test_failing_sink_falls_back_to_stderr(self, capsys):
        """A sink that raises does not break reporting; the line reaches stderr."""

        def broken(line: str) -> None:
            raise RuntimeError("sink down")

        Reporter(broken).report("k", "hello")
        assert "hello" in capsys.readouterr().err

    def test_secrets_are_masked(self):
        """Configured secrets are replaced by *** in every line."""
        lines = Lines()
        Reporter(lines, secrets=["hunter2"]).report_now("password hunter2 leaked")
        assert ["dis-logging: password *** leaked"] == lines.lines

    def test_error_key_uses_code_or_status(self):
        """error_key combines the type name with the code, else the status."""
        assert ("ThrottledError", "DIS.4303") == error_key(
            ThrottledError("x", status=400, code="DIS.4303")
        )
        assert ("ServerError", 503) == error_key(ServerError("x", status=503))

    @pytest.mark.parametrize(
        ("text", "expected"), [("a s1 b s2", "a *** b ***"), ("clean", "clean")]
    )
    def test_redact(self, text, expected):
        """redact replaces every secret occurrence."""
        assert expected == redact(text, ["s1", "s2", ""])


class TestRateLimitWindows:
    def test_grant_cuts_to_the_record_budget(self):
        """A grant offers what the window still holds: 50 of a 500-record batch at 50/s."""
        clock = FakeClock()
        limiter = RateLimiter(records_per_second=50, clock=clock)
        first = limiter.grant(500, 10**6)
        assert first is not None
        limiter.settle(first, first.records, 100)
        second = limiter.grant(500, 10**6)
        assert second is not None
        assert [(0.0, 50), (pytest.approx(RATE_WINDOW), 50)] == [
            (first.wait, first.records),
            (second.wait, second.records),
        ]

    def test_grant_cuts_to_the_byte_budget(self):
        """At 20000 bytes/s, a grant offers at most 20000 bytes however large the batch."""
        limiter = RateLimiter(bytes_per_second=20000, clock=FakeClock())
        grant = limiter.grant(500, 1_000_000)
        assert grant is not None
        assert (0.0, 20000) == (grant.wait, grant.data_bytes)

    def test_a_part_used_window_offers_the_rest(self):
        """What the last window used is subtracted, and more follows as its requests age out."""
        clock = FakeClock()
        limiter = RateLimiter(records_per_second=100, clock=clock)
        limiter.reserve(30, 0)
        clock.now += 1.0
        rest = limiter.grant(500, 10**6)
        assert rest is not None
        limiter.settle(rest, rest.records, 0)
        later = limiter.grant(500, 10**6)
        assert later is not None
        assert [(0.0, 70), (pytest.approx(RATE_WINDOW - 1.0), 30)] == [
            (rest.wait, rest.records),
            (later.wait, later.records),
        ]

    def test_settle_to_nothing_returns_the_room(self):
        """A grant settled at zero (nothing was sent) leaves the whole budget free."""
        limiter = RateLimiter(records_per_second=10, clock=FakeClock())
        grant = limiter.grant(500, 10**6)
        assert grant is not None
        limiter.settle(grant, 0, 0)
        again = limiter.grant(500, 10**6)
        assert again is not None
        assert (0.0, 10) == (again.wait, again.records)

    @given(
        steps=st.lists(
            st.tuples(
                st.floats(min_value=0.0, max_value=0.7),
                st.integers(min_value=1, max_value=400),
                st.integers(min_value=1, max_value=60_000),
            ),
            min_size=1,
            max_size=40,
        )
    )
    def test_no_window_ever_exceeds_the_budget(self, steps):
        """Whatever the pattern of requests, every RATE_WINDOW holds at most the budget."""
        clock = FakeClock()
        limiter = RateLimiter(records_per_second=50, bytes_per_second=20000, clock=clock)
        sent: List[Tuple[float, int, int]] = []
        for pause, records, data_bytes in steps:
            clock.now += pause
            grant = limiter.grant(records, data_bytes)
            assert grant is not None
            used = (min(records, grant.records), min(data_bytes, grant.data_bytes))
            limiter.settle(grant, *used)
            sent.append((clock.now + grant.wait, *used))
            clock.now += grant.wait
        for start, _, _ in sent:
            window = [(r, b) for t, r, b in sent if start <= t < start + RATE_WINDOW - 1e-9]
            assert sum(r for r, _ in window) <= 50
            assert sum(b for _, b in window) <= 20000

    def test_flusher_sends_no_more_than_the_window_allows(self):
        """The flusher cuts its batch to the grant: 5 of 10 records at 5 records/s."""
        sender = FakeSender()
        limiter = RateLimiter(records_per_second=5, clock=FakeClock())
        flusher, buffer, _ = make(sender, records=10, limiter=limiter)
        assert "sent" == flusher._cut_and_send(timeout=None, limit=True)
        assert ([5], 5) == ([len(call) for call in sender.calls], buffer.snapshot().queued)

    def test_record_larger_than_the_rest_waits_for_room(self):
        """A record that does not fit what the window has left goes back to the buffer."""
        sender = FakeSender()
        limiter = RateLimiter(bytes_per_second=10, clock=FakeClock())
        limiter.reserve(1, 9)
        flusher, buffer, _ = make(sender, records=3, limiter=limiter)
        assert "deferred" == flusher._cut_and_send(timeout=0.5, limit=True)
        assert ([], 3) == (sender.calls, buffer.snapshot().queued)
