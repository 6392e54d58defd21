"""In-memory DIS state: streams, partitions, stored records and the partition hash rule.

Everything here is guarded by one lock owned by :class:`StreamStore`; the HTTP layer never touches
the dictionaries directly. A :class:`threading.Condition` on the same lock lets tests wait for
records without polling.
"""

from __future__ import annotations

import bisect
import hashlib
import random
import re
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Final, List, Optional, Tuple

MAX_HASH: Final = 2**63 - 1
"""Upper end of the partition hash space (DIS-API.md §7)."""

STREAM_NAME_RE: Final = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")
"""Stream names: 1-64 characters of ``[A-Za-z0-9_-]`` (DIS-API.md §5, CreateStream)."""

PARTITION_ID_RE: Final = re.compile(r"\A(?:shardId-)?([0-9]{1,10})\Z")
"""A partition id, either ``shardId-0000000002`` or the bare index ``2`` (DIS-API.md §1); ASCII
digits only (``\\d`` would also take other scripts' digits, such as ARABIC-INDIC DIGIT ONE)."""

_DECIMAL_RE: Final = re.compile(r"\A[0-9]{1,19}\Z")
"""A decimal of at most 19 ASCII digits: enough for any value up to :data:`MAX_HASH`."""

STREAM_TYPES: Final = ("COMMON", "ADVANCED")
"""CreateStream ``stream_type`` values (DIS-API.md §5, §8)."""
DATA_TYPES: Final = ("BLOB", "JSON", "CSV")
"""CreateStream ``data_type`` values (DIS-API.md §5)."""

MIN_RETENTION_HOURS: Final = 24
"""Shortest CreateStream ``data_duration``, hours (DIS-API.md §5, §8)."""
MAX_RETENTION_HOURS: Final = 72
"""Longest CreateStream ``data_duration``, hours (DIS-API.md §5, §8)."""

DEFAULT_PARTITION_QUOTA: Final = 50
"""Partitions the emulated account may hold in total: the default COMMON account quota (DIS-API.md
§8). ``DISEmulator(partition_quota=...)`` and ``--partition-quota`` change it."""
DEFAULT_ADVANCED_PARTITION_QUOTA: Final = 10
"""ADVANCED partitions the emulated account may hold, within the total: the default ADVANCED account
quota (DIS-API.md §8). ``DISEmulator(advanced_partition_quota=...)`` and
``--advanced-partition-quota`` change it."""

MAX_REQUEST_DATA_BYTES: Final = {"COMMON": 1024 * 1024, "ADVANCED": 5 * 1024 * 1024}
"""Total record data per PutRecords request, keys excluded (DIS-API.md §8)."""

WRITE_RATE_LIMITS: Final = {"COMMON": (1024 * 1024, 1000), "ADVANCED": (5 * 1024 * 1024, 2000)}
"""Per-partition write limits as (bytes per second, records per second) (DIS-API.md §8)."""

_ID_ALPHABET: Final = string.ascii_letters + string.digits


@dataclass(frozen=True)
class StoredRecord:
    """One record as the emulator stored it.

    Attributes:
        data: The raw record bytes, exactly as the producer sent them (after base64 decoding).
        partition_id: The partition that holds it, e.g. ``"shardId-0000000001"``.
        sequence_number: Its decimal sequence number within the partition, from ``"0"``.
        partition_key: The key it was written with, or None.
        timestamp: Write time in milliseconds since the epoch.
    """

    data: bytes
    partition_id: str
    sequence_number: str
    partition_key: Optional[str]
    timestamp: int


@dataclass(frozen=True)
class RequestLogEntry:
    """One HTTP request the emulator answered (or dropped), without any secret.

    Attributes:
        method: HTTP method, e.g. ``"POST"``.
        path: Request path without the query string.
        operation: Operation name (``"PutRecords"``, ``"CreateToken"``, ...) or ``"Unknown"``.
        status: HTTP status sent, or 0 when the connection was dropped without a reply.
        error_code: DIS/IAM/APIG error code of the reply, or None on success.
        record_count: Records in a PutRecords request (sent, not stored) or in a GetRecords reply.
        data_bytes: Raw record bytes in those records.
        body_bytes: Size of the request body in bytes.
        auth: ``"token"``, ``"aksk"`` or ``"none"``: how the request authenticated (or tried to).
        time: Arrival time in seconds since the epoch.
    """

    method: str
    path: str
    operation: str
    status: int
    error_code: Optional[str]
    record_count: int
    data_bytes: int
    body_bytes: int
    auth: str
    time: float


