"""Cost of the OpenTelemetry trace-id lookup in ``JSONFormatter.format``, per record.

Four states are timed, interleaved round by round (the order rotates, the garbage collector is
off during a round) on the calling thread's CPU clock:

- ``floor``: the lookup's caller-fields hook unregistered (what formatting costs without the
  feature);
- ``no_span``: the real lookup, opentelemetry-api installed, no span current;
- ``in_span``: the real lookup inside a span of the OpenTelemetry SDK's tracer;
- ``lookup_no_span``/``lookup_in_span``: the lookup alone (``dis_logging._otel.trace_fields``),
  without formatting; its ``ratio`` is its share of the floor's ``format`` call;
- ``attributes``: the record carries ``otelTraceID``/``otelSpanID`` as the logging
  instrumentation sets them; compared with ``attributes_floor``, the same record with the lookup
  off (those attributes are ``extra`` fields either way).

The figure is the median over rounds of nanoseconds per ``format`` call; ``added_ns`` is the
median minus its floor's. ``in_span`` and ``attributes`` also write two more fields, so part of
their cost is encoding 60 more bytes, not the lookup. Run::

    python -m benchmarks.otel_cost [--rounds 15] [--calls 20000] [--out results.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from opentelemetry.sdk.trace import TracerProvider

from dis_logging import _otel, formatting
from dis_logging.formatting import JSONFormatter

RESULT_FILE = Path(__file__).resolve().parent / "results" / "otel.json"


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "bench.otel", logging.INFO, __file__, 1, "handled request %s for user %s", (7, "a"), None
    )
    record.__dict__.update(extra)
    return record


def _time(
    format_: Callable[[logging.LogRecord], str], record: logging.LogRecord, calls: int
) -> float:
    gc.disable()
    try:
        start = time.thread_time_ns()
        for _ in range(calls):
            format_(record)
        return (time.thread_time_ns() - start) / calls
    finally:
        gc.enable()


def measure(rounds: int, calls: int) -> Dict[str, Dict[str, float]]:
    """Return per-state medians and costs above the floor, in nanoseconds per record."""
    formatter = JSONFormatter()
    tracer = TracerProvider().get_tracer("bench")
    plain = _record()
    tagged = _record(otelTraceID="0af7651916cd43dd8448eb211c80319c", otelSpanID="b7ad6b7169203331")
    hooks = formatting._CALLER_FIELDS_HOOKS

    def without_lookup(record: logging.LogRecord) -> Callable[[], float]:
        def run() -> float:
            saved = hooks[:]
            hooks[:] = [hook for hook in saved if hook is not _otel.trace_fields]  # the floor
            try:
                return _time(formatter.format, record, calls)
            finally:
                hooks[:] = saved

        return run

    def run_in_span_lookup() -> float:
        with tracer.start_as_current_span("bench"):
            return _time(_otel.trace_fields, plain, calls)

    def run_in_span() -> float:
        with tracer.start_as_current_span("bench"):
            return _time(formatter.format, plain, calls)

    states: Dict[str, Callable[[], float]] = {
        "floor": without_lookup(plain),
        "no_span": lambda: _time(formatter.format, plain, calls),
        "in_span": run_in_span,
        "attributes_floor": without_lookup(tagged),
        "attributes": lambda: _time(formatter.format, tagged, calls),
        "lookup_no_span": lambda: _time(_otel.trace_fields, plain, calls),
        "lookup_in_span": lambda: run_in_span_lookup(),
    }
    samples: Dict[str, List[float]] = {name: [] for name in states}
    names = list(states)
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            samples[name].append(states[name]())
    medians = {name: statistics.median(values) for name, values in samples.items()}
    rows: Dict[str, Dict[str, float]] = {}
    for name, value in medians.items():
        floor = medians["attributes_floor" if "attributes" in name else "floor"]
        # The lookup alone is all added cost; its ratio is its share of a plain format call.
        added = value if name.startswith("lookup") else value - floor
        rows[name] = {
            "median_ns": round(value, 1),
            "added_ns": round(added, 1),
            "ratio": round(value / floor, 3),
        }
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark, print a table and write the JSON results.

    Args:
        argv: command-line arguments; default ``None`` reads ``sys.argv``.

    Returns:
        0.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=RESULT_FILE)
    args = parser.parse_args(argv)
    assert _otel.HAS_OPENTELEMETRY, "install opentelemetry-api and -sdk (extra 'test')"
    figures = measure(args.rounds, args.calls)
    print(f"{'state':<18}{'ns/record':>10}{'added ns':>10}{'ratio':>8}")
    for name, row in figures.items():
        print(f"{name:<18}{row['median_ns']:>10.0f}{row['added_ns']:>10.0f}{row['ratio']:>8.3f}")
    document = {
        "benchmark": "otel_cost",
        "python": sys.version.split()[0],
        "rounds": args.rounds,
        "calls": args.calls,
        "results": figures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
