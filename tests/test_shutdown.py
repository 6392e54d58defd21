"""Every way out is bounded and accounted for: SIGTERM, signal handlers, reentrant logging,
atexit, close() racing appenders and in-flight requests, and user code that raises
(DESIGN R10, R11, R13; issue 10)."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import List

import pytest

from dis_logging import DISHandler

pytestmark = pytest.mark.timeout(120)

#: Seconds a bounded step may overrun its budget here (a loaded 2-core machine).
SLACK = 3.0

PRELUDE = """
import atexit, json, logging, os, signal, sys, time
from dis_logging import DISHandler

def make_handler(**extra):
    settings = dict(
        endpoint=os.environ["T_URL"], project_id=os.environ["T_PROJECT"],
        ak=os.environ["T_AK"], sk=os.environ["T_SK"], flush_interval=30, close_timeout=5.0,
    )
    settings.update(json.loads(os.environ.get("T_SETTINGS", "{}")))
    settings.update(extra)
    handler = DISHandler(os.environ["T_STREAM"], **settings)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler

def sigterm_after(seconds):
    # SIGTERM to this process from a daemon thread, seconds from now.
    import threading

    def terminate():
        time.sleep(seconds)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate, daemon=True).start()

log = logging.getLogger("app")
log.setLevel(logging.INFO)
"""


def run(emulator, stream, body, *, settings=None, timeout=60):
    """Run PRELUDE + body in a fresh interpreter; return (completed process, seconds taken)."""
    env = dict(os.environ)
    env.update(
        T_URL=emulator.url,
        T_PROJECT=emulator.project_id,
        T_AK=emulator.ak,
        T_SK=emulator.sk,
        T_STREAM=stream,
        T_SETTINGS=json.dumps(settings or {}),
    )
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + body],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done, time.monotonic() - start


@pytest.fixture
def make_handler(emulator, stream):
    """Build DISHandlers for the emulator (plain "%(message)s" records); closed after the test."""
    handlers: List[DISHandler] = []

    def build(**settings):
        options = dict(
            endpoint=emulator.url,
            project_id=emulator.project_id,
            ak=emulator.ak,
            sk=emulator.sk,
        )
        options.update(settings)
        handler = DISHandler(stream, **options)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handlers.append(handler)
        return handler

    yield build
    for handler in handlers:
        handler.close()


def stored(emulator, stream):
    return sorted(r.data.decode() for r in emulator.records(stream))


class TestSigterm:
    def test_sigterm_drains_and_ends_as_killed(self, emulator, stream):
        """SIGTERM at its default disposition delivers the queue, then the process dies of it."""
        body = """
log.addHandler(make_handler())
for i in range(5):
    log.info("rec-%d", i)
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(30)
print("survived")
"""
        done, elapsed = run(emulator, stream, body)
        assert (-signal.SIGTERM, "") == (done.returncode, done.stdout)
        assert [f"rec-{i}" for i in range(5)] == stored(emulator, stream)
        assert elapsed < 5.0 + SLACK + 2.0

    def test_unreachable_dis_keeps_the_close_timeout(self, emulator, stream):
        """With DIS unreachable, the SIGTERM drain gives up after close_timeout and says so."""
        url = emulator.url
        emulator.stop()
        body = """
log.addHandler(make_handler(close_timeout=1.0))
for i in range(5):
    log.info("rec-%d", i)
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(30)
"""
        done, elapsed = run(emulator, stream, body, settings={"endpoint": url})
        assert -signal.SIGTERM == done.returncode
        assert "SIGTERM" in done.stderr
        assert "5 record(s) could not be sent within 1.0s" in done.stderr
        assert elapsed < 1.0 + SLACK + 2.0

    def test_an_application_handler_is_kept(self, emulator, stream):
        """An application's own SIGTERM handler stays; its graceful exit goes through the exit
        drain."""
        body = """
def graceful(signum, frame):
    print("app handler")
    sys.exit(3)

signal.signal(signal.SIGTERM, graceful)
log.addHandler(make_handler())
for i in range(5):
    log.info("rec-%d", i)
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(30)
"""
        done, _ = run(emulator, stream, body)
        assert (3, "app handler\n") == (done.returncode, done.stdout)
        assert [f"rec-{i}" for i in range(5)] == stored(emulator, stream)

    def test_drain_on_sigterm_false_leaves_sigterm_alone(self, emulator, stream):
        """drain_on_sigterm=False installs nothing: SIGTERM kills at once, nothing is sent."""
        body = """
