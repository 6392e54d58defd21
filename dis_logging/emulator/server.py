"""The emulator's HTTP server and the :class:`DISEmulator` API.

IAM and DIS share one port. The server speaks HTTP/1.1 with keep-alive, one thread per connection,
and writes each reply with a single ``sendall`` with Nagle disabled, so loopback requests do not
stall on delayed ACKs (DESIGN.md, pitfalls). Requests are executed by
:class:`~dis_logging.emulator.service.Service`.
"""

from __future__ import annotations

import re
import selectors
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Final, List, Optional, Set, Tuple, Type
from urllib.parse import unquote, urlsplit

from dis_logging._report import printable
from dis_logging.emulator.auth import query_pairs
from dis_logging.emulator.service import (
    METADATA_SECURITY_KEY_PATH,
    Account,
    Reply,
    Request,
    Service,
    error_reply,
)
from dis_logging.emulator.state import (
    DEFAULT_ADVANCED_PARTITION_QUOTA,
    DEFAULT_PARTITION_QUOTA,
    RequestLogEntry,
    ServiceError,
    StoredRecord,
)

DEFAULT_PROJECT_ID: Final = "0123456789abcdef0123456789abcdef"
DEFAULT_AK: Final = "EXAMPLEAK0000000001"
DEFAULT_SK: Final = "EXAMPLEsecretKEY000000000000000000000001"
DEFAULT_USERNAME: Final = "dis-user"
DEFAULT_PASSWORD: Final = "dis-password"
DEFAULT_DOMAIN_NAME: Final = "dis-account"
DEFAULT_REGION: Final = "cn-north-4"
DEFAULT_TOKEN_TTL: Final = 86400.0
"""IAM tokens live 24 h, in seconds (DIS-API.md §4, §8)."""
MAX_TOKEN_TTL: Final = 10 * 365 * 86400.0
"""Longest lifetime the emulator gives a token or a temporary AK/SK set: ten years, far beyond
any real one (24 h), while its ``expires_at`` is still a date IAM's format can write."""

MAX_BODY_BYTES: Final = 12 * 1024 * 1024
"""AK/SK-signed bodies are capped at 12 MB by the API gateway (DIS-API.md §8)."""
#: Longest chunk-size or trailer line accepted in a chunked body.
MAX_CHUNK_LINE: Final = 1024
#: Most trailer lines accepted after the last chunk.
MAX_TRAILER_LINES: Final = 32
#: A chunk size: hex digits only, at most 8 of them (no sign, no blanks, no 0x prefix).
_HEX_SIZE: Final = re.compile(rb"[0-9A-Fa-f]{1,8}")
#: A Content-Length: ASCII digits only (no sign, no blanks inside, no "_"); 20 are plenty.
_DIGITS: Final = re.compile(r"[0-9]{1,20}")

MAX_DISCARD_BYTES: Final = 64 * 1024 * 1024
"""An oversized body up to this size is read and discarded so the 413 reply reaches the client."""


_EMPTY: Final = b""


def _token_lifetime(seconds: float) -> float:
    """Check a token lifetime: a number of seconds from 0 (already expired) to
    :data:`MAX_TOKEN_TTL`.

    Raises:
        ValueError: NaN, an infinity, a negative number or one above :data:`MAX_TOKEN_TTL` (such
            a token's expiry cannot be written, so every login would fail with a 500).
    """
    value = float(seconds)
    if not 0.0 <= value <= MAX_TOKEN_TTL:  # NaN fails the comparison too
        raise ValueError(
            f"token_ttl must be from 0 to {MAX_TOKEN_TTL:.0f} seconds (ten years), got {seconds!r}"
        )
    return value