class ServiceError(Exception):
    """A request the emulated service rejects; the server turns it into an error reply.

    Args:
        status: HTTP status code.
        code: DIS/APIG error code, e.g. ``"DIS.4301"``.
        message: Human-readable message for the ``error_msg`` field.
        retry_after: Value for a ``Retry-After`` header in seconds; default None, no header.

    Attributes:
        status, code, message, retry_after: as passed.
    """

    def __init__(
        self, status: int, code: str, message: str, retry_after: Optional[float] = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


def bad_request(code: str, message: str) -> ServiceError:
    """Return a 400 :class:`ServiceError` with ``code`` and ``message``.

    Args:
        code: The DIS error code, e.g. ``"DIS.4200"``.
        message: The ``error_msg`` text.

    Returns:
        The error, for the caller to raise.
    """
    return ServiceError(400, code, message)


def key_hash(partition_key: str) -> int:
    """Hash a partition key the way DIS does.

    Args:
        partition_key: The key; hashed as UTF-8 (surrogates are replaced).

    Returns:
        The first 8 bytes of the key's MD5, big-endian, top bit cleared: an int in [0, 2**63 - 1].
    """
    digest = hashlib.md5(partition_key.encode("utf-8", "replace")).digest()
    return int.from_bytes(digest[:8], "big") & MAX_HASH


def hash_ranges(partitions: int) -> List[Tuple[int, int]]:
    """Return the inclusive hash range each of ``partitions`` partitions owns (DIS-API.md §7).

    Args:
        partitions: The partition count, at least 1.

    Returns:
        ``(low, high)`` per partition index; the last range ends at :data:`MAX_HASH`.
    """
    width = MAX_HASH // partitions
    ranges = [(i * width, (i + 1) * width - 1) for i in range(partitions)]
    ranges[-1] = (ranges[-1][0], MAX_HASH)
    return ranges


def partition_for_hash(value: int, partitions: int) -> int:
    """Return the index of the partition whose hash range holds ``value``.

    Args:
        value: A hash in ``[0, MAX_HASH]``, from :func:`key_hash` or an ``explicit_hash_key``.
        partitions: The partition count, at least 1.

    Returns:
        The partition index, in ``[0, partitions - 1]``.
    """
    return min(value // (MAX_HASH // partitions), partitions - 1)


def partition_id(index: int) -> str:
    """Return the DIS partition id for ``index``, e.g. ``shardId-0000000002``.

    Args:
        index: The partition index, from 0.

    Returns:
        ``"shardId-"`` followed by the index padded to ten digits.
    """
    return f"shardId-{index:010d}"


def parse_partition_id(text: str) -> Optional[int]:
    """Parse ``shardId-0000000002`` or ``2`` into an index.

    Args:
        text: The partition id as a client sent it; surrounding whitespace is ignored.

    Returns:
        The index, or None when the text is in neither form.
    """
    match = PARTITION_ID_RE.match(text.strip())
    return int(match.group(1)) if match else None


def parse_decimal(text: str, maximum: int = MAX_HASH) -> Optional[int]:
    """Parse a decimal number a client sent as text: ASCII digits only, from 0 to ``maximum``.

    ``str.isdigit`` and ``int`` accept more (``"²"``, Arabic-Indic digits, ``"+5"``, ``"1_0"``,
    or thousands of digits that ``int`` refuses to convert); such values are not DIS numbers.

    Args:
        text: The text; surrounding whitespace is ignored.
        maximum: The largest value accepted; default :data:`MAX_HASH` (2^63 - 1, the range of
            sequence numbers, timestamps and hash keys, DIS-API.md §5, §7).

    Returns:
        The number, or None when the text is not a decimal in ``[0, maximum]``.
    """
    stripped = text.strip()
    if not _DECIMAL_RE.match(stripped):
        return None
    value = int(stripped)
    return value if value <= maximum else None


def new_id(length: int = 19) -> str:
    """Return a random alphanumeric id like the ones DIS gives streams.

    Args:
        length: Characters in the id; default 19. ``0`` gives ``""``.

    Returns:
        Letters and digits from a cryptographic random source.
    """
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


@dataclass
class Partition:
    """Records of one partition plus the bookkeeping for rate limits.

    Attributes:
        index: The partition index, from 0.
        records: Stored records that have not expired; the one at position ``i`` has sequence
            number ``first + i``.
        timestamps: Write time of each record in milliseconds, parallel to ``records``.
        first: Sequence number of ``records[0]``: how many records expired before it.
        window_start: Start of the current one-second rate window, in clock seconds.
        window_bytes: Data bytes accepted in that window.
        window_records: Records accepted in that window.
    """

    index: int
    records: List[StoredRecord] = field(default_factory=list)
    timestamps: List[int] = field(default_factory=list)
    first: int = 0
    window_start: float = 0.0
    window_bytes: int = 0
    window_records: int = 0


@dataclass
class Stream:
    """One stream and its partitions.

    Attributes:
        name: The stream name.
        stream_id: The generated stream id.
        stream_type: ``"COMMON"`` or ``"ADVANCED"``.
        data_type: ``"BLOB"``, ``"JSON"`` or ``"CSV"``.
        retention_hours: ``data_duration`` in hours.
        create_time: Creation time in milliseconds since the epoch.
        partitions: The partitions, by index.
        total_records: Records stored across all partitions.
    """

    name: str
    stream_id: str
    stream_type: str
    data_type: str
    retention_hours: int
    create_time: int
    partitions: List[Partition]
    total_records: int = 0

    def describe_partition(self, part: Partition) -> Dict[str, object]:
        """Return the DescribeStream entry of one partition.

        Args:
            part: One of :attr:`partitions`.

        Returns:
            ``partition_id``, ``status``, ``hash_range`` and ``sequence_number_range``, which is
            ``"[oldest : next]"``: the oldest unexpired sequence number and the next one.
        """
        low, high = hash_ranges(len(self.partitions))[part.index]
        return {
            "partition_id": partition_id(part.index),
            "status": "ACTIVE",
            "hash_range": f"[{low} : {high}]",
            "sequence_number_range": f"[{part.first} : {part.first + len(part.records)}]",
        }

    def summary(self) -> Dict[str, object]:
        """Return the ListStreams ``stream_info_list`` entry of this stream.

        Returns:
            The stream's id, name, creation time, retention, status, types and partition
            count, under the keys DIS uses.
        """
        return {
            "stream_id": self.stream_id,
            "stream_name": self.name,
            "create_time": self.create_time,
            "retention_period": self.retention_hours,
            "status": "RUNNING",
            "stream_type": self.stream_type,
            "data_type": self.data_type,
            "partition_count": len(self.partitions),
        }


@dataclass(frozen=True)
class NewRecord:
    """A decoded PutRecords entry, before partition assignment.

    Attributes:
        data: The record bytes, base64-decoded.
        partition_key: The key to hash; default None.
        partition_id: An explicit partition; default None. Takes precedence over the others.
        explicit_hash_key: A decimal hash replacing the key's; default None.
    """

    data: bytes
    partition_key: Optional[str] = None
    partition_id: Optional[str] = None
    explicit_hash_key: Optional[str] = None


@dataclass(frozen=True)
class PutOutcome:
    """Result of one PutRecords entry: either a stored record or an error code and message.

    Attributes:
        record: The stored record, or None when the entry failed.
        error_code: The per-record error code; default None (success).
        error_message: The per-record error message; default None (success).
    """

    record: Optional[StoredRecord]
    error_code: Optional[str] = None
    error_message: Optional[str] = None


RecordFilter = Callable[[int, NewRecord], Optional[Tuple[str, str]]]
"""Called per record before storing; returns (error code, message) to fail the record, or None."""


class StreamStore:
    """Thread-safe store of every stream of the emulated account.

    Args:
        clock: Wall clock in seconds since the epoch; default :func:`time.time`.
        partition_quota: Total partitions the account may hold across streams; default
            :data:`DEFAULT_PARTITION_QUOTA` (50). ``0`` makes every stream creation fail.
        advanced_partition_quota: Partitions of ADVANCED streams the account may hold (they count
            toward ``partition_quota`` too); default :data:`DEFAULT_ADVANCED_PARTITION_QUOTA` (10).
        seed: Seed of the generator placing records without key or partition id; default None,
            which seeds from the system.

    Attributes:
        lock: The re-entrant lock guarding every stream.
        changed: A condition on ``lock``, notified whenever streams or records change.
        rate_limits: Whether :meth:`put` enforces :data:`WRITE_RATE_LIMITS`; default False.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        partition_quota: int = DEFAULT_PARTITION_QUOTA,
        seed: Optional[int] = None,
        advanced_partition_quota: int = DEFAULT_ADVANCED_PARTITION_QUOTA,
    ) -> None:
        self._clock = clock
        self._quota = partition_quota
        self._advanced_quota = advanced_partition_quota
        self._random = random.Random(seed)
        self._streams: Dict[str, Stream] = {}
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.rate_limits = False

    def create(
        self,
        name: str,
        partitions: int = 1,
        stream_type: str = "COMMON",
        data_type: str = "BLOB",
        retention_hours: int = MIN_RETENTION_HOURS,
    ) -> Stream:
        """Create a stream.

        Args:
            name: Stream name, 1-64 characters of ``[A-Za-z0-9_-]``.
            partitions: Partition count, at least 1; default 1.
            stream_type: ``"COMMON"`` (default) or ``"ADVANCED"``.
            data_type: ``"BLOB"`` (default), ``"JSON"`` or ``"CSV"``.
            retention_hours: Retention in hours, 24-72; default 24.

        Returns:
            The new stream.

        Raises:
            ServiceError: On an invalid argument (DIS.4200), an existing name (DIS.4307) or when the
                partition quota would be exceeded (DIS.4308).
        """
        if not isinstance(name, str) or not STREAM_NAME_RE.match(name):
            raise bad_request(
                "DIS.4200", "Invalid stream_name: use 1-64 characters of [A-Za-z0-9_-]."
            )
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            raise bad_request("DIS.4200", "Invalid partition_count: must be an integer >= 1.")
        if stream_type not in STREAM_TYPES:
            raise bad_request("DIS.4200", "Invalid stream_type: must be COMMON or ADVANCED.")
        if data_type not in DATA_TYPES:
            raise bad_request("DIS.4200", "Invalid data_type: must be BLOB, JSON or CSV.")
        if (
            isinstance(retention_hours, bool)
            or not isinstance(retention_hours, int)
            or not MIN_RETENTION_HOURS <= retention_hours <= MAX_RETENTION_HOURS
        ):
            raise bad_request("DIS.4200", "Invalid data_duration: must be 24-72 hours.")
        with self.lock:
            if name in self._streams:
                raise bad_request("DIS.4307", f"The stream already exists: {name}.")
            used = sum(len(s.partitions) for s in self._streams.values())
            if used + partitions > self._quota:
                raise bad_request(
                    "DIS.4308",
                    f"Partition quota exceeded: {used} in use, {partitions} requested, "
                    f"quota {self._quota}.",
                )
            if stream_type == "ADVANCED":
                advanced = sum(
                    len(s.partitions) for s in self._streams.values() if s.stream_type == "ADVANCED"
                )
                if advanced + partitions > self._advanced_quota:
                    raise bad_request(
                        "DIS.4308",
                        f"ADVANCED partition quota exceeded: {advanced} in use, {partitions} "
                        f"requested, quota {self._advanced_quota}.",
                    )
            stream = Stream(
                name=name,
                stream_id=new_id(),
                stream_type=stream_type,
                data_type=data_type,
                retention_hours=retention_hours,
                create_time=int(self._clock() * 1000),
                partitions=[Partition(i) for i in range(partitions)],
            )
            self._streams[name] = stream
            self.changed.notify_all()
            return stream

    def delete(self, name: str) -> None:
        """Delete a stream and its records.

        Args:
            name: The stream name.

        Raises:
            ServiceError: DIS.4301 when the stream does not exist.
        """
        with self.lock:
            if self._streams.pop(name, None) is None:
                raise stream_not_found(name)
            self.changed.notify_all()

    def get(self, name: str, stream_id: Optional[str] = None) -> Stream:
        """Return the stream called ``name``, else the one with id ``stream_id``.

        Args:
            name: The stream name; may be ``""`` when looking up by id.
            stream_id: The stream id; default None, look up by name only.

        Returns:
            The stream.

        Raises:
            ServiceError: DIS.4301 when neither matches.
        """
        with self.lock:
            stream = self._streams.get(name)
            if stream is None and stream_id:
                stream = next((s for s in self._streams.values() if s.stream_id == stream_id), None)
            if stream is None:
                raise stream_not_found(name or stream_id or "")
            return stream

    def names(self) -> List[str]:
        """Return every stream name, sorted."""
        with self.lock:
            return sorted(self._streams)

    def put(
        self,
        stream: Stream,
        records: List[NewRecord],
        record_filter: Optional[RecordFilter] = None,
    ) -> List[PutOutcome]:
        """Store ``records`` in ``stream``, one outcome per record in request order.

        Args:
            stream: The target stream (from :meth:`get`).
            records: Decoded PutRecords entries.
            record_filter: Fault hook consulted per record before storing; default None, no
                injected failures. Rate limits, when enabled, apply after it.

        Returns:
            One :class:`PutOutcome` per record.

        Raises:
            ServiceError: DIS.4201/DIS.4302 for a malformed or unknown partition id, DIS.4200 for a
                malformed explicit_hash_key, DIS.4301 when the stream was deleted meanwhile;
                nothing is stored then.
        """
        count = len(stream.partitions)
        targets = [self._target(r, count) for r in records]
        outcomes: List[PutOutcome] = []
        with self.lock:
            if self._streams.get(stream.name) is not stream:
                raise stream_not_found(stream.name)
            now = self._clock()
            now_ms = int(now * 1000)
            self.expire(stream, now_ms)
            for position, (record, index) in enumerate(zip(records, targets)):
                part = stream.partitions[index]
                failure = record_filter(position, record) if record_filter else None
                if failure is None and self.rate_limits:
                    failure = self._check_rate(stream, part, len(record.data), now)
                if failure is not None:
                    outcomes.append(PutOutcome(None, failure[0], failure[1]))
                    continue
                stored = StoredRecord(
                    data=record.data,
                    partition_id=partition_id(index),
                    sequence_number=str(part.first + len(part.records)),
                    partition_key=record.partition_key,
                    timestamp=now_ms,
                )
                part.records.append(stored)
                part.timestamps.append(now_ms)
                stream.total_records += 1
                outcomes.append(PutOutcome(stored))
            self.changed.notify_all()
        return outcomes

    def expire(self, stream: Stream, now_ms: Optional[int] = None) -> None:
        """Drop the records older than the stream's retention (``data_duration``), as DIS does.

        Sequence numbers are kept: each partition's ``first`` moves past what was dropped.

        Args:
            stream: The stream.
            now_ms: The current time in milliseconds since the epoch; default None reads the
                store's clock.
        """
        with self.lock:
            if now_ms is None:
                now_ms = int(self._clock() * 1000)
            cutoff = now_ms - stream.retention_hours * 3_600_000
            for part in stream.partitions:
                if part.timestamps and part.timestamps[0] < cutoff:
                    gone = bisect.bisect_left(part.timestamps, cutoff)
                    del part.records[:gone]
                    del part.timestamps[:gone]
                    part.first += gone
                    stream.total_records -= gone

    def _target(self, record: NewRecord, count: int) -> int:
        """Pick the partition: by id, else explicit hash, else key hash, else at random."""
        if record.partition_id is not None:
            index = parse_partition_id(record.partition_id)
            if index is None:
                raise bad_request("DIS.4201", f"Invalid partition_id: {record.partition_id!r}.")
            if index >= count:
                raise bad_request("DIS.4302", f"Partition does not exist: {record.partition_id}.")
            return index
        if record.explicit_hash_key is not None:
            value = parse_decimal(record.explicit_hash_key)
            if value is None:
                raise bad_request(
                    "DIS.4200", "Invalid explicit_hash_key: must be a decimal in [0, 2^63-1]."
                )
            return partition_for_hash(value, count)
        if record.partition_key is not None:
            return partition_for_hash(key_hash(record.partition_key), count)
        with self.lock:
            return self._random.randrange(count)

    def _check_rate(
        self, stream: Stream, part: Partition, size: int, now: float
    ) -> Optional[Tuple[str, str]]:
        """Count one record against the partition's write limit; return DIS.4303 when over it."""
        # A fixed one-second window per partition is enough to model DIS traffic control.
        max_bytes, max_records = WRITE_RATE_LIMITS[stream.stream_type]
        if now - part.window_start >= 1.0:
            part.window_start, part.window_bytes, part.window_records = now, 0, 0
        if part.window_records + 1 > max_records or part.window_bytes + size > max_bytes:
            return (
                "DIS.4303",
                f"Exceeded traffic control limit of partition {partition_id(part.index)}.",
            )
        part.window_records += 1
        part.window_bytes += size
        return None

    def read(
        self, stream: Stream, index: int, start: int, limit: int, max_bytes: Optional[int]
    ) -> List[StoredRecord]:
        """Return up to ``limit`` records of one partition from sequence number ``start``.

        Args:
            stream: The stream.
            index: Partition index.
            start: First sequence number to return.
            limit: Maximum number of records; ``0`` returns none.
            max_bytes: Stop before the data would exceed this many bytes; None means no cap,
                ``0`` returns only records with empty data.

        Returns:
            The records, possibly empty.

        Raises:
            ServiceError: DIS.4226 when records from ``start`` on have expired meanwhile (a
                cursor is valid 5 minutes, retention can end within them).
        """
        with self.lock:
            self.expire(stream)
            part = stream.partitions[index]
            if start < part.first:
                raise bad_request(
                    "DIS.4226",
                    f"The records from sequence number {start} on have expired (the oldest is "
                    f"{part.first}); get a new cursor.",
                )
            chunk = part.records[start - part.first : start - part.first + limit]
        if max_bytes is None:
            return chunk
        taken, total = 0, 0
        for record in chunk:
            total += len(record.data)
            if total > max_bytes:
                break
            taken += 1
        return chunk[:taken]

    def first_at_or_after(self, stream: Stream, index: int, timestamp_ms: int) -> int:
        """Return the sequence number of the first record written at or after ``timestamp_ms``.

        Args:
            stream: The stream.
            index: Partition index.
            timestamp_ms: The time in milliseconds since the epoch.

        Returns:
            The sequence number; the next one when every record is older.
        """
        with self.lock:
            self.expire(stream)
            part = stream.partitions[index]
            return part.first + bisect.bisect_left(part.timestamps, timestamp_ms)

    def sequence_range(self, stream: Stream, index: int) -> Tuple[int, int]:
        """Return the oldest unexpired and the next sequence number of partition ``index``.

        Args:
            stream: The stream.
            index: Partition index.

        Returns:
            ``(oldest, next)``; equal when the partition holds no record.
        """
        with self.lock:
            self.expire(stream)
            part = stream.partitions[index]
            return part.first, part.first + len(part.records)

    def snapshot(self, name: str) -> List[StoredRecord]:
        """Return every record of stream ``name`` by partition then sequence number.

        Args:
            name: The stream name.

        Returns:
            A new list; later writes do not change it.

        Raises:
            KeyError: When the stream does not exist.
        """
        with self.lock:
            stream = self._streams.get(name)
            if stream is None:
                raise KeyError(f"no stream named {name!r} in the emulator")
            self.expire(stream)
            return [r for part in stream.partitions for r in part.records]

    def wait_for(self, name: str, count: int, timeout: float) -> List[StoredRecord]:
        """Block until stream ``name`` holds at least ``count`` records, then return them.

        Args:
            name: Stream name; it may be created while waiting.
            count: Number of records to wait for.
            timeout: Maximum wait in seconds; ``0`` only checks.

        Returns:
            Every record of the stream (at least ``count``).

        Raises:
            TimeoutError: When fewer than ``count`` records arrived within ``timeout``.
        """

        def stored() -> int:
            stream = self._streams.get(name)
            return stream.total_records if stream is not None else 0

        with self.changed:
            if not self.changed.wait_for(lambda: stored() >= count, timeout):
                raise TimeoutError(
                    f"stream {name!r} holds {stored()} records after {timeout:.1f} s, "
                    f"expected at least {count}"
                )
            return self.snapshot(name)


def stream_not_found(name: str) -> ServiceError:
    """Return the DIS.4301 error for a stream that does not exist.

    Args:
        name: The stream name (or id) that was looked up.

    Returns:
        The error, for the caller to raise.
    """
    return bad_request("DIS.4301", f"The stream does not exist: {name}.")
