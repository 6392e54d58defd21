"""A total deadline for each HTTP request: connect, send, status line, headers and the whole body.

``requests`` and ``urllib3`` timeouts bound each socket operation, not the request: a server that
sends one byte now and then keeps a read alive for ever (DESIGN.md, Pitfalls). Here the calling
thread states the deadline of the request it is about to make (:func:`enter_deadline`), and the
connections of :class:`DeadlineAdapter` check it before every send and every receive: each socket
operation gets at most the time left, and once none is left the next operation raises
:class:`socket.timeout`, which ``urllib3`` turns into its usual timeout errors. Looking up a host
name is the one step the operating system cannot bound: it runs on a helper thread
(:func:`resolve`) that the request waits for only until its deadline. Everything else needs no
thread, so the bound also holds during interpreter shutdown, when Python 3.12+ refuses new threads.

Only :mod:`dis_logging.client` imports this module; like the client, it may see socket and
``urllib3`` internals.
"""

from __future__ import annotations

import errno
import http.client
import io
import ipaddress
import os
import re
import socket
import ssl
import struct
import sys
import threading
import time
from typing import Any, Dict, Final, List, Optional, Sequence, Tuple

import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
import urllib3.util.connection
from requests.adapters import HTTPAdapter
from requests.models import PreparedRequest
from requests.structures import CaseInsensitiveDict
from urllib3.poolmanager import PoolManager

from dis_logging.auth import Secret

__all__ = [
    "DIRECT_POOLS",
    "DeadlineAdapter",
    "DirectReply",
    "Outer",
    "RefusedReplyError",
    "ResolveTimeout",
    "abort_current_request",
    "current_deadline",
    "enter_deadline",
    "exchange",
    "leave_deadline",
    "resolve",
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
#: ``tcpi_data_segs_in`` of Linux's ``struct tcp_info`` (4.6 and later): the data segments the
#: connection has received, a 32-bit count at byte 152. An older kernel answers with fewer bytes.
_DATA_SEGMENTS: Final = struct.Struct("=I")
_DATA_SEGMENTS_AT: Final = 152
_TCP_INFO_LENGTH: Final = _DATA_SEGMENTS_AT + _DATA_SEGMENTS.size


def _tcp_info(sock: Any) -> bytes:
    """The kernel's ``TCP_INFO`` answer for ``sock``, or ``b""`` where there is none (not Linux,
    a tunnel's TLS-in-TLS wrapper, which is no socket, or a failing call)."""
    if _TCP_INFO is None or not isinstance(sock, (_SteadySocket, _SteadySSLSocket)):
        return b""
    try:
        return bytes(sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_LENGTH))
    except (OSError, ValueError):
        return b""


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
    _local.sock = None


def abort_current_request() -> bool:
    """End the calling thread's request in progress at once: shut its socket down, so that
    the receive it waits in returns (the request fails as a connection closed without a reply).

    For a signal handler on the thread that was interrupted (SIGTERM while the main thread
    waits for a reply): it takes no lock.

    Returns:
        Whether a request's socket was shut down.
    """
    sock = getattr(_local, "sock", None)
    if sock is None:
        return False
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except (OSError, ValueError):
        return False
    return True


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


class ResolveTimeout(socket.timeout):
    """A host name was still being looked up when the request's deadline passed."""


#: A pending or finished look-up of one ``(host, port, family)``.
AddressInfo = Tuple[Any, ...]


