"""P8: records per second the spool absorbs while DIS is down, against one thread's logging rate.

A fresh interpreter (``python -m benchmarks.spill``, arguments as JSON on stdin) runs two timed
phases against a loopback port nothing listens on (every request is refused at once):

* **baseline**: one thread logs ``records`` records into a DISHandler without a spool whose memory
  queue is large enough to hold them all, so nothing is dropped or written: the rate one thread can
  log through the handler;
* **spill**: the same thread logs the same records into a DISHandler with a spool
  (``spool_mode="outage"``, then ``"always"``) and a memory queue of ``max_queue_records=1000``,
  a twentieth or less of the records, and ``flush_interval=0.05``, so almost everything must go to
  disk. The figure is records over the time from the first call until every record is on disk
  (``stats.spooled`` equals the count); the caller's own logging time is in the details.

The ratio is the outage-mode spill rate over the baseline rate. The target is that no record is
dropped while the spool has room; the ratio says how much of one thread's top logging rate the
spool absorbs. It is bounded by the GIL: the baseline thread only captures records (they are
serialized on the flusher), while absorbing them means capturing, serializing and writing each
one in the same process. The handlers use the shared formatter and the shared log call.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from typing import Any, Dict

from benchmarks.common import MESSAGE, USER, Sizes, isolated_logger, make_formatter, result
from benchmarks.common import run_worker as _run_worker

#: The memory queue of the spilling handlers: small, so the spool takes nearly everything.
SPILL_QUEUE_RECORDS = 1_000
#: flush_interval of the spilling handlers, in seconds.
SPILL_FLUSH_INTERVAL = 0.05


def _counts(stats: Any) -> Dict[str, int]:
    return {
        k: getattr(stats, k)
        for k in ("emitted", "sent", "dropped", "failed", "queued", "spooled", "adopted")
    }


def _phase(port: int, records: int, spool_dir: str = "", mode: str = "outage") -> Dict[str, Any]:
    """Log ``records`` records into one handler; return timings and counters."""
    from dis_logging.handler import DISHandler

    settings: Dict[str, Any] = {
        "stream_name": "bench-p8",
        "endpoint": f"http://127.0.0.1:{port}",
        "project_id": "0" * 32,
        "token": "bench-token",
        "close_timeout": 0.5,
        "diagnostics": lambda _line: None,
    }
    if spool_dir:
        settings.update(
            spool_dir=spool_dir,
            spool_mode=mode,
            spool_max_bytes=4 * 2**30,
            max_queue_records=SPILL_QUEUE_RECORDS,
            # The last records below the high-water mark go to disk at the next interval; a
            # short one keeps that tail from dominating the measured time.
            flush_interval=SPILL_FLUSH_INTERVAL,
        )
    else:
        settings.update(max_queue_records=records + 1, max_queue_bytes=2**31)
    handler = DISHandler(**settings)
    handler.setFormatter(make_formatter())
    info = isolated_logger(f"bench.p8.{mode if spool_dir else 'baseline'}", handler).info
    t0 = time.perf_counter()
    for i in range(records):
        info(MESSAGE, i, USER)
    log_s = time.perf_counter() - t0
    absorbed_s = log_s
    if spool_dir:
        deadline = time.monotonic() + 600
        while handler.stats.spooled + handler.stats.dropped < records:
            if time.monotonic() > deadline:
                break
            time.sleep(0.001)
        absorbed_s = time.perf_counter() - t0
    counts = _counts(handler.stats)
    handler.close()
    return {
        "log_s": log_s,
        "absorbed_s": absorbed_s,
        "records_per_s": records / absorbed_s,
        "caller_records_per_s": records / log_s,
        "counts": counts,
    }


def worker(args: Dict[str, Any]) -> Dict[str, Any]:
    """Child side: the baseline phase, then one spill phase per spool mode.

    Args:
        args: ``records``, ``port`` (closed).

    Returns:
        Per phase: seconds spent logging, seconds until every record was absorbed, rates, counters.
    """
    records, port = args["records"], args["port"]
    out: Dict[str, Any] = {"baseline": _phase(port, records)}
    for mode in ("outage", "always"):
        with tempfile.TemporaryDirectory(prefix="bench-p8-") as directory:
            out[mode] = _phase(port, records, directory, mode)
    return out


def run(sizes: Sizes) -> Dict[str, Any]:
    """Measure P8 in a child process and return its results.json row (see the module docstring)."""
    from benchmarks.common import unused_port

    records = sizes.p8_records
    out = _run_worker("benchmarks.spill", {"records": records, "port": unused_port()}, 900.0)
    baseline = out["baseline"]["records_per_s"]
    spill = out["outage"]["records_per_s"]
    dropped = out["outage"]["counts"]["dropped"] + out["always"]["counts"]["dropped"]
    ratio = spill / baseline
    details = dict(out, records=records, max_queue_records=SPILL_QUEUE_RECORDS)
    return result(
        "P8",
        "records/s spilled to disk, DIS down",
        value=spill,
        unit="records/s",
        baseline=baseline,
        baseline_name="one thread logging, no spool",
        ratio=ratio,
        target="none dropped (ratio reported)",
        met=dropped == 0,
        details=details,
        note="" if dropped == 0 else f"{dropped} record(s) dropped; see details",
    )


if __name__ == "__main__":
    print(json.dumps(worker(json.load(sys.stdin))))
