"""Tests for the deferred path: capture on the caller, serialize on the flusher, same bytes."""

from __future__ import annotations

import copy
import datetime as dt
import gc
import json
import logging
import sys
import threading
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dis_logging import serializer
from dis_logging.buffer import RecordBuffer, payload_size
from dis_logging.emulator import DISEmulator
from dis_logging.formatting import (
    CAPTURED_RECORD_OVERHEAD,
    DeferredEncoder,
    JSONFormatter,
    add_caller_fields_hook,
)
from dis_logging.handler import DISHandler
from dis_logging.serializer import orjson_dumps, serialize_payloads

needs_orjson = pytest.mark.skipif(not serializer.HAS_ORJSON, reason="orjson not installed")

FAST = {"flush_interval": 0.05, "initial_backoff": 0.01, "max_backoff": 0.2, "close_timeout": 5.0}
_PLAIN_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


class Unprintable:
    """An object whose str() raises (its repr is kept printable for hypothesis reports)."""

    def __str__(self) -> str:
        raise RuntimeError("str fails")

    def __repr__(self) -> str:
        return "Unprintable()"


class CallerJSONFormatter(JSONFormatter):
    """A JSONFormatter subclass that overrides fields(): the handler formats it on the caller."""

    def fields(self, record: logging.LogRecord) -> Dict[str, Any]:
        return super().fields(record)


@pytest.fixture(autouse=True)
def _orjson_restored() -> Iterator[None]:
    old = serializer.HAS_ORJSON
    yield
    serializer._set_orjson(old)


_scalars = st.one_of(
    st.text(max_size=40),
    st.integers(),
    st.integers(min_value=2**63, max_value=2**70),
    st.floats(),
    st.booleans(),
    st.none(),
    st.datetimes(),
    st.binary(max_size=12),
    st.builds(Unprintable),
)
#: What JSON encodes natively (integers within what orjson takes).
_json_scalars = st.one_of(
    st.text(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner),
        st.dictionaries(st.text(max_size=5), inner, max_size=3),
        st.dictionaries(st.integers(), inner, max_size=2),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=6,
)
_extra_names = st.text(alphabet="abcxyz_", min_size=1, max_size=6).filter(
    lambda name: name not in _PLAIN_ATTRIBUTES
)
_messages = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(max_codepoint=0x40), max_size=200),  # control characters
    st.just("%s and %d"),
)
_args = st.one_of(
    st.just(()),
    st.tuples(st.text(max_size=8)),
    st.tuples(st.text(), st.integers()),
    st.tuples(st.floats(), st.booleans(), st.none()),
    st.tuples(st.integers(min_value=2**63, max_value=2**70), st.lists(st.integers(), max_size=2)),
)
# %-arguments a capture may keep for the flusher to format (immutable), and format strings for them.
_immutable_args = st.tuples(
    *[st.one_of(st.text(max_size=20), st.integers(), st.floats(), st.booleans(), st.none())] * 2
)
_format_strings = st.one_of(
    st.sampled_from(["%s %s", "%d and %r", "%x|%.3f", "%c%s", "%s", "%s %s %s", "%(k)s %s", "%"]),
    st.text(alphabet="%sdrxf .5-", max_size=12),
)
_formatters = st.builds(
    lambda rename, static, ascii_only: (rename, static, ascii_only),
    st.sampled_from([{}, {"timestamp": "@timestamp", "exc_info": None}, {"message": "msg"}]),
    st.sampled_from([{}, {"service": "api", "ratio": 0.25}, {"env": {"tags": [1, "a"]}}]),
    st.booleans(),
)


def _record(
    msg: object, args: Any, extra: Dict[str, Any], exc: bool, stack: Optional[str]
) -> logging.LogRecord:
    record = logging.LogRecord("app.module", logging.INFO, "/src/app.py", 12, msg, args, None)
    record.created, record.msecs = 1_700_000_000.25, 250.0
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            record.exc_info = sys.exc_info()
    record.stack_info = stack
    record.__dict__.update(extra)
    return record