log.addHandler(make_handler(drain_on_sigterm=False))
print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
log.info("rec")
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(30)
"""
        done, _ = run(emulator, stream, body)
        assert (-signal.SIGTERM, "True\n", []) == (
            done.returncode,
            done.stdout,
            stored(emulator, stream),
        )

    def test_only_the_main_thread_installs_and_the_last_close_restores(self, emulator, stream):
        """A handler made on another thread installs nothing; closing the last handler that
        wants the drain gives SIGTERM its default back."""
        body = """
import threading
made = []
worker = threading.Thread(target=lambda: made.append(make_handler()))
worker.start()
worker.join()
print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
first, second = make_handler(), make_handler()
print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
first.close()
print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
second.close()
print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)  # the thread's handler is still open
made[0].close()
print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
"""
        done, _ = run(emulator, stream, body)
        assert (0, ["True", "False", "False", "False", "True"]) == (
            done.returncode,
            done.stdout.split(),
        ), done.stderr

    def test_a_handler_made_on_a_thread_drains_once_the_main_thread_logs(self, emulator, stream):
        """A handler built on another thread (lazy set-up in a worker) cannot install the drain
        there; its first record logged on the main thread does, so SIGTERM still delivers."""
        body = """
import threading
made = []
worker = threading.Thread(target=lambda: made.append(make_handler()))
worker.start()
worker.join()
log.addHandler(made[0])
for i in range(5):
    log.info("rec-%d", i)
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(30)
print("survived")
"""
        done, _ = run(emulator, stream, body)
        assert (-signal.SIGTERM, "") == (done.returncode, done.stdout), done.stderr
        assert [f"rec-{i}" for i in range(5)] == stored(emulator, stream)

    def test_sigterm_while_the_main_thread_waits_in_a_blocking_append(
        self, emulator, stream, hostile_server
    ):
        """overflow="block" with a full queue keeps the main thread inside the handler for up to
        block_timeout at every record; SIGTERM stops those waits, so the drain runs (it used to
        give up after close_timeout and end the process with no drain and no word)."""
        server = hostile_server("no_reply")
        body = """
import threading
handler = make_handler(close_timeout=1.0, request_timeout=30.0, flush_interval=0.05,
                       overflow="block", block_timeout=30.0, max_queue_records=100,
                       max_batch_records=10)
log.addHandler(handler)

def terminate():
    while handler.stats.queued < 100:  # the queue is full: the main thread waits for room
        time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=terminate, daemon=True).start()
i = 0
while True:
    log.info("rec-%d", i)
    i += 1
"""
        done, elapsed = run(emulator, stream, body, settings={"endpoint": server.url})
        assert -signal.SIGTERM == done.returncode, done.stderr
        assert "SIGTERM drain of the handler" in done.stderr, done.stderr
        assert "could not be sent within 1.0s" in done.stderr, done.stderr
        assert elapsed < 1.0 + SLACK + 2.0, elapsed

    def test_a_drain_the_main_thread_never_allows_is_reported(self, emulator, stream):
        """A formatter that keeps the main thread inside the handler past close_timeout: the
        drain cannot run (it could wait for a lock that thread holds), and the process ends
        saying so instead of in silence."""
        body = """
class Slow(logging.Formatter):
    def format(self, record):
        if record.msg == "slow":
            time.sleep(30)
        return super().format(record)

handler = make_handler(close_timeout=1.0)
handler.setFormatter(Slow("%(message)s"))
log.addHandler(handler)
for i in range(3):
    log.info("rec-%d", i)
signal.setitimer(signal.ITIMER_REAL, 0.3)
signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGTERM))
log.info("slow")
"""
        done, elapsed = run(emulator, stream, body)
        assert -signal.SIGTERM == done.returncode, done.stderr
        assert "stayed inside the handler" in done.stderr, done.stderr
        assert elapsed < 1.0 + SLACK + 2.0, elapsed

    def test_sigterm_during_a_long_flush_on_the_main_thread(self, emulator, stream, hostile_server):
        """SIGTERM while the main thread waits in flush(timeout=10) for a silent DIS: the flush
        gives up at once (its request too), so the drain runs within close_timeout; it used to
        wait for the flush, past close_timeout, and then end the process without a drain."""
        server = hostile_server("no_reply")
        body = """
handler = make_handler(close_timeout=1.0, request_timeout=30.0)
log.addHandler(handler)
for i in range(5):
    log.info("rec-%d", i)