class _Lookup:
    """One ``getaddrinfo`` call on a helper thread, shared by every request waiting for it."""

    __slots__ = ("answer", "done", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.answer: List[AddressInfo] = []
        self.error: Optional[BaseException] = None


#: Look-ups in progress. A resolver that never answers holds one helper thread per host name,
#: however many requests time out waiting for it: later requests wait for the same look-up.
_lookups: Dict[Tuple[str, int, int], _Lookup] = {}
#: The last answer for each host name, used only when no helper thread can start (interpreter
#: shutdown on Python 3.12+), so that the exit drain does not wait for the resolver unbounded.
_answers: Dict[Tuple[str, int, int], List[AddressInfo]] = {}
_lookups_lock = threading.Lock()
#: Host names remembered in :data:`_answers` at most (a handler talks to two or three hosts).
_MAX_ANSWERS: Final = 64


def _look_up(key: Tuple[str, int, int], lookup: _Lookup) -> None:
    """Run one look-up on the helper thread and hand its answer to the waiting requests."""
    host, port, family = key
    try:
        lookup.answer = list(socket.getaddrinfo(host, port, family, socket.SOCK_STREAM))
    except BaseException as exc:  # noqa: BLE001 (handed to the waiting thread, which raises it)
        lookup.error = exc
    with _lookups_lock:
        if _lookups.get(key) is lookup:
            del _lookups[key]
        if lookup.error is None:
            if len(_answers) >= _MAX_ANSWERS and key not in _answers:
                _answers.clear()
            _answers[key] = lookup.answer
    lookup.done.set()


def _is_address(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 address written out, rather than a name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def resolve(host: str, port: int, family: int, deadline: Optional[float]) -> List[AddressInfo]:
    """The addresses of ``host`` for a TCP connection, looked up within ``deadline``.

    ``getaddrinfo`` has no timeout and a resolver may take its own (5 s per server and attempt
    by default): a name is looked up on a daemon helper thread, and the caller waits for it only
    until ``deadline``. An address written as digits needs no look-up. When no thread can start
    (interpreter shutdown on Python 3.12+), the last answer for the name is used, or, with none,
    the look-up runs on the calling thread.

    Args:
        host: a host name or address.
        port: the port.
        family: ``socket.AF_UNSPEC``, ``AF_INET`` or ``AF_INET6``.
        deadline: a :func:`time.monotonic` time, or ``None`` to wait as long as the resolver takes.

    Returns:
        ``getaddrinfo``'s answer.

    Raises:
        ResolveTimeout: the deadline passed first (the look-up goes on and serves later requests).
        socket.gaierror: the name does not resolve.
    """
    if deadline is None or _is_address(host):
        # An address needs no resolver: getaddrinfo answers at once.
        return list(socket.getaddrinfo(host, port, family, socket.SOCK_STREAM))
    key = (host, port, family)
    with _lookups_lock:
        lookup = _lookups.get(key)
        if lookup is None:
            lookup = _Lookup()
            helper = threading.Thread(
                target=_look_up, args=(key, lookup), name="dis-logging-resolver", daemon=True
            )
            try:
                helper.start()
            except RuntimeError:  # "can't create new thread at interpreter shutdown"
                lookup = None
            else:
                _lookups[key] = lookup
        known = _answers.get(key)
    if lookup is None:
        if known is not None:
            return list(known)
        return list(socket.getaddrinfo(host, port, family, socket.SOCK_STREAM))
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not lookup.done.wait(remaining):
        raise ResolveTimeout(f"looking up {host} outlasted the request's deadline")
    if lookup.error is not None:
        error = lookup.error
        if isinstance(error, socket.gaierror):
            raise socket.gaierror(*error.args)  # a copy: the original is shared by the waiters
        raise socket.gaierror(socket.EAI_FAIL, f"looking up {host} failed: {error!r}")
    return list(lookup.answer)


def _forget_lookups_after_fork() -> None:
    """In a forked child the helper threads are gone: their look-ups would never end."""
    global _lookups_lock
    _lookups_lock = threading.Lock()
    _lookups.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_lookups_after_fork)


def _connect_within(
    connection: urllib3.connection.HTTPConnection, deadline: float
) -> socket.socket:
    """Connect ``connection``'s socket as urllib3 does, with the whole of it, the host name's
    look-up included, within ``deadline``; every address the name has shares that time.

    Raises:
        urllib3.exceptions.ConnectTimeoutError: the deadline passed.
        urllib3.exceptions.NewConnectionError: no address took the connection (urllib3 2's
            ``NameResolutionError``, one of them, when the name does not resolve).
    """
    host = getattr(connection, "_dns_host", None) or connection.host
    if host.startswith("["):
        host = host.strip("[]")
    try:
        addresses = resolve(
            host, connection.port, urllib3.util.connection.allowed_gai_family(), deadline
        )
    except socket.gaierror as exc:
        resolution_error: Any = getattr(urllib3.exceptions, "NameResolutionError", None)
        if resolution_error is not None:
            raise resolution_error(connection.host, connection, exc) from exc
        raise urllib3.exceptions.NewConnectionError(
            connection, f"Failed to establish a new connection: {exc}"
        ) from exc
    except ResolveTimeout as exc:
        raise urllib3.exceptions.ConnectTimeoutError(
            connection, f"Connection to {connection.host} timed out: {exc}"
        ) from exc
    last: Optional[OSError] = None
    for family, kind, proto, _name, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            for option in connection.socket_options or ():
                sock.setsockopt(*option)
            timeout = _time_left(deadline)
            if isinstance(connection.timeout, (int, float)):
                timeout = min(timeout, connection.timeout)  # a shorter connect timeout of its own
            sock.settimeout(timeout)
            if connection.source_address:
                sock.bind(connection.source_address)
            sock.connect(address)
        except socket.timeout as exc:
            sock.close()
            raise urllib3.exceptions.ConnectTimeoutError(
                connection, f"Connection to {connection.host} timed out."
            ) from exc
        except OSError as exc:
            sock.close()
            last = exc
            continue
        sys.audit("http.client.connect", connection, connection.host, connection.port)
        return sock
    error = last or OSError("getaddrinfo returned no address")
    raise urllib3.exceptions.NewConnectionError(
        connection, f"Failed to establish a new connection: {error}"
    ) from error


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
    #: The data segments received when :func:`exchange` had read a whole reply (see
    #: :meth:`is_connected`); ``None`` once anything else used the connection.
    _received_mark: Optional[int] = None

    @property
    def is_connected(self) -> bool:
        """Whether the connection is still open, with nothing unread; urllib3 asks before reusing
        it.

        After a reply read by :func:`exchange`, on Linux, the kernel answers through a
        ``getsockopt`` call that keeps the GIL: the connection is still established (the server
        has neither closed nor reset it) and has received no data segment since that reply (a
        server that sent bytes nobody asked for, a stray second reply, would otherwise have them
        read as the next request's reply). Elsewhere, after any other use, or if that fails,
        urllib3's own probe runs (a ``poll``, which hands the GIL over).
        """
        sock = self.sock
        if sock is None:
            return False
        mark = self._received_mark
        if mark is not None:
            info = _tcp_info(sock)
            if len(info) >= _TCP_INFO_LENGTH:
                segments = _DATA_SEGMENTS.unpack_from(info, _DATA_SEGMENTS_AT)[0]
                return info[0] == _TCP_ESTABLISHED and segments == mark
        return bool(super().is_connected)

    def mark_received(self) -> None:
        """Note that a whole reply was read (by :func:`exchange`): what arrives later is unasked."""
        info = b"" if self.sock is None else _tcp_info(self.sock)
        self._received_mark = (
            _DATA_SEGMENTS.unpack_from(info, _DATA_SEGMENTS_AT)[0]
            if len(info) >= _TCP_INFO_LENGTH
            else None
        )

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
        self._received_mark = None  # its reply is read elsewhere (http.client)
        if self.sock is None and self.auto_open:
            self.connect()
        if self.sock is not None:
            _bound(self.sock, current_deadline())
            _local.sock = self.sock
        super().send(data)

    def _new_conn(self) -> socket.socket:
        deadline = current_deadline()
        if deadline is None:
            sock = super()._new_conn()
        else:
            # urllib3 looks the host name up unbounded and gives each of its addresses the
            # whole connect timeout.
            sock = _connect_within(self, deadline)
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

#: The pools whose connections :func:`exchange` may use.
DIRECT_POOLS: Final = (HTTPConnectionPool, HTTPSConnectionPool)


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


#: Most bytes a reply's status line and headers may take (http.client allows 100 headers of up to
#: 64 KiB; no DIS reply comes near).
MAX_HEAD_BYTES: Final = 64 * 1024

#: Bytes asked of the socket per receive: more than a 500-record PutRecords reply (about 35 KB).
_RECEIVE: Final = 64 * 1024

_ILLEGAL_IN_HEADER = re.compile(r"[\r\n\x00]")
#: A chunk size as HTTP/1.1 spells it (RFC 9112, 7.1): hex digits, no sign, prefix or underscore.
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]+")