def _mutate(extra: Dict[str, Any]) -> None:
    """Change every mutable extra value in place, as an application might after logging."""
    for value in extra.values():
        if isinstance(value, list):
            value.append("changed")
        elif isinstance(value, dict):
            value["changed"] = True


class TestDeferredEqualsCallerPath:
    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        msg=_messages,
        args=_args,
        extra=st.dictionaries(_extra_names, _values, max_size=4),
        exc=st.booleans(),
        stack=st.one_of(st.none(), st.text(max_size=60)),
        options=_formatters,
        max_bytes=st.integers(256, 3000),
        truncate=st.booleans(),
        use_orjson=st.booleans(),
    )
    def test_serialized_later_on_another_thread_equals_format_bytes_now(
        self, msg, args, extra, exc, stack, options, max_bytes, truncate, use_orjson
    ):
        """A record captured, mutated, serialized on another thread gives format_bytes' bytes."""
        serializer._set_orjson(use_orjson)
        rename, static, ascii_only = options
        formatter = JSONFormatter(
            rename_fields=rename, static_fields=static, ensure_ascii=ascii_only
        )
        expected = CallerJSONFormatter(
            rename_fields=rename, static_fields=static, ensure_ascii=ascii_only
        ).format_bytes(_record(msg, args, extra, exc, stack), max_bytes, truncate)
        encoder = DeferredEncoder(formatter, max_bytes, truncate)
        captured = formatter.capture(_record(msg, args, extra, exc, stack), encoder)
        _mutate(extra)
        shipped: List[Optional[bytes]] = []
        thread = threading.Thread(target=lambda: shipped.extend(serialize_payloads([captured])))
        thread.start()
        thread.join()
        assert shipped == [expected]

    @needs_orjson
    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        msg=_messages,
        args=_args,
        extra=st.dictionaries(_extra_names, _values, max_size=4),
        exc=st.booleans(),
        options=_formatters,
        max_bytes=st.integers(256, 3000),
    )
    def test_orjson_and_pure_python_give_identical_bytes(
        self, msg, args, extra, exc, options, max_bytes
    ):
        """The orjson path and the json-module path give identical payloads and format() text."""
        rename, static, ascii_only = options
        out: List[object] = []
        for use_orjson in (True, False):
            serializer._set_orjson(use_orjson)
            formatter = JSONFormatter(
                rename_fields=rename, static_fields=static, ensure_ascii=ascii_only
            )
            encoder = DeferredEncoder(formatter, max_bytes, True)
            out.append(encoder(formatter.capture(_record(msg, args, extra, exc, None), encoder)))
            out.append(formatter.format(_record(msg, args, extra, exc, None)))
        assert out[:2] == out[2:]

    @pytest.mark.parametrize(
        ("field", "other", "key"),
        [
            ("levelno", logging.WARNING, "level"),
            ("name", "app.db", "logger"),
            ("module", "jobs", "module"),
            ("funcName", "run", "funcName"),
            ("lineno", 300, "lineno"),
            ("process", 1, "process"),
            ("processName", "Worker-1", "processName"),
            ("threadName", "worker-1", "threadName"),
        ],
    )
    def test_records_from_neighbouring_call_sites_keep_their_own_fields(self, field, other, key):
        """Records alternating between two call sites that differ in one field only are each
        written with their own fields (the flusher reuses the previous record's site text)."""
        formatter = JSONFormatter()
        encoder = DeferredEncoder(formatter, 5_000, True)
        expected: List[Optional[bytes]] = []
        captured = []
        for i in range(6):
            record = logging.LogRecord("app", logging.INFO, "/src/app.py", 12, "n %s", (i,), None)
            record.funcName, record.created, record.msecs = "handle", 1_700_000_000.25, 250.0
            if i % 3:
                setattr(record, field, other)
                if field == "levelno":
                    record.levelname = logging.getLevelName(other)
            captured.append(formatter.capture(record, encoder))
            expected.append(formatter.format_bytes(record, 5_000, True))
        shipped = serialize_payloads(captured)
        assert shipped == expected
        assert len({json.loads(data or b"")[key] for data in shipped}) == 2

    @settings(max_examples=200, deadline=None)
    @given(
        sites=st.lists(
            st.tuples(
                st.sampled_from([logging.INFO, logging.WARNING]),
                st.sampled_from(["app", "app.db", "app\u00e9"]),
                st.sampled_from([12, 12, 300, True]),  # True: a bool line is no plain record
                st.sampled_from(["MainThread", "worker-1"]),
                st.sampled_from([(), ("u1", 7), ([1],)]),
                st.sampled_from(["handle", "run", None]),  # None: no plain record either
            ),
            min_size=1,
            max_size=30,
        ),
        options=_formatters,
    )
    def test_a_batch_of_mixed_call_sites_equals_each_record_formatted_now(self, sites, options):
        """One serialize step over records from changing call sites (the flusher's batch)
        gives, record by record, what format_bytes gave at call time."""
        rename, static, ascii_only = options
        formatter = JSONFormatter(
            rename_fields=rename, static_fields=static, ensure_ascii=ascii_only
        )
        encoder = DeferredEncoder(formatter, 5_000, True)
        expected: List[Optional[bytes]] = []
        captured = []
        for level, name, line, thread, args, function in sites:
            record = logging.LogRecord(
                name, level, "/src/app.py", line, "user %s id %s", args, None
            )
            if not args:
                record.msg = "no arguments"
            record.created, record.msecs = 1_700_000_000.25, 250.0
            record.threadName, record.funcName = thread, function
            expected.append(formatter.format_bytes(record, 5_000, True))
            captured.append(formatter.capture(record, encoder))
        assert serialize_payloads(captured) == expected

    @needs_orjson
    @settings(max_examples=300, deadline=None)
    @given(
        fields=st.dictionaries(
            st.text(max_size=8),
            _json_scalars,
            max_size=8,
        )
    )
    def test_orjson_dumps_matches_json_dumps_or_declines(self, fields):
        """orjson_dumps gives json.dumps' exact bytes, or None for lone surrogates."""
        serializer._set_orjson(True)
        texts = [*fields, *(v for v in fields.values() if isinstance(v, str))]
        has_surrogate = any(0xD800 <= ord(c) <= 0xDFFF for text in texts for c in text)
        data = orjson_dumps(fields)
        if has_surrogate:
            assert data is None
        else:
            reference = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
            assert data == reference.encode("utf-8")

    def test_orjson_switched_off_declines(self):
        """With the orjson path off, orjson_dumps declines and the json module encodes."""
        serializer._set_orjson(False)
        assert orjson_dumps({"a": 1}) is None


