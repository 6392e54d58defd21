"""Tests for dis_logging.structlog_processor: DISProcessor and render_json."""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

import pytest
import structlog

from dis_logging.errors import ConfigError
from dis_logging.handler import DISHandler
from dis_logging.structlog_processor import DISProcessor, _levelno, render_json


def handler_kwargs(emulator, stream):
    return {
        "stream_name": stream,
        "endpoint": emulator.url,
        "project_id": emulator.project_id,
        "region": emulator.region,
        "ak": emulator.ak,
        "sk": emulator.sk,
        "flush_interval": 0.05,
    }


@pytest.fixture
def handler(emulator, stream):
    handler = DISHandler(**handler_kwargs(emulator, stream))
    yield handler
    handler.close()


@pytest.fixture(autouse=True)
def _reset_structlog():
    yield
    structlog.reset_defaults()


def configure(*processors):
    """Configure structlog with the given chain, returning the rendered value to the caller."""
    structlog.configure(
        processors=[structlog.processors.add_log_level, *processors],
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    return structlog.get_logger()


def stored_events(emulator, stream, count):
    return [json.loads(record.data) for record in emulator.wait_for(stream, count, timeout=10.0)]


class Unprintable:
    def __str__(self):
        raise RuntimeError("no str")

    __repr__ = __str__


class TestRenderJson:
    def test_renders_compact_utf8_json(self):
        """A plain event renders as compact UTF-8 JSON with non-ASCII text kept."""
        assert render_json({"event": "héllo", "n": 1}) == '{"event":"héllo","n":1}'.encode()

    def test_renders_values_json_cannot_hold_as_text(self):
        """Datetimes, bytes, sets and arbitrary objects render as text."""

        class Thing:
            def __repr__(self):
                return "<Thing>"

        event = {
            "at": datetime.datetime(2024, 1, 2, 3, 4, 5),
            "raw": b"ab\xff",
            "tags": {"x"},
            "thing": Thing(),
        }
        expected = {
            "at": "2024-01-02T03:04:05",
            "raw": "ab\\xff",
            "tags": ["x"],
            "thing": "<Thing>",
        }
        assert expected == json.loads(render_json(event))

    def test_uses_the_structlog_hook(self):
        """An object with a __structlog__ method renders as that method's value."""

        class Hooked:
            def __structlog__(self):
                return {"hooked": True}

        assert {"value": {"hooked": True}} == json.loads(render_json({"value": Hooked()}))

    def test_names_the_type_of_an_unprintable_object(self):
        """An object whose repr and str raise renders as a placeholder naming its type."""
        assert {"value": "<unrepresentable Unprintable>"} == json.loads(
            render_json({"value": Unprintable()})
        )

    def test_falls_back_to_strings_on_circular_references(self):
        """A circular structure renders each value as a string instead of failing."""
        loop: list[object] = []
        loop.append(loop)
        assert {"event": "e", "loop": "[[...]]"} == json.loads(
            render_json({"event": "e", "loop": loop})
        )

    def test_falls_back_to_strings_on_non_string_keys(self):
        """A dict with a tuple key renders with the key as text."""
        event: dict[object, str] = {"event": "e", (1, 2): "x"}
        assert {"event": "e", "(1, 2)": "x"} == json.loads(render_json(event))  # type: ignore[arg-type]

    def test_escapes_lone_surrogates(self):
        """Lone surrogates become JSON escapes, so the output stays valid UTF-8."""
        data = render_json({"event": "bad \udc80 byte"})
        assert {"event": "bad \udc80 byte"} == json.loads(data.decode("utf-8"))

    def test_renders_exc_info_as_exception_text(self):
        """An exc_info entry becomes an exception field holding the traceback."""
        try:
            raise KeyError("missing")
        except KeyError:
            event = json.loads(render_json({"event": "failed", "exc_info": True}))
        assert "exc_info" not in event
        assert event["exception"].startswith("Traceback")
        assert event["exception"].endswith("KeyError: 'missing'")

    def test_renders_an_exception_instance(self):
        """An exception object as exc_info renders its type and message."""
        event = json.loads(render_json({"event": "failed", "exc_info": ValueError("bad")}))
        assert event["exception"].endswith("ValueError: bad")

    def test_leaves_the_event_dict_unchanged(self):
        """Rendering does not modify the caller's event dict."""
        event = {"event": "e", "exc_info": ValueError("bad")}
        before = dict(event)
        render_json(event)
        assert before == event

    def test_survives_a_failing_serializer(self):
        """A serializer that raises falls back to the plain rendering."""

        def broken(obj, **kwargs):
            raise TypeError("nope")

        assert {"event": "e"} == json.loads(render_json({"event": "e"}, broken))

    def test_passes_bytes_from_a_serializer_through(self):
        """A serializer returning bytes has its output used as is."""
        assert b"custom" == render_json({"event": "e"}, lambda obj, **kwargs: b"custom")

    @pytest.mark.parametrize("kind", [bytearray, memoryview])
    def test_a_serializer_returning_a_buffer_is_read_as_bytes(self, kind):
        """A serializer returning a bytearray or memoryview has its bytes used (an
        AttributeError reached the application)."""
        rendered = render_json({"event": "e"}, lambda obj, **kwargs: kind(b'{"event":"e"}'))
        assert (bytes, b'{"event":"e"}') == (type(rendered), rendered)

    def test_a_serializer_returning_no_text_falls_back(self):
        """A serializer returning neither text nor bytes falls back to the plain rendering."""
        assert {"event": "e"} == json.loads(render_json({"event": "e"}, lambda obj, **kwargs: 7))  # type: ignore[arg-type]


class TestLevel:
    @pytest.mark.parametrize(
        ("method", "event", "expected"),
        [
            ("info", {}, logging.INFO),
            ("exception", {}, logging.ERROR),
            ("warn", {}, logging.WARNING),
            ("info", {"level": "critical"}, logging.CRITICAL),
            ("info", {"level": 25}, 25),
            ("custom", {}, logging.INFO),
        ],
    )
    def test_level_comes_from_the_event_or_the_method(self, method, event, expected):
        """The level key wins over the method name; unknown names count as INFO."""
        assert expected == _levelno(method, event)


class TestDISProcessor:
    def test_ships_the_event_and_drops_it(self, emulator, stream, handler):
        """By default the event is shipped as JSON and the chain ends there."""
        log = configure(DISProcessor(handler))
        assert log.info("user logged in", user="alice") is None
        assert [{"event": "user logged in", "user": "alice", "level": "info"}] == stored_events(
            emulator, stream, 1
        )

    def test_passthrough_hands_the_event_on(self, emulator, stream, handler):
        """With passthrough the next processor still receives the event."""
        log = configure(
            DISProcessor(handler, passthrough=True), structlog.processors.KeyValueRenderer()
        )
        assert "event='hello' level='info'" == log.info("hello")
        assert [{"event": "hello", "level": "info"}] == stored_events(emulator, stream, 1)

    def test_skips_events_below_the_handler_level(self, emulator, stream, handler):
        """Events below the handler's level are not shipped."""
        handler.setLevel(logging.WARNING)
        log = configure(DISProcessor(handler))
        log.info("quiet")
        log.warning("loud")
        assert handler.flush(timeout=5.0)
        assert ["loud"] == [event["event"] for event in stored_events(emulator, stream, 1)]

    def test_uses_a_fixed_partition_key(self, emulator, stream, handler):
        """A string partition key is sent with every record."""
        configure(DISProcessor(handler, partition_key="tenant-1")).info("e")
        assert ["tenant-1"] == [r.partition_key for r in emulator.wait_for(stream, 1)]

    def test_picks_the_partition_key_from_the_event(self, emulator, stream, handler):
        """A callable partition key is applied to each event dict."""
        configure(DISProcessor(handler, partition_key=lambda e: e.get("user"))).info(
            "e", user="bob"
        )
        assert ["bob"] == [r.partition_key for r in emulator.wait_for(stream, 1)]

    def test_a_number_from_the_key_callable_is_written_as_text(self, emulator, stream, handler):
        """The README's ``lambda event: event.get("user")`` with a numeric user id keys the
        record by that id, as DISHandler's key callable does (it shipped without a key)."""
        configure(DISProcessor(handler, partition_key=lambda e: e.get("user"))).info("e", user=42)
        assert ["42"] == [r.partition_key for r in emulator.wait_for(stream, 1)]

    def test_ships_without_a_key_when_the_key_callable_raises(self, emulator, stream, handler):
        """A failing partition key callable leaves the key to DIS and still ships the event."""

        def broken(event):
            raise RuntimeError("no key")

        configure(DISProcessor(handler, partition_key=broken)).info("e")
        assert [None] == [r.partition_key for r in emulator.wait_for(stream, 1)]

    def test_ships_hostile_values_without_raising(self, emulator, stream, handler):
        """An unprintable value is shipped as a placeholder and the call returns normally."""
        configure(DISProcessor(handler)).info("odd", value=Unprintable())
        [event] = stored_events(emulator, stream, 1)
        assert "<unrepresentable Unprintable>" == event["value"]

    def test_an_oversized_event_stays_valid_json(self, emulator, stream):
        """An event above max_record_bytes is cut value by value: every record is one JSON
        object within the budget, with the truncation marker (the bytes were cut before,
        leaving broken JSON)."""
        processor = DISProcessor(**handler_kwargs(emulator, stream), max_record_bytes=1000)
        events: list[dict[str, Any]] = [
            {"event": "text", "blob": "x" * 5000},
            {"event": "y" * 5000},
            {"event": "wide", "blob": "é" * 5000},
            {"event": "list", "items": ["z" * 100] * 50},
            {"event": "escaped", "blob": "\x00" * 5000, "other": "kept"},
        ]
        try:
            log = configure(processor)
            for event in events:
                log.info(**event)
            assert processor.flush(timeout=5.0)
        finally:
            processor.close()
        stored = emulator.wait_for(stream, len(events), timeout=10.0)
        assert all(len(record.data) <= 1000 for record in stored)
        decoded = [json.loads(record.data) for record in stored]  # each one valid JSON
        assert all("...[truncated " in record.data.decode() for record in stored)
        by_name = {str(event["event"])[:4]: event for event in decoded}
        assert {"text", "yyyy", "wide", "list", "esca"} == set(by_name)
        assert by_name["text"]["blob"].startswith("x" * 500)
        assert "kept" == by_name["esca"]["other"]

    @pytest.mark.parametrize(
        ("settings", "setting"),
        [
            ({"passthrough": "maybe"}, "passthrough"),
            ({"partition_key": 5}, "partition_key"),
            ({"serializer": "json"}, "serializer"),
        ],
    )
    def test_bad_own_settings_are_config_errors(self, emulator, stream, settings, setting):
        """A wrong-typed passthrough, partition_key or serializer is refused at construction
        (an int key was ignored at every event, a string serializer turned every event into
        the all-text fallback, "false" meant true), before any handler is built."""
        with pytest.raises(ConfigError) as info:
            DISProcessor(**handler_kwargs(emulator, stream), **settings)
        assert setting == info.value.field

    def test_passthrough_as_text(self, handler):
        """passthrough="false" (text from a settings file) is false."""
        with pytest.raises(structlog.DropEvent):
            DISProcessor(handler, passthrough="false")(None, "info", {"event": "e"})

    def test_builds_and_closes_its_own_handler(self, emulator, stream):
        """Without a handler the processor builds one from keyword arguments and owns it."""
        processor = DISProcessor(**handler_kwargs(emulator, stream))
        try:
            configure(processor).info("owned")
            assert processor.flush(timeout=5.0)
        finally:
            processor.close()
            processor.close()
        assert ["owned"] == [event["event"] for event in stored_events(emulator, stream, 1)]

    def test_leaves_a_shared_handler_open(self, emulator, stream, handler):
        """Closing the processor does not close a handler it was given."""
        DISProcessor(handler).close()
        logger = logging.getLogger("test.shared")
        logger.addHandler(handler)
        try:
            logger.warning("still open")
        finally:
            logger.removeHandler(handler)
        assert ["still open"] == [event["message"] for event in stored_events(emulator, stream, 1)]

    def test_rejects_a_handler_together_with_handler_settings(self, handler):
        """Passing a handler and handler keyword arguments is a ConfigError."""
        with pytest.raises(ConfigError, match="either a handler or handler settings"):
            DISProcessor(handler, stream_name="other")

    def test_rejects_invalid_handler_settings(self):
        """Invalid handler keyword arguments raise ConfigError at construction."""
        with pytest.raises(ConfigError, match="stream_name"):
            DISProcessor(stream_name="no spaces allowed", endpoint="http://127.0.0.1:9")


class TestProcessorFormatter:
    def test_stdlib_route_ships_structlog_events(self, emulator, stream, handler):
        """structlog events routed through logging and ProcessorFormatter reach DIS as JSON."""
        handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.JSONRenderer(),
                ],
                foreign_pre_chain=[structlog.stdlib.add_log_level],
            )
        )
        logger = logging.getLogger("test.procfmt")
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        structlog.configure(
            processors=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=False,
        )
        try:
            structlog.get_logger("test.procfmt").info("via stdlib", user="carol")
            logger.warning("plain %s", "record")
            events = stored_events(emulator, stream, 2)
        finally:
            logger.removeHandler(handler)
        assert [
            {"event": "plain record", "level": "warning"},
            {"event": "via stdlib", "user": "carol", "level": "info"},
        ] == sorted(events, key=lambda event: event["event"])


