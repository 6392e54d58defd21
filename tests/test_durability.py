"""Durability end to end: outages with and without a spool, SIGKILL and restart, spool bounds."""

from __future__ import annotations

import logging
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest

from dis_logging.emulator import DISEmulator
from dis_logging.handler import DISHandler
from dis_logging.spool import Spool

PAD = "p" * 150


def make_handler(emu: DISEmulator, stream: str, **kwargs: Any) -> DISHandler:
    settings: dict[str, Any] = {
        "stream_name": stream,
        "endpoint": emu.url,
        "project_id": emu.project_id,
        "ak": emu.ak,
        "sk": emu.sk,
        "flush_interval": 0.05,
        "request_timeout": 1.0,
        "initial_backoff": 0.05,
        "max_backoff": 0.2,
        "close_timeout": 2.0,
    }
    settings.update(kwargs)
    return DISHandler(**settings)


@pytest.fixture
def attach() -> Iterator[Callable[[DISHandler], logging.Logger]]:
    """Attach handlers to a private logger; close them after the test."""
    logger = logging.getLogger("tests.durability")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    attached: List[DISHandler] = []

    def add(handler: DISHandler) -> logging.Logger:
        attached.append(handler)
        logger.addHandler(handler)
        return logger

    try:
        yield add
    finally:
        for handler in attached:
            logger.removeHandler(handler)
            handler.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll a cheap predicate every 10 ms until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.01)


def seqs(emu: DISEmulator, stream: str, marker: str = "seq=") -> List[int]:
    """Sequence numbers of stored records, in stored order (duplicates kept)."""
    out = []
    for record in emu.records(stream):
        text = record.data.decode("utf-8", "replace")
        at = text.find(marker)
        if at >= 0:
            digits = ""
            for ch in text[at + len(marker) :]:
                if not ch.isdigit():
                    break
                digits += ch
            out.append(int(digits))
    return out


def go_down(emu: DISEmulator) -> None:
    emu.stop()  # connections are refused until start() binds the same port again


def emit_in_chunks(logger: logging.Logger, handler: DISHandler, total: int, chunk: int) -> None:
    """Emit records seq=0..total-1, letting the flusher move each chunk out of memory first."""
    for start in range(0, total, chunk):
        for seq in range(start, min(total, start + chunk)):
            logger.info("seq=%d %s", seq, PAD)
        wait_until(lambda: handler.stats.queued <= chunk, what="the buffer to drain to the spool")


class TestOutageWithoutSpool:
    def test_drops_are_bounded_and_counted(self, emulator, stream, attach):
        """Without a spool, an outage loses at most the overflow and counts every lost record."""
        handler = make_handler(emulator, stream, max_queue_records=300)
        logger = attach(handler)
        go_down(emulator)
        for seq in range(1000):
            logger.info("seq=%d %s", seq, PAD)
        wait_until(lambda: handler.stats.last_error is not None, what="a failed send")
        emulator.start()
        assert not handler.flush(timeout=20)  # records emitted before it were dropped
        stored = seqs(emulator, stream)
        stats = handler.stats
        assert (1000, 0) == (stats.emitted, stats.queued)
        assert len(set(stored)) == len(stored)
        assert 1000 == len(stored) + stats.dropped + stats.failed
        assert stats.dropped >= 1000 - 300 - 500  # at most the buffer plus one batch in flight
        assert stats.sent == len(stored)

    def test_short_outage_loses_nothing(self, emulator, stream, attach):
        """An outage shorter than the buffer's capacity loses nothing, even without a spool."""
        handler = make_handler(emulator, stream)
        logger = attach(handler)
        go_down(emulator)
        for seq in range(500):
            logger.info("seq=%d %s", seq, PAD)
        wait_until(lambda: handler.stats.last_error is not None, what="a failed send")
        emulator.start()
        assert handler.flush(timeout=20)
        assert list(range(500)) == sorted(seqs(emulator, stream))
        assert 0 == handler.stats.dropped


