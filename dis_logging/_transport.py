"""A total deadline for each HTTP request: connect, send, status line, headers and the whole body.

``requests`` and ``urllib3`` timeouts bound each socket operation, not the request: a server that
sends one byte now and then keeps a read alive for ever (DESIGN.md, Pitfalls). Here the calling
thread states the deadline of the request it is about to make (:func:`enter_deadline`), and the
connections of :class:`DeadlineAdapter` check it before every send and every receive: each socket
operation gets at most the time left, and once none is left the next operation raises
:class:`socket.timeout`, which ``urllib3`` turns into its usual timeout errors. No thread is
needed, so the bound also holds during interpreter shutdown, when Python 3.12+ refuses new threads.

Only :mod:`dis_logging.client` imports this module; like the client, it may see socket and
``urllib3`` internals.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import sys
import threading
import time
from typing import Any, Final, Optional, Tuple

import urllib3.connection
import urllib3.connectionpool
from requests.adapters import HTTPAdapter
from urllib3.poolmanager import PoolManager

__all__ = [
    "DeadlineAdapter",
    "Outer",
    "RefusedReplyError",
    "current_deadline",
    "enter_deadline",
    "leave_deadline",
]

_local = threading.local()

#: A socket timeout is changed only when it differs from the one asked for by more than this
#: share of it (within the two bounds below, in seconds): changing a timeout is a system call
#: that hands the GIL over (see :class:`_SteadyTimeouts`). An operation may therefore outlast its
#: request's deadline by that much: at most 5 %, and never more than a quarter of a second.
TIMEOUT_SLACK = 0.05
TIMEOUT_SLACK_MIN = 0.02
TIMEOUT_SLACK_MAX = 0.25


def _close_enough(current: float, wanted: float) -> bool:
    """Whether a socket timeout of ``current`` seconds may stand in for ``wanted``."""
    slack = min(TIMEOUT_SLACK_MAX, max(TIMEOUT_SLACK_MIN, TIMEOUT_SLACK * wanted))
    return abs(current - wanted) <= slack


#: ``TCP_INFO`` (Linux) and the first byte of its answer for an open connection: asking for it
#: keeps the GIL, unlike urllib3's readiness probe before reusing a connection.
_TCP_INFO: Final[Optional[int]] = (
    getattr(socket, "TCP_INFO", None) if sys.platform == "linux" else None
)
_TCP_ESTABLISHED: Final = 1

#: Bytes of the reader of a reply: more than a 500-record PutRecords reply (about 35 KB).
_READ_BUFFER = 256 * 1024


#: What :func:`enter_deadline` returns: the outer deadline and reply limit, to restore.
Outer = Tuple[Optional[float], Optional[int]]


class RefusedReplyError(OSError):
    """A reply no DIS server sends: larger than its request allows, or compressed although the
    request asked for none. The connection is dropped with the rest unread."""


def current_deadline() -> Optional[float]:
    """The calling thread's request deadline on the :func:`time.monotonic` clock, or ``None``."""
    deadline: Optional[float] = getattr(_local, "deadline", None)
    return deadline


def enter_deadline(deadline: float, max_reply_bytes: Optional[int] = None) -> Outer:
    """Make ``deadline`` the calling thread's request deadline until :func:`leave_deadline`.

    A nested request (a token fetch inside a request) can only shorten the outer deadline.

    Args:
        deadline: a :func:`time.monotonic` time.
        max_reply_bytes: the most bytes a reply (status line, headers and body) may have before
            reading it fails with :class:`RefusedReplyError`; ``None`` (the default) sets no
            bound. It applies to the requests made until :func:`leave_deadline`.

    Returns:
        The outer deadline and limit, to pass to :func:`leave_deadline` (in a ``finally``).
    """
    outer = (current_deadline(), getattr(_local, "max_reply_bytes", None))
    _local.deadline = deadline if outer[0] is None else min(deadline, outer[0])
    _local.max_reply_bytes = max_reply_bytes
    return outer


def leave_deadline(outer: Outer) -> None:
    """Restore the deadline and reply limit that :func:`enter_deadline` returned."""
    _local.deadline, _local.max_reply_bytes = outer


