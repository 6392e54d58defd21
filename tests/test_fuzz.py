"""Property tests: hostile records never break the handler, hostile requests never the emulator."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import sys
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dis_logging.emulator import DISEmulator
from dis_logging.handler import DISHandler

STREAM = "fuzz-stream"
FUZZ_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def fuzz_emulator() -> Iterator[DISEmulator]:
    # One emulator for every example of the module: starting one per example would dominate the run.
    with DISEmulator() as emu:
        emu.create_stream(STREAM, partitions=2)
        emu.create_stream("scratch-stream")  # what the fuzzed requests may describe or delete
        yield emu


def send_raw(emu: DISEmulator, payload: bytes, timeout: float = 2.0) -> bytes:
    """Send bytes on a fresh connection, half-close it and return whatever the server answers."""
    with socket.create_connection(("127.0.0.1", emu.port), timeout=timeout) as sock:
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            return b""  # the server may close first on garbage: that is allowed
        chunks: List[bytes] = []
        # A reset or a timeout is an allowed way to refuse garbage.
        with contextlib.suppress(OSError):
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks)


def assert_emulator_works(emu: DISEmulator) -> None:
    """A well-formed PutRecords still succeeds and is stored."""
    before = len(emu.records(STREAM))
    body = {"stream_name": STREAM, "records": [{"data": "b2s=", "partition_key": "k"}]}
    with requests.Session() as session:
        reply = session.post(
            f"{emu.url}/v2/{emu.project_id}/records",
            json=body,
            headers={"X-Auth-Token": emu.issue_token()},
            timeout=5,
        )
        assert 200 == reply.status_code, reply.text
        assert 0 == reply.json()["failed_record_count"]
    assert before + 1 == len(emu.records(STREAM))


def status_of(reply: bytes) -> int:
    first = reply.split(b"\r\n", 1)[0].split()
    return int(first[1]) if len(first) > 1 and first[1].isdigit() else 0


header_names = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=":"),
    min_size=1,
    max_size=30,
)
header_values = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=200
).map(lambda v: v.encode("latin-1"))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=20,
)
record_shapes = st.fixed_dictionaries(
    {},
    optional={
        "data": json_values | st.just("b2s=") | st.just("not base64!"),
        "partition_key": json_values,
        "partition_id": json_values | st.sampled_from(["0", "1", "7", "shardId-0000000001", "-1"]),
        "explicit_hash_key": json_values | st.just("99999999999999999999999"),
        "timestamp": json_values,
    },
)
put_bodies = st.fixed_dictionaries(
    {},
    optional={
        "stream_name": json_values | st.just(STREAM) | st.just("no-such-stream"),
        "stream_id": json_values,
        "records": st.lists(record_shapes | json_values, max_size=5) | json_values,
    },
)


class TestEmulatorRobustness:
    @FUZZ_SETTINGS
    @given(payload=st.binary(max_size=3000))
    def test_raw_garbage(self, fuzz_emulator, payload):
        """Arbitrary bytes on a connection never stop the emulator from serving the next request."""
        send_raw(fuzz_emulator, payload)
        assert_emulator_works(fuzz_emulator)

    @FUZZ_SETTINGS
    @given(
        method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
        path=st.sampled_from(
            [
                "/v2/{pid}/records",
                "/v2/{pid}/records/",
                "/v2/{pid}/cursors",
                "/v2/{pid}/streams",
                "/v2/{pid}/streams/scratch-stream",
                "/v3/auth/tokens",
                "/v2/other/records",
                "/",
                "/%ff%00",
            ]
        ),
        headers=st.lists(st.tuples(header_names, header_values), max_size=8),
        body=st.binary(max_size=2000),
        auth=st.booleans(),
    )
    def test_arbitrary_headers_and_bodies(self, fuzz_emulator, method, path, headers, body, auth):
        """Arbitrary headers and bodies never get a 500 and leave the emulator working."""
        emu = fuzz_emulator
        lines: List[bytes] = [f"{method} {path.format(pid=emu.project_id)} HTTP/1.1".encode()]
        lines.append(b"Host: 127.0.0.1")
        if auth:
            lines.append(b"X-Auth-Token: " + emu.issue_token().encode())
        lines.extend(name.encode() + b": " + value for name, value in headers)
        lines.append(b"Content-Length: %d" % len(body))
        lines.append(b"Connection: close")
        reply = send_raw(emu, b"\r\n".join(lines) + b"\r\n\r\n" + body)
        assert 500 != status_of(reply), reply[:300]
        assert_emulator_works(emu)

    @FUZZ_SETTINGS
    @given(body=put_bodies, content_type=st.sampled_from(["application/json", "text/plain", ""]))
    def test_malformed_put_records(self, fuzz_emulator, body, content_type):
        """PutRecords with any JSON shape is answered with 200 or a 4xx error, never a 500."""
        emu = fuzz_emulator
        raw = json.dumps(body).encode()
        headers: List[Tuple[str, str]] = [("X-Auth-Token", emu.issue_token())]
        if content_type:
            headers.append(("Content-Type", content_type))
        with requests.Session() as session:
            reply = session.post(
                f"{emu.url}/v2/{emu.project_id}/records", data=raw, headers=dict(headers), timeout=5
            )
            assert reply.status_code == 200 or 400 <= reply.status_code < 500, reply.text
        assert_emulator_works(emu)


class Hostile:
    """An object every conversion of which raises."""

    def __str__(self) -> str:
        raise RuntimeError("str() refused")

    def __repr__(self) -> str:
        raise RuntimeError("repr() refused")

    def __format__(self, spec: str) -> str:
        raise RuntimeError("format() refused")


class WrongStr:
    """An object whose __str__ returns something that is not a str."""

    def __str__(self) -> str:
        return 42  # type: ignore[return-value]  # deliberately broken

    def __repr__(self) -> str:
        return b"bytes"  # type: ignore[return-value]  # deliberately broken


class HostileError(Exception):
    def __str__(self) -> str:
        raise ValueError("an exception whose str() raises")


class RecordingHandler(DISHandler):
    """A DISHandler that records handleError calls instead of printing them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.errors: List[str] = []

    def handleError(self, record: logging.LogRecord) -> None:
        self.errors.append(repr(sys.exc_info()[1]))