class TestCapture:
    def test_mutable_extra_values_are_taken_at_call_time(self):
        """A list or dict in extra is shipped as it was when logged, not as it is when sent."""
        formatter = JSONFormatter()
        tags: List[object] = ["a"]
        meta = {"k": 1}
        when = dt.datetime(2024, 1, 2, 3, 4, 5)
        record = _record("hi", (), {"tags": tags, "meta": meta, "when": when}, False, None)
        encoder = DeferredEncoder(formatter, 10_000, True)
        captured = formatter.capture(record, encoder)
        tags.append("b")
        meta["k"] = 2
        out = json.loads(encoder(captured) or b"")
        assert (out["tags"], out["meta"], out["when"]) == (["a"], {"k": 1}, "2024-01-02T03:04:05")

    def test_message_arguments_are_resolved_at_call_time(self):
        """%-arguments are formatted when logging, so a later change to them is not shipped."""
        formatter = JSONFormatter()
        items = [1]
        encoder = DeferredEncoder(formatter, 10_000, True)
        captured = formatter.capture(_record("items %s", (items,), {}, False, None), encoder)
        items.append(2)
        assert json.loads(encoder(captured) or b"")["message"] == "items [1]"

    def test_capture_holds_no_reference_to_the_record_or_traceback(self):
        """A captured record keeps neither the LogRecord nor its exc_info."""
        record = _record("x", (), {}, True, None)
        captured = JSONFormatter().capture(record)
        assert record not in captured
        assert record.exc_info not in captured
        assert all(not isinstance(value, (logging.LogRecord, tuple)) for value in captured[2:])

    def test_size_estimate_counts_text_and_overhead(self):
        """The estimate covers the message, the traceback and extra values, plus the overhead."""
        record = _record("m" * 1000, (), {"note": "n" * 500}, True, None)
        captured = JSONFormatter().capture(record)
        assert captured[1] >= CAPTURED_RECORD_OVERHEAD + 1000 + 500 + len(record.exc_text or "")

    @settings(max_examples=300, deadline=None)
    @given(msg=_format_strings, args=_immutable_args)
    def test_immutable_arguments_give_the_message_of_call_time(self, msg, args):
        """Arguments a capture keeps for the flusher give exactly the text (or error) of now."""
        try:
            message, error = msg % args, None
        except Exception as exc:  # noqa: BLE001 - any formatting error is the expected outcome
            message, error = f"{msg} % {args}", type(exc).__name__
        formatter = JSONFormatter()
        encoder = DeferredEncoder(formatter, 100_000, True)
        captured = formatter.capture(_record(msg, args, {}, False, None), encoder)
        shipped: List[Optional[bytes]] = []
        thread = threading.Thread(target=lambda: shipped.extend(serialize_payloads([captured])))
        thread.start()
        thread.join()
        out = json.loads(shipped[0] or b"")
        assert message == out["message"]
        assert error == (out["format_error"].split(":")[0] if "format_error" in out else None)
        assert captured[1] >= CAPTURED_RECORD_OVERHEAD + len(msg)

    def test_kept_arguments_count_towards_the_size(self):
        """A long str argument kept for the flusher counts in the size estimate."""
        captured = JSONFormatter().capture(
            _record("user %s id %d", ("u" * 5000, 7), {}, False, None)
        )
        assert captured[1] >= CAPTURED_RECORD_OVERHEAD + 5000
        plain = JSONFormatter().capture(_record("user %s", (["u" * 5000],), {}, False, None))
        assert plain[1] >= CAPTURED_RECORD_OVERHEAD + 5000

    def test_caller_fields_hook_is_read_on_the_caller_thread(self):
        """A caller-fields hook runs at capture time and its fields precede the extra fields."""
        local = threading.local()
        local.span = "span-1"
        formatter = JSONFormatter()
        from dis_logging import formatting

        saved = formatting._CALLER_FIELDS_HOOKS[:]
        add_caller_fields_hook(lambda record: {"span": getattr(local, "span", None)})
        try:
            encoder = DeferredEncoder(formatter, 10_000, True)
            captured = formatter.capture(_record("x", (), {"user": "u"}, False, None), encoder)
            shipped: List[Optional[bytes]] = []
            thread = threading.Thread(target=lambda: shipped.append(encoder(captured)))
            thread.start()
            thread.join()
            out = json.loads(shipped[0] or b"")
            assert out["span"] == "span-1"
            assert list(out)[-2:] == ["span", "user"]
        finally:
            formatting._CALLER_FIELDS_HOOKS[:] = saved  # the OpenTelemetry lookup stays


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[DISEmulator]:
    emu = DISEmulator()
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


