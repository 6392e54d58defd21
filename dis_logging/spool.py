"""Durable on-disk queue of DIS entries: one SQLite file per process, written in WAL mode.

The flusher's persist step puts entries here (overflow, outages, or everything with
``spool_mode="always"``) and its send step replays them oldest first. Entries stay on disk until
:meth:`Spool.ack` deletes them, so a process that is killed keeps its backlog; the next process
that opens a :class:`Spool` for the same destination on the same directory adopts it::

    spool = Spool("/var/spool/myapp", max_bytes=256 * 2**20,
                  destination={"project": "p", "stream": "app-logs", "endpoint": "https://..."})
    stored = spool.put(entries)               # entries[stored:] did not fit: keep them elsewhere
    ids, batch = spool.read(500, 1_000_000)   # oldest first; nothing is removed yet
    ...                                       # send batch to DIS
    spool.ack(ids)                            # now they are gone (or remembered as gone)

Files in the directory:

- ``dis-spool-<pid>.sqlite`` (plus SQLite's ``-wal`` and ``-shm``): the records of one process for
  one destination, which a ``meta`` table records (project, stream name or id, endpoint). A name
  taken by a live owner, by another destination's file or by a file this user did not create is
  skipped for ``dis-spool-<pid>-<n>.sqlite``.
- ``<file>.lock``: held with an exclusive ``flock`` for as long as the owner has the file open, so
  there is never more than one writer. It also records the owner's pid and process start time.
- ``<file>.corrupt-<timestamp>``: a file SQLite could not read, moved aside for inspection, and
  ``<file>.corrupt-<timestamp>-wal``: a copy of a write-ahead log SQLite would read only in part
  (damaged before committed transactions), kept when the file is opened; the rest is read.

A file deleted or replaced while in use (a removed ``spool_dir``, a cleanup job) is noticed by the
next :meth:`Spool.put` or :meth:`Spool.read` at most :data:`FILE_CHECK_INTERVAL` later: its pending
records are copied to a new file, since writes to a deleted file succeed but no process could ever
adopt it.

Trust: the directory must belong to this user and not be writable by group or others
(:func:`check_directory`, a :class:`~dis_logging.errors.ConfigError` otherwise). Every file is
opened with ``O_NOFOLLOW``, created exclusively with mode 0600, and used only when ``fstat`` shows a
regular file owned by this user without group or other permission bits; SQLite then opens the same
inode by name. Anything else is skipped and reported, never opened, truncated or adopted.

A file of our destination whose lock can be taken and whose owner process is gone is an orphan:
its oldest records, as far as ``max_bytes`` allows, are moved into this process's file and it is
deleted once empty. The directory is looked at by the first :meth:`Spool.read` (not when the spool
opens, so opening stays quick) and again by a read while the spool is empty. The move goes in steps
of :data:`ADOPT_STEP_ROWS` rows, one per read, each a short transaction, so a backlog of millions of
records never holds up :meth:`Spool.put`; the adopted records keep their place ahead of everything
stored after the look (their ids are reserved in advance). Records found in this process's own file
when it is (re)opened, for example by a new handler after a ``dictConfig`` reconfiguration, count as
adopted too.

Durability: ``synchronous=NORMAL`` in WAL mode, so a committed ``put`` survives the process being
killed; a power cut may lose the last transactions. Delivery is at least once: a crash between a
send and its ``ack`` replays those records. An ``ack`` whose delete fails (a full disk) is
remembered in memory, so those rows are never read again, and the delete is retried later.

The spool never raises from :meth:`~Spool.put`, :meth:`~Spool.read` or :meth:`~Spool.ack`: disk and
SQLite problems go to the ``report`` callable (never to :mod:`logging`) and the call returns what it
managed. It is safe to use from several threads and across ``os.fork``: a child never touches its
parent's connection or lock and opens a file of its own on first use.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import re
import sqlite3
import stat
import struct
import sys
import threading
import time
import weakref
from typing import Callable, Dict, Final, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit, urlunsplit

from dis_logging.errors import ConfigError

try:
    import fcntl
except ImportError:  # Windows: no flock; Spool() then raises OSError, importing still works
    fcntl = None  # type: ignore[assignment]  # checked before every use

__all__ = ["Entry", "Spool", "UntrustedError", "check_directory", "has_spool_files"]

#: One DIS record as the flusher handles it: raw data and an optional partition key (same shape as
#: ``dis_logging.client.Entry``; repeated here so the spool does not import the HTTP stack).
Entry = Tuple[bytes, Optional[str]]

FILE_PREFIX: Final = "dis-spool-"
FILE_SUFFIX: Final = ".sqlite"
LOCK_SUFFIX: Final = ".lock"
#: Bumped when the table layout changes; a file with another version is moved aside and reported.
#: Version 2 added the ``meta`` table naming the file's destination.
SCHEMA_VERSION: Final = 2
#: Version 1 files (no destination recorded) are left alone: nobody can tell where they belong.
_UNKNOWN_DESTINATION_VERSION: Final = 1
#: Permission bits that must be clear on the spool directory: writable by group or others.
_UNSAFE_DIR_BITS: Final = stat.S_IWGRP | stat.S_IWOTH
#: Permission bits that must be clear on every spool, WAL, shared-memory and lock file: we create
#: them 0600, so any group or other bit means somebody else made or changed the file.
_UNSAFE_FILE_BITS: Final = 0o077
#: ``O_NOFOLLOW`` where the platform has it (POSIX); 0 elsewhere.
_O_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
#: How long ``read`` on an empty spool waits between two scans of the directory for orphans (s).
ORPHAN_SCAN_INTERVAL: Final = 30.0
#: ``dis-spool-<pid>-1`` ... ``-<n>``: names tried when ``dis-spool-<pid>`` is held by a live owner.
MAX_NAME_SUFFIX: Final = 64
#: Seconds between two attempts to delete acknowledged rows whose first delete failed.
UNSAVED_RETRY_INTERVAL: Final = 1.0
#: Seconds between two checks that this process's file is still where it was opened (somebody may
#: delete ``spool_dir`` or the file while it is in use; writes would then go to a file nobody can
#: ever find).
FILE_CHECK_INTERVAL: Final = 1.0
#: Rows per ``IN (...)`` list; stays below SQLite's historical limit of 999 bound parameters.
_CHUNK: Final = 500
#: Most rows, and payload bytes, moved from an orphan file into ours in one step (one short
#: transaction under the spool's lock): a big backlog is moved step by step, one step per
#: :meth:`Spool.read`, so writes of new records never wait for the whole of it.
ADOPT_STEP_ROWS: Final = 2000
ADOPT_STEP_BYTES: Final = 4 * 2**20
#: SQLite primary result codes meaning "this file is not a readable database".
_SQLITE_CORRUPT: Final = 11
_SQLITE_NOTADB: Final = 26

#: SQLite write-ahead log layout (https://www.sqlite.org/fileformat2.html#walformat): a 32-byte
#: header starting with one of two magic numbers (the low bit picks big-endian checksums), then
#: frames of a 24-byte header and one page each.
_WAL_MAGICS: Final = (0x377F0682, 0x377F0683)
_WAL_HEADER: Final = 32
_WAL_FRAME_HEADER: Final = 24

_NAME_RE: Final = re.compile(r"^dis-spool-(\d+)(?:-\d+)?\.sqlite$")

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS records ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"  # AUTOINCREMENT: ids never come back after a delete
    " data BLOB NOT NULL,"
    " partition_key BLOB,"  # UTF-8 with surrogatepass, so any str round-trips
    " size INTEGER NOT NULL)"
)
_META_SCHEMA: Final = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"

Report = Callable[[str], None]

# SQLite must not close, in a forked child, a connection the parent opened: closing the last
# connection checkpoints and may delete the WAL that the parent is still writing. A child therefore
# parks inherited connections here for the rest of its life instead of letting them be collected.
_INHERITED: List[object] = []
_LIVE_SPOOLS: weakref.WeakSet[Spool] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for spool in list(_LIVE_SPOOLS):
        spool._forget_parent()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _process_start(pid: int) -> Optional[str]:
    """Return the start time of ``pid`` in clock ticks since boot (Linux), or None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            raw = stat.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses; fields after it are plain.
    fields = raw[raw.rfind(b")") + 2 :].split()
    return fields[19].decode("ascii") if len(fields) > 19 else None


