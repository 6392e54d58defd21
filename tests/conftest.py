"""Shared fixtures: a running DIS emulator, a ready stream, clean logging and environment, the
DIS protobuf messages built by the protobuf runtime, and a misbehaving raw-socket server."""

from __future__ import annotations

import errno
import functools
import logging
import os
import shutil
import socket
import struct
import subprocess
import threading
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from dis_logging.emulator import DISEmulator


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    """Skip tests marked ``slow`` unless the marker expression names them (``-m slow``)."""
    if "slow" in (config.getoption("markexpr", default="") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


ENV_PREFIXES = ("HUAWEICLOUD_SDK_", "DIS_LOGGING_")

# (field number, field name, type, label, message type) of the proto2 messages in DIS-API.md
# section 6; types and labels are FieldDescriptorProto's numbers (9 string, 12 bytes, 3 int64,
# 5 int32, 11 message; 1 optional, 2 required, 3 repeated).
_STRING, _BYTES, _INT64, _INT32, _MESSAGE = 9, 12, 3, 5, 11
_OPTIONAL, _REQUIRED, _REPEATED = 1, 2, 3
DIS_PROTO_MESSAGES: Dict[str, List[Tuple[int, str, int, int, str]]] = {
    "PutRecordsRequest": [
        (1, "streamName", _STRING, _REQUIRED, ""),
        (30, "streamId", _STRING, _REQUIRED, ""),
        (2, "records", _MESSAGE, _REPEATED, "PutRecordsRequestEntry"),
    ],
    "PutRecordsRequestEntry": [
        (3, "data", _BYTES, _OPTIONAL, ""),
        (4, "explicitHashKey", _STRING, _OPTIONAL, ""),
        (5, "partitionKey", _STRING, _OPTIONAL, ""),
        (6, "partitionId", _STRING, _OPTIONAL, ""),
        (29, "timestamp", _INT64, _OPTIONAL, ""),
    ],
    "PutRecordsResult": [
        (21, "failedRecordCount", _INT32, _REQUIRED, ""),
        (22, "records", _MESSAGE, _REPEATED, "PutRecordsResultEntry"),
    ],
    "PutRecordsResultEntry": [
        (23, "shardId", _STRING, _OPTIONAL, ""),
        (24, "sequenceNumber", _STRING, _OPTIONAL, ""),
        (25, "errorCode", _STRING, _OPTIONAL, ""),
        (26, "errorMessage", _STRING, _OPTIONAL, ""),
    ],
    "GetRecordsResult": [
        (14, "nextShardIterator", _STRING, _REQUIRED, ""),
        (16, "records", _MESSAGE, _REPEATED, "Record"),
    ],
    "Record": [
        (17, "partitionKey", _STRING, _OPTIONAL, ""),
        (18, "sequenceNumber", _STRING, _REQUIRED, ""),
        (19, "data", _BYTES, _OPTIONAL, ""),
        (27, "timestamp", _INT64, _OPTIONAL, ""),
        (28, "timestampType", _STRING, _OPTIONAL, ""),
    ],
}


@pytest.fixture(scope="session")
def proto_classes() -> Dict[str, Any]:
    """Message classes of DIS-API.md section 6, built at run time by the protobuf runtime."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    file_proto = descriptor_pb2.FileDescriptorProto(
        name="dis_test.proto", package="dis", syntax="proto2"
    )
    for name, fields in DIS_PROTO_MESSAGES.items():
        message = file_proto.message_type.add(name=name)
        for number, field_name, kind, label, type_name in fields:
            field = message.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = f".dis.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"dis.{name}"))
        for name in DIS_PROTO_MESSAGES
    }


@pytest.fixture
def emulator() -> Iterator[DISEmulator]:
    """A started DISEmulator on 127.0.0.1 and a free port, stopped after the test."""
    emu = DISEmulator()
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def service_env(emulator: DISEmulator) -> Callable[..., Dict[str, str]]:
    """Build the environment of a deployed service pointing at ``emulator``, for subprocesses.

    The inherited ``HUAWEICLOUD_SDK_*``, ``DIS_LOGGING_*`` and ``DJANGO_*`` variables are dropped;
    the emulator's AK/SK and project id and its URL (for region cn-north-4) are set; keyword
    arguments add or override variables (``DIS_LOGGING_ENDPOINT`` wins over the region's URL).
    """

    def build(**variables: str) -> Dict[str, str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("HUAWEICLOUD_SDK_", "DIS_LOGGING_", "DJANGO_"))
        }
        env.update(
            HUAWEICLOUD_SDK_AK=emulator.ak,
            HUAWEICLOUD_SDK_SK=emulator.sk,
            HUAWEICLOUD_SDK_PROJECT_ID=emulator.project_id,
            HUAWEICLOUD_SDK_REGION_DIS_CN_NORTH_4=emulator.url,
        )
        env.update(variables)
        return env

    return build


@pytest.fixture
def package_frames() -> Callable[..., str]:
    """Render an exception's traceback with the local variables of every frame, leaving out the
    first ``skip`` frames (default 1: the test's own, which holds what it passed on purpose)."""

    def render(error: BaseException, skip: int = 1) -> str:
        frame = error.__traceback__
        for _ in range(skip):
            assert frame is not None
            frame = frame.tb_next
        text = traceback.TracebackException(type(error), error, frame, capture_locals=True)
        return "".join(text.format())

    return render


@pytest.fixture
def stream(emulator: DISEmulator) -> str:
    """Name of a 2-partition stream ("test-stream") created on ``emulator``."""
    emulator.create_stream("test-stream", partitions=2)
    return "test-stream"


@pytest.fixture
def make_context_handler(emulator: DISEmulator, stream: str) -> Iterator[Callable[..., Any]]:
    """Make a DISHandler with the request-context filter on the named loggers (at INFO), for the
    framework integration tests; every handler is detached and closed after the test."""
    from dis_logging.context import RequestContextFilter
    from dis_logging.handler import DISHandler

    made: List[Tuple[Any, List[logging.Logger]]] = []

    def make(*logger_names: str) -> Any:
        handler = DISHandler(
            stream_name=stream,
            endpoint=emulator.url,
            project_id=emulator.project_id,
            ak=emulator.ak,
            sk=emulator.sk,
            flush_interval=0.05,
        )
        handler.addFilter(RequestContextFilter())
        loggers = [logging.getLogger(name) for name in logger_names]
        for logger in loggers:
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
        made.append((handler, loggers))
        return handler

    yield make
    for handler, loggers in made:
        for logger in loggers:
            logger.removeHandler(handler)
        handler.close()


@pytest.fixture(autouse=True)
def _clean_logging_and_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Clear the environment variables the library reads and restore the root logger afterwards."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES):
            monkeypatch.delenv(name)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


class SmallFS:
    """A small tmpfs mounted for one test (see the ``small_fs`` fixture), to fill for real.

    Attributes:
        path: the mount point, an empty directory with mode 0700.
    """

    #: Size of the file system: room for a few MiB of spool, small enough to fill at once.
    SIZE = "4m"

    def __init__(self, path: Path) -> None:
        self.path = path

    def fill(self) -> Path:
        """Write a filler file until the file system reports ENOSPC; return its path."""
        filler = self.path / "filler"
        chunk = b"\0" * 65536
        with open(filler, "wb", buffering=0) as out:
            while True:
                try:
                    out.write(chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    if len(chunk) == 1:
                        return filler
                    chunk = chunk[: len(chunk) // 2]


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[SmallFS]:
    """A real, small file system (a tmpfs, root only) for full-disk tests; skips when impossible."""
    mount = tmp_path / "smallfs"
    mount.mkdir(mode=0o700)
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a real full disk needs root to mount a small tmpfs")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SmallFS.SIZE},mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield SmallFS(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


HOSTILE_MODES = (
    "trickle_body",
    "trickle_headers",
    "no_reply",
    "half_open",
    "reset",
    "huge_body",
    "gzip_bomb",
)


@functools.lru_cache(maxsize=1)
def _gzip_bomb() -> bytes:
    """About 200 KB of gzip that expands to 200 MB of spaces (made a megabyte at a time)."""
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    block = b" " * 2**20
    return b"".join([*(packer.compress(block) for _ in range(200)), packer.flush()])


class HostileServer:
    """A raw-socket HTTP server on 127.0.0.1 that misbehaves on purpose (for deadline tests).

    Modes:
        ``trickle_body``: reads the request, sends the status line and headers of a 1,000-byte
            reply, then one body byte every ``interval`` seconds.
        ``trickle_headers``: sends the status line, then a header one byte every ``interval`` s.
        ``no_reply``: reads the request and never answers.
        ``half_open``: accepts and never reads or answers.
        ``reset``: reads the request and resets the connection (RST).
        ``huge_body``: answers 200 with a 200 MB JSON-looking body, sent as fast as it is read.
        ``gzip_bomb``: answers 200 with ``Content-Encoding: gzip``, a body of about 200 KB that
            expands to 200 MB.

    Every connection is served for at most ``lifetime`` seconds, far longer than any bound under
    test, so a client that is not bounded is seen hanging, not lucky. Use as a context manager.
    """

    def __init__(self, mode: str, *, interval: float = 0.2, lifetime: float = 60.0) -> None:
        assert mode in HOSTILE_MODES, mode
        self.mode = mode
        self.interval = interval
        self.lifetime = lifetime
        self.accepted = threading.Event()
        self.requests = 0
        self._stop = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._threads: List[threading.Thread] = []
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> HostileServer:
        self._thread = threading.Thread(
            target=self._accept_loop, name="hostile-accept", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for thread in self._threads:
            thread.join(5)
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted.set()
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _read_request(self, conn: socket.socket) -> bool:
        """Read one request (headers and a Content-Length body); False if the peer went away."""
        data = b""
        conn.settimeout(0.1)
        while b"\r\n\r\n" not in data:
            if self._stop.is_set():
                return False
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            if self._stop.is_set():
                return False
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                return False
            body += chunk
        self.requests += 1
        return True

    def _drip(self, conn: socket.socket, payload: bytes) -> None:
        """Send ``payload`` one byte per interval until the peer goes away or time is up."""
        for index in range(len(payload)):
            if self._stop.wait(self.interval):
                return
            try:
                conn.sendall(payload[index : index + 1])
            except OSError:
                return

    def _flood(self, conn: socket.socket) -> None:
        """Send a 200 reply of 200 MB of records, as fast as the peer reads, until it goes away."""
        entry = b'{"partition_id":"shardId-0000000000","sequence_number":"1"},'
        block = entry * (65536 // len(entry))
        total = 200 * 2**20
        try:
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(total).encode() + b"\r\n\r\n"
                b'{"failed_record_count":0,"records":['
            )
            conn.settimeout(5.0)
            sent = 0
            while sent < total and not self._stop.is_set():
                conn.sendall(block)
                sent += len(block)
        except OSError:
            return

    def _serve(self, conn: socket.socket) -> None:
        try:
            mode = self.mode
            if mode == "half_open":
                self._stop.wait(self.lifetime)
                return
            if not self._read_request(conn):
                return
            if mode == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            if mode == "no_reply":
                self._stop.wait(self.lifetime)
                return
            if mode == "huge_body":
                self._flood(conn)
                return
            if mode == "gzip_bomb":
                bomb = _gzip_bomb()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Encoding: gzip\r\n"
                    b"Content-Length: " + str(len(bomb)).encode() + b"\r\n\r\n" + bomb
                )
                self._stop.wait(1.0)
                return
            drips = int(self.lifetime / self.interval)
            if mode == "trickle_body":
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 1000\r\n\r\n"
                )
                self._drip(conn, b" " * min(drips, 1000))
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                self._drip(conn, b"X-Slow: " + b"a" * drips)
        finally:
            conn.close()


@pytest.fixture
def hostile_server() -> Iterator[Callable[..., HostileServer]]:
    """Start a :class:`HostileServer` in the given mode (``hostile_server("trickle_body")``);
    every server started is stopped after the test."""
    servers: List[HostileServer] = []

    def start(mode: str, **kwargs: Any) -> HostileServer:
        server = HostileServer(mode, **kwargs)
        server.__enter__()
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.__exit__(None, None, None)
