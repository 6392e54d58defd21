"""Tests for OpenTelemetry trace correlation in JSONFormatter and DISProcessor (real SDK tracer)."""

from __future__ import annotations

import asyncio
import json
import logging
import logging.handlers
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import structlog
from opentelemetry.instrumentation.logging import LoggingInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, use_span

from dis_logging import _otel
from dis_logging.errors import ConfigError
from dis_logging.formatting import JSONFormatter
from dis_logging.handler import DISHandler
from dis_logging.structlog_processor import DISProcessor

tracer = TracerProvider().get_tracer("dis-logging-tests")


def ids_of(span):
    context = span.get_span_context()
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def formatted(record=None, **extra):
    if record is None:
        record = logging.LogRecord("test.otel", logging.INFO, __file__, 1, "msg", (), None)
        record.__dict__.update(extra)
    return json.loads(JSONFormatter().format(record))


def trace_keys(event):
    return {key: event[key] for key in ("trace_id", "span_id") if key in event}


class TestJSONFormatter:
    def test_no_keys_outside_a_span(self):
        """Outside a span the JSON has neither trace_id nor span_id."""
        assert {} == trace_keys(formatted())

    def test_ids_of_the_current_span(self):
        """Inside a span the JSON carries its trace id (32 hex) and span id (16 hex)."""
        with tracer.start_as_current_span("outer") as span:
            event = formatted()
        assert ids_of(span) == trace_keys(event)
        assert (32, 16) == (len(event["trace_id"]), len(event["span_id"]))

    def test_innermost_span_wins(self):
        """Nested spans share the trace id; the span id is the innermost one's."""
        with tracer.start_as_current_span("outer") as outer:
            with tracer.start_as_current_span("inner") as inner:
                event = formatted()
        assert ids_of(inner) == trace_keys(event)
        assert ids_of(outer)["trace_id"] == event["trace_id"]

    def test_invalid_span_adds_nothing(self):
        """A current span with an invalid (all-zero) context adds no keys."""
        invalid = NonRecordingSpan(SpanContext(0, 0, is_remote=False))
        with use_span(invalid):
            assert {} == trace_keys(formatted())

    def test_remote_parent_context(self):
        """A propagated (remote, non-recording) span context is reported as is."""
        remote = SpanContext(
            0xABCDEF0123456789ABCDEF0123456789, 0x0123456789ABCDEF, True, TraceFlags(1)
        )
        with use_span(NonRecordingSpan(remote)):
            event = formatted()
        assert {"trace_id": "abcdef0123456789abcdef0123456789", "span_id": "0123456789abcdef"} == (
            trace_keys(event)
        )

    def test_record_attributes_are_used(self):
        """Valid otelTraceID/otelSpanID attributes give the ids, lowercased, without a span."""
        event = formatted(
            otelTraceID="ABCDEF0123456789ABCDEF0123456789", otelSpanID="0123456789ABCDEF"
        )
        assert {"trace_id": "abcdef0123456789abcdef0123456789", "span_id": "0123456789abcdef"} == (
            trace_keys(event)
        )

    @pytest.mark.parametrize(
        ("trace_id", "span_id"),
        [("0", "0"), ("0" * 32, "0" * 16), ("xyz", "0123456789abcdef"), (None, "0123456789abcdef")],
    )
    def test_placeholder_attributes_add_nothing(self, trace_id, span_id):
        """The instrumentation's "0" placeholders and malformed ids add no trace keys."""
        assert {} == trace_keys(formatted(otelTraceID=trace_id, otelSpanID=span_id))

    def test_the_instrumentation_attributes_are_not_shipped_again(self):
        """The instrumentation's own attributes are not written as extra fields: its ids are
        trace_id/span_id already, and outside a span its placeholders added four fields of
        noise ("otelTraceID": "0", ...) to every record."""
        placeholders = {
            "otelTraceID": "0",
            "otelSpanID": "0",
            "otelTraceSampled": False,
            "otelServiceName": "svc",
        }
        event = formatted(**placeholders, order_id=7)
        assert ([], 7) == ([key for key in event if key.startswith("otel")], event["order_id"])

    def test_extra_fields_win(self):
        """An explicit trace_id extra field is kept over the span's."""
        with tracer.start_as_current_span("s"):
            event = formatted(trace_id="mine")
        assert "mine" == event["trace_id"]

    def test_trace_fields_can_be_renamed_or_left_out(self):
        """rename_fields renames trace_id/span_id (ECS's trace.id, Datadog's dd.*) or leaves them
        out, for span ids and an extra field of the same name alike."""
        renaming = JSONFormatter(rename_fields={"trace_id": "trace.id", "span_id": None})
        record = logging.LogRecord("test.otel", logging.INFO, __file__, 1, "msg", (), None)
        with tracer.start_as_current_span("s") as span:
            event = json.loads(renaming.format(record))
        own = logging.makeLogRecord({"msg": "m", "trace_id": "mine", "span_id": "x"})
        assert {"trace.id": ids_of(span)["trace_id"]} == {
            key: event[key] for key in ("trace.id", "trace_id", "span_id") if key in event
        }
        assert ("mine", False) == (
            json.loads(renaming.format(own))["trace.id"],
            "span_id" in json.loads(renaming.format(own)),
        )

    def test_a_trace_field_renamed_onto_another_field_is_refused(self):
        """Renaming trace_id onto a name another field is written under is a ConfigError."""
        with pytest.raises(ConfigError, match=r"rename_fields.*'message' and 'trace_id'"):
            JSONFormatter(rename_fields={"trace_id": "message"})

    def test_renamed_ids_reach_dis(self, emulator, stream, dis_handler):
        """A renamed trace id is what the handler ships, through the background serializer."""
        dis_handler.setFormatter(JSONFormatter(rename_fields={"trace_id": "traceId"}))
        logger = logging.getLogger("test.otel.renamed")
        logger.addHandler(dis_handler)
        try:
            with tracer.start_as_current_span("s") as span:
                logger.warning("inside")
            assert dis_handler.flush(10.0)
        finally:
            logger.removeHandler(dis_handler)
        [event] = stored(emulator, stream, 1)
        assert (ids_of(span)["trace_id"], False) == (event["traceId"], "trace_id" in event)

    def test_other_thread_sees_no_span(self):
        """A record formatted on a thread without the span gets no ids."""
        seen = []
        with tracer.start_as_current_span("s"):
            worker = threading.Thread(target=lambda: seen.append(formatted()))
            worker.start()
            worker.join(10)
        assert [{}] == [trace_keys(event) for event in seen]

    def test_asyncio_task_inherits_the_span(self):
        """A task created inside a span formats records with that span's ids."""

        async def log_later():
            await asyncio.sleep(0)
            return formatted()

        async def main():
            with tracer.start_as_current_span("request") as span:
                task = asyncio.ensure_future(log_later())
            return span, await task  # the task finishes after the span ended on this side

        span, event = asyncio.run(main())
        assert ids_of(span) == trace_keys(event)