def _is_owner_alive(pid: int, start: Optional[str]) -> bool:
    """Tell whether the process that wrote a lock file still runs (and is not a reused pid)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        # Our own pid on somebody else's file: a former incarnation (container restart, pid reuse).
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        if exc.errno != errno.EPERM:  # EPERM: it exists but belongs to another user
            return False
    if start:
        current = _process_start(pid)
        if current is not None and current != start:
            return False
    return True


class UntrustedError(OSError):
    """A spool file or lock file this user did not create: a symlink, another owner, a group- or
    world-accessible mode, or not a regular file. Such a file is never opened as a spool."""


def has_spool_files(directory: str) -> bool:
    """Whether ``directory`` holds any spool file (ours, an orphan's, or another destination's).

    A cheap look, no file is opened: a handler uses it at start to replay a backlog left by a
    process that died, even if the new process never logs.

    Args:
        directory: the spool directory; a missing one holds nothing.
    """
    pattern = os.path.join(glob.escape(directory), f"{FILE_PREFIX}*{FILE_SUFFIX}")
    return bool(glob.glob(pattern))


def check_directory(directory: str, *, usable: bool = False, source: str = "") -> None:
    """Refuse a spool directory that other users could tamper with, or that cannot be used.

    Args:
        directory: the directory; a missing one passes the ownership checks (the spool creates
            it with mode 0700, and any missing parent).
        usable: also refuse a directory this user cannot write, and a missing one whose nearest
            existing parent this user cannot write (or that is not a directory); default
            ``False``. The handler asks for this when it is enabled, so that a spool that could
            never be opened is a configuration error rather than a failure at run time.
        source: the environment variable the value came from, named in the message; default
            ``""`` (a keyword).

    Raises:
        ConfigError: it exists and is not a directory, is owned by another user, or is writable
            by its group or by others (a sticky bit does not help: records could still be
            planted); with ``usable``, it or its nearest existing parent is not writable.
            ``field`` is ``"spool_dir"``.
    """
    where = f" (from {source})" if source else ""
    try:
        info = os.stat(directory)
    except FileNotFoundError:
        if usable:
            _check_creatable(directory, where)
        return
    except OSError as exc:
        raise ConfigError("spool_dir", f"cannot be inspected{where}: {exc}") from None
    if usable and stat.S_ISDIR(info.st_mode) and not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError("spool_dir", f"{directory!r}{where} is not writable by this user")
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError("spool_dir", f"exists and is not a directory: {directory!r}")
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise ConfigError(
            "spool_dir",
            f"{directory!r} is owned by uid {info.st_uid}, not by this user ({os.geteuid()})",
        )
    if info.st_mode & _UNSAFE_DIR_BITS:
        raise ConfigError(
            "spool_dir",
            f"{directory!r} is writable by other users (mode {stat.S_IMODE(info.st_mode):04o});"
            " use a directory only this user can write, for example mode 0700",
        )


def _check_creatable(directory: str, where: str) -> None:
    """Refuse a missing spool directory that this user could not create (see check_directory)."""
    parent = os.path.dirname(os.path.abspath(directory))
    while True:
        try:
            info = os.stat(parent)
            break
        except FileNotFoundError:
            above = os.path.dirname(parent)
            if above == parent:  # pragma: no cover - the root directory always exists
                return
            parent = above
        except OSError as exc:
            raise ConfigError("spool_dir", f"cannot be inspected{where}: {exc}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError("spool_dir", f"cannot be created{where}: {parent!r} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(
            "spool_dir",
            f"cannot be created{where}: {parent!r} is not writable by this user",
        )


def _check_trusted(info: os.stat_result, path: str) -> None:
    """Raise :class:`UntrustedError` unless ``info`` describes a private regular file of ours."""
    if not stat.S_ISREG(info.st_mode):
        raise UntrustedError(errno.EPERM, "not a regular file", path)
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise UntrustedError(errno.EPERM, f"owned by uid {info.st_uid}, not by this user", path)
    if info.st_mode & _UNSAFE_FILE_BITS:
        raise UntrustedError(
            errno.EPERM, f"mode {stat.S_IMODE(info.st_mode):04o} is open to other users", path
        )


def _open_trusted(path: str, *, create: bool) -> int:
    """Open ``path`` read-write without following a symlink, and check who made it.

    A missing file is created exclusively (mode 0600) when ``create``; an existing one must be a
    regular file owned by this user with no group or other permission bits.

    Returns:
        The open descriptor; the caller closes it.

    Raises:
        UntrustedError: the path is a symlink or a file this user did not create.
        FileNotFoundError: it does not exist and ``create`` is false.
        OSError: any other failure to open it.
    """
    flags = os.O_RDWR | _O_NOFOLLOW | _O_CLOEXEC
    if create:
        try:
            return os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UntrustedError(errno.ELOOP, "is a symbolic link", path) from None
        raise
    try:
        _check_trusted(os.fstat(fd), path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_sidecars(path: str) -> None:
    """Refuse SQLite's ``-wal``/``-shm`` files beside ``path`` unless they are private and ours."""
    for extra in ("-wal", "-shm"):
        try:
            info = os.lstat(path + extra)
        except FileNotFoundError:
            continue
        _check_trusted(info, path + extra)