def _time_left(deadline: float) -> float:
    """Seconds left before ``deadline``.

    Raises:
        socket.timeout: no time is left.
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise socket.timeout("the request's total deadline passed")
    return remaining


def _bound(sock: socket.socket, deadline: Optional[float]) -> None:
    """Give ``sock``'s next operation no more than the time left before ``deadline``.

    Raises:
        socket.timeout: no time is left.
    """
    if deadline is None:
        return
    remaining = _time_left(deadline)
    current = sock.gettimeout()
    if current is None or (current > remaining and not _close_enough(current, remaining)):
        sock.settimeout(remaining)


def _shorten_connect(
    connection: urllib3.connection.HTTPConnection, deadline: Optional[float]
) -> None:
    """Give ``connection``'s next connect no more than the time left before ``deadline``.

    Raises:
        socket.timeout: no time is left.
    """
    if deadline is None:
        return
    remaining = _time_left(deadline)
    current = connection.timeout
    if not isinstance(current, (int, float)) or current > remaining:
        connection.timeout = remaining


class _SteadyTimeouts:
    """A socket whose :meth:`settimeout` leaves a timeout close to the one asked for as it is.

    CPython's ``settimeout`` always switches the descriptor's blocking mode with a system call
    that releases the GIL, even when the mode does not change, and urllib3 sets the timeout twice
    per request; each hand-over can cost the interpreter's whole switch interval (5 ms by default)
    while another thread logs in a tight loop. Mixed into the class of a connected socket.
    """

    __slots__ = ()

    def settimeout(self, value: Optional[float]) -> None:
        current = self.gettimeout()  # type: ignore[attr-defined]
        if (
            value is not None
            and current is not None
            and value > 0
            and current > 0
            and _close_enough(current, value)
        ):
            return
        super().settimeout(value)  # type: ignore[misc]


class _SteadySocket(_SteadyTimeouts, socket.socket):
    __slots__ = ()


class _SteadySSLSocket(_SteadyTimeouts, ssl.SSLSocket):
    __slots__ = ()


def _steady(sock: Any) -> None:
    """Give ``sock`` :class:`_SteadyTimeouts` when it is a plain or TLS socket (not a wrapper)."""
    if sock.__class__ is socket.socket:
        sock.__class__ = _SteadySocket
    elif sock.__class__ is ssl.SSLSocket:
        sock.__class__ = _SteadySSLSocket


class _DeadlineReader(io.RawIOBase):
    """The socket reader of one response; every receive stays within the request's deadline.

    It wraps the reader ``socket.makefile`` made, so the socket stays open while the response
    needs it (``http.client`` closes its connection early for ``Connection: close`` replies).
    """

    def __init__(
        self,
        raw: io.RawIOBase,
        sock: socket.socket,
        deadline: float,
        max_bytes: Optional[int] = None,
    ) -> None:
        super().__init__()
        self._raw = raw
        self._sock = sock
        self._deadline = deadline
        self._left = max_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> Optional[int]:
        _bound(self._sock, self._deadline)
        count = self._raw.readinto(buffer)
        if count and self._left is not None:
            self._left -= count
            if self._left < 0:
                # A reply far larger than any DIS sends: reading and parsing it would take
                # memory and time past every bound, so the exchange fails here instead.
                raise RefusedReplyError("a reply larger than any DIS reply to this request")
        return count

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """``http.client``'s response; reads through a :class:`_DeadlineReader` under a deadline."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        deadline = current_deadline()
        if deadline is not None and isinstance(self.fp, io.BufferedReader):
            # Nothing was read yet, so the buffer is empty and can be dropped.
            raw = self.fp.detach()
            limit: Optional[int] = getattr(_local, "max_reply_bytes", None)
            # A buffer larger than a PutRecords reply takes the whole reply in one receive:
            # each socket call hands the GIL over, which costs a busy application's thread
            # up to the interpreter's switch interval.
            self.fp = io.BufferedReader(
                _DeadlineReader(raw, sock, deadline, limit), buffer_size=_READ_BUFFER
            )

    def begin(self) -> None:
        super().begin()
        encoding = (self.getheader("Content-Encoding") or "identity").strip().lower()
        if encoding != "identity" and getattr(_local, "max_reply_bytes", None) is not None:
            # The client asks for identity replies; a small gzip body could expand to gigabytes
            # after the size cap on the wire has let it through.
            raise RefusedReplyError(f"a compressed reply ({encoding}) that was not asked for")


