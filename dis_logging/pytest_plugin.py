"""pytest plugin: a local DIS emulator and a handler wired to it, for testing your logging.

Installed with dis-logging and loaded automatically (entry point ``pytest11``). Fixtures:

``dis_emulator``
    a started :class:`~dis_logging.DISEmulator` on 127.0.0.1 and a free port, stopped after
    the test.
``dis_stream``
    the name of a fresh one-partition stream on ``dis_emulator``.
``dis_handler``
    a :class:`~dis_logging.DISHandler` that sends to ``dis_stream`` (AK/SK auth, the default
    :class:`~dis_logging.JSONFormatter`, level ``NOTSET``, ``flush_interval=0.05``); closed
    after the test and detached from every logger it was added to. It sets no logger's level:
    a logger without one passes on only WARNING and above, so set the level of the logger under
    test (``caplog.set_level`` does it and restores it afterwards).

Example (the README's, run verbatim by the test suite)::

    def checkout(order_id):  # stands for your code under test: it logs at INFO
        logging.getLogger("shop").info("order placed", extra={"order_id": order_id})

    def test_checkout_logs_the_order(dis_emulator, dis_stream, dis_handler, caplog):
        caplog.set_level(logging.INFO, logger="shop")  # let INFO through; restored after the test
        logging.getLogger("shop").addHandler(dis_handler)
        checkout(order_id=42)
        assert dis_handler.flush(timeout=5)
        [record] = dis_emulator.wait_for(dis_stream, 1, timeout=5)
        assert json.loads(record.data)["order_id"] == 42

The plugin imports the emulator and the handler only when a test asks for a fixture, so it
adds nothing to the start-up of test runs that do not use it.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Iterator

import pytest

if TYPE_CHECKING:
    from dis_logging import DISEmulator, DISHandler

__all__ = ["dis_emulator", "dis_handler", "dis_stream"]


@pytest.fixture
def dis_emulator() -> Iterator[DISEmulator]:
    """A started DIS + IAM emulator on 127.0.0.1 with a free port, stopped after the test."""
    from dis_logging import DISEmulator

    with DISEmulator(host="127.0.0.1", port=0) as emulator:
        yield emulator


@pytest.fixture
def dis_stream(dis_emulator: DISEmulator) -> str:
    """The name of a fresh one-partition stream on ``dis_emulator`` (records keep their order)."""
    name = f"pytest-{uuid.uuid4().hex[:12]}"
    dis_emulator.create_stream(name, partitions=1)
    return name


def _detach(handler: logging.Handler) -> None:
    loggers = [logging.getLogger()] + [
        logger
        for logger in list(logging.Logger.manager.loggerDict.values())
        if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        if handler in logger.handlers:
            logger.removeHandler(handler)


@pytest.fixture
def dis_handler(dis_emulator: DISEmulator, dis_stream: str) -> Iterator[DISHandler]:
    """A DISHandler sending to ``dis_stream`` with AK/SK auth and a 50 ms flush interval.

    Its level is ``NOTSET`` and its formatter the default ``JSONFormatter``; it sets no logger's
    level, so set the level of the logger under test (``caplog.set_level``). Closed after the
    test, and removed from every logger it was added to.
    """
    from dis_logging import DISHandler

    handler = DISHandler(
        stream_name=dis_stream,
        endpoint=dis_emulator.url,
        iam_endpoint=dis_emulator.url,
        project_id=dis_emulator.project_id,
        region=dis_emulator.region,
        ak=dis_emulator.ak,
        sk=dis_emulator.sk,
        flush_interval=0.05,
    )
    try:
        yield handler
    finally:
        _detach(handler)
        handler.close()