any_text = st.text(alphabet=st.characters(blacklist_categories=()), max_size=200)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | any_text
    | st.binary(max_size=100)
    | st.builds(Hostile)
    | st.builds(WrongStr)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(any_text | st.integers(), children, max_size=4)
    ),
    max_leaves=10,
)
formats = st.sampled_from(["%s", "%s %s", "%d", "%(name)s", "%", "%z", "%.3f %r", "{} {}", ""])
messages = any_text | formats | st.builds(Hostile) | st.builds(WrongStr) | st.integers()
RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
extra_keys = any_text.filter(lambda k: k not in RESERVED)


def make_exception(kind: str, message: str) -> Optional[BaseException]:
    if kind == "none":
        return None
    error: BaseException
    if kind == "hostile":
        error = HostileError()
    elif kind == "chained":
        try:
            raise KeyError(message)
        except KeyError as inner:
            error = RuntimeError(message)
            error.__cause__ = inner
    else:
        error = ValueError(message)
    try:
        raise error
    except Exception as caught:  # noqa: BLE001 - any exception will do: we want its traceback
        return caught


@st.composite
def hostile_records(draw: st.DrawFn) -> logging.LogRecord:
    msg = draw(messages)
    args: Any = draw(st.none() | st.tuples() | st.lists(values, max_size=4).map(tuple))
    if draw(st.booleans()):
        args = (draw(st.dictionaries(any_text, values, max_size=3)),)
    extra: Dict[str, Any] = draw(st.dictionaries(extra_keys, values, max_size=4))
    exc = make_exception(
        draw(st.sampled_from(["none", "plain", "hostile", "chained"])), draw(any_text)
    )
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    level = draw(st.integers(min_value=0, max_value=60))
    name = draw(st.sampled_from(["app", "app.sub", "", "x" * 300]))
    record = logging.getLogger(name or None).makeRecord(
        name or "root",
        level,
        "fuzz.py",
        1,
        msg,
        args,
        exc_info,
        extra=extra,
    )
    if draw(st.booleans()):
        record.stack_info = draw(any_text)
    return record


class TestHostileRecords:
    def test_emit_never_raises_and_flusher_survives(self, fuzz_emulator):
        """Arbitrary messages, args, extras and exceptions never raise and never stop delivery."""
        emu = fuzz_emulator
        handler = RecordingHandler(
            stream_name=STREAM,
            endpoint=emu.url,
            project_id=emu.project_id,
            ak=emu.ak,
            sk=emu.sk,
            flush_interval=0.05,
            max_record_bytes=4096,
        )
        handled: List[int] = []
        try:

            @settings(max_examples=150, deadline=None)
            @given(record=hostile_records())
            def emit_one(record: logging.LogRecord) -> None:
                handler.handle(record)
                handled.append(1)

            emit_one()
            handler.handle(
                logging.makeLogRecord(
                    {"name": "app", "msg": "canary after the fuzz", "levelno": 20}
                )
            )
            assert handler.flush(timeout=20)
            stats = handler.stats
            assert [] == handler.errors
            assert len(handled) + 1 == stats.emitted
            assert stats.emitted == stats.sent + stats.dropped + stats.failed
            assert any(b"canary after the fuzz" in r.data for r in emu.records(STREAM))
        finally:
            handler.close()

    @pytest.mark.parametrize(("oversize", "stored"), [("truncate", 1), ("drop", 0)])
    def test_huge_record(self, fuzz_emulator, oversize, stored):
        """A record far above max_record_bytes is truncated or dropped per policy, and counted."""
        emu = fuzz_emulator
        before = len(emu.records(STREAM))
        handler = DISHandler(
            stream_name=STREAM,
            endpoint=emu.url,
            project_id=emu.project_id,
            ak=emu.ak,
            sk=emu.sk,
            flush_interval=0.05,
            max_record_bytes=10_000,
            oversize=oversize,
        )
        try:
            handler.handle(
                logging.makeLogRecord(
                    {"name": "app", "levelno": 20, "msg": "\udcff" + "x" * 3_000_000}
                )
            )
            # flush() is True only when nothing was lost: the dropped record makes it False.
            assert bool(stored) == handler.flush(timeout=20)
            new = emu.records(STREAM)[before:]
            assert stored == len(new)
            assert all(len(r.data) <= 10_000 for r in new)
            assert (1, stored, 1 - stored) == (
                handler.stats.emitted,
                handler.stats.sent,
                handler.stats.dropped,
            )
        finally:
            handler.close()
