"""Records still queued at interpreter exit (DESIGN R10), checked in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.timeout(90)

SCRIPT = """
import atexit, logging, os
from dis_logging.handler import DISHandler

handler = DISHandler(
    os.environ["T_STREAM"],
    endpoint=os.environ["T_URL"],
    project_id=os.environ["T_PROJECT"],
    ak=os.environ["T_AK"],
    sk=os.environ["T_SK"],
    flush_interval=60,
    close_timeout=float(os.environ["T_CLOSE_TIMEOUT"]),
)
handler.setFormatter(logging.Formatter("%(message)s"))
log = logging.getLogger("exiting")
log.addHandler(handler)
log.setLevel(logging.INFO)
for i in range(int(os.environ["T_COUNT"])):
    log.info("exit-%d", i)
if os.environ.get("T_ATEXIT"):
    atexit.register(lambda: log.info("from-atexit"))
# no flush, no close: interpreter exit must deliver
"""


def run_python(emulator, stream, argv, *, url=None, **variables):
    """Run ``python *argv`` with the emulator's coordinates in T_STREAM, T_URL, T_PROJECT, T_AK
    and T_SK (plus ``variables``); return the finished process."""
    env = dict(os.environ)
    env.update(
        T_STREAM=stream,
        T_URL=url or emulator.url,
        T_PROJECT=emulator.project_id,
        T_AK=emulator.ak,
        T_SK=emulator.sk,
        **variables,
    )
    return subprocess.run(
        [sys.executable, *argv], env=env, capture_output=True, text=True, timeout=60
    )


def run_script(emulator, stream, *, count=300, close_timeout=5.0, url=None, atexit_log=False):
    extra = {"T_ATEXIT": "1"} if atexit_log else {}
    start = time.monotonic()
    done = run_python(
        emulator,
        stream,
        ["-c", SCRIPT],
        url=url,
        T_CLOSE_TIMEOUT=str(close_timeout),
        T_COUNT=str(count),
        **extra,
    )
    return done, time.monotonic() - start


WORKER_SCRIPT = """
import logging, os, threading, time
from dis_logging.handler import DISHandler

handler = DISHandler(
    os.environ["T_STREAM"], endpoint=os.environ["T_URL"], project_id=os.environ["T_PROJECT"],
    ak=os.environ["T_AK"], sk=os.environ["T_SK"], flush_interval=0.05,
)
log = logging.getLogger("worker")
log.addHandler(handler)
log.setLevel(logging.INFO)

def work():
    while threading.main_thread().is_alive():  # the main thread has returned: exit has begun
        time.sleep(0.01)
    log.info("from a worker after the main thread ended")
    deadline = time.monotonic() + 20
    while handler.stats.sent == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    print("sent while the worker ran:", handler.stats.sent, flush=True)

threading.Thread(target=work).start()  # not a daemon: the interpreter waits for it
"""


BUSY_EXIT_SCRIPT = """
import atexit, logging, os, threading, time
from dis_logging.handler import DISHandler

stats = []
atexit.register(lambda: print("drops after the exit drains:", stats[0].stats.drops, flush=True))
handler = DISHandler(
    os.environ["T_STREAM"], endpoint=os.environ["T_URL"], project_id=os.environ["T_PROJECT"],
    ak=os.environ["T_AK"], sk=os.environ["T_SK"], flush_interval=60, max_queue_records=50,
    max_batch_records=10,
    close_timeout=5.0, diagnostics=lambda line: None,
)
stats.append(handler)
log = logging.getLogger("busy")
log.addHandler(handler)
log.setLevel(logging.INFO)

def work():
    while True:  # faster than DIS takes them: the oldest records are shed as overflow
        log.info("busy")

for _ in range(4):
    threading.Thread(target=work, daemon=True).start()
while handler.stats.drops.get("overflow", 0) == 0:
    time.sleep(0.01)
"""


class TestBusyExit:
    def test_the_exit_drain_drops_nothing_while_it_has_time(self, emulator, stream):
        """A daemon thread that keeps logging into a full queue makes records of the drain's
        target fall out (overflow, counted). That loss alone once made the drain drop the whole
        queue as "exit" at once, with most of close_timeout left; now only a drain that runs out
        of time drops."""
        done = run_python(emulator, stream, ["-c", BUSY_EXIT_SCRIPT])
        line = done.stdout.strip()
        assert (0, True, False) == (
            done.returncode,
            "'overflow'" in line,
            "'exit'" in line,
        ), (line, done.stderr)


FORKED_BUSY_EXIT_SCRIPT = """
import logging, multiprocessing, os, sys, threading, time
from dis_logging.handler import DISHandler

handler = DISHandler(
    os.environ["T_STREAM"], endpoint=os.environ["T_URL"], project_id=os.environ["T_PROJECT"],
    ak=os.environ["T_AK"], sk=os.environ["T_SK"], flush_interval=60, max_queue_records=50,
    max_batch_records=10, close_timeout=5.0,
    diagnostics=lambda line: sys.stdout.write(f"{os.getpid()} {line}\\n") or sys.stdout.flush(),
)
log = logging.getLogger("busy")
log.addHandler(handler)
log.setLevel(logging.INFO)

