"""P4: peak RSS while DIS is unreachable and many records are logged; drops exactly counted.

A fresh interpreter (``python -m benchmarks.memory``, arguments as JSON on stdin) builds a
DISHandler whose endpoint is a loopback port nothing listens on, with the default bounds
(``max_queue_bytes`` 64 MiB), and logs records padded to about 1 KiB, so the byte bound is what
holds memory down. RSS is read from ``/proc/self/status``: ``VmRSS`` just before the first call
("start") and ``VmHWM`` (the peak, reset first through ``/proc/self/clear_refs``) after the last.

The baseline is the bound itself, start + max_queue_bytes + 32 MiB, from the same process. Counting
is exact when, with nothing delivered, ``emitted == sent + dropped + failed + queued`` after
logging, and ``queued == 0`` with ``emitted == sent + dropped + failed`` after ``close()``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Dict

from benchmarks.common import (
    Sizes,
    isolated_logger,
    make_formatter,
    result,
    run_worker,
)

MIB = 2**20
#: The handler's default byte bound (DESIGN.md), passed explicitly so the bound checked is the one
# used.
MAX_QUEUE_BYTES = 64 * MIB
SLACK_BYTES = 32 * MIB


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        pass  # older kernels: VmHWM then includes start-up, which only makes the check stricter


def _counts(stats: Any) -> Dict[str, int]:
    return {
        k: getattr(stats, k) for k in ("emitted", "sent", "dropped", "failed", "queued", "requests")
    }


def worker(args: Dict[str, Any]) -> Dict[str, Any]:
    """Child side: log ``args["records"]`` records to an unreachable endpoint and report memory.

    Args:
        args: ``records``, ``payload_bytes``, ``port`` (closed), ``close_timeout`` (seconds).

    Returns:
        RSS figures in bytes, the handler's counters after logging and after close, and timings.
    """
    from dis_logging.handler import DISHandler

    handler = DISHandler(
        stream_name="bench-p4",
        endpoint=f"http://127.0.0.1:{args['port']}",
        project_id="0" * 32,
        token="bench-token",
        max_queue_bytes=MAX_QUEUE_BYTES,
        close_timeout=args["close_timeout"],
    )
    handler.setFormatter(make_formatter())
    info = isolated_logger("bench.p4", handler).info
    pad = "x" * args["payload_bytes"]
    n = args["records"]
    _reset_peak()
    start = _proc_status_kib("VmRSS") * 1024
    t0 = time.perf_counter()
    for i in range(n):
        info("handled request %s payload %s", i, pad)
    log_s = time.perf_counter() - t0
    peak = _proc_status_kib("VmHWM") * 1024
    during = _counts(handler.stats)
    t0 = time.perf_counter()
    handler.close()
    close_s = time.perf_counter() - t0
    return {
        "start_rss": start,
        "peak_rss": peak,
        "end_rss": _proc_status_kib("VmRSS") * 1024,
        "during": during,
        "after_close": _counts(handler.stats),
        "log_s": log_s,
        "ns_per_call": log_s * 1e9 / n,
        "close_s": close_s,
    }


def run(sizes: Sizes, handler_cls: Any) -> Dict[str, Any]:
    """Measure P4 in a child process and return its results.json row (see the module docstring)."""
    bound = MAX_QUEUE_BYTES + SLACK_BYTES
    from benchmarks.common import unused_port

    args = {
        "records": sizes.p4_records,
        "payload_bytes": sizes.p4_payload_bytes,
        "port": unused_port(),
        "close_timeout": 1.0,
    }
    out = run_worker("benchmarks.memory", args, timeout=900.0)
    during, after = out["during"], out["after_close"]
    unaccounted_during = during["emitted"] - (
        during["sent"] + during["dropped"] + during["failed"] + during["queued"]
    )
    unaccounted_after = after["emitted"] - (after["sent"] + after["dropped"] + after["failed"])
    exact = (
        during["emitted"] == sizes.p4_records
        and unaccounted_during == 0
        and unaccounted_after == 0
        and after["queued"] == 0
    )
    growth = out["peak_rss"] - out["start_rss"]
    ratio = growth / bound
    details = dict(out, records=sizes.p4_records, payload_bytes=sizes.p4_payload_bytes)
    details.update(unaccounted_during=unaccounted_during, unaccounted_after=unaccounted_after)
    return result(
        "P4",
        "peak RSS growth, DIS unreachable",
        value=growth / MIB,
        unit="MiB",
        baseline=bound / MIB,
        baseline_name="max_queue_bytes + 32 MiB",
        ratio=ratio,
        target="<= 1 (and exact drop counts)",
        met=ratio <= 1 and exact,
        details=details,
        note="" if exact else "drop accounting does not add up; see details",
    )


if __name__ == "__main__":
    print(json.dumps(worker(json.load(sys.stdin))))
