"""The transport's system-call economy: one send per request, steady socket timeouts.

Each socket call hands the GIL over, and an application thread logging in a tight loop can keep
the flusher waiting for it up to the interpreter's switch interval each time; these tests pin the
calls saved. The requests go to the emulator on loopback; the counting wraps our own connection
method, never the HTTP stack.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import ssl
import threading
import time
import tracemalloc
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from dis_logging import DISClient, DISEmulator
from dis_logging import _transport as transport
from dis_logging.errors import DISError, TransportError


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> List[int]:
    """The sizes of the chunks our client's plain sockets send, in order."""
    seen: List[int] = []
    original = transport._SteadySocket.sendall

    def counting(self: socket.socket, data: Any, *args: Any) -> None:
        seen.append(len(data))
        original(self, data, *args)

    monkeypatch.setattr(transport._SteadySocket, "sendall", counting)
    return seen


def test_a_request_leaves_in_one_send(emulator: DISEmulator, sends: List[int]) -> None:
    """Header block and body go out together on an open connection: PutRecords (sent by
    _transport.exchange) and the other requests (through urllib3) alike."""
    records = [(f"record {i}".encode(), None) for i in range(500)]
    with DISClient(emulator.url, emulator.project_id, ak=emulator.ak, sk=emulator.sk) as client:
        client.create_stream("one-send", partition_count=1)  # opens: headers, then body
        opened = len(sends)
        for _ in range(3):
            client.put_records("one-send", records)
        client.create_stream("one-send-too", partition_count=1)
        reused = sends[opened:]
    stored = emulator.records("one-send")
    assert (2, 4, 1500) == (opened, len(reused), len(stored))
    assert all(size > 500 * len(b"record 000") for size in reused[:3])  # each holds its body


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


PUT_OK = (
    b'{"failed_record_count":0,'
    b'"records":[{"partition_id":"shardId-0000000000","sequence_number":"7"}]}'
)


def _read_head(conn: socket.socket, data: bytes = b"") -> Optional[Tuple[bytes, bytes]]:
    """Read a request up to the end of its header block: ``(head, the bytes after it)``, or
    ``None`` when the client closed first."""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _read_request(conn: socket.socket, data: bytes = b"") -> Optional[bytes]:
    """Read one request whose body has a Content-Length; return the bytes received after it, or
    ``None`` when the client closed first."""
    read = _read_head(conn, data)
    if read is None:
        return None
    head, data = read
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(data) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    return data[length:]


class RawReplies:
    """A loopback server that answers each request with the next scripted raw reply, on the same
    connection while the reply's framing allows (``close_each``: never); it counts connections."""

    def __init__(self, replies: List[bytes], *, close_each: bool = False) -> None:
        self.replies = list(replies)
        self.close_each = close_each
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._done = threading.Event()
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._done.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            self.connections += 1
            with conn, contextlib.suppress(OSError):  # a client that goes away ends it
                conn.settimeout(5.0)
                data: Optional[bytes] = b""
                while self.replies:
                    data = _read_request(conn, data or b"")
                    if data is None:
                        break
                    reply = self.replies.pop(0)
                    conn.sendall(reply)
                    framed = b"content-length" in reply.lower() or b"chunked" in reply.lower()
                    if b"connection: close" in reply.lower() or not framed or self.close_each:
                        break

    def close(self) -> None:
        self._done.set()
        self._thread.join(5.0)
        self._listener.close()


def _ok(extra: bytes = b"", body: bytes = PUT_OK) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


@pytest.fixture
def raw_replies() -> Iterator[Any]:
    servers: List[RawReplies] = []

    def make(*replies: bytes, close_each: bool = False) -> RawReplies:
        servers.append(RawReplies(list(replies), close_each=close_each))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def _put_twice(url: str) -> List[Any]:
    with DISClient(url, "p", token="a-token-of-some-length", request_timeout=5.0) as client:
        return [client.put_records("s", [(b"x", None)]) for _ in range(2)]


def test_a_connection_the_server_closed_is_not_reused(raw_replies: Any) -> None:
    """A keep-alive connection the server closed after its reply is replaced, not written to."""
    server = raw_replies(_ok(), _ok(), _ok(), close_each=True)  # no "Connection: close" said
    results = []
    with DISClient(server.url, "p", token="a-token-of-some-length") as client:
        for _ in range(3):
            results.append(client.put_records("s", [(b"x", None)]).ok)
            time.sleep(0.05)  # the server's close reaches the client meanwhile
    assert ([True, True, True], 3) == (results, server.connections)