# The four classes below keep urllib3's names, which its error messages quote.


class HTTPConnection(urllib3.connection.HTTPConnection):
    """urllib3's connection; every send and receive stays within the thread's deadline.

    A request with a ``bytes`` body leaves in one send, header block and body together: each
    socket call releases the GIL, and getting it back while the application logs in a tight loop
    can take the interpreter's whole switch interval (5 ms by default).
    """

    response_class = _DeadlineResponse
    _held: Optional[bytes] = None  # the header block, while it waits for its body

    @property
    def is_connected(self) -> bool:
        """Whether the connection is still open; urllib3 asks before reusing it.

        On Linux the kernel's TCP state answers (still established: the server has neither
        closed nor reset it) through a ``getsockopt`` call that keeps the GIL; elsewhere, or if
        that fails, urllib3's own probe runs (a ``poll``, which hands the GIL over).
        """
        sock = self.sock
        if sock is None:
            return False
        if _TCP_INFO is not None:
            try:
                state = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 8)[0]
            except (OSError, ValueError):
                pass
            else:
                return bool(state == _TCP_ESTABLISHED)
        return bool(super().is_connected)

    def request(self, method: str, url: str, body: Any = None, *args: Any, **kwargs: Any) -> None:
        # Only on a connection already open: connecting (and a proxy tunnel) sends on its own.
        self._held = b"" if self.sock is not None and isinstance(body, bytes) and body else None
        try:
            super().request(method, url, body, *args, **kwargs)
            held, self._held = self._held, None
            if held:  # the body never came (urllib3 sent it some other way): send the headers
                self._send_now(held)
        finally:
            self._held = None

    def send(self, data: Any) -> None:
        held = self._held
        if held is not None:
            if not held:
                self._held = bytes(data)  # the header block: it waits for the body
                return
            self._held = None
            data = held + data
        self._send_now(data)

    def _send_now(self, data: Any) -> None:
        if self.sock is None and self.auto_open:
            self.connect()
        if self.sock is not None:
            _bound(self.sock, current_deadline())
        super().send(data)

    def _new_conn(self) -> socket.socket:
        deadline = current_deadline()
        _shorten_connect(self, deadline)
        sock = super()._new_conn()
        _steady(sock)
        # A TLS handshake follows on this socket: it gets only what is left, not a fresh timeout.
        _bound(sock, deadline)
        return sock

    def connect(self) -> None:
        super().connect()
        _steady(self.sock)  # the TLS socket that wraps the one _new_conn made


class HTTPSConnection(HTTPConnection, urllib3.connection.HTTPSConnection):
    """The TLS variant of :class:`HTTPConnection`: its deadline hooks run before urllib3's TLS
    connection code (method order: ours, then urllib3's ``HTTPSConnection``)."""


class HTTPConnectionPool(urllib3.connectionpool.HTTPConnectionPool):
    """urllib3's pool, making :class:`HTTPConnection` connections."""

    ConnectionCls = HTTPConnection


class HTTPSConnectionPool(urllib3.connectionpool.HTTPSConnectionPool):
    """urllib3's TLS pool, making :class:`HTTPSConnection` connections."""

    ConnectionCls = HTTPSConnection


_POOL_CLASSES = {"http": HTTPConnectionPool, "https": HTTPSConnectionPool}


class DeadlineAdapter(HTTPAdapter):
    """An :class:`~requests.adapters.HTTPAdapter` whose connections honour :func:`enter_deadline`.

    Same arguments as ``HTTPAdapter``; connections through an HTTP(S) proxy are bounded as well.
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOL_CLASSES)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = dict(_POOL_CLASSES)
        return manager
