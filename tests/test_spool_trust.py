"""The spool trusts nothing it did not create, and each file keeps to its own destination."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from dis_logging.emulator import DISEmulator
from dis_logging.errors import ConfigError
from dis_logging.handler import DISHandler
from dis_logging.spool import Spool

Entry = Tuple[bytes, Optional[str]]

#: Above Linux's largest pid_max (2**22), so no process ever has it.
DEAD_PID = 2**22 + 54321
#: A uid no account on the test machine uses.
STRANGER_UID = 54321

DEST_A: Dict[str, Optional[str]] = {"project": "p", "stream": "stream-a", "endpoint": "http://x"}
DEST_B: Dict[str, Optional[str]] = {"project": "p", "stream": "stream-b", "endpoint": "http://x"}

needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="giving a file to another owner needs root (os.chown)",
)


def make_entries(count: int, prefix: str = "r") -> List[Entry]:
    return [(f"{prefix}{i:06d}".encode(), None) for i in range(count)]


def make_orphan(
    directory: Path,
    entries: List[Entry],
    destination: Optional[Dict[str, Optional[str]]] = None,
    pid: int = DEAD_PID,
) -> Path:
    """Leave a spool file that looks like the one of a dead process with ``pid``."""
    staging = directory.parent / f"staging-{directory.name}-{pid}"
    s = Spool(str(staging), 10_000_000, destination=destination)
    s.put(entries)
    source = Path(s.path)
    s.close()  # keeps the file (records pending) and checkpoints the WAL into it
    directory.mkdir(mode=0o700, exist_ok=True)
    target = directory / f"dis-spool-{pid}.sqlite"
    os.replace(source, target)
    return target


def pending_in(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        count = int(conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])
    conn.close()
    return count


def adopt_and_deliver(
    emulator: DISEmulator, stream: str, spool_dir: Path, endpoint: str
) -> Tuple[bool, int, List[bytes]]:
    """Start a handler on ``spool_dir`` for ``endpoint``, flush and close it; return whether the
    flush succeeded, how many records it adopted and what the emulator stored, sorted."""
    handler = DISHandler(
        stream,
        endpoint=endpoint,
        project_id=emulator.project_id,
        ak=emulator.ak,
        sk=emulator.sk,
        spool_dir=str(spool_dir),
        flush_interval=0.05,
    )
    try:
        delivered = handler.flush(10.0)
    finally:
        handler.close()
    stored = sorted(record.data for record in emulator.records(stream))
    return delivered, handler.stats.adopted, stored


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "spool"
    directory.mkdir(mode=0o700)
    return directory


@pytest.fixture
def reports() -> List[str]:
    return []


@pytest.fixture
def opened() -> Iterator[List[Spool]]:
    spools: List[Spool] = []
    try:
        yield spools
    finally:
        for s in spools:
            s.close()


class TestDirectory:
    def test_missing_directory_is_created_private(self, tmp_path, opened):
        """A missing spool_dir is created with mode 0700."""
        directory = tmp_path / "new" / "spool"
        opened.append(Spool(str(directory), 10_000))
        assert 0o700 == stat.S_IMODE(directory.stat().st_mode)

    @pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777, 0o702])
    def test_directory_writable_by_others_is_refused(self, spool_dir, mode):
        """A directory its group or others may write is refused with a ConfigError."""
        spool_dir.chmod(mode)
        with pytest.raises(ConfigError, match="writable by other users") as info:
            Spool(str(spool_dir), 10_000)
        assert "spool_dir" == info.value.field
        assert [] == list(spool_dir.iterdir())

    def test_handler_refuses_such_a_directory_at_construction(self, spool_dir):
        """DISHandler raises the ConfigError in the caller's thread, before any record."""
        spool_dir.chmod(0o777)
        with pytest.raises(ConfigError, match="spool_dir"):
            DISHandler(
                stream_name="s",
                endpoint="http://127.0.0.1:9",
                project_id="p",
                ak="a",
                sk="b",
                spool_dir=str(spool_dir),
            )

    @needs_root
    def test_directory_of_another_user_is_refused(self, spool_dir):
        """A directory owned by another user is refused, whatever its mode."""
        os.chown(spool_dir, STRANGER_UID, -1)
        with pytest.raises(ConfigError, match="owned by uid 54321"):
            Spool(str(spool_dir), 10_000)


