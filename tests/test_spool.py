"""Tests of the durable on-disk spool (dis_logging.spool)."""

from __future__ import annotations

import faulthandler
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple

import pytest

from dis_logging.errors import ConfigError
from dis_logging.spool import ADOPT_STEP_ROWS, Spool

Entry = Tuple[bytes, Optional[str]]

#: Above Linux's largest pid_max (2**22), so no process ever has it.
DEAD_PID = 2**22 + 12345


def make_entries(count: int, size: int = 100, prefix: str = "r") -> List[Entry]:
    return [(f"{prefix}{i:06d}".encode().ljust(size, b"."), None) for i in range(count)]


def spool_files(directory: Path) -> List[str]:
    return sorted(p.name for p in directory.glob("dis-spool-*.sqlite"))


def run_child(code: str, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


CHILD_PUT_AND_KILL = """
    import os, signal, sys
    from dis_logging.spool import Spool
    spool = Spool(sys.argv[1], 10_000_000)
    count = int(sys.argv[2])
    spool.put([(f"child{i:06d}".encode(), "key") for i in range(count)])
    print(spool.path, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""

CHILD_PUT_IN_STEPS_AND_KILL = """
    import os, signal, sys
    from dis_logging.spool import Spool
    spool = Spool(sys.argv[1], 10_000_000)
    for step in range(30):  # 30 transactions: the write-ahead log holds 30 commit frames
        spool.put([(f"child{step:02d}-{i}".encode(), None) for i in range(10)])
    os.kill(os.getpid(), signal.SIGKILL)
"""

CHILD_LOSES_ITS_FILE = """
    import os, shutil, signal, sys
    import dis_logging.spool
    from dis_logging.spool import Spool
    dis_logging.spool.FILE_CHECK_INTERVAL = 0.0
    entries = [(f"r{i:06d}".encode().ljust(100, b"."), None) for i in range(100)]
    spool = Spool(sys.argv[1], 10**8)
    spool.put(entries)
    ids, _ = spool.read(10, 10**9)
    spool.ack(ids)                  # 90 left
    handed, _ = spool.read(5, 10**9)  # in flight while the file goes
    if sys.argv[2] == "file":
        for extra in ("", "-wal", "-shm"):
            os.unlink(spool.path + extra) if os.path.exists(spool.path + extra) else None
    else:
        shutil.rmtree(sys.argv[1])
    spool.put([(f"after{i:06d}".encode().ljust(100, b"."), None) for i in range(3)])
    spool.ack(handed)               # acknowledged in the new file: not replayed
    print(spool.pending_records, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""

CHILD_HOLD = """
    import sys
    from dis_logging.spool import Spool
    spool = Spool(sys.argv[1], 10_000_000)
    spool.put([(b"held-%d" % i, None) for i in range(5)])
    if sys.argv[2] == "closed":
        spool.close()
    print("ready", flush=True)
    sys.stdin.read()   # stay alive until the test closes our stdin
"""


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    s = Spool(str(tmp_path), 10_000_000)
    yield s
    s.close()


@pytest.fixture
def reports() -> List[str]:
    return []


@pytest.fixture
def no_faulthandler_timer() -> None:
    # A process with dump_traceback_later armed can hang when a forked child exits (see DESIGN).
    faulthandler.cancel_dump_traceback_later()
    return


def make_orphan(directory: Path, entries: List[Entry], pid: int = DEAD_PID) -> Path:
    """Leave a spool file that looks like the one of a dead process with ``pid``."""
    staging = directory / "staging"
    s = Spool(str(staging), 10_000_000)
    s.put(entries)
    source = Path(s.path)
    s.close()  # keeps the file (records pending) and checkpoints the WAL into it
    target = directory / f"dis-spool-{pid}.sqlite"
    directory.mkdir(exist_ok=True)
    os.replace(source, target)
    return target


class TestConstruction:
    @pytest.mark.parametrize("max_bytes", [0, -1, True, 1.5])
    def test_rejects_non_positive_bound(self, tmp_path, max_bytes):
        """A bound that is not a positive integer raises ConfigError naming max_bytes."""
        with pytest.raises(ConfigError, match="max_bytes"):
            Spool(str(tmp_path), max_bytes)

    def test_creates_directory_and_pid_file(self, tmp_path):
        """The spool creates its directory and a file named after the process id."""
        directory = tmp_path / "a" / "b"
        s = Spool(str(directory), 1000)
        try:
            assert [f"dis-spool-{os.getpid()}.sqlite"] == spool_files(directory)
            assert 0o600 == os.stat(s.path).st_mode & 0o777
        finally:
            s.close()

    def test_second_spool_in_one_process_uses_another_file(self, tmp_path, spool):
        """Two spools on one directory never share a file: the second one takes a suffixed name."""
        other = Spool(str(tmp_path), 1000)
        try:
            assert f"dis-spool-{os.getpid()}-1.sqlite" == Path(other.path).name
        finally:
            other.close()

    def test_repr_shows_no_records(self, spool):
        """The repr shows path and counters, never record contents."""
        spool.put([(b"secret-payload", "k")])
        assert "secret-payload" not in repr(spool)
        assert "pending_records=1" in repr(spool)


class TestRoundTrip:
    def test_entries_come_back_unchanged(self, spool):
        """Data bytes and partition keys (None, unicode, lone surrogates) round-trip exactly."""
        entries = [(b"\x00\xff binary", None), ("héllo".encode(), "ключ"), (b"x", "bad\udcff")]
        assert 3 == spool.put(entries)
        ids, got = spool.read(10, 10_000)
        assert entries == got
        assert 3 == len(ids)

    def test_read_does_not_remove(self, spool):
        """Reading twice returns the same entries until they are acknowledged."""
        spool.put(make_entries(3))
        assert spool.read(10, 10_000) == spool.read(10, 10_000)
        assert 3 == spool.pending_records

    def test_put_nothing(self, spool):
        """Putting an empty batch stores nothing and returns 0."""
        assert 0 == spool.put([])
        assert ([], []) == spool.read(10, 10_000)

    def test_batch_of_500_is_fast(self, spool):
        """A 500-record batch is stored in one transaction, well under 200 ms."""
        import time

        entries = make_entries(500, size=200)
        start = time.perf_counter()
        assert 500 == spool.put(entries)
        assert time.perf_counter() - start < 0.2


class TestOrdering:
    def test_oldest_first_across_puts(self, spool):
        """Entries come back in the order of the puts that stored them."""
        for batch in range(5):
            spool.put(make_entries(10, prefix=f"b{batch}-"))
        _, got = spool.read(1000, 10_000_000)
        expected = [e for batch in range(5) for e in make_entries(10, prefix=f"b{batch}-")]
        assert expected == got

    def test_read_limits_records_and_bytes(self, spool):
        """read stops at max_records or before max_bytes would be exceeded."""
        spool.put(make_entries(10, size=100))
        assert 4 == len(spool.read(4, 10_000)[0])
        assert 3 == len(spool.read(10, 399)[0])

    def test_oversized_first_entry_is_still_returned(self, spool):
        """The first entry is returned even when it alone exceeds max_bytes, so it cannot block."""
        spool.put([(b"x" * 500, None), (b"y", None)])
        assert [(b"x" * 500, None)] == spool.read(10, 100)[1]

    def test_after_skips_entries_in_flight(self, spool):
        """read(after=id) returns only entries newer than id, for pipelined batches."""
        spool.put(make_entries(6))
        first_ids, first = spool.read(3, 10_000)
        second_ids, second = spool.read(3, 10_000, after=first_ids[-1])
        assert make_entries(6) == first + second
        assert first_ids[-1] < second_ids[0]

    def test_ids_are_never_reused(self, spool):
        """Ids keep increasing after every entry was acknowledged."""
        spool.put(make_entries(2))
        ids, _ = spool.read(10, 10_000)
        spool.ack(ids)
        spool.put(make_entries(1))
        new_ids, _ = spool.read(10, 10_000, after=ids[-1])
        assert 1 == len(new_ids)


class TestBound:
    def test_put_stores_prefix_that_fits(self, tmp_path):
        """Entries beyond max_bytes are not stored and the return value counts the stored prefix."""
        s = Spool(str(tmp_path), 1000)
        try:
            assert 3 == s.put(make_entries(5, size=300))
            assert (3, 900) == (s.pending_records, s.pending_bytes)
            assert 0 == s.put(make_entries(1, size=101))
            assert 1 == s.put(make_entries(1, size=100))
            assert (4, 1000) == (s.pending_records, s.pending_bytes)
        finally:
            s.close()

    def test_partition_key_bytes_count(self, tmp_path):
        """The partition key's UTF-8 bytes count toward the bound."""
        s = Spool(str(tmp_path), 100)
        try:
            assert 1 == s.put([(b"x" * 50, "é" * 25), (b"y", None)])
            assert 100 == s.pending_bytes
        finally:
            s.close()

    def test_ack_makes_room(self, tmp_path):
        """Acknowledged entries free their bytes for new puts."""
        s = Spool(str(tmp_path), 1000)
        try:
            s.put(make_entries(10, size=100))
            ids, _ = s.read(4, 10_000)
            s.ack(ids)
            assert 4 == s.put(make_entries(5, size=100))
        finally:
            s.close()

    def test_exact_counts_over_many_puts(self, tmp_path):
        """Stored plus refused always equals offered, and stored bytes never exceed the bound."""
        s = Spool(str(tmp_path), 10_000)
        offered = stored = 0
        try:
            for size in [7, 70, 700, 333, 1, 999] * 10:
                batch = make_entries(5, size=size)
                offered += len(batch)
                stored += s.put(batch)
            assert stored == s.pending_records
            assert s.pending_bytes <= 10_000
            assert len(s.read(1000, 10**9)[0]) == stored
            assert offered > stored
        finally:
            s.close()


class TestAck:
    def test_ack_deletes_only_given_ids(self, spool):
        """ack removes exactly the given entries; the rest stay in order."""
        entries = make_entries(5)
        spool.put(entries)
        ids, _ = spool.read(10, 10_000)
        spool.ack([ids[1], ids[3]])
        assert [entries[0], entries[2], entries[4]] == spool.read(10, 10_000)[1]
        assert (3, 300) == (spool.pending_records, spool.pending_bytes)

    def test_ack_unknown_and_repeated_ids_is_harmless(self, spool):
        """Acknowledging unknown or already acknowledged ids changes nothing."""
        spool.put(make_entries(2))
        ids, _ = spool.read(10, 10_000)
        spool.ack([ids[0], ids[0], 99999])
        spool.ack([ids[0]])
        assert (1, 100) == (spool.pending_records, spool.pending_bytes)

    def test_ack_many_ids(self, spool):
        """ack handles more ids than SQLite allows in one statement."""
        spool.put(make_entries(2500, size=10))
        ids, _ = spool.read(2500, 10**9)
        spool.ack(ids)
        assert (0, 0) == (spool.pending_records, spool.pending_bytes)

    def test_unacked_entries_survive_reopen(self, tmp_path):
        """Entries not acknowledged before close are there again in a new spool."""
        s = Spool(str(tmp_path), 10_000)
        s.put(make_entries(5))
        ids, _ = s.read(2, 10_000)
        s.ack(ids)
        s.close()
        again = Spool(str(tmp_path), 10_000)
        try:
            assert make_entries(5)[2:] == again.read(10, 10_000)[1]
            assert (3, 300) == (again.pending_records, again.pending_bytes)
        finally:
            again.close()

    def test_empty_spool_file_is_deleted_at_close(self, tmp_path):
        """Closing a spool with nothing pending removes its files."""
        s = Spool(str(tmp_path), 10_000)
        s.put(make_entries(2))
        s.ack(s.read(10, 10_000)[0])
        s.close()
        assert [] == sorted(p.name for p in tmp_path.iterdir())

    def test_close_is_idempotent_and_final(self, spool):
        """After close, put stores nothing, read returns nothing, and close again is a no-op."""
        spool.close()
        spool.close()
        assert 0 == spool.put(make_entries(1))
        assert ([], []) == spool.read(10, 10_000)
        spool.ack([1])


class TestDirectoryGone:
    @pytest.mark.parametrize("replacement", ["nothing", "a file"])
    def test_close_after_the_directory_went_away_does_not_raise(
        self, tmp_path, reports, replacement
    ):
        """spool_dir removed (or replaced by a file) while the spool is open: close() still
        closes and releases everything (it raised NotADirectoryError from its unlink)."""
        directory = tmp_path / "spool"
        s = Spool(str(directory), 10_000, report=reports.append)
        s.put(make_entries(2))
        s.ack(s.read(10, 10_000)[0])  # nothing pending: close wants to delete the file
        directory.rename(tmp_path / "moved")
        if replacement == "a file":
            directory.write_text("not a directory")
        s.close()
        assert (0, 0) == (s.put(make_entries(1)), len(s.read(10, 10_000)[0]))
        assert [] == [r for r in reports if "Traceback" in r]

    @pytest.mark.parametrize("removed", ["file", "directory"])
    def test_pending_records_move_to_a_new_file_when_theirs_is_deleted(self, tmp_path, removed):
        """Somebody deletes our spool file (or all of spool_dir) while records wait in it: the
        spool notices within FILE_CHECK_INTERVAL and copies them to a new file, so after a kill
        the next process finds them (they went on into the deleted file and died with it)."""
        directory = tmp_path / "spool"
        child = run_child(CHILD_LOSES_ITS_FILE, str(directory), removed)
        assert -signal.SIGKILL == child.returncode, child.stderr
        assert "88" == child.stdout.strip(), child.stderr
        assert 1 == child.stderr.count("were copied to"), child.stderr
        assert 0o700 == stat.S_IMODE(directory.stat().st_mode)
        again = Spool(str(directory), 10**8)
        try:
            got = read_all(again)
            assert make_entries(100)[15:] + make_entries(3, prefix="after") == got
        finally:
            again.close()

    def test_close_right_after_the_deletion_still_keeps_the_records(self, tmp_path, reports):
        """The directory is removed just before close(), within the check interval: close looks
        once more and keeps the pending records in a new file for the next process."""
        directory = tmp_path / "spool"
        s = Spool(str(directory), 10**8, report=reports.append)
        s.put(make_entries(7))
        shutil.rmtree(directory)
        s.close()
        again = Spool(str(directory), 10**8)
        try:
            assert make_entries(7) == again.read(100, 10**9)[1]
        finally:
            again.close()


class TestCrash:
    def test_sigkilled_writer_is_adopted_and_replayed(self, tmp_path):
        """Entries of a process killed with SIGKILL are replayed, oldest first, by a new spool."""
        child = run_child(CHILD_PUT_AND_KILL, str(tmp_path), "300")
        assert -signal.SIGKILL == child.returncode, child.stderr
        assert Path(child.stdout.strip()).exists()
        s = Spool(str(tmp_path), 10_000_000)
        try:
            ids, entries = s.read(1000, 10**9)
            assert [(f"child{i:06d}".encode(), "key") for i in range(300)] == entries
            s.ack(ids)
            assert [f"dis-spool-{os.getpid()}.sqlite"] == spool_files(tmp_path)
        finally:
            s.close()

    def test_adoption_respects_bound(self, tmp_path, reports):
        """An orphan larger than the bound is adopted in oldest-first slices as room frees up."""
        make_orphan(tmp_path, make_entries(10, size=100))
        s = Spool(str(tmp_path), 450, report=reports.append)
        try:
            ids, first = s.read(100, 10**9)
            assert make_entries(10, size=100)[:4] == first
            s.ack(ids)
            assert 4 == s.adopt_orphans()
            ids, second = s.read(100, 10**9)
            s.ack(ids)
            assert 2 == s.adopt_orphans()
            assert make_entries(10, size=100)[4:] == second + s.read(100, 10**9)[1]
            assert [Path(s.path).name] == spool_files(tmp_path)
            assert any("adopted 4 records" in r for r in reports)
            assert 10 == s.adopted
        finally:
            s.close()

    def test_empty_spool_scans_for_orphans_in_read(self, tmp_path):
        """read on an empty spool picks up orphans that appeared after it opened."""
        s = Spool(str(tmp_path), 10_000, scan_interval=0.0)
        try:
            assert ([], []) == s.read(10, 10_000)
            make_orphan(tmp_path, make_entries(3))
            assert make_entries(3) == s.read(10, 10_000)[1]
        finally:
            s.close()

    def test_scans_wait_for_the_interval(self, tmp_path, spool):
        """read on an empty spool does not rescan the directory before scan_interval has passed
        (the first read looks at once)."""
        assert ([], []) == spool.read(10, 10_000)
        make_orphan(tmp_path, make_entries(3))
        assert ([], []) == spool.read(10, 10_000)


CHILD_ADOPT_A_STEP_AND_KILL = """
    import os, signal, sys
    from dis_logging.spool import Spool
    spool = Spool(sys.argv[1], 10_000_000)
    ids, _ = spool.read(500, 10**9)   # looks, plans the whole backlog, moves its first step
    spool.ack(ids)                    # delivered
    spool.put([(b"new-%d" % i, None) for i in range(3)])
    print(len(ids), spool.pending_records, spool.adopted, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


class TestStepwiseAdoption:
    """A big backlog moves in steps (one per read), so opening and writing never wait for it."""

    def test_opening_moves_nothing_and_the_first_read_starts_the_move(self, tmp_path):
        """The constructor only opens our file; the first read plans the backlog and moves a
        step of it, never all of it at once."""
        orphan = make_orphan(tmp_path, make_entries(3 * ADOPT_STEP_ROWS, size=20))
        s = Spool(str(tmp_path), 10**9)
        try:
            assert (0, 0, True) == (s.adopted, s.pending_records, s.adoption_pending)
            ids, _ = s.read(10, 10**9)
            assert 10 == len(ids)
            assert ADOPT_STEP_ROWS == s.adopted == s.pending_records
            assert 2 * ADOPT_STEP_ROWS == pending_rows(orphan)
            assert s.adoption_pending
        finally:
            s.close()

    def test_the_backlog_keeps_its_place_ahead_of_later_records(self, tmp_path):
        """Records stored while the backlog is being moved come after all of it, in order."""
        backlog = make_entries(2 * ADOPT_STEP_ROWS + 7, size=20, prefix="old")
        make_orphan(tmp_path, backlog)
        s = Spool(str(tmp_path), 10**9)
        try:
            s.put(make_entries(2, size=20, prefix="before"))  # stored before the first read
            got: List[Entry] = []
            for step in range(1000):
                ids, entries = s.read(500, 10**9)  # the first read looks for the backlog
                if not ids:
                    break
                got.extend(entries)
                s.ack(ids)
                if step < 10:
                    s.put(make_entries(1, size=20, prefix=f"new{step:04d}-"))
            later = [e for e in got if e[0].startswith(b"new")]
            assert make_entries(2, size=20, prefix="before") + backlog == got[: len(backlog) + 2]
            assert (10, later) == (len(later), sorted(later))
            assert len(backlog) + 12 == len(got)
            assert (len(backlog), 0, False) == (s.adopted, s.pending_records, s.adoption_pending)
            assert [Path(s.path).name] == spool_files(tmp_path)  # the orphan is gone
        finally:
            s.close()

    def test_close_in_the_middle_leaves_the_rest_for_the_next_process(self, tmp_path):
        """What is not moved yet at close stays in the dead process's file; the next spool
        adopts it: every record exactly once."""
        backlog = make_entries(3 * ADOPT_STEP_ROWS, size=20)
        make_orphan(tmp_path, backlog)
        first = Spool(str(tmp_path), 10**9)
        ids, got = first.read(500, 10**9)
        first.ack(ids)
        first.close()
        again = Spool(str(tmp_path), 10**9)
        try:
            got.extend(read_all(again))
            assert sorted(backlog) == sorted(got)
        finally:
            again.close()

    def test_a_kill_in_the_middle_loses_and_repeats_nothing(self, tmp_path):
        """SIGKILL after a first step was moved and delivered: the next spool finds the moved,
        undelivered part in the dead adopter's file and the rest in the first dead file."""
        backlog = make_entries(3 * ADOPT_STEP_ROWS, size=20)
        make_orphan(tmp_path, backlog)
        child = run_child(CHILD_ADOPT_A_STEP_AND_KILL, str(tmp_path))
        assert -signal.SIGKILL == child.returncode, child.stderr
        sent, pending, adopted = map(int, child.stdout.split())
        assert (500, ADOPT_STEP_ROWS) == (sent, adopted)
        assert ADOPT_STEP_ROWS - 500 + 3 == pending
        got = list(backlog[:sent])
        s = Spool(str(tmp_path), 10**9)
        try:
            got.extend(read_all(s))
            expected = backlog + [(b"new-%d" % i, None) for i in range(3)]
            assert sorted(expected) == sorted(got)  # nothing lost, nothing twice
            assert [Path(s.path).name] == spool_files(tmp_path)
        finally:
            s.close()

    def test_the_bound_counts_what_is_still_to_be_moved(self, tmp_path):
        """Planned but unmoved records take their room: a put cannot overfill the bound."""
        make_orphan(tmp_path, make_entries(3 * ADOPT_STEP_ROWS, size=100))
        s = Spool(str(tmp_path), 3 * ADOPT_STEP_ROWS * 100 + 250)
        try:
            s.read(1, 10**9)
            assert 2 == s.put(make_entries(5, size=100, prefix="new"))
        finally:
            s.close()


def read_all(spool: Spool) -> List[Entry]:
    """Read and acknowledge all that ``spool`` gives, 500 records at a time; return it in order."""
    got: List[Entry] = []
    while True:
        ids, entries = spool.read(500, 10**9)
        if not ids:
            return got
        got.extend(entries)
        spool.ack(ids)


def first_name(spool: Spool) -> str:
    return Path(spool.path).name


def pending_rows(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])
    finally:
        conn.close()


class TestLiveOwner:
    @pytest.mark.parametrize("state", ["open", "closed"])
    def test_live_owner_is_not_adopted(self, tmp_path, state):
        """Files of a running process are never adopted, whether it holds the lock or closed it."""
        child = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(CHILD_HOLD), str(tmp_path), state],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            assert child.stdin is not None
            assert "ready\n" == child.stdout.readline()
            s = Spool(str(tmp_path), 10_000)
            try:
                assert 0 == s.pending_records
                assert 0 == s.adopt_orphans()
                child.stdin.close()
                assert 0 == child.wait(timeout=30)
                assert 5 == s.adopt_orphans()
                assert [(b"held-%d" % i, None) for i in range(5)] == s.read(10, 10_000)[1]
            finally:
                s.close()
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=10)
            child.stdout.close() if child.stdout else None


