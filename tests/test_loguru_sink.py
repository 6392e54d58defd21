"""Tests for dis_logging.loguru_sink: a real Loguru logger shipping to the emulator."""

from __future__ import annotations

import asyncio
import datetime
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest
from loguru import logger
from opentelemetry.sdk.trace import TracerProvider

from dis_logging.errors import ConfigError
from dis_logging.handler import DISHandler
from dis_logging.loguru_sink import DISSink, add_trace_ids, render_record

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FIELDS = ["time", "level", "message", "name", "function", "line", "extra", "exception"]


def settings(emulator, stream, **extra):
    values = {
        "stream_name": stream,
        "endpoint": emulator.url,
        "project_id": emulator.project_id,
        "ak": emulator.ak,
        "sk": emulator.sk,
        "flush_interval": 60.0,  # only complete(), remove() or a full batch send
    }
    values.update(extra)
    return values


@pytest.fixture(autouse=True)
def _loguru_without_sinks():
    """Loguru's global logger without its stderr sink during a test, restored after."""
    logger.remove()
    yield
    logger.remove()
    logger.add(sys.stderr)


def stored(emulator, stream):
    return [json.loads(r.data) for r in emulator.records(stream)]


class TestDISSink:
    def test_one_json_record_per_message(self, emulator, stream):
        """Each message is one record with time, level, message, name, function, line, extra."""
        sink = DISSink(**settings(emulator, stream))
        sink_id = logger.add(sink, level="INFO")
        try:
            logger.bind(order_id=42, when=datetime.date(2024, 1, 2)).info("order {} paid", 42)
            logger.complete()
        finally:
            logger.remove(sink_id)
        (event,) = stored(emulator, stream)
        assert FIELDS == list(event)
        assert (
            "INFO",
            "order 42 paid",
            __name__,
            "test_one_json_record_per_message",
            {"order_id": 42, "when": "2024-01-02"},
            None,
        ) == (
            event["level"],
            event["message"],
            event["name"],
            event["function"],
            event["extra"],
            event["exception"],
        )
        assert isinstance(event["line"], int)
        assert event["time"].endswith("Z")
        assert datetime.datetime.strptime(event["time"], "%Y-%m-%dT%H:%M:%S.%fZ")

    def test_exception_is_the_formatted_traceback(self, emulator, stream):
        """logger.exception ships the traceback text under exception, at level ERROR."""
        sink = DISSink(**settings(emulator, stream))
        sink_id = logger.add(sink)
        try:
            try:
                raise ValueError("bad input")
            except ValueError:
                logger.exception("parsing failed")
            logger.complete()
        finally:
            logger.remove(sink_id)
        (event,) = stored(emulator, stream)
        assert "ERROR" == event["level"]
        assert event["exception"].startswith("Traceback (most recent call last):")
        assert event["exception"].endswith("ValueError: bad input")

    def test_complete_flushes(self, emulator, stream):
        """logger.complete() from plain code waits until the records are in DIS."""
        sink = DISSink(**settings(emulator, stream))
        sink_id = logger.add(sink)
        try:
            for i in range(3):
                logger.info("message {}", i)
            assert [] == emulator.records(stream)  # flush_interval is 60 s: nothing sent yet
            logger.complete()
            assert 3 == len(emulator.records(stream))
        finally:
            logger.remove(sink_id)

    def test_awaited_complete_flushes(self, emulator, stream):
        """await logger.complete() in a coroutine waits for DIS as well."""
        sink = DISSink(**settings(emulator, stream))
        sink_id = logger.add(sink)

        async def main():
            logger.info("from a coroutine")
            await logger.complete()
            return len(emulator.records(stream))

        try:
            assert 1 == asyncio.run(main())
        finally:
            logger.remove(sink_id)

    def test_complete_looks_like_a_coroutine_function(self, emulator, stream):
        """Loguru only calls complete() when it looks like a coroutine function; it does."""
        sink = DISSink(**settings(emulator, stream))
        try:
            assert inspect.iscoroutinefunction(sink.complete)
        finally:
            sink.stop()

    def test_remove_closes_and_sends_what_is_left(self, emulator, stream):
        """logger.remove() closes the sink's handler after sending the queued messages."""
        sink = DISSink(**settings(emulator, stream))
        sink_id = logger.add(sink)
        logger.warning("left in the queue")
        logger.remove(sink_id)
        assert ["left in the queue"] == [e["message"] for e in stored(emulator, stream)]
        assert 0 == sink.handler.stats.queued
        logger.warning("after remove")  # goes nowhere, and nothing raises
        assert 1 == len(emulator.records(stream))

    def test_shared_handler_stays_open(self, emulator, stream):
        """A handler passed in is used and left open by remove()."""
        handler = DISHandler(**settings(emulator, stream))
        try:
            sink_id = logger.add(DISSink(handler))
            logger.info("shared")
            logger.remove(sink_id)
            assert handler.flush(10.0)
            assert 1 == len(emulator.records(stream))
        finally:
            handler.close()

    def test_levels_and_filters_apply(self, emulator, stream):
        """Loguru's level option and the handler's own level both hold records back."""
        sink = DISSink(**settings(emulator, stream, level="WARNING"))
        sink_id = logger.add(sink, level="DEBUG")
        try:
            logger.debug("no")
            logger.info("no either")
            logger.success("SUCCESS is 25: below WARNING")
            logger.error("yes")
            logger.complete()
        finally:
            logger.remove(sink_id)
        assert ["yes"] == [e["message"] for e in stored(emulator, stream)]

    def test_partition_key_callable(self, emulator):
        """A partition_key callable picks the key from the record dict."""
        emulator.create_stream("keyed", partitions=2)
        sink = DISSink(
            **settings(emulator, "keyed"), partition_key=lambda r: r["extra"].get("tenant")
        )
        sink_id = logger.add(sink)
        try:
            logger.bind(tenant="t-1").info("a")
            logger.bind(tenant="t-2").info("b")
            logger.complete()
        finally:
            logger.remove(sink_id)
        assert {"t-1", "t-2"} == {r.partition_key for r in emulator.records("keyed")}

    def test_a_number_from_the_key_callable_is_written_as_text(self, emulator, stream):
        """A numeric id picked by the key callable keys the record, as with DISHandler."""
        sink = DISSink(**settings(emulator, stream), partition_key=lambda r: r["extra"].get("uid"))
        sink_id = logger.add(sink)
        try:
            logger.bind(uid=42).info("a")
            logger.complete()
        finally:
            logger.remove(sink_id)
        assert ["42"] == [r.partition_key for r in emulator.records(stream)]

    def test_enqueue_mode(self, emulator, stream):
        """With enqueue=True Loguru's worker thread writes; complete() still waits for DIS."""
        sink = DISSink(**settings(emulator, stream))
        sink_id = logger.add(sink, enqueue=True)
        try:
            logger.info("through the queue")
            logger.complete()
            assert 1 == len(emulator.records(stream))
        finally:
            logger.remove(sink_id)

    def test_trace_ids_inside_a_span(self, emulator, stream):
        """Inside an OpenTelemetry span the record carries trace_id and span_id."""
        tracer = TracerProvider().get_tracer("loguru-test")
        sink = DISSink(**settings(emulator, stream))
        sink_id = logger.add(sink)
        try:
            with tracer.start_as_current_span("s") as span:
                logger.info("traced")
            logger.complete()
        finally:
            logger.remove(sink_id)
        (event,) = stored(emulator, stream)
        assert f"{span.get_span_context().trace_id:032x}" == event["trace_id"]

    def test_trace_ids_survive_enqueue_with_the_patcher(self, emulator, stream):
        """With enqueue=True the ids come from add_trace_ids, taken on the logging thread."""
        tracer = TracerProvider().get_tracer("loguru-test")
        patched = logger.patch(add_trace_ids)
        sink_id = logger.add(DISSink(**settings(emulator, stream)), enqueue=True)
        try:
            with tracer.start_as_current_span("s") as span:
                patched.bind(order=7).info("traced through the queue")
                logger.info("not patched")
            patched.info("patched, outside the span")
            logger.complete()
        finally:
            logger.remove(sink_id)
        events = {e["message"]: e for e in stored(emulator, stream)}
        traced = events["traced through the queue"]
        context = span.get_span_context()
        assert (f"{context.trace_id:032x}", f"{context.span_id:016x}", {"order": 7}) == (
            traced["trace_id"],
            traced["span_id"],
            traced["extra"],
        )
        # Loguru's own thread has no span: without the patcher there are no ids to write.
        assert None is events["not patched"].get("trace_id")
        assert ({}, None) == (
            events["patched, outside the span"]["extra"],
            events["patched, outside the span"].get("trace_id"),
        )

    def test_traceback_survives_enqueue_with_the_patcher(self, emulator, stream):
        """With enqueue=True Loguru pickles the record and the traceback is lost (only
        "KeyError: 'k'" was shipped); add_trace_ids keeps its text from the logging thread."""
        patched = logger.patch(add_trace_ids)
        sink_id = logger.add(DISSink(**settings(emulator, stream)), enqueue=True)
        try:
            for log, message in ((patched, "patched"), (logger, "not patched")):
                try:
                    raise KeyError("k")
                except KeyError:
                    log.exception(message)
            logger.complete()
        finally:
            logger.remove(sink_id)
        events = {e["message"]: e for e in stored(emulator, stream)}
        text = events["patched"]["exception"]
        assert text.startswith("Traceback (most recent call last):")
        assert 'raise KeyError("k")' in text
        assert text.endswith("KeyError: 'k'")
        assert {} == events["patched"]["extra"]
        assert "KeyError: 'k'" == events["not patched"]["exception"]  # what Loguru's queue keeps

    def test_a_partition_key_that_is_neither_text_nor_callable_is_refused(self, emulator, stream):
        """partition_key=5 is a ConfigError (it was ignored at every message)."""
        with pytest.raises(ConfigError) as info:
            DISSink(**settings(emulator, stream), partition_key=cast(Any, 5))
        assert "partition_key" == info.value.field

    def test_handler_and_settings_together_are_refused(self, emulator, stream):
        """Giving both a handler and handler settings is a ConfigError."""
        handler = DISHandler(**settings(emulator, stream))
        try:
            with pytest.raises(ConfigError, match="either a handler or handler settings"):
                DISSink(handler, stream_name=stream)
        finally:
            handler.close()