def _handler(emu: DISEmulator, stream: str, **settings_: Any) -> DISHandler:
    return DISHandler(
        stream_name=stream,
        endpoint=emu.url,
        project_id=emu.project_id,
        ak=emu.ak,
        sk=emu.sk,
        **{**FAST, **settings_},
    )


_counter = iter(range(10**9))


class TestShippedThroughTheHandler:
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        batch=st.lists(
            st.tuples(
                _messages, _args, st.dictionaries(_extra_names, _values, max_size=3), st.booleans()
            ),
            min_size=1,
            max_size=6,
        ),
        options=_formatters,
        max_record_bytes=st.sampled_from([2400, 6000, 1_000_000]),
    )
    def test_deferred_handler_stores_what_a_caller_thread_handler_stores(
        self, module_emulator, batch, options, max_record_bytes
    ):
        """Two handlers, one capturing and one formatting on the caller, store the same bytes."""
        emu = module_emulator
        rename, static, ascii_only = options
        shipped: List[List[bytes]] = []
        kinds: Tuple[type, ...] = (JSONFormatter, CallerJSONFormatter)
        for kind in kinds:
            stream = f"prop-{next(_counter)}"
            emu.create_stream(stream, partitions=1)
            formatter = kind(rename_fields=rename, static_fields=static, ensure_ascii=ascii_only)
            handler = _handler(emu, stream, max_record_bytes=max_record_bytes)
            handler.setFormatter(formatter)
            try:
                extras = []
                for msg, args, extra, exc in copy.deepcopy(batch):
                    handler.handle(_record(msg, args, extra, exc, None))
                    extras.append(extra)
                for extra in extras:
                    _mutate(extra)  # after emit: must not change what is shipped
                assert handler.flush(timeout=10.0)
            finally:
                handler.close()
            shipped.append([r.data for r in emu.records(stream)])
            emu.delete_stream(stream)
        assert shipped[0] == shipped[1]
        assert len(shipped[0]) == len(batch)