sigterm_after(0.5)  # the server has the flush's request by then
handler.flush(timeout=10.0)
time.sleep(30)
"""
        done, elapsed = run(emulator, stream, body, settings={"endpoint": server.url})
        assert -signal.SIGTERM == done.returncode, done.stderr
        assert "SIGTERM drain of the handler" in done.stderr, done.stderr
        assert "5 record(s) could not be sent within 1.0s" in done.stderr, done.stderr
        assert elapsed < 1.0 + SLACK + 2.0, elapsed

    def test_sigterm_while_a_main_thread_flush_waits_for_the_background_request(
        self, emulator, stream, hostile_server
    ):
        """SIGTERM while the main thread's flush() waits for the request the background thread
        has in flight (to a silent DIS): the flush gives up at once too, so the drain runs and
        reports that request; it waited on, and the process ended with no drain."""
        server = hostile_server("no_reply")
        body = """
handler = make_handler(close_timeout=1.0, request_timeout=30.0, flush_interval=0.05)
log.addHandler(handler)
for i in range(5):
    log.info("rec-%d", i)
sent_by_thread = time.monotonic() + 20
while handler._lanes[0].buffer.snapshot().in_flight < 5 and time.monotonic() < sent_by_thread:
    time.sleep(0.01)
sigterm_after(0.3)  # the main thread waits in flush() by then
handler.flush(timeout=10.0)
time.sleep(30)
"""
        done, elapsed = run(emulator, stream, body, settings={"endpoint": server.url})
        assert -signal.SIGTERM == done.returncode, done.stderr
        assert "SIGTERM drain of the handler" in done.stderr, done.stderr
        assert "5 record(s) were in a request still awaiting its reply" in done.stderr, done.stderr
        assert elapsed < 1.0 + SLACK + 2.0, elapsed

    def test_ctrl_c_during_the_sigterm_drain_cuts_it_short(self, emulator, stream, hostile_server):
        """Ctrl-C while the SIGTERM drain waits (close_timeout 60 s): the drain gives up at once,
        reports what it gave up (the process ended with the 50 records unreported), and the
        process still ends killed by SIGTERM."""
        server = hostile_server("no_reply")
        body = """
import threading
handler = make_handler(close_timeout=60.0, request_timeout=60.0)
log.addHandler(handler)
for i in range(50):
    log.info("rec-%d", i)

def terminate_then_interrupt():
    os.kill(os.getpid(), signal.SIGTERM)
    while handler.stats.in_flight < 50:  # the drain's request holds them
        time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=terminate_then_interrupt, daemon=True).start()
time.sleep(100)
"""
        done, elapsed = run(emulator, stream, body, settings={"endpoint": server.url}, timeout=110)
        assert -signal.SIGTERM == done.returncode, done.stderr
        assert "SIGTERM drain (cut short by KeyboardInterrupt)" in done.stderr, done.stderr
        assert "50 record(s)" in done.stderr, done.stderr
        assert elapsed < 30.0, elapsed

    def test_sigterm_inside_the_handler_is_drained_after_it(self, emulator, stream):
        """A SIGTERM that lands while the main thread is inside the handler never deadlocks: the
        drain runs once the thread has left it."""
        body = """
class Signalling(logging.Formatter):
    def format(self, record):
        if record.getMessage() == "rec-3":
            os.kill(os.getpid(), signal.SIGTERM)  # the Python handler runs right here
        return super().format(record)

handler = make_handler()
handler.setFormatter(Signalling("%(message)s"))
log.addHandler(handler)
for i in range(10):
    log.info("rec-%d", i)
time.sleep(30)
print("survived")
"""
        done, elapsed = run(emulator, stream, body)
        assert (-signal.SIGTERM, "") == (done.returncode, done.stdout)
        assert [f"rec-{i}" for i in range(10)] == stored(emulator, stream)
        assert elapsed < 5.0 + SLACK + 2.0

    def test_sigterm_while_the_buffer_lock_is_held(self, emulator, stream):
        """A SIGTERM whose Python handler runs while the main thread holds the buffer's lock
        (inside an append) neither deadlocks nor loses the queue."""
        body = (
            TRACE_INTO_PUT.replace("SIGNAL", "signal.SIGTERM")
            + """
handler = make_handler()
log.addHandler(handler)
for i in range(5):
    log.info("rec-%d", i)
sys.settrace(tracer)
log.info("rec-5")
sys.settrace(None)
time.sleep(30)
print("survived")
"""
        )
        done, elapsed = run(emulator, stream, body)
        assert (-signal.SIGTERM, "") == (done.returncode, done.stdout), done.stderr
        assert [f"rec-{i}" for i in range(6)] == stored(emulator, stream)
        assert elapsed < 5.0 + SLACK + 2.0

    def test_sigterm_in_a_multiprocessing_child(self, emulator, stream):
        """A forked multiprocessing child ended by terminate() drains its own records first."""
        body = """