class TestRenderRecord:
    def test_unencodable_extra_becomes_text(self):
        """Values JSON cannot hold, and circular ones, are written as text; nothing raises."""
        circular: list[object] = []
        circular.append(circular)
        record = {"message": "m", "extra": {"obj": object(), "loop": circular}, "line": 1}
        event = json.loads(render_record(record))
        assert ("m", str) == (event["message"], type(event["extra"]["obj"]))
        assert isinstance(event["extra"]["loop"], str)

    def test_oversized_message_is_cut_and_stays_json(self):
        """A message over the budget is cut with a marker; the JSON stays valid."""
        record = {"message": "x" * 50_000, "extra": {"k": "v"}}
        data = render_record(record, max_bytes=2_000)
        event = json.loads(data)
        assert len(data) <= 2_000
        assert "...[truncated" in event["message"]

    def test_nan_and_infinity_are_written_as_text(self):
        """NaN and infinities, which JSON has no numbers for, become text; the JSON is strict."""
        record = {
            "message": "m",
            "extra": {"n": float("nan"), "deep": {"l": [float("inf"), 1.5]}, "s": {float("-inf")}},
        }
        event = json.loads(render_record(record), parse_constant=pytest.fail)
        assert {"n": "nan", "deep": {"l": ["inf", 1.5]}, "s": ["-inf"]} == event["extra"]

    def test_message_without_traceback_keeps_the_room(self):
        """Without a traceback the message gets all the room the other fields leave."""
        record = {"message": "x" * 50_000, "extra": {"k": "v"}, "exception": None}
        data = render_record(record, max_bytes=2_000)
        assert 1_900 <= len(data) <= 2_000
        assert {"k": "v"} == json.loads(data)["extra"]

    def test_escaped_texts_still_fit(self):
        """Quotes and newlines, which JSON escapes, do not push a cut record over the limit."""
        record = {"message": '"\n' * 20_000, "extra": {"k": "v"}}
        data = render_record(record, max_bytes=3_000)
        event = json.loads(data)
        assert 2_000 <= len(data) <= 3_000
        assert re.search(r"\.\.\.\[truncated \d+ bytes\]$", event["message"])
        assert {"k": "v"} == event["extra"]


