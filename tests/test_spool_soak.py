"""Soak (``-m slow``): processes logging into one spool_dir are SIGKILLed at random moments while
DIS misbehaves; a last process adopts what they left. Every record is counted by its id."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from dis_logging.emulator import DISEmulator
from dis_logging.handler import DISHandler

#: flush_interval of the children, and the grace on top of it for scheduling delays (s).
INTERVAL = 0.2
GRACE = 1.0

CHILD = """
    import logging, sys, time
    from dis_logging.handler import DISHandler

    url, project, ak, sk, stream, spool_dir, tag = sys.argv[1:8]
    handler = DISHandler(stream_name=stream, endpoint=url, project_id=project, ak=ak, sk=sk,
                         spool_dir=spool_dir, spool_mode="always", flush_interval=0.2,
                         request_timeout=1.0, initial_backoff=0.05, max_backoff=0.3,
                         max_queue_records=500, diagnostics=lambda line: None)
    logger = logging.getLogger("soak")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    start = time.monotonic()
    n = 0
    while True:
        logger.info("id=%s-%d", tag, n)
        n += 1
        if n % 50 == 0:
            print(n, time.monotonic(), flush=True)      # progress: n records logged by then
            pause = start + n / 4000 - time.monotonic()  # about 4,000 records/s
            if pause > 0:
                time.sleep(pause)
"""


def run_and_kill(emu: DISEmulator, stream: str, spool_dir: Path, tag: str, life: float) -> int:
    """Run one child for ``life`` seconds after its first record, SIGKILL it, and return the
    highest record number logged more than INTERVAL + GRACE before the kill (-1 if none)."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(CHILD),
            emu.url,
            emu.project_id,
            emu.ak,
            emu.sk,
            stream,
            str(spool_dir),
            tag,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    progress: List[Tuple[int, float]] = []
    started = threading.Event()

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            count, at = line.split()
            progress.append((int(count), float(at)))
            started.set()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert started.wait(60), "the child never logged"
        time.sleep(life)
        killed_at = time.monotonic()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        reader.join(30)
        if child.stdout is not None:
            child.stdout.close()
    safe = [count - 1 for count, at in progress if at < killed_at - INTERVAL - GRACE]
    return max(safe, default=-1)


@pytest.mark.slow
def test_random_kills_under_faults_lose_nothing_that_reached_disk(emulator, stream, tmp_path):
    """12 children, each killed 1.3-3 s into its run (some while adopting the ones before),
    under rotating faults (5xx, per-record throttling, slow and dropped replies, expired tokens,
    a full outage): everything logged before the last flush_interval (plus a grace) reaches
    DIS, and duplicates stay within one batch per kill."""
    rnd = random.Random(20261206)
    faults = [
        lambda: None,
        lambda: emulator.fail_rate(0.5),
        lambda: emulator.fail_records(fraction=0.2, seed=rnd.randrange(1000)),
        lambda: emulator.set_delay(0.3),
        lambda: emulator.drop_connections(3),
        emulator.expire_tokens,
        lambda: emulator.fail_rate(1.0),
    ]
    must: Dict[str, int] = {}
    kills = 12
    for index in range(kills):
        emulator.clear_faults()
        rnd.choice(faults)()
        tag = f"c{index}"
        must[tag] = run_and_kill(emulator, stream, tmp_path, tag, rnd.uniform(1.3, 3.0))
    emulator.clear_faults()
    last = DISHandler(
        stream_name=stream,
        endpoint=emulator.url,
        project_id=emulator.project_id,
        ak=emulator.ak,
        sk=emulator.sk,
        spool_dir=str(tmp_path),
        flush_interval=0.2,
        diagnostics=lambda line: None,
    )
    try:
        deadline = time.monotonic() + 120
        while not (last.flush(timeout=5) and last.stats.spooled == 0):
            assert time.monotonic() < deadline, last.stats
    finally:
        last.close()
    stored: Counter[Tuple[str, int]] = Counter()
    for record in emulator.records(stream):
        found = re.search(rb"id=(c\d+)-(\d+)", record.data)
        if found:
            stored[(found.group(1).decode(), int(found.group(2)))] += 1
    missing = [
        (tag, n) for tag, safe in must.items() for n in range(safe + 1) if not stored[(tag, n)]
    ]
    assert [] == missing[:10], f"{len(missing)} missing"
    assert sum(must.values()) > kills * 100  # the children did log
    duplicates = sum(count - 1 for count in stored.values())
    assert duplicates <= 500 * kills
    assert [] == sorted(p.name for p in tmp_path.glob("dis-spool-*.sqlite"))
