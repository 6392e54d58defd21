"""Soak test: log at a steady rate for minutes against an emulator that keeps failing, then account.

The emulator runs in a separate process (so its CPU and memory do not blur this process's figures)
and is driven through a pipe. Every few seconds the script scripts another fault: bursts of 5xx,
random per-record throttling (DIS.4303), per-partition rate limits, dropped connections, token
expiry, slow replies and short outages (the emulator stops listening, then comes back on the same
port). At the end it flushes the handler
and compares what was emitted with what the emulator stored::

    python benchmarks/soak.py                 # ten minutes at 200 records/s
    python benchmarks/soak.py --minutes 1     # a quick run
    python benchmarks/soak.py --spool-dir /tmp/soak-spool

It prints a report and writes it as JSON to ``benchmarks/results/soak.json``: emitted, stored,
duplicated, lost (and how many of the lost were counted as dropped or failed by the handler), order
violations per partition key (all, and those not explained by the random per-record failures of the
"throttle" fault, which no batching client can keep in order), handler stats, and this process's
RSS over time. The exit status is 1 when a record was lost without being counted, or when the
final flush did not complete.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing
import os
import random
import re
import sys
import time
from collections import defaultdict
from multiprocessing.connection import Connection
from typing import Any, Dict, List, Optional, Sequence, Tuple

from dis_logging.handler import DISHandler

STREAM = "soak-stream"
PARTITIONS = 4
KEYS = 16
FAULTS = ("none", "http5xx", "throttle", "ratelimit", "drop", "expire", "slow", "outage")
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "soak.json")
SEQ_RE = re.compile(rb"soak-(\d+)-")


def serve_emulator(conn: Connection) -> None:
    """Run a DISEmulator and execute the method calls that arrive on ``conn`` until "stop"."""
    from dis_logging.emulator import DISEmulator

    emu = DISEmulator(seed=0)
    emu.start()
    emu.create_stream(STREAM, partitions=PARTITIONS)
    conn.send(
        {
            "url": emu.url,
            "project_id": emu.project_id,
            "username": emu.username,
            "password": emu.password,
            "domain_name": emu.domain_name,
            "region": emu.region,
        }
    )
    while True:
        name, args, kwargs = conn.recv()
        try:
            if name == "stop":
                emu.stop()
                conn.send(("ok", None))
                return
            if name == "outage":
                emu.stop()
                time.sleep(args[0])
                emu.start()  # same port: clients see refused connections, then service again
                result: Any = None
            elif name == "stored":
                result = [(r.data, r.partition_key) for r in emu.records(STREAM)]
            elif name == "request_count":
                result = len(emu.requests)
            else:
                result = getattr(emu, name)(*args, **kwargs)
            conn.send(("ok", result))
        except Exception as exc:
            conn.send(("error", repr(exc)))


class Remote:
    """Calls methods of the emulator in the other process."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.conn.send((name, args, kwargs))
        status, result = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"emulator call {name} failed: {result}")
        return result


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux /proc; 0.0 elsewhere)."""
    with contextlib.suppress(OSError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def inject(remote: Remote, fault: str, rnd: random.Random, period: float) -> None:
    """Script one fault for the coming period (the previous one was cleared)."""
    if fault == "http5xx":
        remote.call("fail_next", count=rnd.randint(1, 6), status=rnd.choice([500, 502, 503]))
    elif fault == "throttle":
        remote.call("fail_records", "DIS.4303", fraction=0.1, seed=rnd.randint(0, 10**6))
    elif fault == "ratelimit":
        remote.call("enforce_rate_limits", True)
    elif fault == "drop":
        remote.call("drop_connections", rnd.randint(1, 3))
    elif fault == "expire":
        remote.call("expire_tokens")
    elif fault == "slow":
        remote.call("set_delay", 0.3, "PutRecords")
    elif fault == "outage":
        remote.call("outage", min(3.0, period / 2))


def order_violations(
    stored: List[Tuple[bytes, Optional[str]]], excused: Sequence[Tuple[int, int]] = ()
) -> int:
    """Count adjacent inversions of first deliveries per partition key (stored order).

    An inversion whose late record has a sequence number inside one of the ``excused`` ranges
    (inclusive) is not counted: random per-record failures (the "throttle" fault) make a record
    arrive after its successors, which no client that batches can prevent.
    """
    seen = set()
    per_key: Dict[Optional[str], List[int]] = defaultdict(list)
    for data, key in stored:
        match = SEQ_RE.search(data)
        if match is None:
            continue
        seq = int(match.group(1))
        if seq in seen:
            continue
        seen.add(seq)
        per_key[key].append(seq)
    return sum(
        sum(1 for a, b in zip(seqs, seqs[1:]) if b < a and not is_in(b, excused))
        for seqs in per_key.values()
    )


def is_in(seq: int, ranges: Sequence[Tuple[int, int]]) -> bool:
    return any(low <= seq <= high for low, high in ranges)


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Run the soak and return the report."""
    ctx = multiprocessing.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe()
    server = ctx.Process(target=serve_emulator, args=(child_conn,), name="soak-emulator")
    server.start()
    info = parent_conn.recv()
    remote = Remote(parent_conn)
    rnd = random.Random(args.seed)

    handler_kwargs: Dict[str, Any] = {
        "stream_name": STREAM,
        "project_id": info["project_id"],
        "endpoint": info["url"],
        "iam_endpoint": info["url"],
        "username": info["username"],
        "password": info["password"],
        "domain_name": info["domain_name"],
        "region": info["region"],
        "partition_key": lambda record: getattr(record, "soak_key", None),
        "flush_interval": 0.5,
        "request_timeout": 2.0,
    }
    if args.spool_dir:
        handler_kwargs["spool_dir"] = args.spool_dir
    handler = DISHandler(**handler_kwargs)
    logger = logging.getLogger("soak")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)

    duration = args.minutes * 60.0
    interval = 1.0 / args.rate
    start = time.monotonic()
    next_fault = start
    next_sample = start
    next_progress = start + 30.0
    rss: List[Tuple[float, float]] = []
    faults: Dict[str, int] = defaultdict(int)
    throttled: List[Tuple[int, int]] = []  # seq ranges exposed to random per-record failures
    throttle_from: Optional[int] = None
    emitted = 0
    pad = "x" * args.size
    try:
        while True:
            now = time.monotonic()
            if now - start >= duration:
                break
            if now >= next_sample:
                rss.append((round(now - start, 1), round(rss_mib(), 2)))
                next_sample += args.sample_interval
            if now >= next_fault:
                remote.call("clear_faults")
                if throttle_from is not None:
                    throttled.append((throttle_from, emitted))
                    throttle_from = None
                fault = rnd.choice(FAULTS)
                faults[fault] += 1
                if fault == "throttle":
                    # Records still queued from before the window are sent during it as well.
                    throttle_from = max(0, emitted - handler.stats.queued)
                inject(remote, fault, rnd, args.fault_interval)
                next_fault += args.fault_interval
            if now >= next_progress:
                print(f"  {now - start:6.0f}s emitted={emitted} stats={handler.stats}", flush=True)
                next_progress += 30.0
            logger.info("soak-%d-%s", emitted, pad, extra={"soak_key": f"k{emitted % KEYS}"})
            emitted += 1
            target = start + emitted * interval
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        remote.call("clear_faults")
        if throttle_from is not None:
            throttled.append((throttle_from, emitted))
        flush_start = time.monotonic()
        flushed = handler.flush(timeout=args.drain_timeout)
        drain_seconds = time.monotonic() - flush_start
    finally:
        logger.removeHandler(handler)
        handler.close()
    rss.append((round(time.monotonic() - start, 1), round(rss_mib(), 2)))
    stats = handler.stats
    stored = [(bytes(d), k) for d, k in remote.call("stored")]
    requests_seen = remote.call("request_count")
    remote.call("stop")
    server.join(10)

    seqs = [int(m.group(1)) for d, _ in stored if (m := SEQ_RE.search(d)) is not None]
    unique = set(seqs)
    lost = emitted - len(unique)
    counted = stats.dropped + stats.failed
    return {
        "minutes": args.minutes,
        "rate_per_s": args.rate,
        "record_bytes": args.size,
        "spool_dir": args.spool_dir,
        "emitted": emitted,
        "stored": len(seqs),
        "stored_unique": len(unique),
        "duplicated": len(seqs) - len(unique),
        "lost": lost,
        "lost_counted_by_handler": min(lost, counted),
        "lost_uncounted": max(0, lost - counted),
        "order_violations_per_key": order_violations(stored),
        "order_violations_outside_random_throttling": order_violations(stored, throttled),
        "flush_completed": flushed,
        "drain_seconds": round(drain_seconds, 2),
        "emulator_requests": requests_seen,
        "faults_injected": dict(faults),
        "stats": {
            name: getattr(stats, name)
            for name in ("emitted", "sent", "dropped", "failed", "retried", "queued", "requests")
        }
        | {"spooled": getattr(stats, "spooled", 0), "last_error": str(stats.last_error)},
        "rss_mib": {
            "start": rss[0][1],
            "max": max(v for _, v in rss),
            "end": rss[-1][1],
            "samples": rss,
        },
    }