class TestFiles:
    def test_symlinked_lock_file_does_not_truncate_its_target(self, spool_dir, reports, opened):
        """A lock-file symlink planted in the directory is not followed; its target is intact."""
        victim = spool_dir.parent / "victim.txt"
        victim.write_text("precious contents\n")
        planted = spool_dir / f"dis-spool-{os.getpid()}.sqlite.lock"
        planted.symlink_to(victim)
        s = Spool(str(spool_dir), 10_000, report=reports.append)
        opened.append(s)
        s.put(make_entries(3))
        assert "precious contents\n" == victim.read_text()
        assert Path(s.path).name == f"dis-spool-{os.getpid()}-1.sqlite"
        assert planted.is_symlink()
        assert any("symbolic link" in line for line in reports)

    def test_symlinked_spool_file_is_not_opened(self, spool_dir, reports, opened):
        """A spool-file symlink pointing elsewhere is neither written through nor used."""
        victim = spool_dir.parent / "victim.db"
        victim.write_bytes(b"")
        (spool_dir / f"dis-spool-{os.getpid()}.sqlite").symlink_to(victim)
        s = Spool(str(spool_dir), 10_000, report=reports.append)
        opened.append(s)
        s.put(make_entries(3))
        assert 0 == victim.stat().st_size
        assert Path(s.path).name == f"dis-spool-{os.getpid()}-1.sqlite"

    def test_own_name_with_open_mode_is_not_used(self, spool_dir, reports, opened):
        """A pre-created spool file with mode 0666 is left alone; the spool takes another name."""
        planted = spool_dir / f"dis-spool-{os.getpid()}.sqlite"
        planted.write_bytes(b"")
        planted.chmod(0o666)
        s = Spool(str(spool_dir), 10_000, report=reports.append)
        opened.append(s)
        s.put(make_entries(2))
        assert Path(s.path) != planted
        assert 0 == planted.stat().st_size
        assert any("0666" in line for line in reports)

    @needs_root
    def test_own_name_owned_by_another_user_is_not_used(self, spool_dir, reports, opened):
        """A pre-created spool file of another owner is not used, even with mode 0600."""
        planted = spool_dir / f"dis-spool-{os.getpid()}.sqlite"
        planted.write_bytes(b"")
        planted.chmod(0o600)
        os.chown(planted, STRANGER_UID, -1)
        s = Spool(str(spool_dir), 10_000, report=reports.append)
        opened.append(s)
        s.put(make_entries(2))
        assert Path(s.path) != planted
        assert 0 == planted.stat().st_size

    def test_new_files_are_private(self, spool_dir, opened):
        """The spool, its WAL and its lock file are created 0600."""
        s = Spool(str(spool_dir), 10_000)
        opened.append(s)
        s.put(make_entries(2))
        for path in spool_dir.iterdir():
            assert 0o600 == stat.S_IMODE(path.stat().st_mode), path


class TestAdoptionTrust:
    @needs_root
    def test_orphan_of_another_user_is_not_adopted(self, spool_dir, reports, opened):
        """A forged backlog owned by another user is never read, let alone replayed."""
        orphan = make_orphan(spool_dir, make_entries(5, "forged"))
        os.chown(orphan, STRANGER_UID, -1)
        s = Spool(str(spool_dir), 10_000, report=reports.append)
        opened.append(s)
        s.adopt_orphans()  # the first read would look, too
        assert (0, 0) == (s.adopted, s.pending_records)
        assert ([], []) == s.read(10, 10_000)
        assert 5 == pending_in(orphan)
        assert any("uid 54321" in line for line in reports)

    def test_orphan_open_to_others_is_not_adopted(self, spool_dir, reports, opened):
        """A backlog file with group or world permission bits is not adopted."""
        orphan = make_orphan(spool_dir, make_entries(5, "forged"))
        orphan.chmod(0o644)
        s = Spool(str(spool_dir), 10_000, report=reports.append)
        opened.append(s)
        s.adopt_orphans()  # the first read would look, too
        assert 0 == s.adopted
        assert 5 == pending_in(orphan)

    def test_symlinked_orphan_is_not_adopted(self, spool_dir, tmp_path, reports, opened):
        """A symlink named like a spool file is not followed into its target."""
        elsewhere = make_orphan(tmp_path / "elsewhere", make_entries(5, "forged"))
        (spool_dir / f"dis-spool-{DEAD_PID}.sqlite").symlink_to(elsewhere)
        s = Spool(str(spool_dir), 10_000, report=reports.append)
        opened.append(s)
        s.adopt_orphans()  # the first read would look, too
        assert 0 == s.adopted
        assert 5 == pending_in(elsewhere)

    def test_orphan_of_own_user_and_destination_is_adopted(self, spool_dir, opened):
        """The trusted case still works: our own orphan of our destination is adopted."""
        make_orphan(spool_dir, make_entries(5), destination=DEST_A)
        s = Spool(str(spool_dir), 10_000, destination=DEST_A)
        opened.append(s)
        s.adopt_orphans()  # the first read would look, too
        assert (5, 5) == (s.adopted, s.pending_records)


