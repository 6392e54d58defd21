"""The spool on a real full disk: acknowledgements it cannot delete are never turned into resends.

These tests mount a small tmpfs (root only, see ``small_fs``) and fill it with a file until ENOSPC.
Handler-level full-disk cases are in test_spool_e2e.py.
"""

from __future__ import annotations

from typing import List

import pytest

import dis_logging.spool as spool_module
from dis_logging.spool import Spool


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
