"""Shared fixtures: a running DIS emulator, a ready stream, clean logging and environment, and the
DIS protobuf messages built by the protobuf runtime."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from dis_logging.emulator import DISEmulator

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
def stream(emulator: DISEmulator) -> str:
    """Name of a 2-partition stream ("test-stream") created on ``emulator``."""
    emulator.create_stream("test-stream", partitions=2)
    return "test-stream"


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
