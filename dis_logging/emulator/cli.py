"""The ``dis-logging emulator`` command: run a local DIS + IAM emulator until Ctrl-C.

``dis_logging.cli`` mounts :func:`add_arguments` and :func:`run` as a subcommand; ``python -m
dis_logging.emulator`` runs them directly.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import re
import signal
import sys
import threading
from types import FrameType
from typing import Any, Callable, Final, Iterator, List, Optional, TextIO, Tuple, Union

from dis_logging._argtypes import (
    bounded,
    fraction,
    non_negative_int,
    non_negative_seconds,
)
from dis_logging.emulator.server import (
    DEFAULT_AK,
    DEFAULT_DOMAIN_NAME,
    DEFAULT_PASSWORD,
    DEFAULT_PROJECT_ID,
    DEFAULT_REGION,
    DEFAULT_SK,
    DEFAULT_TOKEN_TTL,
    DEFAULT_USERNAME,
    MAX_TOKEN_TTL,
    DISEmulator,
)
from dis_logging.emulator.state import (
    DEFAULT_ADVANCED_PARTITION_QUOTA,
    DEFAULT_PARTITION_QUOTA,
    STREAM_TYPES,
)

DEFAULT_PORT: Final = 8080
"""Port of the command when --port is not given (a fixed one, so client settings can be reused)."""

StreamSpec = Tuple[str, int, str]

_SignalHandler = Union[Callable[[int, Optional[FrameType]], Any], int, None]


def parse_stream(text: str) -> StreamSpec:
    """Parse a ``--stream`` value, ``NAME[:PARTITIONS[:TYPE]]``.

    Args:
        text: The value; PARTITIONS defaults to 1 and TYPE to ``COMMON`` (case-insensitive).

    Returns:
        (name, partitions, stream type), the type upper-case.

    Raises:
        argparse.ArgumentTypeError: When the partition count or type is invalid.
    """
    name, _, rest = text.partition(":")
    count_text, _, stream_type = rest.partition(":")
    stream_type = (stream_type or "COMMON").upper()
    try:
        count = int(count_text) if count_text else 1
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad partition count in {text!r}") from None
    if count < 1 or not name or stream_type not in STREAM_TYPES:
        raise argparse.ArgumentTypeError(
            f"expected NAME[:PARTITIONS[:COMMON|ADVANCED]] with PARTITIONS >= 1, got {text!r}"
        )
    return name, count, stream_type


def _matching(pattern: str, requirement: str) -> Callable[[str], str]:
    """Return an argparse ``type=`` that accepts text matching ``pattern`` whole."""
    compiled = re.compile(pattern)

    def check(text: str) -> str:
        if not compiled.fullmatch(text):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text!r}")
        return text

    return check


#: A project id as DIS paths and clients take it (DIS-API.md section 1; the client's own check).
_project_id: Final = _matching(r"[A-Za-z0-9_-]{1,64}", "1-64 letters, digits, '-' or '_'")
#: A region id such as cn-north-4: it names the IAM project and a HUAWEICLOUD_SDK_REGION_DIS_*
#: variable, and clients refuse any other form.
_region: Final = _matching(r"[a-z0-9]+(-[a-z0-9]+)*", "a region id such as 'cn-north-4'")
#: An access key: printable ASCII without spaces, as it travels in the Authorization header.
_access_key: Final = _matching(r"[!-~]{1,128}", "printable ASCII without spaces")

#: A TCP port number; 0 lets the system pick a free one.
_port: Final = bounded(int, lambda value: 0 <= value <= 65535, "a port from 0 to 65535")
#: A token lifetime the emulator can issue (a longer one's expiry date cannot be written).
_token_ttl: Final = bounded(
    float,
    lambda value: 0 <= value <= MAX_TOKEN_TTL,
    f"from 0 to {MAX_TOKEN_TTL:.0f} seconds (ten years)",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the emulator's options to ``parser``.

    Args:
        parser: The (sub)command parser to extend.
    """
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"port; 0 picks one (default {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--project-id", type=_project_id, default=DEFAULT_PROJECT_ID, help="project id"
    )
    parser.add_argument(
        "--region", type=_region, default=DEFAULT_REGION, help="region / IAM project name"
    )
    parser.add_argument(
        "--ak", type=_access_key, default=DEFAULT_AK, help="access key accepted for AK/SK signing"
    )
    parser.add_argument("--sk", default=DEFAULT_SK, help="secret key accepted for AK/SK signing")
    parser.add_argument("--username", default=DEFAULT_USERNAME, help="IAM user name")
    parser.add_argument("--password", default=DEFAULT_PASSWORD, help="IAM password")
    parser.add_argument("--domain-name", default=DEFAULT_DOMAIN_NAME, help="IAM account name")
    parser.add_argument(
        "--stream",
        action="append",
        default=[],
        type=parse_stream,
        metavar="NAME[:PARTITIONS[:TYPE]]",
        help="create a stream at start (repeatable), e.g. app-logs:4 or big:2:ADVANCED",
    )
    parser.add_argument(
        "--token-ttl",
        type=_token_ttl,
        default=DEFAULT_TOKEN_TTL,
        help="lifetime of issued tokens and of the metadata route's temporary AK/SK sets, "
        "in seconds (default 86400)",
    )
    parser.add_argument(
        "--fail-rate",
        type=fraction,
        default=0.0,
        help="fraction of PutRecords requests answered 500 DIS.5000 (default 0)",
    )
    parser.add_argument(
        "--record-fail-fraction",
        type=fraction,
        default=0.0,
        help="fraction of records failed with per-record DIS.4303 (default 0)",
    )
    parser.add_argument(
        "--delay",
        type=non_negative_seconds,
        default=0.0,
        help="seconds to delay every reply (default 0)",
    )
    parser.add_argument(
        "--rate-limits",
        action="store_true",
        help="enforce per-partition write limits as per-record DIS.4303",
    )
    parser.add_argument(
        "--partition-quota",
        type=non_negative_int,
        default=DEFAULT_PARTITION_QUOTA,
        help=f"partitions the account may hold in total (default {DEFAULT_PARTITION_QUOTA}, "
        "the real default quota)",
    )
    parser.add_argument(
        "--advanced-partition-quota",
        type=non_negative_int,
        default=DEFAULT_ADVANCED_PARTITION_QUOTA,
        help="partitions of ADVANCED streams the account may hold, within the total (default "
        f"{DEFAULT_ADVANCED_PARTITION_QUOTA}, the real default quota)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault generators")
    parser.add_argument(
        "--duration",
        type=non_negative_seconds,
        default=None,
        help="stop after this many seconds (at most 1000000; default: run until stopped)",
    )
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")


