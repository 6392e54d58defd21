"""A local DIS + IAM emulator for development and tests.

``DISEmulator`` serves the DIS stream API and IAM's password-token API on one loopback port,
keeps everything in memory, checks tokens and AK/SK signatures like the real service, and lets tests
script faults (error replies, per-record throttling, expired tokens, delays, dropped connections)::

    from dis_logging.emulator import DISEmulator

    with DISEmulator() as emu:
        emu.create_stream("app-logs", partitions=2)
        ...  # point a client at emu.url with emu.project_id and emu.ak / emu.sk
        records = emu.wait_for("app-logs", 10, timeout=5.0)
"""

from __future__ import annotations

from dis_logging.emulator.server import DISEmulator
from dis_logging.emulator.state import RequestLogEntry, StoredRecord

__all__ = ["DISEmulator", "RequestLogEntry", "StoredRecord"]
