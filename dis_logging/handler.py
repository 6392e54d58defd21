"""DISHandler: a :class:`logging.Handler` that ships records to a Huawei Cloud DIS stream.

The smallest setup (credentials from ``HUAWEICLOUD_SDK_AK``/``HUAWEICLOUD_SDK_SK`` and
``HUAWEICLOUD_SDK_PROJECT_ID``)::

    import logging
    from dis_logging import DISHandler

    logging.getLogger().addHandler(DISHandler("app-logs", region="cn-north-4"))
    logging.getLogger().setLevel(logging.INFO)

The same in a Django ``settings.py`` (every value a plain string, number or boolean)::

    LOGGING = {
        "version": 1,
        "handlers": {
            "dis": {
                "class": "dis_logging.DISHandler",
                "stream_name": "app-logs",
                "region": "cn-north-4",
                "flush_interval": "1.0",
                "partition_key": "ext://myapp.logging.key_by_tenant",
            },
        },
        "root": {"handlers": ["dis"], "level": "INFO"},
    }

What the application's thread pays per record: a capture of the record (with the default
:class:`JSONFormatter`: message, exception text, fixed and ``extra`` fields; another formatter runs
in full), one append to a bounded deque, and a wake-up of the flusher thread only when a full batch
is ready. Everything else (JSON serialization, batching, HTTP, retries) runs on the
``dis-logging-flusher``
daemon thread, started with the first record. ``flush()`` and ``close()`` send what is left on the
calling thread, bounded by their timeout, and never wait for a flusher thread that may itself be
waiting for ``logging``'s module lock.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import itertools
import logging
import os
import signal
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    Final,
    FrozenSet,
    List,
    MutableMapping,
    NoReturn,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

from dis_logging._report import Reporter, SecretSet, error_key
from dis_logging.buffer import RecordBuffer
from dis_logging.client import (
    DISClient,
    Entry,
    JSONValue,
    PutResult,
    abort_request_on_this_thread,
)
from dis_logging.config import (
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_BATCH_RECORDS,
    DEFAULT_MAX_QUEUE_BYTES,
    DEFAULT_MAX_QUEUE_RECORDS,
    DEFAULT_SPOOL_MAX_BYTES,
    MAX_WAIT_SECONDS,
    BoolSetting,
    FailureHook,
    FloatSetting,
    HandlerConfig,
    IntSetting,
    LevelSetting,
    PartitionKey,
    TokenSetting,
    _to_level,
    check_keywords,
    unknown_keywords_error,
    unknown_variables,
)
from dis_logging.errors import ConfigError, DISError
from dis_logging.flusher import THREAD_NAME, Flusher, RateLimiter, SpoolLike
from dis_logging.formatting import (
    DeferredEncoder,
    JSONFormatter,
    encode_record,
    fit_json,
)
from dis_logging.retry import RetryPolicy
from dis_logging.serializer import Payload, serialize_payloads

__all__ = ["DISHandler", "HandlerStats"]

#: Records from these loggers are never shipped: they come from the handler's own HTTP stack, and
#: shipping them would produce more of them (a feedback loop).
IGNORED_LOGGERS: Final = frozenset({"dis_logging", "requests", "urllib3"})
#: Their descendants, matched by prefix ("requests_app" is somebody else's logger and is shipped).
IGNORED_LOGGER_PREFIXES: Final = tuple(name + "." for name in sorted(IGNORED_LOGGERS))
#: DIS write limits of one partition as (records/s, bytes/s) by stream type (DIS-API.md section 8).
PARTITION_WRITE_RATES: Final = {"COMMON": (1000.0, 1_000_000.0), "ADVANCED": (2000.0, 5_000_000.0)}
#: ``auto_rate_limit`` aims this far below the stream's limits: send timing jitters, and DIS
#: counts in fixed one-second windows, so aiming at 100% would still be throttled now and then.
AUTO_RATE_HEADROOM: Final = 0.9
#: After the flusher thread could not be started, how long to wait before trying again, in seconds.
FLUSHER_START_RETRY: Final = 1.0
#: A captured record whose estimated size is over ``max_record_bytes`` divided by this is encoded
#: on the caller's thread: JSON escaping can make text up to 6 times longer (``\\u0000``), so
#: anything that could be oversize is cut before it is buffered.
DEFER_SIZE_DIVISOR: Final = 6
#: The constructor arguments that are settings of :class:`HandlerConfig` (all but ``level``).
_SETTING_NAMES: Final = HandlerConfig.keywords()
#: Slack added to a deadline-bounded close for the final bookkeeping, in seconds.
_CLOSE_GRACE: Final = 0.2
#: How much longer than ``close_timeout`` a second ``close()`` waits for the first one to end: the
#: first one also counts, reports and stops its threads after its deadline.
_CLOSE_WAIT_MARGIN: Final = 1.0
#: How long after its deadline a request may end, in seconds: the socket timeout's tolerance
#: (README, "Every request has a total deadline": 0.25 s at most).
_LATE_REPLY: Final = 0.25
#: At most this many encoders of formatters the handler no longer uses are kept alive while records
#: are queued (records they captured may still wait, and serializing finds an encoder by weak
#: reference only); each holds one formatter. All are let go once nothing is queued.
_RETIRED_ENCODERS: Final = 1024

# Logger name -> whether it is ignored (IGNORED_LOGGERS); a dict lookup is the cheapest test per
# record. Loggers live as long as the process, so their names are few and the cache stays small.
_IGNORED_NAMES: Dict[str, bool] = {}


def _flush_budget(timeout: float) -> float:
    """The seconds a ``flush(timeout)`` may take: 0 for a negative or NaN timeout, at most
    :data:`~dis_logging.config.MAX_WAIT_SECONDS` (a longer wait, ``inf`` included, fails inside
    the threading module)."""
    if not timeout > 0:  # negative, zero or NaN
        return 0.0
    return min(float(timeout), MAX_WAIT_SECONDS)


def _is_ignored_logger(name: object) -> bool:
    if not isinstance(name, str) or name.__hash__ is None:
        return False  # no logger's name: logging.makeLogRecord() without "name" leaves None
    ignored = name in IGNORED_LOGGERS or name.startswith(IGNORED_LOGGER_PREFIXES)
    if len(_IGNORED_NAMES) < 10_000:
        _IGNORED_NAMES[name] = ignored
    return ignored


# Objects a forked child inherited from its parent and must neither use nor close (their locks or
# sockets may be mid-use in the parent). Parked here so garbage collection does not close them.
_INHERITED: List[object] = []
_HANDLERS: weakref.WeakSet[DISHandler] = weakref.WeakSet()
_exit_hooks_installed = False
#: SIGTERM where the platform has it (Windows has no usable SIGTERM handler semantics for this).
_SIGTERM: Final = getattr(signal, "SIGTERM", None) if os.name == "posix" else None
#: How often the SIGTERM helper thread checks whether the main thread has left the handler, s.
_SIGTERM_POLL_INTERVAL: Final = 0.01
_sigterm_installed = False
_sigterm_draining = threading.Event()
_sigterm_poll = threading.Event()  # never set: waiting on it is a bounded pause
_sigterm_retry_until: Optional[float] = None
#: True while the exit drain runs on the main thread (threading's exit hook, atexit).
_exit_drain_running = False
#: A SIGTERM came during the exit drain: the process ends killed by it once the drain is over.
_sigterm_during_exit = False
#: A SIGTERM found the main thread inside a handler: the main thread runs the SIGTERM drain
#: once it leaves flush() or close() (logging.shutdown's steps at exit, where no thread may start
#: to send the signal again, or one sent then may come after Python stopped running handlers).
_sigterm_pending = False
# Bound once: the per-record path looks these up on every call.
#
# Fork detection. A forked child must neither use nor send what its parent queued. Two layers:
# 1. os.register_at_fork(after_in_child=...) (bottom of this module) resets every live handler in
#    the child before any Python code runs there: os.fork, os.forkpty, multiprocessing's "fork"
#    start method, and C code that calls PyOS_AfterFork_Child (as Python's own modules do).
# 2. C code that forks without running those hooks (uWSGI's default prefork, for one) and then
#    logs from Python: handle() and emit() compare a JSONFormatter record's ``process``
#    (os.getpid() taken by LogRecord when the record was made) with the pid the handler was set
#    up in, and only on a mismatch ask os.getpid() itself (other formatters ask it every time).
#    getpid() is a system call (about 150 ns, as much as a tenth of the caller's whole cost);
#    this comparison is one attribute load. A mismatch without a fork (a record made in another
#    process and handled here, as QueueListener does, or logging.logProcesses off) costs the
#    system call, as every record did before.
# Left over: a record made in the parent before such a hook-less fork and emitted in the child;
# the child's next record of its own, or its flush(), close() or exit drain, resets the handler.
_getpid = os.getpid
_get_ident = threading.get_ident


@dataclass(frozen=True)
class HandlerStats:
    """A snapshot of a handler's counters.

    Every snapshot satisfies ``emitted + adopted == sent + dropped + failed + queued + spooled``
    exactly (without a spool ``adopted`` and ``spooled`` are 0). Each lane's counters are read under
    one lock, and a record moves from one counter to the next in a single step: a batch being
    written to disk counts as ``queued`` until the write returns, then as ``spooled``; a spooled
    batch being sent counts as ``spooled`` until DIS answers. ``spooled`` is the handler's ledger
    of records on disk; the spool file may hold a batch more for the moment of a write, or
    acknowledged rows whose delete a full disk refused (see the README's "Durable spool").

    Attributes:
        emitted: records the handler accepted (after its own recursion guard and filters);
            records refused as ``reentrant`` or by a raising filter count here and in
            ``dropped``.
        sent: records DIS acknowledged.
        dropped: records discarded: buffer overflow (with a spool, only while it is full or
            unusable), oversize with ``oversize="drop"``, spool full at close, a corrupt spool file,
            or still unsent when ``close()``/exit gave up (see ``drops`` for the split).
        failed: records DIS rejected for good, or that ran out of ``max_retry_time``.
        retried: resends of records after a failure (one record resent twice counts twice).
        queued: records buffered in memory or in flight.
        requests: PutRecords requests made.
        spooled: records waiting in the on-disk spool (handed to it, adopted, or found in the
            process's own file when it was reopened) and not yet sent, failed or lost.
        last_error: the most recent failure in one line, without secrets, or ``None``.
        in_flight: the part of ``queued`` inside a request now.
        drops: ``dropped`` by reason (``overflow``, ``oversize``, ``close``, ``exit``,
            ``closed``, ``reentrant``, ``filter_error``, ...; the README lists them all).
        adopted: records the spool found on disk rather than received from this handler: the
            backlog of processes that died, and the records of this process's own spool file when
            a new handler (a ``dictConfig`` reconfiguration, say) reopens it.
    """

    emitted: int = 0
    sent: int = 0
    dropped: int = 0
    failed: int = 0
    retried: int = 0
    queued: int = 0
    requests: int = 0
    spooled: int = 0
    last_error: Optional[str] = None
    in_flight: int = 0
    drops: Dict[str, int] = field(default_factory=dict)
    adopted: int = 0


class _Lane:
    """One buffer and the flusher draining it; ``max_in_flight`` lanes send in parallel."""

    __slots__ = ("buffer", "flusher")

    def __init__(self, buffer: RecordBuffer, flusher: Flusher) -> None:
        self.buffer = buffer
        self.flusher = flusher


class _DisabledClient:
    """The client of a switched-off handler: holds no session and is never called."""

    def __init__(self) -> None:
        self.secrets = SecretSet()

    def put_records(
        self,
        stream_name: str,
        entries: Sequence[Entry],
        *,
        stream_id: Optional[str] = None,
        partition_id: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> PutResult:
        raise DISError("the handler is disabled (enabled=False or DIS_LOGGING_ENABLED=false)")

    def describe_stream(self, name: str) -> Dict[str, JSONValue]:
        raise DISError("the handler is disabled (enabled=False or DIS_LOGGING_ENABLED=false)")

    def close(self) -> None:
        """Nothing to release."""


def _holds_logging_lock() -> bool:
    """Whether the calling thread holds ``logging``'s module lock (``dictConfig``, ``shutdown``)."""
    lock = getattr(logging, "_lock", None)
    is_owned = getattr(lock, "_is_owned", None)
    if is_owned is None:
        return False
    return bool(is_owned())


class DISHandler(logging.Handler):
    """Ship log records to a DIS stream, batched on a background thread.

    Every setting is a keyword-only argument. Numbers and booleans may also be given as the
    strings ``dictConfig``, ``fileConfig`` and Django's ``LOGGING`` deliver (``"1.5"``,
    ``"true"``, ``"100"``); callables also accept ``"ext://package.module.attr"``. Durations are
    float seconds, sizes bytes. ``None`` always means "not set": the environment fallback or the
    default applies. The sources of the connection settings and their order are described in
    :mod:`dis_logging.config`.

    Args:
        stream_name: the DIS stream, 1-64 characters of ``[A-Za-z0-9_-]``; default ``None``
            reads ``DIS_LOGGING_STREAM``.
        level: the handler's level, a number or a name such as ``"INFO"``; default ``NOTSET``.
        project_id: the DIS project id; default ``None`` reads ``HUAWEICLOUD_SDK_PROJECT_ID``,
            then the credentials file.
        region: region id such as ``"cn-north-4"``, used to derive the endpoints; default
            ``None`` reads ``DIS_LOGGING_REGION``.
        endpoint: DIS base URL; default ``None`` reads ``DIS_LOGGING_ENDPOINT``, then
            ``HUAWEICLOUD_SDK_REGION_DIS_<REGION>``, then derives it from ``region``.
            ``http://`` only for loopback hosts unless ``allow_insecure_http``.
        iam_endpoint: IAM base URL for password tokens; default ``None`` reads
            ``HUAWEICLOUD_SDK_IAM_ENDPOINT``, then the credentials file, then derives it (see
            :func:`~dis_logging.config.default_iam_endpoint`).
        ak: access key id for AK/SK signing; default ``None`` reads ``HUAWEICLOUD_SDK_AK``, then
            the credentials file.
        sk: secret access key; default ``None`` reads ``HUAWEICLOUD_SDK_SK``, then the file.
        security_token: token of temporary AK/SK credentials; default ``None`` reads it from
            where ``sk`` came from.
        username: IAM user for password tokens; default ``None`` reads ``DIS_LOGGING_USERNAME``.
        password: its password; default ``None`` reads ``DIS_LOGGING_PASSWORD``.
        domain_name: the account the IAM user belongs to; default ``None`` reads
            ``DIS_LOGGING_DOMAIN_NAME``.
        token: a ready ``X-Auth-Token``, or a callable returning one for each request; default
            ``None``. Give exactly one credential kind: ``ak``/``sk``, the IAM user, or ``token``.
        stream_id: the stream id, for a stream another account authorized; default ``None``.
        partition_key: a fixed key, or ``callable(record) -> str | None``; records of one key
            keep their order. Default ``None`` lets DIS spread records over partitions.
        partition_id: send every record to this partition; default ``None``. Not together with
            ``partition_key``.
        flush_interval: the longest wait before a partial batch is sent; default 1.0, > 0.
        max_batch_records: records per PutRecords request, 1-1000; default 500.
        max_batch_bytes: payload bytes per request, 256-5,000,000; default 1,000,000.
        max_queue_records: memory bound in records; default 100,000.
        max_queue_bytes: memory bound in bytes; default 64 MiB.
        overflow: what a full queue does: ``"drop_oldest"`` (default), ``"drop_newest"`` or
            ``"block"`` (waits up to ``block_timeout``, then drops).
        block_timeout: the longest wait of a ``"block"`` append; default 1.0; 0 never waits.
        priority_level: records below this level are shed first when full; default
            ``WARNING``.
        max_record_bytes: the per-record limit; default ``None`` means 1,000,000 capped at
            ``max_batch_bytes`` and ``max_queue_bytes``.
        oversize: a record over the limit is ``"truncate"``-d (default; the JSON stays valid)
            or ``"drop"``-ped.
        flush_on_level: records at or above this level are sent at once; default ``None``
            (never).
        request_timeout: connect and read timeout of each HTTP request; default 10.0.
        max_retry_time: give up on a record this long after its first failure; default 300.0.
        initial_backoff: the first retry delay; default 0.1.
        max_backoff: the longest retry delay; default 30.0.
        close_timeout: bound of ``close()``, a bare ``flush()``, the exit drain and the SIGTERM
            drain; default 5.0.
        drain_on_sigterm: when the handler is created on the main thread (or, made on another
            thread, gets its first record there) and SIGTERM has its default disposition
            (containers, systemd), install a SIGTERM handler that drains
            every handler within its ``close_timeout``, restores the default and sends SIGTERM
            again, so the process still ends as killed by SIGTERM; an application's own SIGTERM
            handler is never replaced. Default ``True``; ``False`` leaves SIGTERM alone.
        max_in_flight: parallel send lanes, 1-16; default 1. Each partition key stays on one
            lane.
        max_records_per_second: client-side rate limit; default 0 (off).
        max_bytes_per_second: client-side rate limit in bytes; default 0 (off), else at least
            ``max_record_bytes``.
        auto_rate_limit: pace sends to the stream's writable partitions times the DIS
            per-partition write limit (read once with DescribeStream); default ``False``.
        spool_dir: directory of the on-disk spool; default ``None`` reads
            ``DIS_LOGGING_SPOOL_DIR``, else no spool. Needs ``max_in_flight=1``. Created with mode
            0700 when missing; one owned by another user or writable by group or others is
            refused (``ConfigError``).
        spool_max_bytes: bound on the bytes of the records the spool holds (data and partition
            keys; SQLite's files take more on disk); default 256 MiB. With a spool, records are
            dropped only when it is at this bound or unusable: memory overflow spills to disk.
        spool_mode: ``"outage"`` (default: spill overflow, and spool everything after repeated
            failures) or ``"always"`` (every record on disk within ``flush_interval``).
        verify: ``True`` (default) checks TLS certificates, a path names a CA bundle,
            ``False`` turns the check off.
        serialization: ``"json"`` (default) or ``"protobuf"``.
        allow_insecure_http: allow ``http://`` to non-loopback hosts; default ``False``.
        diagnostics: a callable (or dotted path) receiving each diagnostic line; default
            ``None`` writes to stderr.
        report_interval: rate-limit window of repeated diagnostics; default 60.0; 0 writes all.
        enabled: ``False`` switches the handler off: no stream, endpoint or credential checks,
            no thread, no connection, and every record is counted as dropped with reason
            ``"disabled"``. Default ``None`` reads ``DIS_LOGGING_ENABLED``, else on.
        on_failure: ``callable(records: list[bytes], reason: str)`` (or a dotted path) given the
            payloads the handler gave up on: ``"failed"`` (rejected for good or out of retry
            time), ``"close"`` or ``"exit"`` (still queued at the deadline, or, as the process
            ends, inside a request still awaiting its reply). Called on the
            thread that gave up (the flusher, or the one closing); its exceptions are reported
            once and never reach the handler. Default ``None``.
        metadata_credentials: ``True`` signs with the temporary AK/SK and security token of the
            ECS/CCE instance's IAM agency, fetched from the metadata service on the first send,
            cached and refreshed before they expire (a failed refresh keeps the current set
            until it expires and is reported once). No other credentials may be given. Default
            ``None`` reads ``DIS_LOGGING_METADATA_CREDENTIALS``, else off.
        metadata_endpoint: the metadata service's base URL; default ``None`` reads
            ``DIS_LOGGING_METADATA_ENDPOINT``, else ``http://169.254.169.254``. ``http://`` only
            for that address and loopback hosts. Only with ``metadata_credentials``.

    Raises:
        ConfigError: a setting is unknown (all unknown names are listed, each with the closest
            valid name), malformed, missing or contradicts another; the error names it.
            Nothing touches the network here.
    """

    #: ``close()`` sends what is left, so a separate flush before it would only double the time
    #: spent when DIS is unreachable. Recent ``logging.shutdown`` versions honour this attribute;
    #: with older ones, the bare ``flush()`` and the ``close()`` share one ``close_timeout``.
    flushOnClose = False
    #: Set once an ``emit`` is assigned on the instance (see :meth:`__setattr__`).
    _emit_replaced = False
    #: Whether the class overrides ``filter()``: then handle() asks it even with no filter added,
    #: as :meth:`logging.Handler.handle` does (set per class, see :meth:`__init_subclass__`).
    _own_filter = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._own_filter = cls.filter is not logging.Filterer.filter

    @check_keywords
    def __init__(
        self,
        stream_name: Optional[str] = None,
        level: LevelSetting = logging.NOTSET,
        *,
        project_id: Optional[str] = None,
        region: Optional[str] = None,
        endpoint: Optional[str] = None,
        iam_endpoint: Optional[str] = None,
        ak: Optional[str] = None,
        sk: Optional[str] = None,
        security_token: Optional[str] = None,
        username: Optional[str] = None,
        password: Optional[str] = None,
        domain_name: Optional[str] = None,
        token: TokenSetting = None,
        stream_id: Optional[str] = None,
        partition_key: PartitionKey = None,
        partition_id: Optional[str] = None,
        flush_interval: FloatSetting = 1.0,
        max_batch_records: IntSetting = DEFAULT_MAX_BATCH_RECORDS,
        max_batch_bytes: IntSetting = DEFAULT_MAX_BATCH_BYTES,
        max_queue_records: IntSetting = DEFAULT_MAX_QUEUE_RECORDS,
        max_queue_bytes: IntSetting = DEFAULT_MAX_QUEUE_BYTES,
        overflow: str = "drop_oldest",
        block_timeout: FloatSetting = 1.0,
        priority_level: LevelSetting = logging.WARNING,
        max_record_bytes: Optional[IntSetting] = None,
        oversize: str = "truncate",
        flush_on_level: Optional[LevelSetting] = None,
        request_timeout: FloatSetting = 10.0,
        max_retry_time: FloatSetting = 300.0,
        initial_backoff: FloatSetting = 0.1,
        max_backoff: FloatSetting = 30.0,
        close_timeout: FloatSetting = 5.0,
        drain_on_sigterm: BoolSetting = True,
        max_in_flight: IntSetting = 1,
        max_records_per_second: FloatSetting = 0.0,
        max_bytes_per_second: FloatSetting = 0.0,
        auto_rate_limit: BoolSetting = False,
        spool_dir: Optional[str] = None,
        spool_max_bytes: IntSetting = DEFAULT_SPOOL_MAX_BYTES,
        spool_mode: str = "outage",
        verify: BoolSetting = True,
        serialization: str = "json",
        allow_insecure_http: BoolSetting = False,
        diagnostics: Union[str, Callable[[str], None], None] = None,
        report_interval: FloatSetting = 60.0,
        enabled: Optional[BoolSetting] = None,
        on_failure: Union[str, FailureHook, None] = None,
        metadata_credentials: Optional[BoolSetting] = None,
        metadata_endpoint: Optional[str] = None,
    ) -> None:
        # Every argument but ``level`` is a HandlerConfig setting of the same name (a test keeps
        # the two lists equal); reading them from locals() keeps that list in one place.
        settings = {name: value for name, value in locals().items() if name in _SETTING_NAMES}
        try:
            config = HandlerConfig.from_kwargs(**settings)
        finally:
            # Keep secrets out of this frame's locals, which a traceback may show.
            settings.clear()
            del sk, security_token, password, token
        self.config = config
        # Everything that can raise ConfigError runs before logging.Handler.__init__ registers
        # the handler for logging.shutdown: a half-built handler must never be flushed at exit.
        level_number = _to_level("level", level)
        self._client = self._make_client()
        super().__init__(level_number or logging.NOTSET)
        self.formatter = JSONFormatter()
        self._default_formatter = self.formatter
        self._max_record_bytes = config.max_record_bytes
        self._truncate = config.oversize == "truncate"
        self._defer_limit = config.max_record_bytes // DEFER_SIZE_DIVISOR
        # Records of encoder.formatter (a JSONFormatter) are captured and serialized on the
        # flusher; each carries this encoder. Replaced as a whole when the formatter changes.
        self._deferred_encoder = DeferredEncoder(
            self.formatter, self._max_record_bytes, self._truncate
        )
        # Encoders of formatters replaced while records were queued, by id() of the formatter.
        self._retired_encoders: Dict[int, DeferredEncoder] = {}
        self._encoder_lock = threading.Lock()  # held only while the formatter changes
        self._flush_on_level = config.flush_on_level
        key = config.partition_key
        self._static_key: Optional[str] = key if isinstance(key, str) else None
        self._key_function: Optional[Callable[[logging.LogRecord], Optional[str]]] = (
            key if callable(key) else None
        )
        self._retry = RetryPolicy(
            initial_backoff=min(config.initial_backoff, config.max_backoff),
            max_backoff=config.max_backoff,
            max_retry_time=config.max_retry_time,
        )
        self._lock_state = threading.Lock()
        # A switched-off handler is born closed: every record is refused (counted as dropped,
        # reason "disabled") before anything could start a thread or open a connection.
        self._closed = not config.enabled
        # Set when the close() that closed the handler has finished: a close() on another
        # thread meanwhile waits for it (bounded), so that its caller never moves on (ends the
        # process, say) while the first one is still sending or counting.
        self._close_done = threading.Event()
        self._exit_drained = False
        self._exit_marks: Tuple[int, ...] = ()
        self._no_threads = False
        # (start, end) of the last flush() without a timeout; close() right after shares its budget.
        self._last_bare_flush: Tuple[float, float] = (0.0, float("-inf"))
        self._setup()
        _report_unknown_variables(self._reporter)
        if config.verify is False and config.enabled:
            self._reporter.report_now(
                f"verify=False: the TLS certificate of {config.endpoint} is not checked; whoever "
                "sits on the network path can read the credentials and records"
            )
        if config.enabled:
            _register(self)
            if config.spool_dir is not None:
                from dis_logging.spool import has_spool_files  # only when a spool is configured

                if has_spool_files(config.spool_dir):
                    # A backlog left on disk (by a process that died, say) is replayed now, even
                    # if this process never logs a record.
                    self._start_flushers()

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "emit":
            # An emit() set on the instance (a test's mock or spy) must see every record, so
            # handle()'s flat path, which stands in for this class's emit(), is switched off.
            super().__setattr__("_emit_replaced", True)
            super().__setattr__("_fast_buffer", None)
        super().__setattr__(name, value)

    def __repr__(self) -> str:
        if not hasattr(self, "_lanes"):  # shown in a traceback of a failing __init__
            return "<DISHandler (not configured)>"
        level = logging.getLevelName(self.level)
        if not self.config.enabled:
            return f"<DISHandler disabled level={level}>"
        return (
            f"<DISHandler stream={self.config.stream_name!r} endpoint={self.config.endpoint!r} "
            f"level={level} lanes={len(self._lanes)}>"
        )

    @property
    def stats(self) -> HandlerStats:
        """A consistent snapshot of the counters (see :class:`HandlerStats`).

        Read from a signal handler while this thread is inside the handler, the counters are
        read without the buffer's lock (that thread may hold it), so they may be off by a record
        in flight between two of them.
        """
        ident = _get_ident()
        inside = self._inside
        if ident in inside:
            return self._collect_stats(wait=False)
        inside[ident] = True
        try:
            return self._collect_stats()
        finally:
            inside.pop(ident, None)

    def _collect_stats(self, *, wait: bool = True) -> HandlerStats:
        totals: Dict[str, int] = {}
        drops: Dict[str, int] = {}
        requests = spooled = adopted = 0
        last_error: Optional[str] = None
        for lane in self._lanes:
            counts = lane.buffer.snapshot(wait=wait)
            for name in ("emitted", "sent", "dropped", "failed", "retried", "queued", "in_flight"):
                totals[name] = totals.get(name, 0) + getattr(counts, name)
            for reason, count in counts.drops.items():
                drops[reason] = drops.get(reason, 0) + count
            requests += lane.flusher.requests
            spooled += counts.spooled
            adopted += counts.adopted
            last_error = last_error or lane.flusher.last_error
        return HandlerStats(
            emitted=totals["emitted"],
            sent=totals["sent"],
            dropped=totals["dropped"],
            failed=totals["failed"],
            retried=totals["retried"],
            queued=totals["queued"],
            requests=requests,
            spooled=spooled,
            last_error=last_error,
            in_flight=totals["in_flight"],
            drops=drops,
            adopted=adopted,
        )

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter and emit ``record`` unless it comes from the handler's own machinery.

        Unlike :meth:`logging.Handler.handle`, no handler lock is taken: :meth:`emit` is
        thread-safe by itself, and ``logging.shutdown`` holding the lock must not stall the
        flusher thread.

        Args:
            record: the record.

        Returns:
            Whether the record passed the guard and the filters.
        """
        name = record.name
        try:
            ignored = _IGNORED_NAMES[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name (see _is_ignored_logger)
            ignored = _is_ignored_logger(name)
        if ignored:
            return False
        ident = _get_ident()
        inside = self._inside
        if ident in inside:
            # A signal handler, or a filter, formatter or key function that logs, while this
            # thread is inside the handler (perhaps holding one of its locks): count, never wait.
            self._lanes[0].buffer.refuse_reentrant()
            return False
        if ident in self._sending_threads:
            return False
        # A dict store rather than set.add(): cheaper, and no method call between it and the
        # try, where a signal handler's exception (KeyboardInterrupt) could otherwise leave
        # this thread marked as inside for good.
        inside[ident] = True
        try:
            if self.filters or self._own_filter:
                try:
                    result = self.filter(record)
                except Exception as exc:  # noqa: BLE001 - a user's filter must not reach the app
                    self._refuse(self._lanes[0], "filter_error")
                    self._reporter.report(
                        error_key(exc),
                        f"a filter of the handler raised {exc!r}; the record was dropped",
                    )
                    return False
                if not result:
                    return False
                if isinstance(result, logging.LogRecord):  # Python 3.12+: a filter may replace it
                    record = result
            encoder = self._deferred_encoder
            buffer = self._fast_buffer  # None unless the setup allows this path (see _setup)
            if buffer is None or self.formatter is not encoder.formatter:
                self.emit(record)  # the general path: any other setup, formatter or subclass
                return True
            # The common case, written out here rather than in emit(): one lane, no key function,
            # no flush_on_level, a JSONFormatter. A method call per record is a few percent of
            # the application's whole cost of a record, which is this path's reason to be flat.
            try:
                levelno = record.levelno  # read before capture() (see the note there)
                try:
                    captured = encoder.formatter.capture(record, encoder)
                except Exception:  # noqa: BLE001 - a hostile record: emit() ships its fallback
                    self.emit(record)
                    return True
                if record.process != self._pid:
                    # A fork that skipped the at-fork hooks (see the note at _getpid); a record
                    # made in another process (QueueListener) only costs the getpid() call.
                    self._after_fork()
                    buffer = self._fast_buffer
                # Text that might not fit max_record_bytes is encoded (and cut) now, so that an
                # oversize record never sits whole in the buffer.
                data = encoder(captured) if captured[1] > self._defer_limit else captured
                if buffer is None or data is None or self._closed:
                    # Oversize with oversize="drop", or a close() that raced this record.
                    self._enqueue_record(record, data)
                    return True
                if buffer.put(data, self._static_key, levelno):
                    event = self._fast_event
                    if not event._flag:  # Event.is_set() without its Python-level call
                        event.set()
                if not self._started:
                    self._start_flushers()
            except RecursionError:  # as logging.Handler does: let a real recursion problem surface
                raise
            except Exception as exc:  # noqa: BLE001 - never raise into the application
                self._lost_in_emit(exc)
        finally:
            del inside[ident]  # only this thread removes its own entry
        return True

    def emit(self, record: logging.LogRecord) -> None:
        """Capture ``record`` on this thread and queue it; never raises.

        With a :class:`JSONFormatter` (the default) the record is captured (message resolved,
        traceback formatted, ``extra`` values frozen) and serialized later by the flusher; any
        other formatter runs here. Then one locked append, and an event set only when a full
        batch is ready. (:meth:`handle` takes the most common setup's path itself, without
        calling this method, unless a subclass overrides it.)

        Args:
            record: the record.
        """
        try:
            if self._closed:  # checked again below, after capturing, for a close() racing this
                self._refuse(self._lanes[0], "closed")
                return
            encoder = self._deferred_encoder
            data: Optional[Payload]
            if self.formatter is encoder.formatter:
                json_formatter = encoder.formatter
                try:
                    captured = json_formatter.capture(record, encoder)
                except Exception:  # noqa: BLE001 - a hostile record: format_bytes falls back
                    if self._pid != _getpid():
                        self._after_fork()
                    data = json_formatter.format_bytes(
                        record, self._max_record_bytes, self._truncate
                    )
                else:
                    # A fork that skipped the at-fork hooks (see the note at _getpid), no syscall.
                    if record.process != self._pid:
                        self._after_fork()
                    # Text that might not fit max_record_bytes is encoded (and cut) now, so that
                    # an oversize record never sits whole in the buffer.
                    data = encoder(captured) if captured[1] > self._defer_limit else captured
            else:
                if self._pid != _getpid():
                    self._after_fork()
                data = self._format(record)
            self._enqueue_record(record, data)
        except RecursionError:  # as logging.Handler does: let a real recursion problem surface
            raise
        except Exception as exc:  # noqa: BLE001 - emit must never raise into the application
            self._lost_in_emit(exc)

    def _lost_in_emit(self, exc: Exception) -> None:
        """Count and report a record that an unexpected error kept out of the buffer."""
        try:
            self._refuse(self._lanes[0], "error")
            self._reporter.report(
                error_key(exc), f"a record could not be queued and was dropped: {exc!r}"
            )
        except Exception:  # noqa: BLE001 - last resort: never raise into the application
            return

    def _format(self, record: logging.LogRecord) -> Optional[Payload]:
        """Capture or format ``record`` with a formatter other than the current deferred one."""
        formatter = self.formatter or self._default_formatter
        if isinstance(formatter, JSONFormatter):
            if not formatter.is_deferrable:
                return formatter.format_bytes(record, self._max_record_bytes, self._truncate)
            encoder = self._deferred_encoder
            if encoder.formatter is not formatter:
                encoder = self._switch_encoder(formatter)
            try:
                captured = formatter.capture(record, encoder)
            except Exception:  # noqa: BLE001 - a hostile record: format_bytes falls back
                return formatter.format_bytes(record, self._max_record_bytes, self._truncate)
            return encoder(captured) if captured[1] > self._defer_limit else captured
        try:
            data: Optional[bytes] = formatter.format(record).encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: the slow path escapes them
            data = encode_record(formatter, record, self._max_record_bytes, self._truncate)
        except Exception as exc:  # noqa: BLE001 - a user's formatter: ship a fallback, say so
            self._reporter.report(
                error_key(exc),
                f"the handler's formatter raised {exc!r}; the record was shipped with its "
                "message and the error instead",
            )
            data = encode_record(formatter, record, self._max_record_bytes, self._truncate)
        if data is not None and len(data) > self._max_record_bytes:
            data = fit_json(data, self._max_record_bytes) if self._truncate else None
        return data

    def _switch_encoder(self, formatter: JSONFormatter) -> DeferredEncoder:
        """Make ``formatter``'s encoder the current one (``setFormatter`` was called).

        Queued records name their encoder by key only (:func:`encoder_for` holds it weakly), so
        the retired one is kept while records may still need it: without it they would be
        written by a default JSONFormatter (no renames, no static fields). A formatter set again
        gets its earlier encoder back; the retired ones are let go once nothing is queued.
        """
        with self._encoder_lock:
            # Threads logging at once after a setFormatter() all come here: one makes the
            # encoder, the others take it (an encoder made twice would leave the records of
            # the one replaced at once without any: written by a default JSONFormatter).
            if self._deferred_encoder.formatter is formatter:
                return self._deferred_encoder
            return self._switch_encoder_locked(formatter)

    def _switch_encoder_locked(self, formatter: JSONFormatter) -> DeferredEncoder:
        retired = self._retired_encoders
        old = self._deferred_encoder
        if not any(lane.buffer.snapshot().queued for lane in self._lanes):
            retired.clear()  # no record refers to any of them any more
        retired.pop(id(old.formatter), None)
        retired[id(old.formatter)] = old  # the encoder holds its formatter: the id stays unique
        while len(retired) > _RETIRED_ENCODERS:
            del retired[next(iter(retired))]  # the one retired longest ago
        encoder = retired.pop(id(formatter), None)
        if encoder is None or encoder.formatter is not formatter:
            encoder = DeferredEncoder(formatter, self._max_record_bytes, self._truncate)
        self._deferred_encoder = encoder
        return encoder

    def _enqueue_record(self, record: logging.LogRecord, data: Optional[Payload]) -> None:
        """Queue a captured or formatted record: partition key, lane, append, wake-ups."""
        key = self._static_key
        if self._key_function is not None:
            key = self._partition_key(record)
        lane = self._single_lane
        if lane is None:
            lane = self._pick_lane(key)
        levelno = record.levelno
        if data is None or self._closed:
            self._refuse(lane, "oversize" if data is None else "closed")
            return
        if lane.buffer.put(data, key, levelno):
            event = lane.flusher.event
            if not event.is_set():
                event.set()
        if not self._started:
            self._start_flushers()
        if self._flush_on_level is not None and levelno >= self._flush_on_level:
            lane.flusher.wake(force=True)

    def enqueue(
        self, data: bytes, partition_key: Optional[str] = None, levelno: int = logging.INFO
    ) -> None:
        """Queue an already encoded record (the structlog processor's entry point); never raises.

        Args:
            data: the payload bytes (a ``bytearray`` or ``memoryview`` is copied to ``bytes``);
                cut or dropped per ``oversize`` when over ``max_record_bytes``.
            partition_key: the record's partition key; default ``None`` uses the configured
                ``partition_key`` when it is a string.
            levelno: the record's level number; decides shedding priority and ``flush_on_level``.
        """
        ident = _get_ident()
        inside = self._inside
        if ident in inside:  # reentrant, as in handle()
            self._lanes[0].buffer.refuse_reentrant()
            return
        inside[ident] = True
        try:
            if ident in self._sending_threads:
                return
            if self._pid != os.getpid():
                self._after_fork()
            if data.__class__ is not bytes:
                # A bytearray or memoryview (a str raises: counted as an error) must become bytes
                # here: the flusher tells payloads from captured records by their class.
                data = bytes(data)
            payload: Optional[bytes] = data
            if len(data) > self._max_record_bytes:
                payload = fit_json(data, self._max_record_bytes) if self._truncate else None
            key = partition_key if partition_key is not None else self._static_key
            self._enqueue(payload, key, levelno)
        except Exception as exc:  # noqa: BLE001 - enqueue must never raise into the application
            self._lost_in_emit(exc)
        finally:
            inside.pop(ident, None)

    def flush(self, timeout: Optional[float] = None) -> bool:  # type: ignore[override]  # bool: see Returns
        """Send everything queued so far, on this thread, within ``timeout``; never raises.

        Args:
            timeout: seconds to try at most; default ``None`` uses ``close_timeout``. ``0`` only
                reports whether anything is pending.

        Returns:
            ``True`` only when every record the handler accepted before the call was
            acknowledged by DIS. Once any record was dropped or failed (``stats.drops`` says
            why), ``flush()`` returns ``False`` for good: loss is never hidden by a later
            success. With a spool, a record still waiting in the spool is not acknowledged yet,
            so ``False`` too. After ``close()`` nothing is sent; the result says whether no
            record was ever dropped, failed or left queued. A call from a signal handler (or
            any code the handler runs: a filter, formatter, key function, or an ``on_failure``
            or ``token`` callable on the background thread) while this thread is inside the
            handler sends nothing and returns ``False``.
        """
        ident = _get_ident()
        if ident in self._inside or ident in self._sending_threads:
            # This thread holds, or may hold, the handler's locks (or is its own sending thread,
            # in an on_failure or token callable, holding the send slot): never wait here.
            return False
        self._inside[ident] = True
        try:
            if self._closed:
                # Nothing sends after close(): report whether every record made it.
                stats = self._collect_stats()
                return stats.queued == stats.dropped == stats.failed == 0
            if self._pid != os.getpid():
                self._after_fork()
            now = time.monotonic()
            earlier = self._collect_stats()
            lost_before = earlier.dropped + earlier.failed > 0
            budget = self.config.close_timeout if timeout is None else _flush_budget(timeout)
            if timeout is None and self._exit_drained:
                budget = self._after_exit_budget(budget)
            ok = self._flush_lanes(now + budget)
            if timeout is None:
                self._last_bare_flush = (now, time.monotonic())
            return ok and not lost_before
        except Exception as exc:  # noqa: BLE001 - logging calls flush at shutdown; never raise
            self._reporter.report(error_key(exc), f"flush failed: {exc!r}")
            return False
        finally:
            self._inside.pop(ident, None)
            _sigterm_if_pending()

    def close(self) -> None:
        """Send what is left within ``close_timeout``, stop the flusher, release resources.

        Idempotent; a call on another thread while the first one still runs waits for it to end (at
        most ``close_timeout`` plus one second; not under ``logging``'s module lock), so that when
        it returns every record is sent or counted. A ``flush()`` with the default timeout right
        before (as ``logging.shutdown`` and ``dictConfig`` do) shares the same ``close_timeout``
        budget. Records still queued at the deadline are counted as dropped and reported on the
        diagnostics channel; records in flight are reported as such, and their request's outcome is
        counted and reported when it ends (with a spool, they are copied to it and counted as
        spooled instead, unless this call holds ``logging``'s module lock). Records emitted after
        ``close()`` (also by threads blocked in an ``overflow="block"`` append) are counted as
        dropped, reason ``"closed"``. Called from a signal handler while this thread is inside the
        handler, it does nothing (the exit drain still runs).
        """
        if not self.config.enabled:
            super().close()  # nothing was ever sent or started; only leave logging's registry
            return
        ident = _get_ident()
        if ident in self._inside:
            return  # this thread holds, or may hold, the handler's locks: never wait here
        self._inside[ident] = True
        try:
            self._close()
        finally:
            self._inside.pop(ident, None)
            _sigterm_if_pending()

    def _close(self) -> None:
        with self._lock_state:
            closed_before = self._closed
            self._closed = True
            self._fast_buffer = None  # handle() then takes emit()'s path, which refuses records
        if closed_before:
            if self._pid != os.getpid():
                self._after_fork()  # a fork that skipped the hooks: no first close() runs here
            if self._may_wait():
                # Another thread's close() may still be sending: wait for it (its own bound,
                # plus time to count and report), never under logging's lock, which it may
                # need to finish, nor on the handler's own thread (an on_failure hook that
                # closes), which that close() joins.
                self._close_done.wait(self.config.close_timeout + _CLOSE_WAIT_MARGIN)
            return
        budget = self.config.close_timeout
        try:
            if self._pid != os.getpid():
                self._after_fork()
            now = time.monotonic()
            started, ended = self._last_bare_flush
            if self._exit_drained:
                budget = self._after_exit_budget(budget)
            if now - ended <= _CLOSE_GRACE:
                # close() right after a bare flush(), as logging.shutdown and dictConfig call
                # them: both share one budget (a flush that ended long ago does not count).
                budget = max(started + budget - now, _CLOSE_GRACE)
            self._shutdown(now + budget, budget)
            self._client.close()
        except Exception as exc:  # noqa: BLE001 - logging.shutdown must complete
            self._reporter.report(error_key(exc), f"close failed: {exc!r}")
        except BaseException as exc:
            # Ctrl-C (KeyboardInterrupt) or a signal handler's exception cut close() short. The
            # handler is closed already, so no later step (the exit drain) would see what it had
            # not sent yet: that is given up here, counted and reported, then the exception goes on.
            try:
                for lane in self._lanes:
                    lane.flusher.stop()
                self._settle_leftovers(
                    f"close (cut short by {type(exc).__name__})", budget, close_spool=True
                )
            except Exception:  # noqa: BLE001, S110 - the interruption is what the caller must see
                pass
            raise
        finally:
            try:
                _HANDLERS.discard(self)
                _restore_sigterm_if_unused()
                super().close()
            finally:
                self._close_done.set()

    def _make_client(self) -> Union[DISClient, _DisabledClient]:
        config = self.config
        if not config.enabled:
            return _DisabledClient()
        return DISClient(
            config.endpoint,
            config.project_id,
            request_timeout=config.request_timeout,
            verify=config.verify,
            serialization=config.serialization,
            pool_maxsize=config.max_in_flight + 1,
            allow_insecure_http=config.allow_insecure_http,
            report=self._report_credentials,
            **config.connection.client_kwargs(),
        )

    def _report_credentials(self, message: str) -> None:
        """Report a credentials problem the client keeps going through: a failed refresh of
        temporary credentials (once per run), a token or set that expired on arrival (once)."""
        reporter = getattr(self, "_reporter", None)  # set up after the client
        if reporter is not None:
            reporter.report_now(message)

    def _stream_rates(self) -> Optional[Tuple[float, float]]:
        """The stream's write rates for ``auto_rate_limit``: writable partitions x the DIS limit.

        Runs on a sending thread, once (again after a failure, see ``RateLimiter``).
        """
        config = self.config
        try:
            description = self._client.describe_stream(config.stream_name)
        except DISError as exc:
            self._reporter.report(
                error_key(exc), f"auto_rate_limit: DescribeStream failed, retrying later: {exc}"
            )
            return None
        writable = description.get("writable_partition_count")
        listed = description.get("partitions")
        if not isinstance(writable, int) or writable < 1:
            writable = len(listed) if isinstance(listed, list) else 0
        if writable < 1:
            self._reporter.report(("auto_rate_limit", None), "auto_rate_limit: no partitions")
            return None
        if config.partition_id is not None or self._static_key is not None:
            writable = 1  # every record goes to one partition, so only its limit counts
        stream_type = description.get("stream_type")
        records, data_bytes = PARTITION_WRITE_RATES.get(
            stream_type if isinstance(stream_type, str) else "COMMON",
            PARTITION_WRITE_RATES["COMMON"],
        )
        share = writable * AUTO_RATE_HEADROOM
        return records * share, data_bytes * share

    def _setup(self) -> None:
        """Create buffers, flushers and the reporter (again in a forked child)."""
        config = self.config
        self._pid = os.getpid()
        # The client's secret set also learns the tokens obtained at run time (callable, IAM).
        self._reporter = Reporter(
            config.diagnostics,
            interval=config.report_interval,
            secrets=self._client.secrets,
            hint=f"`dis-logging check {config.stream_name}` tests the setup step by step",
        )
        self._limiter: Optional[RateLimiter] = None
        if config.auto_rate_limit:
            # Until DescribeStream has told the partitions, one COMMON partition's budget holds.
            one_partition = PARTITION_WRITE_RATES["COMMON"]
            self._limiter = RateLimiter(
                config.max_records_per_second,
                config.max_bytes_per_second,
                sizer=self._stream_rates,
                provisional=(
                    one_partition[0] * AUTO_RATE_HEADROOM,
                    one_partition[1] * AUTO_RATE_HEADROOM,
                ),
            )
        elif config.max_records_per_second > 0 or config.max_bytes_per_second > 0:
            self._limiter = RateLimiter(config.max_records_per_second, config.max_bytes_per_second)
        self._sending_threads: Set[int] = set()
        # Threads inside handle(), flush() or close() now; a record from one of them is reentrant.
        self._inside: Dict[int, bool] = {}
        self._started = False
        self._start_retry_at = 0.0
        lanes = config.max_in_flight
        self._round_robin = itertools.count()
        self._lanes: List[_Lane] = []
        spool_factory = self._spool_factory() if config.spool_dir is not None else None
        on_lost = self._failure_hook() if config.on_failure is not None else None
        for index in range(lanes):
            flusher_holder: List[Flusher] = []

            def wake(holder: List[Flusher] = flusher_holder) -> None:
                if holder:
                    holder[0].wake()

            buffer = RecordBuffer(
                max(config.max_queue_records // lanes, 1),
                max(config.max_queue_bytes // lanes, config.max_record_bytes),
                overflow=config.overflow,
                block_timeout=config.block_timeout,
                priority_level=config.priority_level,
                batch_records=config.max_batch_records,
                batch_bytes=config.max_batch_bytes,
                wake=wake,
                on_lost=on_lost,
                on_late=self._report_late,
            )
            flusher = Flusher(
                buffer,
                self._client,
                stream_name=config.stream_name,
                stream_id=config.stream_id,
                partition_id=config.partition_id,
                batch_records=config.max_batch_records,
                batch_bytes=config.max_batch_bytes,
                flush_interval=config.flush_interval,
                retry=self._retry,
                reporter=self._reporter,
                sending_threads=self._sending_threads,
                limiter=self._limiter,
                spool_factory=spool_factory if index == 0 else None,
                spool_mode=config.spool_mode,
                secrets=self._client.secrets,
                thread_name=THREAD_NAME if index == 0 else f"{THREAD_NAME}-{index}",
            )
            flusher_holder.append(flusher)
            self._lanes.append(_Lane(buffer, flusher))
        self._single_lane = self._lanes[0] if lanes == 1 else None
        # handle()'s flat path: an open handler of this class's own emit() (the path stands in
        # for it), one lane, no partition-key function, no flush_on_level.
        flat = not self._closed and not self._emit_replaced and type(self).emit is DISHandler.emit
        flat = flat and self._single_lane is not None
        flat = flat and self._key_function is None and self._flush_on_level is None
        event = self._lanes[0].flusher.event
        # The path reads the event's state where threading.Event keeps it (the whole body of
        # is_set() is ``return self._flag``, in CPython, PyPy and gevent alike); an event without
        # it sends every record down the general path, which calls is_set().
        flat = flat and isinstance(getattr(event, "_flag", None), bool)
        self._fast_buffer = self._lanes[0].buffer if flat else None
        self._fast_event: Any = event

    def _report_late(self, account: str) -> None:
        """Report the outcome of a request that ended after ``close()`` returned."""
        self._reporter.report_now(
            f"handler for stream {self.config.stream_name!r}: {account} (after close())"
        )

    def _failure_hook(self) -> Callable[[List[Payload], str], None]:
        """Wrap ``on_failure``: payloads serialized, never raises, first exception reported."""
        hook = self.config.on_failure
        assert hook is not None
        reporter = self._reporter
        failed_before: List[Exception] = []  # the first exception only is reported

        def call(payloads: List[Payload], reason: str) -> None:
            try:
                records = [data for data in serialize_payloads(payloads) if data is not None]
                hook(records, reason)
            except Exception as exc:  # noqa: BLE001 - a user's hook must not break the flusher
                if not failed_before:
                    failed_before.append(exc)
                    reporter.report_now(
                        f"on_failure callable raised {type(exc).__name__}: {exc}; "
                        f"later exceptions of it are not reported"
                    )

        return call

    def _spool_factory(self) -> Callable[[], SpoolLike]:
        config = self.config
        directory = config.spool_dir
        assert directory is not None
        reporter = self._reporter

        def open_spool() -> SpoolLike:
            from dis_logging.spool import Spool  # imported only when a spool is configured

            def report(message: str) -> None:
                # One window per kind of problem: the text before the first colon names it.
                reporter.report(("spool", message.split(":", 1)[0][:60]), message)

            destination = {
                "project": config.project_id,
                "stream": config.stream_name,
                "stream_id": config.stream_id,
                "endpoint": config.endpoint,  # compared in any case (spool)
            }
            return Spool(directory, config.spool_max_bytes, report=report, destination=destination)

        return open_spool

    def _partition_key(self, record: logging.LogRecord) -> Optional[str]:
        function = self._key_function
        assert function is not None
        try:
            key = function(record)
            # str() of a foreign object runs user code too, so it stays inside the guard.
            return key if key is None or key.__class__ is str else str(key)
        except Exception as exc:  # noqa: BLE001 - a user's key function must not lose the record
            self._reporter.report(
                error_key(exc),
                f"partition_key callable failed: {exc!r}; the record is shipped without a key",
            )
            return None

    def _enqueue(self, data: Optional[bytes], key: Optional[str], levelno: int) -> None:
        lane = self._single_lane
        if lane is None:
            lane = self._pick_lane(key)
        if data is None or self._closed:
            self._refuse(lane, "oversize" if data is None else "closed")
            return
        if lane.buffer.put(data, key, levelno):
            lane.flusher.wake()
        if not self._started:
            self._start_flushers()
        if self._flush_on_level is not None and levelno >= self._flush_on_level:
            lane.flusher.wake(force=True)

    def _pick_lane(self, key: Optional[str]) -> _Lane:
        """One lane per key (keeps its order); records without a key go round robin."""
        lanes = self._lanes
        index = hash(key) if key is not None else next(self._round_robin)
        return lanes[index % len(lanes)]

    def _refuse(self, lane: _Lane, reason: str) -> None:
        if reason == "closed" and not self.config.enabled:
            reason = "disabled"
        lane.buffer.refuse(reason)
        if reason == "closed":
            self._reporter.report(("closed", None), "record emitted after close(); dropped")

    def _start_flushers(self) -> None:
        with self._lock_state:
            if self._started or self._closed or self._no_threads:
                return
            if time.monotonic() < self._start_retry_at:
                return
            self._started = True
        if not _sigterm_installed and threading.current_thread() is threading.main_thread():
            # A handler made on another thread (signal.signal works only on the main one): its
            # first record logged on the main thread installs the SIGTERM drain.
            _install_sigterm(self)
        started = [lane.flusher.start() for lane in self._lanes]
        if not all(started) and not sys.is_finalizing():
            # No thread could be made now (a resource limit): records keep queuing, flush() and
            # close() still send them, and a record a little later tries to start the thread again.
            with self._lock_state:
                self._started = False
                self._start_retry_at = time.monotonic() + FLUSHER_START_RETRY

    def _may_wait(self) -> bool:
        """Whether this thread may wait for a request another thread has in flight: not under
        ``logging``'s module lock (that thread may need it to finish), nor on the handler's own
        sending thread (an ``on_failure`` hook that closes the handler: it holds the send slot).
        Otherwise this thread sends what is buffered itself and leaves that request be."""
        return not _holds_logging_lock() and _get_ident() not in self._sending_threads

    def _flush_lanes(self, deadline: float) -> bool:
        may_wait = self._may_wait()
        if may_wait and len(self._lanes) > 1 and self._started:
            # Let every lane's own thread send its tail now, in parallel; this thread then helps
            # lane by lane and waits for the rest, instead of paying one round trip per lane.
            for lane in self._lanes:
                lane.flusher.wake(force=True)
        ok = True
        for lane in self._lanes:
            ok = lane.flusher.flush_on_caller(deadline, may_wait=may_wait) and ok
        return ok

    def _shutdown(self, deadline: float, budget: float) -> None:
        """Stop the flushers, send the rest on this thread until ``deadline``, count leftovers."""
        may_wait = self._may_wait()
        self._flush_lanes(deadline)
        for lane in self._lanes:
            lane.flusher.stop()
        self._flush_lanes(deadline)  # whatever was emitted meanwhile; returns at once if nothing
        if may_wait:
            for lane in self._lanes:
                lane.flusher.join(deadline - time.monotonic())
        # A close() under logging's lock (dictConfig) did not wait for a request in flight,
        # which is likely to succeed once the lock is released; one that waited until its
        # deadline, or that follows the exit drain, copies it to the spool (if any).
        # After the exit drain the process is ending: a request still in flight will not be
        # counted when it ends, and the report says so.
        self._settle_leftovers(
            "close",
            budget,
            close_spool=True,
            spool_in_flight=may_wait or self._exit_drained,
            final=self._exit_drained,
        )

    def _emitted_marks(self) -> Tuple[int, ...]:
        """The newest sequence number of each lane: what has been emitted up to now."""
        return tuple(lane.buffer.last_seq for lane in self._lanes)

    def _after_exit_budget(self, budget: float) -> float:
        """The budget of a flush/close that follows the exit drain.

        Records emitted after the drain (by ``atexit`` functions, or ``logging.shutdown``'s
        callers) get a full ``budget`` of their own; otherwise the drain has spent it already.
        """
        if self._emitted_marks() != self._exit_marks:
            return budget
        return min(budget, _CLOSE_GRACE)

    def _wake_for_drain(self, started: float) -> None:
        """Have the background threads send everything queued now, within this handler's
        drain deadline, while the drain that follows (:func:`_drain_all`) sends for one handler
        after another on the calling thread.

        Args:
            started: the :func:`time.monotonic` time the drain began.
        """
        if self._pid != os.getpid() or not self._started or self._closed:
            return
        if self._exit_drained and self._emitted_marks() == self._exit_marks:
            return  # nothing new since the last drain, which _drain_at_exit will skip too
        for lane in self._lanes:
            lane.flusher.drain_until = started + self.config.close_timeout
            lane.flusher.wake(force=True)

    def _drain_at_exit(
        self, event: str = "interpreter exit", started: Optional[float] = None
    ) -> None:
        """Deliver what is queued at exit on this thread, without starting threads.

        Runs from threading's exit hook, again from ``atexit`` and on SIGTERM; a later run only
        sends what was emitted since the earlier one, with a fresh ``close_timeout``.

        Args:
            event: what the diagnostics call this drain.
            started: the :func:`time.monotonic` time the drain of every handler began: this
                handler's ``close_timeout`` counts from then, so that several handlers drained
                one after another take the longest of their bounds, not their sum. Default: now.
        """
        ident = _get_ident()
        if ident in self._inside:
            return  # a signal landed inside the handler; the next exit step drains
        self._inside[ident] = True
        try:
            with self._lock_state:
                if self._closed:
                    return
                again = self._exit_drained
                self._exit_drained = True
                # Threads the interpreter has yet to join (workers the main thread left running)
                # may log for a long time still: the flusher must keep running, or start, for
                # them. Once none is left, no thread is started (Python 3.12+ forbids it).
                self._no_threads = not _other_threads_running()
            if self._pid != os.getpid():
                self._after_fork()
            marks = self._emitted_marks()
            if again and marks == self._exit_marks:
                return  # nothing new since the last exit drain
            self._exit_marks = marks
            budget = self.config.close_timeout
            deadline = (time.monotonic() if started is None else started) + budget
            for lane in self._lanes:
                # Requests of the background threads end by then too; this also lifts the cut
                # a SIGTERM that found the main thread inside the handler made (_on_sigterm).
                lane.flusher.drain_until = deadline
                lane.flusher.cut_until = None
            # After the SIGTERM drain, and in a forked multiprocessing child (which ends with
            # os._exit), no later step sends anything: what threads still logging queued after
            # the drain's target is settled now (spooled, or dropped and reported), even when the
            # whole target was delivered.
            last = event != "interpreter exit" or _in_multiprocessing_child()
            if self._flush_lanes(deadline) and not last:
                return
            # Not flushed also when a record of the drain's target was lost meanwhile (overflow
            # from threads still logging, counted already). At interpreter exit, later steps
            # (atexit, logging.shutdown) send what came after the target, so records are given
            # up only when some of the target are still unsent: the budget ran out. With a spool
            # the rest is stored.
            if started is not None and not _holds_logging_lock():
                # The background threads' requests end by the deadline (drain_until), give or
                # take the socket timeout's tolerance: their outcome is counted before the end.
                until = deadline + _LATE_REPLY
                for lane, mark in zip(self._lanes, marks):
                    lane.buffer.wait_in_flight(mark, max(until - time.monotonic(), 0.0))
            if (
                last
                or self.config.spool_dir is not None
                or any(lane.buffer.has_pending(mark) for lane, mark in zip(self._lanes, marks))
            ):
                self._settle_leftovers(event, budget, close_spool=False, final=last)
        finally:
            if event == "interpreter exit" and not self._no_threads:
                # Threads the interpreter still waits for log on: the background thread sends
                # for them as usual. Otherwise it starts no request past the drain's deadline
                # (one the drain could not wait for would end uncounted).
                for lane in self._lanes:
                    lane.flusher.drain_until = None
            self._inside.pop(ident, None)

    def _settle_leftovers(
        self,
        event: str,
        budget: float,
        *,
        close_spool: bool,
        spool_in_flight: bool = True,
        final: bool = False,
    ) -> None:
        """Spool or drop what is still buffered after a deadline, and say so on the diagnostics.

        The one place where records are given up at close, exit or SIGTERM: each is counted
        (reason ``"close"`` or ``"exit"``) and handed to ``on_failure``. With a spool, the
        records of requests still waiting for their reply are copied to it too when
        ``spool_in_flight`` (default): the process may end before that reply comes. ``final``:
        the process ends right after this (SIGTERM, a forked ``multiprocessing`` child), so no
        later reply is counted.
        """
        spooled = dropped = in_flight = unknown = 0
        reason = "close" if event.startswith("close") else "exit"
        for lane in self._lanes:
            lane.flusher.spool_leftovers(in_flight=spool_in_flight)
            if final:
                # The process ends next: a request's reply would never be counted.
                unknown += lane.flusher.give_up_requests("exit")
            if close_spool:
                # Closed first, so that no append (a blocked "block" put, a racing emit) lands
                # after the drain below and stays queued for ever.
                lane.buffer.close()
            dropped += lane.buffer.drain(reason)
            in_flight += lane.buffer.snapshot().in_flight
            spooled += lane.flusher.spooled
            if close_spool:
                lane.flusher.close_spool()
        if not (dropped or in_flight or spooled or unknown):
            return
        parts = []
        if dropped:
            when = "in time" if "cut short" in event else f"within {budget:.1f}s"
            parts.append(f"{dropped} record(s) could not be sent {when} and were dropped")
        if unknown:
            parts.append(
                f"{unknown} record(s) were in a request still awaiting its reply and were "
                "counted as dropped (DIS may have taken them)"
            )
        if in_flight and final:
            parts.append(
                f"{in_flight} record(s) were still in flight as the process ended (delivered "
                "only if DIS took that request)"
            )
        elif in_flight:
            parts.append(
                f"{in_flight} record(s) were still in flight (their outcome is counted when "
                "the request ends)"
            )
        if spooled:
            parts.append(f"{spooled} record(s) were kept in the spool for the next start")
        last_error = self._collect_stats().last_error
        self._reporter.report_now(
            f"{event} of the handler for stream {self.config.stream_name!r}: "
            + "; ".join(parts)
            + (f" (last error: {last_error})" if last_error else "")
        )

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's queue, threads and connections; start afresh."""
        if self._pid == os.getpid():
            return
        # The parent's client, buffers and flushers may hold locks or sockets that were in use
        # at the moment of the fork; park them instead of using or closing them.
        _INHERITED.append((self._client, self._lanes, self._reporter))
        self._client = self._make_client()
        self._lock_state = threading.Lock()
        self._close_done = threading.Event()  # its lock may have been held at the fork
        self._encoder_lock = threading.Lock()  # so may this one
        if self._closed:
            # A close() the parent was running at the fork has no thread here to finish it.
            self._close_done.set()
        self._exit_drained = False
        self._exit_marks = ()
        self._no_threads = False
        self._setup()


def handler_or_settings(
    handler: Optional[DISHandler],
    settings: MutableMapping[str, Any],
    own: Sequence[str] = (),
) -> DISHandler:
    """The handler an integration was given, or a new one built from its handler settings.

    The settings are emptied before this returns or raises, so secrets among them do not stay
    in the caller's frame, where a traceback that shows local variables would print them.

    Args:
        handler: a handler to use as it is, or ``None`` to build one.
        settings: :class:`DISHandler` keyword arguments; must be empty when ``handler`` is given.
        own: the integration's own keyword names, offered as well when an unknown name is
            reported (``passthru`` -> ``passthrough``, not a handler setting); default none.

    Returns:
        ``handler``, or the new handler (which the caller then owns and closes).

    Raises:
        ConfigError: both were given (the settings' names are listed), or the settings are
            invalid (see :class:`DISHandler`).
    """
    try:
        if handler is not None and settings:
            raise ConfigError(
                "handler",
                "pass either a handler or handler settings, not both "
                f"(got {', '.join(sorted(settings))})",
            )
        if own:
            known = _handler_keywords()
            unknown = [name for name in settings if name not in known]
            if unknown:
                raise unknown_keywords_error(unknown, known.union(own))
        return handler if handler is not None else DISHandler(**settings)
    finally:
        settings.clear()


#: ``DIS_LOGGING_*`` variables already reported as unknown in this process (once each).
_REPORTED_VARIABLES: Set[str] = set()


def _report_unknown_variables(reporter: Reporter) -> None:
    """Say once per process which ``DIS_LOGGING_*`` variables are set but never read."""
    unknown = [text for text in unknown_variables() if text.split()[0] not in _REPORTED_VARIABLES]
    if not unknown:
        return
    _REPORTED_VARIABLES.update(text.split()[0] for text in unknown)
    reporter.report_now(
        f"environment variable(s) {', '.join(unknown)} set but not read by dis-logging; "
        "they have no effect"
    )


@functools.lru_cache(maxsize=1)
def _handler_keywords() -> FrozenSet[str]:
    """The keyword names :class:`DISHandler` accepts."""
    parameters = inspect.signature(DISHandler.__init__).parameters
    return frozenset(name for name in parameters if name != "self")


def _register(handler: DISHandler) -> None:
    """Track ``handler`` for the fork and exit hooks (installed once per process)."""
    global _exit_hooks_installed
    _HANDLERS.add(handler)
    _install_sigterm(handler)
    if _exit_hooks_installed:  # the hook lists survive os.fork, so once per interpreter is enough
        return
    _exit_hooks_installed = True
    # threading's atexit hooks run in threading._shutdown(): before non-daemon threads are
    # joined, before atexit, and also in multiprocessing children, which end with os._exit and
    # skip atexit. The private hook exists on CPython 3.9+; atexit is the fallback.
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(_drain_all_at_exit)
        except RuntimeError:  # registering after shutdown started: atexit still runs
            atexit.register(_drain_all_at_exit)
    atexit.register(_drain_all_at_exit)


def _install_sigterm(handler: DISHandler) -> None:
    """Install the SIGTERM drain for ``handler`` when it may (see ``drain_on_sigterm``).

    Only on the main thread (``signal.signal`` works nowhere else) and only while SIGTERM has
    its default disposition: an application or server that handles SIGTERM itself (gunicorn,
    uvicorn, Celery) keeps its handler, and its graceful exit goes through the exit drain.
    """
    global _sigterm_installed
    if not handler.config.drain_on_sigterm or _SIGTERM is None:
        return
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(_SIGTERM) is not signal.SIG_DFL:
            return  # ours already, or the application's
        signal.signal(_SIGTERM, _on_sigterm)
    except (ValueError, OSError, RuntimeError):  # no signals here (an embedded interpreter)
        return
    _sigterm_installed = True


def _restore_sigterm_if_unused() -> None:
    """Give SIGTERM back its default once no live handler wants the drain."""
    global _sigterm_installed
    if not _sigterm_installed or any(h.config.drain_on_sigterm for h in list(_HANDLERS)):
        return
    if threading.current_thread() is not threading.main_thread() or _SIGTERM is None:
        return
    try:
        if signal.getsignal(_SIGTERM) is _on_sigterm:
            signal.signal(_SIGTERM, signal.SIG_DFL)
    except (ValueError, OSError, RuntimeError):
        return
    _sigterm_installed = False


def _on_sigterm(signum: int, frame: object) -> None:
    """Drain every handler within its ``close_timeout``, then die of SIGTERM as by default.

    Python runs this on the main thread between bytecodes, possibly while that thread is inside
    one of our handlers and holds its lock. Then nothing is drained here: a helper thread waits
    until the main thread has left the handler and sends SIGTERM again, which runs this anew;
    the main thread also runs it as it leaves a ``flush()`` or ``close()`` (at exit, no helper
    thread may start, and a signal sent late may find Python no longer running handlers). During
    the exit drain the drain goes on and the process ends killed by SIGTERM once it is over.
    """
    global _sigterm_retry_until, _sigterm_during_exit, _sigterm_pending
    if _sigterm_draining.is_set():
        return  # a second SIGTERM while draining: the drain is bounded anyway
    if _exit_drain_running:
        # The interpreter is exiting and its drain (bounded by close_timeout, started earlier)
        # runs on this thread: it goes on, then the process ends killed by SIGTERM as the
        # default would have it (_drain_all_at_exit). Cutting it here and draining again would
        # only start the bound anew.
        _sigterm_during_exit = True
        return
    main = _get_ident()
    handlers = [h for h in list(_HANDLERS) if h.config.drain_on_sigterm]
    for handler in list(_HANDLERS):
        for lane in handler._lanes:
            # An overflow="block" append that waits for room (the main thread's, say) stops
            # waiting, and none waits again: the process is about to end.
            lane.buffer.stop_blocking = True
    busy = [h for h in handlers if main in h._inside]
    now = time.monotonic()
    if busy and (_sigterm_retry_until is None or now < _sigterm_retry_until):
        if _sigterm_retry_until is None:
            longest = max(h.config.close_timeout for h in handlers)
            _sigterm_retry_until = now + longest
            # A flush() or close() the main thread is running gives up now, its request in
            # progress included, so that the drain can start: it sends the same records.
            for handler in busy:
                for lane in handler._lanes:
                    lane.flusher.drain_until = now
                    lane.flusher.cut_until = now
            abort_request_on_this_thread()
        # The main thread runs the drain itself as it leaves a flush() or close() (the steps of
        # logging.shutdown at exit, where a signal sent later may find Python no longer running
        # signal handlers); a helper thread sends SIGTERM again for the other ways out.
        _sigterm_pending = True
        _resignal_when_left(busy, main, _sigterm_retry_until)
        return
    _sigterm_draining.set()
    try:
        if not busy:
            _drain_all(handlers, "SIGTERM drain")
        else:
            # The main thread never left the handler within the longest close_timeout: draining
            # here could wait for a lock it holds. Say so rather than end in silence (a raw
            # write: the diagnostics path may take locks the main thread holds).
            queued = sum(lane.buffer.snapshot(wait=False).queued for h in busy for lane in h._lanes)
            _write_stderr(
                f"dis-logging: SIGTERM: the main thread stayed inside the handler for "
                f"{max(h.config.close_timeout for h in handlers):.1f}s; {queued} queued "
                "record(s) were not drained\n"
            )
    finally:
        _die_of(signum)


def _die_of(signum: int) -> NoReturn:
    """End the process as if ``signum`` had met its default disposition.

    The process ends killed by the signal (for SIGTERM: exit status 143 in a shell, -15 from
    subprocess), without atexit or finally blocks.
    """
    signal.signal(signum, signal.SIG_DFL)
    pthread_kill = getattr(signal, "pthread_kill", None)
    if pthread_kill is not None:
        pthread_kill(threading.get_ident(), signum)  # delivered before it returns
    else:
        os.kill(os.getpid(), signum)
    # Still alive: the kernel ignores a default-disposition SIGTERM sent to a PID namespace's
    # init, which a Python started as PID 1 in a container is. End as a shell would report.
    os._exit(128 + signum)


def _write_stderr(text: str) -> None:
    """Write ``text`` to file descriptor 2 without any lock (from a signal handler)."""
    try:
        os.write(2, text.encode("utf-8", "backslashreplace"))
    except OSError:
        pass


def _resignal_when_left(busy: List[DISHandler], main: int, until: float) -> None:
    """Start a thread that sends SIGTERM again once ``main`` has left every ``busy`` handler.

    During interpreter shutdown no thread can start (Python 3.12+); then nothing is sent.
    """

    def watch() -> None:
        while any(main in h._inside for h in busy) and time.monotonic() < until:
            _sigterm_poll.wait(_SIGTERM_POLL_INTERVAL)
        if _SIGTERM is not None:
            os.kill(os.getpid(), _SIGTERM)

    try:
        threading.Thread(target=watch, name="dis-logging-sigterm", daemon=True).start()
    except RuntimeError:
        return  # the main thread drains as it leaves flush() or close() (_sigterm_if_pending)


def _sigterm_if_pending() -> None:
    """Run the SIGTERM drain a signal left pending (see ``_sigterm_pending``), then die of it.

    Called by the main thread as it leaves ``flush()`` or ``close()``; does nothing otherwise.
    """
    global _sigterm_pending
    if not _sigterm_pending or _SIGTERM is None:
        return
    if threading.current_thread() is not threading.main_thread():
        return
    main = _get_ident()
    if any(main in h._inside for h in list(_HANDLERS)):
        return
    _sigterm_pending = False
    _on_sigterm(_SIGTERM, None)


def _in_multiprocessing_child() -> bool:
    """Whether this process is a ``multiprocessing`` child (a forked one skips ``atexit``)."""
    multiprocessing = sys.modules.get("multiprocessing")
    parent_process = getattr(multiprocessing, "parent_process", None)
    try:
        return parent_process is not None and parent_process() is not None
    except Exception:  # noqa: BLE001 - at exit, a half-torn-down module must not stop the drain
        return False


def _other_threads_running() -> bool:
    """Whether a non-daemon thread other than this one is alive (exit will wait for it)."""
    current = threading.current_thread()
    return any(
        thread is not current and not thread.daemon and thread.is_alive()
        for thread in threading.enumerate()
    )


def _drain_all(handlers: List[DISHandler], event: str) -> None:
    """Drain ``handlers`` on this thread, each within its ``close_timeout`` from now.

    Every handler's background threads are first asked to send what they hold, so the handlers
    this thread reaches later have been sending meanwhile; the whole drain takes the longest
    ``close_timeout`` of them (plus the time to write leftovers to a spool), not their sum.
    """
    started = time.monotonic()
    for handler in handlers:
        try:
            handler._wake_for_drain(started)
        except Exception:  # noqa: BLE001, S110 - waking is a head start; the drain below sends anyway
            pass
    for handler in handlers:
        try:
            handler._drain_at_exit(event, started)
        except BaseException as exc:  # noqa: BLE001 - see below
            # Ctrl-C (KeyboardInterrupt) or another signal handler's exception (an application's
            # SIGINT handler raising SystemExit) while the drain waits for a slow or silent DIS:
            # the user wants out. What is still unsent is given up now, counted and reported,
            # without a traceback (Python would only print it: an exception from an exit hook
            # changes nothing else); the exit goes on and its later steps find nothing to wait for.
            _give_up(handlers, f"{event} (cut short by {type(exc).__name__})")
            return
        except Exception as exc:  # noqa: BLE001 - one handler must not stop the others
            handler._reporter.report_now(f"{event} failed: {exc!r}")


def _give_up(handlers: List[DISHandler], event: str) -> None:
    """Count and report what ``handlers`` still hold, as the process is about to end.

    What is queued is dropped (reason ``"exit"``; with a spool, kept in it), and a request still
    awaiting its reply is counted as dropped too: nothing later would count it.
    """
    for handler in handlers:
        if handler._closed or handler._pid != os.getpid():
            continue
        try:
            handler._settle_leftovers(
                event, handler.config.close_timeout, close_spool=False, final=True
            )
        except Exception:  # noqa: BLE001, S110 - one handler must not stop the others
            pass


def _drain_all_at_exit() -> None:
    """The exit drain (threading's exit hook, then atexit); see :func:`_drain_all`.

    A SIGTERM that came meanwhile (:func:`_on_sigterm`) ends the process once it is over, as
    killed by SIGTERM: a supervisor reads that status. What threads still logging queued after
    the drain is counted and reported first.
    """
    global _exit_drain_running
    handlers = list(_HANDLERS)
    _exit_drain_running = True
    try:
        _drain_all(handlers, "interpreter exit")
    finally:
        _exit_drain_running = False
    if _sigterm_during_exit and _SIGTERM is not None:
        _give_up(handlers, "SIGTERM drain")
        _die_of(_SIGTERM)


def _reset_all_after_fork() -> None:
    for handler in list(_HANDLERS):
        handler._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_all_after_fork)
