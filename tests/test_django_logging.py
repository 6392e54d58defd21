"""Tests for dis_logging.django: request context on records, the LOGGING check, Django start-up."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import types
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import django  # type: ignore[import-untyped]  # no django-stubs
import pytest
from django.conf import settings  # type: ignore[import-untyped]  # no django-stubs
from django.http import (  # type: ignore[import-untyped]  # no django-stubs
    HttpResponse,
    StreamingHttpResponse,
)
from django.urls import path  # type: ignore[import-untyped]  # no django-stubs

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="test-only",
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["dis_logging.django"],
        MIDDLEWARE=[
            "dis_logging.django.RequestContextMiddleware",
            f"{__name__}.FakeUserMiddleware",
        ],
        DATABASES={},
        LOGGING_CONFIG=None,  # each test configures logging with its own emulator
        DIS_LOGGING_ACCESS_LOGGER="test.access",
    )
    django.setup()

# The rest of django is imported after settings.configure().
from django.core import checks  # type: ignore[import-untyped]  # no django-stubs
from django.test import AsyncClient, Client, override_settings  # type: ignore[import-untyped]  # no django-stubs
from django.utils.functional import SimpleLazyObject  # type: ignore[import-untyped]  # no django-stubs
from django.utils.log import configure_logging  # type: ignore[import-untyped]  # no django-stubs

from dis_logging.django import (
    RequestContext,
    RequestContextFilter,
    get_request_context,
)
from dis_logging.django.checks import check_logging
from dis_logging.handler import DISHandler

EXAMPLE_PROJECT = Path(__file__).resolve().parent.parent / "examples" / "django_project"
view_logger = logging.getLogger("test.views")


class FakeUser:
    is_authenticated = True
    pk = 7


class FakeUserMiddleware:
    """Stands in for AuthenticationMiddleware without a database."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "HTTP_X_TEST_USER" in request.META:
            request.user = FakeUser()
        return self.get_response(request)


def hello(request):
    view_logger.info("hello from the view", extra={"visitor": "x"})
    seen_in_view.append(get_request_context())
    return HttpResponse("hello")


def boom(request):
    raise RuntimeError("the view failed")


async def ahello(request):
    view_logger.info("hello from an async view")
    return HttpResponse("async hello")


def streamed(request):
    def chunks():
        for index in range(2):
            view_logger.info("sync chunk %d", index)
            yield b"x"

    return StreamingHttpResponse(chunks())


def astreamed(request):
    async def chunks():
        for index in range(2):
            view_logger.info("async chunk %d", index)
            yield b"y"

    return StreamingHttpResponse(chunks())


seen_in_view: list[Any] = []
urlpatterns = [
    path("hello/", hello),
    path("boom/", boom),
    path("ahello/", ahello),
    path("streamed/", streamed),
    path("astreamed/", astreamed),
]


def dis_handler_settings(emulator, stream, **extra):
    options = {
        "class": "dis_logging.DISHandler",
        "filters": ["request"],
        "stream_name": stream,
        "endpoint": emulator.url,
        "project_id": emulator.project_id,
        "region": emulator.region,
        "ak": emulator.ak,
        "sk": emulator.sk,
        "flush_interval": 0.05,
        "partition_key": "django",
    }
    options.update(extra)
    return options


def logging_settings(emulator, stream):
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request": {"()": "dis_logging.django.RequestContextFilter"}},
        "handlers": {"dis": dis_handler_settings(emulator, stream)},
        "root": {"handlers": ["dis"], "level": "INFO"},
    }


@pytest.fixture
def dis_logging_setup(emulator, stream):
    """Configure logging through Django's own configure_logging; yield the DISHandler."""
    configure_logging("logging.config.dictConfig", logging_settings(emulator, stream))
    [handler] = [h for h in logging.getLogger().handlers if isinstance(h, DISHandler)]
    yield handler
    handler.close()


def stored_events(emulator, stream, handler, count):
    assert handler.flush(timeout=5.0)
    return [json.loads(r.data) for r in emulator.wait_for(stream, count, timeout=5.0)]


def by_message(events, message):
    [event] = [e for e in events if e.get("message") == message]
    return event


def request_fields(event):
    names = ("request_id", "http_method", "http_path", "user_id", "status_code")
    return {name: event.get(name) for name in names}


