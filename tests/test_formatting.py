"""Tests for dis_logging.formatting: JSON layout, hostile values, encoding and truncation."""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.config
import re
import sys
import time
from typing import Any, Dict

import pytest

from dis_logging.errors import ConfigError
from dis_logging.formatting import (
    JSONFormatter,
    encode_record,
    encode_text,
    fallback_payload,
    fit_json,
    safe_str,
    truncate_bytes,
)


def make_record(msg: object = "hello %s", args: Any = ("world",), **extra: object):
    record = logging.LogRecord(
        "app.module", logging.WARNING, "/src/app/module.py", 42, msg, args, None
    )
    record.funcName = "handler"
    record.__dict__.update(extra)
    return record


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("str fails")

    def __repr__(self) -> str:
        raise RuntimeError("repr fails")


class TestJSONFormatter:
    def test_standard_fields_in_order(self):
        """The object holds timestamp, level, logger, message, then the source fields, in order."""
        record = make_record()
        out = json.loads(JSONFormatter().format(record))
        assert [
            "timestamp",
            "level",
            "logger",
            "message",
            "module",
            "funcName",
            "lineno",
            "process",
            "processName",
            "threadName",
        ] == list(out)
        assert {
            "level": "WARNING",
            "logger": "app.module",
            "message": "hello world",
            "module": "module",
            "funcName": "handler",
            "lineno": 42,
        }.items() <= out.items()

    def test_timestamp_is_iso_utc_with_milliseconds(self):
        """The timestamp is ISO-8601 UTC with exactly three fractional digits and a Z."""
        record = make_record()
        record.created = 1_700_000_000.123456
        record.msecs = 123.456
        out = json.loads(JSONFormatter().format(record))
        assert "2023-11-14T22:13:20.123Z" == out["timestamp"]

    def test_timestamp_cache_follows_the_second(self):
        """Records from different seconds get their own timestamps despite the per-second cache."""
        formatter = JSONFormatter()
        first, second = make_record(), make_record()
        first.created, first.msecs = 1_700_000_000.5, 500.0
        second.created, second.msecs = 1_700_000_001.25, 250.0
        stamps = [json.loads(formatter.format(r))["timestamp"] for r in (first, second)]
        assert ["2023-11-14T22:13:20.500Z", "2023-11-14T22:13:21.250Z"] == stamps

    def test_extra_fields_are_included(self):
        """Every ``extra`` field of the record appears in the object."""
        record = make_record(user="alice", request_id=7, tags=["a", "b"])
        out = json.loads(JSONFormatter().format(record))
        assert {"user": "alice", "request_id": 7, "tags": ["a", "b"]}.items() <= out.items()

    def test_exception_and_stack_text(self):
        """exc_info and stack_info are rendered as text fields."""
        try:
            raise ValueError("boom")
        except ValueError:
            record = logging.LogRecord("a", logging.ERROR, "p", 1, "failed", (), sys.exc_info())
        record.stack_info = "Stack (most recent call last):\n  here"
        out = json.loads(JSONFormatter().format(record))
        assert out["exception"].startswith("Traceback (most recent call last)")
        assert "ValueError: boom" in out["exception"]
        assert "Stack (most recent call last):\n  here" == out["stack_info"]

    def test_rename_and_omit_fields(self):
        """rename_fields renames built-in fields, and None leaves one out."""
        formatter = JSONFormatter(rename_fields={"timestamp": "@timestamp", "process": None})
        out = json.loads(formatter.format(make_record()))
        assert "@timestamp" in out
        assert "timestamp" not in out
        assert "process" not in out

    def test_rename_unknown_field_is_an_error(self):
        """Renaming a field that does not exist raises ValueError naming it."""
        with pytest.raises(ValueError, match="nosuch"):
            JSONFormatter(rename_fields={"nosuch": "x"})

    def test_static_fields_and_extra_override(self):
        """static_fields appear in every object and an extra field of the same name wins."""
        formatter = JSONFormatter(static_fields={"service": "api", "env": "prod"})
        out = json.loads(formatter.format(make_record(env="staging")))
        assert ("api", "staging") == (out["service"], out["env"])

    def test_file_config_signature(self, tmp_path):
        """fileConfig can build it: the Formatter(fmt, datefmt, style) call shape is accepted."""
        ini = tmp_path / "logging.ini"
        ini.write_text(
            "[loggers]\nkeys=root\n[handlers]\nkeys=h\n[formatters]\nkeys=json\n"
            "[logger_root]\nlevel=INFO\nhandlers=h\n"
            "[handler_h]\nclass=NullHandler\nformatter=json\nargs=()\n"
            "[formatter_json]\nclass=dis_logging.formatting.JSONFormatter\nformat=%(message)s\n",
            encoding="utf-8",
        )
        root = logging.getLogger()
        saved = root.handlers[:]
        try:
            logging.config.fileConfig(ini, disable_existing_loggers=False)
            assert isinstance(root.handlers[0].formatter, JSONFormatter)
        finally:
            for handler in root.handlers:
                handler.close()
            root.handlers[:] = saved

    def test_defaults_become_fields(self):
        """Formatter-style defaults are added like static fields."""
        formatter = JSONFormatter("%(message)s", None, "%", True, defaults={"region": "cn-north-4"})
        assert "cn-north-4" == json.loads(formatter.format(make_record()))["region"]

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (dt.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
            (b"\xffraw", "\\xffraw"),
            ({3}, [3]),
            (Unprintable(), "<unprintable Unprintable object>"),
            (float("nan"), "nan"),
        ],
    )
    def test_values_json_cannot_hold_become_text(self, value, expected):
        """Values JSON cannot encode are written as text instead of failing the record."""
        out = json.loads(JSONFormatter().format(make_record(value=value)))
        assert expected == out["value"]

    def test_an_int_with_no_text_keeps_the_record(self):
        """An int past sys.get_int_max_str_digits() has no text (str() raises ValueError): it is
        written as a placeholder and the record keeps its other fields. format() raised."""
        huge = 10**5000
        try:
            str(huge)
        except ValueError:
            expected: object = "<unprintable int object>"
        else:  # an interpreter without the limit
            expected = huge
        record = make_record(huge=huge, user="bob")
        outs = [
            json.loads(JSONFormatter().format(record)),
            json.loads(JSONFormatter().format_bytes(record, 100_000) or b""),
        ]
        assert [("hello world", "bob", expected)] * 2 == [
            (out["message"], out["user"], out["huge"]) for out in outs
        ]

    def test_circular_extra_is_rendered_safely(self):
        """A self-referencing extra value is written as its text, and the record survives."""
        loop: Dict[str, object] = {}
        loop["self"] = loop
        out = json.loads(JSONFormatter().format(make_record(loop=loop)))
        assert "{'self': {...}}" == out["loop"]

    def test_bad_percent_args_keep_template_and_arguments(self):
        """A message whose %-arguments do not match keeps template and arguments plus an error."""
        out = json.loads(JSONFormatter().format(make_record("x=%d y=%d", ("a",))))
        assert "x=%d y=%d % ('a',)" == out["message"]
        assert out["format_error"].startswith("TypeError")

    def test_message_whose_str_raises(self):
        """A message object whose __str__ raises is replaced by a placeholder."""
        out = json.loads(JSONFormatter().format(make_record(Unprintable(), ())))
        assert out["message"].startswith("<unprintable Unprintable object>")

    def test_does_not_modify_record_message(self):
        """Formatting leaves the record's msg and args as they were."""
        record = make_record()
        JSONFormatter().format(record)
        assert ("hello %s", ("world",)) == (record.msg, record.args)

    def test_format_is_fast(self):
        """Formatting a plain record costs well under 50 microseconds (measured: about 4)."""
        formatter = JSONFormatter()
        record = make_record()
        formatter.format(record)
        count = 20_000
        start = time.perf_counter()
        for _ in range(count):
            formatter.format(record)
        per_record = (time.perf_counter() - start) / count
        assert per_record < 50e-6


