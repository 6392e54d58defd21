"""Shared pieces of the benchmarks: sizes, statistics, result rows, formatter, unreachable ports."""

from __future__ import annotations

import json
import logging
import socket
import statistics
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from benchmarks.emulator_host import REPO_ROOT, child_env

#: The one formatter every contender uses, so each formats the same bytes.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: ``max_queue_bytes`` for the handlers that must hold a whole burst (P1-P3, P7, S1, S2): the
#: figures are about speed, and a captured record takes about 700 bytes of the default 64 MiB.
QUEUE_BYTES = 2**31 - 1

#: The log call every benchmark makes: ``logger.info(MESSAGE, i, USER)``.
MESSAGE = "handled request %s for user %s"
USER = "alice@example.com"


#: The plain formatter of P2 (as the issue states the target): the payload is the message alone.
MESSAGE_FORMAT = "%(message)s"


def make_formatter() -> logging.Formatter:
    """Return a fresh instance of the shared plain-text formatter."""
    return logging.Formatter(LOG_FORMAT)


def make_message_formatter() -> logging.Formatter:
    """Return a fresh ``%(message)s`` formatter (P2)."""
    return logging.Formatter(MESSAGE_FORMAT)


def make_json_formatter() -> logging.Formatter:
    """Return a fresh ``dis_logging.JSONFormatter`` with defaults (P1, P3, scaling)."""
    from dis_logging.formatting import JSONFormatter

    return JSONFormatter()


def isolated_logger(name: str, handler: logging.Handler) -> logging.Logger:
    """Return logger ``name`` at INFO with ``handler`` as its only handler and no propagation.

    Args:
        name: logger name; use a ``bench.`` prefix so nothing else writes to it.
        handler: the handler under test.

    Returns:
        The configured logger.
    """
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


@dataclass(frozen=True)
class Sizes:
    """How much work each benchmark does.

    Attributes:
        p1_rounds: timed rounds per contender (interleaved).
        p1_calls: ``logger.info`` calls per round.
        p2_records: records per throughput run of the batching contenders.
        p2_naive_records: records for the one-request-per-record handler.
        p3_records: records per CPU run.
        runs: runs per contender in P2, P3 and P7 (alternating; the best run counts).
        p4_records: records logged while DIS is unreachable.
        p4_payload_bytes: size of the argument that pads each P4 record.
        p5_seconds: length of the 100 records/s latency run.
        p6_close_timeout: close_timeout given to the handler in P6, in seconds.
        p7_records: records per run over the 50 ms link.
        p8_records: records logged per phase of the spill run (DIS down, spool on).
        scale_records: records per thread-count run of the scaling benchmark (S1), all threads
            together.
        size_records: records per record-size run (S2).
        memory_records: records queued to measure memory per queued record (M1).
    """

    p1_rounds: int
    p1_calls: int
    p2_records: int
    p2_naive_records: int
    p3_records: int
    runs: int
    p4_records: int
    p4_payload_bytes: int
    p5_seconds: float
    p6_close_timeout: float
    p7_records: int
    p8_records: int
    scale_records: int
    size_records: int
    memory_records: int

    @classmethod
    def for_run(cls, quick: bool, scale: float = 1.0) -> Sizes:
        """Return the sizes of a full or ``--quick`` run, with counts multiplied by ``scale``.

        Args:
            quick: the short profile used for a first look and by the smoke test.
            scale: factor on every record count and on the P5 duration (default 1.0); counts keep a
                small floor, and below 1.0 P1 runs only 3 rounds (the smoke test's setting).

        Returns:
            The sizes.
        """
        base = _QUICK if quick else _FULL

        def n(value: int, floor: int) -> int:
            return max(floor, int(value * scale))

        return cls(
            p1_rounds=base.p1_rounds if scale >= 1 else 3,
            p1_calls=n(base.p1_calls, 200),
            p2_records=n(base.p2_records, 1_000),
            p2_naive_records=n(base.p2_naive_records, 50),
            p3_records=n(base.p3_records, 1_000),
            runs=base.runs,
            p4_records=n(base.p4_records, 2_000),
            p4_payload_bytes=base.p4_payload_bytes,
            p5_seconds=max(1.5, base.p5_seconds * scale),
            p6_close_timeout=base.p6_close_timeout,
            p7_records=n(base.p7_records, 1_000),
            p8_records=n(base.p8_records, 2_000),
            scale_records=n(base.scale_records, 1_600),
            size_records=n(base.size_records, 500),
            memory_records=n(base.memory_records, 2_000),
        )


