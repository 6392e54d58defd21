"""Fork safety: gunicorn --preload workers, multiprocessing children and raw forks all deliver."""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any, Dict, Iterator, List, Set

import pytest
import requests

from dis_logging.emulator import DISEmulator
from dis_logging.handler import DISHandler

pytestmark = [
    pytest.mark.usefixtures("no_faulthandler_timer"),
    # Python 3.12+ warns on fork() in a process with threads; forking such a process is the point.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

WSGI_APP = '''
"""A tiny WSGI app whose module-level logging setup runs in gunicorn's master (--preload)."""
import logging
import os

from dis_logging.handler import DISHandler

handler = DISHandler(
    stream_name=os.environ["FORK_TEST_STREAM"],
    endpoint=os.environ["FORK_TEST_ENDPOINT"],
    project_id=os.environ["FORK_TEST_PROJECT"],
    ak=os.environ["FORK_TEST_AK"],
    sk=os.environ["FORK_TEST_SK"],
    flush_interval=0.1,
)
log = logging.getLogger("forkapp")
log.setLevel(logging.INFO)
log.addHandler(handler)
log.propagate = False
log.info("preloaded in master pid=%d", os.getpid())


def app(environ, start_response):
    log.info("request in worker pid=%d path=%s", os.getpid(), environ.get("PATH_INFO"))
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


@pytest.fixture
def no_faulthandler_timer() -> None:
    # pytest-timeout or faulthandler_timeout may arm dump_traceback_later; a process with that
    # timer armed can hang when a forked child exits (DESIGN.md, pitfalls).
    faulthandler.cancel_dump_traceback_later()


def make_handler(emu: DISEmulator, stream: str, **kwargs: Any) -> DISHandler:
    return DISHandler(
        stream_name=stream,
        endpoint=emu.url,
        project_id=emu.project_id,
        ak=emu.ak,
        sk=emu.sk,
        flush_interval=0.1,
        **kwargs,
    )


@pytest.fixture
def fork_logger(emulator: DISEmulator, stream: str) -> Iterator[logging.Logger]:
    handler = make_handler(emulator, stream)
    logger = logging.getLogger("tests.fork")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        handler.close()


def messages(emu: DISEmulator, stream: str) -> List[str]:
    return [r.data.decode("utf-8", "replace") for r in emu.records(stream)]


def wait_for_text(emu: DISEmulator, stream: str, texts: List[str], timeout: float = 10.0) -> None:
    """Wait until every text occurs in some stored record; fail with the missing ones otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        stored = messages(emu, stream)
        missing = [t for t in texts if not any(t in m for m in stored)]
        if not missing:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"not delivered within {timeout}s: {missing}")
        with contextlib.suppress(TimeoutError):  # wakes on the next stored record, or polls
            emu.wait_for(stream, len(stored) + 1, timeout=0.2)


def wait_child(pid: int, timeout: float) -> int:
    """waitpid with a deadline; kills the child and fails the test when it hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"forked child {pid} did not finish within {timeout}s (deadlock?)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestGunicorn:
    def test_preload_workers_all_deliver(self, emulator, stream, tmp_path):
        """With --preload and two workers, every worker's records and the master's arrive once."""
        (tmp_path / "fork_wsgi_app.py").write_text(textwrap.dedent(WSGI_APP))
        port = free_port()
        env = dict(
            os.environ,
            FORK_TEST_STREAM=stream,
            FORK_TEST_ENDPOINT=emulator.url,
            FORK_TEST_PROJECT=emulator.project_id,
            FORK_TEST_AK=emulator.ak,
            FORK_TEST_SK=emulator.sk,
            PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        )
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "--preload",
            "--workers",
            "2",
            "--worker-class",
            "sync",
            "--bind",
            f"127.0.0.1:{port}",
            "--graceful-timeout",
            "5",
            "--log-level",
            "warning",
            "fork_wsgi_app:app",
        ]
        master = subprocess.Popen(cmd, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
        try:
            pids = self.drive(port, master)
            wait_for_text(emulator, stream, [f"request in worker pid={p}" for p in pids])
        finally:
            master.send_signal(signal.SIGTERM)
            try:
                _, err = master.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                master.kill()
                master.communicate(timeout=10)
                pytest.fail("gunicorn did not shut down within 20 s")
        assert 0 == master.returncode, err
        assert 2 == len(pids)
        preloaded = [m for m in messages(emulator, stream) if "preloaded in master" in m]
        assert 1 == len(preloaded), "the master's record must be sent once, not by every worker"

    @staticmethod
    def drive(port: int, master: subprocess.Popen[str]) -> Set[str]:
        """Send requests from two threads until both workers answered (at most 20 s)."""
        pids: Set[str] = set()
        deadline = time.monotonic() + 20.0

        def hammer() -> None:
            with requests.Session() as session:
                while len(pids) < 2 and time.monotonic() < deadline and master.poll() is None:
                    try:
                        reply = session.get(f"http://127.0.0.1:{port}/ping", timeout=2)
                    except requests.ConnectionError:
                        time.sleep(0.05)  # gunicorn is still starting
                        continue
                    pids.add(reply.text)

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert master.poll() is None, "gunicorn exited early"
        return pids


def child_logs(marker: str, count: int) -> None:
    """multiprocessing "fork" target: log through the handler inherited from the parent."""
    logger = logging.getLogger("tests.fork")
    for i in range(count):
        logger.info("%s child=%d i=%d", marker, os.getpid(), i)


def spawn_child_logs(settings: Dict[str, str], marker: str, count: int) -> None:
    """multiprocessing "spawn" target: build a handler from scratch and log without closing it."""
    handler = DISHandler(**settings)
    logger = logging.getLogger("tests.fork.spawned")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    for i in range(count):
        logger.info("%s child=%d i=%d", marker, os.getpid(), i)


class TestMultiprocessing:
    def test_fork_children_deliver(self, emulator, stream, fork_logger):
        """Children forked by multiprocessing deliver their records though they end via os._exit."""
        fork_logger.info("parent before fork")
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=child_logs, args=(f"forked-{n}", 5)) for n in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        assert [0, 0] == [p.exitcode for p in procs]
        fork_logger.info("parent after fork")
        wanted = [f"forked-{n} child={p.pid} i={i}" for n, p in enumerate(procs) for i in range(5)]
        wait_for_text(emulator, stream, [*wanted, "parent before fork", "parent after fork"])
        assert 1 == sum("parent before fork" in m for m in messages(emulator, stream))

    def test_spawn_children_deliver(self, emulator, stream):
        """Children started with "spawn" deliver their records at interpreter exit."""
        settings = {
            "stream_name": stream,
            "endpoint": emulator.url,
            "project_id": emulator.project_id,
            "ak": emulator.ak,
            "sk": emulator.sk,
            "flush_interval": "5.0",  # longer than the child lives: exit must deliver
        }
        ctx = multiprocessing.get_context("spawn")
        procs = [
            ctx.Process(target=spawn_child_logs, args=(settings, f"spawned-{n}", 3))
            for n in range(2)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [0, 0] == [p.exitcode for p in procs]
        wanted = [f"spawned-{n} child={p.pid} i={i}" for n, p in enumerate(procs) for i in range(3)]
        wait_for_text(emulator, stream, wanted)


class TestRawFork:
    def test_fork_during_slow_send(self, emulator, stream, fork_logger):
        """Forking while the flusher is inside a slow send deadlocks neither child nor parent."""
        emulator.set_delay(0.5, "PutRecords")
        fork_logger.info("in flight when forking")
        # Not a synchronisation: give the flusher (interval 0.1 s) time to be inside the 0.5 s send.
        time.sleep(0.25)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                fork_logger.info("from the child pid=%d", os.getpid())
                handler = fork_logger.handlers[0]
                code = 0 if handler.flush(timeout=10) else 2
            finally:
                os._exit(code)
        assert 0 == wait_child(pid, 20)
        emulator.set_delay(0)
        wait_for_text(emulator, stream, [f"from the child pid={pid}", "in flight when forking"])
        assert 1 == sum("in flight when forking" in m for m in messages(emulator, stream))

    def test_fork_while_emitting_from_threads(self, emulator, stream, fork_logger):
        """Repeated forks while other threads log never leave a child stuck on an inherited lock."""
        stop = threading.Event()

        def spam() -> None:
            while not stop.is_set():
                fork_logger.info("spam from thread")

        threads = [threading.Thread(target=spam) for _ in range(2)]
        for t in threads:
            t.start()
        children: List[int] = []
        try:
            for _ in range(5):
                pid = os.fork()
                if pid == 0:
                    code = 1
                    try:
                        fork_logger.info("child %d alive", os.getpid())
                        code = 0 if fork_logger.handlers[0].flush(timeout=10) else 2
                    finally:
                        os._exit(code)
                children.append(pid)
                time.sleep(0.01)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        assert [0] * 5 == [wait_child(pid, 20) for pid in children]
        wait_for_text(emulator, stream, [f"child {pid} alive" for pid in children])
