"""P6: how long ``close()`` takes while DIS is unreachable.

Two kinds of unreachable, each with records queued and the flusher already trying to send:

- ``refused``: the endpoint is a loopback port nothing listens on; every connect fails at once and
  the flusher is in its backoff.
- ``black_hole``: the endpoint accepts the TCP connection and never answers; the flusher is stuck
  in a request bounded only by ``request_timeout`` (10 s by default, longer than the close budget).

The target is ``close()`` returning within close_timeout + 0.5 s; the ratio is the slower variant's
time over that budget.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Dict

from benchmarks.common import (
    MESSAGE,
    USER,
    BlackHole,
    Sizes,
    isolated_logger,
    make_formatter,
    result,
    unused_port,
)

RECORDS = 2_000
#: How long the flusher gets to start its first send before close() is called, seconds.
SETTLE = 0.3


def time_close(handler_cls: Any, port: int, close_timeout: float) -> Dict[str, Any]:
    """Queue records for an unreachable ``port``, then time ``close()``.

    Args:
        handler_cls: ``DISHandler``.
        port: loopback port standing in for DIS.
        close_timeout: the handler's close_timeout, seconds.

    Returns:
        ``close_s`` (seconds) and the handler's counters after close.
    """
    handler = handler_cls(
        stream_name="bench-p6",
        endpoint=f"http://127.0.0.1:{port}",
        project_id="0" * 32,
        token="bench-token",
        close_timeout=close_timeout,
    )
    handler.setFormatter(make_formatter())
    logger = isolated_logger("bench.p6", handler)
    for i in range(RECORDS):
        logger.info(MESSAGE, i, USER)
    threading.Event().wait(SETTLE)
    start = time.perf_counter()
    handler.close()
    close_s = time.perf_counter() - start
    logger.handlers.clear()
    stats = handler.stats
    return {
        "close_s": close_s,
        "emitted": stats.emitted,
        "sent": stats.sent,
        "dropped": stats.dropped,
        "queued": stats.queued,
    }


def run(sizes: Sizes, handler_cls: Any) -> Dict[str, Any]:
    """Measure P6 and return its results.json row (see the module docstring)."""
    close_timeout = sizes.p6_close_timeout
    budget = close_timeout + 0.5
    variants = {"refused": time_close(handler_cls, unused_port(), close_timeout)}
    with BlackHole() as hole:
        variants["black_hole"] = time_close(handler_cls, hole.port, close_timeout)
    worst = max(v["close_s"] for v in variants.values())
    ratio = worst / budget
    return result(
        "P6",
        "close() with DIS unreachable",
        value=worst,
        unit="s",
        baseline=budget,
        baseline_name="close_timeout + 0.5 s",
        ratio=ratio,
        target="<= 1",
        met=ratio <= 1,
        details={"close_timeout_s": close_timeout, "records": RECORDS, "variants": variants},
    )
