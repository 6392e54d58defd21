"""Shared fixtures: a running DIS emulator, a ready stream, clean logging and environment."""

from __future__ import annotations

import logging
import os
from typing import Iterator

import pytest

from dis_logging.emulator import DISEmulator

ENV_PREFIXES = ("HUAWEICLOUD_SDK_", "DIS_LOGGING_")


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
