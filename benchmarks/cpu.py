"""P3: process CPU seconds per 100k delivered records, DISHandler against the official DIS SDK.

Each run is a fresh interpreter (``python -m benchmarks.cpu``, arguments as JSON on stdin) that
builds one handler, logs ``p3_records`` records through it, flushes and closes it, and reports
``time.process_time()`` spent from the first ``logger.info`` to the end of ``close()``: every
thread of the process, the flusher included. Both contenders sign with AK/SK. The parent then
checks that the emulator (another process, whose CPU is not counted) stored every record.

A third contender, a handler that only formats, gives the floor every contender pays (the logging
machinery and the formatter); ``shipping_ratio`` compares what each spends above it.

Every contender formats with ``dis_logging.JSONFormatter`` (DISHandler captures on the caller and
serializes on its flusher; the others format on the caller).

Each contender runs ``runs`` times, alternating; the lowest CPU time counts (interference from other
processes only adds to it), and every run is in the details.

The baseline is ``huaweicloudsdkdis``'s ``DisClient.send_records`` called with batches of 500 from a
minimal handler on the caller's thread (``baselines.SDKBatchHandler``).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Dict, List

from benchmarks.baselines import FormatOnlyHandler
from benchmarks.common import (
    MESSAGE,
    QUEUE_BYTES,
    USER,
    Sizes,
    isolated_logger,
    load_handler_class,
    make_json_formatter,
    result,
    run_worker,
)
from benchmarks.emulator_host import EmulatorProcess


def worker(args: Dict[str, Any]) -> Dict[str, Any]:
    """Child side: log ``args["records"]`` records through one contender and report CPU time.

    Args:
        args: ``contender`` ("dis", "sdk" or "floor"), ``records``, ``url``, ``project_id``,
            ``ak``, ``sk``, ``stream``.

    Returns:
        ``cpu_s`` and ``wall_s`` from the first call to the end of ``close()``, and the handler's
        stats for DISHandler.
    """
    n = args["records"]
    if args["contender"] == "floor":
        handler: Any = FormatOnlyHandler()
    elif args["contender"] == "sdk":
        from benchmarks.baselines import SDKBatchHandler

        handler = SDKBatchHandler(
            args["url"], args["project_id"], args["ak"], args["sk"], args["stream"]
        )
    else:
        handler = load_handler_class()(
            stream_name=args["stream"],
            endpoint=args["url"],
            project_id=args["project_id"],
            ak=args["ak"],
            sk=args["sk"],
            max_queue_records=n + 1_000,
            max_queue_bytes=QUEUE_BYTES,
        )
    handler.setFormatter(make_json_formatter())
    info = isolated_logger("bench.p3", handler).info
    user = USER + "x" * max(args.get("pad", 0), 0)  # record sizes for S2
    cpu0, wall0 = time.process_time(), time.monotonic()
    for i in range(n):
        info(MESSAGE, i, user)
    handler.flush(*(() if args["contender"] != "dis" else (300.0,)))
    handler.close()
    reply: Dict[str, Any] = {
        "cpu_s": time.process_time() - cpu0,
        "wall_s": time.monotonic() - wall0,
    }
    if args["contender"] == "dis":
        stats = handler.stats
        reply["stats"] = {
            "sent": stats.sent,
            "dropped": stats.dropped,
            "failed": stats.failed,
            "requests": stats.requests,
        }
    return reply


def _one(
    emu: EmulatorProcess, contender: str, n: int, run: int, stored: bool = True, pad: int = 0
) -> Dict[str, Any]:
    stream = f"bench-p3-{contender}-{run}-{pad}"
    emu.create_stream(stream, partitions=2)
    try:
        args = {
            "contender": contender,
            "records": n,
            "url": emu.url,
            "project_id": emu.project_id,
            "ak": emu.ak,
            "sk": emu.sk,
            "stream": stream,
            "pad": pad,
        }
        reply = run_worker("benchmarks.cpu", args, timeout=600.0)
        if stored:
            emu.wait_for(stream, n, timeout=30.0)
        reply["cpu_s_per_100k"] = reply["cpu_s"] * 100_000 / n
        return reply
    finally:
        emu.delete_stream(stream)


def run(sizes: Sizes, emu: EmulatorProcess, handler_cls: Any) -> Dict[str, Any]:
    """Measure P3 and return its results.json row (see the module docstring)."""
    runs: Dict[str, List[Dict[str, Any]]] = {"floor": [], "sdk": [], "dis": []}
    for r in range(sizes.runs):
        runs["floor"].append(_one(emu, "floor", sizes.p3_records, r, stored=False))
        runs["sdk"].append(_one(emu, "sdk", sizes.p3_records, r))
        if handler_cls is not None:
            runs["dis"].append(_one(emu, "dis", sizes.p3_records, r))
    per = {k: [x["cpu_s_per_100k"] for x in v] for k, v in runs.items()}
    baseline = min(per["sdk"])
    details = {"records": sizes.p3_records, "runs": runs}
    value = min(per["dis"])
    ratio = value / baseline
    floor = min(per["floor"])
    details["floor_cpu_s_per_100k"] = floor
    details["shipping_ratio"] = (value - floor) / (baseline - floor)
    return result(
        "P3",
        "CPU s per 100k delivered records",
        value=value,
        unit="CPU s/100k",
        baseline=baseline,
        baseline_name="huaweicloudsdkdis send_records, batches of 500, same JSONFormatter",
        ratio=ratio,
        target="<= 0.5",
        met=ratio <= 0.5,
        details=details,
    )


if __name__ == "__main__":
    print(json.dumps(worker(json.load(sys.stdin))))