class DISEmulator:
    """A local, in-memory DIS + IAM service for development and tests.

    IAM (``POST /v3/auth/tokens``) and the DIS API (``/v2/{project_id}/...``) share one port. Every
    DIS call must authenticate with an issued token or an AK/SK signature. Faults can be scripted
    while it runs. Use it as a context manager or call :meth:`start` and :meth:`stop`.

    Args:
        host: Interface to listen on; default ``"127.0.0.1"``. An IPv6 address may be written
            in brackets, as in a URL (``"[::1]"``).
        port: TCP port; default 0 picks a free one (see :attr:`url`).
        project_id: The only project id DIS paths may use; default
            :data:`DEFAULT_PROJECT_ID`.
        ak: Access key accepted for AK/SK signatures; default :data:`DEFAULT_AK`.
        sk: Its secret key; default :data:`DEFAULT_SK`.
        username: IAM user name accepted by the password method; default
            :data:`DEFAULT_USERNAME`.
        password: Its password; default :data:`DEFAULT_PASSWORD`.
        domain_name: The IAM account (domain) name; default :data:`DEFAULT_DOMAIN_NAME`.
        region: Region: the project name for IAM scopes and the region of signature credential
            scopes; default ``"cn-north-4"``.
        token_ttl: Lifetime of issued tokens and of the temporary AK/SK sets of the metadata route
            (:attr:`metadata_path`) in seconds, at most :data:`MAX_TOKEN_TTL`; default 86400
            (24 h). ``0`` issues tokens that are already expired.
        security_token: When set, AK/SK requests must send it as ``X-Security-Token``; default None
            accepts any or none.
        clock: Wall clock in seconds since the epoch, for token, cursor and signature-date checks;
            default :func:`time.time`.
        seed: Seed for placing records that have neither key nor partition id; default None is
            random.
        partition_quota: Total partitions the account may hold; default
            :data:`~dis_logging.emulator.state.DEFAULT_PARTITION_QUOTA` (50).
        advanced_partition_quota: Partitions of ADVANCED streams the account may hold (they
            count toward ``partition_quota`` too); default
            :data:`~dis_logging.emulator.state.DEFAULT_ADVANCED_PARTITION_QUOTA` (10).
        verbose: When True, log every request line to stderr; default False (quiet).

    Raises:
        ValueError: ``token_ttl`` is not a number of seconds from 0 to :data:`MAX_TOKEN_TTL`.

    Nothing is bound until :meth:`start`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        ak: str = DEFAULT_AK,
        sk: str = DEFAULT_SK,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        domain_name: str = DEFAULT_DOMAIN_NAME,
        region: str = DEFAULT_REGION,
        token_ttl: float = DEFAULT_TOKEN_TTL,
        security_token: Optional[str] = None,
        clock: Callable[[], float] = time.time,
        seed: Optional[int] = None,
        partition_quota: int = DEFAULT_PARTITION_QUOTA,
        advanced_partition_quota: int = DEFAULT_ADVANCED_PARTITION_QUOTA,
        verbose: bool = False,
    ) -> None:
        # "[::1]", as URLs write it, names the address "::1" (getaddrinfo knows no brackets).
        self.host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        self.port = port
        self._service = Service(
            Account(project_id, ak, sk, username, password, domain_name, region),
            token_ttl=_token_lifetime(token_ttl),
            url=lambda: self.url,
            security_token=security_token,
            clock=clock,
            seed=seed,
            partition_quota=partition_quota,
            advanced_partition_quota=advanced_partition_quota,
            verbose=verbose,
        )
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def project_id(self) -> str:
        """The project id DIS paths must use."""
        return self._service.account.project_id

    @property
    def ak(self) -> str:
        """The access key accepted for AK/SK signatures."""
        return self._service.account.ak

    @property
    def sk(self) -> str:
        """The secret key of :attr:`ak`."""
        return self._service.account.sk

    @property
    def username(self) -> str:
        """The IAM user name accepted by the password method."""
        return self._service.account.username

    @property
    def password(self) -> str:
        """The IAM user's password."""
        return self._service.account.password

    @property
    def domain_name(self) -> str:
        """The IAM account (domain) name."""
        return self._service.account.domain_name

    @property
    def region(self) -> str:
        """The region: IAM project name and legacy signature scope region."""
        return self._service.account.region

    @property
    def token_ttl(self) -> float:
        """Lifetime in seconds of tokens issued from now on; settable."""
        return self._service.token_ttl

    @token_ttl.setter
    def token_ttl(self, seconds: float) -> None:
        self._service.token_ttl = _token_lifetime(seconds)

    @property
    def verbose(self) -> bool:
        """Whether each request is logged to stderr; settable."""
        return self._service.verbose

    @verbose.setter
    def verbose(self, enabled: bool) -> None:
        self._service.verbose = enabled

    def __repr__(self) -> str:
        state = "running" if self._server is not None else "stopped"
        return f"DISEmulator(url={self.url!r}, project_id={self.project_id!r}, {state})"

    def start(self) -> DISEmulator:
        """Bind the port and serve in a background thread.

        Returns:
            self, so ``emu = DISEmulator().start()`` works.

        Raises:
            RuntimeError: When already started.
            OSError: When the port cannot be bound.
        """
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        self._service.stopping.clear()
        server = _Server((self.host, self.port), _Handler, self._service)
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve,
            name="dis-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and every open connection; idempotent.

        Clients then get connection refused. Waits at most 5 seconds for the serving thread.
        """
        server, self._server = self._server, None
        if server is None:
            return
        self._service.stopping.set()
        server.stop_serving()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        server.server_close()
        server.close_connections()

    def __enter__(self) -> DISEmulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL of both IAM and DIS, e.g. ``"http://127.0.0.1:50123"``."""
        host = self.host
        if host in ("", "0.0.0.0"):  # mapping the wildcard to a reachable address
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._server is not None

    def create_stream(
        self,
        name: str,
        partitions: int = 1,
        stream_type: str = "COMMON",
        data_type: str = "BLOB",
    ) -> str:
        """Create a stream directly (no HTTP).

        Args:
            name: Stream name, 1-64 characters of ``[A-Za-z0-9_-]``.
            partitions: Partition count, at least 1; default 1.
            stream_type: ``"COMMON"`` (default) or ``"ADVANCED"``.
            data_type: ``"BLOB"`` (default), ``"JSON"`` or ``"CSV"``.

        Returns:
            The new stream's id.

        Raises:
            ValueError: On an invalid argument, an existing name or an exhausted partition quota.
        """
        try:
            return self._service.store.create(name, partitions, stream_type, data_type).stream_id
        except ServiceError as exc:
            raise ValueError(exc.message) from None

    def delete_stream(self, name: str) -> None:
        """Delete a stream and its records.

        Args:
            name: The stream name.

        Raises:
            KeyError: When no stream has that name.
        """
        try:
            self._service.store.delete(name)
        except ServiceError:
            raise KeyError(f"no stream named {name!r} in the emulator") from None

    def stream_names(self) -> List[str]:
        """Return the names of every stream.

        Returns:
            The names, sorted.
        """
        return self._service.store.names()

    def records(self, stream: str) -> List[StoredRecord]:
        """Return every stored record of ``stream``, by partition index then sequence number.

        Args:
            stream: The stream name.

        Returns:
            A snapshot list; records stored later do not appear in it.

        Raises:
            KeyError: When no stream has that name.
        """
        return self._service.store.snapshot(stream)

    def wait_for(self, stream: str, n: int, timeout: float = 10.0) -> List[StoredRecord]:
        """Wait until ``stream`` holds at least ``n`` records and return all of them.

        Args:
            stream: Stream name (it may be created while waiting).
            n: Number of records to wait for; ``0`` returns at once.
            timeout: Maximum wait in seconds; default 10.0. ``0`` only checks.

        Returns:
            Every record of the stream, as :meth:`records` does.

        Raises:
            TimeoutError: When fewer than ``n`` records arrived in time.
        """
        return self._service.store.wait_for(stream, n, timeout)

    def issue_token(self, ttl: Optional[float] = None) -> str:
        """Return a valid project-scoped X-Auth-Token without going through HTTP.

        Args:
            ttl: Lifetime in seconds, at most :data:`MAX_TOKEN_TTL`; default None uses
                :attr:`token_ttl`. ``0`` gives a token that is already expired.

        Returns:
            The token, accepted as ``X-Auth-Token`` for :attr:`project_id` until it expires.
        """
        token, _ = self._service.tokens.issue(
            self.token_ttl if ttl is None else _token_lifetime(ttl), self.project_id
        )
        return token

    #: Path of the metadata route that hands out temporary AK/SK credentials (DIS-API.md §13).
    metadata_path: Final = METADATA_SECURITY_KEY_PATH

    @property
    def metadata_endpoint(self) -> str:
        """Base URL to pass as ``metadata_endpoint``: the emulator's own URL.

        ``GET metadata_endpoint + metadata_path`` returns a new temporary AK/SK/security-token set
        valid for :attr:`token_ttl` seconds, which the DIS routes accept until then.
        """
        return self.url

    def expire_temporary_credentials(self) -> None:
        """Make every temporary AK/SK set issued so far expired (441 on use); new ones work."""
        self._service.temporary.expire_all()

    def expire_tokens(self) -> None:
        """Make every token issued so far expired (441 DIS.4114); new tokens still work."""
        self._service.tokens.expire_all()

    @property
    def requests(self) -> List[RequestLogEntry]:
        """A snapshot of the request log, oldest first (the last 100 000 requests)."""
        return self._service.logged()

    def clear_requests(self) -> None:
        """Empty the request log."""
        self._service.clear_log()

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        error_code: str = "DIS.5000",
        retry_after: Optional[float] = None,
        operation: Optional[str] = "PutRecords",
    ) -> None:
        """Queue error replies; calls append, so a sequence of statuses can be scripted.

        Args:
            count: How many requests fail; default 1. ``0`` queues nothing.
            status: HTTP status of the reply; default 500.
            error_code: ``error_code`` of the reply body; default ``"DIS.5000"``.
            retry_after: Seconds for a ``Retry-After`` header; None (default) sends none.
            operation: Operation the failures apply to (see ``faults.OPERATIONS``); default
                ``"PutRecords"``; None applies to any operation, including IAM's ``CreateToken``.

        Raises:
            ValueError: On an unknown operation, a bad count or status, or a negative or
                infinite ``retry_after``.
        """
        self._service.faults.fail_next(count, status, error_code, retry_after, operation)

    def fail_rate(
        self,
        fraction: float,
        status: int = 500,
        error_code: str = "DIS.5000",
        retry_after: Optional[float] = None,
        operation: Optional[str] = "PutRecords",
        seed: int = 0,
    ) -> None:
        """Fail a random fraction of requests (after any queued :meth:`fail_next` failures).

        Args:
            fraction: Probability in [0, 1] that a request fails; 0 turns the rule off.
            status: HTTP status of the reply; default 500.
            error_code: ``error_code`` of the reply body; default ``"DIS.5000"``.
            retry_after: Seconds for a ``Retry-After`` header; None (default) sends none.
            operation: Operation the rule applies to; default ``"PutRecords"``; None for any.
            seed: Seed of the random generator; default 0, so runs repeat.

        Raises:
            ValueError: On an out-of-range fraction or status, an unknown operation, or a
                negative or infinite ``retry_after``.
        """
        self._service.faults.fail_rate(fraction, status, error_code, retry_after, operation, seed)

    def fail_records(
        self,
        error_code: str = "DIS.4303",
        every: Optional[int] = None,
        fraction: Optional[float] = None,
        seed: int = 0,
        limit: Optional[int] = None,
    ) -> None:
        """Fail individual PutRecords entries inside otherwise successful 200 replies.

        Failed entries carry ``error_code`` and are not stored. Replaces any earlier rule.

        Args:
            error_code: Per-record code; default ``"DIS.4303"`` (throttled, retryable).
            every: Fail every Nth record, counted across requests (1 fails all); None: see fraction.
            fraction: Fail each record with this probability in [0, 1], drawn from a generator
                seeded with ``seed``; None with ``every`` None fails every record.
            seed: Seed for ``fraction``; default 0.
            limit: Stop after this many failures; None (default) never stops.

        Raises:
            ValueError: On out-of-range arguments.
        """
        self._service.faults.fail_records(error_code, every, fraction, seed, limit)

    def set_delay(self, seconds: float, operation: Optional[str] = None) -> None:
        """Sleep before handling requests of ``operation`` (None: all operations).

        Args:
            seconds: Delay in seconds; 0 removes the delay.
            operation: Operation name, or None (default) for every operation without its own delay.

        Raises:
            ValueError: On an unknown operation or a negative delay.
        """
        self._service.faults.set_delay(seconds, operation)

    def drop_connections(self, count: int = 1, operation: Optional[str] = "PutRecords") -> None:
        """Close the connection of the next ``count`` requests of ``operation`` without replying.

        The request is read but not executed (nothing is stored).

        Args:
            count: Requests to drop; default 1. ``0`` drops none.
            operation: Operation name; default ``"PutRecords"``; None for any operation.

        Raises:
            ValueError: On an unknown operation or a negative count.
        """
        self._service.faults.drop_connections(count, operation)

    def enforce_rate_limits(self, enabled: bool = True) -> None:
        """Apply or lift the DIS per-partition write limits.

        The limits are 1 MB/s or 1000 records/s for COMMON and 5 MB/s or 2000 records/s for
        ADVANCED streams, counted in one-second windows; records over a limit fail with
        per-record DIS.4303 and are not stored.

        Args:
            enabled: True (default) to enforce, False to stop.
        """
        with self._service.store.lock:
            self._service.store.rate_limits = enabled

    def clear_faults(self) -> None:
        """Remove every scripted fault and stop enforcing rate limits (tokens stay as they are)."""
        self._service.faults.clear()
        self.enforce_rate_limits(False)