class DirectReply:
    """What the client reads of a reply received by :func:`exchange`: the same attributes as
    :class:`requests.Response` offers for them.

    Args:
        status_code: the HTTP status.
        reason: the status line's reason phrase.
        headers: the headers, names case-insensitive; repeated ones joined with ``", "``.
        content: the whole body.
        request: the request it answers.
        header_lines: every header as received, in order (``Set-Cookie`` values stay apart).
    """

    __slots__ = ("content", "header_lines", "headers", "reason", "request", "status_code")

    def __init__(
        self,
        status_code: int,
        reason: str,
        headers: CaseInsensitiveDict[str],
        content: bytes,
        request: PreparedRequest,
        header_lines: Sequence[Tuple[str, str]] = (),
    ) -> None:
        self.status_code = status_code
        self.reason = reason
        self.headers = headers
        self.content = content
        self.request = request
        self.header_lines = header_lines

    def get_all(self, name: str, default: Any = None) -> Any:
        """Every value of header ``name`` (what :mod:`http.cookiejar` reads), or ``default``."""
        wanted = name.lower()
        values = [value for key, value in self.header_lines if key.lower() == wanted]
        return values or default

    def __repr__(self) -> str:
        return f"<DirectReply [{self.status_code}]>"


def exchange(pool: Any, request: PreparedRequest, target: str) -> DirectReply:
    """Send ``request`` over one of ``pool``'s connections and read the reply, without urllib3's
    or ``http.client``'s request and response machinery (about 0.3 ms of CPU per PutRecords).

    The connection (its TLS and certificate checks included) comes from urllib3's pool as for
    any request; the exchange is one send of the whole request and receives of up to 64 KiB,
    each within the calling thread's deadline and reply size limit (:func:`enter_deadline`).
    The connection is closed afterwards when the reply says so (``Connection: close``), has no
    length or leaves bytes unread.

    Args:
        pool: a pool of :class:`HTTPConnectionPool` or :class:`HTTPSConnectionPool`.
        request: a prepared request with a ``bytes`` body (or none).
        target: the request target, as ``requests.adapters.HTTPAdapter.request_url`` gives it.

    Returns:
        The reply.

    Raises:
        OSError: a socket failure, ``socket.timeout`` at the deadline, :class:`RefusedReplyError`
            for a reply no DIS server sends; urllib3's connection errors while connecting.
        http.client.HTTPException: a malformed reply (``RemoteDisconnected`` when the
            connection closed before any of it).
        ValueError: a header value that HTTP cannot carry (the value is not quoted).
    """
    conn = pool._get_conn()
    keep = False
    deadline = current_deadline()
    try:
        if deadline is not None:
            conn.timeout = _time_left(deadline)  # for a connect, as urllib3 sets it per request
        pool._validate_conn(conn)  # a TLS pool connects (and checks the certificate) here
        if conn.sock is None:
            conn.connect()
        # The request's bytes carry the token or security token: held in a Secret, so that a
        # traceback showing local variables (a Ctrl-C while the reply is awaited) does not print it.
        data = _request_bytes(conn, request, target)
        sock = conn.sock
        _local.sock = sock  # for abort_current_request
        conn._received_mark = None
        if deadline is not None:
            # Up or down: an earlier request may have left a shorter timeout on the socket.
            sock.settimeout(_time_left(deadline))
        sent = _send_all(sock, data)
        reply, keep = _read_reply(sock, deadline, request)
        keep = keep and sent
        if keep:
            conn.mark_received()
        return reply
    finally:
        if not keep:
            conn.close()
        pool._put_conn(conn)