import multiprocessing

def child():
    for i in range(3):
        log.info("child-%d", i)
    print("ready", flush=True)
    time.sleep(30)

log.addHandler(make_handler())
process = multiprocessing.get_context("fork").Process(target=child)
process.start()
time.sleep(0.2)
deadline = time.monotonic() + 20
while process.is_alive() and time.monotonic() < deadline:
    process.terminate()
    process.join(0.5)
print(process.exitcode)
"""
        done, _ = run(emulator, stream, body)
        assert 0 == done.returncode, done.stderr
        assert f"{-signal.SIGTERM}\n" == done.stdout.splitlines(keepends=True)[-1]
        assert {"child-0", "child-1", "child-2"} <= set(stored(emulator, stream))


SEVERAL_HANDLERS = """
handlers = []
for number in range(4):
    handler = make_handler(stream_name="s%d" % number, close_timeout=2.0, request_timeout=30.0)
    each = logging.getLogger("app%d" % number)
    each.propagate = False
    each.setLevel(logging.INFO)
    each.addHandler(handler)
    for i in range(5):
        each.info("rec-%d", i)
    handlers.append(handler)
"""


class TestSeveralHandlers:
    """Several handlers drain together: the bound is the longest close_timeout, not the sum."""

    @pytest.mark.parametrize(
        ("ending", "returncode"),
        [("os.kill(os.getpid(), signal.SIGTERM); time.sleep(30)", -signal.SIGTERM), ("", 0)],
        ids=["SIGTERM", "exit"],
    )
    def test_four_silent_endpoints_take_one_close_timeout(
        self, emulator, stream, hostile_server, ending, returncode
    ):
        """Four handlers whose server never replies, close_timeout=2 each: the SIGTERM drain
        and the exit drain end within about 2 s (they took 8 s one after another), and every
        handler reports its 5 records."""
        server = hostile_server("no_reply")
        body = PRELUDE_STREAMS + SEVERAL_HANDLERS + ending + "\n"
        done, elapsed = run(emulator, stream, body, settings={"endpoint": server.url})
        assert returncode == done.returncode, done.stderr
        # Each handler's records are given up and said so, by its drain or (at exit) by the
        # close that logging.shutdown makes after it; none is left "counted when the request
        # ends" by a process that ends first.
        reported = {
            line.split("stream ")[1].split(":")[0]
            for line in done.stderr.splitlines()
            if "5 record(s)" in line
            and any(
                said in line
                for said in ("could not be sent", "as the process ended", "awaiting its reply")
            )
        }
        assert {f"'s{number}'" for number in range(4)} == reported, done.stderr
        # Start-up and imports take a second or two on a loaded machine.
        assert elapsed < 2.0 + SLACK + 2.0, elapsed

    def test_every_handler_delivers_at_sigterm(self, emulator, stream):
        """Draining together still delivers every handler's queue."""
        body = (
            PRELUDE_STREAMS
            + SEVERAL_HANDLERS.replace('"s%d" % number', "os.environ['T_STREAM']")
            + "os.kill(os.getpid(), signal.SIGTERM)\ntime.sleep(30)\n"
        )
        done, _ = run(emulator, stream, body)
        assert -signal.SIGTERM == done.returncode, done.stderr
        assert [f"rec-{i}" for i in range(5) for _ in range(4)] == stored(emulator, stream)


#: make_handler with a stream of one's choosing.
PRELUDE_STREAMS = """
def make_handler(stream_name, **extra):
    settings = dict(
        endpoint=os.environ["T_URL"], project_id=os.environ["T_PROJECT"],
        ak=os.environ["T_AK"], sk=os.environ["T_SK"], flush_interval=30, close_timeout=5.0,
    )
    settings.update(json.loads(os.environ.get("T_SETTINGS", "{}")))
    settings.update(extra)
    handler = DISHandler(stream_name, **settings)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler
"""