def test_loguru_example(emulator, stream, service_env):
    """examples/loguru_example.py ships its three records and exits 0."""
    env = service_env()
    result = subprocess.run(
        [sys.executable, "loguru_example.py", stream],
        cwd=EXAMPLES,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert 0 == result.returncode, result.stdout + result.stderr
    assert "sent=3 dropped=0" in result.stdout
    events = {e["message"]: e for e in stored(emulator, stream)}
    assert {"user alice logged in", "payment retried", "division failed"} == set(events)
    assert {"service": "loguru-example", "order_id": 7} == events["payment retried"]["extra"]
    assert "ZeroDivisionError" in events["division failed"]["exception"]


def test_construction_error_keeps_secrets_out_of_locals(package_frames):
    """A sink whose handler settings are invalid raises without its secrets in any frame."""
    secret = "SINK-SECRET-KEY-0123456789"
    with pytest.raises(ConfigError) as info:
        DISSink(stream_name="bad name", endpoint="http://127.0.0.1:9", ak="AK", sk=secret)
    text = package_frames(info.value)  # this test's own frame holds the secret it passed
    assert (True, True, False) == (
        "dis_logging/loguru_sink.py" in text,
        "dis_logging/handler.py" in text,
        secret in text,
    )


def test_a_misspelt_sink_keyword_suggests_the_sinks_own_name():
    """An unknown keyword is matched against the sink's own names too."""
    with pytest.raises(ConfigError) as info:
        DISSink(stream_name="s", endpoint="http://127.0.0.1:9", project_id="p", handlr=None)  # type: ignore[call-arg]
    assert "'handlr' (did you mean 'handler'?)" in str(info.value)