_FULL = Sizes(
    p1_rounds=25,
    p1_calls=20_000,
    p2_records=200_000,
    p2_naive_records=2_000,
    p3_records=100_000,
    runs=3,
    p4_records=1_000_000,
    p4_payload_bytes=1_024,
    p5_seconds=30.0,
    p6_close_timeout=5.0,
    p7_records=50_000,
    p8_records=200_000,
    scale_records=96_000,
    size_records=20_000,
    memory_records=50_000,
)
_QUICK = Sizes(
    p1_rounds=9,
    p1_calls=5_000,
    p2_records=20_000,
    p2_naive_records=300,
    p3_records=10_000,
    runs=1,
    p4_records=50_000,
    p4_payload_bytes=1_024,
    p5_seconds=5.0,
    p6_close_timeout=1.0,
    p7_records=20_000,
    p8_records=50_000,
    scale_records=16_000,
    size_records=4_000,
    memory_records=20_000,
)


def percentile(values: Sequence[float], q: float) -> float:
    """Return the ``q``-th percentile (0-100) of ``values`` by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary(values: Sequence[float]) -> Dict[str, float]:
    """Return median, p10, p90, min and the count of ``values`` (for spreads in results.json)."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "p10": percentile(values, 10),
        "p90": percentile(values, 90),
        "n": float(len(values)),
    }


def result(
    pid: str,
    figure: str,
    *,
    value: Optional[float],
    unit: str,
    baseline: Optional[float],
    baseline_name: str,
    ratio: Optional[float],
    target: str,
    met: Optional[bool],
    details: Optional[Dict[str, Any]] = None,
    status: str = "ok",
    note: str = "",
) -> Dict[str, Any]:
    """Build one row of results.json.

    Args:
        pid: target id, ``"P1"`` .. ``"P7"``.
        figure: what is measured, in a few words.
        value: the library's figure, in ``unit``; None when it could not be measured.
        unit: unit of ``value`` and ``baseline``.
        baseline: the baseline's figure from the same run, in ``unit``.
        baseline_name: what the baseline is.
        ratio: the ratio the target is stated on.
        target: the target as text, e.g. ``"<= 0.5"``.
        met: whether the target is met; None when not measured.
        details: every other measured number, for the README and the chart.
        status: ``"ok"`` or ``"error"``.
        note: why a row failed, or a caveat.

    Returns:
        The row as a JSON-ready dict.
    """
    return {
        "id": pid,
        "figure": figure,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "baseline_name": baseline_name,
        "ratio": ratio,
        "target": target,
        "met": met,
        "status": status,
        "note": note,
        "details": details or {},
    }


def load_handler_class() -> Any:
    """Return ``dis_logging.handler.DISHandler`` (imported only when a benchmark runs)."""
    from dis_logging.handler import DISHandler

    return DISHandler


def unused_port() -> int:
    """Return a loopback TCP port that nothing listens on (connections to it are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BlackHole:
    """A loopback port that accepts TCP connections but never reads or answers.

    Requests sent there hang until the client's own timeout: the worst kind of unreachable.
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = int(self._sock.getsockname()[1])

    def __enter__(self) -> BlackHole:
        return self

    def __exit__(self, *exc: object) -> None:
        self._sock.close()


def run_worker(module: str, args: Dict[str, Any], timeout: float) -> Dict[str, Any]:
    """Run ``python -m <module>`` in a fresh interpreter and return the JSON it prints.

    The worker reads its arguments as JSON from stdin and prints exactly one JSON object as its last
    stdout line; its stderr is kept for the report (the handler's diagnostics go there).

    Args:
        module: dotted module name whose ``__main__`` block calls its ``worker``.
        args: JSON-serialisable arguments, sent on stdin.
        timeout: seconds before the worker is killed.

    Returns:
        The worker's reply, with ``"stderr_lines"`` (count) and ``"stderr_head"`` (first 5 lines)
        added.

    Raises:
        RuntimeError: the worker failed or printed no JSON.
    """
    proc = subprocess.run(
        [sys.executable, "-m", module],
        input=json.dumps(args),  # on stdin, not argv: the AK/SK stay out of the process list
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
        cwd=str(REPO_ROOT),
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"worker {module} exited with {proc.returncode}:\n{tail}")
    reply: Dict[str, Any] = json.loads(lines[-1])
    err_lines: List[str] = proc.stderr.splitlines()
    reply["stderr_lines"] = len(err_lines)
    reply["stderr_head"] = err_lines[:5]
    return reply