class TestExitPaths:
    @pytest.mark.parametrize(
        ("ending", "returncode"),
        [
            ("sys.exit(3)", 3),
            ("raise RuntimeError('boom')", 1),
            ("os.kill(os.getpid(), signal.SIGINT); time.sleep(30)", -signal.SIGINT),
        ],
        ids=["sys.exit", "uncaught exception", "SIGINT"],
    )
    def test_every_ordinary_ending_delivers_the_queue(self, emulator, stream, ending, returncode):
        """sys.exit, an uncaught exception and Ctrl-C (SIGINT) all go through the exit drain."""
        body = f"""
log.addHandler(make_handler())
for i in range(5):
    log.info("rec-%d", i)
{ending}
"""
        done, _ = run(emulator, stream, body)
        assert returncode == done.returncode, done.stderr
        assert [f"rec-{i}" for i in range(5)] == stored(emulator, stream)

    def test_a_multiprocessing_child_delivers_at_its_exit(self, emulator, stream):
        """A forked multiprocessing child, which ends through os._exit, delivers its queue."""
        body = """
import multiprocessing

def child():
    for i in range(3):
        log.info("child-%d", i)

log.addHandler(make_handler())
process = multiprocessing.get_context("fork").Process(target=child)
process.start()
process.join(30)
print(process.exitcode)
"""
        done, _ = run(emulator, stream, body)
        assert (0, "0\n") == (done.returncode, done.stdout), done.stderr
        assert ["child-0", "child-1", "child-2"] == stored(emulator, stream)


#: A trace function that sends SIGNAL to the process once RecordBuffer.put holds its lock (the
#: local ``count`` is assigned inside ``with self._lock``); Python runs the signal's handler at
#: the next bytecode, in that frame, with the lock held.
TRACE_INTO_PUT = """
from dis_logging.buffer import RecordBuffer
fired = []

def tracer(frame, event, arg):
    if frame.f_code is not RecordBuffer.put.__code__:
        return None

    def local(frame, event, arg):
        if event == "line" and not fired and "count" in frame.f_locals:
            fired.append(True)
            os.kill(os.getpid(), SIGNAL)
        return local

    return local
"""

STATS = """
stats = handler.stats
print(json.dumps({"emitted": stats.emitted, "sent": stats.sent, "dropped": stats.dropped,
                  "failed": stats.failed, "queued": stats.queued, "drops": stats.drops}))
"""


