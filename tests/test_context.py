"""Tests for dis_logging.context: the framework-neutral request context and its filter."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import threading

import pytest

from dis_logging.context import (
    CONTEXT_ATTR,
    FIELDS,
    RequestContext,
    RequestContextFilter,
    get_request_context,
    new_request_id,
    use_request_context,
    valid_request_id,
)
from dis_logging.handler import DISHandler


def make_record(**extra):
    record = logging.LogRecord("test.context", logging.INFO, __file__, 1, "hello", (), None)
    record.__dict__.update(extra)
    return record


def filtered(**extra):
    record = make_record(**extra)
    assert RequestContextFilter().filter(record) is True
    return {name: getattr(record, name) for name in FIELDS}


class TestRequestContext:
    def test_fields_outside_a_request_are_none(self):
        """Outside a request every request field is None and no context is current."""
        assert get_request_context() is None
        assert dict.fromkeys(FIELDS) == filtered()

    def test_fields_inside_a_request(self):
        """Inside use_request_context the filter copies the context's fields onto the record."""
        context = RequestContext("rid-1", "POST", "/orders", status_code=201)
        with use_request_context(context):
            assert context is get_request_context()
            seen = filtered()
        assert {
            "request_id": "rid-1",
            "http_method": "POST",
            "http_path": "/orders",
            "user_id": None,
            "status_code": 201,
        } == seen
        assert get_request_context() is None

    def test_user_id_is_read_lazily_through_the_getter(self):
        """user_id calls the getter with the request each time and turns the value into text."""
        request = {"user": 41}
        context = RequestContext(
            "r", "GET", "/", request=request, user_id_getter=lambda r: r["user"]
        )
        request["user"] = 42
        assert "42" == context.user_id

    def test_a_raising_getter_gives_none(self):
        """A user-id getter that raises makes user_id None instead of failing the record."""

        def broken(request):
            raise RuntimeError("no user")

        context = RequestContext("r", "GET", "/", user_id_getter=broken)
        with use_request_context(context):
            assert None is filtered()["user_id"]

    def test_values_already_on_the_record_win(self):
        """A field the record already carries (status_code from django.request) is kept."""
        with use_request_context(RequestContext("r", "GET", "/", status_code=200)):
            assert 404 == filtered(status_code=404)["status_code"]

    def test_context_left_on_a_request_in_extra(self):
        """Outside the scope the filter falls back to the context on extra={'request': ...}."""

        class Request:
            pass

        request = Request()
        setattr(request, CONTEXT_ATTR, RequestContext("late", "GET", "/x", status_code=500))
        assert "late" == filtered(request=request)["request_id"]

    def test_context_does_not_leak_between_tasks(self):
        """Concurrent asyncio tasks each see only their own request's context."""

        async def one(name, gate):
            with use_request_context(RequestContext(name, "GET", "/" + name)):
                await gate.wait()
                current = get_request_context()
                return current.request_id if current else None

        async def main():
            gate = asyncio.Event()
            tasks = [asyncio.ensure_future(one(n, gate)) for n in ("a", "b", "c")]
            await asyncio.sleep(0)
            gate.set()
            return await asyncio.gather(*tasks)

        assert ["a", "b", "c"] == asyncio.run(main())

    def test_thread_with_copied_context_sees_the_request(self):
        """A thread run in a copy of the request's context sees its fields; others do not."""
        seen: dict[str, object] = {}
        with use_request_context(RequestContext("t1", "GET", "/t")):
            copied = contextvars.copy_context()
        plain = threading.Thread(target=lambda: seen.update(plain=filtered()["request_id"]))
        inherited = threading.Thread(
            target=lambda: copied.run(lambda: seen.update(copied=filtered()["request_id"]))
        )
        for thread in (plain, inherited):
            thread.start()
            thread.join(10)
        assert {"plain": None, "copied": "t1"} == seen


class TestRequestIds:
    @pytest.mark.parametrize("value", ["abc-1", "a" * 128, "trace:1/2+3=4@x_y.z"])
    def test_valid_ids_are_kept(self, value):
        """Ids of up to 128 safe characters are used as given."""
        assert value == valid_request_id(value)

    @pytest.mark.parametrize("value", [None, "", "a" * 129, "has space", 'quo"te', "new\nline"])
    def test_unsafe_ids_are_refused(self, value):
        """Missing, over-long ids and ids with spaces, quotes or control characters are refused."""
        assert None is valid_request_id(value)

    def test_new_ids_are_32_hex_digits(self):
        """Generated ids are 32 lowercase hex digits and differ each time."""
        first, second = new_request_id(), new_request_id()
        assert first != second
        assert all(len(v) == 32 and set(v) <= set("0123456789abcdef") for v in (first, second))


def test_records_reach_dis_with_request_fields(emulator, stream):
    """A record logged in a request context arrives in DIS with the five request fields."""
    handler = DISHandler(
        stream_name=stream,
        endpoint=emulator.url,
        project_id=emulator.project_id,
        ak=emulator.ak,
        sk=emulator.sk,
        flush_interval=0.05,
    )
    handler.addFilter(RequestContextFilter())
    logger = logging.getLogger("test.context.dis")
    logger.addHandler(handler)
    try:
        with use_request_context(RequestContext("job-7", "CRON", "/nightly", status_code=0)):
            logger.warning("inside")
        logger.warning("outside")
        assert handler.flush(10.0)
    finally:
        logger.removeHandler(handler)
        handler.close()
    events = {e["message"]: e for e in map(json.loads, (r.data for r in emulator.records(stream)))}
    assert ("job-7", "CRON", "/nightly", None, 0) == tuple(events["inside"][f] for f in FIELDS)
    assert (None,) * 5 == tuple(events["outside"][f] for f in FIELDS)


def test_method_and_path_other_than_text_are_kept_as_given():
    """A context made by other code with no method or path keeps None (not "None"); text has
    its unprintable characters percent-encoded."""
    from dis_logging.context import RequestContext

    job = RequestContext("job-1", None, None)  # type: ignore[arg-type]
    web = RequestContext("r-1", "GET", "/a\nb\u202e")
    assert (None, None) == (job.method, job.path)  # type: ignore[comparison-overlap]
    assert ("GET", "/a%0Ab%E2%80%AE") == (web.method, web.path)