class TestOutageWithSpool:
    def test_nothing_lost_up_to_the_bound(self, emulator, stream, attach, tmp_path):
        """With a spool, records beyond the memory bound survive the outage and all arrive."""
        handler = make_handler(emulator, stream, max_queue_records=300, spool_dir=str(tmp_path))
        logger = attach(handler)
        go_down(emulator)
        logger.info("seq=%d %s", 0, PAD)
        wait_until(lambda: handler.stats.last_error is not None, what="a failed send")
        emit_in_chunks(logger, handler, 1500, 100)
        wait_until(lambda: handler.stats.spooled > 0, what="records in the spool")
        emulator.start()
        assert handler.flush(timeout=30)
        stored = seqs(emulator, stream)
        assert list(range(1500)) == sorted(set(stored))
        assert (0, 0) == (handler.stats.dropped, handler.stats.spooled)

    def test_spool_bound_counts_drops(self, emulator, stream, attach, tmp_path):
        """A full spool and a full buffer drop records, and stored plus dropped equals emitted."""
        handler = make_handler(
            emulator,
            stream,
            max_queue_records=50,
            spool_dir=str(tmp_path),
            spool_max_bytes=20_000,
        )
        logger = attach(handler)
        go_down(emulator)
        logger.info("seq=%d %s", 0, PAD)
        wait_until(lambda: handler.stats.last_error is not None, what="a failed send")
        for seq in range(1, 600):
            logger.info("seq=%d %s", seq, PAD)
        wait_until(lambda: handler.stats.dropped > 0, what="drops")
        spooled_bytes = max_spool_bytes(tmp_path)
        emulator.start()
        # flush() says False when records it covers were dropped while it ran (the spool may
        # still be full then); what matters is that nothing is left and every record is counted.
        handler.flush(timeout=30)
        stored = seqs(emulator, stream)
        stats = handler.stats
        assert (0, 0) == (stats.queued, stats.spooled)
        assert len(set(stored)) == len(stored)
        assert 600 == len(stored) + stats.dropped + stats.failed
        assert spooled_bytes <= 20_000

    def test_always_mode_writes_before_sending(self, emulator, stream, attach, tmp_path):
        """spool_mode="always" puts every batch on disk before sending it, and deletes it after."""
        handler = make_handler(
            emulator, stream, spool_dir=str(tmp_path), spool_mode="always", request_timeout=5.0
        )
        logger = attach(handler)
        emulator.set_delay(1.0, "PutRecords")
        for seq in range(50):
            logger.info("seq=%d %s", seq, PAD)
        wait_until(lambda: handler.stats.spooled == 50, what="all 50 records on disk")
        emulator.set_delay(0)
        started = time.monotonic()
        assert handler.flush(timeout=10)
        assert time.monotonic() - started < 5.0
        assert list(range(50)) == sorted(seqs(emulator, stream))
        assert Counter(seqs(emulator, stream)).most_common(1)[0][1] == 1
        assert 0 == handler.stats.spooled


def max_spool_bytes(directory: Path) -> int:
    """Pending payload bytes in the spool files of ``directory`` (read with a second Spool)."""
    total = 0
    for path in directory.glob("dis-spool-*.sqlite"):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            total += conn.execute("SELECT COALESCE(SUM(size), 0) FROM records").fetchone()[0]
        conn.close()
    return total


CHILD_LOGS_THEN_DIES = """
    import logging, os, signal, sys, time
    from dis_logging.handler import DISHandler

    url, project, ak, sk, stream, spool_dir, count = sys.argv[1:8]
    handler = DISHandler(stream_name=stream, endpoint=url, project_id=project, ak=ak, sk=sk,
                         spool_dir=spool_dir, flush_interval=0.05, request_timeout=0.5,
                         initial_backoff=0.05, max_backoff=0.2)
    logger = logging.getLogger("child")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    for seq in range(int(count)):
        logger.info("seq=%d before the crash", seq)
        if seq % 50 == 0:
            time.sleep(0.02)
    deadline = time.monotonic() + 20
    while handler.stats.spooled < int(count) and time.monotonic() < deadline:
        time.sleep(0.01)
    print(handler.stats.spooled, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


class TestCrashRestart:
    def test_sigkill_during_outage_then_restart(self, emulator, stream, attach, tmp_path):
        """A backlog left by a process killed in an outage is delivered by the next one."""
        go_down(emulator)
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                textwrap.dedent(CHILD_LOGS_THEN_DIES),
                emulator.url,
                emulator.project_id,
                emulator.ak,
                emulator.sk,
                stream,
                str(tmp_path),
                "300",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert -signal.SIGKILL == child.returncode, child.stderr
        assert "300" == child.stdout.strip()
        emulator.start()
        handler = make_handler(emulator, stream, spool_dir=str(tmp_path))
        logger = attach(handler)
        logger.info("seq=%d after the restart", 300)
        assert handler.flush(timeout=30)
        wait_until(lambda: len(set(seqs(emulator, stream))) >= 301, what="backlog delivered")
        assert list(range(301)) == sorted(set(seqs(emulator, stream)))
        assert 0 == handler.stats.spooled
        handler.close()
        assert [] == [p.name for p in tmp_path.glob("dis-spool-*.sqlite")]

    def test_backlog_of_dead_process_is_not_touched_by_live_one(self, tmp_path):
        """Opening a Spool never takes the file of a process that is still running."""
        live = Spool(str(tmp_path), 10_000)
        try:
            live.put([(b"mine", None)])
            code = textwrap.dedent(
                """
                import sys
                from dis_logging.spool import Spool
                s = Spool(sys.argv[1], 10_000)
                print(s.pending_records)
                s.close()
                """
            )
            out = subprocess.run(
                [sys.executable, "-c", code, str(tmp_path)],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
            assert "0" == out.stdout.strip()
            assert 1 == live.pending_records
        finally:
            live.close()
