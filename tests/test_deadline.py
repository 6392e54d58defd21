"""Every request has a total deadline, whatever the server does (DESIGN R12).

The hostile server keeps each connection alive for a minute (a byte every 0.2 s, or silence), so a
call that is not bounded by its deadline shows up as a call that lasts that long; the bounds
asserted here leave seconds of slack for a loaded machine.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from dis_logging import DISClient, DISHandler
from dis_logging.errors import TransportError

pytestmark = pytest.mark.timeout(120)

MODES = ["trickle_body", "trickle_headers", "no_reply", "half_open", "reset"]

#: Seconds a bounded call may overrun its budget here (scheduling on a shared 2-core machine).
SLACK = 3.0


def make_client(url, timeout=10.0):
    return DISClient(url, "project", ak="AK", sk="SK", request_timeout=timeout)


class TestHostileReplies:
    @pytest.mark.parametrize("mode", ["huge_body", "gzip_bomb"])
    def test_a_reply_no_dis_sends_is_refused_within_the_timeout(self, hostile_server, mode):
        """A 200 MB reply, or a gzip body that would expand to one, fails as a transport error
        within the call's timeout, without reading or inflating it."""
        import resource

        server = hostile_server(mode)
        client = make_client(server.url)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.monotonic()
        with pytest.raises(TransportError) as caught:
            client.put_records("s", [(b"x", None)], timeout=2.0)
        elapsed = time.monotonic() - start
        client.close()
        grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
        assert (True, True, True) == (
            "reply" in str(caught.value),
            elapsed < 2.0 + SLACK,
            grown_kib < 100 * 1024,  # far below the 200 MB the reply would take
        ), (str(caught.value), elapsed, grown_kib)


class TestClientDeadline:
    @pytest.mark.parametrize("mode", MODES)
    def test_put_records_ends_within_the_call_timeout(self, hostile_server, mode):
        """put_records(timeout=t) ends with a TransportError within t, however the server stalls."""
        server = hostile_server(mode)
        client = make_client(server.url)
        start = time.monotonic()
        with pytest.raises(TransportError):
            client.put_records("s", [(b"x", None)], timeout=1.0)
        elapsed = time.monotonic() - start
        client.close()
        assert elapsed < 1.0 + SLACK

    @pytest.mark.parametrize("mode", ["trickle_body", "trickle_headers"])
    def test_client_timeout_bounds_the_whole_request(self, hostile_server, mode):
        """The client's own timeout bounds the whole request, not each read of a trickle."""
        server = hostile_server(mode)
        client = make_client(server.url, timeout=1.0)
        start = time.monotonic()
        with pytest.raises(TransportError):
            client.put_records("s", [(b"x", None)])
        elapsed = time.monotonic() - start
        client.close()
        assert elapsed < 1.0 + SLACK

    def test_the_error_names_the_deadline_that_cut_the_request(self, hostile_server):
        """A request cut at the caller's budget says so, with that budget, not request_timeout."""
        server = hostile_server("no_reply")
        client = make_client(server.url)
        with pytest.raises(TransportError) as caught:
            client.put_records("s", [(b"x", None)], timeout=0.5)
        client.close()
        assert (
            f"PutRecords: no reply from 127.0.0.1:{server.port} within 0.5 s "
            "(what was left of the caller's timeout)"
        ) in str(caught.value)

    def test_a_tls_handshake_that_never_ends_keeps_the_deadline(self, hostile_server):
        """An https endpoint that accepts and never answers the TLS handshake is cut at the
        call's timeout."""
        server = hostile_server("half_open")
        client = DISClient(
            f"https://127.0.0.1:{server.port}", "project", ak="AK", sk="SK", verify=False
        )
        start = time.monotonic()
        with pytest.raises(TransportError):
            client.put_records("s", [(b"x", None)], timeout=1.0)
        elapsed = time.monotonic() - start
        client.close()
        assert elapsed < 1.0 + SLACK

    def test_a_working_server_still_answers_after_a_deadline_abort(
        self, hostile_server, emulator, stream
    ):
        """A request aborted by its deadline leaves the client usable for the next request."""
        client = DISClient(emulator.url, emulator.project_id, ak=emulator.ak, sk=emulator.sk)
        server = hostile_server("trickle_body")
        slow = make_client(server.url)
        with pytest.raises(TransportError):
            slow.put_records(stream, [(b"x", None)], timeout=0.5)
        slow.close()
        result = client.put_records(stream, [(b"ok", None)], timeout=5.0)
        client.close()
        assert (0, 1) == (result.failed_record_count, result.record_count)


