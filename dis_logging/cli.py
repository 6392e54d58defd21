"""The ``dis-logging`` command line: ``emulator``, ``demo``, ``tail``, ``send`` and ``check``.

``dis-logging COMMAND --help`` describes each command. Connection settings come from the same
environment variables the handler reads (``HUAWEICLOUD_SDK_AK``, ``HUAWEICLOUD_SDK_SK``,
``HUAWEICLOUD_SDK_PROJECT_ID``, ...), and each can be overridden by a flag (``--endpoint``,
``--project-id``, ``--ak``, ...). Prefer the environment for secrets: command-line arguments
are visible to other users of the machine.

Exit codes, the same in every command:

* 0: success (also an empty stream, and ``tail --follow`` stopped with Ctrl-C);
* 1: a runtime failure: DIS or IAM unreachable or refusing a request, records not stored, a
  ``check`` step failed, or another command interrupted;
* 2: a usage or configuration error: an unknown flag, a malformed value, an invalid stream name,
  a missing setting (no endpoint, project id or credentials).

Errors are printed as one line on stderr.

Nothing happens at import time; :func:`main` builds the parser and imports what the chosen
command needs.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import io
import json
import logging
import logging.config
import os
import sys
import threading
import time
import uuid
from typing import (
    IO,
    TYPE_CHECKING,
    Any,
    Callable,
    Deque,
    Dict,
    Final,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
)

from dis_logging._argtypes import (
    non_negative_int,
    non_negative_seconds,
    positive_int,
    positive_seconds,
)
from dis_logging._report import printable
from dis_logging.errors import ConfigError, DISError

if TYPE_CHECKING:
    from dis_logging.client import DISClient, Entry, FetchedRecord
    from dis_logging.config import Connection

__all__ = ["build_parser", "main"]

PROG: Final = "dis-logging"

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2

# DIS-API.md section 8: a PutRecords request carries at most 1 MB of record data (COMMON
# streams); the client guidance caps a request at 1000 records.
MAX_REQUEST_BYTES: Final = 1_000_000
MAX_REQUEST_RECORDS: Final = 1000
# DIS-API.md section 5: GetRecords accepts limit 1..10000.
MAX_FETCH_RECORDS: Final = 10_000
#: ``send`` redraws its progress line on a terminal at most this often, in seconds.
SEND_PROGRESS_INTERVAL: Final = 1.0

_CURSOR_TYPES: Final = {
    "trim_horizon": "TRIM_HORIZON",
    "latest": "LATEST",
    "at_timestamp": "AT_TIMESTAMP",
}


class UsageError(Exception):
    """A command was called with arguments that cannot work; exits with status 2."""


def _one_line(text: object) -> str:
    """``text`` on one line, with what a terminal would act on (escape sequences, bidirectional
    overrides from a server's error text or a stream name) written as escapes."""
    return printable(" ".join(str(text).split()))


def _print_error(message: object) -> None:
    print(f"{PROG}: error: {_one_line(message)}", file=sys.stderr)


class _Progress:
    """A one-line progress display on a terminal; silent when the stream is not a TTY.

    Args:
        label: the word before the counter.
        total: the expected count, or ``None`` when unknown (no bar, only the counter).
        stream: where to draw; ``None`` (the default) uses ``sys.stderr``.
        interval: the least time between two redraws, in seconds; default 0.1.
        clock: monotonic time source; default :func:`time.monotonic`.
    """

    _WIDTH: Final = 30

    def __init__(
        self,
        label: str,
        total: Optional[int] = None,
        stream: Optional[IO[str]] = None,
        *,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._label = label
        self._total = total
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = _is_tty(self._stream)
        self._interval = interval
        self._clock = clock
        self._drawn_at: Optional[float] = None
        self._width = 0  # length of the line drawn last, to blank out what a shorter one leaves

    def update(self, count: int, *, detail: str = "", force: bool = False) -> None:
        """Redraw the line with ``count`` and ``detail``, unless drawn less than ``interval`` ago.

        Args:
            count: the counter to show.
            detail: text after the counter (rate, failures); default none.
            force: draw even within ``interval``; default ``False``.
        """
        if not self._enabled:
            return
        now = self._clock()
        if not force and self._drawn_at is not None and now - self._drawn_at < self._interval:
            return
        self._drawn_at = now
        if self._total:
            filled = min(self._WIDTH, self._WIDTH * count // self._total)
            bar = "#" * filled + "." * (self._WIDTH - filled)
            text = f"{self._label:<9} [{bar}] {count:,}/{self._total:,}{detail}"
        else:
            text = f"{self._label:<9} {count:,}{detail}"
        self._stream.write("\r" + text.ljust(self._width))
        self._width = len(text)
        self._stream.flush()

    def done(self, count: int, *, detail: str = "") -> None:
        """Draw the final state and end the line."""
        if self._enabled:
            self.update(count, detail=detail, force=True)
            self._stream.write("\n")
            self._stream.flush()


def _is_tty(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False


def _decode(data: bytes) -> Any:
    """Return the parsed JSON value of ``data``, or its text when it is not JSON."""
    text = data.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser follows
        return text


def _format_ms(timestamp_ms: Optional[int]) -> str:
    if timestamp_ms is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(timestamp_ms / 1000.0, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


#: The latest ``--timestamp``: the end of year 9999 UTC, in milliseconds since the epoch.
MAX_TIMESTAMP_MS: Final = 253_402_300_799_999


def _parse_timestamp(value: str) -> int:
    """Parse ``--timestamp``: milliseconds since the epoch, or ISO 8601 (naive means UTC).

    Raises:
        argparse.ArgumentTypeError: neither form, or a time before the epoch or after
            :data:`MAX_TIMESTAMP_MS`.
    """
    problem = (
        f"invalid timestamp {value!r}: use milliseconds since the epoch or ISO 8601 "
        "such as 2024-05-01T10:00:00Z"
    )
    if value.isascii() and value.isdigit():
        milliseconds = int(value)
    else:
        try:
            moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise argparse.ArgumentTypeError(problem) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.timezone.utc)
        milliseconds = int(moment.timestamp() * 1000)
    if not 0 <= milliseconds <= MAX_TIMESTAMP_MS:
        raise argparse.ArgumentTypeError(f"{problem}, from 1970 to the year 9999")
    return milliseconds


def _partition_id(value: str) -> str:
    """Check ``--partition``: ``shardId-0000000002`` or ``2``, as DIS accepts (DIS-API.md 1)."""
    from dis_logging.config import PARTITION_ID_PATTERN

    if not PARTITION_ID_PATTERN.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"invalid partition id {value!r}: use shardId-0000000002 or 2"
        )
    return value


_CONNECTION_FLAGS: Final = (
    (
        "--endpoint",
        "endpoint",
        "DIS base URL, e.g. http://127.0.0.1:8080 (else DIS_LOGGING_ENDPOINT, else "
        "HUAWEICLOUD_SDK_REGION_DIS_<REGION>, else derived from the region)",
    ),
    ("--iam-endpoint", "iam_endpoint", "IAM base URL (else HUAWEICLOUD_SDK_IAM_ENDPOINT)"),
    ("--region", "region", "region id such as cn-north-4 (else DIS_LOGGING_REGION)"),
    ("--project-id", "project_id", "project id (else HUAWEICLOUD_SDK_PROJECT_ID)"),
    ("--ak", "ak", "access key id (else HUAWEICLOUD_SDK_AK)"),
    (
        "--sk",
        "sk",
        "secret access key (else HUAWEICLOUD_SDK_SK or the credentials file); visible to "
        "other users in the process list, so prefer those or --sk-file",
    ),
    (
        "--security-token",
        "security_token",
        "temporary security token (else HUAWEICLOUD_SDK_SECURITY_TOKEN or the credentials "
        "file); visible in the process list, so prefer those or --security-token-file",
    ),
    (
        "--username",
        "username",
        "IAM user name, for password authentication (else DIS_LOGGING_USERNAME)",
    ),
    (
        "--password",
        "password",
        "IAM password (else DIS_LOGGING_PASSWORD); visible in the process list, so prefer "
        "the variable or --password-file",
    ),
    (
        "--domain-name",
        "domain_name",
        "account (domain) name of the IAM user (else DIS_LOGGING_DOMAIN_NAME)",
    ),
    (
        "--token",
        "token",
        "a ready X-Auth-Token; visible in the process list, so prefer --token-file",
    ),
)
#: Secret flags, and the flag that reads the same secret from a file (``-`` for stdin).
#: A secret given on the command line shows in ``ps`` and /proc to other users of the machine.
_SECRET_FILE_FLAGS: Final = (
    ("--sk", "sk", "--sk-file"),
    ("--security-token", "security_token", "--security-token-file"),
    ("--password", "password", "--password-file"),
    ("--token", "token", "--token-file"),
)
_CONNECTION_FIELDS: Final = tuple(dest for _, dest, _ in _CONNECTION_FLAGS)


def _connection_parser() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group(
        "connection", "Each flag overrides the environment variable the handler reads."
    )
    for flag, dest, help_text in _CONNECTION_FLAGS:
        group.add_argument(flag, dest=dest, metavar=dest.upper(), help=help_text)
    for flag, dest, file_flag in _SECRET_FILE_FLAGS:
        group.add_argument(
            file_flag,
            dest=f"{dest}_file",
            metavar="PATH",
            help=f"read the value of {flag} from this file (its first line), or from stdin "
            "with '-'; keeps it out of the process list",
        )
    group.add_argument(
        "--request-timeout",
        "--timeout",
        dest="timeout",
        type=positive_seconds,
        default=10.0,
        help="seconds to wait for each HTTP reply, the handler's request_timeout "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify the server's TLS certificate",
    )
    group.add_argument(
        "--allow-http",
        action="store_true",
        help="allow a plain http:// endpoint on a non-loopback host",
    )
    return parent


def _connection(args: argparse.Namespace) -> Connection:
    """Resolve flags plus environment, exactly as the handler does.

    Raises:
        ConfigError: a required setting is missing or malformed.
    """
    from dis_logging.config import resolve_connection, unknown_variables

    unknown = unknown_variables()
    if unknown:
        print(
            f"{PROG}: warning: environment variable(s) {', '.join(unknown)} set but not read; "
            "they have no effect",
            file=sys.stderr,
        )
    given = {name: getattr(args, name) for name in _CONNECTION_FIELDS}
    given.update(_secret_inputs(args))
    return resolve_connection(**given, allow_insecure_http=args.allow_http)


#: Longest secret a ``--*-file`` flag reads, in characters: the most a reply header line may hold
#: (the client's cap on a reply's headers), far above any AK, SK, password or IAM token.
MAX_SECRET_LINE: Final = 65536


def _secret_inputs(args: argparse.Namespace) -> Dict[str, str]:
    """Read the secrets named by ``--*-file`` flags, and warn about secrets given as flags.

    Returns:
        The secret values read from files, by setting name.

    Raises:
        UsageError: both a secret flag and its file flag are given, stdin is named twice, or a
            file cannot be read, is empty or has a first line longer than
            :data:`MAX_SECRET_LINE` (the message never shows file contents).
    """
    values: Dict[str, str] = {}
    stdin_used = False
    for flag, dest, file_flag in _SECRET_FILE_FLAGS:
        path = getattr(args, f"{dest}_file", None)
        if getattr(args, dest, None) is not None:
            if path is not None:
                raise UsageError(f"give {flag} or {file_flag}, not both")
            print(
                f"{PROG}: warning: {flag} on the command line is visible to other users of this "
                f"machine (process list); use the environment, the credentials file or "
                f"{file_flag}",
                file=sys.stderr,
            )
            continue
        if path is None:
            continue
        if path == "-":
            if stdin_used:
                raise UsageError("only one secret can be read from stdin ('-')")
            stdin_used = True
            text = sys.stdin.readline(MAX_SECRET_LINE + 1)
        else:
            try:
                with open(path, encoding="utf-8-sig") as handle:  # skips a byte order mark
                    text = handle.readline(MAX_SECRET_LINE + 1)
            except (OSError, UnicodeError) as exc:
                raise UsageError(
                    f"{file_flag}: cannot read {path!r}: {type(exc).__name__}"
                ) from None
        if len(text.rstrip("\r\n")) > MAX_SECRET_LINE:
            # /dev/zero, or a large file named by mistake: reading on to a newline would take
            # all memory. No key, password or token is that long (a header line holds 64 KiB).
            where = "stdin" if path == "-" else repr(path)
            raise UsageError(
                f"{file_flag}: the first line of {where} is longer than {MAX_SECRET_LINE} "
                "characters; is it the right file?"
            )
        text = text.rstrip("\r\n")
        if text.startswith("\ufeff"):  # a byte order mark on stdin, from a Windows tool
            text = text[1:]
        if not text:
            raise UsageError(f"{file_flag}: {'stdin' if path == '-' else repr(path)} is empty")
        values[dest] = text
    return values


def _make_client(connection: Connection, args: argparse.Namespace) -> DISClient:
    if args.insecure:
        print(
            f"{PROG}: warning: --insecure: the server's TLS certificate is not checked",
            file=sys.stderr,
        )
    from dis_logging.client import DISClient

    return DISClient(
        connection.endpoint,
        connection.project_id or "",
        request_timeout=args.timeout,
        verify=not args.insecure,
        allow_insecure_http=args.allow_http,
        **connection.client_kwargs(),
    )


def _auth_method(connection: Connection) -> str:
    kind = connection.credential_kind
    if kind == "aksk":
        return "AK/SK" + (" with security token" if connection.security_token else "")
    if kind == "password":
        return f"IAM password of user {connection.username!r}"
    if kind == "token":
        return "X-Auth-Token"
    if kind == "metadata":
        return f"temporary AK/SK from the metadata service at {connection.metadata_endpoint}"
    return "none"


def _readable_partitions(description: Mapping[str, object]) -> List[str]:
    """Return the ids of the partitions in a DescribeStream reply that still hold records."""
    partitions = description.get("partitions")
    if not isinstance(partitions, list):
        return []
    return [
        str(partition.get("partition_id"))
        for partition in partitions
        if isinstance(partition, dict)
        and partition.get("status", "ACTIVE") not in ("DELETED", "EXPIRED")
    ]


def _describe(client: DISClient, stream: str) -> Dict[str, Any]:
    """DescribeStream, refusing a reply without a status and a partition list.

    Raises:
        ServerError: the reply lacks them (a server that is not DIS answered 200 with ``{}``):
            reading on would report a stream of 0 partitions, or an empty one.
        DISError: as :meth:`DISClient.describe_stream`.
    """
    from dis_logging.errors import ServerError

    description = client.describe_stream(stream)
    if not isinstance(description.get("status"), str) or not isinstance(
        description.get("partitions"), list
    ):
        raise ServerError(
            "DescribeStream: the reply has no stream status or partition list, "
            "which DIS always sends; is the endpoint a DIS endpoint?",
            status=200,
        )
    return description


def _partition_ids(client: DISClient, stream: str) -> List[str]:
    return _readable_partitions(_describe(client, stream))


def _for_terminal(text: str) -> str:
    """``text`` with control characters other than newline and tab written as escapes.

    Records hold whatever was logged (a client's user agent, a form field): an escape sequence
    or a bidirectional override in one must not retitle, recolour or reorder the reader's
    terminal. ``--output raw`` and ``json`` are for programs and leave the text as it is.
    """
    if text.isprintable():
        return text
    return "\n".join(
        "\t".join(printable(part) for part in line.split("\t")) for line in text.split("\n")
    )


def _print_record(partition_id: str, record: FetchedRecord, output: str, out: IO[str]) -> None:
    value = _decode(record.data)
    if output == "raw":
        _write(out, record.data.decode("utf-8", errors="replace").rstrip("\n") + "\n")
    elif output == "json":
        envelope = {
            "partition_id": partition_id,
            "sequence_number": record.sequence_number,
            "timestamp": record.timestamp,
            "partition_key": record.partition_key,
            "data": value,
        }
        try:
            line = json.dumps(envelope, ensure_ascii=False)
        except RecursionError:  # parsed, but nested too deep to write again: keep the text
            envelope["data"] = record.data.decode("utf-8", errors="replace")
            line = json.dumps(envelope, ensure_ascii=False)
        if not line.isascii() and _has_surrogates(line):
            # A "\ud800" escape in the record parses to a lone surrogate, which no output
            # encoding can carry: written as the JSON escape again, the line stays valid JSON.
            line = json.dumps(envelope, ensure_ascii=True)
        _write(out, line + "\n")
    else:
        header = f"--- {partition_id} #{record.sequence_number} {_format_ms(record.timestamp)}"
        if record.partition_key is not None:
            header += f" key={record.partition_key}"
        try:
            body = (
                value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
            )
        except RecursionError:  # too deep to indent: the record as it is
            body = record.data.decode("utf-8", errors="replace")
        _write(out, f"{_for_terminal(header)}\n{_for_terminal(body)}\n")
    out.flush()


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _write(out: IO[str], text: str) -> None:
    """Write ``text``; characters the output's encoding lacks (a terminal set to Latin-1, say)
    are written as backslash escapes instead of ending the command with a traceback."""
    try:
        out.write(text)
    except UnicodeEncodeError:
        encoding = getattr(out, "encoding", None) or "utf-8"
        out.write(text.encode(encoding, "backslashreplace").decode(encoding))


class _PartitionReader:
    """Reads one partition page by page; ``caught_up`` once a read returned nothing new.

    Args:
        client: the client to read with.
        stream: the stream name.
        partition_id: the partition.
        cursor_type: where reading started (a GetCursor type).
        timestamp: the start time for ``AT_TIMESTAMP``, else ``None``.
    """

    def __init__(
        self,
        client: DISClient,
        stream: str,
        partition_id: str,
        cursor_type: str,
        timestamp: Optional[int],
    ) -> None:
        self.client = client
        self.stream = stream
        self.partition_id = partition_id
        self.cursor_type = cursor_type
        self.timestamp = timestamp
        self.last_sequence: Optional[str] = None
        self.cursor = client.get_cursor(stream, partition_id, cursor_type, timestamp=timestamp)
        self.pending: Deque[FetchedRecord] = collections.deque()
        self.caught_up = False

    def fetch(self, limit: int) -> None:
        result = self.client.get_records(self.cursor, limit=limit)
        self.cursor = result.next_cursor
        self.pending.extend(result.records)
        if result.records:
            self.last_sequence = result.records[-1].sequence_number
        self.caught_up = not result.records

    def head_key(self) -> Tuple[int, str, int]:
        """Sort key of the next record: write time, then partition, then sequence number."""
        record = self.pending[0]
        sequence = record.sequence_number
        return (record.timestamp or 0, self.partition_id, int(sequence) if sequence else 0)

    def renew(self) -> None:
        """Get a new cursor after the last record read (or where reading started); from the
        oldest record kept when the last one read has expired meanwhile."""
        if self.last_sequence is not None:
            try:
                self.cursor = self.client.get_cursor(
                    self.stream,
                    self.partition_id,
                    "AFTER_SEQUENCE_NUMBER",
                    starting_sequence_number=self.last_sequence,
                )
                return
            except DISError as exc:
                if exc.code != _EXPIRED_SEQUENCE_CODE:
                    raise
            self.restart_from_oldest()
            self.cursor = self.client.get_cursor(self.stream, self.partition_id, "TRIM_HORIZON")
        else:
            self.cursor = self.client.get_cursor(
                self.stream, self.partition_id, self.cursor_type, timestamp=self.timestamp
            )

    def restart_from_oldest(self) -> None:
        """Read on from the oldest record the partition keeps (what came before has expired)."""
        self.last_sequence = None
        self.cursor_type, self.timestamp = "TRIM_HORIZON", None


#: DIS error codes of a cursor that can no longer be read with (DIS-API.md section 9: invalid or
#: expired cursor): a follower gets a new one after the last record it read.
_STALE_CURSOR_CODES: Final = frozenset({"DIS.4217", "DIS.4225"})
#: The records a cursor points at have expired (DIS-API.md section 9): read on from the oldest.
_EXPIRED_RECORDS_CODE: Final = "DIS.4226"
#: A sequence number out of range, as the last record read once it has expired.
_EXPIRED_SEQUENCE_CODE: Final = "DIS.4224"
#: ``tail --follow`` waits this long at most between two attempts while reads fail, in seconds.
FOLLOW_MAX_BACKOFF: Final = 30.0


class _Follower:
    """Retries a ``tail --follow`` read that failed for a reason that may pass.

    A transient failure (the endpoint unreachable, throttling, a 5xx reply) is said on stderr
    with the wait before the next attempt; the waits start at ``--interval`` and double up to
    :data:`FOLLOW_MAX_BACKOFF`. A cursor that expired meanwhile is replaced by one after the last
    record printed. Anything else (credentials refused, the stream deleted) is raised.

    Args:
        interval: the first wait, in seconds (``--interval``).
    """

    def __init__(self, interval: float) -> None:
        from dis_logging.retry import RetryPolicy

        first = min(interval, FOLLOW_MAX_BACKOFF)
        self.policy = RetryPolicy(initial_backoff=first, max_backoff=FOLLOW_MAX_BACKOFF)
        self.failures = 0

    def fetch(self, reader: _PartitionReader, limit: int) -> None:
        """``reader.fetch(limit)``, retried until it succeeds or fails for good."""
        while True:
            try:
                if self.failures and reader.cursor == "":
                    reader.renew()
                reader.fetch(limit)
            except DISError as exc:
                self.failures += 1
                if exc.code == _EXPIRED_RECORDS_CODE:
                    reader.restart_from_oldest()
                    reader.cursor = ""
                    self._say(
                        f"partition {reader.partition_id}: records expired before they were "
                        f"read ({exc}); going on from the oldest record kept"
                    )
                    if self.failures == 1:
                        continue
                elif exc.code in _STALE_CURSOR_CODES:
                    reader.cursor = ""  # renewed on the next attempt (which may fail too)
                    self._say(
                        f"partition {reader.partition_id}: the cursor is no longer valid ({exc}); "
                        "getting a new one after the last record read"
                    )
                    if self.failures == 1:
                        continue  # at once; a cursor refused again waits like any failure
                elif not exc.retryable:
                    raise
                delay = self.policy.backoff(self.failures, exc.retry_after)
                self._say(f"{exc}; retrying in {delay:.1f} s (Ctrl-C stops)")
                time.sleep(delay)
                continue
            if self.failures:
                self.failures = 0
                self._say("reading again")
            return

    @staticmethod
    def _say(message: str) -> None:
        print(f"{PROG}: tail: {_one_line(message)}", file=sys.stderr, flush=True)


def _cmd_tail(args: argparse.Namespace) -> int:
    cursor_type = _CURSOR_TYPES[
        args.from_ or ("at_timestamp" if args.timestamp else "trim_horizon")
    ]
    if cursor_type == "AT_TIMESTAMP" and args.timestamp is None:
        raise UsageError("--from at_timestamp needs --timestamp")
    if args.timestamp is not None and cursor_type != "AT_TIMESTAMP":
        raise UsageError("--timestamp only works with --from at_timestamp")
    _check_stream_name(args.stream)
    client = _make_client(_connection(args), args)
    printed = 0
    said_empty = False
    try:
        partitions = [args.partition] if args.partition else _partition_ids(client, args.stream)
        readers = [
            _PartitionReader(client, args.stream, pid, cursor_type, args.timestamp)
            for pid in partitions
        ]
        # Once reading has started, a follower rides out failures that may pass; errors while
        # starting (a wrong endpoint, credentials or stream) end the command at once.
        follower = _Follower(args.interval) if args.follow else None

        def fetch(reader: _PartitionReader, limit: int) -> None:
            if follower is None:
                reader.fetch(limit)
            else:
                follower.fetch(reader, limit)

        while True:
            remaining = None if args.limit is None else args.limit - printed
            page_limit = min(MAX_FETCH_RECORDS, remaining or MAX_FETCH_RECORDS)
            batch: List[Tuple[str, FetchedRecord]] = []
            if args.merge:
                # A k-way merge: the oldest head is printed only once every partition that may
                # still hold an older record has one buffered (or had nothing more to give).
                for reader in readers:
                    if not reader.pending and not reader.caught_up:
                        fetch(reader, page_limit)
                ready = [reader for reader in readers if reader.pending]
                if ready:
                    oldest = min(ready, key=_PartitionReader.head_key)
                    batch.append((oldest.partition_id, oldest.pending.popleft()))
            else:
                # Partition after partition, a page of each per round.
                for reader in readers:
                    fetch(reader, page_limit)
                    batch.extend((reader.partition_id, record) for record in reader.pending)
                    reader.pending.clear()
            for pid, record in batch:
                _print_record(pid, record, args.output, sys.stdout)
                printed += 1
                if args.limit is not None and printed >= args.limit:
                    return EXIT_OK
            if batch:
                continue
            if printed == 0 and not said_empty:
                said_empty = True
                _say_empty(args, cursor_type)
            if not args.follow:
                return EXIT_OK
            time.sleep(args.interval)
            for reader in readers:
                reader.caught_up = False
    except KeyboardInterrupt:
        return EXIT_OK if args.follow else EXIT_FAILURE
    finally:
        client.close()


def _say_empty(args: argparse.Namespace, cursor_type: str) -> None:
    """Say on stderr that nothing was found, so that an empty output is never ambiguous."""
    where = {
        "TRIM_HORIZON": "",
        "LATEST": " after the latest one",
        "AT_TIMESTAMP": f" since {_format_ms(args.timestamp)}",
    }[cursor_type]
    scope = f"partition {args.partition} of stream" if args.partition else "stream"
    message = f"{PROG}: no records in {scope} {args.stream!r}{where}"
    if args.follow:
        message += "; waiting for new ones (Ctrl-C stops)"
    print(message, file=sys.stderr, flush=True)


def _check_stream_name(name: str) -> None:
    """Raise :class:`UsageError` unless ``name`` is a valid DIS stream name."""
    from dis_logging.config import STREAM_NAME_PATTERN

    if not STREAM_NAME_PATTERN.fullmatch(name):
        raise UsageError(f"invalid stream name {name!r}: use 1-64 characters of A-Z a-z 0-9 _ -")


def _read_lines(source: IO[bytes]) -> Iterator[bytes]:
    for line in source:
        data = line.rstrip(b"\r\n")
        if data:
            yield data


def _batches(lines: Iterable[bytes], key: Optional[str], max_records: int) -> Iterator[List[Entry]]:
    batch: List[Entry] = []
    size = 0
    for data in lines:
        if batch and (len(batch) >= max_records or size + len(data) > MAX_REQUEST_BYTES):
            yield batch
            batch, size = [], 0
        batch.append((data, key))
        size += len(data)
    if batch:
        yield batch


class _SendReport:
    """Counts of a ``send`` run, failures grouped by their cause in words."""

    def __init__(self) -> None:
        self.sent = 0
        self.failed = 0
        self.requests = 0
        self.errors: Dict[str, int] = {}
        #: the cause of the failure being retried now, or "" when nothing is being retried.
        self.retrying = ""

    def fail(self, count: int, cause: str) -> None:
        self.failed += count
        self.errors[cause] = self.errors.get(cause, 0) + count

    def causes(self) -> str:
        """The failure causes, most frequent first: ``"cause (x3); other (x1)"``."""
        ranked = sorted(self.errors.items(), key=lambda item: (-item[1], item[0]))
        return "; ".join(f"{cause} (x{count})" for cause, count in ranked)


def _cause(exc: DISError) -> str:
    """A failed call in words: the message, with the DIS error code when there is one."""
    message = str(exc.args[0]) if exc.args else type(exc).__name__
    if exc.code and exc.code not in message:
        return f"{exc.code}: {message}"
    if exc.status is not None and not exc.code:
        return f"HTTP {exc.status}: {message}"
    return message


def _put_batch(
    client: DISClient,
    stream: str,
    batch: List[Entry],
    report: _SendReport,
    retry_time: float,
    on_wait: Callable[[], None],
) -> None:
    """Send one batch; resend retryable failures with backoff until ``retry_time`` runs out.

    ``on_wait`` is called before each backoff wait, with ``report.retrying`` naming the cause.
    """
    from dis_logging.retry import RetryPolicy

    policy = RetryPolicy()
    deadline = time.monotonic() + retry_time
    pending = [entry for entry in batch if len(entry[0]) <= MAX_REQUEST_BYTES]
    if len(pending) < len(batch):
        report.fail(len(batch) - len(pending), "larger than 1 MB")
    attempt = 0
    while pending:
        retry_after: Optional[float] = None
        try:
            report.requests += 1
            result = client.put_records(stream, pending)
        except DISError as exc:
            if not exc.retryable:
                raise
            retry_pending, retry_after = pending, exc.retry_after
            last_cause = _cause(exc)
        else:
            retry_pending = []
            last_cause = ""
            for entry, outcome in zip(pending, result.records):
                if outcome.ok:
                    report.sent += 1
                elif outcome.retryable:
                    retry_pending.append(entry)
                    last_cause = _record_cause(outcome.error_code, outcome.error_message)
                else:
                    report.fail(1, _record_cause(outcome.error_code, outcome.error_message))
        pending = retry_pending
        if not pending:
            report.retrying = ""
            return
        delay = policy.backoff(attempt, retry_after)
        attempt += 1
        if time.monotonic() + delay > deadline:
            report.fail(len(pending), last_cause)
            report.retrying = ""
            return
        report.retrying = last_cause
        on_wait()
        time.sleep(delay)


def _record_cause(code: Optional[str], message: Optional[str]) -> str:
    """One rejected record in words: ``"DIS.4303: Exceeded traffic control limit"``."""
    if code and message:
        return f"{code}: {message}"
    return code or message or "rejected"


def _cmd_send(args: argparse.Namespace) -> int:
    _check_stream_name(args.stream)
    connection = _connection(args)
    if args.file == "-":
        source: IO[bytes] = sys.stdin.buffer
    else:
        try:
            source = open(args.file, "rb")  # closed in the finally below
        except OSError as exc:
            raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
    client = _make_client(connection, args)
    report = _SendReport()
    progress = _Progress("sent", interval=SEND_PROGRESS_INTERVAL)
    started = time.monotonic()

    def detail() -> str:
        rate = report.sent / max(time.monotonic() - started, 1e-9)
        text = f" records, {rate:,.0f}/s, {report.failed:,} failed"
        if report.retrying:
            text += f"; retrying: {report.retrying}"
        elif report.errors:
            text += f" ({report.causes()})"
        return printable(text)  # the causes quote servers' error text

    def show() -> None:
        progress.update(report.sent, detail=detail())

    try:
        for batch in _batches(_read_lines(source), args.partition_key, args.batch_records):
            _put_batch(client, args.stream, batch, report, args.retry_time, show)
            show()
        progress.done(report.sent, detail=detail())
    finally:
        client.close()
        if source is not sys.stdin.buffer:
            source.close()
    elapsed = time.monotonic() - started
    print(
        f"sent {_counted(report.sent, 'record')} to {args.stream!r} in "
        f"{_counted(report.requests, 'request')} ({elapsed:.2f} s), {report.failed:,} failed"
    )
    if report.failed:
        verb = "was" if report.failed == 1 else "were"
        _print_error(f"{_counted(report.failed, 'record')} {verb} not stored: {report.causes()}")
        return EXIT_FAILURE
    return EXIT_OK


class _Checklist:
    """Prints one ``ok`` / ``FAIL`` / ``skip`` line per step and remembers failures."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self.failed = False

    def ok(self, step: str, detail: str) -> None:
        self._line("ok", step, detail)

    def fail(self, step: str, detail: str) -> None:
        self.failed = True
        self._line("FAIL", step, detail)

    def skip(self, step: str, detail: str) -> None:
        self._line("skip", step, detail)

    def _line(self, status: str, step: str, detail: str) -> None:
        _write(self._out, f"{status:<5} {step:<14} {_one_line(detail)}\n")
        self._out.flush()


def _counted(count: int, noun: str) -> str:
    """``"1 record"``, ``"2,000 records"``."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def _explain(exc: DISError, what: str) -> str:
    """Say in plain words what a failed call means for the configuration."""
    from dis_logging.errors import AuthError, TransportError

    if isinstance(exc, TransportError):
        from dis_logging.client import CHECK_HINT

        # The message names the cause and the next step; this command is the check it suggests.
        cause = str(exc).replace(f"; {CHECK_HINT}", "")
        return f"the endpoint did not answer: {cause}"
    if isinstance(exc, AuthError):
        return f"{what}: the credentials were rejected ({exc}); check the AK/SK, token or IAM user"
    if exc.code == "DIS.4117":
        return f"{what}: the project id is not valid ({exc})"
    text = str(exc)
    return text if text.startswith(f"{what}:") else f"{what}: {text}"


def _credential_service(exc: DISError) -> Optional[str]:
    """The service a failed call got its credentials from, when that step failed: the IAM
    endpoint (password tokens) or the metadata service (temporary keys); else ``None``."""
    text = str(exc)
    if text.startswith("metadata credentials"):
        return "the metadata service"
    if text.startswith("IAM token"):
        return "the IAM endpoint"
    return None


def _cmd_check(args: argparse.Namespace) -> int:
    from dis_logging.config import ENV_STREAM, STREAM_NAME_PATTERN
    from dis_logging.errors import AuthError, TransportError

    checklist = _Checklist(sys.stdout)
    stream: Optional[str] = args.stream or os.environ.get(ENV_STREAM, "").strip() or None
    if stream is not None:
        source = "" if args.stream else f" (from {ENV_STREAM})"
        if not STREAM_NAME_PATTERN.fullmatch(stream):
            checklist.fail(
                "configuration",
                f"invalid stream name {stream!r}{source}: use 1-64 characters of A-Z a-z 0-9 _ -",
            )
            return EXIT_USAGE
        put_note = "no record is written (--no-put)"
        if not args.no_put:
            put_note = "writes one test record to it (--no-put skips that)"
        print(f"checking stream {stream!r}{source}; {put_note}", flush=True)
    args.stream = stream
    try:
        connection = _connection(args)
    except ConfigError as exc:
        checklist.fail("configuration", str(exc))
        return EXIT_USAGE
    checklist.ok(
        "configuration",
        f"endpoint {connection.endpoint}, project {connection.project_id}, "
        f"auth {_auth_method(connection)}",
    )
    client = _make_client(connection, args)
    try:
        started = time.monotonic()
        try:
            if args.stream:
                description = _describe(client, args.stream)
            else:
                streams = client.list_streams()
        except DISError as exc:
            operation = "DescribeStream" if args.stream else "ListStreams"
            credential_service = _credential_service(exc)
            if isinstance(exc, TransportError) and credential_service is not None:
                # The credentials come from another service, which failed before DIS was asked.
                from dis_logging.client import CHECK_HINT

                cause = str(exc).replace(f"; {CHECK_HINT}", "")
                checklist.fail("credentials", f"{credential_service} did not answer: {cause}")
                return EXIT_FAILURE
            if isinstance(exc, TransportError):
                checklist.fail("endpoint", _explain(exc, operation))
                return EXIT_FAILURE
            elapsed_ms = (time.monotonic() - started) * 1000.0
            checklist.ok("endpoint", f"answered in {elapsed_ms:.0f} ms")
            if isinstance(exc, AuthError):
                checklist.fail("credentials", _explain(exc, operation))
            elif exc.code == "DIS.4301":
                checklist.ok("credentials", "accepted")
                checklist.fail("stream", f"stream {args.stream!r} does not exist in this project")
            else:
                checklist.fail("request", _explain(exc, operation))
            return EXIT_FAILURE
        elapsed_ms = (time.monotonic() - started) * 1000.0
        checklist.ok("endpoint", f"answered in {elapsed_ms:.0f} ms")
        checklist.ok("credentials", "accepted")
        if not args.stream:
            checklist.ok("streams", f"{len(streams)} visible: {', '.join(streams) or '(none)'}")
            checklist.skip("stream", "no STREAM given")
            return EXIT_FAILURE if checklist.failed else EXIT_OK
        status = description["status"]
        partitions = len(_readable_partitions(description))
        if status != "RUNNING":
            checklist.fail("stream", f"{args.stream!r} is {status}, not RUNNING")
            return EXIT_FAILURE
        checklist.ok(
            "stream", f"{args.stream!r} is RUNNING with {_counted(partitions, 'partition')}"
        )
        if args.no_put:
            checklist.skip("test put", "--no-put given")
            return EXIT_OK
        probe = json.dumps({"message": "dis-logging check", "check_id": uuid.uuid4().hex}).encode()
        try:
            result = client.put_records(args.stream, [(probe, None)])
        except DISError as exc:
            checklist.fail("test put", _explain(exc, "PutRecords"))
            return EXIT_FAILURE
        outcome = result.records[0] if result.records else None
        if outcome is None or not outcome.ok:
            code = outcome.error_code if outcome else "no result"
            message = outcome.error_message if outcome else ""
            checklist.fail("test put", f"the record was rejected: {code} {message or ''}")
            return EXIT_FAILURE
        checklist.ok(
            "test put",
            f"1 record stored in {outcome.partition_id} at sequence number "
            f"{outcome.sequence_number}",
        )
        return EXIT_OK
    finally:
        client.close()


_DEMO_LOGGER: Final = "dis_demo"


def _demo_logging_config(emulator: Any, stream: str) -> Dict[str, Any]:
    """The dictConfig the demo installs: a DISHandler on one logger, AK/SK auth."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "dis_logging.JSONFormatter"}},
        "handlers": {
            "dis": {
                "class": "dis_logging.DISHandler",
                "stream_name": stream,
                "endpoint": emulator.url,
                "iam_endpoint": emulator.url,
                "region": emulator.region,
                "project_id": emulator.project_id,
                "ak": emulator.ak,
                "sk": emulator.sk,
                "formatter": "json",
                # One key per thread (its name): DIS keeps the order of the records of one key.
                "partition_key": "ext://dis_logging.cli._demo_partition_key",
            }
        },
        "loggers": {
            _DEMO_LOGGER: {"handlers": ["dis"], "level": "INFO", "propagate": False},
        },
    }


def _demo_partition_key(record: logging.LogRecord) -> Optional[str]:
    """Return the partition key of a demo record: its thread, so each thread's order is kept."""
    return record.threadName


def _is_ordered_per_key(found: Dict[str, List[bytes]]) -> bool:
    """Check that each worker's order ids increase within every partition."""
    for records in found.values():
        last: Dict[object, int] = {}
        for data in records:
            event = _decode(data)
            if not isinstance(event, dict):
                return False
            worker, number = event.get("worker"), event.get("order_id")
            if not isinstance(number, int) or number <= last.get(worker, -1):
                return False
            last[worker] = number
    return True


def _log_from_threads(count: int, threads: int) -> float:
    """Log ``count`` records from ``threads`` threads; return the seconds it took."""
    logger = logging.getLogger(_DEMO_LOGGER)
    done = [0] * threads
    shares = [count // threads + (1 if index < count % threads else 0) for index in range(threads)]

    def work(index: int) -> None:
        for number in range(shares[index]):
            logger.info(
                "order %d shipped",
                number,
                extra={"worker": index, "order_id": number, "items": number % 7 + 1},
            )
            done[index] += 1

    workers = [
        threading.Thread(target=work, args=(index,), name=f"demo-worker-{index}")
        for index in range(threads)
    ]
    progress = _Progress("logging", count)
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    while any(worker.is_alive() for worker in workers):
        progress.update(sum(done))
        workers[0].join(0.05)
    elapsed = time.perf_counter() - started
    for worker in workers:
        worker.join()
    progress.done(sum(done))
    return elapsed


def _read_back(client: DISClient, stream: str) -> Dict[str, List[bytes]]:
    """Read every record of every partition from the oldest one."""
    found: Dict[str, List[bytes]] = {}
    for pid in _partition_ids(client, stream):
        cursor = client.get_cursor(stream, pid, "TRIM_HORIZON")
        records: List[bytes] = []
        while True:
            result = client.get_records(cursor, limit=MAX_FETCH_RECORDS)
            cursor = result.next_cursor
            if not result.records:
                break
            records.extend(record.data for record in result.records)
        found[pid] = records
    return found


def _cmd_demo(args: argparse.Namespace) -> int:
    from dis_logging.client import DISClient
    from dis_logging.emulator import DISEmulator
    from dis_logging.handler import DISHandler

    out = sys.stdout
    stream = f"demo-{uuid.uuid4().hex[:8]}"
    with DISEmulator(host="127.0.0.1", port=0) as emulator:
        try:
            emulator.create_stream(stream, partitions=args.partitions)
        except ValueError as exc:  # more partitions than the emulator's account quota
            raise UsageError(f"--partitions {args.partitions}: {exc}") from None
        out.write(f"{PROG} demo\n")
        out.write(f"  emulator    {emulator.url} (DIS + IAM, inside this process)\n")
        out.write(f"  stream      {stream}, {args.partitions} partitions\n")
        out.flush()

        logging.config.dictConfig(_demo_logging_config(emulator, stream))
        logger = logging.getLogger(_DEMO_LOGGER)
        [handler] = logger.handlers
        assert isinstance(handler, DISHandler)  # installed by the dictConfig above
        try:
            started = time.perf_counter()
            log_seconds = _log_from_threads(args.records, args.threads)
            flushed = handler.flush(args.flush_timeout)
            send_seconds = time.perf_counter() - started
            stats = handler.stats
        finally:
            logger.removeHandler(handler)
            handler.close()

        out.write(
            f"  logged      {args.records:,} records from {args.threads} threads in "
            f"{log_seconds:.2f} s\n"
        )
        out.write(
            f"  sent        {stats.sent:,} records in {stats.requests:,} PutRecords requests, "
            f"{stats.dropped:,} dropped, {stats.failed:,} failed\n"
        )
        out.write(
            f"  throughput  {stats.sent / max(send_seconds, 1e-9):,.0f} records/s "
            f"(first log call to last acknowledgement, {send_seconds:.2f} s)\n"
        )
        client = DISClient(
            emulator.url,
            emulator.project_id,
            region=emulator.region,
            ak=emulator.ak,
            sk=emulator.sk,
            request_timeout=10.0,
        )
        try:
            found = _read_back(client, stream)
        finally:
            client.close()
        total = sum(len(records) for records in found.values())
        spread = ", ".join(f"{len(records):,}" for records in found.values())
        out.write(
            f"  read back   {total:,} records with GetCursor + GetRecords "
            f"({spread} per partition)\n"
        )
        ordered = _is_ordered_per_key(found)
        out.write(
            f"  order       {'kept' if ordered else 'NOT kept'} for each partition key "
            f"(one key per thread)\n"
        )
        samples = [data for records in found.values() for data in records[:1]][: args.show]
        if samples:
            out.write(f"  first record of {len(samples)} partitions:\n")
            for data in samples:
                value = _decode(data)
                text = value if isinstance(value, str) else json.dumps(value, indent=2)
                out.write("    " + text.replace("\n", "\n    ") + "\n")
        out.flush()
    if not flushed or not ordered or total != args.records or stats.sent != args.records:
        _print_error(
            f"expected {args.records} records, sent {stats.sent} and read back {total} "
            f"(flush {'completed' if flushed else 'timed out'})"
        )
        return EXIT_FAILURE
    return EXIT_OK


def _add_emulator_command(commands: Any) -> None:
    from dis_logging.emulator import cli as emulator_cli

    parser = commands.add_parser(
        "emulator",
        help="run a local DIS + IAM emulator",
        description="Run a local DIS + IAM emulator for development and tests.",
    )
    emulator_cli.add_arguments(parser)
    parser.set_defaults(func=emulator_cli.run)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``dis-logging`` argument parser.

    Returns:
        The parser; each subcommand stores its handler in the ``func`` attribute.
    """
    from dis_logging import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Ship Python logs to Huawei Cloud DIS: try it, inspect streams, check setup.",
        epilog="Run 'dis-logging COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    connection = _connection_parser()

    _add_emulator_command(commands)

    demo = commands.add_parser(
        "demo",
        help="log records into an embedded emulator and read them back",
        description="Start an emulator in this process, configure logging with dictConfig, log "
        "records from several threads, flush, and read them back with GetCursor/GetRecords.",
    )
    demo.add_argument(
        "--records", type=positive_int, default=5000, help="records to log (default: %(default)s)"
    )
    demo.add_argument(
        "--threads",
        type=positive_int,
        default=4,
        help="threads logging at once (default: %(default)s)",
    )
    demo.add_argument(
        "--partitions",
        type=positive_int,
        default=4,
        help="partitions of the demo stream (default: %(default)s)",
    )
    demo.add_argument(
        "--show",
        type=non_negative_int,
        default=2,
        help="decoded records to print (default: %(default)s)",
    )
    demo.add_argument(
        "--flush-timeout",
        type=positive_seconds,
        default=30.0,
        help="seconds to wait for delivery (default: %(default)s)",
    )
    demo.set_defaults(func=_cmd_demo)

    tail = commands.add_parser(
        "tail",
        parents=[connection],
        help="print the records of a stream",
        description="Print the records of every partition of STREAM, JSON pretty-printed.",
    )
    tail.add_argument("stream", metavar="STREAM", help="stream name")
    tail.add_argument(
        "--from",
        dest="from_",
        choices=sorted(_CURSOR_TYPES),
        help="where to start (default: trim_horizon, the oldest record)",
    )
    tail.add_argument(
        "--timestamp",
        type=_parse_timestamp,
        help="start time for at_timestamp: epoch milliseconds or ISO 8601",
    )
    tail.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep polling for new records until interrupted; once reading has started, "
        "failures that may pass are retried (waits from --interval doubling up to 30 s)",
    )
    tail.add_argument(
        "--partition",
        metavar="ID",
        type=_partition_id,
        help="read only this partition (shardId-0000000000 or 0)",
    )
    tail.add_argument("-n", "--limit", type=positive_int, help="stop after this many records")
    tail.add_argument(
        "--merge",
        action="store_true",
        help="print the records of all partitions in write-time order (a k-way merge); "
        "default: partition after partition, a page of each at a time",
    )
    tail.add_argument(
        "--output",
        choices=("pretty", "json", "raw"),
        default="pretty",
        help="pretty: header and indented JSON; json: one JSON object per line "
        "with metadata; raw: the data only (default: %(default)s)",
    )
    tail.add_argument(
        "--interval",
        type=positive_seconds,
        default=1.0,
        help="seconds between polls with --follow (default: %(default)s)",
    )
    tail.set_defaults(func=_cmd_tail)

    send = commands.add_parser(
        "send",
        parents=[connection],
        help="send lines of a file as records",
        description="Send each non-empty line of FILE (or standard input) as one record.",
    )
    send.add_argument("stream", metavar="STREAM", help="stream name")
    send.add_argument(
        "file",
        metavar="FILE",
        nargs="?",
        default="-",
        help="file to read, '-' for standard input (default)",
    )
    send.add_argument("--partition-key", help="partition key for every record")
    send.add_argument(
        "--batch-records",
        type=positive_int,
        default=500,
        help=f"records per request, at most {MAX_REQUEST_RECORDS} (default: %(default)s)",
    )
    send.add_argument(
        "--retry-time",
        type=non_negative_seconds,
        default=30.0,
        help="seconds to keep retrying throttled or failed records (default: %(default)s)",
    )
    send.set_defaults(func=_cmd_send)

    check = commands.add_parser(
        "check",
        parents=[connection],
        help="check settings, endpoint, credentials and stream; writes one test record",
        description="Check the configuration step by step: settings, endpoint, credentials, "
        "the stream, and one test record WRITTEN to the stream (a small JSON object with "
        "message 'dis-logging check'; --no-put skips it). Exits with 1 when a step fails, "
        "2 for a configuration error.",
    )
    check.add_argument(
        "stream",
        metavar="STREAM",
        nargs="?",
        help="stream to check (default: DIS_LOGGING_STREAM); without either, only the "
        "connection is checked",
    )
    check.add_argument(
        "--no-put", action="store_true", help="do not write the test record (read-only check)"
    )
    check.set_defaults(func=_cmd_check)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line.

    Args:
        argv: the arguments without the program name; ``None`` (the default) uses
            ``sys.argv[1:]``.

    Returns:
        The exit code: 0 success, 1 runtime failure, 2 usage or configuration error.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    func: Optional[Callable[[argparse.Namespace], int]] = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if getattr(args, "batch_records", 0) > MAX_REQUEST_RECORDS:
        _print_error(f"--batch-records must be at most {MAX_REQUEST_RECORDS}")
        return EXIT_USAGE
    try:
        return func(args)
    except (UsageError, ConfigError) as exc:
        _print_error(exc)
        return EXIT_USAGE
    except DISError as exc:
        _print_error(exc)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        _print_error("interrupted")
        return EXIT_FAILURE
    except BrokenPipeError:
        # The reader went away (``dis-logging tail s | head``): stop quietly, and keep the
        # interpreter from failing again when it flushes stdout at exit.
        _silence_stdout()
        return EXIT_OK


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return  # stdout is not a real file (tests capture it); nothing to protect