@pytest.fixture
def dis_handler(emulator, stream):
    handler = DISHandler(
        stream_name=stream,
        endpoint=emulator.url,
        project_id=emulator.project_id,
        ak=emulator.ak,
        sk=emulator.sk,
        flush_interval=0.05,
    )
    yield handler
    handler.close()


def stored(emulator, stream, count):
    return [json.loads(r.data) for r in emulator.wait_for(stream, count, timeout=10.0)]


def test_handler_ships_ids_read_on_the_logging_thread(emulator, stream, dis_handler):
    """Records logged in a span reach DIS with its ids though the flusher thread sends them."""
    logger = logging.getLogger("test.otel.dis")
    logger.addHandler(dis_handler)
    try:
        with tracer.start_as_current_span("checkout") as span:
            logger.warning("inside")
        logger.warning("outside")
        assert dis_handler.flush(10.0)
    finally:
        logger.removeHandler(dis_handler)
    events = {e["message"]: e for e in stored(emulator, stream, 2)}
    assert ids_of(span) == trace_keys(events["inside"])
    assert {} == trace_keys(events["outside"])


def test_logging_instrumentation_through_a_queue_listener(emulator, stream, dis_handler):
    """With OpenTelemetry's logging instrumentation, ids survive a QueueHandler hand-off."""
    # set_logging_format turns the attributes on in every release (newer ones also accept
    # inject_trace_context); the basicConfig it calls is undone by the conftest's root restore.
    LoggingInstrumentor().instrument(
        set_logging_format=True,
        logging_format="%(message)s",
        inject_trace_context=True,
        enable_log_auto_instrumentation=False,
    )
    records: queue.Queue[logging.LogRecord] = queue.Queue()
    listener = logging.handlers.QueueListener(records, dis_handler)
    logger = logging.getLogger("test.otel.queue")
    queue_handler = logging.handlers.QueueHandler(records)
    logger.addHandler(queue_handler)
    listener.start()
    try:
        with tracer.start_as_current_span("job") as span:
            logger.warning("queued in a span")
        logger.warning("queued outside")
    finally:
        listener.stop()  # handles everything queued, on the listener's thread
        logger.removeHandler(queue_handler)
        LoggingInstrumentor().uninstrument()
    assert dis_handler.flush(10.0)
    events = {e["message"]: e for e in stored(emulator, stream, 2)}
    assert ids_of(span) == trace_keys(events["queued in a span"])
    assert {} == trace_keys(events["queued outside"])
    assert [] == [key for event in events.values() for key in event if key.startswith("otel")]