class TestRequestContext:
    def test_view_records_carry_the_request_fields(self, emulator, stream, dis_logging_setup):
        """A record logged in a view carries the request id, method, path and user id."""
        response = Client().get("/hello/", HTTP_X_REQUEST_ID="req-123", HTTP_X_TEST_USER="1")
        events = stored_events(emulator, stream, dis_logging_setup, 2)
        expected = {
            "request_id": "req-123",
            "http_method": "GET",
            "http_path": "/hello/",
            "user_id": "7",
            "status_code": None,
        }
        assert expected == request_fields(by_message(events, "hello from the view"))
        assert "req-123" == response["X-Request-ID"]

    def test_access_record_carries_the_status(self, emulator, stream, dis_logging_setup):
        """The access logger's record carries the response status and the duration."""
        Client().get("/hello/", HTTP_X_REQUEST_ID="req-9")
        event = by_message(stored_events(emulator, stream, dis_logging_setup, 2), "GET /hello/ 200")
        assert ("req-9", 200, "test.access") == (
            event["request_id"],
            event["status_code"],
            event["logger"],
        )
        assert event["duration_ms"] >= 0

    def test_a_decoded_newline_in_the_path_cannot_forge_a_log_line(self):
        """A path whose %0A Django decoded is written with it encoded again, in the access
        record's message and in http_path, so a text log gets one line per request."""
        text = io.StringIO()
        handler = logging.StreamHandler(text)
        handler.setFormatter(logging.Formatter("%(message)s | %(http_path)s"))
        handler.addFilter(RequestContextFilter())
        access = logging.getLogger("test.access")
        access.addHandler(handler)
        level = access.level
        access.setLevel(logging.INFO)
        try:
            Client().get("/a%0ACRITICAL%20forged%1B/")
        finally:
            access.removeHandler(handler)
            access.setLevel(level)
        assert ["GET /a%0ACRITICAL forged%1B/ 404 | /a%0ACRITICAL forged%1B/"] == (
            text.getvalue().splitlines()
        )

    @pytest.mark.parametrize(
        "name",
        [
            "DIS_LOGGING_REQUEST_ID_HEADER",
            "DIS_LOGGING_RESPONSE_HEADER",
            "DIS_LOGGING_ACCESS_LOGGER",
        ],
    )
    def test_a_name_setting_of_another_type_is_refused_at_start(self, name):
        """A header or logger name that is not a string is a ConfigError naming the setting when
        the middleware is built (a non-string header name answered every request with 500)."""
        from dis_logging.django import RequestContextMiddleware
        from dis_logging.errors import ConfigError

        with override_settings(**{name: 5}):
            with pytest.raises(ConfigError) as info:
                RequestContextMiddleware(lambda request: HttpResponse("ok"))
        assert name == info.value.field

    @pytest.mark.parametrize(
        "name", ["DIS_LOGGING_REQUEST_ID_HEADER", "DIS_LOGGING_RESPONSE_HEADER"]
    )
    def test_a_header_setting_that_is_no_header_name_is_refused_at_start(self, name):
        """ "X-Request-ID\n" or "Request ID" as a header name is a ConfigError at start (a
        response header name with a newline made Django refuse every response)."""
        from dis_logging.django import RequestContextMiddleware
        from dis_logging.errors import ConfigError

        for bad in ("X-Request-ID\n", "Request ID", "X-Id:"):
            with override_settings(**{name: bad}):
                with pytest.raises(ConfigError, match="must be an HTTP header name") as info:
                    RequestContextMiddleware(lambda request: HttpResponse("ok"))
            assert name == info.value.field

    def test_generates_a_request_id_without_a_header(self, emulator, stream, dis_logging_setup):
        """Without the header, a fresh 32-character id is used and returned on the response."""
        response = Client().get("/hello/")
        event = by_message(
            stored_events(emulator, stream, dis_logging_setup, 2), "hello from the view"
        )
        assert (response["X-Request-ID"], 32) == (event["request_id"], len(event["request_id"]))

    def test_keeps_the_id_of_an_enclosing_request(self, emulator, stream, dis_logging_setup):
        """Inside a request context an outer integration set (the ASGI middleware around
        Django's ASGI app), the request keeps that id rather than taking the header's."""
        from dis_logging.context import RequestContext as Context
        from dis_logging.context import use_request_context

        with use_request_context(Context(request_id="outer-2", method="GET", path="/hello/")):
            response = Client().get("/hello/", HTTP_X_REQUEST_ID="inner-2")
        event = by_message(
            stored_events(emulator, stream, dis_logging_setup, 2), "hello from the view"
        )
        assert ("outer-2", "outer-2") == (response["X-Request-ID"], event["request_id"])

    def test_replaces_a_malformed_request_id(self, emulator, stream, dis_logging_setup):
        """A request id with spaces or quotes is not trusted; a fresh one is generated."""
        response = Client().get("/hello/", HTTP_X_REQUEST_ID='bad "id" here')
        assert 32 == len(response["X-Request-ID"])

    def test_records_of_a_failing_view_carry_the_fields(self, emulator, stream, dis_logging_setup):
        """django.request's error record for an exception carries the request fields and 500."""
        client = Client(raise_request_exception=False)
        assert 500 == client.get("/boom/", HTTP_X_REQUEST_ID="req-500").status_code
        events = stored_events(emulator, stream, dis_logging_setup, 2)
        event = by_message(events, "Internal Server Error: /boom/")
        assert {
            "request_id": "req-500",
            "http_method": "GET",
            "http_path": "/boom/",
            "user_id": None,
            "status_code": 500,
        } == request_fields(event)
        assert "RuntimeError: the view failed" in event["exception"]

    def test_not_found_record_carries_the_fields(self, emulator, stream, dis_logging_setup):
        """django.request's 404 record, logged after the middleware returned, finds the context."""
        assert 404 == Client().get("/missing/", HTTP_X_REQUEST_ID="req-404").status_code
        event = by_message(
            stored_events(emulator, stream, dis_logging_setup, 2), "Not Found: /missing/"
        )
        assert ("req-404", "/missing/", 404) == (
            event["request_id"],
            event["http_path"],
            event["status_code"],
        )

    def test_async_views_get_the_context(self, emulator, stream, dis_logging_setup):
        """Under ASGI the record of an async view carries the request fields."""
        response = asyncio.run(AsyncClient().get("/ahello/", headers={"X-Request-ID": "req-async"}))
        assert 200 == response.status_code
        event = by_message(
            stored_events(emulator, stream, dis_logging_setup, 2), "hello from an async view"
        )
        assert ("req-async", "GET", "/ahello/") == (
            event["request_id"],
            event["http_method"],
            event["http_path"],
        )

    def test_context_ends_with_the_request(self, emulator, stream, dis_logging_setup):
        """After the request, get_request_context returns None and records get empty fields."""
        seen_in_view.clear()
        Client().get("/hello/", HTTP_X_REQUEST_ID="req-1")
        logging.getLogger("test.after").info("after the request")
        events = stored_events(emulator, stream, dis_logging_setup, 3)
        assert ("req-1", None) == (seen_in_view[0].request_id, get_request_context())
        assert dict.fromkeys(request_fields({}), None) == request_fields(
            by_message(events, "after the request")
        )


