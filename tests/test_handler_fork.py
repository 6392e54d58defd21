"""Fork safety of DISHandler: os.fork and multiprocessing "fork" children (DESIGN R4)."""

from __future__ import annotations

import faulthandler
import json
import logging
import multiprocessing
import os

import pytest

from dis_logging import handler as handler_module
from dis_logging.formatting import JSONFormatter
from dis_logging.handler import DISHandler

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    # Python 3.12+ warns when forking with threads alive (the emulator's); forking is the point.
    pytest.mark.filterwarnings("ignore:This process.*multi-threaded:DeprecationWarning"),
]


@pytest.fixture
def no_faulthandler_timer():
    """Disarm faulthandler's watchdog: a forked child that inherits it can hang at exit."""
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def handler(request, emulator, stream, no_faulthandler_timer):
    interval = getattr(request, "param", 0.05)  # indirect parametrization sets flush_interval
    made = DISHandler(
        stream,
        endpoint=emulator.url,
        project_id=emulator.project_id,
        ak=emulator.ak,
        sk=emulator.sk,
        flush_interval=interval,
        close_timeout=5.0,
    )
    made.setFormatter(logging.Formatter("%(message)s"))
    yield made
    made.close()


def app_logger(handler: DISHandler) -> logging.Logger:
    log = logging.getLogger("forky")
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    return log


def child_logs_via_inherited_handler(count: int) -> None:
    log = logging.getLogger("forky")
    for i in range(count):
        log.info("child-mp-%d", i)
    # no close(): the threading exit hook must deliver before the child's os._exit


class TestFork:
    def test_os_fork_parent_and_child_both_deliver_once(self, emulator, stream, handler):
        """After os.fork both processes deliver their own records; the child resends nothing."""
        log = app_logger(handler)
        for i in range(200):
            log.info("parent-before-%d", i)
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                for i in range(100):
                    log.info("child-%d", i)
                ok = handler.flush(timeout=10)
                stats = handler.stats
                code = 0 if ok and stats.emitted == 100 and stats.sent == 100 else 2
                handler.close()
            finally:
                os._exit(code)
        for i in range(100):
            log.info("parent-after-%d", i)
        _, status = os.waitpid(pid, 0)
        assert 0 == os.waitstatus_to_exitcode(status)
        assert handler.flush(timeout=10)
        data = [r.data.decode() for r in emulator.records(stream)]
        expected = (
            {f"parent-before-{i}" for i in range(200)}
            | {f"parent-after-{i}" for i in range(100)}
            | {f"child-{i}" for i in range(100)}
        )
        assert expected == set(data)
        assert len(expected) == len(data)

    @pytest.mark.parametrize("handler", [60.0], indirect=True)
    def test_multiprocessing_fork_child_delivers_without_close(self, emulator, stream, handler):
        """A multiprocessing 'fork' child delivers at exit, with no flush and no atexit."""
        log = app_logger(handler)
        log.info("parent")
        context = multiprocessing.get_context("fork")
        process = context.Process(target=child_logs_via_inherited_handler, args=(50,))
        process.start()
        process.join(30)
        assert 0 == process.exitcode
        assert handler.flush(timeout=10)
        data = sorted(r.data.decode() for r in emulator.records(stream))
        assert sorted(["parent"] + [f"child-mp-{i}" for i in range(50)]) == data

    def test_child_that_only_inherits_an_idle_handler(self, emulator, stream, handler):
        """A child forked before any record still starts its own flusher on its first record."""
        log = app_logger(handler)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                log.info("from child")
                code = 0 if handler.flush(timeout=10) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert 0 == os.waitstatus_to_exitcode(status)
        assert [b"from child"] == [r.data for r in emulator.records(stream)]

    @pytest.mark.parametrize("handler", [60.0], indirect=True)
    def test_fork_without_the_at_fork_hooks(self, emulator, stream, handler):
        """A child forked by C code that skips the at-fork hooks (uWSGI's prefork) starts afresh.

        Taking the handler out of the registry the at-fork hook walks makes os.fork behave, for
        this handler, like such a fork: the child's first record must notice the new pid, so
        the child neither ships the parent's queued record nor loses its own.
        """
        handler.setFormatter(JSONFormatter())
        log = app_logger(handler)
        log.info("queued in parent")  # stays queued: flush_interval is 60 s
        handler_module._HANDLERS.discard(handler)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                log.info("from child")
                stats = handler.stats
                ok = handler.flush(timeout=10)
                code = 0 if ok and stats.emitted == 1 and stats.queued == 1 else 2
            finally:
                os._exit(code)
        handler_module._HANDLERS.add(handler)
        _, status = os.waitpid(pid, 0)
        assert 0 == os.waitstatus_to_exitcode(status)
        assert handler.flush(timeout=10)
        shipped = sorted(json.loads(r.data)["message"] for r in emulator.records(stream))
        assert ["from child", "queued in parent"] == shipped

    @pytest.mark.parametrize("handler", [60.0], indirect=True)
    def test_record_of_another_process_is_not_a_fork(self, emulator, stream, handler):
        """A record made in another process (as QueueListener hands them over) keeps the queue."""
        handler.setFormatter(JSONFormatter())
        log = app_logger(handler)
        log.info("queued here")
        foreign = logging.makeLogRecord(
            {
                "name": "forky",
                "msg": "made elsewhere",
                "levelno": logging.INFO,
                "levelname": "INFO",
                "process": os.getpid() + 1,
            }
        )
        log.handle(foreign)
        assert handler.flush(timeout=10)
        shipped = {
            f["message"]: f["process"]
            for f in map(json.loads, (r.data for r in emulator.records(stream)))
        }
        assert {"queued here": os.getpid(), "made elsewhere": os.getpid() + 1} == shipped
        assert 2 == handler.stats.sent