class TestFlusherSerializeStep:
    def test_oversize_found_at_serialize_time_is_dropped_and_counted(self, emulator, stream):
        """A record whose JSON outgrows max_record_bytes only when serialized counts as oversize."""
        handler = _handler(emulator, stream, max_record_bytes=6000, oversize="drop")
        handler.setFormatter(JSONFormatter(static_fields={"blob": "b" * 7000}))
        try:
            log = logging.getLogger(f"ser.{id(handler)}")
            log.handlers[:] = [handler]
            log.propagate = False
            log.setLevel(logging.DEBUG)
            log.warning("small")
            handler.flush(timeout=5.0)
            stats = handler.stats
            assert stats.drops.get("oversize") == 1
            assert stats.emitted == stats.sent + stats.dropped + stats.failed + stats.queued
        finally:
            handler.close()

    def test_oversize_found_at_serialize_time_is_truncated(self, emulator, stream):
        """With oversize="truncate" such a record is cut to max_record_bytes and still sent."""
        handler = _handler(emulator, stream, max_record_bytes=6000)
        handler.setFormatter(JSONFormatter(static_fields={"blob": "b" * 7000}))
        try:
            log = logging.getLogger(f"ser.{id(handler)}")
            log.handlers[:] = [handler]
            log.propagate = False
            log.setLevel(logging.DEBUG)
            log.warning("small")
            assert handler.flush(timeout=5.0)
            (stored,) = emulator.records(stream)
            assert len(stored.data) <= 6000
            assert json.loads(stored.data)["message"] == "small"
        finally:
            handler.close()

    def test_batches_stay_within_max_batch_bytes_when_estimates_are_low(self, emulator, stream):
        """Records larger than estimated are moved to the next batch; all arrive, in order."""
        handler = _handler(
            emulator, stream, max_record_bytes=4000, max_batch_bytes=10_000, partition_key="k"
        )
        handler.setFormatter(JSONFormatter(static_fields={"blob": "b" * 3000}))
        emulator.clear_requests()
        try:
            log = logging.getLogger(f"ser.{id(handler)}")
            log.handlers[:] = [handler]
            log.propagate = False
            log.setLevel(logging.DEBUG)
            for i in range(20):
                log.info("record %d", i)
            assert handler.flush(timeout=10.0)
            stored = emulator.records(stream)
            assert [json.loads(r.data)["message"] for r in stored] == [
                f"record {i}" for i in range(20)
            ]
            puts = [r for r in emulator.requests if r.operation == "PutRecords"]
            assert puts
            assert all(r.data_bytes <= 10_000 for r in puts)
        finally:
            handler.close()

    def test_queued_bytes_count_captured_records(self):
        """max_queue_bytes bounds captured records by their estimated size."""
        buffer = RecordBuffer(1000, 20_000, overflow="drop_newest")
        formatter = JSONFormatter()
        captured = [formatter.capture(_record("x" * 100, (), {}, False, None)) for _ in range(100)]
        for item in captured:
            buffer.put(item, None, logging.INFO)
        counts = buffer.snapshot()
        fits = 20_000 // payload_size(captured[0])
        assert payload_size(captured[0]) == CAPTURED_RECORD_OVERHEAD + 100
        assert (counts.queued, counts.queued_bytes) == (fits, fits * payload_size(captured[0]))
        assert counts.drops == {"overflow": 100 - fits}

    def test_queued_captures_leave_the_collectors_view(self):
        """Queued captures stop being tracked after two young collections (kept %-arguments
        included), so a long queue is never walked by the full collections."""
        buffer = RecordBuffer(1000, 10_000_000)
        formatter = JSONFormatter()
        enabled = gc.isenabled()
        gc.disable()  # an automatic collection amid the puts would promote some records early
        try:
            for i in range(50):
                kept = _record("user %s id %d ok %s", (f"u{i}", i, True), {}, False, None)
                buffer.put(formatter.capture(kept), None, logging.INFO)
                plain = _record("plain", (), {}, False, None)
                buffer.put(formatter.capture(plain), None, logging.INFO)
            gc.collect(0)
            gc.collect(1)
        finally:
            if enabled:
                gc.enable()
        batch = buffer.take(100, 100_000_000)
        assert batch is not None
        assert len(batch.items) == 100
        assert [gc.is_tracked(item) or gc.is_tracked(item[1]) for item in batch.items] == [
            False
        ] * 100
        texts = [
            json.loads(data or b"")["message"]
            for data in serialize_payloads([item[1] for item in batch.items[:2]])
        ]
        assert texts == ["user u0 id 0 ok True", "plain"]

    def test_the_serialize_step_stops_at_its_byte_budget(self):
        """Records whose %-width makes their text far larger than their capture's estimate are
        serialized only up to the batch limit; the rest go back to the buffer still captured."""
        buffer = RecordBuffer(1000, 100_000_000)
        formatter = JSONFormatter()
        encoder = DeferredEncoder(formatter, 1_000_000, True)
        for i in range(50):
            wide = _record("%-20000s|", (f"r{i}",), {}, False, None)  # 20 KB of text, kept
            buffer.put(formatter.capture(wide, encoder), None, logging.INFO)
        batch = buffer.take(500, 100_000)
        assert batch is not None
        assert len(batch.items) == 50  # the estimates fit: about 700 bytes each
        payloads = serialize_payloads([item[1] for item in batch.items], 100_000)
        assert len(payloads) == 5  # the fifth one takes the total past the budget
        assert sum(len(data or b"") for data in payloads) < 100_000 + 21_000
        resolved = buffer.resolve(batch, payloads, 100_000)
        assert resolved is not None
        assert len(resolved.items) == 4
        counts = buffer.snapshot()
        assert (counts.queued, counts.in_flight) == (50, 4)
        rest = buffer.take(500, 100_000_000)
        assert rest is not None
        assert [item[1].__class__ for item in rest.items] == [bytes] + [tuple] * 45
        messages = [json.loads(data or b"")["message"] for data in payloads]
        assert messages == [f"{f'r{i}':<20000}|" for i in range(5)]

    def test_a_mixed_batch_keeps_its_order_up_to_the_budget(self):
        """Bytes and records captured by two formatters, interleaved: each payload where it was,
        and the work stops after the one that takes the total past the budget."""
        first, second = JSONFormatter(), JSONFormatter(static_fields={"f": 2})
        encoders = [DeferredEncoder(first, 100_000, True), DeferredEncoder(second, 100_000, True)]
        payloads: List[Any] = []
        for i in range(8):
            if i % 3 == 2:
                payloads.append(b"b%d" % i + b" " * 9_000)
            else:
                encoder = encoders[i % 2]
                wide = _record("%-9000s|", (f"r{i}",), {}, False, None)
                payloads.append(encoder.formatter.capture(wide, encoder))
        whole = serialize_payloads(payloads)
        assert len(whole) == 8
        captured = [d or b"" for d in whole if not (d or b"").startswith(b"b")]
        assert [json.loads(d).get("f") for d in captured] == [None, 2, 2, None, None, 2]
        assert [(whole[2] or b"")[:2], (whole[5] or b"")[:2]] == [b"b2", b"b5"]
        assert serialize_payloads(payloads, 30_000) == whole[:4]  # 4 of about 9 KB: past 30 KB

    def test_wide_records_are_sent_in_batches_within_the_limit(self, emulator, stream):
        """Records that outgrow their estimate are all delivered, no request over the limit."""
        handler = _handler(emulator, stream, max_batch_bytes=100_000, flush_interval=60.0)
        try:
            log = logging.getLogger(f"wide.{id(handler)}")
            log.handlers[:] = [handler]
            log.propagate = False
            for i in range(30):
                log.warning("%-20000s|", f"r{i}")
            assert handler.flush(timeout=10.0)
        finally:
            handler.close()
        shipped = [json.loads(r.data)["message"] for r in emulator.records(stream)]
        assert sorted(shipped) == sorted(f"{f'r{i}':<20000}|" for i in range(30))
        puts = [r for r in emulator.requests if r.operation == "PutRecords"]
        assert len(puts) >= 6
        assert all(r.data_bytes <= 100_000 for r in puts)

    def test_resolve_keeps_the_batch_budget_and_counts_oversize(self):
        """resolve() drops None payloads as oversize and puts records over budget back."""
        buffer = RecordBuffer(1000, 1_000_000)
        formatter = JSONFormatter()
        for i in range(4):
            buffer.put(formatter.capture(_record(f"r{i}", (), {}, False, None)), None, logging.INFO)
        batch = buffer.take(10, 100_000)
        assert batch is not None
        assert not batch.is_serialized
        resolved = buffer.resolve(batch, [b"a" * 300, None, b"c" * 300, b"d" * 300], 700)
        assert resolved is not None
        assert resolved.is_serialized
        assert [item[1] for item in resolved.items] == [b"a" * 300, b"c" * 300]
        counts = buffer.snapshot()
        assert (counts.queued, counts.in_flight, counts.drops) == (3, 2, {"oversize": 1})
        assert counts.queued_bytes == 300
        buffer.settle(resolved, sent=resolved.items)
        rest = buffer.take(10, 100_000)
        assert rest is not None
        assert [item[1] for item in rest.items] == [b"d" * 300]


