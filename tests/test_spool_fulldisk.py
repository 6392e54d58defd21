"""A full disk under the spool: delivery goes on, acknowledgements are never turned into resends.

These tests mount a small tmpfs (root only) and fill it with a real file until ENOSPC.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any, Callable, Iterator, List

import pytest

import dis_logging.spool as spool_module
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
        "diagnostics": lambda _line: None,
    }
    settings.update(kwargs)
    return DISHandler(**settings)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll a cheap predicate every 10 ms until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.01)


def seqs(emu: DISEmulator, stream: str) -> List[int]:
    """Sequence numbers (``seq=N``) of the stored records, duplicates kept."""
    out = []
    for record in emu.records(stream):
        text = record.data.decode("utf-8", "replace")
        at = text.find("seq=")
        if at >= 0:
            digits = text[at + 4 :].split(" ", 1)[0].rstrip('",')
            out.append(int(digits))
    return out


@pytest.fixture
def attach() -> Iterator[Callable[[DISHandler], logging.Logger]]:
    """Attach handlers to a private logger; close them after the test."""
    logger = logging.getLogger("tests.spool_fulldisk")
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


@pytest.fixture
def reports() -> List[str]:
    return []


class TestSpoolOnFullDisk:
    def test_failed_ack_is_remembered_then_saved(self, small_fs, reports, monkeypatch):
        """An ack that cannot delete on a full disk is remembered, then saved once space is back."""
        monkeypatch.setattr(spool_module, "UNSAVED_RETRY_INTERVAL", 0.0)
        s = Spool(str(small_fs.path / "spool"), 10_000_000, report=reports.append)
        try:
            s.put([(b"%06d" % i + b"." * 994, None) for i in range(200)])
            ids, _ = s.read(100, 10_000_000)
            filler = small_fs.fill()
            s.ack(ids)
            assert any("spool ack failed" in line for line in reports), reports
            assert (100, 100) == (s.pending_records, s.unsaved_acks)
            again, rest = s.read(500, 10_000_000)
            assert set(again).isdisjoint(ids)
            assert [e[0][:6] for e in rest] == [b"%06d" % i for i in range(100, 200)]
            filler.unlink()
            s.read(1, 1000)  # any later call retries the delete
            assert 0 == s.unsaved_acks
            path = s.path
        finally:
            s.close()
        reopened = Spool(str(small_fs.path / "spool"), 10_000_000)
        try:
            assert path == reopened.path
            assert 100 == reopened.pending_records
        finally:
            reopened.close()

    def test_close_on_full_disk_keeps_only_unacknowledged(self, small_fs, monkeypatch):
        """Remembered acks that still cannot be saved at close leave a file whose rows are all
        unacknowledged ones or (at worst) acknowledged ones; none is lost."""
        monkeypatch.setattr(spool_module, "UNSAVED_RETRY_INTERVAL", 0.0)
        s = Spool(str(small_fs.path / "spool"), 10_000_000, report=lambda _m: None)
        s.put([(b"%06d" % i, None) for i in range(50)])
        ids, _ = s.read(50, 10_000_000)
        filler = small_fs.fill()
        s.ack(ids)
        assert 0 == s.pending_records
        s.close()  # nothing pending: the file goes, acknowledged rows with it
        filler.unlink()
        assert [] == list((small_fs.path / "spool").glob("dis-spool-*.sqlite"))


class TestHandlerOnFullDisk:
    def test_disk_fills_after_spooling_no_duplicates(self, emulator, stream, attach, small_fs):
        """Records spooled in an outage reach DIS exactly once when the disk has filled since."""
        lines: List[str] = []
        handler = make_handler(
            emulator, stream, spool_dir=str(small_fs.path / "spool"), diagnostics=lines.append
        )
        logger = attach(handler)
        emulator.stop()
        logger.info("seq=%d %s", 0, PAD)
        wait_until(lambda: handler.stats.last_error is not None, what="a failed send")
        for seq in range(1, 1001):
            logger.info("seq=%d %s", seq, PAD)
        wait_until(lambda: handler.stats.spooled == 1001, what="1001 records on disk")
        filler = small_fs.fill()
        emulator.start()
        assert handler.flush(timeout=30)
        stored = seqs(emulator, stream)
        assert list(range(1001)) == sorted(stored)
        assert 1 == Counter(stored).most_common(1)[0][1]
        assert any("spool ack failed" in line for line in lines), lines
        stats = handler.stats
        assert (1001, 0, 0, 0) == (stats.sent, stats.dropped, stats.queued, stats.spooled)
        logger.info("seq=%d %s", 1001, PAD)
        assert handler.flush(timeout=10)
        assert 1002 == len(seqs(emulator, stream))  # still one copy of each: no resend loop
        filler.unlink()
        handler.close()
        assert 1002 == len(seqs(emulator, stream))

    def test_always_mode_on_a_disk_full_from_the_start(self, emulator, stream, attach, small_fs):
        """spool_mode="always" with no room for a spool file sends from memory: nothing lost."""
        directory = small_fs.path / "spool"
        directory.mkdir(mode=0o700)
        filler = small_fs.fill()
        handler = make_handler(
            emulator, stream, spool_dir=str(directory), spool_mode="always", report_interval=60
        )
        logger = attach(handler)
        for seq in range(1001):
            logger.info("seq=%d %s", seq, PAD)
        assert handler.flush(timeout=30)
        stored = seqs(emulator, stream)
        assert list(range(1001)) == sorted(stored)
        stats = handler.stats
        assert (1001, 0) == (stats.sent, stats.dropped)
        filler.unlink()