class TestEncoding:
    def test_lone_surrogates_are_escaped_and_json_stays_valid(self):
        """Lone surrogates are written as \\udcxx escapes and the payload parses as JSON."""
        record = make_record("bad \udcff byte", ())
        data = JSONFormatter().format_bytes(record, 10_000)
        assert data is not None
        assert "bad \udcff byte" == json.loads(data)["message"]

    def test_encode_text_plain_and_surrogate(self):
        """encode_text is plain UTF-8 for normal text and escapes surrogates otherwise."""
        assert ("é".encode(), b"a\\udcffb") == (encode_text("é"), encode_text("a\udcffb"))

    def test_truncate_bytes_keeps_utf8_boundary_and_marker(self):
        """Truncation cuts on a character boundary, ends with the marker and fits the budget."""
        data = ("é" * 1000).encode()
        out = truncate_bytes(data, 300)
        assert len(out) <= 300
        text = out.decode("utf-8")
        assert re.search(r"\.\.\.\[truncated \d+ bytes\]$", text)

    def test_truncate_bytes_counts_what_was_cut(self):
        """The marker states exactly how many bytes were removed."""
        data = b"x" * 5000
        out = truncate_bytes(data, 1000)
        found = re.search(rb"truncated (\d+) bytes", out)
        assert found is not None
        cut = int(found.group(1))
        kept = out.index(b"...[truncated")
        assert 5000 == kept + cut

    def test_huge_message_is_truncated_into_valid_json(self):
        """A 5 MB message becomes a payload within the budget that is still valid JSON."""
        record = make_record("x" * 5_000_000, ())
        data = JSONFormatter().format_bytes(record, 2000)
        assert data is not None
        assert len(data) <= 2000
        out = json.loads(data)
        assert out["message"].endswith("bytes]")
        assert "WARNING" == out["level"]

    def test_many_big_extras_fall_back_to_minimal_envelope(self):
        """When cutting single fields is not enough, a minimal envelope within budget is kept."""
        extras = {f"k{i}": ["y" * 50] * 40 for i in range(50)}
        data = JSONFormatter().format_bytes(make_record(**extras), 1024)
        assert data is not None
        assert len(data) <= 1024
        assert {"timestamp", "level", "logger", "message"} <= set(json.loads(data))

    def test_oversize_without_truncation_is_none(self):
        """With truncate=False an oversized record yields None."""
        record = make_record("x" * 5000, ())
        assert JSONFormatter().format_bytes(record, 1000, truncate=False) is None

    @pytest.mark.parametrize(
        ("settings", "setting", "text"),
        [
            ({"static_fields": "service=orders"}, "static_fields", "must be a mapping"),
            ({"static_fields": {1: "a"}}, "static_fields", "field names must be strings"),
            ({"defaults": ["a"]}, "defaults", "must be a mapping"),
            ({"rename_fields": "timestamp"}, "rename_fields", "must be a mapping"),
            ({"rename_fields": {"timestamp": 5}}, "rename_fields", "must map to a name or None"),
            ({"rename_fields": {"nope": "x"}}, "rename_fields", "unknown field(s) ['nope']"),
            (
                {"rename_fields": {"timestamp": "level"}},
                "rename_fields",
                "'timestamp' and 'level' would both be written as 'level'",
            ),
            (
                {"rename_fields": {"module": "where", "funcName": "where"}},
                "rename_fields",
                "'module' and 'funcName' would both be written as 'where'",
            ),
            ({"ensure_ascii": "yes"}, "ensure_ascii", "must be true or false"),
            ({"static_field": {"app": "x"}}, "static_field", "static_fields"),
        ],
    )
    def test_bad_settings_are_config_errors_naming_the_setting(self, settings, setting, text):
        """Malformed formatter settings (from dictConfig, say) are a ConfigError naming the
        setting, not a TypeError or AttributeError from inside; a rename onto another field's
        name, which silently lost that field, is refused."""
        with pytest.raises(ConfigError) as info:
            JSONFormatter(**settings)
        assert setting == info.value.field
        assert text in str(info.value)

    def test_a_misspelt_keyword_in_dict_config_names_the_one_meant(self):
        """dictConfig's factory form passes its keys as keywords: a misspelt one is a ConfigError
        naming the setting it resembles (Python's own TypeError named only the first)."""
        config = {
            "version": 1,
            "formatters": {
                "json": {"()": JSONFormatter, "static_field": {"app": "x"}, "renames": {}}
            },
        }
        with pytest.raises(ValueError, match="formatter 'json'") as info:
            logging.config.dictConfig(config)
        cause = info.value.__cause__
        assert isinstance(cause, ConfigError)
        assert "static_fields" in str(cause)
        assert "static_field, renames" == cause.field

    def test_ensure_ascii_as_text(self):
        """ensure_ascii="false" (text from a configuration file) is False, "true" True."""
        record = make_record("é", ())
        assert "é" in JSONFormatter(ensure_ascii="false").format(record)
        assert "\\u00e9" in JSONFormatter(ensure_ascii="true").format(record)

    def test_a_json_formatters_oversized_output_stays_json(self):
        """A custom formatter that writes JSON (structlog's ProcessorFormatter, python-json-logger)
        gets its largest values cut, so its oversized output stays valid JSON (it was cut as
        bytes)."""

        class OwnJSON(logging.Formatter):
            def format(self, record):
                return json.dumps({"msg": record.getMessage(), "items": ["v" * 50] * 40})

        data = encode_record(OwnJSON(), make_record("m" * 5000, ()), 1000)
        assert data is not None
        assert len(data) <= 1000
        out = json.loads(data)
        assert out["msg"].startswith("m" * 100)
        assert out["msg"].endswith("bytes]")

    @pytest.mark.parametrize(
        "data",
        [b'{"a": "' + b"x" * 3000 + b'"}', b'{"a": [' + b'"yy",' * 800 + b'"z"], "b": 1}'],
    )
    def test_fit_json_keeps_an_object_valid_within_the_budget(self, data):
        """fit_json cuts a JSON object value by value: valid JSON, within the budget."""
        out = fit_json(data, 300)
        assert len(out) <= 300
        assert isinstance(json.loads(out), dict)
        assert b"...[truncated " in out

    def test_fit_json_cuts_other_text_as_bytes(self):
        """Text that is not a JSON object is cut as bytes, with the marker."""
        assert fit_json(b"{not json" + b"x" * 900, 300) == truncate_bytes(
            b"{not json" + b"x" * 900, 300
        )

    def test_fit_json_never_raises_near_the_recursion_limit(self):
        """An object the parser just manages to read can be one level too deep to write again
        from a deeper stack: that RecursionError is caught too, at every depth around the
        limit and every caller depth (it reached the logging call)."""

        def nested(depth):
            return b'{"a":' + b"[" * depth + b'"' + b"x" * 600 + b'"' + b"]" * depth + b"}"

        readable = 1
        while True:  # the deepest object the parser reads from here
            try:
                json.loads(nested(readable * 2))
            except RecursionError:
                break
            readable *= 2
        low, high = readable, readable * 2
        while low + 1 < high:
            middle = (low + high) // 2
            try:
                json.loads(nested(middle))
                low = middle
            except RecursionError:
                high = middle

        def fit_from(frames, data):
            return fit_from(frames - 1, data) if frames else fit_json(data, 300)

        for depth in range(low - 40, low + 1):
            data = nested(depth)
            for frames in range(0, 40):
                assert len(fit_from(frames, data)) <= 300

    def test_fit_json_cuts_json_nested_too_deep_to_parse_as_bytes(self):
        """An object nested deeper than the parser's recursion limit is cut as bytes, not
        raised (a RecursionError would reach the application through the handler)."""
        depth = sys.getrecursionlimit() * 20
        data = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
        assert truncate_bytes(data, 300) == fit_json(data, 300)

    def test_encode_record_with_plain_formatter(self):
        """A standard Formatter's text is encoded and cut with the marker when too long."""
        formatter = logging.Formatter("%(levelname)s %(message)s")
        data = encode_record(formatter, make_record("z" * 3000, ()), 500)
        assert data is not None
        assert data.startswith(b"WARNING zzz")
        assert len(data) <= 500

    def test_encode_record_survives_a_failing_formatter(self):
        """A formatter that raises yields the fallback payload instead of an exception."""

        class Broken(logging.Formatter):
            def format(self, record):
                raise RuntimeError("formatter broke")

        data = encode_record(Broken(), make_record(), 1000)
        assert data is not None
        out = json.loads(data)
        assert "RuntimeError: formatter broke" == out["format_error"]
        assert "app.module" == out["logger"]

    def test_fallback_payload_with_hostile_message(self):
        """The fallback payload survives a message object whose str and repr raise."""
        record = make_record(Unprintable(), ())
        out = json.loads(fallback_payload(record, RuntimeError("x")))
        assert out["message"].startswith("<unprintable")

    @pytest.mark.parametrize(
        ("created", "expected"),
        [(1_700_000_000.25, "2023-11-14T22:13:20.250Z"), ("not a time", "not a time")],
    )
    def test_fallback_timestamp_is_iso_like_every_other_record(self, created, expected):
        """The fallback payload writes the time as JSONFormatter does, or the raw value's text."""
        record = make_record()
        record.created = created
        assert expected == json.loads(fallback_payload(record, RuntimeError("x")))["timestamp"]

    def test_safe_str(self):
        """safe_str returns str(), else repr(), else a placeholder naming the type."""
        assert ("1", "<unprintable Unprintable object>") == (safe_str(1), safe_str(Unprintable()))


class TestExceptionField:
    def _record(self):
        try:
            raise ValueError("boom")
        except ValueError:
            return logging.LogRecord("a", logging.ERROR, "p", 1, "failed", (), sys.exc_info())

    def test_same_name_as_the_structlog_processor(self):
        """JSONFormatter and render_json both write the traceback under "exception"."""
        from dis_logging.structlog_processor import render_json

        logged = json.loads(JSONFormatter().format(self._record()))
        rendered = json.loads(render_json({"event": "failed", "exc_info": ValueError("boom")}))
        assert ("exc_info" in logged, "exception" in logged, "exception" in rendered) == (
            False,
            True,
            True,
        )

    @pytest.mark.parametrize(
        ("rename", "expected"),
        [({"exception": "exc_info"}, "exc_info"), ({"exc_info": "error"}, "error")],
    )
    def test_former_name_stays_available(self, rename, expected):
        """rename_fields writes the former name, and accepts it as a key, for one release."""
        out = json.loads(JSONFormatter(rename_fields=rename).format(self._record()))
        assert (True, False) == (expected in out, "exception" in out)
