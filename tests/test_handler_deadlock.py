"""Reconfiguration and shutdown while a send is in flight and the HTTP stack logs (DESIGN R8)."""

from __future__ import annotations

import logging
import logging.config
import time
import weakref

import pytest

from dis_logging.handler import DISHandler

pytestmark = pytest.mark.timeout(60)

DELAY = 0.4
CLOSE_TIMEOUT = 3.0


def dis_config(emulator, stream, **extra):
    return {
        "class": "dis_logging.handler.DISHandler",
        "stream_name": stream,
        "endpoint": emulator.url,
        "project_id": emulator.project_id,
        "ak": emulator.ak,
        "sk": emulator.sk,
        "flush_interval": "0.02",
        "max_batch_records": "20",
        "close_timeout": str(CLOSE_TIMEOUT),
        **extra,
    }


def full_config(emulator, stream):
    """Root at DEBUG shipping to DIS, urllib3 at DEBUG printing to stderr as well."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "dis": dis_config(emulator, stream),
            "console": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
        },
        "loggers": {"urllib3": {"level": "DEBUG", "handlers": ["console"]}},
        "root": {"handlers": ["dis"], "level": "DEBUG"},
    }


def dis_handler() -> DISHandler:
    found = [h for h in logging.getLogger().handlers if isinstance(h, DISHandler)]
    assert 1 == len(found)
    return found[0]


def wait_in_flight(handler: DISHandler, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while handler.stats.in_flight == 0:
        assert time.monotonic() < deadline, "no send went in flight"
        time.sleep(0.005)


def start_slow_sends(emulator, stream, count, message="r%d") -> DISHandler:
    """Configure logging with slow PutRecords replies, log ``count`` records, wait for a send."""
    emulator.set_delay(DELAY, "PutRecords")
    logging.config.dictConfig(full_config(emulator, stream))
    handler = dis_handler()
    for i in range(count):
        logging.getLogger("app").info(message, i)
    wait_in_flight(handler)
    return handler


@pytest.fixture
def reset_logging():
    yield
    logging.getLogger("urllib3").handlers.clear()
    logging.getLogger("urllib3").setLevel(logging.NOTSET)
    for handler in logging.getLogger().handlers[:]:
        if isinstance(handler, DISHandler):
            logging.getLogger().removeHandler(handler)
            handler.close()


class TestReconfiguration:
    def test_dict_config_while_a_send_is_in_flight(self, emulator, stream, reset_logging):
        """dictConfig replacing the handler mid-send returns promptly and every record arrives."""
        start_slow_sends(emulator, stream, 100)
        start = time.monotonic()
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
        assert time.monotonic() - start < CLOSE_TIMEOUT
        assert 100 == len(emulator.wait_for(stream, 100, timeout=10))

    def test_django_style_double_configuration(self, emulator, stream, reset_logging):
        """Configuring twice (as Django does) with a send in flight loses nothing and ends."""
        first = start_slow_sends(emulator, stream, 50, "first %d")
        start = time.monotonic()
        logging.config.dictConfig(full_config(emulator, stream))
        assert time.monotonic() - start < CLOSE_TIMEOUT
        second = dis_handler()
        assert second is not first
        for i in range(50):
            logging.getLogger("app").info("second %d", i)
        assert second.flush(timeout=10)
        records = emulator.wait_for(stream, 100, timeout=10)
        assert 100 == len({r.data for r in records})

    def test_flush_while_holding_the_logging_lock(self, emulator, stream, reset_logging):
        """flush() under logging's module lock does not wait for the in-flight send."""
        handler = start_slow_sends(emulator, stream, 30)
        start = time.monotonic()
        with logging._lock:  # type: ignore[attr-defined]  # what dictConfig holds
            # urllib3's isEnabledFor now needs the lock
            logging.getLogger().manager._clear_cache()  # type: ignore[attr-defined]
            handler.flush(timeout=CLOSE_TIMEOUT)
        assert time.monotonic() - start < CLOSE_TIMEOUT
        assert handler.flush(timeout=10)
        assert 30 == len(emulator.wait_for(stream, 30, timeout=10))

    def test_logging_shutdown_with_a_send_in_flight(self, emulator, stream, reset_logging):
        """logging.shutdown flushes and closes within close_timeout and delivers everything."""
        handler = start_slow_sends(emulator, stream, 60)
        start = time.monotonic()
        logging.shutdown([weakref.ref(handler)])
        assert time.monotonic() - start < CLOSE_TIMEOUT + 0.5
        assert 60 == len(emulator.wait_for(stream, 60, timeout=10))
        assert 0 == handler.stats.queued
