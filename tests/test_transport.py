"""The transport's system-call economy: one send per request, steady socket timeouts.

Each socket call hands the GIL over, and an application thread logging in a tight loop can keep
the flusher waiting for it up to the interpreter's switch interval each time; these tests pin the
calls saved. The requests go to the emulator on loopback; the counting wraps our own connection
method, never the HTTP stack.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import Any, List

import pytest

from dis_logging import DISClient, DISEmulator
from dis_logging import _transport as transport


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> List[int]:
    """The sizes of the chunks our connections hand to the socket, in order."""
    seen: List[int] = []
    original = transport.HTTPConnection._send_now

    def counting(self: transport.HTTPConnection, data: Any) -> None:
        seen.append(len(data))
        original(self, data)

    monkeypatch.setattr(transport.HTTPConnection, "_send_now", counting)
    return seen


def test_a_request_on_an_open_connection_leaves_in_one_send(
    emulator: DISEmulator, sends: List[int]
) -> None:
    """Header block and body go out together once the connection is open."""
    emulator.create_stream("one-send", partitions=1)
    records = [(f"record {i}".encode(), None) for i in range(500)]
    with DISClient(emulator.url, emulator.project_id, ak=emulator.ak, sk=emulator.sk) as client:
        client.put_records("one-send", records)  # opens the connection
        first = len(sends)
        client.put_records("one-send", records)
        client.put_records("one-send", records)
        reused = sends[first:]
    stored = emulator.records("one-send")
    assert (2, 1500) == (len(reused), len(stored))
    assert all(size > 500 * len(b"record 000") for size in reused)  # each holds its body


def test_requests_without_a_body_still_go_out(emulator: DISEmulator, sends: List[int]) -> None:
    """A bodiless request after a held one (same connection) is sent and answered."""
    emulator.create_stream("no-body", partitions=2)
    with DISClient(emulator.url, emulator.project_id, ak=emulator.ak, sk=emulator.sk) as client:
        client.put_records("no-body", [(b"x", None)])
        described = client.describe_stream("no-body")
        client.put_records("no-body", [(b"y", None)])
    assert 2 == len(described["partitions"])  # type: ignore[arg-type]
    assert [b"x", b"y"] == sorted(r.data for r in emulator.records("no-body"))


class TestSteadyTimeouts:
    def test_a_close_timeout_is_left_as_it_is(self) -> None:
        left, right = socket.socketpair()
        with left, right:
            transport._steady(left)
            left.settimeout(10.0)
            left.settimeout(10.1)  # within 5 %: no system call, the old value stands
            kept = left.gettimeout()
            left.settimeout(5.0)
            shortened = left.gettimeout()
            left.settimeout(None)
            blocking = left.gettimeout()
            left.settimeout(0.0)
            non_blocking = left.gettimeout()
        assert (10.0, 5.0, None, 0.0) == (kept, shortened, blocking, non_blocking)

    def test_the_slack_is_bounded(self) -> None:
        """Small timeouts move by 20 ms at least; large ones never stay more than 0.25 s off."""
        left, right = socket.socketpair()
        with left, right:
            transport._steady(left)
            left.settimeout(0.1)
            left.settimeout(0.11)
            small = left.gettimeout()
            left.settimeout(100.0)
            left.settimeout(99.7)
            large = left.gettimeout()
        assert (0.1, 99.7) == (small, large)

    def test_tls_sockets_get_it_too(self) -> None:
        context = ssl.create_default_context()
        with context.wrap_socket(
            socket.socket(), server_hostname="localhost", do_handshake_on_connect=False
        ) as sock:
            transport._steady(sock)
            sock.settimeout(3.0)
            sock.settimeout(3.1)
            assert (True, 3.0) == (isinstance(sock, ssl.SSLSocket), sock.gettimeout())

    def test_the_deadline_still_shortens_a_far_timeout(self) -> None:
        """A request's deadline shortens the socket's timeout once the gap exceeds the slack."""
        left, right = socket.socketpair()
        with left, right:
            transport._steady(left)
            left.settimeout(10.0)
            transport._bound(left, time.monotonic() + 1.0)
            assert 0.9 < (left.gettimeout() or 0) <= 1.0


def test_a_connection_the_server_closed_is_not_reused() -> None:
    """A keep-alive connection the server closed after its reply is replaced, not written to."""
    reply = b'{"failed_record_count":0,"records":[{"partition_id":"shardId-0000000000"}]}'
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (
            len(reply),
            reply,
        )
    )
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    connections: List[int] = []
    done = threading.Event()

    def serve() -> None:
        # Each connection gets one reply, promised as keep-alive, and is then closed.
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:  # the accept timeout: look at the flag again
                continue
            conn.settimeout(5.0)
            with conn:
                connections.append(1)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    results = []
    try:
        with DISClient(url, "p", token="a-token-of-some-length") as client:
            for _ in range(3):
                results.append(client.put_records("s", [(b"x", None)]).ok)
                time.sleep(0.05)  # the server's close reaches the client meanwhile
    finally:
        done.set()
        thread.join(5.0)
        listener.close()
    assert ([True, True, True], 3) == (results, len(connections))
