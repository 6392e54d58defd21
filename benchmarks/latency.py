"""P5: emit-to-stored latency at 100 records/s.

Records are logged on a fixed schedule of 100 per second, each carrying its emit time
(``time.time()`` in microseconds) in the message. The emulator process stamps each record with its
store time in ms (same wall clock, same machine). Latency = stored - emitted, per record; p50 and
p99 are reported. At this rate batches never fill, so a record waits for the flush interval: the
target is p99 <= flush_interval + 100 ms, and the ratio is p99 over that budget.

For scale, the same schedule is also run through ``NaiveHandler`` (one synchronous request per
record): the latency floor of the link and the emulator.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Dict, List

from benchmarks.baselines import NaiveHandler, records_url
from benchmarks.common import Sizes, isolated_logger, make_formatter, percentile, result
from benchmarks.emulator_host import EmulatorProcess

RATE = 100.0
#: The handler's default flush interval (DESIGN.md), passed explicitly so the budget matches.
FLUSH_INTERVAL = 1.0
_STAMP = re.compile(r"emitted_us=(\d+)")


def _paced(logger: logging.Logger, n: int) -> None:
    start = time.monotonic()
    for i in range(n):
        delay = start + i / RATE - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        logger.info("latency probe %s emitted_us=%d", i, time.time_ns() // 1000)


def latencies_ms(emu: EmulatorProcess, stream: str) -> List[float]:
    """Return emit-to-stored latency in ms of every record in ``stream`` that carries an emit
    stamp."""
    out = []
    for data, stored_ms in emu.arrivals(stream):
        match = _STAMP.search(data)
        if match:
            out.append(stored_ms - int(match.group(1)) / 1000.0)
    return out


def _measure(emu: EmulatorProcess, handler: logging.Handler, stream: str, n: int) -> List[float]:
    handler.setFormatter(make_formatter())
    logger = isolated_logger(f"bench.p5.{stream}", handler)
    try:
        _paced(logger, n)
        emu.wait_for(stream, n, timeout=FLUSH_INTERVAL * 10 + 30)
    finally:
        logger.handlers.clear()
        handler.close()
    return latencies_ms(emu, stream)


def _summary(values: List[float]) -> Dict[str, float]:
    return {
        "p50_ms": percentile(values, 50),
        "p99_ms": percentile(values, 99),
        "max_ms": max(values),
        "n": float(len(values)),
    }


def run(sizes: Sizes, emu: EmulatorProcess, handler_cls: Any) -> Dict[str, Any]:
    """Measure P5 and return its results.json row (see the module docstring)."""
    n = int(sizes.p5_seconds * RATE)
    budget_ms = (FLUSH_INTERVAL + 0.1) * 1000
    emu.create_stream("bench-p5-naive", partitions=1)
    try:
        naive_handler = NaiveHandler(
            records_url(emu.url, emu.project_id), "bench-p5-naive", emu.token()
        )
        floor = _summary(_measure(emu, naive_handler, "bench-p5-naive", min(n, 300)))
    finally:
        emu.delete_stream("bench-p5-naive")
    details: Dict[str, Any] = {
        "rate_per_s": RATE,
        "records": n,
        "flush_interval_s": FLUSH_INTERVAL,
        "naive_floor": floor,
    }
    emu.create_stream("bench-p5", partitions=1)
    try:
        handler = handler_cls(
            stream_name="bench-p5",
            endpoint=emu.url,
            project_id=emu.project_id,
            token=emu.token(),
            flush_interval=FLUSH_INTERVAL,
        )
        dis = _summary(_measure(emu, handler, "bench-p5", n))
    finally:
        emu.delete_stream("bench-p5")
    details["dis"] = dis
    ratio = dis["p99_ms"] / budget_ms
    return result(
        "P5",
        "emit-to-stored p99 at 100 records/s",
        value=dis["p99_ms"],
        unit="ms",
        baseline=budget_ms,
        baseline_name="flush_interval + 100 ms",
        ratio=ratio,
        target="<= 1",
        met=ratio <= 1,
        details=details,
    )