def main(argv: Optional[List[str]] = None) -> int:
    """Parse arguments, run the soak, print and save the report; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="duration (default 10)")
    parser.add_argument("--rate", type=float, default=200.0, help="records per second (200)")
    parser.add_argument("--size", type=int, default=100, help="padding bytes per message (100)")
    parser.add_argument("--fault-interval", type=float, default=5.0, help="seconds per fault (5)")
    parser.add_argument("--sample-interval", type=float, default=5.0, help="RSS sampling (5 s)")
    parser.add_argument("--drain-timeout", type=float, default=120.0, help="final flush (120 s)")
    parser.add_argument("--spool-dir", default=None, help="give the handler a spool directory")
    parser.add_argument("--seed", type=int, default=0, help="fault schedule seed (0)")
    parser.add_argument("--output", default=RESULTS, help="where to write the JSON report")
    args = parser.parse_args(argv)

    print(
        f"soak: {args.minutes} min at {args.rate:.0f} records/s, faults every "
        f"{args.fault_interval} s",
        flush=True,
    )
    report = run(args)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as out:
        json.dump(report, out, indent=2)
        out.write("\n")
    summary = {k: v for k, v in report.items() if k != "rss_mib"}
    summary["rss_mib"] = {k: v for k, v in report["rss_mib"].items() if k != "samples"}
    print(json.dumps(summary, indent=2))
    print(f"written to {args.output}")
    ok = report["lost_uncounted"] == 0 and report["flush_completed"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
