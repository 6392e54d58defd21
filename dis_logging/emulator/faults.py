"""Scripted faults: queued error replies, per-record failures, delays and dropped connections.

:class:`FaultPlan` is the state behind the ``DISEmulator`` fault methods. Every method is
thread-safe; the server consults the plan after authenticating a request and before executing it.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass
from typing import Deque, Dict, Final, List, Optional, Tuple

from dis_logging.emulator.state import NewRecord, RecordFilter, ServiceError

OPERATIONS: Final = (
    "CreateToken",
    "PutRecords",
    "GetCursor",
    "GetRecords",
    "CreateStream",
    "DescribeStream",
    "ListStreams",
    "DeleteStream",
    "MetadataSecurityKey",
    "ListProjects",
)
"""Operation names accepted by the fault methods (``CreateToken`` is IAM's POST /v3/auth/tokens,
``MetadataSecurityKey`` the metadata service's GET /openstack/latest/securitykey, ``ListProjects``
IAM's GET /v3/projects)."""

#: ``error_message`` DIS pairs with each retryable per-record code (DIS-API.md §9).
_RECORD_MESSAGES: Final = {
    "DIS.4303": "Exceeded traffic control limit.",
    "DIS.5250": "Flow control: the partition is busy.",
}


def check_retry_after(retry_after: Optional[float]) -> None:
    """Reject a ``Retry-After`` that no header can carry.

    Args:
        retry_after: Seconds, or None for no header.

    Raises:
        ValueError: ``retry_after`` is negative, NaN or infinite.
    """
    if retry_after is not None and not 0.0 <= float(retry_after) < float("inf"):
        raise ValueError(
            f"retry_after must be a finite number of seconds >= 0, got {retry_after!r}"
        )


def check_operation(operation: Optional[str]) -> None:
    """Reject an operation name the fault methods do not know.

    Args:
        operation: An operation name, or None for "any operation".

    Raises:
        ValueError: ``operation`` is neither None nor one of :data:`OPERATIONS`.
    """
    if operation is not None and operation not in OPERATIONS:
        raise ValueError(
            "unknown operation {!r}; expected one of {}".format(operation, ", ".join(OPERATIONS))
        )


@dataclass(frozen=True)
class QueuedFailure:
    """One scripted error reply.

    Attributes:
        operation: The operation it applies to, or None for any.
        status: The HTTP status of the reply.
        error_code: The ``error_code`` of the reply body.
        retry_after: Seconds for a ``Retry-After`` header, or None for no header.
    """

    operation: Optional[str]
    status: int
    error_code: str
    retry_after: Optional[float]


class _RecordFailures:
    """Per-record failure rule: every Nth record, or a seeded random fraction, up to a limit."""

    def __init__(
        self,
        error_code: str,
        every: Optional[int],
        fraction: Optional[float],
        seed: int,
        limit: Optional[int],
    ) -> None:
        self.error_code = error_code
        self.message = _RECORD_MESSAGES.get(error_code, "Injected record failure.")
        self.every = every
        self.fraction = fraction
        self.random = random.Random(seed)
        self.limit = limit
        self.seen = 0
        self.failed = 0

    def decide(self) -> bool:
        """Count one record and return whether it fails; the caller holds the plan's lock."""
        self.seen += 1
        if self.limit is not None and self.failed >= self.limit:
            return False
        if self.every is not None:
            hit = self.seen % self.every == 0
        elif self.fraction is not None:
            hit = self.random.random() < self.fraction
        else:
            hit = True
        if hit:
            self.failed += 1
        return hit


@dataclass
class _RandomFailure:
    """Fail a seeded random fraction of the requests of one operation."""

    fraction: float
    failure: QueuedFailure
    random: random.Random


@dataclass
class _Drop:
    """Connections still to drop for one operation (None: any)."""

    operation: Optional[str]
    remaining: int


class FaultPlan:
    """The scripted faults of one emulator; starts with none."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: Deque[QueuedFailure] = deque()
        self._drops: List[_Drop] = []
        self._delays: Dict[Optional[str], float] = {}
        self._records: Optional[_RecordFailures] = None
        self._random_failure: Optional[_RandomFailure] = None

    def fail_next(
        self,
        count: int,
        status: int,
        error_code: str,
        retry_after: Optional[float],
        operation: Optional[str],
    ) -> None:
        """Queue ``count`` error replies; see :meth:`DISEmulator.fail_next`.

        Args:
            count: How many requests fail, at least 0; ``0`` queues nothing.
            status: HTTP status of each reply, 100-599.
            error_code: ``error_code`` of each reply body.
            retry_after: Seconds for a ``Retry-After`` header, or None for no header.
            operation: The operation the failures apply to, or None for any.

        Raises:
            ValueError: An unknown operation, a negative count, a status outside 100-599 or a
                ``retry_after`` that is negative or not finite.
        """
        check_operation(operation)
        check_retry_after(retry_after)
        if count < 0 or not 100 <= status <= 599:
            raise ValueError("count must be >= 0 and status an HTTP status code")
        with self._lock:
            for _ in range(count):
                self._failures.append(QueuedFailure(operation, status, error_code, retry_after))

    def fail_rate(
        self,
        fraction: float,
        status: int,
        error_code: str,
        retry_after: Optional[float],
        operation: Optional[str],
        seed: int,
    ) -> None:
        """Fail a random ``fraction`` of ``operation`` requests; see :meth:`DISEmulator.fail_rate`.

        Replaces any earlier rate rule.

        Args:
            fraction: Probability in [0, 1] that a request fails; ``0`` removes the rule.
            status: HTTP status of each reply, 100-599.
            error_code: ``error_code`` of each reply body.
            retry_after: Seconds for a ``Retry-After`` header, or None for no header.
            operation: The operation the rule applies to, or None for any.
            seed: Seed of the rule's random generator.

        Raises:
            ValueError: An unknown operation, a fraction outside [0, 1], a status outside
                100-599 or a ``retry_after`` that is negative or not finite.
        """
        check_operation(operation)
        check_retry_after(retry_after)
        if not 0.0 <= fraction <= 1.0 or not 100 <= status <= 599:
            raise ValueError("fraction must be within [0, 1] and status an HTTP status code")
        with self._lock:
            self._random_failure = None
            if fraction:
                failure = QueuedFailure(operation, status, error_code, retry_after)
                self._random_failure = _RandomFailure(fraction, failure, random.Random(seed))

    def take_failure(self, operation: str) -> Optional[ServiceError]:
        """Return the scripted error for this ``operation`` request, if any.

        The first queued failure that applies is consumed; otherwise the random failure rate (if
        any) is consulted.

        Args:
            operation: The operation of the request being handled.

        Returns:
            The error to reply with, or None to handle the request normally.
        """
        chosen: Optional[QueuedFailure] = None
        with self._lock:
            for failure in self._failures:
                if failure.operation in (None, operation):
                    self._failures.remove(failure)
                    chosen = failure
                    break
            rule = self._random_failure
            if (
                chosen is None
                and rule is not None
                and rule.failure.operation in (None, operation)
                and rule.random.random() < rule.fraction
            ):
                chosen = rule.failure
        if chosen is None:
            return None
        return ServiceError(
            chosen.status,
            chosen.error_code,
            f"Injected failure ({chosen.error_code}).",
            chosen.retry_after,
        )

    def fail_records(
        self,
        error_code: str,
        every: Optional[int],
        fraction: Optional[float],
        seed: int,
        limit: Optional[int],
    ) -> None:
        """Make PutRecords entries fail individually; see :meth:`DISEmulator.fail_records`.

        Replaces any earlier per-record rule.

        Args:
            error_code: The per-record error code.
            every: Fail every Nth record, counted across requests, at least 1; None to use
                ``fraction``.
            fraction: Probability in [0, 1] that a record fails; None with ``every`` None fails
                every record. Ignored when ``every`` is set.
            seed: Seed of the generator for ``fraction``.
            limit: Stop failing after this many failures, at least 0 (``0`` fails none); None
                never stops.

        Raises:
            ValueError: ``every`` below 1, ``fraction`` outside [0, 1] or a negative ``limit``.
        """
        if every is not None and every < 1:
            raise ValueError("every must be >= 1")
        if fraction is not None and not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be within [0, 1]")
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        with self._lock:
            self._records = _RecordFailures(error_code, every, fraction, seed, limit)

    def record_filter(self) -> Optional[RecordFilter]:
        """Return the per-record failure hook for one PutRecords request.

        Returns:
            A :data:`~dis_logging.emulator.state.RecordFilter` that applies the current rule, or
            None when no rule is set.
        """
        with self._lock:
            rule = self._records
        if rule is None:
            return None

        def decide(_position: int, _record: NewRecord) -> Optional[Tuple[str, str]]:
            with self._lock:
                return (rule.error_code, rule.message) if rule.decide() else None

        return decide

    def set_delay(self, seconds: float, operation: Optional[str]) -> None:
        """Delay replies to ``operation`` by ``seconds``.

        Args:
            seconds: The delay in seconds, at least 0; ``0`` removes the delay.
            operation: The operation, or None for every operation without a delay of its own.

        Raises:
            ValueError: An unknown operation or a negative delay.
        """
        check_operation(operation)
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        with self._lock:
            if seconds:
                self._delays[operation] = float(seconds)
            else:
                self._delays.pop(operation, None)

    def delay_for(self, operation: str) -> float:
        """Return the delay in seconds for ``operation``.

        Args:
            operation: The operation of the request being handled.

        Returns:
            Its own delay, else the one set for every operation, else 0.0.
        """
        with self._lock:
            return self._delays.get(operation, self._delays.get(None, 0.0))

    def drop_connections(self, count: int, operation: Optional[str]) -> None:
        """Close the next ``count`` connections carrying ``operation`` without replying.

        Args:
            count: How many requests to drop, at least 0; ``0`` drops none.
            operation: The operation, or None for any.

        Raises:
            ValueError: An unknown operation or a negative count.
        """
        check_operation(operation)
        if count < 0:
            raise ValueError("count must be >= 0")
        with self._lock:
            if count:
                self._drops.append(_Drop(operation, count))

    def take_drop(self, operation: str) -> bool:
        """Return True (and count it) when this ``operation`` request must be dropped.

        Args:
            operation: The operation of the request being handled.

        Returns:
            True when a drop rule applies; that rule then has one drop fewer to go.
        """
        with self._lock:
            for entry in self._drops:
                if entry.operation in (None, operation):
                    entry.remaining -= 1
                    if not entry.remaining:
                        self._drops.remove(entry)
                    return True
        return False

    def clear(self) -> None:
        """Remove every scripted fault: queued and random failures, record rules, delays, drops."""
        with self._lock:
            self._failures.clear()
            self._drops.clear()
            self._delays.clear()
            self._records = None
            self._random_failure = None