def build(args: argparse.Namespace) -> DISEmulator:
    """Return a configured, not yet started emulator.

    Args:
        args: Options from a parser that :func:`add_arguments` prepared.

    Returns:
        The emulator, with the host, port, credentials, token lifetime, partition quota, seed
        and verbosity given.
    """
    return DISEmulator(
        args.host,
        args.port,
        project_id=args.project_id,
        ak=args.ak,
        sk=args.sk,
        username=args.username,
        password=args.password,
        domain_name=args.domain_name,
        region=args.region,
        token_ttl=args.token_ttl,
        partition_quota=args.partition_quota,
        advanced_partition_quota=args.advanced_partition_quota,
        seed=args.seed,
        verbose=args.verbose,
    )


def describe(emu: DISEmulator, streams: List[StreamSpec]) -> str:
    """Return the start-up banner: URL, dev credentials, streams and matching environment.

    The banner shows the emulator's fixed development credentials on purpose: they are what
    local clients must be configured with, and they grant nothing outside the emulator.

    Args:
        emu: The started emulator.
        streams: The streams created at start, as :func:`parse_stream` returns them.

    Returns:
        The banner lines joined by newlines, without a trailing one.
    """
    lines = [
        f"DIS emulator listening on {emu.url} (IAM and DIS)",
        f"  project id   {emu.project_id}",
        f"  region       {emu.region}",
        f"  AK / SK      {emu.ak} / {emu.sk}",
        f"  IAM user     {emu.username} / {emu.password} (account {emu.domain_name})",
        f"  metadata     {emu.metadata_endpoint}{emu.metadata_path} (temporary AK/SK)",
    ]
    for name, count, stream_type in streams:
        lines.append(f"  stream       {name} ({count} partitions, {stream_type})")
    region_var = "HUAWEICLOUD_SDK_REGION_DIS_" + emu.region.upper().replace("-", "_")
    lines += [
        "Environment for clients:",
        f"  export HUAWEICLOUD_SDK_AK={emu.ak} HUAWEICLOUD_SDK_SK={emu.sk}",
        f"  export HUAWEICLOUD_SDK_PROJECT_ID={emu.project_id}",
        f"  export HUAWEICLOUD_SDK_IAM_ENDPOINT={emu.url} {region_var}={emu.url}",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def start(args: argparse.Namespace) -> DISEmulator:
    """Build, start and script an emulator (streams and fault flags applied).

    Args:
        args: Options from a parser that :func:`add_arguments` prepared.

    Returns:
        The running emulator; the caller stops it.

    Raises:
        OSError: When the port cannot be bound.
        ValueError: When a stream cannot be created.
    """
    emu = build(args)
    for name, count, stream_type in args.stream:
        emu.create_stream(name, count, stream_type)
    if args.fail_rate:
        emu.fail_rate(args.fail_rate, seed=args.seed)
    if args.record_fail_fraction:
        emu.fail_records(fraction=args.record_fail_fraction, seed=args.seed)
    if args.delay:
        emu.set_delay(args.delay)
    if args.rate_limits:
        emu.enforce_rate_limits()
    return emu.start()


def exposure_warning(host: str) -> Optional[str]:
    """The warning for an emulator bound beyond this machine, or ``None`` for a loopback host.

    Args:
        host: the ``--host`` value.

    Returns:
        One line saying that its published credentials are open to the network, or ``None``.
    """
    name = host.strip("[]")
    if name.lower() == "localhost":
        return None
    try:
        if ipaddress.ip_address(name).is_loopback:
            return None
    except ValueError:
        pass  # a host name: it may resolve to a reachable address
    return (
        f"dis-logging emulator: warning: listening on {host}, beyond this machine: anyone who "
        "can reach it may use its published development credentials; use 127.0.0.1 unless "
        "that is what you want"
    )


def run(args: argparse.Namespace, out: Optional[TextIO] = None) -> int:
    """Start the emulator for parsed ``args``, print its banner and serve until interrupted.

    Args:
        args: Options from a parser that :func:`add_arguments` prepared.
        out: Where the banner goes; default ``sys.stdout``.

    Returns:
        0 after Ctrl-C, SIGTERM or ``--duration``; 1 when the port cannot be bound; 2 when a
        stream is invalid (a bad name, or more partitions than the quota). The reason goes to
        stderr, in one line.
    """
    out = out or sys.stdout
    with _stop_signals() as stop:
        try:
            emu = start(args)
        except OSError as exc:
            print(f"dis-logging emulator: {exc}", file=sys.stderr)
            return 1
        except ValueError as exc:
            print(f"dis-logging emulator: {exc}", file=sys.stderr)
            return 2
        try:
            warning = exposure_warning(args.host)
            if warning is not None:
                print(warning, file=sys.stderr, flush=True)
            out = _say(out, describe(emu, args.stream))
            stop.wait(args.duration)
        finally:
            emu.stop()
    _say(out, "DIS emulator stopped.")
    return 0


def _say(out: TextIO, text: str) -> TextIO:
    """Print ``text`` to ``out``; return where later lines go.

    When the reader has gone (``dis-logging emulator | head -3``), the emulator keeps serving:
    the text is dropped and the stream is pointed at the null device, so neither this nor the
    interpreter's final flush ends in a ``BrokenPipeError`` traceback.
    """
    try:
        print(text, file=out, flush=True)
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError):  # a stream without a descriptor
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, out.fileno())
            os.close(null)
    return out


@contextlib.contextmanager
def _stop_signals() -> Iterator[threading.Event]:
    # Explicit handlers, installed before the banner appears, so Ctrl-C and SIGTERM stop cleanly
    # even when SIGINT was inherited as ignored (background jobs of a non-interactive shell). The
    # previous handlers are restored afterwards.
    stop = threading.Event()
    previous: List[Tuple[int, _SignalHandler]] = []
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous.append((signum, signal.signal(signum, lambda _s, _f: stop.set())))
    try:
        yield stop
    finally:
        for number, handler in previous:
            signal.signal(number, handler)