class TestCorruption:
    def test_garbage_orphan_is_moved_aside(self, tmp_path, reports):
        """A file that is not a database is renamed *.corrupt-<ts> and reported, not raised."""
        garbage = tmp_path / f"dis-spool-{DEAD_PID}.sqlite"
        garbage.write_bytes(b"this is not sqlite" * 100)
        garbage.chmod(0o600)
        s = Spool(str(tmp_path), 10_000, report=reports.append)
        try:
            assert 0 == s.adopt_orphans()
            assert 0 == s.pending_records
            assert 1 == len(list(tmp_path.glob(f"dis-spool-{DEAD_PID}.sqlite.corrupt-*")))
            assert [Path(s.path).name] == spool_files(tmp_path)
            assert 1 == len([r for r in reports if "unreadable" in r])
        finally:
            s.close()

    def test_truncated_orphan_is_moved_aside(self, tmp_path, reports):
        """A spool file cut in half is moved aside and the spool keeps working."""
        path = make_orphan(tmp_path, make_entries(2000, size=200))
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 2)
        s = Spool(str(tmp_path), 10_000_000, report=reports.append)
        try:
            assert 0 == s.adopt_orphans()
            assert 1 == len(list(tmp_path.glob("*.corrupt-*")))
            assert 1 == s.put(make_entries(1))
            assert 1 == len([r for r in reports if "unreadable" in r])
        finally:
            s.close()

    def test_corrupt_own_file_is_replaced(self, tmp_path, reports):
        """A corrupt leftover under this process's own name is moved aside and a new file used."""
        own = tmp_path / f"dis-spool-{os.getpid()}.sqlite"
        own.write_bytes(b"\x00garbage" * 1000)
        own.chmod(0o600)
        s = Spool(str(tmp_path), 10_000, report=reports.append)
        try:
            assert str(own) == s.path
            assert 1 == s.put(make_entries(1))
            assert 1 == len(list(tmp_path.glob(f"{own.name}.corrupt-*")))
        finally:
            s.close()

    def test_a_newer_schema_version_is_left_alone(self, tmp_path, reports):
        """A file written by a newer version (schema 3 or above: a rolling upgrade sharing the
        directory) is neither moved aside nor adopted, and said so; it was renamed *.corrupt-*,
        so that the newer version's processes never saw its records again."""
        path = tmp_path / f"dis-spool-{DEAD_PID}.sqlite"
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE records (id INTEGER PRIMARY KEY, payload BLOB)")
        conn.execute("INSERT INTO records (payload) VALUES (x'00')")
        conn.execute("PRAGMA user_version = 3")
        conn.commit()
        conn.close()
        path.chmod(0o600)
        s = Spool(str(tmp_path), 10_000, report=reports.append)
        try:
            assert 0 == s.adopt_orphans()
            assert [] == list(tmp_path.glob("*.corrupt-*"))
            assert path.exists()
            said = [r for r in reports if "newer version" in r]
            assert 1 == len(said), reports
            assert (True, True) == (path.name in said[0], "schema 3" in said[0]), said
        finally:
            s.close()
        check = sqlite3.connect(path)
        try:
            assert (3, 1) == (
                check.execute("PRAGMA user_version").fetchone()[0],
                check.execute("SELECT COUNT(*) FROM records").fetchone()[0],
            )
        finally:
            check.close()

    def test_a_newer_file_under_our_own_name_is_not_used(self, tmp_path, reports):
        """Our own pid's name taken by a newer version's file: the spool writes another name."""
        own = tmp_path / f"dis-spool-{os.getpid()}.sqlite"
        conn = sqlite3.connect(own)
        conn.execute("CREATE TABLE records (id INTEGER PRIMARY KEY)")
        conn.execute("PRAGMA user_version = 7")
        conn.commit()
        conn.close()
        own.chmod(0o600)
        s = Spool(str(tmp_path), 10_000, report=reports.append)
        try:
            assert s.path.endswith(f"dis-spool-{os.getpid()}-1.sqlite")
            assert 1 == s.put(make_entries(1))
            assert [] == list(tmp_path.glob("*.corrupt-*"))
        finally:
            s.close()

    def test_a_negative_schema_version_is_moved_aside(self, tmp_path, reports):
        """A version no release ever wrote (negative) is damage: moved aside, as before."""
        path = tmp_path / f"dis-spool-{DEAD_PID}.sqlite"
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA user_version = -1")
        conn.close()
        path.chmod(0o600)
        s = Spool(str(tmp_path), 10_000, report=reports.append)
        try:
            assert 0 == s.adopt_orphans()
            assert 1 == len(list(tmp_path.glob("*.corrupt-*")))
        finally:
            s.close()

    def test_reopening_our_own_file_does_not_read_all_of_it(self, tmp_path, monkeypatch):
        """Reopening this process's own file (a reconfiguration, the same pid after a container
        restart) runs no quick_check, which reads the whole file while the persist step waits
        (a 256 MiB backlog: 0.25 s, and a burst logged meanwhile was dropped); an orphan is
        still checked in full before it is adopted."""
        first = Spool(str(tmp_path), 10**8)
        first.put(make_entries(10))
        first.close()
        make_orphan(tmp_path, make_entries(3, prefix="orphan"))
        statements: List[str] = []
        connect = sqlite3.connect

        def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            conn: sqlite3.Connection = connect(*args, **kwargs)
            name = Path(str(args[0])).name
            conn.set_trace_callback(lambda sql: statements.append(f"{name}: {sql}"))
            return conn

        monkeypatch.setattr(sqlite3, "connect", traced)
        again = Spool(str(tmp_path), 10**8)
        try:
            own = Path(again.path).name
            assert (10, own) == (again.pending_records, first_name(first))
            assert 3 == again.adopt_orphans()
        finally:
            again.close()
        checks = [line.split(":")[0] for line in statements if "quick_check" in line]
        assert [f"dis-spool-{DEAD_PID}.sqlite"] == checks, statements

    def test_file_corrupted_while_open_is_replaced(self, tmp_path, reports):
        """Damage found at run time moves the file aside, reports the loss; the spool goes on."""
        s = Spool(str(tmp_path), 10**8, report=reports.append)
        try:
            s.put(make_entries(2000, size=300))
            assert s._conn is not None
            s._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            s._conn.execute("PRAGMA cache_size = 1")  # make SQLite read the damaged pages again
            size = os.path.getsize(s.path)
            with open(s.path, "r+b") as f:
                f.seek(4096)
                f.write(b"\xa5" * (size - 4096))
            assert ([], []) == s.read(5000, 10**9)
            assert 1 == s.put(make_entries(1))
            assert (1, 100) == (s.pending_records, s.pending_bytes)
            assert 1 == len(list(tmp_path.glob("*.corrupt-*")))
            assert ["2000 pending records lost"] == [r[-25:] for r in reports]
            assert 2000 == s.lost
        finally:
            s.close()

    @pytest.mark.parametrize(
        ("damage", "damaged", "pending"),
        [
            ("none", False, 300),
            # A crash cuts a log short only inside the last transaction: SQLite drops it, and
            # nothing tells it from a log cut by hand, so it is not reported.
            ("cut_last_frame", False, 290),
            ("header", True, None),
            ("first_frame", True, None),
        ],
    )
    def test_a_damaged_write_ahead_log_is_reported(
        self, tmp_path, reports, damage, damaged, pending
    ):
        """SQLite silently reads a write-ahead log only up to its first bad frame; when committed
        transactions lie past it, the loss is reported and a copy of the log kept."""
        child = run_child(CHILD_PUT_IN_STEPS_AND_KILL, str(tmp_path))
        assert -signal.SIGKILL == child.returncode, child.stderr
        (wal,) = tmp_path.glob("dis-spool-*.sqlite-wal")
        size = wal.stat().st_size
        with open(wal, "r+b") as f:
            if damage == "cut_last_frame":
                f.truncate(size - 100)
            elif damage == "header":
                f.write(b"garbage!")
            elif damage == "first_frame":
                f.seek(32 + 24 + 200)
                byte = f.read(1)
                f.seek(32 + 24 + 200)
                f.write(bytes([byte[0] ^ 0xFF]))
        s = Spool(str(tmp_path), 10_000_000, report=reports.append)
        try:
            s.adopt_orphans()
            said = [r for r in reports if "damaged write-ahead log" in r]
            copies = list(tmp_path.glob("*.corrupt-*-wal"))
            assert (damaged, damaged) == (len(said) == 1, len(copies) == 1), reports
            if pending is not None:
                assert pending == s.pending_records
            assert 1 == s.put(make_entries(1))
        finally:
            s.close()

    def test_failing_report_callable_does_not_break_the_spool(self, tmp_path, capfd):
        """A report callable that raises falls back to stderr and the spool still opens."""

        def broken(message: str) -> None:
            raise RuntimeError("nope")

        junk = tmp_path / f"dis-spool-{DEAD_PID}.sqlite"
        junk.write_bytes(b"junk" * 100)
        junk.chmod(0o600)
        s = Spool(str(tmp_path), 10_000, report=broken)
        s.adopt_orphans()
        s.close()
        assert "report callable failed: RuntimeError" in capfd.readouterr().err


