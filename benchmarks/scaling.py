"""S1 and S2: how the cost grows with logging threads and with record size.

- S1 logs ``scale_records`` records through one DISHandler (default ``JSONFormatter``) into the
  emulator process from 1, 4 and 16 threads at once, all released together by a barrier. It
  reports the delivered records/s (first call until the emulator holds every record) and the 99th
  percentile of the time one ``logger.info`` call took on its thread (``perf_counter_ns`` around
  each call, so it includes waiting for the GIL while other threads or the flusher run).
- S2 logs records whose message is 100 B, 1 KB and 10 KB through DISHandler in a fresh interpreter
  each (``benchmarks.cpu`` worker, AK/SK), and reports process CPU time per record and per MB of
  payload delivered (all threads, from the first call to the end of ``close()``). Fewer records
  are sent at larger sizes, about 20 MB of payload at most per size.

Neither has a target: they show the shape of the cost, and their rows carry ``target: report``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, List

from benchmarks import cpu
from benchmarks.common import (
    MESSAGE,
    QUEUE_BYTES,
    USER,
    Sizes,
    isolated_logger,
    percentile,
    result,
)
from benchmarks.emulator_host import EmulatorProcess

THREADS = (1, 4, 16)
MESSAGE_SIZES = (100, 1_000, 10_000)
#: Payload bytes sent per record size in S2, at most.
SIZE_BUDGET_BYTES = 20_000_000


def _threads_run(emu: EmulatorProcess, handler_cls: Any, threads: int, n: int) -> Dict[str, Any]:
    stream = f"bench-s1-{threads}"
    emu.create_stream(stream, partitions=2)
    handler = handler_cls(
        stream_name=stream,
        endpoint=emu.url,
        project_id=emu.project_id,
        token=emu.token(),
        max_queue_records=n + 1_000,
        max_queue_bytes=QUEUE_BYTES,
    )
    logger = isolated_logger(f"bench.s1.{threads}", handler)
    per_thread = n // threads
    total = per_thread * threads
    samples: List[List[int]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def work(index: int) -> None:
        info = logger.info
        clock = time.perf_counter_ns
        mine = samples[index]
        barrier.wait()
        for i in range(per_thread):
            t0 = clock()
            info(MESSAGE, i, USER)
            mine.append(clock() - t0)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    try:
        barrier.wait()
        start = time.monotonic()
        for worker in workers:
            worker.join()
        handler.flush(timeout=300.0)
        emu.wait_for(stream, total, timeout=300.0)
        elapsed = time.monotonic() - start
    finally:
        handler.close()
        logger.handlers.clear()
        emu.delete_stream(stream)
    calls = [v for per in samples for v in per]
    return {
        "threads": threads,
        "records": total,
        "delivered_rps": total / elapsed,
        "call_p50_us": percentile(calls, 50) / 1000,
        "call_p99_us": percentile(calls, 99) / 1000,
        "call_max_us": max(calls) / 1000,
    }


def run_threads(sizes: Sizes, emu: EmulatorProcess, handler_cls: Any) -> Dict[str, Any]:
    """Measure S1 and return its results.json row (see the module docstring)."""
    runs = [_threads_run(emu, handler_cls, t, sizes.scale_records) for t in THREADS]
    one, many = runs[0], runs[-1]
    ratio = many["delivered_rps"] / one["delivered_rps"]
    return result(
        "S1",
        "delivered records/s, 16 threads vs 1",
        value=many["delivered_rps"],
        unit="records/s",
        baseline=one["delivered_rps"],
        baseline_name="the same handler, 1 logging thread",
        ratio=ratio,
        target="report",
        met=None,
        details={"runs": runs},
        note="caller p99 per thread count (us): "
        + ", ".join(f"{r['threads']}: {r['call_p99_us']:.1f}" for r in runs),
    )


def run_sizes(sizes: Sizes, emu: EmulatorProcess, handler_cls: Any) -> Dict[str, Any]:
    """Measure S2 and return its results.json row (see the module docstring)."""
    from dis_logging.formatting import JSONFormatter

    runs: List[Dict[str, Any]] = []
    for size in MESSAGE_SIZES:
        n = max(min(sizes.size_records, SIZE_BUDGET_BYTES // size), 200)
        base = len(MESSAGE % (0, USER))
        pad = max(size - base, 0)
        record = logging.LogRecord(
            "bench.p3", logging.INFO, __file__, 0, MESSAGE, (0, USER + "x" * pad), None
        )
        payload = len(JSONFormatter().format(record).encode("utf-8"))
        reply = cpu._one(emu, "dis", n, 0, pad=pad)
        runs.append(
            {
                "message_bytes": size,
                "payload_bytes": payload,
                "records": n,
                "cpu_s": reply["cpu_s"],
                "cpu_us_per_record": reply["cpu_s"] * 1e6 / n,
                "cpu_s_per_mb": reply["cpu_s"] / (payload * n / 1e6),
            }
        )
    small, large = runs[0], runs[-1]
    ratio = large["cpu_us_per_record"] / small["cpu_us_per_record"]
    return result(
        "S2",
        "CPU per record, 10 KB vs 100 B messages",
        value=large["cpu_us_per_record"],
        unit="CPU us/record",
        baseline=small["cpu_us_per_record"],
        baseline_name="the same handler, 100 B messages",
        ratio=ratio,
        target="report",
        met=None,
        details={"runs": runs, "handler": handler_cls.__name__ if handler_cls else None},
        note="CPU s per MB of payload: "
        + ", ".join(f"{r['message_bytes']} B: {r['cpu_s_per_mb']:.3f}" for r in runs),
    )