def test_construction_error_keeps_secrets_out_of_locals(package_frames):
    """A processor whose handler settings are invalid raises without its secrets in any frame."""
    secret = "PROCESSOR-SECRET-KEY-0123456789"
    with pytest.raises(ConfigError) as info:
        DISProcessor(stream_name="bad name", endpoint="http://127.0.0.1:9", ak="AK", sk=secret)
    text = package_frames(info.value)  # this test's own frame holds the secret it passed
    assert ("dis_logging/handler.py", False) == (
        "dis_logging/handler.py" if "dis_logging/handler.py" in text else text,
        secret in text,
    )


def test_non_finite_floats_are_written_as_text():
    """NaN and infinities, also nested, become "nan"/"inf" text: the record stays strict JSON."""
    from dis_logging.structlog_processor import render_json

    event = {
        "event": "nan",
        "n": float("nan"),
        "l": [float("inf"), {"x": float("-inf")}],
        "ok": 1.5,
    }
    data = render_json(event)
    assert {"event": "nan", "n": "nan", "l": ["inf", {"x": "-inf"}], "ok": 1.5} == json.loads(
        data, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}")
    )


def test_a_misspelt_processor_keyword_suggests_the_processors_own_name():
    """An unknown keyword is matched against the processor's own names too: ``passthru``
    suggests ``passthrough``, not the handler setting ``password``."""
    with pytest.raises(ConfigError) as info:
        DISProcessor(stream_name="s", endpoint="http://127.0.0.1:9", project_id="p", passthru=True)  # type: ignore[call-arg]
    assert "'passthru' (did you mean 'passthrough'?)" in str(info.value)