def child():
    def work():
        while True:
            log.info("busy")
    for _ in range(4):
        threading.Thread(target=work, daemon=True).start()
    while handler.stats.drops.get("overflow", 0) == 0:
        time.sleep(0.01)
    print("child", os.getpid(), flush=True)

if __name__ == "__main__":
    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)
"""


class TestForkedBusyExit:
    def test_a_forked_child_reports_what_its_last_drain_left(self, emulator, stream, tmp_path):
        """A forked multiprocessing child ends with os._exit right after its exit drain: what
        its still-logging daemon threads left queued is counted and reported there, since no
        later step will."""
        script = tmp_path / "forked_busy.py"
        script.write_text(FORKED_BUSY_EXIT_SCRIPT)
        # Slow replies give the logging threads time to queue records while the drain sends its
        # target (its requests go out in parallel on two threads): with instant replies a loaded
        # machine could starve them for the whole drain, leaving nothing to report.
        emulator.set_delay(0.1, "PutRecords")
        done = run_python(emulator, stream, [str(script)])
        child = done.stdout.split("child ", 1)[1].split()[0]
        reported = [
            line
            for line in done.stdout.splitlines()
            if line.startswith(f"{child} ") and "interpreter exit of the handler" in line
        ]
        assert (0, 1) == (done.returncode, len(reported)), done.stdout + done.stderr


class TestWorkerAfterMain:
    def test_a_worker_left_running_is_shipped_while_it_runs(self, emulator, stream):
        """Records of a non-daemon thread that logs after the main thread returned are sent
        while it runs (the flusher starts for them), not only at the very end, when a bounded
        queue may have overflowed long before."""
        done = run_python(emulator, stream, ["-c", WORKER_SCRIPT])
        assert (0, "sent while the worker ran: 1\n") == (done.returncode, done.stdout), done.stderr


class TestExit:
    def test_queued_records_are_delivered_at_exit(self, emulator, stream):
        """Records queued when the interpreter exits are sent on the exiting thread."""
        done, _ = run_script(emulator, stream)
        assert (0, "") == (done.returncode, done.stderr)
        data = {r.data for r in emulator.records(stream)}
        assert {f"exit-{i}".encode() for i in range(300)} == data

    @pytest.mark.parametrize("count", [0, 5])
    def test_records_logged_from_atexit_are_delivered(self, emulator, stream, count):
        """A record logged by an atexit function arrives, even as the first record ever."""
        # count=0: no flusher thread ever started, and 3.12+ forbids starting one this late.
        done, _ = run_script(emulator, stream, count=count, atexit_log=True)
        assert (0, "") == (done.returncode, done.stderr)
        assert b"from-atexit" in {r.data for r in emulator.records(stream)}

    def test_unreachable_at_exit_is_bounded_and_reported(self, emulator, stream):
        """With DIS unreachable, exit waits about close_timeout and reports what it dropped."""
        url = emulator.url
        emulator.stop()
        done, elapsed = run_script(emulator, stream, close_timeout=0.5, url=url)
        assert 0 == done.returncode
        assert elapsed < 10
        assert "300 record(s)" in done.stderr
        assert "dropped" in done.stderr
        assert emulator.sk not in done.stderr


#: An atexit function registered before the handler runs after the handler's own exit drains
#: (atexit runs last-registered first); it waits until the first drain's deadline has passed.
LATE_ATEXIT_SCRIPT = """
import atexit, logging, os, sys, time

def late():
    passed = time.monotonic() + 2 * float(os.environ["T_CLOSE_TIMEOUT"])
    while time.monotonic() < passed:
        time.sleep(0.05)
    log.info("late-record")
    print("late flush:", handler.flush())

atexit.register(late)

from dis_logging.handler import DISHandler

handler = DISHandler(
    os.environ["T_STREAM"], endpoint=os.environ["T_URL"], project_id=os.environ["T_PROJECT"],
    ak=os.environ["T_AK"], sk=os.environ["T_SK"], flush_interval=60,
    close_timeout=float(os.environ["T_CLOSE_TIMEOUT"]),
)
handler.setFormatter(logging.Formatter("%(message)s"))
log = logging.getLogger("late")
log.addHandler(handler)
log.setLevel(logging.INFO)
log.info("early-record")
"""


class TestAfterTheExitDrain:
    def test_a_flush_after_the_exit_drains_deadline_gets_its_own_budget(self, emulator, stream):
        """A flush() (and the close of logging.shutdown) made by an atexit function after the
        exit drain's deadline has passed sends within its own bound; it is not given up at once
        because the drain's deadline is over."""
        done = run_python(emulator, stream, ["-c", LATE_ATEXIT_SCRIPT], T_CLOSE_TIMEOUT="0.3")
        assert (0, "late flush: True\n", "") == (done.returncode, done.stdout, done.stderr)
        data = {r.data for r in emulator.records(stream)}
        assert {b"early-record", b"late-record"} == data