class _Server(ThreadingHTTPServer):
    """Threaded HTTP server that knows its emulator and its open connections."""

    daemon_threads = True
    allow_reuse_address = True
    # The listen backlog. With 128, a burst of a few hundred simultaneous connections (test
    # workers, a pool warming up) had some reset by the kernel once the accept queue was full;
    # the kernel caps the value at net.core.somaxconn (4096 on current Linux).
    request_queue_size = 1024

    def __init__(
        self,
        address: Tuple[str, int],
        handler: Type[BaseHTTPRequestHandler],
        service: Service,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.service = service
        self._connections: Set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._stopping = False
        self._wake_read, self._wake_write = socket.socketpair()
        super().__init__(address, handler)
        self.socket.setblocking(False)

    def serve(self) -> None:
        """Accept connections until :meth:`stop_serving`.

        Unlike ``serve_forever`` this needs no polling interval: a socket pair wakes the loop, so
        stopping is immediate (tests start and stop hundreds of emulators).
        """
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while not self._stopping:
                for key, _ in selector.select():
                    if key.fileobj is self.socket and not self._stopping:
                        self._accept()

    def _accept(self) -> None:
        try:
            connection, address = self.get_request()
        except OSError:  # the client went away, or a spurious wake-up (non-blocking socket)
            return
        try:
            self.process_request(connection, address)
        except Exception:  # noqa: BLE001  # e.g. no thread could start: drop this one connection
            self.handle_error(connection, address)
            self.shutdown_request(connection)

    def stop_serving(self) -> None:
        """Make :meth:`serve` return soon; call from another thread."""
        self._stopping = True
        self._wake_write.send(b"x")

    def server_close(self) -> None:
        super().server_close()
        self._wake_read.close()
        self._wake_write.close()

    def track(self, connection: socket.socket, active: bool) -> None:
        """Add (``active``) or remove an open connection, for :meth:`close_connections`."""
        with self._connections_lock:
            if active:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut down every open keep-alive connection so its handler thread ends."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue

    def handle_error(self, request: object, client_address: object) -> None:
        # Client resets and broken pipes are normal; anything else only matters in verbose mode.
        if self.service.verbose:
            super().handle_error(request, client_address)  # type: ignore[arg-type]  # socket


class _Handler(BaseHTTPRequestHandler):
    """One keep-alive connection: parses requests, hands them to the emulator, writes replies."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "DISEmulator/1.0"
    sys_version = ""
    timeout = 300.0  # idle keep-alive connections are closed after 5 minutes
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        if self.server.service.verbose:
            # The request line is the client's text: ESC, BEL, CR or NUL in it must not act on
            # the terminal or forge a line (http.server 3.12+ escapes them; this override did not).
            message = printable(format % args)
            sys.stderr.write(f"dis-emulator: {self.address_string()} - {message}\n")

    def send_error(
        self, code: int, message: Optional[str] = None, explain: Optional[str] = None
    ) -> None:
        # Called by http.server for unparsable request lines and headers; answer in DIS style.
        self.close_connection = True
        status = 405 if code == 501 else code
        code_text = "APIG.0101" if status in (404, 405) else "DIS.4200"
        error = ServiceError(status, code_text, message or "Bad request.")
        self._log_refusal(status, code_text, 0)
        self._send(error_reply(error), head=False)

    def _log_refusal(self, status: int, code: str, body_bytes: int) -> None:
        """Log a request refused before it reached the service (framing, size, request line):
        ``emu.requests`` holds every call, including these."""
        # http.server sets command and path only once the request line parsed.
        command = getattr(self, "command", None) or ""
        path = (getattr(self, "path", None) or "").split("?")[0]
        self.server.service.record(
            RequestLogEntry(
                command, path, "Unknown", status, code, 0, 0, body_bytes, "none", time.time()
            )
        )

    def handle_expect_100(self) -> bool:
        """Answer ``Expect: 100-continue``: 413 at once for a body past the cap, so the client
        does not upload it only to be refused (as a gateway does); 100 Continue otherwise."""
        length = (self.headers.get("Content-Length") or "").strip()
        if _DIGITS.fullmatch(length) and int(length) > MAX_BODY_BYTES:
            self._too_large(None)  # closes the connection: the body is never read
            return False
        return super().handle_expect_100()

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    def _read_body(self) -> Optional[bytes]:
        """Read the request body; reply and return None when it is unreadable or too large.

        Framing is strict (RFC 9112 section 6): a ``Transfer-Encoding`` other than ``chunked``
        alone, a ``Content-Length`` that is not ASCII digits (``int`` would take ``+5``,
        ``1_0`` or Arabic-Indic digits), or several that disagree get 400 and a closed
        connection, since the end of the body, and so the start of the next request, is unknown.
        """
        encodings = self.headers.get_all("Transfer-Encoding") or []
        if encodings:
            if ",".join(encodings).strip().lower() != "chunked":
                self.close_connection = True
                self.send_error(400, "Unsupported Transfer-Encoding: only chunked is accepted.")
                return None
            if "Content-Length" in self.headers:
                # Both framings: chunked wins, and the connection ends after the reply, since
                # a proxy in front may have framed the body by the length (RFC 9112 6.3).
                self.close_connection = True
            return self._read_chunked()
        lengths = {text.strip() for text in self.headers.get_all("Content-Length") or []}
        if not lengths:
            return _EMPTY
        length_text = lengths.pop()
        if lengths or not _DIGITS.fullmatch(length_text):
            self.close_connection = True
            self.send_error(400, "Invalid Content-Length.")
            return None
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            self._too_large(length)
            return None
        return self.rfile.read(length)

    def _read_chunked(self) -> Optional[bytes]:
        """Read a chunked body; reply and return None when it is malformed or too large.

        Strict (RFC 9112 section 7.1): a chunk size is hex digits only (no sign, no blanks, no
        ``0x``), each chunk ends in CRLF, the stream must not end early, and the total stays
        under :data:`MAX_BODY_BYTES`, counted before anything is read.
        """
        chunks: List[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(MAX_CHUNK_LINE)
            size_text = line.split(b";", 1)[0].strip()
            if not line.endswith(b"\n") or not _HEX_SIZE.fullmatch(size_text):
                return self._bad_chunking()
            size = int(size_text, 16)
            if size == 0:
                for _ in range(MAX_TRAILER_LINES):
                    trailer = self.rfile.readline(MAX_CHUNK_LINE)
                    if trailer in (b"\r\n", b"\n"):
                        return b"".join(chunks)
                    if not trailer.endswith(b"\n"):
                        break
                return self._bad_chunking()
            total += size
            if total > MAX_BODY_BYTES:
                self._too_large(None)
                return None
            data = self.rfile.read(size)
            if len(data) != size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                return self._bad_chunking()
            chunks.append(data)

    def _bad_chunking(self) -> Optional[bytes]:
        """Reply 400 and close the connection (the rest of the stream cannot be framed)."""
        self.close_connection = True
        self.send_error(400, "Invalid chunked encoding.")
        return None

    def _too_large(self, length: Optional[int]) -> None:
        """Reply 413 APIG.0201, reading the rest of the body first when it is small enough."""
        if length is not None and length <= MAX_DISCARD_BYTES:
            remaining = length
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
        else:
            self.close_connection = True
        error = ServiceError(413, "APIG.0201", "Request body too large (limit 12 MB).")
        self._log_refusal(413, "APIG.0201", length or 0)
        self._send(error_reply(error), head=False)

    def _dispatch(self) -> None:
        """Read the body, build a :class:`Request`, and send what the service answers."""
        body = self._read_body()
        if body is None:
            return
        split = urlsplit(self.path)
        query: Dict[str, str] = {}
        for name, value in query_pairs(split.query):
            query.setdefault(name, value)
        request = Request(
            method=self.command,
            path=unquote(split.path) or "/",
            raw_path=split.path or "/",
            raw_query=split.query,
            query=query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )

        def drop() -> None:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                return

        reply = self.server.service.handle(request, drop)
        if reply is not None:
            self._send(reply, head=self.command == "HEAD")

    def _send(self, reply: Reply, head: bool) -> None:
        """Write ``reply`` in one call; ``head`` leaves out the body."""
        lines = [
            f"HTTP/1.1 {reply.status} {self.responses.get(reply.status, ('',))[0]}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
            f"X-Request-Id: {uuid.uuid4().hex}",
        ]
        if reply.content_type and reply.body:
            lines.append(f"Content-Type: {reply.content_type}")
        if reply.status not in (204, 304):
            lines.append(f"Content-Length: {len(reply.body)}")
        lines.extend("{}: {}".format(*item) for item in reply.headers.items())
        if self.close_connection:
            lines.append("Connection: close")
        head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self.server.service.verbose:
            self.log_message('"%s" %d %d', self.requestline, reply.status, len(reply.body))
        try:
            self.wfile.write(head_bytes if head else head_bytes + reply.body)
        except OSError:
            self.close_connection = True
