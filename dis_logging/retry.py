"""How long to wait before the next attempt, and when to give up.

:class:`RetryPolicy` is an immutable value, like urllib3's ``Retry``: it holds the numbers and
computes delays, it never sleeps and never touches the network. The caller counts attempts, waits on
its own stop event and checks the deadline::

    policy = RetryPolicy(initial_backoff=0.2, max_backoff=10.0)
    deadline = policy.deadline(time.monotonic())
    delay = policy.next_delay(
        attempt, deadline=deadline, now=time.monotonic(), retry_after=exc.retry_after
    )
    if delay is None:
        ...  # out of time: give up on this batch
    stop_event.wait(delay)
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable, Optional

from dis_logging.errors import ConfigError

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter, honouring ``Retry-After``, within a time budget.

    The base delay before retry number ``attempt`` (1 for the first retry) is
    ``initial_backoff * multiplier ** (attempt - 1)``; jitter spreads it uniformly over
    ``[base * (1 - jitter), base * (1 + jitter)]`` so that many processes failing together do not
    retry together; the result never exceeds ``max_backoff``.

    Args:
        initial_backoff: seconds before the first retry, at most ``max_backoff``; default 0.1.
            ``0`` makes every base delay 0, so only ``Retry-After`` can make a retry wait.
        multiplier: growth factor per attempt, at least 1; default 2.0. ``1`` keeps the base
            delay at ``initial_backoff``.
        max_backoff: ceiling of every delay in seconds, ``Retry-After`` included; default 30.0.
            ``0`` (which forces ``initial_backoff=0``) makes every delay 0.
        jitter: relative spread of each delay, 0 to 1; default 0.2 (±20 %). ``0`` gives fixed
            delays.
        max_retry_time: seconds from the first failure after which retrying stops; default 300.0.
            ``0`` means no retries at all.

    Raises:
        ConfigError: a value is not a number, is negative or infinite (the three durations),
            is out of its range (``multiplier``, ``jitter``), or ``initial_backoff`` exceeds
            ``max_backoff``.
    """

    initial_backoff: float = 0.1
    multiplier: float = 2.0
    max_backoff: float = 30.0
    jitter: float = 0.2
    max_retry_time: float = 300.0

    def __post_init__(self) -> None:
        for name in ("initial_backoff", "max_backoff", "max_retry_time"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value < math.inf):
                raise ConfigError(name, f"must be a finite number of seconds >= 0, got {value!r}")
        if not (isinstance(self.multiplier, (int, float)) and 1 <= self.multiplier < math.inf):
            raise ConfigError(
                "multiplier", f"must be a finite number >= 1, got {self.multiplier!r}"
            )
        if not (isinstance(self.jitter, (int, float)) and 0 <= self.jitter <= 1):
            raise ConfigError("jitter", f"must be between 0 and 1, got {self.jitter!r}")
        if self.initial_backoff > self.max_backoff:
            raise ConfigError(
                "initial_backoff",
                f"must not exceed max_backoff ({self.max_backoff!r}), got {self.initial_backoff!r}",
            )

    def backoff(
        self,
        attempt: int,
        retry_after: Optional[float] = None,
        rand: Callable[[], float] = random.random,
    ) -> float:
        """Return the seconds to wait before retry number ``attempt``.

        Args:
            attempt: 1 for the first retry, 2 for the second, and so on; values below 1 count as 1.
            retry_after: seconds the server asked for (``Retry-After``), or ``None``. The delay is
                at least this long, but never more than ``max_backoff``; negative values count as 0.
            rand: source of uniform numbers in ``[0, 1)``; default :func:`random.random`. Tests pass
                a constant, and 0.5 gives the delay without jitter.

        Returns:
            The delay in seconds, between 0 and ``max_backoff``. An exponent so large that the base
            delay overflows a float is capped at ``max_backoff`` rather than raising.
        """
        exponent = max(attempt, 1) - 1
        try:
            base = self.initial_backoff * self.multiplier**exponent
        except OverflowError:
            base = self.max_backoff
        base = min(base, self.max_backoff)
        delay = base * (1.0 + self.jitter * (2.0 * rand() - 1.0))
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(max(delay, 0.0), self.max_backoff)

    def deadline(self, start: float) -> float:
        """Return the time after which no retry should start.

        Args:
            start: when the first attempt failed, in seconds on the caller's clock (usually
                :func:`time.monotonic`).

        Returns:
            ``start + max_retry_time``, in seconds on the same clock.
        """
        return start + self.max_retry_time

    def next_delay(
        self,
        attempt: int,
        *,
        deadline: float,
        now: float,
        retry_after: Optional[float] = None,
        rand: Callable[[], float] = random.random,
    ) -> Optional[float]:
        """Return the delay before retry ``attempt``, or ``None`` if it would end past the deadline.

        Args:
            attempt: as for :meth:`backoff`.
            deadline: the value :meth:`deadline` returned for this operation, in seconds.
            now: the current time in seconds, on the same clock as ``deadline``.
            retry_after: as for :meth:`backoff`.
            rand: as for :meth:`backoff`.

        Returns:
            Seconds to wait, or ``None`` when ``now`` plus the delay would pass ``deadline``
            (give up now). A delay that ends exactly at the deadline is still returned.
        """
        delay = self.backoff(attempt, retry_after, rand)
        if now + delay > deadline:
            return None
        return delay
