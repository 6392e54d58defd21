"""P1: caller cost of ``logger.info`` through DISHandler vs QueueHandler, above a NullHandler.

Each contender gets its own logger with one handler and the same formatter,
``dis_logging.JSONFormatter`` (DISHandler's default: it captures the record on the caller and
serializes it on the flusher; the QueueHandler formats it in ``prepare``). Rounds of ``p1_calls``
calls are timed and interleaved (the order rotates every round), so drift of the machine hits every
contender alike. The garbage collector is off during a round, as in ``timeit``. Each round records
the calling thread's CPU time (``thread_time_ns``: the figure, since other processes taking the core
do not inflate it) and wall time (``perf_counter_ns``, in the details). The NullHandler's figure of
the same round (the logging machinery itself plus the loop) is subtracted.

Two DISHandlers run. The one the target is stated on sends to a black hole (a port that accepts the
connection and never answers), a fresh one for each round so that each starts empty like the
drained queue: its flusher sits in one request, so the figure is the caller's own path (capture,
size check, append, wake). The other posts to the emulator process while the caller logs, so its
wall-clock figure also holds the time the caller waited for the GIL while the flusher encoded and
sent batches (``live_ratio``: wall clock against the QueueHandler's);
``flush()`` between rounds empties it. The flusher's CPU itself is P3's subject.

The baseline is the stdlib ``QueueHandler`` on a ``queue.Queue`` with nobody consuming it during the
timed round (it is drained between rounds): the cheapest a queue-based handler gets. A handler that
only formats shows what formatting on the caller costs (``format_only_ratio``).

The extra baseline is fluent-logger's asynchronous handler (``fluent.asynchandler.FluentHandler``)
with its circular queue and its own ``FluentRecordFormatter`` (its documented setup), sending to a
black hole; the target asks DISHandler to cost less than it as well.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import logging.handlers
import queue
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from benchmarks.baselines import FormatOnlyHandler
from benchmarks.common import (
    MESSAGE,
    QUEUE_BYTES,
    USER,
    BlackHole,
    Sizes,
    isolated_logger,
    make_json_formatter,
    result,
    summary,
)
from benchmarks.emulator_host import EmulatorProcess

STREAM = "bench-p1"


def _time_round(logger: logging.Logger, calls: int) -> Tuple[float, float]:
    info = logger.info
    cpu, wall = time.thread_time_ns(), time.perf_counter_ns()
    for i in range(calls):
        info(MESSAGE, i, USER)
    return (time.thread_time_ns() - cpu) / calls, (time.perf_counter_ns() - wall) / calls


def measure(
    handlers: Dict[str, logging.Handler],
    prepare: Dict[str, Callable[[], Optional[logging.Handler]]],
    rounds: int,
    calls: int,
) -> Dict[str, Dict[str, List[float]]]:
    """Time interleaved rounds of ``logger.info`` for each handler.

    Args:
        handlers: contender name -> handler (each gets its own logger).
        prepare: contender name -> callable run untimed before each of its rounds (drain, flush);
            when it returns a handler, that handler replaces the contender's for the round.
        rounds: timed rounds per contender, after one untimed warm-up round each.
        calls: calls per round.

    Returns:
        Clock (``"cpu"``, ``"wall"``) -> contender name -> nanoseconds per call, one per round.
    """
    names = list(handlers)
    loggers = {name: isolated_logger(f"bench.p1.{name}", h) for name, h in handlers.items()}
    per_call: Dict[str, Dict[str, List[float]]] = {
        clock: {name: [] for name in names} for clock in ("cpu", "wall")
    }
    for r in range(rounds + 1):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            fresh = prepare[name]() if name in prepare else None
            if fresh is not None:
                loggers[name].handlers[:] = [fresh]
            gc.collect()
            gc.disable()  # as timeit does: a queue of LogRecords would otherwise pay for GC scans
            try:
                cpu, wall = _time_round(loggers[name], calls)
            finally:
                gc.enable()
            if r > 0:
                per_call["cpu"][name].append(cpu)
                per_call["wall"][name].append(wall)
    for logger in loggers.values():
        logger.handlers.clear()
    return per_call


def _clock_rows(per_call: Dict[str, Dict[str, List[float]]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for clock, values in per_call.items():
        null = values["null"]
        diffs = {
            name: [v - n for v, n in zip(vals, null)]
            for name, vals in values.items()
            if name != "null"
        }
        out[clock] = {
            "ns_per_call": {name: summary(v) for name, v in values.items()},
            "added_ns_per_call": {name: summary(d) for name, d in diffs.items()},
        }
    return out


def run(sizes: Sizes, emu: EmulatorProcess, handler_cls: Any) -> Dict[str, Any]:
    """Measure P1 and return its results.json row.

    Args:
        sizes: run sizes (``p1_rounds``, ``p1_calls``).
        emu: the emulator process the live DISHandler sends to.
        handler_cls: ``DISHandler``, or None to measure only the baselines.

    Returns:
        The P1 row.
    """
    q: queue.Queue[Any] = queue.Queue(-1)
    handlers: Dict[str, logging.Handler] = {
        "null": logging.NullHandler(),
        "format_only": FormatOnlyHandler(),
        "queue": logging.handlers.QueueHandler(q),
    }
    fluent_hole = BlackHole()
    fluent = _fluent_handler(fluent_hole.port)
    if fluent is not None:
        handlers["fluent"] = fluent

    def drain() -> None:
        while True:
            try:
                q.get_nowait()
            except queue.Empty:
                return

    prepare: Dict[str, Callable[[], Optional[logging.Handler]]] = {"queue": drain}
    row = {
        "figure": "caller cost of logger.info",
        "unit": "ns/call added",
        "baseline_name": "QueueHandler, same JSONFormatter (caller thread CPU)",
        "target": "<= 0.3 (and below fluent-logger async)",
    }
    with contextlib.ExitStack() as stack:
        stack.callback(fluent_hole.__exit__)
        if handler_cls is not None:
            hole = stack.enter_context(BlackHole())
            parked: List[logging.Handler] = []

            def park() -> logging.Handler:
                # A fresh handler per round starts with an empty buffer, as the drained queue does.
                if parked:
                    parked[-1].close()
                handler = handler_cls(
                    stream_name=STREAM,
                    endpoint=f"http://127.0.0.1:{hole.port}",
                    project_id=emu.project_id,
                    token="bench-token",
                    max_queue_records=sizes.p1_calls + 1_000,
                    max_queue_bytes=QUEUE_BYTES,
                    close_timeout=0.1,
                    diagnostics=lambda message: None,
                )
                handler.setFormatter(make_json_formatter())
                parked.append(handler)
                return handler

            stack.callback(lambda: parked[-1].close())
            emu.create_stream(STREAM, partitions=2)
            stack.callback(emu.delete_stream, STREAM)
            live = handler_cls(
                stream_name=STREAM, endpoint=emu.url, project_id=emu.project_id, token=emu.token()
            )

            def empty_live() -> None:
                live.flush(timeout=60.0)

            handlers.update(dis=park(), dis_live=live)
            prepare.update(dis=park, dis_live=empty_live)
        for name, h in handlers.items():
            if name != "fluent":  # fluent keeps its own formatter (a dict for msgpack)
                h.setFormatter(make_json_formatter())
            if name != "dis":
                stack.callback(h.close)
        per_call = measure(handlers, prepare, sizes.p1_rounds, sizes.p1_calls)
    details: Dict[str, Any] = {"calls_per_round": sizes.p1_calls, "rounds": sizes.p1_rounds}
    details.update(_clock_rows(per_call))
    added = {name: v["median"] for name, v in details["cpu"]["added_ns_per_call"].items()}
    wall = {name: v["median"] for name, v in details["wall"]["added_ns_per_call"].items()}
    baseline = added["queue"]
    stats = live.stats
    details["live_stats"] = {"emitted": stats.emitted, "sent": stats.sent, "dropped": stats.dropped}
    live_ratio = wall["dis_live"] / wall["queue"]
    details["live_ratio"] = live_ratio
    details["wall_ratio"] = wall["dis"] / wall["queue"]
    details["format_only_ratio"] = added["format_only"] / baseline
    fastest = {name: v["min"] for name, v in details["cpu"]["ns_per_call"].items()}
    details["fastest_round_ratio"] = (fastest["dis"] - fastest["null"]) / (
        fastest["queue"] - fastest["null"]
    )
    ratio = added["dis"] / baseline
    fluent_added = added.get("fluent")
    below_fluent = True
    note = f"flusher sending during the round, wall clock (GIL shared): ratio {live_ratio:.2f}"
    if fluent_added is not None:
        details["fluent_added_ns"] = fluent_added
        details["ratio_vs_fluent"] = added["dis"] / fluent_added
        below_fluent = added["dis"] < fluent_added
        note += f"; vs fluent-logger async: {added['dis'] / fluent_added:.2f}"
    else:
        note += "; fluent-logger not installed (pip install -e '.[bench]')"
    return result(
        "P1",
        **row,
        value=added["dis"],
        baseline=baseline,
        ratio=ratio,
        met=ratio <= 0.3 and below_fluent,
        details=details,
        note=note,
    )


def _fluent_handler(port: int) -> Optional[logging.Handler]:
    """fluent-logger's asynchronous handler with a circular queue, or None when not installed."""
    try:
        from fluent import asynchandler, handler
    except ImportError:
        return None
    fluent: logging.Handler = asynchandler.FluentHandler(
        "bench.p1", host="127.0.0.1", port=port, queue_circular=True, timeout=0.1
    )
    fluent.setFormatter(handler.FluentRecordFormatter())
    return fluent