def make_handler(url, **settings):
    handler = DISHandler(
        "s", endpoint=url, project_id="project", ak="AK", sk="SK", flush_interval=60, **settings
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def log_to(handler, count):
    logger = logging.getLogger("deadline-test")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for i in range(count):
            logger.info("record %d", i)
    finally:
        logger.removeHandler(handler)


class TestHandlerDeadline:
    @pytest.mark.parametrize("mode", ["trickle_body", "trickle_headers", "no_reply"])
    def test_flush_keeps_its_bound(self, hostile_server, mode):
        """flush(timeout=1) returns False within its bound while the server trickles."""
        server = hostile_server(mode)
        handler = make_handler(server.url, close_timeout=1.0)
        log_to(handler, 5)
        start = time.monotonic()
        ok = handler.flush(timeout=1.0)
        elapsed = time.monotonic() - start
        handler.close()
        assert (False, True) == (ok, elapsed < 1.0 + SLACK)

    def test_close_keeps_its_bound_and_counts_every_record(self, hostile_server):
        """close() with close_timeout=1 returns within it and leaves every record counted."""
        server = hostile_server("trickle_body")
        handler = make_handler(server.url, close_timeout=1.0)
        log_to(handler, 5)
        start = time.monotonic()
        handler.close()
        elapsed = time.monotonic() - start
        stats = handler.stats
        assert elapsed < 1.0 + SLACK
        assert stats.emitted == stats.sent + stats.dropped + stats.failed + stats.queued

    def test_a_send_after_waiting_for_the_flusher_gets_only_what_is_left(self, hostile_server):
        """flush() that first waits for the flusher's request to end sends with the budget left
        after that wait, not the one it had before (which let flush(3) last about 5 s here)."""
        server = hostile_server("no_reply", lifetime=2.5)  # each connection closed after 2.5 s
        handler = DISHandler(
            "s",
            endpoint=server.url,
            project_id="project",
            ak="AK",
            sk="SK",
            flush_interval=0.05,  # the flusher sends the first record itself
            request_timeout=30.0,
            close_timeout=1.0,
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
        log_to(handler, 1)
        assert server.accepted.wait(10)  # the flusher's request is in flight and holds the slot
        log_to(handler, 5)  # buffered behind it: flush() must send these on its own thread
        start = time.monotonic()
        ok = handler.flush(timeout=3.0)
        elapsed = time.monotonic() - start
        handler.close()
        # Without the fix the second request starts at about 2.5 s with a budget of 3 s and is
        # ended by the server at about 5 s; with it, the request is cut at 3 s.
        assert (False, True) == (ok, elapsed < 4.2), elapsed


EXIT_SCRIPT = """
import logging, os
from dis_logging import DISHandler

handler = DISHandler(
    "s", endpoint=os.environ["T_URL"], project_id="project", ak="AK", sk="SK",
    flush_interval=60, close_timeout=1.0,
)
log = logging.getLogger("exiting")
log.addHandler(handler)
log.setLevel(logging.INFO)
for i in range(5):
    log.info("exit-%d", i)
"""


class TestExitDeadline:
    @pytest.mark.parametrize("mode", ["trickle_body", "no_reply"])
    def test_interpreter_exit_keeps_its_bound(self, hostile_server, mode):
        """A process that logged and exits ends within close_timeout while the server trickles."""
        env = dict(os.environ, T_URL="")
        server = hostile_server(mode)
        env["T_URL"] = server.url
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", EXIT_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        elapsed = time.monotonic() - start
        assert 0 == done.returncode, done.stderr
        assert "5 record(s)" in done.stderr
        # Interpreter start-up and imports take about a second on a loaded machine.
        assert elapsed < 1.0 + SLACK + 2.0


#: A resolver that never answers for "localhost" (the hostile name here); every other name and
#: address is looked up as usual. The look-up sleeps in the script, so the process must not wait
#: for it anywhere.
SLOW_RESOLVER_SCRIPT = """
import json, logging, os, socket, sys, threading, time
real_getaddrinfo = socket.getaddrinfo
def hanging_getaddrinfo(host, *args, **kwargs):
    if host == "localhost":
        time.sleep(120)
    return real_getaddrinfo(host, *args, **kwargs)
socket.getaddrinfo = hanging_getaddrinfo

from dis_logging import DISHandler

def make():
    handler = DISHandler(
        "s", endpoint=os.environ["T_URL"], project_id="project", ak="AK", sk="SK",
        flush_interval=60, request_timeout=1.0, close_timeout=1.0,
    )
    log = logging.getLogger("resolving-" + str(id(handler)))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    for i in range(5):
        log.info("r%d", i)
    return handler

first = make()
start = time.monotonic()
flushed = first.flush(timeout=1.0)
flush_s = time.monotonic() - start
start = time.monotonic()
first.close()
close_s = time.monotonic() - start
resolvers = sum(t.name == "dis-logging-resolver" for t in threading.enumerate())
print(json.dumps({"flushed": flushed, "flush_s": flush_s, "close_s": close_s,
                  "resolvers": resolvers, "last_error": first.stats.last_error}))
sys.stdout.flush()
make()  # left to the interpreter exit drain
"""


class TestNameResolution:
    """Looking up the endpoint's host name is part of the request and of its deadline."""

    def test_flush_close_and_exit_keep_their_bounds_when_the_resolver_hangs(self, hostile_server):
        """flush(1), close() with close_timeout=1 and the exit drain each end within their
        bound while getaddrinfo never answers; the diagnostic names the look-up, and the
        timed-out requests share one pending look-up."""
        server = hostile_server("no_reply")
        env = dict(os.environ, T_URL=server.url.replace("127.0.0.1", "localhost"))
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", SLOW_RESOLVER_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            timeout=100,
        )
        elapsed = time.monotonic() - start
        figures = json.loads(done.stdout.splitlines()[0])
        assert (0, False, 1) == (done.returncode, figures["flushed"], figures["resolvers"]), (
            done.stderr
        )
        assert "the host localhost was not looked up within 1 s" in figures["last_error"]
        assert (True, True) == (
            figures["flush_s"] < 1.0 + SLACK,
            figures["close_s"] < 1.0 + SLACK,
        ), figures
        assert "interpreter exit of the handler" in done.stderr
        # Start-up and imports take a second or two on a loaded machine; the look-up, 120 s.
        assert elapsed < 3 * 1.0 + SLACK + 4.0, elapsed

    def test_a_late_answer_serves_the_next_request(self, emulator, stream, monkeypatch):
        """A request cut while the name is looked up fails as a transport error; the look-up
        goes on, and the next request uses its answer (one look-up for both)."""
        real_getaddrinfo = socket.getaddrinfo
        answer = threading.Event()
        asked = []

        def gated_getaddrinfo(host: str, *args: Any, **kwargs: Any) -> Any:
            if host == "localhost":
                asked.append(host)
                answer.wait(30)
                host = "127.0.0.1"
            return real_getaddrinfo(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", gated_getaddrinfo)
        url = emulator.url.replace("127.0.0.1", "localhost")
        client = DISClient(url, emulator.project_id, ak=emulator.ak, sk=emulator.sk)
        try:
            with pytest.raises(TransportError) as caught:
                client.put_records(stream, [(b"early", None)], timeout=0.3)
            assert "was not looked up within 0.3 s" in str(caught.value)
            # The answer comes while the next request waits for the same look-up: set before it,
            # the look-up could end first, and the next request would rightly look up anew.
            release = threading.Timer(0.5, answer.set)
            release.start()
            result = client.put_records(stream, [(b"late", None)], timeout=10.0)
            release.join()
        finally:
            answer.set()
            client.close()
        assert (0, 1, ["localhost"]) == (result.failed_record_count, result.record_count, asked)

    def test_every_address_of_a_name_shares_one_deadline(self, monkeypatch):
        """A name with six addresses that all drop the connection attempt is given up at the
        request's deadline, not after a whole timeout per address (six seconds here)."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # never accepts: once its queue holds one, connections hang
        port = listener.getsockname()[1]
        filler = socket.create_connection(("127.0.0.1", port), timeout=5)
        real_getaddrinfo = socket.getaddrinfo

        def six_addresses(host: str, *args: Any, **kwargs: Any) -> Any:
            if host == "localhost":
                return real_getaddrinfo("127.0.0.1", port, socket.AF_INET, socket.SOCK_STREAM) * 6
            return real_getaddrinfo(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", six_addresses)
        client = make_client(f"http://localhost:{port}", timeout=1.0)
        start = time.monotonic()
        try:
            with pytest.raises(TransportError):
                client.put_records("s", [(b"x", None)])
            elapsed = time.monotonic() - start
        finally:
            client.close()
            filler.close()
            listener.close()
        assert elapsed < 1.0 + SLACK, elapsed