class TestStreamedResponses:
    """A streamed body is produced after the view returned, while the server sends it."""

    @pytest.fixture
    def lines(self):
        text = io.StringIO()
        handler = logging.StreamHandler(text)
        handler.setFormatter(logging.Formatter("%(message)s | %(request_id)s %(http_path)s"))
        handler.addFilter(RequestContextFilter())
        view_logger.addHandler(handler)
        view_logger.setLevel(logging.INFO)
        yield lambda: text.getvalue().splitlines()
        view_logger.removeHandler(handler)
        view_logger.setLevel(logging.NOTSET)

    def test_records_of_a_streamed_body_carry_the_request_fields(self, lines):
        """Records logged while a StreamingHttpResponse's iterator runs have the context."""
        response = Client().get("/streamed/", HTTP_X_REQUEST_ID="st-1")
        assert b"xx" == b"".join(response.streaming_content)
        response.close()
        assert (["sync chunk 0 | st-1 /streamed/", "sync chunk 1 | st-1 /streamed/"], None) == (
            lines(),
            get_request_context(),
        )

    def test_records_of_an_async_streamed_body_carry_the_request_fields(self, lines):
        """Under ASGI, an asynchronous iterator's records have the context too."""

        async def fetch():
            response = await AsyncClient().get("/astreamed/", headers={"X-Request-ID": "st-2"})
            return [chunk async for chunk in response.streaming_content]

        assert [b"y", b"y"] == asyncio.run(fetch())
        assert [
            "async chunk 0 | st-2 /astreamed/",
            "async chunk 1 | st-2 /astreamed/",
        ] == lines()