class TestDestination:
    def test_orphan_of_another_destination_stays_untouched(self, spool_dir, opened):
        """A backlog for another stream is left where it is, then adopted by its own spool."""
        orphan = make_orphan(spool_dir, make_entries(4, "for-a"), destination=DEST_A)
        b = Spool(str(spool_dir), 10_000, destination=DEST_B, scan_interval=0)
        opened.append(b)
        b.adopt_orphans()  # the first read would look, too
        b.put(make_entries(2, "for-b"))
        ids, entries = b.read(10, 10_000)
        assert [e[0] for e in entries] == [b"for-b000000", b"for-b000001"]
        b.ack(ids)
        assert ([], []) == b.read(10, 10_000)  # an empty spool scans again: still not adopted
        assert 4 == pending_in(orphan)
        a = Spool(str(spool_dir), 10_000, destination=DEST_A)
        opened.append(a)
        a.adopt_orphans()  # the first read would look, too
        assert 4 == a.adopted
        _, entries = a.read(10, 10_000)
        assert [e[0] for e in entries] == [f"for-a{i:06d}".encode() for i in range(4)]

    def test_a_backlog_of_another_destination_is_reported(self, spool_dir, opened, reports):
        """A dead process's backlog for another destination (the stream or endpoint changed
        since) is left alone, and said so: it used to wait without a word."""
        orphan = make_orphan(spool_dir, make_entries(3), destination=DEST_A)
        b = Spool(str(spool_dir), 10_000, destination=DEST_B, report=reports.append)
        opened.append(b)
        b.adopt_orphans()  # the first read would look, too
        said = [line for line in reports if "backlog of another destination" in line]
        assert (0, 3, 1) == (b.adopted, pending_in(orphan), len(said)), reports
        assert (True, True) == (orphan.name in said[0], '"stream":"stream-a"' in said[0]), said

    def test_the_endpoint_case_does_not_change_the_destination(self, spool_dir, emulator, stream):
        """Scheme and host are case-insensitive: a backlog spooled for http://127.0.0.1:PORT is
        adopted and delivered by a handler configured with HTTP://127.0.0.1:PORT."""
        destination = {"project": emulator.project_id, "stream": stream, "endpoint": emulator.url}
        make_orphan(spool_dir, make_entries(3, "cased"), destination=destination)
        endpoint = emulator.url.replace("http://", "HTTP://")
        assert (True, 3, [f"cased{i:06d}".encode() for i in range(3)]) == adopt_and_deliver(
            emulator, stream, spool_dir, endpoint
        )

    def test_a_backlog_written_with_an_upper_case_endpoint_is_still_adopted(
        self, spool_dir, emulator, stream
    ):
        """A file of an earlier version holds the endpoint as it was configured
        (HTTP://127.0.0.1:PORT); the handler configured the same way adopts and delivers it."""
        upper = emulator.url.replace("http://", "HTTP://")
        destination = {"project": emulator.project_id, "stream": stream, "endpoint": upper}
        orphan = make_orphan(spool_dir, make_entries(3, "older"), destination=destination)
        with sqlite3.connect(orphan) as conn:  # as the earlier version wrote it: case kept
            conn.execute(
                "UPDATE meta SET value = ? WHERE key = 'destination'",
                (json.dumps(destination, sort_keys=True, separators=(",", ":")),),
            )
        conn.close()
        assert (True, 3, [f"older{i:06d}".encode() for i in range(3)]) == adopt_and_deliver(
            emulator, stream, spool_dir, upper
        )

    def test_two_destinations_in_one_process_use_two_files(self, spool_dir, opened):
        """Two spools of one process for two streams write separate files."""
        a = Spool(str(spool_dir), 10_000, destination=DEST_A)
        b = Spool(str(spool_dir), 10_000, destination=DEST_B)
        opened.extend([a, b])
        a.put(make_entries(1, "a"))
        b.put(make_entries(1, "b"))
        assert a.path != b.path
        assert [b"a000000"] == [e[0] for e in a.read(10, 100)[1]]
        assert [b"b000000"] == [e[0] for e in b.read(10, 100)[1]]

    def test_kept_file_of_another_destination_is_not_reused(self, spool_dir, opened):
        """A file this process kept for stream A is not reopened by a spool for stream B."""
        a = Spool(str(spool_dir), 10_000, destination=DEST_A)
        a.put(make_entries(3, "a"))
        kept = a.path
        a.close()
        b = Spool(str(spool_dir), 10_000, destination=DEST_B)
        opened.append(b)
        assert b.path != kept
        assert (0, 0) == (b.adopted, b.pending_records)
        again = Spool(str(spool_dir), 10_000, destination=DEST_A)
        opened.append(again)
        assert (kept, 3, 3) == (again.path, again.adopted, again.pending_records)

    def test_file_without_destination_is_left_alone(self, spool_dir, opened):
        """A version-1 file (no destination recorded) is neither adopted nor moved."""
        path = spool_dir / f"dis-spool-{DEAD_PID}.sqlite"
        conn = sqlite3.connect(path)
        conn.execute(
            "CREATE TABLE records (id INTEGER PRIMARY KEY AUTOINCREMENT, data BLOB NOT NULL,"
            " partition_key BLOB, size INTEGER NOT NULL)"
        )
        conn.execute("INSERT INTO records (data, size) VALUES (x'00', 1)")
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
        conn.close()
        path.chmod(0o600)
        s = Spool(str(spool_dir), 10_000, destination=DEST_A)
        opened.append(s)
        assert 0 == s.adopted
        assert 1 == pending_in(path)
