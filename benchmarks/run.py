"""Run every benchmark (P1-P7 of DESIGN.md, P8 the spool); print a table, write results and chart.

Usage::

    python -m benchmarks                 # full run, several minutes on 2 cores
    python -m benchmarks --quick         # short run, written to benchmarks/results/quick/
    python benchmarks/run.py --quick --only P1,P6 --out /tmp/bench

A complete full run writes ``benchmarks/results/`` (the files the README shows); unless ``--out``
says otherwise, a ``--quick`` run writes ``benchmarks/results/quick/`` and a run of only some
figures (``--only``) or at another ``--scale`` writes ``benchmarks/results/partial/``, so neither
replaces them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ALL = ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "S1", "S2", "M1")
FIGURES = {
    "P1": "caller cost of logger.info",
    "P2": "delivered records/s into the emulator",
    "P3": "CPU s per 100k delivered records",
    "P4": "peak RSS growth, DIS unreachable",
    "P5": "emit-to-stored p99 at 100 records/s",
    "P6": "close() with DIS unreachable",
    "P7": "records/s over a 50 ms link",
    "P8": "records/s spilled to disk, DIS down",
    "S1": "delivered records/s, 16 threads vs 1",
    "S2": "CPU per record, 10 KB vs 100 B messages",
    "M1": "memory per queued record",
}
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
#: Where ``--quick`` writes unless ``--out`` is given: never over the committed full-run files.
QUICK_OUT = DEFAULT_OUT / "quick"
#: Where a full-size run of only some figures (``--only``) or at another ``--scale`` writes unless
#: ``--out`` is given: its results.json would lack figures, or hold other counts.
PARTIAL_OUT = DEFAULT_OUT / "partial"


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """Parse the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="short run (smaller counts, one run each)"
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply record counts and durations (default 1.0)",
    )
    parser.add_argument(
        "--only", default=",".join(ALL), help="comma-separated ids to run (default: all)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=(
            "directory for the results (default benchmarks/results/ for a complete full run, "
            "results/quick/ for --quick, results/partial/ for --only or --scale)"
        ),
    )
    parser.add_argument("--no-chart", action="store_true", help="skip chart.png")
    parser.add_argument(
        "--markdown", action="store_true", help="print the table as markdown (for the README)"
    )
    args = parser.parse_args(argv)
    args.only = [x.strip().upper() for x in args.only.split(",") if x.strip()]
    unknown = sorted(set(args.only) - set(ALL))
    if unknown:
        parser.error(f"unknown benchmark ids: {', '.join(unknown)}")
    if args.out is None:
        if args.quick:
            args.out = QUICK_OUT
        elif set(args.only) != set(ALL) or args.scale != 1.0:
            args.out = PARTIAL_OUT
        else:
            args.out = DEFAULT_OUT
    return args


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:#.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def format_table(rows: List[Dict[str, Any]]) -> str:
    """Return ``rows`` (results.json rows) as a plain-text table."""
    header = ["id", "figure", "dis-logging", "baseline", "unit", "ratio", "target", "met"]
    lines = [header]
    for row in rows:
        met = row["met"] if row["status"] == "ok" else row["status"]
        lines.append(
            [
                row["id"],
                row["figure"],
                _fmt(row["value"]),
                _fmt(row["baseline"]),
                row["unit"],
                _fmt(row["ratio"]),
                row["target"],
                _fmt(met),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def markdown_table(rows: List[Dict[str, Any]]) -> str:
    """Return ``rows`` as a markdown table for the README."""
    out = [
        "| id | figure | dis-logging | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        met = _fmt(row["met"]) if row["status"] == "ok" else row["status"]
        out.append(
            f"| {row['id']} | {row['figure']} | {_fmt(row['value'])} {row['unit']} | "
            f"{_fmt(row['baseline'])} {row['unit']}: {row['baseline_name']} | "
            f"{_fmt(row['ratio'])} | "
            f"{row['target']} | {met} |"
        )
    return "\n".join(out)


def _error_row(pid: str, exc: BaseException) -> Dict[str, Any]:
    from benchmarks.common import result

    return result(
        pid,
        FIGURES[pid],
        value=None,
        unit="",
        baseline=None,
        baseline_name="",
        ratio=None,
        target="",
        met=None,
        status="error",
        note=f"{type(exc).__name__}: {exc}",
        details={"traceback": traceback.format_exc()},
    )


def run_all(args: argparse.Namespace) -> List[Dict[str, Any]]:
    """Run the selected benchmarks and return their rows in id order."""
    from benchmarks import (
        caller_cost,
        close_time,
        cpu,
        latency,
        memory,
        scaling,
        spill,
        throughput,
    )
    from benchmarks.common import Sizes, load_handler_class
    from benchmarks.emulator_host import EmulatorProcess

    sizes = Sizes.for_run(args.quick, args.scale)
    handler_cls = load_handler_class()
    rows: Dict[str, Dict[str, Any]] = {}

    def attempt(pid: str, fn: Callable[[], Dict[str, Any]]) -> None:
        if pid not in args.only:
            return
        print(
            f"[{time.strftime('%H:%M:%S')}] {pid} {FIGURES[pid]} ...", file=sys.stderr, flush=True
        )
        start = time.monotonic()
        try:
            rows[pid] = fn()
        except Exception as exc:  # one failing benchmark must not hide the others' figures
            rows[pid] = _error_row(pid, exc)
            print(rows[pid]["details"]["traceback"], file=sys.stderr)
        rows[pid]["seconds"] = round(time.monotonic() - start, 1)

    if {"P1", "P2", "P3", "P5", "P7", "S1", "S2"} & set(args.only):
        with EmulatorProcess() as emu:
            attempt("P1", lambda: caller_cost.run(sizes, emu, handler_cls))
            attempt("P2", lambda: throughput.run_p2(sizes, emu, handler_cls))
            attempt("P3", lambda: cpu.run(sizes, emu, handler_cls))
            attempt("P5", lambda: latency.run(sizes, emu, handler_cls))
            attempt("P7", lambda: throughput.run_p7(sizes, emu, handler_cls))
            attempt("S1", lambda: scaling.run_threads(sizes, emu, handler_cls))
            attempt("S2", lambda: scaling.run_sizes(sizes, emu, handler_cls))
    attempt("P4", lambda: memory.run(sizes, handler_cls))
    attempt("P6", lambda: close_time.run(sizes, handler_cls))
    attempt("P8", lambda: spill.run(sizes))
    attempt("M1", lambda: memory.run_per_record(sizes))
    return [rows[pid] for pid in ALL if pid in rows]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the suite.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).

    Returns:
        0 when every benchmark ran (targets met or not), 1 when one raised.
    """
    args = parse_args(argv)
    started = time.time()
    rows = run_all(args)
    import dis_logging

    doc = {
        "meta": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "seconds": round(time.time() - started, 1),
            "quick": args.quick,
            "scale": args.scale,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "dis_logging": dis_logging.__version__,
            "command": " ".join(
                ["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])]
            ),
        },
        "results": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = args.out / "results.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(args.out / "results.json")
    print(markdown_table(rows) if args.markdown else format_table(rows))
    print(f"\nresults: {args.out / 'results.json'}")
    if not args.no_chart and rows:
        from benchmarks.chart import write_chart

        write_chart(rows, args.out / "chart.png", doc["meta"])
        print(f"chart:   {args.out / 'chart.png'}")
    return 1 if any(r["status"] == "error" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