_names = st.one_of(
    st.sampled_from(["app", "INFO", "MainThread", "worker"]),
    st.text(max_size=12),  # quotes, backslashes, control characters, lone surrogates, %
)


class TestPlainRecordTemplate:
    """serialize_many writes plain records from a template; the bytes must not change."""

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        msg=st.one_of(_messages, _format_strings),
        args=st.one_of(st.just(()), _immutable_args, _args),
        names=st.tuples(_names, _names, _names, _names, _names, _names),
        line=st.one_of(st.integers(-5, 10**6), st.booleans(), st.none()),
        process=st.one_of(st.integers(0, 2**40), st.none()),
        msecs=st.sampled_from([0.0, 999.9999, 250.0, -1.0, 1000.0]),
        rename=st.sampled_from(
            [{}, {"timestamp": "@timestamp"}, {"message": "m%s"}, {"level": None}]
        ),
        static=st.sampled_from(
            [{}, {"service": "api", "n": 3, "on": True, "none": None}, {"pct": "100%s"}]
        ),
        ascii_only=st.booleans(),
        use_orjson=st.booleans(),
        max_bytes=st.sampled_from([300, 100_000]),
    )
    def test_template_bytes_equal_the_general_path(
        self,
        msg,
        args,
        names,
        line,
        process,
        msecs,
        rename,
        static,
        ascii_only,
        use_orjson,
        max_bytes,
    ):
        """The general path (a dict, then orjson or json) is what format_bytes ships."""
        serializer._set_orjson(use_orjson)
        formatter = JSONFormatter(
            rename_fields=rename, static_fields=static, ensure_ascii=ascii_only
        )
        level, logger, module, function, thread_name, process_name = names
        record = logging.LogRecord(
            logger, logging.INFO, "/src/app.py", 0, msg, args, None, function
        )
        record.levelname, record.module, record.threadName = level, module, thread_name
        record.processName, record.lineno, record.process = process_name, line, process
        record.created, record.msecs = 1_700_000_000.25, msecs
        captured = formatter.capture(record)
        expected = formatter.serialize(captured, max_bytes)
        batch = formatter.serialize_many([captured, captured], max_bytes)  # the second: cached
        assert batch == [expected, expected]

    def test_a_cached_call_site_is_not_mistaken_for_an_equal_one(self):
        """True == 1 and 1.0 == 1: a record with such a line number is not written from the text
        remembered for the int one."""
        formatter = JSONFormatter()
        shipped = []
        for line in (1, True, 1.0, 1):  # equal, and of one hash
            record = logging.LogRecord("app", logging.INFO, "/src/app.py", 0, "m", (), None, "f")
            record.__dict__["lineno"] = line  # any value a LogRecord may carry
            shipped.extend(formatter.serialize_many([formatter.capture(record)], 10_000))
        lines = [json.loads(data)["lineno"] for data in shipped if data is not None]
        assert [(1, int), (True, bool), (1.0, float), (1, int)] == [(v, type(v)) for v in lines]

    def test_the_template_is_used_for_the_default_setup_only_when_safe(self):
        """Clashing or omitted keys and float or nested static values keep the general path."""
        usable = [
            JSONFormatter()._plain is not None,
            JSONFormatter(static_fields={"service": "api", "n": 1})._plain is not None,
            JSONFormatter(rename_fields={"level": None})._plain is None,
            JSONFormatter(rename_fields={"exc_info": None})._plain is not None,
            JSONFormatter(rename_fields={"threadName": None})._plain is None,
            JSONFormatter(static_fields={"ratio": 0.5})._plain is None,
            JSONFormatter(static_fields={"level": "x"})._plain is None,
            JSONFormatter(static_fields={"tags": ["a"]})._plain is None,
        ]
        assert all(usable)


_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


class TestLoads:
    @settings(max_examples=300, deadline=None)
    @given(value=_json_values, use_orjson=st.booleans())
    def test_equals_json_loads(self, value, use_orjson):
        """Replies decode to what json.loads gives, with orjson or without it."""
        serializer._set_orjson(use_orjson)
        data = json.dumps(value).encode("utf-8")
        assert serializer.loads(data) == json.loads(data)

    @pytest.mark.parametrize("data", [b'{"a": NaN}', b'["\\ud800"]', b"[Infinity]"])
    def test_what_orjson_refuses_is_left_to_json(self, data):
        serializer._set_orjson(True)
        assert repr(serializer.loads(data)) == repr(json.loads(data))

    @needs_orjson
    def test_an_integer_beyond_64_bits_comes_back_a_float_with_orjson(self):
        """The documented difference; PutRecords replies carry such numbers only as strings."""
        serializer._set_orjson(True)
        assert [float(2**70)] == serializer.loads(b"[%d]" % 2**70)

    def test_not_json_raises_value_error(self):
        serializer._set_orjson(True)
        with pytest.raises(json.JSONDecodeError, match="Expecting value"):
            serializer.loads(b'{"records": [')