class TestReentrancy:
    @pytest.mark.parametrize(
        "settings",
        [
            {"flush_interval": 0.05},
            {
                "flush_interval": 0.05,
                "overflow": "block",
                "max_queue_records": 20,
                "block_timeout": 0.005,
            },
        ],
        ids=["drop_oldest", "block"],
    )
    def test_logging_from_a_signal_handler_never_deadlocks(self, emulator, stream, settings):
        """A timer signal whose handler logs, firing every millisecond of CPU while the main
        thread logs, neither deadlocks nor raises, and every record is counted."""
        body = (
            """
handler = make_handler()
log.addHandler(handler)

def on_timer(signum, frame):
    log.info("from-signal")

signal.signal(signal.SIGPROF, on_timer)
signal.setitimer(signal.ITIMER_PROF, 0.001, 0.001)
for i in range(3000):
    log.info("main-%d", i)
signal.setitimer(signal.ITIMER_PROF, 0, 0)
handler.close()
"""
            + STATS
        )
        done, _ = run(emulator, stream, body, settings=settings)
        assert (0, "") == (done.returncode, done.stderr)
        stats = json.loads(done.stdout)
        assert 0 == stats["queued"]
        assert stats["emitted"] == stats["sent"] + stats["dropped"] + stats["failed"]
        assert stats["emitted"] >= 3000

    def test_logging_from_a_signal_handler_while_the_lock_is_held(self, emulator, stream):
        """A record logged by a signal handler that runs while the main thread holds the
        buffer's lock is counted as reentrant, and nothing blocks."""
        body = (
            TRACE_INTO_PUT.replace("SIGNAL", "signal.SIGUSR1")
            + """
handler = make_handler()
log.addHandler(handler)
signal.signal(signal.SIGUSR1, lambda signum, frame: log.info("from-signal"))
sys.settrace(tracer)
log.info("outer")
sys.settrace(None)
log.info("after")
handler.flush(5)
handler.close()
"""
            + STATS
        )
        done, _ = run(emulator, stream, body)
        assert (0, "") == (done.returncode, done.stderr)
        stats = json.loads(done.stdout)
        assert (3, 2, {"reentrant": 1}, 0) == (
            stats["emitted"],
            stats["sent"],
            stats["drops"],
            stats["queued"],
        )
        assert ["after", "outer"] == stored(emulator, stream)

    def test_a_formatter_that_logs_is_counted_reentrant(self, emulator, stream, make_handler):
        """A record logged by the handler's own formatter is dropped and counted as reentrant."""
        log = logging.getLogger("reentrant-formatter")
        log.propagate = False

        class Chatty(logging.Formatter):
            def format(self, record):
                log.warning("formatting %s", record.getMessage())
                return super().format(record)

        handler = make_handler(flush_interval=60)
        handler.setFormatter(Chatty("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        try:
            log.info("outer")
            assert not handler.flush(timeout=10)  # the inner record was dropped
        finally:
            log.removeHandler(handler)
        stats = handler.stats
        assert (["outer"], 2, 1, {"reentrant": 1}) == (
            stored(emulator, stream),
            stats.emitted,
            stats.sent,
            stats.drops,
        )


def attach(handler: DISHandler, name: str) -> logging.Logger:
    log = logging.getLogger(name)
    log.propagate = False
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    return log


class TestUserCode:
    def test_a_raising_filter_is_contained_and_counted(self, emulator, stream, make_handler):
        """A handler filter that raises never reaches the application: the record is dropped,
        counted and reported once."""
        lines: List[str] = []
        handler = make_handler(flush_interval=60, diagnostics=lines.append)

        def broken(record):
            if record.getMessage().startswith("bad"):
                raise ValueError("filter bug")
            return True

        handler.addFilter(broken)
        log = attach(handler, "filter-test")
        log.info("bad-1")
        log.info("bad-2")
        log.info("good")
        assert not handler.flush(timeout=10)
        stats = handler.stats
        assert (["good"], {"filter_error": 2}, 3) == (
            stored(emulator, stream),
            stats.drops,
            stats.emitted,
        )
        assert 1 == sum("filter" in line for line in lines)

    def test_a_key_whose_str_raises_ships_without_key(self, emulator, stream, make_handler):
        """A partition_key result whose str() raises ships the record without a key, reported."""

        class Hostile:
            def __str__(self):
                raise RuntimeError("no text")

        lines: List[str] = []
        handler = make_handler(
            flush_interval=60, partition_key=lambda record: Hostile(), diagnostics=lines.append
        )
        log = attach(handler, "key-test")
        log.info("keyless")
        assert handler.flush(timeout=10)
        records = emulator.records(stream)
        assert (["keyless"], 1) == ([r.data.decode() for r in records], handler.stats.sent)
        assert 1 == sum("partition_key" in line for line in lines)

    def test_a_raising_formatter_ships_a_fallback(self, emulator, stream, make_handler):
        """A formatter that raises ships a fallback payload with the message, and is reported."""

        class Broken(logging.Formatter):
            def format(self, record):
                raise KeyError("missing field")

        lines: List[str] = []
        handler = make_handler(flush_interval=60, diagnostics=lines.append)
        handler.setFormatter(Broken())
        log = attach(handler, "formatter-test")
        log.info("still here")
        assert handler.flush(timeout=10)
        assert 1 == len(emulator.records(stream))
        assert b"still here" in emulator.records(stream)[0].data
        assert 1 == sum("formatter" in line for line in lines)


class TestCloseAccounting:
    def test_blocked_appenders_racing_close_are_counted(self, emulator, stream, make_handler):
        """Threads blocked in an overflow="block" append when close() runs end promptly, and
        their records are counted, never left queued."""
        emulator.stop()
        handler = make_handler(
            overflow="block",
            max_queue_records=5,
            block_timeout=30,
            flush_interval=60,
            close_timeout=0.5,
        )
        log = attach(handler, "block-race")
        all_blocked = threading.Barrier(5)

        def append():
            all_blocked.wait(10)
            for i in range(20):
                log.info("r%d", i)

        threads = [threading.Thread(target=append) for _ in range(4)]
        for thread in threads:
            thread.start()
        all_blocked.wait(10)
        deadline = time.monotonic() + 10
        while handler.stats.queued < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        handler.close()
        for thread in threads:
            thread.join(10)
        stats = handler.stats
        assert ([False] * 4, 80, 0) == (
            [thread.is_alive() for thread in threads],
            stats.emitted,
            stats.queued,
        )
        assert stats.emitted == stats.sent + stats.dropped + stats.failed

    def test_a_request_failing_after_close_is_counted_and_reported(
        self, hostile_server, make_handler
    ):
        """Records in flight when close() returns are counted when their request fails later,
        and the late outcome is reported once."""
        server = hostile_server("no_reply")
        lines: List[str] = []
        handler = DISHandler(
            "s",
            endpoint=server.url,
            project_id="project",
            ak="AK",
            sk="SK",
            flush_interval=0.01,
            request_timeout=1.5,
            close_timeout=0.2,
            diagnostics=lines.append,
        )
        log = attach(handler, "late")
        for i in range(100):
            log.info("r%d", i)
        deadline = time.monotonic() + 10
        while handler.stats.in_flight < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        handler.close()
        deadline = time.monotonic() + 1.5 + SLACK
        while handler.stats.queued and time.monotonic() < deadline:
            time.sleep(0.02)
        stats = handler.stats
        assert (100, 0, 100) == (stats.emitted, stats.queued, stats.dropped)
        late = [line for line in lines if "after close()" in line]
        assert 1 == len(late), lines
        assert "100 dropped" in late[0]


class TestInterruptedClose:
    def test_ctrl_c_during_close_counts_and_reports_what_was_left(
        self, emulator, stream, hostile_server
    ):
        """Ctrl-C while close() waits for a silent DIS: the KeyboardInterrupt reaches the caller,
        and the records close() had not sent are counted and reported (they were lost in silence:
        the handler was closed, so the exit drain skipped it)."""
        server = hostile_server("no_reply")
        body = """
import threading
handler = make_handler(close_timeout=5.0, request_timeout=30.0)
log.addHandler(handler)
for i in range(50):
    log.info("rec-%d", i)

def interrupt():
    time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=interrupt, daemon=True).start()
try:
    handler.close()
except KeyboardInterrupt:
    stats = handler.stats
    print(stats.queued, stats.drops, stats.emitted == stats.sent + stats.dropped + stats.failed)
"""
        done, _ = run(emulator, stream, body, settings={"endpoint": server.url})
        assert (0, "0 {'close': 50} True") == (done.returncode, done.stdout.strip()), done.stderr
        assert "close (cut short by KeyboardInterrupt)" in done.stderr, done.stderr
        assert "50 record(s) could not be sent in time" in done.stderr, done.stderr


class TestSignalDuringTheExitDrain:
    """A signal that lands while the interpreter-exit drain waits for a silent DIS (the main
    thread has returned; a daemon thread of the child sends the signal once the drain's request
    holds the records)."""

    BODY = """
import atexit, threading
def account():
    stats = handler.stats
    balanced = stats.emitted == stats.sent + stats.dropped + stats.failed
    print(stats.queued, dict(stats.drops), balanced, flush=True)
atexit.register(account)  # registered first, so it runs after the handler's atexit drain
handler = make_handler(close_timeout={close_timeout}, request_timeout=60.0, flush_interval=30)
log.addHandler(handler)
for i in range(50):
    log.info("rec-%d", i)

def signal_during_the_drain():
    while handler.stats.in_flight < 50:  # the exit drain's request holds them
        time.sleep(0.01)
    os.kill(os.getpid(), signal.{signal})

threading.Thread(target=signal_during_the_drain, daemon=True).start()
"""

    def test_sigterm_ends_the_process_as_killed_after_the_drain(
        self, emulator, stream, hostile_server
    ):
        """R11: the drain already running goes on within its bound, then the process ends killed
        by SIGTERM (it exited 0: a supervisor took the stop for a normal exit)."""
        server = hostile_server("no_reply")
        body = self.BODY.format(close_timeout=1.0, signal="SIGTERM")
        done, elapsed = run(emulator, stream, body, settings={"endpoint": server.url})
        assert -signal.SIGTERM == done.returncode, done.stdout + done.stderr
        assert "interpreter exit of the handler" in done.stderr, done.stderr
        assert "50 record(s)" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        assert elapsed < 1.0 + SLACK + 2.0, elapsed

    def test_sigterm_during_logging_shutdown_at_exit_ends_as_killed(
        self, emulator, stream, hostile_server
    ):
        """SIGTERM while logging.shutdown (after the exit drain and atexit) sends records an
        atexit function logged: the process ends killed by SIGTERM. It exited 0 (always on
        Python 3.12+, mostly on 3.11): the SIGTERM sent again by a helper thread, once the main
        thread had left the handler, came too late or could not be sent at all."""
        server = hostile_server("no_reply")
        body = """
import atexit, threading
def late():
    for i in range(20):
        log.info("late-%d", i)
atexit.register(late)  # registered first: runs after the handler's atexit drain
handler = make_handler(close_timeout=1.0, request_timeout=60.0, flush_interval=30)
log.addHandler(handler)
for i in range(5):
    log.info("rec-%d", i)

def terminate_while_the_late_records_are_sent():
    while handler.stats.emitted < 25 or handler.stats.in_flight < 20:
        time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=terminate_while_the_late_records_are_sent, daemon=True).start()
"""
        done, elapsed = run(emulator, stream, body, settings={"endpoint": server.url})
        assert -signal.SIGTERM == done.returncode, done.stdout + done.stderr
        # The 20 late records are reported either way: as the request's records given up, or,
        # when the SIGTERM lands while the main thread is still inside the handler (seen on a
        # loaded machine), as the queued records the drain could not take over.
        assert re.search(r"\b20 (queued )?record\(s\)", done.stderr), done.stderr
        assert elapsed < 2 * 1.0 + SLACK + 2.0, elapsed

    @pytest.mark.parametrize(
        ("sigint_handler", "raised"),
        [("", "KeyboardInterrupt"), ("def on_sigint(s, f):\n    sys.exit(3)\n", "SystemExit")],
        ids=["ctrl_c", "application_handler_raising"],
    )
    def test_ctrl_c_cuts_the_drain_short_without_a_traceback(
        self, emulator, stream, hostile_server, sigint_handler, raised
    ):
        """Ctrl-C while the exit drain waits (close_timeout 60 s): the drain gives up at once, the
        records are counted as dropped ('exit') and reported, and no KeyboardInterrupt traceback
        is printed (it came from threading's exit hook, the records stayed queued, uncounted).
        An application's own SIGINT handler that raises is kept and treated alike."""
        server = hostile_server("no_reply")
        if sigint_handler:
            sigint_handler += "signal.signal(signal.SIGINT, on_sigint)\n"
        body = sigint_handler + self.BODY.format(close_timeout=60.0, signal="SIGINT")
        done, elapsed = run(emulator, stream, body, settings={"endpoint": server.url}, timeout=110)
        assert (0, "0 {'exit': 50} True") == (done.returncode, done.stdout.strip()), done.stderr
        assert f"interpreter exit (cut short by {raised})" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        assert elapsed < 30.0, elapsed


class TestInFlightAtTheEnd:
    @pytest.mark.parametrize("ending", ["exit", "SIGTERM"])
    def test_a_request_awaiting_its_reply_at_the_end_reaches_on_failure(
        self, emulator, stream, hostile_server, ending
    ):
        """The flusher's request is still awaiting its reply when the process ends (its
        request_timeout is longer than close_timeout): its records are given up as "exit" and
        passed to on_failure like the rest, not left "counted when the request ends", which
        never happens once the process is gone."""
        server = hostile_server("no_reply")
        body = f"""
given = []
def on_failure(records, reason):
    print(reason, len(records), flush=True)
handler = make_handler(close_timeout=0.5, request_timeout=30.0, flush_interval=0.05,
                       on_failure=on_failure)
log.addHandler(handler)
for i in range(5):
    log.info("first-%d", i)
while handler.stats.in_flight < 5:  # the flusher's request holds them
    time.sleep(0.01)
for i in range(10):
    log.info("later-%d", i)
if {ending!r} == "SIGTERM":
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
"""
        done, _ = run(emulator, stream, body, settings={"endpoint": server.url})
        given = sum(int(line.split()[1]) for line in done.stdout.split("\n") if line)
        reasons = {line.split()[0] for line in done.stdout.split("\n") if line}
        assert (15, {"exit"}) == (given, reasons), done.stdout + done.stderr
        assert "awaiting its reply and were counted as dropped" in done.stderr, done.stderr


class TestFlushTruth:
    def test_flush_is_false_after_an_earlier_failure(self, emulator, stream, make_handler):
        """A record that failed before flush() was called makes flush() False."""
        handler = make_handler(flush_interval=0.01, sk="wrong-secret-key")
        log = attach(handler, "bad-sk")
        log.info("rejected")
        deadline = time.monotonic() + 10
        while handler.stats.failed == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (1, False) == (handler.stats.failed, handler.flush(timeout=2))


class TestAtexit:
    @pytest.mark.parametrize("order", ["before", "after"])
    def test_records_from_atexit_get_the_close_timeout(self, emulator, stream, order):
        """Records logged by an atexit function, registered before or after the handler, get
        the whole close_timeout, not a short grace."""
        emulator.set_delay(0.3, "PutRecords")
        body = f"""
def late():
    for i in range(1500):
        log.info("late-%d", i)

if "{order}" == "before":
    atexit.register(late)
log.addHandler(make_handler(max_batch_records=250))
if "{order}" == "after":
    atexit.register(late)
log.info("early")
"""
        done, _ = run(emulator, stream, body)
        assert (0, "") == (done.returncode, done.stderr)
        assert 1501 == len(emulator.records(stream))

    def test_the_exit_message_states_the_real_budget(self, emulator, stream):
        """The exit report names the budget that was actually spent."""
        url = emulator.url
        emulator.stop()
        body = """
log.addHandler(make_handler(close_timeout=0.7))
log.info("lost")
"""
        done, _ = run(emulator, stream, body, settings={"endpoint": url})
        assert 0 == done.returncode
        assert "1 record(s) could not be sent within 0.7s and were dropped" in done.stderr