class TestRequestContextFilter:
    def make_record(self, **extra):
        record = logging.LogRecord("t", logging.INFO, __file__, 1, "m", (), None)
        record.__dict__.update(extra)
        return record

    def test_sets_empty_fields_outside_a_request(self):
        """Outside a request every field is set to None, so %-formats never fail."""
        record = self.make_record()
        assert RequestContextFilter().filter(record)
        assert "None None" == logging.Formatter("%(request_id)s %(status_code)s").format(record)

    def test_is_the_shared_filter(self):
        """dis_logging.django.RequestContextFilter is the framework-neutral filter itself."""
        from dis_logging import context

        assert context.RequestContextFilter is RequestContextFilter
        assert issubclass(RequestContext, context.RequestContext)

    def test_keeps_fields_the_record_already_has(self):
        """A status_code passed in extra is not overwritten."""
        record = self.make_record(status_code=418)
        RequestContextFilter().filter(record)
        assert 418 == record.status_code

    def test_reads_a_user_only_once_loaded(self):
        """A lazy user that nothing has loaded yet is not loaded by logging."""
        loads = []

        def load():
            loads.append(1)
            return FakeUser()

        request = types.SimpleNamespace(user=SimpleLazyObject(load))
        context = RequestContext("id", "GET", "/", request=request)
        assert (None, []) == (context.user_id, loads)
        assert request.user.is_authenticated
        assert "7" == context.user_id


def valid_logging(emulator, stream):
    return logging_settings(emulator, stream)


class TestSystemCheck:
    def ids(self, messages):
        return sorted(message.id for message in messages)

    def test_accepts_a_valid_configuration(self, emulator, stream):
        """A complete DISHandler entry with filter and middleware yields no messages."""
        with override_settings(LOGGING=valid_logging(emulator, stream)):
            assert [] == check_logging()

    def test_reports_an_invalid_option(self, emulator, stream):
        """An invalid handler option is reported as dis_logging.E001 naming the handler."""
        config = valid_logging(emulator, stream)
        config["handlers"]["dis"]["stream_name"] = "no spaces allowed"
        with override_settings(LOGGING=config):
            [message] = check_logging()
        assert "dis_logging.E001" == message.id
        assert "LOGGING['handlers']['dis']: stream_name" in message.msg

    def test_reports_an_unknown_option(self, emulator, stream):
        """A misspelt option is reported as dis_logging.E001."""
        config = valid_logging(emulator, stream)
        config["handlers"]["dis"]["flush_intervall"] = 1
        with override_settings(LOGGING=config):
            [message] = check_logging()
        assert "dis_logging.E001" == message.id
        assert "did you mean 'flush_interval'" in message.msg
        assert "Correct or remove the option" in message.hint

    def test_reports_missing_credentials(self, emulator, stream):
        """A handler without credentials, and none in the environment, is reported."""
        config = valid_logging(emulator, stream)
        del config["handlers"]["dis"]["ak"], config["handlers"]["dis"]["sk"]
        with override_settings(LOGGING=config):
            [message] = check_logging()
        assert "dis_logging.E001" == message.id
        assert "HUAWEICLOUD_SDK_*" in message.hint

    def test_warns_when_the_filter_is_missing(self, emulator, stream):
        """With the middleware but without the filter on a DISHandler, W001 is reported."""
        config = valid_logging(emulator, stream)
        del config["handlers"]["dis"]["filters"]
        with override_settings(LOGGING=config):
            assert ["dis_logging.W001"] == self.ids(check_logging())

    def test_warns_when_the_middleware_is_missing(self, emulator, stream):
        """With the filter but without the middleware, W002 is reported."""
        with override_settings(LOGGING=valid_logging(emulator, stream), MIDDLEWARE=[]):
            assert ["dis_logging.W002"] == self.ids(check_logging())

    def test_warns_about_an_unused_handler(self, emulator, stream):
        """A DISHandler no logger uses is reported as W003."""
        config = valid_logging(emulator, stream)
        del config["root"]
        with override_settings(LOGGING=config):
            assert ["dis_logging.W003"] == self.ids(check_logging())

    def test_counts_a_handler_wrapped_by_another_as_used(self, emulator, stream):
        """A DISHandler that is the target of a MemoryHandler is not reported as unused."""
        config = valid_logging(emulator, stream)
        config["handlers"]["buffer"] = {
            "class": "logging.handlers.MemoryHandler",
            "capacity": 10,
            "target": "dis",
        }
        config["root"]["handlers"] = ["buffer"]
        with override_settings(LOGGING=config):
            assert [] == check_logging()

    def test_accepts_the_framework_neutral_filter_path(self, emulator, stream):
        """The shared filter under its dis_logging.context path counts as the request filter."""
        config = valid_logging(emulator, stream)
        config["filters"]["request"] = {"()": "dis_logging.context.RequestContextFilter"}
        with override_settings(LOGGING=config):
            assert [] == check_logging()

    def test_ignores_other_handlers(self):
        """Handlers of other classes are not examined."""
        config = {"version": 1, "handlers": {"console": {"class": "logging.StreamHandler"}}}
        with override_settings(LOGGING=config):
            assert [] == check_logging()

    def test_is_registered_with_django(self, emulator, stream):
        """The installed app registers the check under the dis_logging tag."""
        config = valid_logging(emulator, stream)
        config["handlers"]["dis"]["overflow"] = "explode"
        with override_settings(LOGGING=config):
            messages = checks.run_checks(tags=["dis_logging"])
        assert ["dis_logging.E001"] == self.ids(messages)