class TestThreads:
    def test_concurrent_producers_and_consumer(self, tmp_path):
        """Four putting threads and a reading thread deliver every entry once, in thread order."""
        s = Spool(str(tmp_path), 10**9)
        per_thread, batch = 400, 20
        delivered: List[Entry] = []
        producers_done = threading.Event()
        errors: List[BaseException] = []

        def produce(name: str) -> None:
            try:
                entries = make_entries(per_thread, size=30, prefix=name)
                for start in range(0, per_thread, batch):
                    assert batch == s.put(entries[start : start + batch])
            except BaseException as exc:
                errors.append(exc)
                raise

        def consume() -> None:
            while True:
                finished = producers_done.is_set()
                ids, entries = s.read(50, 10**6)
                delivered.extend(entries)
                s.ack(ids)
                if finished and not ids:
                    return

        producers = [threading.Thread(target=produce, args=(f"t{n}-",)) for n in range(4)]
        consumer = threading.Thread(target=consume)
        consumer.start()
        for t in producers:
            t.start()
        for t in producers:
            t.join(timeout=30)
        producers_done.set()
        consumer.join(timeout=30)
        try:
            assert [] == errors
            assert not consumer.is_alive()
            for n in range(4):
                mine = [e for e in delivered if e[0].startswith(f"t{n}-".encode())]
                assert make_entries(per_thread, size=30, prefix=f"t{n}-") == mine
            assert 4 * per_thread == len(delivered)
            assert (0, 0) == (s.pending_records, s.pending_bytes)
        finally:
            s.close()

    def test_close_while_another_thread_puts(self, tmp_path):
        """Closing while another thread puts neither raises nor loses a counted entry."""
        s = Spool(str(tmp_path), 10**9)
        stored: List[int] = []
        started = threading.Event()

        def produce() -> None:
            for _ in range(200):
                stored.append(s.put(make_entries(5)))
                started.set()

        t = threading.Thread(target=produce)
        t.start()
        assert started.wait(10)
        s.close()
        t.join(timeout=30)
        again = Spool(str(tmp_path), 10**9)
        try:
            assert sum(stored) == again.pending_records
        finally:
            again.close()