def _wal_checksum(data: bytes, big_endian: bool, s0: int, s1: int) -> Tuple[int, int]:
    """SQLite's write-ahead-log checksum of ``data`` (a multiple of 8 bytes), continuing s0, s1."""
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    for index in range(0, len(words), 2):
        s0 = (s0 + words[index] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[index + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def _wal_damage(path: str) -> Optional[str]:
    """Tell whether the write-ahead log of spool file ``path`` lost committed transactions.

    SQLite reads a ``-wal`` file up to its first frame whose checksum fails and ignores the rest
    without a word, as the tail of a transaction a crash cut short. That is right for the last,
    uncommitted transaction, and for frames of an older generation (other salt values); it is
    damage when a later frame of the same generation still ends a transaction (a commit frame):
    committed records are behind the failing frame and SQLite will not read them. A header that is
    not a valid one makes SQLite ignore the whole file.

    Returns:
        ``None`` when the log is absent, empty or whole; else what is wrong, in a few words.
    """
    try:
        fd = os.open(path + "-wal", os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
    except OSError:
        return None  # no log (or none we may read: _check_sidecars decides about trust)
    with os.fdopen(fd, "rb") as log:
        header = log.read(_WAL_HEADER)
        if len(header) < _WAL_HEADER:
            return None  # SQLite treats a log this short as empty: it never held a transaction
        magic, _version, page_size, _seq, salt1, salt2, sum0, sum1 = struct.unpack(">8I", header)
        if magic not in _WAL_MAGICS or page_size < 512 or page_size & (page_size - 1):
            return "its header is not a write-ahead log header, so none of it is read"
        big_endian = bool(magic & 1)
        if _wal_checksum(header[:24], big_endian, 0, 0) != (sum0, sum1):
            return "its header checksum does not match, so none of it is read"
        s0, s1 = sum0, sum1
        frame_size = _WAL_FRAME_HEADER + page_size
        offset = _WAL_HEADER
        broken_at: Optional[int] = None
        while True:
            frame = log.read(frame_size)
            if len(frame) < frame_size:
                return None  # the end, or a frame a crash cut short: nothing committed after it
            _page, commit, f_salt1, f_salt2, f_sum0, f_sum1 = struct.unpack(
                ">6I", frame[:_WAL_FRAME_HEADER]
            )
            if (f_salt1, f_salt2) != (salt1, salt2):
                return None  # a frame of an earlier generation: the log ends before it
            if broken_at is None:
                s0, s1 = _wal_checksum(frame[:8], big_endian, s0, s1)
                s0, s1 = _wal_checksum(frame[_WAL_FRAME_HEADER:], big_endian, s0, s1)
                if (s0, s1) != (f_sum0, f_sum1):
                    broken_at = offset
            elif commit:
                return f"a frame at byte {broken_at} fails its checksum and committed ones follow"
            offset += frame_size


def _same_case_endpoint(endpoint: str) -> str:
    """``endpoint`` with its scheme and host in lower case: they are case-insensitive, so
    ``HTTPS://DIS.example.com`` is the destination of ``https://dis.example.com`` (the path is
    kept as it is)."""
    parts = urlsplit(endpoint)
    return urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path, parts.query, parts.fragment)
    )


def _encode_destination(destination: Optional[Mapping[str, Optional[str]]]) -> str:
    """The canonical text stored in a file's ``meta`` table: sorted JSON, ``{}`` for none; the
    endpoint's scheme and host in lower case."""
    values = {key: value for key, value in (destination or {}).items() if value is not None}
    endpoint = values.get("endpoint")
    if isinstance(endpoint, str):
        values["endpoint"] = _same_case_endpoint(endpoint)
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


def _canonical_destination(stored: str) -> str:
    """A file's stored destination as :func:`_encode_destination` writes it now: files of
    earlier versions hold the endpoint as it was configured (``HTTPS://DIS.example.com``), and
    their backlog is still ours."""
    try:
        value = json.loads(stored)
    except ValueError:
        return stored
    if not isinstance(value, dict):
        return stored
    return _encode_destination(value)


class _CorruptError(sqlite3.DatabaseError):
    """``PRAGMA quick_check`` found damage, or the file has a table layout we do not know."""


class _ForeignError(Exception):
    """The file belongs to another destination (or to a version that did not record one)."""


class _NewerError(_ForeignError):
    """The file was written by a newer version (a higher schema version): during a rolling
    upgrade its owner's successors read it, so it is left alone rather than moved aside."""


def _is_corruption(exc: sqlite3.Error) -> bool:
    if isinstance(exc, _CorruptError):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    # Python < 3.11 has no error codes: corruption is a bare DatabaseError, I/O trouble is not.
    return type(exc) is sqlite3.DatabaseError


def _encode_key(key: Optional[str]) -> Optional[bytes]:
    return None if key is None else key.encode("utf-8", "surrogatepass")


def _decode_key(raw: Optional[bytes]) -> Optional[str]:
    return None if raw is None else bytes(raw).decode("utf-8", "surrogatepass")


def _entry_size(data: bytes, key: Optional[str]) -> int:
    return len(data) + (0 if key is None else len(key.encode("utf-8", "surrogatepass")))


class _FileLock:
    """An exclusive ``flock`` on a lock file beside a spool file."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def try_acquire(cls, path: str) -> Optional[_FileLock]:
        """Take the lock without waiting; None when another open file holds it.

        Raises:
            UntrustedError: the lock file is a symlink or was not created by this user.
            OSError: the file cannot be created or opened.
        """
        if fcntl is None:
            raise OSError(errno.ENOSYS, "the spool needs POSIX file locks (fcntl.flock)", path)
        fd = _open_trusted(path, create=True)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        # Somebody may have deleted the path (and somebody else re-created it) between our open and
        # our flock: a lock on an unlinked inode protects nothing.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            return None
        return cls(path, fd)

    def read_owner(self, default_pid: int) -> Tuple[int, Optional[str]]:
        """Return the pid and start time the previous holder wrote, or ``default_pid``."""
        try:
            text = os.pread(self.fd, 64, 0).decode("ascii", "replace").split()
        except OSError:
            text = []
        pid = int(text[0]) if text and text[0].isdigit() else default_pid
        start = text[1] if len(text) > 1 else None
        return pid, start

    def write_owner(self) -> None:
        pid = os.getpid()
        line = f"{pid} {_process_start(pid) or '-'}\n".encode("ascii")
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, line, 0)

    def release(self, *, unlink: bool = False) -> None:
        if unlink:
            # Unlink while still holding the lock, so nobody locks the old inode in between. A
            # directory removed or replaced meanwhile (ENOENT, ENOTDIR) or made read-only leaves
            # nothing to do or nothing we can do; the lock is released all the same.
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        os.close(self.fd)


class _Adoption:
    """An orphan file whose oldest rows are being moved into ours, one step at a time.

    Its lock is held from the plan to the last step, so no other process adopts it meanwhile.
    The rows ``first..cutoff`` were given ids of our file in advance (``orphan id + offset``, a
    range reserved above every id our file had then), so they keep their place, ahead of
    records stored after the plan, however many steps the move takes.
    """

    __slots__ = ("cutoff", "lock", "moved", "next_id", "offset", "path", "rows", "size")

    def __init__(
        self, path: str, lock: _FileLock, offset: int, first: int, cutoff: int, rows: int, size: int
    ) -> None:
        self.path = path
        self.lock = lock
        self.offset = offset
        self.next_id = first  # the orphan's oldest row not moved yet
        self.cutoff = cutoff  # the orphan's newest row to move
        self.rows = rows  # rows still to move
        self.size = size  # their payload bytes, kept out of our room until moved
        self.moved = 0


class Spool:
    """A bounded, durable, oldest-first queue of entries on disk, shared safely between threads.

    Args:
        directory: where the spool files live; created (mode 0700) when missing. It must be owned
            by this user and not writable by group or others (see :func:`check_directory`).
            Several processes may share it: each writes its own file.
        max_bytes: bound on pending payload bytes (entry data plus the partition key's UTF-8
            bytes) held by this process's file. SQLite's page overhead is not counted, so the file
            on disk is somewhat larger. Must be at least 1.
        report: called with a one-line diagnostic (no secrets, no record contents) when something
            goes wrong on disk; None writes the line to ``sys.stderr``. It is called with the
            spool's lock held, so it must not call back into the spool.
        scan_interval: seconds between two directory scans for orphans made by :meth:`read` while
            the spool is empty; default ``None``: :data:`ORPHAN_SCAN_INTERVAL` (30 s, read when
            the spool is made); 0 scans on every such read.
        destination: where the records belong, for example ``{"project": ..., "stream": ...,
            "stream_id": ..., "endpoint": ...}`` (``None`` values are left out); stored in every
            file this spool creates. Only files with the same destination are reopened or
            adopted; default ``None`` (an empty destination).

    Raises:
        ConfigError: ``max_bytes`` is not a positive integer, or the directory is not trusted.
        OSError: the directory cannot be created, or no spool file could be locked.
    """

    def __init__(
        self,
        directory: str,
        max_bytes: int,
        *,
        report: Optional[Report] = None,
        scan_interval: Optional[float] = None,
        destination: Optional[Mapping[str, Optional[str]]] = None,
    ) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ConfigError("max_bytes", "must be a positive whole number of bytes")
        self.directory = os.path.abspath(os.fspath(directory))
        self.max_bytes = max_bytes
        self._report_to = report
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False
        self._conn: Optional[sqlite3.Connection] = None
        self._file_lock: Optional[_FileLock] = None
        self._path = ""
        self._records = 0
        self._bytes = 0
        self._next_scan = 0.0
        self._scan_interval = ORPHAN_SCAN_INTERVAL if scan_interval is None else scan_interval
        # The first read looks for orphans whatever the spool holds; later reads while it is empty.
        self._scan_due = True
        self._scan_lock = threading.Lock()  # one directory scan at a time (it runs unlocked)
        self._adoptions: List[_Adoption] = []  # planned, oldest first; moved by read()
        self._adopted = 0
        self._lost = 0
        self._destination = _encode_destination(destination)
        # Rows handed out by read(): id -> size, so a failed delete can still be accounted for.
        self._handed: Dict[int, int] = {}
        # Rows DIS acknowledged whose delete failed (a full disk): id -> size. They are no longer
        # pending, read() skips them, and the delete is tried again later.
        self._unsaved: Dict[int, int] = {}
        self._unsaved_retry_at = 0.0
        self._file_id: Optional[Tuple[int, int]] = None  # (device, inode) of our file
        self._file_check_at = 0.0
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        check_directory(self.directory)
        with self._lock:
            self._open_own_file()
        _LIVE_SPOOLS.add(self)

    def __repr__(self) -> str:
        return (
            f"Spool(path={self._path!r}, max_bytes={self.max_bytes}, "
            f"pending_records={self._records}, pending_bytes={self._bytes})"
        )

    @property
    def path(self) -> str:
        """The file this process writes (it changes after a fork or a corrupt file was replaced)."""
        return self._path

    @property
    def adopted(self) -> int:
        """Records this spool found on disk rather than received from :meth:`put` (cumulative).

        That is the records moved in from orphaned files, plus those already in its own file when
        it opened it (a file this process kept at an earlier close, for example before a
        ``dictConfig`` reconfiguration).
        """
        return self._adopted

    @property
    def adoption_pending(self) -> bool:
        """Whether a :meth:`read` now would look for orphans or move some in: the first read,
        a planned adoption, or an empty spool whose ``scan_interval`` has passed (so a sender with
        nothing to send still calls :meth:`read` now and then, and adopts the backlog of a
        process that died next to it)."""
        if self._closed:
            return False
        if self._scan_due or self._adoptions:
            return True
        return self._records == 0 and time.monotonic() >= self._next_scan

    @property
    def unsaved_acks(self) -> int:
        """Acknowledged records whose delete from disk failed and is still to be retried."""
        return len(self._unsaved)

    @property
    def lost(self) -> int:
        """Pending records that went with a file found corrupt while in use (cumulative)."""
        return self._lost

    @property
    def pending_records(self) -> int:
        """Records stored and not yet acknowledged, including adopted ones.

        Records acknowledged but not yet deleted (see :attr:`unsaved_acks`) are not pending.
        """
        with self._owned(reopen=False):
            return self._records

    @property
    def pending_bytes(self) -> int:
        """Payload bytes of the pending records (see ``max_bytes`` for what counts)."""
        with self._owned(reopen=False):
            return self._bytes

    def put(self, entries: Sequence[Entry]) -> int:
        """Store entries, oldest first, in one transaction, as far as ``max_bytes`` allows.

        Args:
            entries: ``(data, partition_key)`` pairs in the order they should be replayed.

        Returns:
            How many leading entries were stored: ``entries[n:]`` did not fit (or the disk failed)
            and the caller counts them as dropped. 0 after :meth:`close`.
        """
        rows: List[Tuple[bytes, Optional[bytes], int]] = []
        with self._owned():
            if self._closed or not entries:
                return 0
            self._check_file_locked()
            self._retry_unsaved_locked()
            room = self._room()
            for data, key in entries:
                size = _entry_size(data, key)
                if size > room:
                    break
                room -= size
                rows.append((bytes(data), _encode_key(key), size))
            if not rows:
                return 0
            for attempt in (1, 2):
                try:
                    conn = self._connection()
                    with conn:
                        conn.executemany(
                            "INSERT INTO records (data, partition_key, size) VALUES (?, ?, ?)", rows
                        )
                except (sqlite3.Error, OSError) as exc:
                    if attempt == 1 and self._recover(exc, "put"):
                        continue
                    self._report(f"spool put of {len(rows)} records failed: {exc}")
                    return 0
                break
            self._records += len(rows)
            self._bytes += sum(row[2] for row in rows)
            return len(rows)

    def read(
        self, max_records: int, max_bytes: int, *, after: int = 0
    ) -> Tuple[List[int], List[Entry]]:
        """Return the oldest pending entries without removing them.

        The first read, and a read of an empty spool once ``scan_interval`` has passed, also look
        for dead processes' files and plan their adoption (see the module docstring); each read
        then moves one step (:data:`ADOPT_STEP_ROWS` rows) of a planned adoption into this file
        first. Entries stored after the plan are returned only once all of it was moved.

        Args:
            max_records: at most this many entries (at least 1 is asked for).
            max_bytes: stop before the payload bytes exceed this, except that the first entry is
                always returned so a large record cannot block the queue.
            after: only entries whose id is greater (default 0: from the oldest). Lets a caller with
                several batches in flight read past the ones it has not acknowledged yet.

        Returns:
            ``(ids, entries)`` of equal length, oldest first; empty when nothing is pending. Pass
            the ids to :meth:`ack` once DIS has stored the entries.
        """
        if max_records >= 1:
            self._scan_if_due()
        with self._owned():
            if self._closed or max_records < 1:
                return [], []
            self._check_file_locked()
            self._retry_unsaved_locked()
            if self._adoptions:
                self._adopt_step_locked()
            # Rows of a planned adoption not moved yet come before any row with a higher id.
            before = self._adoption_bound()
            unsaved = self._unsaved
            try:
                cursor = self._connection().execute(
                    "SELECT id, data, partition_key, size FROM records WHERE id > ? AND id < ?"
                    " ORDER BY id LIMIT ?",
                    (after, before, max_records + len(unsaved)),
                )
                rows = cursor.fetchall()
            except (sqlite3.Error, OSError) as exc:
                if not self._recover(exc, "read"):
                    self._report(f"spool read failed: {exc}")
                return [], []
            ids: List[int] = []
            entries: List[Entry] = []
            total = 0
            for row_id, data, key, size in rows:
                if row_id in unsaved:
                    continue  # acknowledged already; only its delete is outstanding
                if ids and (total + size > max_bytes or len(ids) >= max_records):
                    break
                total += size
                ids.append(row_id)
                entries.append((bytes(data), _decode_key(key)))
                self._handed[row_id] = size
        return ids, entries

    def ack(self, ids: Sequence[int]) -> None:
        """Delete entries that DIS acknowledged; unknown or repeated ids are ignored.

        Args:
            ids: ids returned by :meth:`read`.

        When the delete fails (a full disk), the entries are remembered as acknowledged in memory:
        they stop counting as pending, :meth:`read` skips them, and the delete is tried again on
        later calls and at :meth:`close`. Only a process killed before that retry succeeds
        replays them (at-least-once delivery).
        """
        with self._owned():
            if self._closed or not ids:
                return
            unique = sorted(set(ids))
            try:
                removed, removed_bytes = self._delete_locked(unique)
            except (sqlite3.Error, OSError) as exc:
                if self._recover(exc, "ack"):
                    return
                self._remember_acks(unique, exc)
                return
            for row_id in unique:
                self._handed.pop(row_id, None)
            self._records -= removed
            self._bytes -= removed_bytes
            self._retry_unsaved_locked()
            if self._records == 0 and removed and not self._unsaved:
                self._shrink(self._connection())

    def adopt_orphans(self) -> int:
        """Move the records of spool files whose owner process is gone into this spool now.

        Files held by a live owner are left alone. Orphan records beyond ``max_bytes`` stay in their
        file for a later call. Empty orphans are deleted; unreadable ones are moved aside.

        Returns:
            How many records were adopted.
        """
        with self._owned():
            if self._closed:
                return 0
            before = self._adopted
        self._scan_if_due(force=True)
        while True:
            with self._owned():
                if self._closed or not self._adoptions or not self._adopt_step_locked():
                    return self._adopted - before

    def close(self) -> None:
        """Close the file; delete it when nothing is pending, else keep it for the next process.

        Idempotent. In a forked child that never used the spool, it only forgets the parent's state.
        """
        with self._owned(reopen=False):
            if self._closed:
                return
            if self._records:
                # Records are kept for the next process only if our file is still where it
                # can find them: a file deleted since the last check is copied now.
                self._file_check_at = 0.0
                self._check_file_locked()
            self._closed = True
            _LIVE_SPOOLS.discard(self)
            if self._unsaved:
                self._unsaved_retry_at = 0.0
                self._retry_unsaved_locked()
            self._drop_adoptions()  # what is not moved yet stays in its file for the next process
            # With nothing pending, every row left is acknowledged: the whole file can go.
            self._close_file(delete=self._records == 0)

    # -- internals -------------------------------------------------------------------------------

    def _owned(self, *, reopen: bool = True) -> threading.Lock:
        """Return the lock after making sure this process owns the open file (fork check)."""
        if os.getpid() != self._pid:
            # uwsgi and friends may fork without running the at-fork hooks.
            self._forget_parent()
        if reopen and self._conn is None and not self._closed:
            with self._lock:
                if self._conn is None and not self._closed:
                    try:
                        self._open_own_file()
                    except OSError as exc:
                        self._report(f"spool could not open a file in {self.directory}: {exc}")
        return self._lock

    def _forget_parent(self) -> None:
        """In a forked child: drop the parent's connection, lock and counters, closing nothing."""
        if os.getpid() == self._pid:
            return
        self._pid = os.getpid()
        self._lock = threading.Lock()  # the parent's may have been held by another thread at fork
        if self._conn is not None:
            _INHERITED.append(self._conn)
        self._conn = None
        if self._file_lock is not None:
            # Closing our copy of the descriptor keeps the parent's flock (it is released only by
            # LOCK_UN or when every descriptor of the open file is closed).
            os.close(self._file_lock.fd)
        self._file_lock = None
        for adoption in self._adoptions:
            os.close(adoption.lock.fd)  # the parent goes on moving it; its flock stays
        self._adoptions = []
        self._scan_lock = threading.Lock()
        self._path = ""
        self._records = self._bytes = self._adopted = self._lost = 0
        self._handed = {}
        self._unsaved = {}
        self._next_scan = 0.0
        self._scan_due = True

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._open_own_file()
        assert self._conn is not None
        return self._conn

    def _open_own_file(self, *, avoid: str = "", empty: bool = False) -> None:
        """Lock and open ``dis-spool-<pid>[-n].sqlite`` of our destination.

        Names whose files belong to another destination, or that this user did not create, are
        skipped; a corrupt leftover is moved aside. Records already in the file (this process
        kept it at an earlier close) count as adopted.

        Args:
            avoid: a path not to use (the file that went missing, see :meth:`_check_file_locked`).
            empty: skip files that hold records.
        """
        pid = os.getpid()
        for suffix in range(MAX_NAME_SUFFIX + 1):
            name = f"{FILE_PREFIX}{pid}{'' if suffix == 0 else f'-{suffix}'}{FILE_SUFFIX}"
            path = os.path.join(self.directory, name)
            if path == avoid:
                continue
            try:
                file_lock = _FileLock.try_acquire(path + LOCK_SUFFIX)
            except UntrustedError as exc:
                self._report(f"spool skips a file it did not create: {exc}")
                continue
            if file_lock is None:
                continue
            conn = self._open_locked_file(path, file_lock)
            if conn is not None and empty and conn.execute("SELECT 1 FROM records").fetchone():
                conn.close()
                file_lock.release()
                continue
            if conn is not None:
                break
        else:
            raise OSError(
                errno.EBUSY, "every spool file name for this pid is locked", self.directory
            )
        file_lock.write_owner()
        self._conn = conn
        self._file_lock = file_lock
        self._path = path
        self._pid = pid
        self._remember_file()
        self._records, self._bytes = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM records"
        ).fetchone()
        if self._records:
            self._adopted += self._records
            self._report(
                f"spool reopened {name} with {self._records} pending records (counted as adopted)"
            )

    def _open_locked_file(self, path: str, file_lock: _FileLock) -> Optional[sqlite3.Connection]:
        """Open our candidate file under its lock; None (lock released) when it is not usable."""
        try:
            # No quick_check: it reads the whole file (0.25 s for 256 MiB) while the persist step
            # waits for the spool to open, and damage it would find is found by the first read
            # that reaches it (see _recover) with the same outcome. Orphans are checked in full.
            return self._connect(path, check=True, create=True, thorough=False)
        except _ForeignError:
            file_lock.release()
            return None
        except UntrustedError as exc:
            file_lock.release()
            self._report(f"spool skips a file it did not create: {exc}")
            return None
        except sqlite3.Error as exc:
            if not _is_corruption(exc):
                file_lock.release()
                raise OSError(errno.EIO, f"cannot open spool file: {exc}", path) from exc
            self._move_aside(path, exc)
        except BaseException:
            file_lock.release()
            raise
        try:
            return self._connect(path, check=False, create=True)
        except BaseException:
            file_lock.release()
            raise

    def _connect(
        self, path: str, *, check: bool, create: bool, thorough: bool = True
    ) -> sqlite3.Connection:
        """Open and prepare a spool file of our destination; ``check`` looks at its write-ahead
        log and, when ``thorough`` too, runs a quick_check (which reads the whole file).

        The file is opened first without following symlinks and checked for owner and mode
        (created exclusively, mode 0600, when missing and ``create``); SQLite then opens the same
        inode by name.

        Raises:
            UntrustedError: the file, its ``-wal`` or ``-shm`` is not a private file of ours.
            _ForeignError: the file records another destination, or none (schema version 1).
            _NewerError: the file has a schema version above ours.
            sqlite3.Error: SQLite cannot use it (see :func:`_is_corruption`).
            OSError: it cannot be opened (FileNotFoundError when missing and not ``create``).
        """
        fd = _open_trusted(path, create=create)
        try:
            existed = os.fstat(fd).st_size > 0
            _check_sidecars(path)
            if existed and check:
                self._check_wal(path)
            conn = sqlite3.connect(path, timeout=1.0, isolation_level=None, check_same_thread=False)
        finally:
            held = os.fstat(fd).st_ino
            os.close(fd)
        try:
            if os.lstat(path).st_ino != held:
                raise UntrustedError(errno.EPERM, "replaced while being opened", path)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if existed and version == _UNKNOWN_DESTINATION_VERSION:
                raise _ForeignError(path)
            if existed and version > SCHEMA_VERSION:
                raise _NewerError(path, version)
            if version not in (0, SCHEMA_VERSION):
                raise _CorruptError(f"unknown spool schema version {version}")
            if existed and version == SCHEMA_VERSION:
                row = conn.execute("SELECT value FROM meta WHERE key = 'destination'").fetchone()
                if row is None or _canonical_destination(str(row[0])) != self._destination:
                    raise _ForeignError(path, None if row is None else str(row[0]))
            # A fresh file must get auto_vacuum before its first table exists.
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            if existed and check and thorough:
                verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
                if verdict != "ok":
                    raise _CorruptError(f"quick_check: {verdict}")
            if version != SCHEMA_VERSION:
                conn.execute(_SCHEMA)
                conn.execute(_META_SCHEMA)
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('destination', ?)",
                    (self._destination,),
                )
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            # Let `with conn:` commit explicitly while each statement outside it autocommits.
            conn.isolation_level = "DEFERRED"
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_wal(self, path: str) -> None:
        """Report a write-ahead log SQLite would read only in part (see :func:`_wal_damage`),
        keeping a copy of it beside the file; SQLite then reads what it can, as always."""
        damage = _wal_damage(path)
        if damage is None:
            return
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time() % 1:.6f}"[1:]
        target = f"{path}.corrupt-{stamp}-wal"
        try:
            with open(path + "-wal", "rb") as source:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as copy:
                    while True:
                        chunk = source.read(1 << 20)
                        if not chunk:
                            break
                        copy.write(chunk)
            kept = f"; a copy of the log is kept as {target}"
        except OSError as exc:
            kept = f"; no copy of the log could be kept ({exc})"
        self._report(
            f"spool file {path} has a damaged write-ahead log ({damage}): the records SQLite "
            f"cannot read past the damage are lost, the rest is delivered{kept}"
        )

    def _delete_locked(self, ids: Sequence[int]) -> Tuple[int, int]:
        """Delete rows by id in one transaction; return (rows, payload bytes) removed.

        Raises:
            sqlite3.Error: the delete failed (for example on a full disk); nothing was removed.
            OSError: likewise.
        """
        conn = self._connection()
        removed = removed_bytes = 0
        with conn:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                count, size = conn.execute(
                    f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM records WHERE id IN ({marks})",
                    chunk,
                ).fetchone()
                conn.execute(f"DELETE FROM records WHERE id IN ({marks})", chunk)
                removed += count
                removed_bytes += size
        return removed, removed_bytes

    def _remember_acks(self, ids: Sequence[int], exc: BaseException) -> None:
        """Keep acknowledged ids whose delete failed, so they are never read (and sent) again."""
        remembered = 0
        for row_id in ids:
            size = self._handed.pop(row_id, None)
            if size is None or row_id in self._unsaved:
                continue  # not a pending row this spool handed out: nothing to account for
            self._unsaved[row_id] = size
            self._records -= 1
            self._bytes -= size
            remembered += 1
        self._unsaved_retry_at = time.monotonic() + UNSAVED_RETRY_INTERVAL
        self._report(
            f"spool ack failed: {exc}; {remembered} acknowledged records are remembered in"
            f" memory ({len(self._unsaved)} in all) and will not be sent again"
        )

    def _retry_unsaved_locked(self) -> None:
        """Try again to delete remembered acknowledgements, at most every few seconds."""
        if not self._unsaved or time.monotonic() < self._unsaved_retry_at:
            return
        ids = sorted(self._unsaved)
        try:
            self._delete_locked(ids)
        except (sqlite3.Error, OSError):
            self._unsaved_retry_at = time.monotonic() + UNSAVED_RETRY_INTERVAL
            return
        self._unsaved = {}
        self._report(f"spool saved {len(ids)} remembered acknowledgements to disk")

    def _close_file(self, *, delete: bool) -> None:
        conn, file_lock = self._conn, self._file_lock
        self._conn = None
        self._file_lock = None
        if conn is not None:
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                self._report(f"spool checkpoint failed at close: {exc}")
            conn.close()
        if file_lock is not None:
            if delete:
                self._unlink_files(self._path)
            file_lock.release(unlink=delete)

    @staticmethod
    def _unlink_files(path: str) -> None:
        """Delete a spool file and its ``-wal``/``-shm``; one that cannot be deleted (its
        directory removed, replaced by a file or read-only) is left: an empty leftover is
        deleted by the next process that adopts it, and nothing here may raise."""
        for extra in ("-wal", "-shm", ""):
            with contextlib.suppress(OSError):
                os.unlink(path + extra)

    def _shrink(self, conn: sqlite3.Connection) -> None:
        """Give disk space back once the spool is empty (free pages and the WAL)."""
        try:
            conn.execute("PRAGMA incremental_vacuum")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            self._report(f"spool could not shrink {self._path}: {exc}")

    def _recover(self, exc: BaseException, operation: str) -> bool:
        """Replace this process's file when ``exc`` says it is corrupt; True when replaced."""
        if not isinstance(exc, sqlite3.Error) or not _is_corruption(exc) or self._conn is None:
            return False
        lost = self._records
        self._lost += lost
        path = self._path
        conn, self._conn = self._conn, None
        try:
            # Close before moving: closing deletes "<path>-wal" by name, which must still be ours.
            conn.close()
        except sqlite3.Error as close_exc:
            self._report(f"spool could not close corrupt file {path}: {close_exc}")
        self._move_aside(path, exc, lost=lost)
        self._handed = {}
        self._unsaved = {}
        # Ids reserved for planned adoptions were in the lost file: plan them again in the new one.
        self._drop_adoptions()
        self._scan_due = True
        try:
            self._conn = self._connect(path, check=False, create=True)
            self._remember_file()
        except (OSError, sqlite3.Error) as again:
            self._report(f"spool could not recreate {path} during {operation}: {again}")
            self._records = self._bytes = 0
            return False
        self._records = self._bytes = 0
        return True

    def _move_aside(self, path: str, exc: BaseException, *, lost: Optional[int] = None) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time() % 1:.6f}"[1:]
        target = f"{path}.corrupt-{stamp}"
        try:
            os.replace(path, target)
            if os.path.exists(path + "-wal"):
                os.replace(path + "-wal", target + "-wal")
        except OSError as move_exc:
            self._report(f"spool could not move corrupt file {path} aside: {move_exc}")
            self._unlink_files(path)
            return
        for extra in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path + extra)
        detail = "" if lost is None else f"; {lost} pending records lost"
        self._report(f"spool file {path} is unreadable ({exc}); moved to {target}{detail}")

    def _remember_file(self) -> None:
        """Note which file our connection writes, to notice when it is deleted or replaced."""
        try:
            info = os.stat(self._path)
        except OSError:
            self._file_id = None
            return
        self._file_id = (info.st_dev, info.st_ino)
        self._file_check_at = time.monotonic() + FILE_CHECK_INTERVAL

    def _check_file_locked(self) -> None:
        """Every :data:`FILE_CHECK_INTERVAL`: when our file is no longer at its path (its
        directory or the file was deleted or replaced), copy what it holds to a new file.

        Writes to a deleted file still succeed, but no later process can adopt it: its records
        would be lost with this process. Until a new file can be made (the directory cannot be
        created, a full disk), they stay in the old one and the check is repeated.
        """
        conn = self._conn
        if conn is None or self._file_id is None or time.monotonic() < self._file_check_at:
            return
        self._file_check_at = time.monotonic() + FILE_CHECK_INTERVAL
        try:
            info = os.stat(self._path)
            if (info.st_dev, info.st_ino) == self._file_id:
                return
        except OSError:
            pass
        old_path, old_lock, old_id = self._path, self._file_lock, self._file_id
        records, size, adopted = self._records, self._bytes, self._adopted
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            check_directory(self.directory)
            self._conn = self._file_lock = None
            self._open_own_file(avoid=old_path, empty=True)
        except (OSError, ConfigError) as exc:
            self._conn, self._file_lock, self._path = conn, old_lock, old_path
            self._file_id = old_id
            self._report(
                f"spool file {old_path} was deleted or replaced while in use, and no new file"
                f" can be made ({exc}): its {records} pending records are only in this"
                " process until one can"
            )
            return
        try:
            self._copy_rows(conn, self._connection())
        except (sqlite3.Error, OSError) as exc:
            new_conn, new_lock, new_path = self._conn, self._file_lock, self._path
            self._conn, self._file_lock, self._path = conn, old_lock, old_path
            self._file_id = old_id  # still missing: the next check tries again
            self._records, self._bytes, self._adopted = records, size, adopted
            if new_conn is not None:
                new_conn.close()
            if new_lock is not None:
                self._unlink_files(new_path)
                new_lock.release(unlink=True)
            self._report(
                f"spool file {old_path} was deleted or replaced while in use, and copying its"
                f" {records} pending records to a new file failed ({exc}); tried again later"
            )
            return
        self._records, self._bytes, self._adopted = records, size, adopted
        self._unsaved = {}  # acknowledged rows were left behind with the old file
        # Closing a connection deletes "<path>-wal" by name, which may be somebody else's now:
        # the old connection is parked for the rest of the process instead.
        _INHERITED.append(conn)
        if old_lock is not None:
            os.close(old_lock.fd)
        self._report(
            f"spool file {old_path} was deleted or replaced while in use: its {records} pending"
            f" records were copied to {self._path}"
        )

    def _copy_rows(self, source: sqlite3.Connection, target: sqlite3.Connection) -> None:
        """Copy our pending rows, ids and id sequence included, to a new (empty) file."""
        row = source.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
        with target:
            cursor = source.execute("SELECT id, data, partition_key, size FROM records ORDER BY id")
            while True:
                rows = cursor.fetchmany(ADOPT_STEP_ROWS)
                if not rows:
                    break
                target.executemany(
                    "INSERT INTO records (id, data, partition_key, size) VALUES (?, ?, ?, ?)",
                    [r for r in rows if r[0] not in self._unsaved],
                )
            if row is not None:
                target.execute("DELETE FROM sqlite_sequence WHERE name = 'records'")
                target.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES ('records', ?)", (row[0],)
                )

    def _room(self) -> int:
        """Payload bytes that may still be stored: ``max_bytes`` less what is pending and what
        planned adoptions will move in (caller holds the lock)."""
        return self.max_bytes - self._bytes - sum(adoption.size for adoption in self._adoptions)

    def _adoption_bound(self) -> int:
        """The id of our file where unmoved adopted rows start: reads stop before it."""
        if not self._adoptions:
            return sys.maxsize
        first = self._adoptions[0]
        return first.next_id + first.offset

    def _scan_if_due(self, *, force: bool = False) -> int:
        """Look for orphans when due (first read, or empty and ``scan_interval`` passed) and plan
        their adoption; return how many records were planned.

        The orphans are opened and checked without the spool's lock, so writers never wait for
        that; only the plan itself (a few rows of our file) takes it.
        """
        with self._owned():
            if self._closed:
                return 0
            due = force or self._scan_due
            if not due and not self._adoptions and self._records == 0:
                due = time.monotonic() >= self._next_scan
            if not due:
                return 0
            self._scan_due = False
            self._next_scan = time.monotonic() + self._scan_interval
        if not self._scan_lock.acquire(blocking=force):
            return 0  # another thread scans right now
        try:
            return self._scan()
        finally:
            self._scan_lock.release()

    def _scan(self) -> int:
        planned = 0
        pattern = os.path.join(glob.escape(self.directory), f"{FILE_PREFIX}*{FILE_SUFFIX}")
        for path in sorted(glob.glob(pattern), key=self._age):
            match = _NAME_RE.match(os.path.basename(path))
            with self._lock:
                if self._closed or self._room() <= 0:
                    break
                if match is None or path == self._path:
                    continue
                if any(adoption.path == path for adoption in self._adoptions):
                    continue
            try:
                planned += self._plan(path, int(match.group(1)))
            except UntrustedError as exc:
                self._report(f"spool skips a file it did not create: {exc}")
            except (OSError, sqlite3.Error) as exc:
                self._report(f"spool could not adopt {path}: {exc}")
        return planned

    @staticmethod
    def _age(path: str) -> float:
        try:
            return os.path.getmtime(path)
        except OSError:
            return 0.0

    def _plan(self, path: str, name_pid: int) -> int:
        """Take one orphan file over and plan the move of its oldest rows that fit; return how
        many rows that is (0 when it has a live owner, belongs elsewhere, or nothing fits)."""
        file_lock = _FileLock.try_acquire(path + LOCK_SUFFIX)
        if file_lock is None:
            return 0
        if _is_owner_alive(*file_lock.read_owner(name_pid)):
            # The owner closed its spool but still runs; it may open the file again.
            file_lock.release()
            return 0
        try:
            orphan = self._connect(path, check=True, create=False)
        except FileNotFoundError:  # adopted and deleted by another process meanwhile
            file_lock.release(unlink=True)
            return 0
        except _NewerError as exc:  # a newer version's backlog: left for a process of it
            file_lock.release()
            self._report(
                f"spool leaves {os.path.basename(path)} alone: it was written by a newer version"
                f" of dis-logging (spool schema {exc.args[1]}, ours {SCHEMA_VERSION}), whose"
                " processes adopt it"
            )
            return 0
        except _ForeignError as exc:  # another destination's backlog: left for its own handler
            file_lock.release()
            # Its owner is gone, so nobody sends it until a handler of its destination starts
            # (a stream or endpoint changed since, say): said once per report window.
            where = exc.args[1] if len(exc.args) > 1 and exc.args[1] else "not recorded"
            self._report(
                f"spool leaves a backlog of another destination: {os.path.basename(path)} "
                f"(destination {where}) waits for a handler with that stream, project and "
                "endpoint"
            )
            return 0
        except sqlite3.Error as exc:
            if _is_corruption(exc):
                self._move_aside(path, exc)
                file_lock.release(unlink=True)
                return 0
            file_lock.release()
            raise
        except BaseException:
            file_lock.release()
            raise
        adoption: Optional[_Adoption] = None
        try:
            with self._lock:
                room = self._room()
            fit = self._fit(orphan, room)  # the long part, without our lock
            with self._lock:
                if not self._closed and os.getpid() == self._pid and self._conn is not None:
                    if self._room() < room:  # writes took room meanwhile: fit again, rarely
                        fit = self._fit(orphan, self._room())
                    adoption = self._reserve(path, file_lock, *fit)
                    if adoption is not None:
                        self._adoptions.append(adoption)
        except BaseException:
            file_lock.release()
            raise
        finally:
            orphan.close()
        if adoption is not None:
            return adoption.rows
        if fit[2] == 0 and not fit[4]:  # empty: nothing left to adopt
            self._unlink_files(path)
            file_lock.release(unlink=True)
        else:
            file_lock.release()
        return 0

    @staticmethod
    def _fit(orphan: sqlite3.Connection, room: int) -> Tuple[int, int, int, int, bool]:
        """The orphan's oldest rows whose payload fits ``room``: ``(first id, last id, rows,
        bytes, whether rows are left beyond them)``."""
        first = cutoff = count = size = 0
        remaining = False
        for row_id, row_size in orphan.execute("SELECT id, size FROM records ORDER BY id"):
            if row_size > room:
                remaining = True
                break
            room -= row_size
            if count == 0:
                first = row_id
            cutoff = row_id
            count += 1
            size += row_size
        return first, cutoff, count, size, remaining

    def _reserve(
        self,
        path: str,
        file_lock: _FileLock,
        first: int,
        cutoff: int,
        rows: int,
        size: int,
        _remaining: bool,
    ) -> Optional[_Adoption]:
        """Reserve ids in our file for the rows ``first..cutoff`` of an orphan (caller holds the
        lock); ``None`` when there is nothing to move or our file cannot be written."""
        if rows == 0:
            return None
        conn = self._connection()
        try:
            with conn:
                row = conn.execute(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'records'"
                ).fetchone()
                top = max(
                    0 if row is None else int(row[0]),
                    int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM records").fetchone()[0]),
                )
                last = top + cutoff - first + 1
                if row is None:
                    conn.execute(
                        "INSERT INTO sqlite_sequence (name, seq) VALUES ('records', ?)", (last,)
                    )
                else:
                    conn.execute(
                        "UPDATE sqlite_sequence SET seq = ? WHERE name = 'records'", (last,)
                    )
        except (sqlite3.Error, OSError) as exc:
            self._report(f"spool could not adopt {path}: {exc}")
            return None
        return _Adoption(path, file_lock, top + 1 - first, first, cutoff, rows, size)

    def _adopt_step_locked(self) -> bool:
        """Move the next step of the oldest planned adoption into our file (caller holds the
        lock); ``False`` when it failed and the adoption was given up for now."""
        adoption = self._adoptions[0]
        conn = self._connection()
        try:
            conn.execute("ATTACH DATABASE ? AS orphan", (adoption.path,))
        except (sqlite3.Error, OSError) as exc:
            self._give_up_adoption(adoption, exc)
            return False
        try:
            with conn:
                ids = conn.execute(
                    "SELECT id, size FROM orphan.records WHERE id >= ? AND id <= ?"
                    " ORDER BY id LIMIT ?",
                    (adoption.next_id, adoption.cutoff, ADOPT_STEP_ROWS),
                ).fetchall()
                last = adoption.cutoff
                moved = moved_bytes = 0
                for row_id, row_size in ids:
                    if moved and moved_bytes + row_size > ADOPT_STEP_BYTES:
                        break
                    last = row_id
                    moved += 1
                    moved_bytes += row_size
                if len(ids) < ADOPT_STEP_ROWS and moved == len(ids):
                    last = adoption.cutoff  # the whole rest of the plan
                if moved:
                    conn.execute(
                        "INSERT INTO main.records (id, data, partition_key, size)"
                        " SELECT id + ?, data, partition_key, size FROM orphan.records"
                        " WHERE id >= ? AND id <= ? ORDER BY id",
                        (adoption.offset, adoption.next_id, last),
                    )
                    # Not atomic across the two files: a crash right here replays these rows
                    # twice, which at-least-once delivery allows (SQLite commits ours first).
                    conn.execute(
                        "DELETE FROM orphan.records WHERE id >= ? AND id <= ?",
                        (adoption.next_id, last),
                    )
                done = last >= adoption.cutoff
                empty = (
                    done and conn.execute("SELECT 1 FROM orphan.records LIMIT 1").fetchone() is None
                )
        except (sqlite3.Error, OSError) as exc:
            self._detach(conn)
            self._give_up_adoption(adoption, exc)
            return False
        self._detach(conn)
        adoption.next_id = last + 1
        adoption.rows -= moved
        adoption.size -= moved_bytes
        adoption.moved += moved
        self._records += moved
        self._bytes += moved_bytes
        self._adopted += moved
        if done:
            self._adoptions.pop(0)
            if empty:
                self._unlink_files(adoption.path)
            adoption.lock.release(unlink=empty)
            if adoption.moved:
                self._report(
                    f"spool adopted {adoption.moved} records from {os.path.basename(adoption.path)}"
                )
        return True

    def _detach(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("DETACH DATABASE orphan")
        except sqlite3.Error as exc:
            self._report(f"spool could not detach an adopted file: {exc}")

    def _give_up_adoption(self, adoption: _Adoption, exc: BaseException) -> None:
        """Stop moving an orphan after an error; what is not moved stays in its file (and is
        looked at again by a later scan)."""
        self._adoptions.remove(adoption)
        adoption.lock.release()
        self._report(
            f"spool could not adopt {os.path.basename(adoption.path)}: {exc}; its {adoption.rows}"
            " records not moved yet stay in that file for a later attempt"
        )

    def _drop_adoptions(self) -> None:
        """Let go of every planned adoption, leaving what is not moved in its file (caller holds
        the lock)."""
        adoptions, self._adoptions = self._adoptions, []
        for adoption in adoptions:
            adoption.lock.release()

    def _report(self, message: str) -> None:
        if self._report_to is not None:
            try:
                self._report_to(message)
            except Exception as exc:  # noqa: BLE001 - a broken callback must not break the spool
                message = f"{message} (report callable failed: {type(exc).__name__})"
            else:
                return
        try:
            sys.stderr.write(f"dis-logging: {message}\n")
        except (OSError, ValueError, AttributeError):
            return  # stderr closed or missing: nowhere left to say it