def test_bytes_sent_unasked_on_an_idle_connection_are_never_a_reply() -> None:
    """A server that sends a second, unasked reply after the first one was read (here a 200 for
    sequence number 999) and answers the next request on that connection with 503: the client
    does not reuse the connection, so the stray bytes are never taken for the next reply."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5.0)
    stray = _ok(body=PUT_OK.replace(b'"7"', b'"999"'))
    send_stray, stray_sent = threading.Event(), threading.Event()
    connections: List[int] = []

    def serve() -> None:
        while len(connections) < 2:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            connections.append(1)
            # A client that closes the first connection with the stray bytes unread resets it.
            with conn, contextlib.suppress(OSError):
                if len(connections) == 1:
                    assert _read_request(conn) is not None
                    conn.sendall(_ok())  # sequence number 7
                    send_stray.wait(10.0)
                    conn.sendall(stray)
                    stray_sent.set()
                    if _read_request(conn) is not None:
                        conn.sendall(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")
                else:
                    assert _read_request(conn) is not None
                    conn.sendall(_ok(body=PUT_OK.replace(b'"7"', b'"8"')))

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        with DISClient(url, "p", token="a-token-of-some-length", request_timeout=5.0) as client:
            first = client.put_records("s", [(b"x", None)])
            send_stray.set()
            assert stray_sent.wait(10.0)
            second = client.put_records("s", [(b"y", None)])
    finally:
        server.join(10.0)
        listener.close()
    numbers = [result.records[0].sequence_number for result in (first, second)]
    assert (["7", "8"], 2) == (numbers, len(connections))


class TestDirectExchange:
    """PutRecords replies read by _transport.exchange, framed every way HTTP/1.1 allows."""

    def test_keep_alive_replies_share_one_connection(self, raw_replies: Any) -> None:
        server = raw_replies(_ok(), _ok())
        results = _put_twice(server.url)
        assert ([True, True], ["7", "7"], 1) == (
            [r.ok for r in results],
            [r.records[0].sequence_number for r in results],
            server.connections,
        )

    def test_a_chunked_reply_is_decoded(self, raw_replies: Any) -> None:
        half = len(PUT_OK) // 2
        chunked = (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x;ext=1\r\n%s\r\n" % (half, PUT_OK[:half])
            + b"%x\r\n%s\r\n" % (len(PUT_OK) - half, PUT_OK[half:])
            + b"0\r\nX-Trailer: t\r\n\r\n"
        )
        server = raw_replies(chunked, _ok())
        results = _put_twice(server.url)
        assert ([True, True], 1) == ([r.ok for r in results], server.connections)

    def test_a_reply_of_one_byte_chunks_holds_no_object_per_chunk(self, raw_replies: Any) -> None:
        """Memory while reading stays near the reply's size: a list of one-byte chunks took about
        120 bytes per byte of body (12 MB here; a 16 MiB reply, the cap, became 150 MB)."""
        body = PUT_OK + b" " * 100_000  # JSON may carry any amount of whitespace
        chunked = (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"".join(b"1\r\n%c\r\n" % byte for byte in body)
            + b"0\r\n\r\n"
        )
        server = raw_replies(chunked)
        with DISClient(server.url, "p", token="a-token-of-some-length") as client:
            tracemalloc.start()
            try:
                ok = client.put_records("s", [(b"x", None)]).ok
            finally:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
        assert ok
        assert peak < 4 * len(chunked)

    def test_an_interim_reply_is_skipped(self, raw_replies: Any) -> None:
        server = raw_replies(b"HTTP/1.1 100 Continue\r\n\r\n" + _ok(), _ok())
        assert [True, True] == [r.ok for r in _put_twice(server.url)]

    def test_a_reply_ending_with_the_connection_is_read_to_the_end(self, raw_replies: Any) -> None:
        until_close = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + PUT_OK
        server = raw_replies(until_close)
        results = []
        with DISClient(server.url, "p", token="a-token-of-some-length") as client:
            results.append(client.put_records("s", [(b"x", None)]).ok)
            server.replies.append(_ok())
            results.append(client.put_records("s", [(b"y", None)]).ok)
        assert ([True, True], 2) == (results, server.connections)

    def test_a_repeated_content_length_that_agrees_is_one_length(self, raw_replies: Any) -> None:
        """Some proxies repeat Content-Length; equal copies are read as one (the requests path
        accepted them too), and a conflicting pair is refused."""
        twice = b"Content-Length: %d\r\n" % len(PUT_OK)
        agreeing = _ok(extra=twice)
        conflicting = _ok(extra=b"Content-Length: 3\r\n")
        server = raw_replies(agreeing, _ok(), conflicting)
        with DISClient(server.url, "p", token="a-token-of-some-length") as client:
            results = [client.put_records("s", [(b"x", None)]).ok for _ in range(2)]
            with pytest.raises(TransportError) as info:
                client.put_records("s", [(b"x", None)])
        assert ([True, True], 1) == (results, server.connections)
        assert "invalid Content-Length" in str(info.value)

    def test_folded_and_repeated_headers(self, raw_replies: Any) -> None:
        extra = b"X-Request-Id: r-1\r\n continued\r\nX-Request-Id: r-2\r\n"
        server = raw_replies(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n" + extra + b"\r\n")
        with DISClient(server.url, "p", token="a-token-of-some-length") as client:
            with pytest.raises(DISError) as info:
                client.put_records("s", [(b"x", None)])
        assert (503, "r-1 continued, r-2") == (info.value.status, info.value.request_id)

    @pytest.mark.parametrize(
        ("reply", "words"),
        [
            (b"HTTP/9 200 OK\r\nContent-Length: 0\r\n\r\n", "HTTP/9"),
            (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", "headers"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 90\r\n\r\n{}", "IncompleteRead"),
            (b"HTTP/1.1 200 OK\r\nBad header\r\nContent-Length: 0\r\n\r\n", "header"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "transfer coding"),
            # A negative size once moved the reader backwards in a loop without end.
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-6\r\n", "chunk size"),
            (b"", "closed the connection without a reply"),
            # "\xb2" (superscript two) passed str.isdigit() and made int() raise ValueError,
            # reported as a token the client could not send: failed for good, blaming the token.
            (b"HTTP/1.1 2\xb20 OK\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 2\xb20 OK"),
            # No HTTP status is below 100 (http.client refuses it); it was a permanent failure.
            (b"HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 099 Odd"),
        ],
    )
    def test_a_malformed_reply_is_a_transport_error(
        self, raw_replies: Any, reply: bytes, words: str
    ) -> None:
        server = raw_replies(reply)
        with DISClient(server.url, "p", token="a-token-of-some-length") as client:
            with pytest.raises(TransportError) as info:
                client.put_records("s", [(b"x", None)])
        assert words.lower() in str(info.value).lower()

    def test_a_pool_urllib3_closed_is_not_used_again(self, raw_replies: Any) -> None:
        """The remembered pool of a URL is replaced once urllib3 evicted (closed) it."""
        server = raw_replies(_ok(), _ok())
        with DISClient(server.url, "p", token="a-token-of-some-length") as client:
            first = client.put_records("s", [(b"x", None)]).ok
            # What urllib3 1.x does to its oldest pool past ten hosts: forget it, close it.
            adapter = client._session.get_adapter(server.url)
            adapter.poolmanager.clear()  # type: ignore[attr-defined]
            for pool, _ in client._routes.values():
                pool.close()
            second = client.put_records("s", [(b"y", None)]).ok
        assert ([True, True], 2) == ([first, second], server.connections)


def test_an_early_reply_to_a_body_the_server_stopped_reading_is_read() -> None:
    """A server that answers after the headers (413 here) and closes with the body unread: the
    send fails (broken pipe or reset), and the reply is still read, as urllib3 reads it, so that
    the batch is split instead of retried whole as a transport failure."""
    body = b'{"error_code":"APIG.0201","error_msg":"Request body too large"}'
    reply = b"HTTP/1.1 413 Too Large\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (
        len(body),
        body,
    )
    listener = socket.create_server(("127.0.0.1", 0))

    def answer_early() -> None:
        conn, _ = listener.accept()
        with conn:
            if _read_head(conn) is None:
                return
            conn.sendall(reply)  # and close with megabytes of the body unread: a reset

    server = threading.Thread(target=answer_early, daemon=True)
    server.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        with DISClient(url, "p", token="a-token-of-some-length", request_timeout=30.0) as client:
            with pytest.raises(DISError) as info:
                client.put_records("s", [(b"x" * (8 << 20), None)])  # more than socket buffers
    finally:
        server.join(30.0)
        listener.close()
    assert (413, "APIG.0201") == (info.value.status, info.value.code)


@pytest.mark.parametrize(
    "credentials",
    [
        {"token": "a-token-that-is-a-secret"},
        {"ak": "AKEXAMPLE", "sk": "sk-that-is-a-secret", "security_token": "st-that-is-a-secret"},
    ],
)
def test_a_ctrl_c_while_the_reply_is_awaited_shows_no_secret(
    credentials: Dict[str, str], package_frames: Callable[..., str]
) -> None:
    """SIGINT on the main thread while it waits for a PutRecords reply (a flush, the exit drain):
    the KeyboardInterrupt's traceback, local variables shown, holds no secret. The request's
    bytes, token header included, sat in a local of _transport.exchange."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    main = threading.get_ident()
    listener = socket.create_server(("127.0.0.1", 0))

    def interrupt_once_asked() -> None:
        conn, _ = listener.accept()
        with conn:
            if _read_head(conn) is None:
                return
            signal.pthread_kill(main, signal.SIGINT)  # the client now sends or waits
            with contextlib.suppress(OSError):
                conn.recv(65536)  # until the client has gone

    server = threading.Thread(target=interrupt_once_asked, daemon=True)
    server.start()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        with DISClient(url, "p", request_timeout=60.0, **credentials) as client:  # type: ignore[arg-type]
            with pytest.raises(KeyboardInterrupt) as info:
                client.put_records("s", [(b"x", None)])
    finally:
        signal.signal(signal.SIGINT, previous)
        server.join(30.0)
        listener.close()
    text = package_frames(info.value)
    assert "exchange" in text  # the frame that held the request is in the traceback
    assert [] == [name for name, value in credentials.items() if value in text and name != "ak"]