@pytest.mark.usefixtures("no_faulthandler_timer")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
class TestFork:
    def test_child_writes_its_own_file(self, tmp_path, spool):
        """A forked child writes a file of its own; the parent adopts it after the child exits."""
        spool.put(make_entries(2, prefix="parent"))
        assert 0 == spool.adopt_orphans()  # the directory is looked at before the child exists
        pid = os.fork()
        if pid == 0:  # child: never return into pytest
            code = 1
            try:
                stored = spool.put(make_entries(3, prefix="child"))
                own = spool.read(10, 10_000)[1]
                ok = stored == 3 and own == make_entries(3, prefix="child")
                ok = ok and spool.path.endswith(f"dis-spool-{os.getpid()}.sqlite")
                code = 0 if ok else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert 0 == os.waitstatus_to_exitcode(status)
        assert make_entries(2, prefix="parent") == spool.read(10, 10_000)[1]
        assert 3 == spool.adopt_orphans()
        assert (
            make_entries(2, prefix="parent") + make_entries(3, prefix="child")
            == spool.read(10, 10_000)[1]
        )

    def test_fork_while_lock_is_held(self, tmp_path, spool):
        """A child forked while another thread holds the spool's lock can still use the spool."""
        spool.put(make_entries(1))
        holding = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with spool._lock:
                holding.set()
                release.wait(10)

        t = threading.Thread(target=hold)
        t.start()
        assert holding.wait(10)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = 0 if spool.put(make_entries(1)) == 1 else 1
                spool.close()
            finally:
                os._exit(code)
        release.set()
        t.join(10)
        _, status = os.waitpid(pid, 0)
        assert 0 == os.waitstatus_to_exitcode(status)
        assert 1 == spool.pending_records