def test_structlog_processor_adds_ids(emulator, stream, dis_handler):
    """DISProcessor ships trace_id and span_id inside a span and no trace keys outside."""
    structlog.configure(
        processors=[DISProcessor(handler=dis_handler)],
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    try:
        log = structlog.get_logger()
        with tracer.start_as_current_span("s") as span:
            log.info("in span")
            log.info("own ids", trace_id="kept")
        log.info("no span")
        assert dis_handler.flush(10.0)
    finally:
        structlog.reset_defaults()
    events = {e["event"]: e for e in stored(emulator, stream, 3)}
    assert ids_of(span) == trace_keys(events["in span"])
    assert ("kept", ids_of(span)["span_id"]) == (
        events["own ids"]["trace_id"],
        events["own ids"]["span_id"],
    )
    assert {} == trace_keys(events["no span"])


def test_works_without_opentelemetry():
    """With opentelemetry not importable, formatting works and adds only attribute-based ids."""
    script = """
import json, logging, sys
sys.modules["opentelemetry"] = None  # makes every opentelemetry import fail
from dis_logging import _otel
from dis_logging.errors import ConfigError
from dis_logging.formatting import JSONFormatter
record = logging.LogRecord("x", logging.INFO, "f", 1, "m", (), None)
plain = json.loads(JSONFormatter().format(record))
record.otelTraceID, record.otelSpanID = "1" * 32, "2" * 16
tagged = json.loads(JSONFormatter().format(record))
print(json.dumps([_otel.HAS_OPENTELEMETRY, "trace_id" in plain, tagged["trace_id"]]))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert [False, False, "1" * 32] == json.loads(result.stdout)


def test_has_opentelemetry_here():
    """In the test environment opentelemetry-api is importable."""
    assert _otel.HAS_OPENTELEMETRY


def test_fast_span_lookup_agrees_with_the_public_api():
    """The context-variable shortcut finds the span the public API returns, and none outside."""
    from opentelemetry.trace import get_current_span

    assert _otel._current_span is not None
    assert None is _otel._current_span()
    with tracer.start_as_current_span("s") as span:
        assert (span, span) == (_otel._current_span(), get_current_span())


def test_ids_follow_span_changes():
    """Consecutive spans get their own ids although the last pair is cached."""
    seen = []
    for _ in range(3):
        with tracer.start_as_current_span("s") as span:
            seen.append((ids_of(span), dict(_otel.current_trace_fields() or {})))
    assert [expected for expected, _ in seen] == [got for _, got in seen]
    assert 3 == len({got["span_id"] for _, got in seen})


def test_benchmark_runs(tmp_path):
    """benchmarks/otel_cost.py runs at a tiny size and writes its figures."""
    out = tmp_path / "otel.json"
    root = Path(__file__).resolve().parent.parent
    subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.otel_cost",
            "--rounds",
            "1",
            "--calls",
            "50",
            "--out",
            str(out),
        ],
        cwd=root,
        capture_output=True,
        timeout=60,
        check=True,
    )
    names = set(json.loads(out.read_text(encoding="utf-8"))["results"])
    assert {
        "floor",
        "no_span",
        "in_span",
        "attributes",
        "lookup_no_span",
        "lookup_in_span",
    } <= names