@pytest.fixture
def example_env(service_env):
    """The example project's environment: the emulator (or ``endpoint``), ``stream``, unbuffered
    output."""

    def build(stream, endpoint=None):
        variables = {"DIS_LOGGING_STREAM": stream, "PYTHONUNBUFFERED": "1"}
        if endpoint is not None:
            variables["DIS_LOGGING_ENDPOINT"] = endpoint  # wins over the emulator's region URL
        return service_env(**variables)

    return build


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_when_up(url, deadline):
    """GET url, retrying while the server is not listening yet, until the deadline."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while True:
        try:
            with opener.open(url, timeout=10) as response:
                return response.read()
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            threading.Event().wait(0.1)


class TestStartup:
    def test_idle_handler_starts_no_thread(self, emulator, stream):
        """Configuring logging the Django way starts no thread until the first record."""
        before = set(threading.enumerate())
        configure_logging("logging.config.dictConfig", logging_settings(emulator, stream))
        [handler] = [h for h in logging.getLogger().handlers if isinstance(h, DISHandler)]
        try:
            idle = set(threading.enumerate()) - before
            logging.getLogger("test.startup").info("first record")
            assert handler.flush(timeout=5.0)
            busy = set(threading.enumerate()) - before
        finally:
            handler.close()
        assert (set(), True) == (idle, bool(busy))

    def test_manage_py_check_exits_promptly(self, emulator, stream, example_env):
        """manage.py check with a DISHandler whose endpoint refuses connections exits at once."""
        env = example_env(stream, endpoint=f"http://127.0.0.1:{free_port()}")
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "manage.py", "check"],
            cwd=EXAMPLE_PROJECT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        elapsed = time.monotonic() - started
        assert (0, "System check identified no issues (0 silenced).") == (
            result.returncode,
            result.stdout.strip(),
        ), result.stderr
        assert elapsed < 15.0

    def test_manage_py_check_reports_bad_settings(self, emulator, stream, example_env):
        """manage.py check fails when the handler cannot be configured, naming the setting."""
        env = example_env(stream)
        env["DIS_LOGGING_STREAM"] = "bad stream name"
        result = subprocess.run(
            [sys.executable, "manage.py", "check"],
            cwd=EXAMPLE_PROJECT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert 0 != result.returncode
        assert "stream_name" in result.stderr

    def test_manage_py_works_without_credentials_when_switched_off(self):
        """With DIS_LOGGING_ENABLED=false and no credentials, manage.py check runs and passes."""
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("HUAWEICLOUD_SDK_", "DIS_LOGGING_", "DJANGO_"))
        }
        env.update(DIS_LOGGING_ENABLED="false", PYTHONUNBUFFERED="1")
        result = subprocess.run(
            [sys.executable, "manage.py", "check"],
            cwd=EXAMPLE_PROJECT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (0, "System check identified no issues (0 silenced).") == (
            result.returncode,
            result.stdout.strip(),
        ), result.stderr

    def test_runserver_with_autoreloader_ships_each_record_once(
        self, emulator, stream, tmp_path, example_env
    ):
        """Under runserver's reloader (parent and child) records are shipped once and it stops."""
        port = free_port()
        log = (tmp_path / "runserver.log").open("w")
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"],
            cwd=EXAMPLE_PROJECT,
            env=example_env(stream),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            body = get_when_up(
                f"http://127.0.0.1:{port}/hello/?name=reloader", time.monotonic() + 30
            )
            assert b'"hello": "reloader"' in body
            emulator.wait_for(stream, 1, timeout=10.0)
        finally:
            os.killpg(server.pid, signal.SIGINT)
            try:
                returncode = server.wait(timeout=20)
            finally:
                if server.poll() is None:
                    os.killpg(server.pid, signal.SIGKILL)
                    server.wait()
                log.close()
        messages = [json.loads(r.data).get("message") for r in emulator.records(stream)]
        assert 1 == messages.count("saying hello to reloader"), messages
        assert 1 == sum(1 for m in messages if m.startswith("Watching for file changes")), messages
        assert returncode is not None