#: Send errors after which the server's reply may still be waiting to be read: a server may answer
#: (413, 401) and close before it has taken the whole body.
_SEND_CUT_SHORT: Final = frozenset({errno.EPIPE, errno.ECONNRESET, errno.EPROTOTYPE})


def _send_all(sock: socket.socket, data: Secret[bytes]) -> bool:
    """Send ``data``; return ``False`` if the server closed the connection before taking it all.

    Its early reply is then read as urllib3 reads it (that reply says why, for instance that the
    body is too large); with no reply, reading fails as for a connection closed without one.

    Raises:
        OSError: any other send failure (``socket.timeout`` at the deadline).
    """
    try:
        sock.sendall(data.reveal())
    except OSError as exc:
        if exc.errno not in _SEND_CUT_SHORT:
            raise
        return False
    return True


def _request_bytes(conn: Any, request: PreparedRequest, target: str) -> Secret[bytes]:
    """The whole request, header block and body, as it goes on the wire."""
    head = _request_head(conn, request, target)
    body = request.body
    return Secret(head if not body else head + (body if isinstance(body, bytes) else body.encode()))


def _request_head(conn: Any, request: PreparedRequest, target: str) -> bytes:
    """The request line and headers, as ``http.client`` would write them for ``request``."""
    lines = [f"{request.method} {target} HTTP/1.1"]
    headers = request.headers
    if "Host" not in headers:
        host = conn.host
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        if conn.port and conn.port != conn.default_port:
            host = f"{host}:{conn.port}"
        lines.append(f"Host: {host}")
    for name, value in headers.items():
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        if _ILLEGAL_IN_HEADER.search(text) or _ILLEGAL_IN_HEADER.search(name):
            raise ValueError("Invalid header value (not shown)")
        lines.append(f"{name}: {text}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


def _read_reply(
    sock: socket.socket, deadline: Optional[float], request: PreparedRequest
) -> Tuple[DirectReply, bool]:
    """Read one reply from ``sock``; return it and whether the connection may be reused."""
    reader = _Receiver(sock, deadline, getattr(_local, "max_reply_bytes", None))
    while True:
        status, reason, version, headers, lines = reader.head()
        if not 100 <= status < 200:
            break  # 1xx replies are interim: the real one follows
    encoding = (headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding != "identity" and reader.limit is not None:
        raise RefusedReplyError(f"a compressed reply ({encoding}) that was not asked for")
    connection = {t.strip().lower() for t in (headers.get("Connection") or "").split(",")}
    keep = version == "HTTP/1.1" and "close" not in connection
    coding = (headers.get("Transfer-Encoding") or "").strip().lower()
    length = headers.get("Content-Length")
    if status in (204, 304):
        content = b""
    elif coding:
        if coding.rsplit(",", 1)[-1].strip() != "chunked":
            raise http.client.HTTPException(f"a reply in transfer coding {coding!r}")
        content = reader.chunked()
    elif length is not None:
        # A repeated header arrives joined ("97, 97"); copies that agree are one length, as
        # urllib3 reads them (RFC 9110, 8.6), and any other value is refused.
        values = {value.strip() for value in length.split(",")}
        text = values.pop() if len(values) == 1 else ""
        if not (text.isascii() and text.isdigit()):
            raise http.client.HTTPException("a reply with an invalid Content-Length")
        content = reader.exactly(int(text))
    else:
        content = reader.until_closed()
        keep = False
    if reader.pending:
        keep = False  # bytes after the reply: nothing to pair them with
    return DirectReply(status, reason, headers, content, request, lines), keep


class _Receiver:
    """Buffered receives from one socket, each bounded by a deadline and a byte budget."""

    def __init__(self, sock: socket.socket, deadline: Optional[float], limit: Optional[int]):
        self._sock = sock
        self._deadline = deadline
        self.limit = limit
        self._buffer = bytearray()
        self._start = 0  # where the unread part of the buffer starts

    @property
    def pending(self) -> int:
        return len(self._buffer) - self._start

    def _receive(self) -> int:
        _bound(self._sock, self._deadline)
        chunk = self._sock.recv(_RECEIVE)
        if chunk:
            if self.limit is not None:
                self.limit -= len(chunk)
                if self.limit < 0:
                    raise RefusedReplyError("a reply larger than any DIS reply to this request")
            if self._start:
                del self._buffer[: self._start]
                self._start = 0
            self._buffer += chunk
        return len(chunk)

    def _line(self, limit: int = MAX_HEAD_BYTES) -> bytes:
        while True:
            end = self._buffer.find(b"\r\n", self._start)
            if end >= 0:
                line = bytes(self._buffer[self._start : end])
                self._start = end + 2
                return line
            if self.pending > limit:
                raise http.client.LineTooLong("a reply line")
            if not self._receive():
                raise http.client.IncompleteRead(bytes(self._buffer[self._start :]))

    def head(self) -> Tuple[int, str, str, CaseInsensitiveDict[str], List[Tuple[str, str]]]:
        """Read a status line and headers: status, reason, version, headers, header lines."""
        while True:
            end = self._buffer.find(b"\r\n\r\n", self._start)
            if end >= 0 and end - self._start <= MAX_HEAD_BYTES:
                break
            if end >= 0 or self.pending > MAX_HEAD_BYTES:
                raise http.client.LineTooLong("the reply's headers")
            if not self._receive():
                if not self.pending:
                    raise http.client.RemoteDisconnected(
                        "Remote end closed connection without response"
                    )
                raise http.client.IncompleteRead(bytes(self._buffer[self._start :]))
        text = self._buffer[self._start : end].decode("latin-1")
        self._start = end + 4
        status_line, *lines = text.split("\r\n")
        version, _, rest = status_line.partition(" ")
        code, _, reason = rest.partition(" ")
        # Three ASCII digits from 100 (as http.client reads them): str.isdigit() alone passes
        # "2\u00b20", which int() then refuses with a ValueError, and "099" is no HTTP status.
        if (
            not version.startswith("HTTP/1.")
            or len(code) != 3
            or not (code.isascii() and code.isdigit())
            or code[0] == "0"
        ):
            raise http.client.BadStatusLine(status_line[:100])
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
        pairs: List[Tuple[str, str]] = []
        for line in lines:
            if line[:1] in (" ", "\t") and pairs:  # an obsolete folded continuation
                name, value = pairs[-1]
                pairs[-1] = (name, f"{value} {line.strip()}")
                continue
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise http.client.HTTPException("a malformed reply header")
            pairs.append((name, value.strip()))
        for name, value in pairs:
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return int(code), reason.strip(), version, headers, pairs

    def exactly(self, size: int) -> bytes:
        while self.pending < size:
            if not self._receive():
                raise http.client.IncompleteRead(bytes(self._buffer[self._start :]), size)
        data = bytes(self._buffer[self._start : self._start + size])
        self._start += size
        return data

    def chunked(self) -> bytes:
        # One growing buffer, not a list of chunks: a reply of one-byte chunks would hold an
        # object (about 40 bytes) per byte of body, ten times the reply size limit.
        body = bytearray()
        while True:
            line = self._line()
            size_text = line.split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text):
                # Hex digits only: int() would also take "-6", whose negative size moves the
                # reader back over bytes already read, for ever and with no receive to time out.
                raise http.client.HTTPException("a malformed chunk size")
            size = int(size_text, 16)
            if size == 0:
                break
            body += self.exactly(size)
            if self.exactly(2) != b"\r\n":
                raise http.client.HTTPException("a chunk without its line end")
        while self._line():  # trailers, up to the empty line
            pass
        return bytes(body)

    def until_closed(self) -> bytes:
        while self._receive():
            pass
        data = bytes(self._buffer[self._start :])
        self._start = len(self._buffer)
        return data
