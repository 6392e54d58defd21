"""The background sender: drains a :class:`~dis_logging.buffer.RecordBuffer` into DIS.

One daemon thread per flusher, named ``dis-logging-flusher``, sleeps on an :class:`threading.Event`
until a batch is ready or ``flush_interval`` passed, then cuts batches and sends each with one
PutRecords request. The outcome of every record is settled in the buffer's ledger:

* acknowledged records count as sent;
* records that failed with a retryable per-record code (``DIS.4303``, ``DIS.5xxx``), and whole
  requests that failed with a retryable error (no reply, 429, 5xx, stale token), go back to the
  front of the buffer ahead of newer records, and the flusher backs off (capped, jittered,
  ``Retry-After`` honoured) by waiting on its stop event;
* records older than ``max_retry_time`` since their first failure, and records DIS rejects for good
  (unknown stream, bad credentials), are counted as failed and reported once per kind.

The same send path runs on the caller's thread for :meth:`Flusher.flush_on_caller`, so ``flush()``
and ``close()`` never depend on the flusher thread being able to run: while ``logging``'s module
lock is held (``dictConfig``, ``logging.shutdown``) the flusher may be stuck inside urllib3 waiting
for that lock, and the caller sends the remaining batches itself.

With a spool (``spool_dir``) the flusher has two steps, each on its own thread:

* the **persist step** (:class:`~dis_logging._persist.Persister`, thread ``dis-logging-spool``)
  moves buffered records to disk whatever the send step is doing: everything within
  ``flush_interval`` in ``spool_mode="always"`` or during an outage, and the oldest records as soon
  as the memory queue passes its high-water mark; a record finding the queue full hands the oldest
  batch to the spool itself;
* the **send step** (this thread) sends from the spool while it holds records, oldest first, and
  from memory otherwise. In ``"always"`` mode it sends from memory only while the spool refuses
  records (full or broken), so a full disk never stops delivery.

Batches that keep failing in an outage go to the spool too. Records the spool refuses stay in
memory; only the memory queue's overflow policy drops them.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from collections import deque
from typing import (
    Callable,
    Deque,
    Dict,
    Final,
    Iterable,
    List,
    Optional,
    Protocol,
    Sequence,
    Set,
    Tuple,
    cast,
)

from dis_logging._persist import Persister
from dis_logging._report import ReporterLike, SecretSet, error_key, printable, redact
from dis_logging.buffer import Batch, Item, RecordBuffer
from dis_logging.client import Entry, PutResult
from dis_logging.errors import AuthError, DISError
from dis_logging.retry import RetryPolicy
from dis_logging.serializer import serialize_payloads

__all__ = ["Flusher", "Grant", "RateLimiter", "Sender", "SpoolLike"]

#: Thread name of the first flusher; further lanes append ``-1``, ``-2``, ...
THREAD_NAME: Final = "dis-logging-flusher"
#: Smallest batch byte budget after a 413 reply halved it.
MIN_BATCH_BYTES: Final = 1024
#: 413 APIG.0201: the gateway refused the body as too large; split the batch (DIS-API.md §9).
STATUS_TOO_LARGE: Final = 413
#: Record data per PutRecords request on COMMON streams, the smaller of the two stream types'
#: limits (1 MB; 5 MB on ADVANCED, DIS-API.md §8): larger batches need the stream's type.
SMALLEST_REQUEST_DATA_LIMIT: Final = 1_000_000
#: Consecutive whole-request failures after which a spool takes the batch ("an outage").
SPOOL_AFTER_FAILURES: Final = 2
#: Seconds between two checks of :attr:`Flusher.cut_until` by a flush on the main thread that
#: waits for the background thread's request (as ``buffer.BLOCK_POLL`` for a "block" append).
CUT_POLL: Final = 0.05
#: Error codes of a request refused for where it goes rather than for what it carries: a bad project
#: (DIS.4117), a stream that does not exist (DIS.4301), a bad, unknown or expired partition
#: (DIS.4201, 4302, 4319), a caller IP blocked (DIS.4309); DIS-API.md section 7. Spooled records
#: refused that way stay in the spool (see Flusher._replay), as do those refused for credentials.
DESTINATION_ERRORS: Final = frozenset(
    {"DIS.4117", "DIS.4301", "DIS.4201", "DIS.4302", "DIS.4319", "DIS.4309"}
)
#: Seconds before opening a spool that could not be opened (a full disk, say) is tried again.
SPOOL_REOPEN_INTERVAL: Final = 30.0
#: Shortest per-request timeout a deadline-bounded send asks the client for, in seconds.
MIN_REQUEST_TIMEOUT: Final = 0.05

# outcomes of one send
SENT: Final = "sent"
PARTIAL: Final = "partial"
RETRY: Final = "retry"
REJECTED: Final = "rejected"
DEFERRED: Final = "deferred"  # the rate limit's wait would pass the caller's deadline


class Sender(Protocol):
    """What the flusher needs from :class:`~dis_logging.client.DISClient`."""

    def put_records(
        self,
        stream_name: str,
        entries: Sequence[Entry],
        *,
        stream_id: Optional[str] = None,
        partition_id: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> PutResult:
        """Send the entries in one request; raise a DISError subclass if it fails as a whole.

        ``timeout`` (seconds) overrides the sender's own per-request timeout; ``None`` keeps it.
        """
        ...  # pragma: no cover - protocol

    def close(self) -> None:
        """Release connections."""
        ...  # pragma: no cover - protocol


class SpoolLike(Protocol):
    """What the flusher needs from :class:`dis_logging.spool.Spool`."""

    @property
    def pending_records(self) -> int:
        """Records stored and not yet acknowledged."""
        ...  # pragma: no cover - protocol

    def put(self, entries: Sequence[Entry]) -> int:
        """Store entries oldest first; return how many leading entries were stored."""
        ...  # pragma: no cover - protocol

    def read(self, max_records: int, max_bytes: int) -> Tuple[List[int], List[Entry]]:
        """Return the oldest pending ``(ids, entries)`` without removing them."""
        ...  # pragma: no cover - protocol

    def ack(self, ids: Sequence[int]) -> None:
        """Delete acknowledged entries."""
        ...  # pragma: no cover - protocol

    def close(self) -> None:
        """Close the spool file."""
        ...  # pragma: no cover - protocol


#: How long a rate limiter waits before asking its ``sizer`` again after it could not answer.
SIZER_RETRY_INTERVAL: Final = 60.0
#: Length of a rate-limit window in seconds: DIS's one second plus a margin for network jitter.
RATE_WINDOW: Final = 1.1


def _tighter(configured: float, measured: float) -> float:
    """The stricter of two rates where ``0`` means unlimited."""
    if configured <= 0:
        return measured
    if measured <= 0:
        return configured
    return min(configured, measured)


class Grant:
    """Room in the rate limit that :meth:`RateLimiter.grant` booked for one request.

    Attributes:
        wait: seconds to wait before sending.
        records: records the request may hold at most.
        data_bytes: payload bytes the request may hold at most.
        empty_window: whether nothing else was sent in the window, so a single record larger
            than the whole byte budget may go alone.
    """

    __slots__ = ("_entry", "data_bytes", "empty_window", "records", "wait")

    def __init__(
        self, wait: float, records: int, data_bytes: int, empty_window: bool, entry: List[float]
    ) -> None:
        self.wait = wait
        self.records = records
        self.data_bytes = data_bytes
        self.empty_window = empty_window
        self._entry = entry

    def __repr__(self) -> str:
        return f"Grant(wait={self.wait:.3f}, records={self.records}, data_bytes={self.data_bytes})"


class RateLimiter:
    """Per-second budgets for records and bytes, shared by the lanes of one handler.

    DIS counts writes per second (DIS-API.md section 8). The limiter keeps a log of what it let
    through and holds the budget in *every* window of :data:`RATE_WINDOW` seconds (one second
    plus a margin for network jitter), not just in fixed windows: a request is booked at the
    earliest moment when what was sent in the window before it, plus the request, fits the
    budget. :meth:`grant` tells the sender how much it may put in the next request, so batches
    are cut to what the window still allows instead of waiting for a whole empty window; only a
    single record larger than the whole byte budget is let through alone, in an empty window.

    Args:
        records_per_second: records per window; ``0`` means unlimited.
        bytes_per_second: payload bytes per window; ``0`` means unlimited.
        clock: monotonic time source in seconds; default :func:`time.monotonic`.
        sizer: called (on a sending thread, before the first reservation) for the stream's own
            rates as ``(records_per_second, bytes_per_second)``; the stricter of those and the
            configured rates applies. It returns ``None`` when it cannot tell yet and is asked
            again after :data:`SIZER_RETRY_INTERVAL`. Default ``None``: only the configured rates.
        provisional: ``(records_per_second, bytes_per_second)`` that apply (with the configured
            rates, the stricter wins) until the sizer has answered, so requests sent while
            another thread asks it, or after it failed, stay within a safe budget; default
            ``None``: the configured rates alone.

    A booking starts when the request may be sent and is moved to the moment the request ended
    (:meth:`finish`): DIS counts a request when it arrives, somewhere between the two, so a
    request delayed on its way cannot land in the same window as the next one.
    """

    def __init__(
        self,
        records_per_second: float = 0.0,
        bytes_per_second: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sizer: Optional[Callable[[], Optional[Tuple[float, float]]]] = None,
        provisional: Optional[Tuple[float, float]] = None,
    ) -> None:
        self._configured = (records_per_second, bytes_per_second)
        if sizer is not None and provisional is not None:
            records_per_second = _tighter(records_per_second, provisional[0])
            bytes_per_second = _tighter(bytes_per_second, provisional[1])
        self.records_per_second = records_per_second
        self.bytes_per_second = bytes_per_second
        self._clock = clock
        self._lock = threading.Lock()
        # [time, records, bytes] of each request let through, in booking order; times never
        # decrease (a booking may lie ahead, for a sender that is waiting).
        self._log: Deque[List[float]] = deque()
        self._sizer = sizer
        self._size_at = clock()  # when to ask the sizer (next)
        self._sizing = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"RateLimiter(records_per_second={self.records_per_second}, "
            f"bytes_per_second={self.bytes_per_second})"
        )

    @property
    def is_limited(self) -> bool:
        """Whether any budget applies (asks the sizer first, if it is due)."""
        if self._sizer is not None:
            self._apply_sizer()
        return self.records_per_second > 0 or self.bytes_per_second > 0

    def _apply_sizer(self) -> None:
        # One thread asks (a DescribeStream round trip); the others go on with the rates they have.
        if not self._sizing.acquire(blocking=False):
            return
        try:
            sizer = self._sizer
            now = self._clock()
            if sizer is None or now < self._size_at:
                return
            self._size_at = now + SIZER_RETRY_INTERVAL
            rates = sizer()
            if rates is None:
                return
            self._sizer = None
            self.records_per_second = _tighter(self._configured[0], rates[0])
            self.bytes_per_second = _tighter(self._configured[1], rates[1])
        finally:
            self._sizing.release()

    def _budgets(self) -> Tuple[float, float]:
        """The per-window budgets, ``inf`` when unlimited; at least one record per window."""
        records = max(self.records_per_second, 1.0) if self.records_per_second > 0 else math.inf
        data = self.bytes_per_second if self.bytes_per_second > 0 else math.inf
        return records, data

    def _earliest(
        self, now: float, records: float, data_bytes: float
    ) -> Tuple[float, float, float]:
        """Find the earliest booking time for a request of this size (caller holds the lock).

        Returns:
            ``(time, records used, bytes used)``: the moment, and what the log holds in the
            window that ends there.
        """
        log = self._log
        while log and log[0][0] <= now - RATE_WINDOW:
            log.popleft()
        start = max(now, log[-1][0]) if log else now
        used_records = sum(entry[1] for entry in log)
        used_bytes = sum(entry[2] for entry in log)
        max_records, max_bytes = self._budgets()
        index = 0
        while index < len(log) and (
            log[index][0] <= start - RATE_WINDOW
            or used_records + records > max_records
            or used_bytes + data_bytes > max_bytes
        ):
            # The oldest entry still counted leaves the window at its time + RATE_WINDOW.
            oldest = log[index]
            start = max(start, oldest[0] + RATE_WINDOW)
            used_records -= oldest[1]
            used_bytes -= oldest[2]
            index += 1
        return start, used_records, used_bytes

    def grant(
        self,
        max_records: int,
        max_bytes: int,
        min_bytes: int = 1,
        max_wait: Optional[float] = None,
    ) -> Optional[Grant]:
        """Book the room for the next request: as much as the window allows, up to the maxima.

        Follow with :meth:`settle`, once the request is cut, to give back what it did not use.

        Args:
            max_records: the most records the sender would put in one request.
            max_bytes: the most payload bytes it would put in one request.
            min_bytes: the room the next record needs, in bytes; default 1. A value above the
                byte budget waits for an empty window.
            max_wait: the longest wait the caller accepts, in seconds; default ``None`` accepts
                any wait.

        Returns:
            The grant (wait, records, bytes); or ``None``, with nothing booked, when the wait
            would exceed ``max_wait``.
        """
        budget_records, budget_bytes = self._budgets()
        with self._lock:
            now = self._clock()
            need_bytes = min(float(min_bytes), budget_bytes)
            start, used_records, used_bytes = self._earliest(now, 1, need_bytes)
            wait = max(0.0, start - now)
            if max_wait is not None and wait > max_wait:
                return None
            records = int(min(max_records, budget_records - used_records))
            data = int(min(max_bytes, budget_bytes - used_bytes))
            entry = [start, float(records), float(data)]
            self._log.append(entry)
            empty = used_records == 0 and used_bytes == 0
            return Grant(wait, max(records, 1), max(data, 1), empty, entry)

    def settle(self, grant: Grant, records: int, data_bytes: int) -> None:
        """Shrink a grant's booking to what the request really holds (``0, 0``: cancel it).

        Args:
            grant: from :meth:`grant`.
            records: records in the request as cut.
            data_bytes: payload bytes in the request as cut.
        """
        with self._lock:
            entry = grant._entry
            entry[1], entry[2] = float(records), float(data_bytes)
            if records == 0 and data_bytes == 0:
                with contextlib.suppress(ValueError):  # already expired from the log
                    self._log.remove(entry)

    def finish(self, grant: Grant) -> None:
        """Move a grant's booking to now, the end of its request (see the class docstring).

        Args:
            grant: from :meth:`grant`, settled to the request's size.
        """
        with self._lock:
            entry = grant._entry
            now = self._clock()
            if entry[0] >= now:
                return
            entry[0] = now
            log = self._log
            if len(log) > 1 and any(log[i][0] > log[i + 1][0] for i in range(len(log) - 1)):
                # Requests in flight at once may end out of their booking order.
                ordered = sorted(log, key=lambda item: item[0])
                log.clear()
                log.extend(ordered)

    def reserve(
        self, records: int, data_bytes: int, max_wait: Optional[float] = None
    ) -> Optional[float]:
        """Book room for one request of a known size and return how long to wait before it.

        A request larger than the whole budget waits for an empty window and goes alone.

        Args:
            records: records in the request.
            data_bytes: payload bytes in the request.
            max_wait: the longest wait the caller accepts, in seconds; default ``None`` accepts
                any wait.

        Returns:
            Seconds to wait (``0.0`` when the window has room), with the room booked; or
            ``None``, with nothing booked, when the wait would exceed ``max_wait``.
        """
        if not self.is_limited:
            return 0.0
        budget_records, budget_bytes = self._budgets()
        with self._lock:
            now = self._clock()
            start, _, _ = self._earliest(
                now, min(records, budget_records), min(data_bytes, budget_bytes)
            )
            wait = max(0.0, start - now)
            if max_wait is not None and wait > max_wait:
                return None
            self._log.append([start, float(records), float(data_bytes)])
            return wait


class Flusher:
    """Sends the buffer's records to DIS from a daemon thread, and from callers on flush/close.

    Args:
        buffer: the buffer to drain.
        sender: a :class:`Sender` (the :class:`~dis_logging.client.DISClient`).
        stream_name: target stream.
        stream_id: stream id for streams of another account; default ``None``.
        partition_id: send every record to this partition; default ``None`` (keys or DIS decide).
        batch_records: records per request at most.
        batch_bytes: payload bytes per request at most.
        flush_interval: seconds between sends of partial batches.
        retry: backoff and ``max_retry_time`` for failed records.
        reporter: diagnostics channel.
        sending_threads: thread idents whose log records the handler ignores; the flusher adds its
            own thread and any caller thread while it sends.
        limiter: client-side rate limit, or ``None``.
        spool_factory: creates the spool on first use, or ``None`` for no spool.
        spool_mode: ``"outage"`` spools only batches that keep failing; ``"always"`` spools all.
        secrets: strings masked in :attr:`last_error` (a live ``SecretSet`` or any strings).
        thread_name: name of the thread; default ``dis-logging-flusher``.
        clock: monotonic time source; default :func:`time.monotonic`.
    """

    def __init__(
        self,
        buffer: RecordBuffer,
        sender: Sender,
        *,
        stream_name: str,
        stream_id: Optional[str] = None,
        partition_id: Optional[str] = None,
        batch_records: int = 500,
        batch_bytes: int = 1_000_000,
        flush_interval: float = 1.0,
        retry: Optional[RetryPolicy] = None,
        reporter: ReporterLike,
        sending_threads: Set[int],
        limiter: Optional[RateLimiter] = None,
        spool_factory: Optional[Callable[[], SpoolLike]] = None,
        spool_mode: str = "outage",
        secrets: Iterable[str] = (),
        thread_name: str = THREAD_NAME,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.buffer = buffer
        self.sender = sender
        self.stream_name = stream_name
        self.stream_id = stream_id
        self.partition_id = partition_id
        self.batch_records = batch_records
        self.batch_bytes = batch_bytes
        self.flush_interval = flush_interval
        self.retry = retry if retry is not None else RetryPolicy()
        self.reporter = reporter
        self.limiter = limiter
        self.thread_name = thread_name
        self._sending_threads = sending_threads
        self._spool_factory = spool_factory
        self._spool_mode = spool_mode
        self._spool: Optional[SpoolLike] = None
        self._spool_retry_at = 0.0  # after a failed open: when to try again
        self._spool_adopted_seen = 0  # the spool's adopted/lost counters already in the ledger
        self._spool_lost_seen = 0
        # A SecretSet is kept as is: tokens obtained later are masked too.
        self._secrets = secrets if isinstance(secrets, SecretSet) else SecretSet(secrets)
        self._clock = clock
        self._event = threading.Event()
        self._stop = threading.Event()
        self._slot = threading.Lock()  # one batch at a time per lane keeps per-key order
        self._state = threading.Lock()  # guards the counters and backoff state below
        self._thread: Optional[threading.Thread] = None
        # wake(force=True) bumps the counter; the thread compares it with the value it last saw,
        # so a request arriving while the thread reads it is seen on the next round, never lost.
        self._force_requests = 0
        #: Set by a drain at exit or SIGTERM (monotonic time): requests this thread makes end by
        #: then, and none starts after it, so their outcome is known before the process ends.
        self.drain_until: Optional[float] = None
        #: Set by the SIGTERM handler (monotonic time) when the main thread is inside a flush()
        #: or close(): a flush on the calling thread gives up then. Unlike :attr:`drain_until`,
        #: which stays set after an exit drain, it never cuts a flush() or close() that comes
        #: later (an ``atexit`` function's, ``logging.shutdown``'s) short.
        self.cut_until: Optional[float] = None
        self._force_seen = 0
        self._pause = threading.Event()  # never set: waiting on it is a bounded pause
        self._attempt = 0
        self._not_before = 0.0
        self._requests = 0
        self._last_error: Optional[str] = None
        self._data_limit_at = 0.0  # when to ask the sender for the stream's request limit
        self._persister: Optional[Persister] = None
        # With a spool: batches from memory inside a request now, by token, and the tokens of
        # those copied to the spool because close or exit could not wait for their reply.
        self._insure_lock = threading.Lock()
        self._requests_out: Dict[int, Batch] = {}
        self._insured: Set[int] = set()
        if spool_factory is not None:
            self._persister = Persister(
                buffer,
                self._get_spool,
                take=self._take,
                serialize=self._serialize,
                mode=spool_mode,
                batch_records=batch_records,
                batch_bytes=batch_bytes,
                flush_interval=flush_interval,
                reporter=reporter,
                sending_threads=sending_threads,
                in_outage=self._is_in_outage,
                on_stored=self.wake,
                on_spool_used=self._sync_spool_counts,
                is_unusable=self._is_spool_unusable,
                clock=clock,
            )

    def __repr__(self) -> str:
        alive = self._thread is not None and self._thread.is_alive()
        return f"Flusher(stream={self.stream_name!r}, running={alive}, requests={self._requests})"

    @property
    def requests(self) -> int:
        """PutRecords requests made so far (including failed ones)."""
        return self._requests

    @property
    def last_error(self) -> Optional[str]:
        """A one-line description of the most recent failure, without secrets; ``None`` if none.

        Server text in it (an error message, an error code) has its control characters written
        as escapes (``\\n``, ``\\x1b``), so that it cannot start a new line or a terminal
        sequence wherever the text is written.
        """
        text = self._last_error
        return None if text is None else printable(text)

    @property
    def event(self) -> threading.Event:
        """The event that wakes the thread; setting it asks for a send of full batches."""
        return self._event

    @property
    def ident(self) -> Optional[int]:
        """The flusher thread's ident, or ``None`` before it started."""
        return self._thread.ident if self._thread is not None else None

    @property
    def spooled(self) -> int:
        """Records waiting in the spool (0 without one)."""
        spool = self._spool
        return spool.pending_records if spool is not None else 0

    def start(self) -> bool:
        """Start the thread unless it runs already or the flusher was stopped.

        Returns:
            ``True`` when the thread runs after the call. ``False`` when it cannot be started (for
            example, during interpreter shutdown); callers then rely on flush/close to send.
        """
        with self._state:
            if self._thread is not None:
                return self._thread.is_alive()
            if self._stop.is_set():
                return False
            thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            try:
                thread.start()
            except RuntimeError as exc:  # "can't create new thread at interpreter shutdown" (3.12+)
                # Only at shutdown is this final; a transient limit (too many threads) leaves the
                # flusher unstarted, so that a later record tries again.
                if sys.is_finalizing():
                    self._stop.set()
                failure: Optional[RuntimeError] = exc
            else:
                self._thread = thread
                failure = None
        if failure is not None:
            self.reporter.report(error_key(failure), f"cannot start the flusher thread: {failure}")
            return False
        if self._persister is not None:
            self._persister.start()
        return True

    def wake(self, *, force: bool = False) -> None:
        """Ask the thread to send full batches now, or everything buffered when ``force``.

        Args:
            force: also send a partial batch (``flush_on_level``); default ``False``.
        """
        if force:
            self._force_requests += 1
        if not self._event.is_set():
            self._event.set()

    def stop(self) -> None:
        """Ask the thread to finish its current request and exit; does not wait."""
        self._stop.set()
        self._event.set()
        if self._persister is not None:
            self._persister.stop()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the threads to exit; ``True`` if none is running."""
        deadline = self._clock() + timeout
        persister = self._persister
        if persister is not None and not persister.join(timeout):
            return False
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(max(deadline - self._clock(), 0.0))
        return not thread.is_alive()

    def close_spool(self) -> None:
        """Close the spool, if one was opened."""
        spool = self._spool
        if spool is not None:
            spool.close()

    def flush_on_caller(self, deadline: float, *, may_wait: bool) -> bool:
        """Send, on the calling thread, every record queued before the call, until ``deadline``.

        Args:
            deadline: time on the flusher's clock after which the call gives up.
            may_wait: whether the caller may wait for a batch the flusher thread has in flight.
                ``False`` when the caller holds ``logging``'s module lock: the flusher may need
                that lock to finish, so the caller sends what is buffered itself (concurrently
                with the in-flight batch) and leaves the in-flight batch be.

        Returns:
            ``True`` when every record queued before the call was acknowledged by DIS.
        """
        buffer = self.buffer
        target = buffer.last_seq
        watch = buffer.watch(target)
        ident = threading.get_ident()
        on_main = threading.current_thread() is threading.main_thread()
        registered = ident not in self._sending_threads
        if registered:
            self._sending_threads.add(ident)
        try:
            while True:
                until = self.cut_until
                if until is not None and until < deadline:
                    deadline = until  # SIGTERM cut this flush short (see handler._on_sigterm)
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                spool_step = self._spool_has_work(include_buffer=True)
                if not spool_step and not buffer.has_pending(target):
                    break
                if not spool_step and not buffer.has_buffered(target):
                    # Only the flusher's in-flight batch is left; it may come back for a retry.
                    if not may_wait:
                        break
                    if on_main:
                        # In slices: a SIGTERM handler that cuts this flush (cut_until) runs on
                        # this thread and cannot notify the wait (it takes no lock).
                        remaining = min(remaining, CUT_POLL)
                    buffer.wait_in_flight(target, remaining)
                    continue
                got_slot = self._slot.acquire(timeout=remaining) if may_wait else False
                if may_wait and not got_slot:
                    continue  # the deadline passed while the flusher was sending
                if spool_step and not got_slot:
                    break  # the spool is read by one thread at a time; leave it to the flusher
                try:
                    # Waiting for the slot (the flusher's own request) spent part of the budget:
                    # the request made now gets only what is left of it.
                    remaining = deadline - self._clock()
                    if remaining <= 0:
                        break
                    if spool_step:
                        outcome = self._spool_step(timeout=remaining, limit=not self._stop.is_set())
                    else:
                        outcome = self._cut_and_send(
                            timeout=remaining, limit=not self._stop.is_set()
                        )
                finally:
                    if got_slot:
                        self._slot.release()
                if spool_step and outcome is None:
                    break  # the spool reports a backlog it cannot read now; do not spin on it
                if outcome == DEFERRED:
                    break
                if outcome in (RETRY, PARTIAL):
                    delay = self._not_before - self._clock()
                    if delay >= deadline - self._clock():
                        break
                    if delay > 0:
                        self._pause.wait(delay)
            return (
                not buffer.has_pending(target)
                and not watch.lost
                and not (self._spool is not None and self._spool.pending_records > 0)
            )
        finally:
            buffer.unwatch(watch)
            if registered:
                self._sending_threads.discard(ident)

    def spool_leftovers(self, *, in_flight: bool = True) -> int:
        """Move every buffered record into the spool (at close); return how many were stored.

        Args:
            in_flight: also copy the records of requests still waiting for their reply, oldest
                first, and count them as spooled (see :meth:`_insure_requests`); default
                ``True``. ``False`` leaves them to be counted when their reply comes.

        Returns:
            The number of records stored; ``0`` without a spool.
        """
        if self._spool_factory is None or self._get_spool() is None:
            return 0
        stored = 0
        if self._persister is not None:
            self._persister.resume()  # at close, try the spool even if it refused a batch lately
            if in_flight:
                # Requests close or exit cannot wait for first: they hold the oldest records.
                stored = self._insure_requests()
            stored += self._persister.persist(everything=True)
        while True:
            batch = self._take()
            if batch is None:
                return stored
            kept, lost = self._spool_put(batch.items)
            self.buffer.settle(batch, spooled=kept, dropped=lost)
            stored += len(kept)

    def _run(self) -> None:
        ident = threading.get_ident()
        self._sending_threads.add(ident)
        clock = self._clock
        last_drain = clock()
        try:
            while not self._stop.is_set():
                now = clock()
                if now < self._not_before:
                    # Backing off: sleep on the stop event, so wake-ups from busy emitters (the
                    # event stays set) cost nothing until the backoff ends.
                    self._stop.wait(self._not_before - now)
                    continue
                self._event.wait(max(last_drain + self.flush_interval - now, 0.0))
                if self._stop.is_set():
                    break
                self._event.clear()
                now = clock()
                requests = self._force_requests
                force = requests != self._force_seen or now - last_drain >= self.flush_interval
                self._force_seen = requests
                if force:
                    last_drain = now
                try:
                    self._drain(force=force)
                except BaseException as exc:  # noqa: BLE001 - the one catch-all: the thread must survive
                    # BaseException too: a user's callable run here (a token or key provider, the
                    # on_failure hook, diagnostics) raising SystemExit would otherwise end the
                    # thread, and records would wait for a flush or the exit. Signals such as
                    # KeyboardInterrupt only ever reach the main thread.
                    self._note_error(exc)
                    self.reporter.report(
                        error_key(exc),
                        f"unexpected error in the flusher (it keeps running): {exc!r}",
                    )
                    self._set_backoff(escalate=True)
        finally:
            self._sending_threads.discard(ident)

    def _drain(self, *, force: bool) -> None:
        """Send batches until the buffer has no full batch (or none at all when ``force``)."""
        buffer = self.buffer
        while not self._stop.is_set() and self._clock() >= self._not_before:
            timeout: Optional[float] = None
            until = self.drain_until
            if until is not None:
                timeout = until - self._clock()
                if timeout <= 0:
                    return
            ready = force or buffer.is_batch_ready(self.batch_records, self.batch_bytes)
            if self._spool_has_work(include_buffer=ready):
                with self._slot:
                    outcome = self._spool_step(timeout=timeout, limit=True)
                if outcome != SENT:
                    return
                continue
            if not ready:
                return
            with self._slot:
                outcome = self._cut_and_send(timeout=timeout, limit=True)
            if outcome != SENT:
                return

    def _take(
        self, max_records: Optional[int] = None, max_bytes: Optional[int] = None
    ) -> Optional[Batch]:
        """Cut the next batch and serialize it: every later step (send, spool) sees bytes.

        Records captured on the caller's thread become bytes here, a batch at a time, outside the
        buffer's lock (:func:`~dis_logging.serializer.serialize_payloads`). A batch whose records
        were all dropped as oversize is skipped.

        Args:
            max_records: records per batch at most; default ``None``, the flusher's batch size.
            max_bytes: payload bytes per batch at most; default ``None``, the flusher's.

        Returns:
            A batch of serialized records, or ``None`` when the buffer is empty.
        """
        records = (
            self.batch_records if max_records is None else min(max_records, self.batch_records)
        )
        data_bytes = self.batch_bytes if max_bytes is None else min(max_bytes, self.batch_bytes)
        while True:
            batch = self.buffer.take(records, data_bytes)
            if batch is None:
                return None
            resolved = self._serialize(batch, data_bytes)
            if resolved is not None:
                return resolved

    def _serialize(self, batch: Batch, max_bytes: Optional[int] = None) -> Optional[Batch]:
        """Serialize a batch cut from the buffer (see :meth:`_take`); ``None`` if none is left.

        ``max_bytes`` bounds the serialized batch (default ``None``: the flusher's batch bytes).
        """
        if batch.is_serialized:
            return batch
        limit = self.batch_bytes if max_bytes is None else max_bytes
        # The records the limit leaves out stay captured and go back to the buffer (resolve).
        payloads = serialize_payloads([item[1] for item in batch.items], limit)
        return self.buffer.resolve(batch, payloads, limit)

    def _cut_and_send(self, *, timeout: Optional[float], limit: bool = False) -> Optional[str]:
        if self.batch_bytes > SMALLEST_REQUEST_DATA_LIMIT and timeout is None:
            self._learn_data_limit()  # a network call: never on a caller's bounded flush
        limiter = self.limiter
        if not limit or limiter is None or not limiter.is_limited:
            batch = self._take()
            return None if batch is None else self._send(batch, timeout)
        # Rate-limited: ask the limiter how much the window still allows, and cut the batch to
        # that, so no one-second window ever carries more than the budget.
        need_bytes = 1
        while True:
            if not self.buffer.has_buffered():
                return None
            # A flush on the caller's thread books only a wait that leaves time to send.
            max_wait = None if timeout is None else timeout - MIN_REQUEST_TIMEOUT
            grant = limiter.grant(self.batch_records, self.batch_bytes, need_bytes, max_wait)
            if grant is None:
                return DEFERRED
            if grant.wait > 0:
                stopped = self._stop.wait(grant.wait)
                if timeout is not None:
                    timeout -= grant.wait
                elif stopped:
                    limiter.settle(grant, 0, 0)
                    return RETRY
            batch = self._take(grant.records, grant.data_bytes)
            if batch is None:
                limiter.settle(grant, 0, 0)
                return None
            if batch.data_bytes > grant.data_bytes and not grant.empty_window:
                # One record larger than what the window has left: put it back and wait for
                # room for it (a record larger than the whole budget goes alone, window empty).
                self.buffer.settle(batch, unsent=batch.items)
                limiter.settle(grant, 0, 0)
                need_bytes = batch.data_bytes
                continue
            limiter.settle(grant, len(batch), batch.data_bytes)
            try:
                return self._send(batch, timeout)
            finally:
                limiter.finish(grant)

    def _send(self, batch: Batch, timeout: Optional[float]) -> str:
        """Send one batch and settle every record of it in the buffer's ledger."""
        settled = False
        # Every request is tracked, so that close, the exit drain and the SIGTERM drain can
        # settle what is still inside one when the process ends (see give_up_requests).
        tracked = True
        with self._insure_lock:
            self._requests_out[batch.token] = batch
        try:
            try:
                result = self._put(batch.entries, timeout)
            except DISError as exc:
                if tracked and self._end_request(batch):
                    settled = True  # copied to the spool meanwhile, which accounts for it now
                    self._note_error(exc)
                    return RETRY
                outcome, retry, failed = self._classify_error(batch, exc)
                if retry and (self._should_spool() or self._would_overflow(retry)):
                    # What the spool refuses stays in memory: only the queue's bound may drop it.
                    stored, rest = self._spool_put(retry)
                    self.buffer.settle(batch, failed=failed, spooled=stored, retry=rest)
                else:
                    self.buffer.settle(batch, retry=retry, failed=failed)
                settled = True
                return outcome
            if tracked and self._end_request(batch):
                settled = True  # copied to the spool meanwhile: sent from there (at least once)
                return SENT
            sent, retry, failed, codes = self._classify_result(batch.items, result)
            self.buffer.settle(batch, sent=sent, retry=retry, failed=failed)
            settled = True
            if failed:
                self.reporter.report(
                    ("RecordRejected", codes[0]),
                    f"DIS rejected {len(failed)} record(s) of stream {self.stream_name!r} "
                    f"({', '.join(sorted(set(codes)))}); counted as failed",
                )
            if retry:
                self._set_backoff(escalate=not sent)
                return PARTIAL
            self._set_backoff(reset=True)
            return SENT
        finally:
            if not settled:
                # An unexpected exception escaped: keep the records rather than lose them.
                if tracked:
                    self._end_request(batch)
                self.buffer.settle(batch, retry=batch.items)

    def _end_request(self, batch: Batch) -> bool:
        """Forget a request that ended; ``True`` when its batch was copied to the spool meanwhile
        (see :meth:`_insure_requests`): then the spool accounts for its records, not the reply."""
        with self._insure_lock:
            self._requests_out.pop(batch.token, None)
            if batch.token in self._insured:
                self._insured.discard(batch.token)
                return True
            return False

    def _insure_requests(self) -> int:
        """Copy every batch from memory still inside a request to the spool; return how many
        records were stored.

        Close, the exit drain and the SIGTERM drain give up on a request whose reply did not come
        by their deadline; when the process then ends, the reply never comes. Each copied batch
        is settled as spooled at once (delivered by the spool, or by the next start), and the
        reply, when it comes, changes nothing (:meth:`_end_request`). If the request succeeded
        after all, those records reach DIS twice: delivery is at least once.
        """
        stored = 0
        with self._insure_lock:
            for token, batch in sorted(self._requests_out.items()):
                if token in self._insured:
                    continue
                kept, refused = self._spool_put(batch.items)
                if not kept:
                    break  # the spool refuses records now: the rest stay in flight as they were
                self._insured.add(token)
                # What the spool refused goes back to the queue (or is dropped if it is closed).
                self.buffer.settle(batch, spooled=kept, unsent=refused)
                stored += len(kept)
        return stored

    def give_up_requests(self, reason: str) -> int:
        """Settle every batch still inside a request as dropped (``reason``); return how many
        records that was.

        Only for the very end (the SIGTERM drain, a forked ``multiprocessing`` child's exit, a
        close after the exit drain): the process ends next, so the reply would never be counted.
        The records go to ``on_failure`` like the rest the end gives up on; the reply, should it
        come first after all, changes nothing (:meth:`_end_request`), so a record DIS did take
        is counted as dropped: the report says their delivery is unknown.
        """
        given = 0
        with self._insure_lock:
            for token, batch in sorted(self._requests_out.items()):
                if token in self._insured:
                    continue
                self._insured.add(token)
                self.buffer.settle(batch, dropped=batch.items, drop_reason=reason)
                given += len(batch)
        return given

    def _classify_error(self, batch: Batch, exc: DISError) -> Tuple[str, List[Item], List[Item]]:
        """Decide what a whole-request failure means for the batch's records."""
        self._note_error(exc)
        if self._is_too_large(exc, batch.data_bytes, len(batch)):
            # Split and resend: the records go back to the front, and the next batches are cut
            # to the limit (or to half of this one when the limit is not known).
            return RETRY, list(batch.items), []
        if exc.retryable:
            retry, failed = self._age(batch.items)
            self._set_backoff(escalate=True, retry_after=exc.retry_after)
            note = f"; gave up on {len(failed)} record(s) after max_retry_time" if failed else ""
            self.reporter.report(
                error_key(exc),
                f"PutRecords to stream {self.stream_name!r} failed, will retry: {exc}{note}",
            )
            return RETRY, retry, failed
        self._set_backoff(escalate=True)
        if not exc.repeat:  # the client is waiting out a failure that was reported already
            self.reporter.report(
                error_key(exc),
                f"PutRecords to stream {self.stream_name!r} failed permanently: {exc}; "
                f"{len(batch)} record(s) counted as failed",
            )
        return REJECTED, [], list(batch.items)

    def _is_too_large(self, exc: DISError, data_bytes: int, records: int) -> bool:
        """Whether ``exc`` refused a request for its size; if so, shrink the next batches.

        413 (APIG.0201, the gateway's body limit) and a request over the stream type's
        per-request data limit (1 MB COMMON, 5 MB ADVANCED; DIS-API.md 8 and 9) both mean that
        smaller requests succeed. A single record cannot be split: it fails as usual.
        """
        if records <= 1 or not (exc.status == STATUS_TOO_LARGE or getattr(exc, "too_large", False)):
            return False
        limit: Optional[int] = getattr(exc, "data_limit", None)
        with self._state:
            if limit is not None and data_bytes > limit:
                self.batch_bytes = max(min(self.batch_bytes, limit), MIN_BATCH_BYTES)
            else:
                self.batch_bytes = max(data_bytes // 2, MIN_BATCH_BYTES)
                self.batch_records = max(records // 2, 1)
        self.reporter.report(
            error_key(exc),
            f"request of {data_bytes} B too large for stream {self.stream_name!r}; split and "
            f"resent, batches are now at most {self.batch_bytes} B",
        )
        return True

    def _learn_data_limit(self) -> None:
        """Cap the batch size at the stream's per-request data limit, asked once of the sender.

        Only needed when batches may exceed the smallest limit (1 MB, COMMON streams); the
        sender reads the stream type with one DescribeStream. Until it can tell, a rejection
        teaches the same (see :meth:`_is_too_large`).
        """
        ask = getattr(self.sender, "request_data_limit", None)
        now = self._clock()
        if ask is None or now < self._data_limit_at:
            return
        self._data_limit_at = now + SIZER_RETRY_INTERVAL
        limit = ask(self.stream_name)
        if isinstance(limit, int) and limit > 0:
            with self._state:
                self.batch_bytes = min(self.batch_bytes, limit)
            self._data_limit_at = float("inf")

    def _classify_result(
        self, items: Sequence[Item], result: PutResult
    ) -> Tuple[List[Item], List[Item], List[Item], List[str]]:
        """Split a batch by per-record outcome: (sent, retry, failed, codes of the failed)."""
        if result.failed_record_count == 0 and result.record_count == len(items):
            return list(items), [], [], []
        sent: List[Item] = []
        again: List[Item] = []
        failed: List[Item] = []
        codes: List[str] = []
        retry_codes: Set[str] = set()
        now = self._clock()
        limit = self.retry.max_retry_time
        for item, record in zip(items, result.records):
            if record.ok:
                sent.append(item)
            elif record.retryable:
                first = item[4] or now
                if now - first >= limit:
                    failed.append(item)
                    codes.append(f"{record.error_code} after max_retry_time")
                else:
                    again.append((item[0], item[1], item[2], item[3], first))
                    retry_codes.add(str(record.error_code))
            else:
                failed.append(item)
                codes.append(str(record.error_code))
        # A reply with fewer results than records: resend the unanswered ones.
        for item in items[len(result.records) :]:
            again.append((item[0], item[1], item[2], item[3], item[4] or now))
        if again:
            self._last_error = (
                f"{len(again)} record(s) not stored ({', '.join(sorted(retry_codes))}); retrying"
            )
        return sent, again, failed, codes

    def _age(self, items: Sequence[Item]) -> Tuple[List[Item], List[Item]]:
        """Split failed items into those still within ``max_retry_time`` (stamped) and expired."""
        now = self._clock()
        keep: List[Item] = []
        expired: List[Item] = []
        limit = self.retry.max_retry_time
        for item in items:
            first = item[4] or now
            if now - first >= limit:
                expired.append(item)
            else:
                keep.append((item[0], item[1], item[2], item[3], first))
        return keep, expired

    def _put(self, entries: Sequence[Entry], timeout: Optional[float]) -> PutResult:
        with self._state:
            self._requests += 1
        return self.sender.put_records(
            self.stream_name,
            entries,
            stream_id=self.stream_id,
            partition_id=self.partition_id,
            timeout=None if timeout is None else max(timeout, MIN_REQUEST_TIMEOUT),
        )

    def _set_backoff(
        self, *, escalate: bool = False, reset: bool = False, retry_after: Optional[float] = None
    ) -> None:
        """Reset the backoff, or schedule the next attempt (``escalate``: one more failure)."""
        with self._state:
            if reset:
                self._attempt = 0
                self._not_before = 0.0
                return
            # A partial success restarts the ladder at its first step: DIS is answering.
            self._attempt = self._attempt + 1 if escalate else 1
            delay = self.retry.backoff(self._attempt, retry_after)
            self._not_before = self._clock() + delay

    def _note_error(self, exc: BaseException) -> None:
        self._last_error = redact(f"{type(exc).__name__}: {exc}", self._secrets)

    def _get_spool(self) -> Optional[SpoolLike]:
        """The spool, opened on first use; ``None`` without one or while it cannot be opened."""
        if self._spool is not None or self._spool_factory is None:
            return self._spool
        if self._clock() < self._spool_retry_at:
            return None
        with self._state:
            if self._spool is None and self._clock() >= self._spool_retry_at:
                try:
                    self._spool = self._spool_factory()
                except (OSError, ValueError) as exc:
                    self._spool_retry_at = self._clock() + SPOOL_REOPEN_INTERVAL
                    self.reporter.report(
                        error_key(exc),
                        f"cannot open the spool (records stay in memory; retrying in"
                        f" {SPOOL_REOPEN_INTERVAL:.0f}s): {exc}",
                    )
        if self._spool is not None:
            self._sync_spool_counts()
        return self._spool

    def _is_spool_unusable(self) -> bool:
        """Whether opening the spool failed lately (no I/O: safe on a caller's thread)."""
        return self._spool is None and self._clock() < self._spool_retry_at

    def _sync_spool_counts(self) -> None:
        """Bring the ledger up to date with records the spool adopted or lost on its own."""
        spool = self._spool
        if spool is None:
            return
        adopted = int(getattr(spool, "adopted", 0))
        lost = int(getattr(spool, "lost", 0))
        with self._state:
            new_adopted = adopted - self._spool_adopted_seen
            new_lost = lost - self._spool_lost_seen
            self._spool_adopted_seen = adopted
            self._spool_lost_seen = lost
        if new_adopted > 0:
            self.buffer.count_adopted(new_adopted)
        if new_lost > 0:
            self.buffer.count_spool_outcome(lost=new_lost)

    def _is_in_outage(self) -> bool:
        """Whether sends keep failing as a whole (the point where outage mode spools)."""
        return self._attempt >= SPOOL_AFTER_FAILURES

    def _spool_has_work(self, *, include_buffer: bool) -> bool:
        """Whether to take a spool step: a backlog is on disk, or always-mode has records.

        Args:
            include_buffer: in always-mode, count buffered records as work (they go to disk
                first), unless the spool refuses records just now: then they are sent from memory.
        """
        if self._spool_factory is None:
            return False
        # The spool's first read adopts the backlog of processes that died with one (step by
        # step, one step per read), so it is opened and read on the first send even when DIS is
        # healthy.
        spool = self._get_spool()
        if spool is None:
            return False
        if spool.pending_records > 0 or getattr(spool, "adoption_pending", False):
            return True  # a backlog, or dead processes' files to look for and move in
        persister = self._persister
        if persister is not None and persister.has_handoff:
            return True
        return (
            self._spool_mode == "always"
            and include_buffer
            and len(self.buffer) > 0
            and persister is not None
            and persister.is_accepting
        )

    def _should_spool(self) -> bool:
        """Whether a failed batch goes to disk: in an outage (repeated failures) or always-mode."""
        if self._spool_factory is None:
            return False
        return (self._is_in_outage() or self._spool_mode == "always") and (
            self._get_spool() is not None
        )

    def _would_overflow(self, items: Sequence[Item]) -> bool:
        """Whether putting ``items`` back would push the queue over its bounds (with a spool).

        Records that failed once go back to memory, but not at the price of shedding others
        while the spool has room: then they go to the spool instead.
        """
        if self._persister is None:
            return False
        buffer = self.buffer
        size = sum(len(cast(bytes, item[1])) + len(item[2] or "") for item in items)
        return (
            len(buffer) + len(items) > buffer.max_records
            or buffer.buffered_bytes + size > buffer.max_bytes
        )

    def _spool_put(self, items: Sequence[Item]) -> Tuple[Sequence[Item], Sequence[Item]]:
        """Store items in the spool; return (stored, refused) as two slices of ``items``."""
        persister = self._persister
        stored = 0
        if persister is not None:
            entries = [(cast(bytes, item[1]), item[2]) for item in items]  # serialized by _take
            stored = persister.put_entries(entries)
        return items[:stored], items[stored:]

    def _spool_step(self, *, timeout: Optional[float], limit: bool) -> Optional[str]:
        """Persist what is buffered, then send the spool's oldest batch (caller holds the slot).

        When the spool holds nothing because it refuses records (full, broken), the oldest
        buffered batch is sent from memory instead, so delivery goes on.
        """
        persister = self._persister
        if persister is not None:
            persister.persist(everything=self._spool_mode == "always" or self._is_in_outage())
        outcome = self._send_from_spool(timeout, limit=limit)
        if outcome is None and self.buffer.has_buffered():
            outcome = self._cut_and_send(timeout=timeout, limit=limit)
        return outcome

    def _read_spool(
        self, spool: SpoolLike, timeout: Optional[float], limit: bool
    ) -> Tuple[Optional[str], Optional[float], List[int], List[Entry], Optional[Grant]]:
        """Read the spool's next batch, cut to what the rate limit's window still allows.

        Returns:
            ``(outcome, timeout left, ids, entries, grant)``: outcome is ``None`` when the batch
            may be sent now, or :data:`DEFERRED`/:data:`RETRY` when the wait did not fit
            ``timeout`` or the flusher stopped during it (nothing read then); ``grant`` is the
            rate-limit booking to :meth:`RateLimiter.finish` once the request ends, if any.
        """
        limiter = self.limiter
        if not limit or limiter is None or spool.pending_records == 0 or not limiter.is_limited:
            ids, entries = spool.read(self.batch_records, self.batch_bytes)
            return None, timeout, ids, entries, None
        need_bytes = 1
        while True:
            max_wait = None if timeout is None else timeout - MIN_REQUEST_TIMEOUT
            grant = limiter.grant(self.batch_records, self.batch_bytes, need_bytes, max_wait)
            if grant is None:
                return DEFERRED, timeout, [], [], None
            if grant.wait > 0:
                stopped = self._stop.wait(grant.wait)
                if timeout is not None:
                    timeout -= grant.wait
                elif stopped:
                    limiter.settle(grant, 0, 0)
                    return RETRY, timeout, [], [], None
            ids, entries = spool.read(grant.records, grant.data_bytes)
            size = sum(len(data) for data, _ in entries)
            if ids and size > grant.data_bytes and not grant.empty_window:
                # One record larger than what the window has left: wait for room for it.
                limiter.settle(grant, 0, 0)
                need_bytes = size
                continue
            limiter.settle(grant, len(ids), size)
            return None, timeout, ids, entries, grant

    def _send_from_spool(self, timeout: Optional[float], *, limit: bool) -> Optional[str]:
        """Send the spool's oldest batch (within the rate limit when ``limit``); acknowledge it.

        Returns:
            The outcome, or ``None`` when the spool had nothing to send.
        """
        spool = self._spool
        if spool is None:
            return None
        waited, timeout, ids, entries, grant = self._read_spool(spool, timeout, limit)
        self._sync_spool_counts()  # a read of an empty spool may adopt orphans
        if waited is not None:
            return waited
        if not ids:
            return None
        try:
            return self._replay(spool, ids, entries, timeout)
        finally:
            if grant is not None and self.limiter is not None:
                self.limiter.finish(grant)

    def _replay(
        self, spool: SpoolLike, ids: List[int], entries: List[Entry], timeout: Optional[float]
    ) -> str:
        """Put one batch read from the spool and acknowledge what DIS settled for good."""
        try:
            result = self._put(entries, timeout)
        except DISError as exc:
            self._note_error(exc)
            if self._is_too_large(exc, sum(len(data) for data, _ in entries), len(ids)):
                return RETRY  # left in the spool, read again in smaller batches
            if exc.retryable:
                self._set_backoff(escalate=True, retry_after=exc.retry_after)
                self.reporter.report(
                    error_key(exc), f"replaying the spool failed, will retry: {exc}"
                )
                return RETRY
            if exc.repeat or isinstance(exc, AuthError) or exc.code in DESTINATION_ERRORS:
                # Refused for its credentials, permissions or destination (or not even sent
                # while the client waits out such a refusal): nothing is wrong with these
                # records, and a fixed configuration delivers them. The spool keeps them.
                self._set_backoff(escalate=True)
                if not exc.repeat:
                    self.reporter.report(
                        error_key(exc),
                        f"replaying the spool was refused: {exc}; the spooled records stay on"
                        " disk until DIS takes them (check the credentials, project and stream)",
                    )
                return RETRY
            spool.ack(ids)
            self.buffer.count_spool_outcome(failed=len(ids))
            self._set_backoff(escalate=True)
            self.reporter.report(
                error_key(exc),
                f"PutRecords of spooled records failed permanently: {exc}; "
                f"{len(ids)} record(s) counted as failed",
            )
            return REJECTED
        if result.failed_record_count == 0 and result.record_count == len(ids):
            spool.ack(ids)
            self.buffer.count_spool_outcome(sent=len(ids), failed=0)
            self._set_backoff(reset=True)
            return SENT
        done: List[int] = []
        sent = failed = 0
        retry = False
        for row_id, record in zip(ids, result.records):
            if record.ok:
                done.append(row_id)
                sent += 1
            elif record.retryable:
                retry = True  # left in the spool: read again first next time
            else:
                done.append(row_id)
                failed += 1
        spool.ack(done)
        self.buffer.count_spool_outcome(sent=sent, failed=failed)
        if retry or len(result.records) < len(ids):
            self._set_backoff(escalate=sent == 0)
            return PARTIAL
        self._set_backoff(reset=True)
        return SENT
