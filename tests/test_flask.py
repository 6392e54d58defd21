"""Tests for dis_logging.flask: the Flask example and the extension, through Flask's test client."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import re
import sys
from pathlib import Path

import flask
import pytest

from dis_logging.context import FIELDS, RequestContextFilter, get_request_context
from dis_logging.errors import ConfigError
from dis_logging.flask import RequestContext, flask_login_user_id

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HEX32 = re.compile(r"[0-9a-f]{32}")
view_logger = logging.getLogger("test.flask.view")


def events(emulator, stream, count):
    return [json.loads(r.data) for r in emulator.wait_for(stream, count, timeout=10.0)]


@pytest.fixture
def flask_example(emulator, stream, monkeypatch):
    """examples/flask_app.py imported with the environment pointing at the emulator."""
    monkeypatch.setenv("HUAWEICLOUD_SDK_AK", emulator.ak)
    monkeypatch.setenv("HUAWEICLOUD_SDK_SK", emulator.sk)
    monkeypatch.setenv("HUAWEICLOUD_SDK_PROJECT_ID", emulator.project_id)
    monkeypatch.setenv("HUAWEICLOUD_SDK_REGION_DIS_CN_NORTH_4", emulator.url)
    monkeypatch.setenv("DIS_LOGGING_STREAM", stream)
    spec = importlib.util.spec_from_file_location("flask_app_example", EXAMPLES / "flask_app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    root = logging.getLogger()
    before = set(root.handlers)
    app = module.create_app()
    (handler,) = set(root.handlers) - before
    yield app, handler
    root.removeHandler(handler)
    handler.close()
    sys.modules.pop("flask_app_example", None)


def test_flask_example(emulator, stream, flask_example):
    """The Flask example ships the view's record and an access record with the request fields."""
    app, handler = flask_example
    client = app.test_client()
    given = client.get("/orders/7", headers={"X-Request-ID": "req-flask-1"})
    generated = client.get("/orders/8")
    assert (200, "req-flask-1") == (given.status_code, given.headers["X-Request-ID"])
    assert {"order_id": 7, "request_id": "req-flask-1"} == given.get_json()
    assert HEX32.fullmatch(generated.headers["X-Request-ID"])
    assert handler.flush(10.0)
    by_message = {e["message"]: e for e in events(emulator, stream, 4)}
    view = by_message["order 7 shown"]
    assert ("req-flask-1", "GET", "/orders/7", None, None, 7, "flask-example") == (
        *(view[f] for f in FIELDS),
        view["order_id"],
        view["service"],
    )
    access = by_message["GET /orders/7 200"]
    assert ("example.access", "req-flask-1", 200) == (
        access["logger"],
        access["request_id"],
        access["status_code"],
    )
    assert isinstance(access["duration_ms"], float)
    assert generated.headers["X-Request-ID"] == by_message["GET /orders/8 200"]["request_id"]


def test_flask_example_error(emulator, stream, flask_example):
    """An unhandled exception gives a 500 with the id header and an access record with 500."""
    app, handler = flask_example
    response = app.test_client().get("/boom", headers={"X-Request-ID": "req-boom"})
    assert (500, "req-boom") == (response.status_code, response.headers["X-Request-ID"])
    assert handler.flush(10.0)
    stored = {e["message"]: e for e in events(emulator, stream, 2)}
    access = stored["GET /boom 500"]
    assert ("req-boom", 500, "ERROR") == (
        access["request_id"],
        access["status_code"],
        access["level"],
    )
    # Flask's own record of the exception has the request fields as well
    (error,) = [e for e in stored.values() if e["logger"] == "flask_app_example"]
    assert ("req-boom", "/boom") == (error["request_id"], error["http_path"])
    assert "RuntimeError: the view failed" in error["exception"]


@pytest.fixture
def dis_handler(make_context_handler):
    return make_context_handler("test.flask.view", "test.flask.access")


class User:
    is_authenticated = True

    def get_id(self):
        return "u-5"


def capture_lines(logger, fmt):
    """Attach to ``logger`` (at INFO) a text handler with ``fmt`` and the request-context filter;
    return the handler (to remove afterwards) and the text it writes."""
    text = io.StringIO()
    handler = logging.StreamHandler(text)
    handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(RequestContextFilter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler, text


def build_app(extension, *, early_exit=False):
    app = flask.Flask("test_flask_app")
    app.config["PROPAGATE_EXCEPTIONS"] = True

    if early_exit:

        @app.before_request
        def short_circuit():
            view_logger.info("refused early")
            return "refused", 403

    extension.init_app(app)

    @app.get("/hello")
    def hello():
        if "X-User" in flask.request.headers:
            flask.g._login_user = User()  # what Flask-Login leaves once it loaded the user
        view_logger.info("hello")
        return "hello"

    @app.get("/fail")
    def fail():
        raise RuntimeError("propagated")

    return app


class TestExtension:
    def test_factory_pattern_and_user(self, emulator, stream, dis_handler):
        """init_app on a later app works; user_id comes from Flask-Login's loaded user."""
        extension = RequestContext(access_logger="test.flask.access")
        app = build_app(extension)
        response = app.test_client().get("/hello", headers={"X-User": "1", "X-Request-ID": "f-1"})
        assert "f-1" == response.headers["X-Request-ID"]
        assert extension is app.extensions["dis_logging"]
        assert dis_handler.flush(10.0)
        stored = {e["logger"]: e for e in events(emulator, stream, 2)}
        assert ("f-1", "u-5", None) == (
            stored["test.flask.view"]["request_id"],
            stored["test.flask.view"]["user_id"],
            stored["test.flask.view"]["status_code"],
        )
        assert ("u-5", 200) == (
            stored["test.flask.access"]["user_id"],
            stored["test.flask.access"]["status_code"],
        )

    def test_context_is_set_before_other_hooks(self, emulator, stream, dis_handler):
        """A before_request hook registered earlier still logs inside the request context."""
        app = build_app(RequestContext(), early_exit=True)
        response = app.test_client().get("/hello", headers={"X-Request-ID": "f-2"})
        assert (403, "f-2") == (response.status_code, response.headers["X-Request-ID"])
        assert dis_handler.flush(10.0)
        (event,) = events(emulator, stream, 1)
        assert ("refused early", "f-2") == (event["message"], event["request_id"])

    def test_a_decoded_newline_in_the_path_cannot_forge_a_log_line(self):
        """A path whose %0A the server decoded is written with it encoded again, in the access
        record's message and in http_path, so a text log gets one line per request."""
        access = logging.getLogger("test.flask.forged")
        handler, text = capture_lines(access, "%(message)s | %(http_path)s")
        try:
            app = build_app(RequestContext(access_logger="test.flask.forged"))
            app.test_client().get("/a%0ACRITICAL%20forged%1B")
        finally:
            access.removeHandler(handler)
        assert ["GET /a%0ACRITICAL forged%1B 404 | /a%0ACRITICAL forged%1B"] == (
            text.getvalue().splitlines()
        )

    def test_custom_headers(self):
        """Custom request and response header names are read and written."""
        extension = RequestContext(request_id_header="X-Correlation-ID", response_header="X-Ref")
        response = (
            build_app(extension).test_client().get("/hello", headers={"X-Correlation-ID": "c-1"})
        )
        assert ("c-1", None) == (
            response.headers.get("X-Ref"),
            response.headers.get("X-Request-ID"),
        )

    def test_no_headers(self):
        """With both header names None the id is always generated and never written."""
        extension = RequestContext(request_id_header=None, response_header=None)
        response = build_app(extension).test_client().get("/hello", headers={"X-Request-ID": "x"})
        assert None is response.headers.get("X-Request-ID")

    def test_propagated_exception_resets_context(self, emulator, stream, dis_handler):
        """With PROPAGATE_EXCEPTIONS the access record says 500 and the context is reset."""
        app = build_app(RequestContext(access_logger="test.flask.access"))
        with pytest.raises(RuntimeError, match="propagated"):
            app.test_client().get("/fail", headers={"X-Request-ID": "f-3"})
        assert get_request_context() is None
        assert dis_handler.flush(10.0)
        (access,) = events(emulator, stream, 1)
        assert ("GET /fail 500", "ERROR", "f-3") == (
            access["message"],
            access["level"],
            access["request_id"],
        )


def streaming_app(extension):
    """An app with streamed bodies: through stream_with_context, a plain generator, and one
    that fails after its first chunk."""
    app = flask.Flask("test_flask_streaming")
    extension.init_app(app)

    def chunks(count):
        for index in range(count):
            view_logger.info("chunk %d", index)
            yield "x"

    @app.get("/kept")
    def kept():
        return flask.Response(flask.stream_with_context(chunks(2)))

    @app.get("/plain")
    def plain():
        return flask.Response(chunks(2))

    @app.get("/cut")
    def cut():
        def failing():
            yield "x"
            raise RuntimeError("the body failed")

        return flask.Response(flask.stream_with_context(failing()))

    return app


class TestStreamedResponses:
    """A streamed body is produced after the view returned, while the server sends it."""

    @pytest.fixture
    def lines(self):
        text = io.StringIO()
        handler = logging.StreamHandler(text)
        handler.setFormatter(
            logging.Formatter("%(levelname)s %(message)s | %(request_id)s %(status_code)s")
        )
        handler.addFilter(RequestContextFilter())
        loggers = [logging.getLogger(name) for name in ("test.flask.view", "test.flask.stream")]
        for logger in loggers:
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
        yield lambda: text.getvalue().splitlines()
        for logger in loggers:
            logger.removeHandler(handler)
            logger.setLevel(logging.NOTSET)

    @pytest.mark.parametrize("path", ["/kept", "/plain"])
    def test_one_access_record_after_the_body_and_the_context_inside_it(self, lines, path):
        """Records logged by the body carry the request's context, and the one access record is
        written when the body has been sent (Flask 3.1 runs teardown_request twice for a
        stream_with_context body: once when the view returns, once when the body ends)."""
        app = streaming_app(RequestContext(access_logger="test.flask.stream"))
        response = app.test_client().get(path, headers={"X-Request-ID": "st-1"})
        assert (b"xx", None) == (response.get_data(), get_request_context())
        assert [
            "INFO chunk 0 | st-1 200",
            "INFO chunk 1 | st-1 200",
            f"INFO GET {path} 200 | st-1 200",
        ] == lines()

    def test_a_body_that_fails_is_one_error_record(self, lines):
        """A body that raises after the response started: one ERROR access record with the
        status sent, as the ASGI middleware writes it."""
        app = streaming_app(RequestContext(access_logger="test.flask.stream"))
        response = app.test_client().get("/cut", headers={"X-Request-ID": "st-2"})
        with pytest.raises(RuntimeError, match="the body failed"):
            response.get_data()
        response.close()
        assert (["ERROR GET /cut 200 | st-2 200"], None) == (lines(), get_request_context())

    def test_a_body_never_sent_is_logged_when_closed(self, lines):
        """A HEAD request: the server never iterates the body, only closes it. (Flask's test
        client, as here, closes a response only when told to.)"""
        app = streaming_app(RequestContext(access_logger="test.flask.stream"))
        response = app.test_client().head("/kept", headers={"X-Request-ID": "st-3"})
        assert [] == lines()
        response.close()  # as the WSGI server does once it sent the response
        assert (b"", None) == (response.get_data(), get_request_context())
        assert ["INFO HEAD /kept 200 | st-3 200"] == lines()


def test_requests_inside_one_app_context_each_get_their_record_and_reset():
    """With the app context pushed around several requests (a test fixture's
    ``with app.app_context():``), flask.g is shared by them: each still gets its access record,
    and no context is left between or after them."""
    access = logging.getLogger("test.flask.shared")
    handler, text = capture_lines(access, "%(message)s | %(request_id)s")
    app = build_app(RequestContext(access_logger="test.flask.shared"))
    between = []
    try:
        with app.app_context():
            client = app.test_client()
            for index in range(3):
                client.get("/hello", headers={"X-Request-ID": f"s-{index}"})
                between.append(get_request_context())
    finally:
        access.removeHandler(handler)
    assert ([None] * 3, None) == (between, get_request_context())
    assert [f"GET /hello 200 | s-{index}" for index in range(3)] == text.getvalue().splitlines()


class TestEnclosingContext:
    def test_an_enclosing_request_keeps_its_id(self):
        """Inside a request context an outer integration set (the ASGI middleware around a
        Flask app), the request keeps that id: on the response and on the records."""
        from dis_logging.context import RequestContext as Context
        from dis_logging.context import use_request_context

        seen = []
        app = build_app(RequestContext())

        @app.before_request
        def record_the_id():
            context = get_request_context()
            seen.append(None if context is None else context.request_id)

        with use_request_context(Context(request_id="outer-1", method="GET", path="/f/hello")):
            response = app.test_client().get("/hello", headers={"X-Request-ID": "inner-1"})
        assert ("outer-1", ["outer-1"]) == (response.headers["X-Request-ID"], seen)

    def test_a_teardown_function_that_raises_leaves_no_context_and_loses_no_record(self):
        """A teardown_request function that raises stops Flask's teardown_request loop before
        the extension's: the context is still reset (in its teardown_appcontext function) and
        the access record still written, with the error; the next request gets its own id."""
        access = logging.getLogger("test.flask.broken")
        handler, text = capture_lines(access, "%(levelname)s %(message)s | %(request_id)s")
        app = build_app(RequestContext(access_logger="test.flask.broken"))
        calls = []

        @app.teardown_request
        def breaks_once(error):
            calls.append(error)
            if len(calls) == 1:
                raise RuntimeError("teardown failed")

        client = app.test_client()
        try:
            with pytest.raises(RuntimeError, match="teardown failed"):
                client.get("/hello", headers={"X-Request-ID": "first-1"})
            left = get_request_context()
            second = client.get("/hello")
        finally:
            access.removeHandler(handler)
        assert (None, True) == (left, bool(HEX32.fullmatch(second.headers["X-Request-ID"])))
        lines = text.getvalue().splitlines()
        assert ["INFO GET /hello 200 | first-1"] == lines[:1]
        assert 2 == len(lines)

    def test_every_teardown_request_function_runs_inside_the_context(self):
        """teardown_request functions of extensions set up before this one (Flask runs them in
        reverse order, after the extension's) log with the request's context too; before, only
        those registered after the extension did. teardown_appcontext functions run after the
        request context is gone."""
        handler, text = capture_lines(view_logger, "%(message)s | %(request_id)s")
        app = flask.Flask("test_flask_teardowns")

        @app.teardown_request
        def request_before(error):
            view_logger.info("teardown_request set up before")

        @app.teardown_appcontext
        def appcontext_before(error):
            view_logger.info("teardown_appcontext set up before")

        RequestContext(app)

        @app.teardown_request
        def request_after(error):
            view_logger.info("teardown_request set up after")

        @app.get("/t")
        def view():
            return "t"

        try:
            app.test_client().get("/t", headers={"X-Request-ID": "td-1"})
            with app.app_context():  # no request: nothing is set or reset
                pass
        finally:
            view_logger.removeHandler(handler)
            view_logger.setLevel(logging.NOTSET)
        assert (
            [
                "teardown_request set up after | td-1",
                "teardown_request set up before | td-1",
                "teardown_appcontext set up before | None",
                "teardown_appcontext set up before | None",  # the app context of no request
            ],
            None,
        ) == (text.getvalue().splitlines(), get_request_context())


def test_flask_login_user_id_outside_app_context():
    """Outside an application context there is no user."""
    assert None is flask_login_user_id(None)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"response_header": 5}, "response_header"),
        ({"request_id_header": "X-Request-ID\n"}, "request_id_header"),
        ({"response_header": "Request ID"}, "response_header"),
        ({"access_logger": 5}, "access_logger"),
        ({"user_id": "id"}, "user_id"),
    ],
)
def test_a_header_or_logger_of_the_wrong_kind_is_refused_at_start(options, field):
    """response_header=5 answered every request with 500 ('int' object has no attribute
    'lower', in after_request); such values are a ConfigError naming the setting now."""
    with pytest.raises(ConfigError) as info:
        RequestContext(**options)
    assert field == info.value.field


def test_the_access_logger_may_be_a_logger():
    """access_logger=logging.getLogger(...) is that logger (a TypeError before)."""
    access = logging.getLogger("test.flask.given")
    assert access is RequestContext(access_logger=access).access_logger


def test_a_misspelt_keyword_names_the_setting_it_meant():
    """A misspelt keyword is a ConfigError suggesting the right name, not a bare TypeError."""
    with pytest.raises(ConfigError, match=r"'acces_logger' \(did you mean 'access_logger'\?\)"):
        RequestContext(acces_logger="app.access")  # type: ignore[call-arg]


def test_registering_twice_on_one_app_runs_the_hooks_once():
    """init_app on an app it already serves does nothing (one access record per request);
    a second RequestContext on the same app is a ConfigError."""
    text = io.StringIO()
    handler = logging.StreamHandler(text)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access = logging.getLogger("test.flask.twice")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        extension = RequestContext(access_logger="test.flask.twice")
        app = build_app(extension)
        extension.init_app(app)
        response = app.test_client().get("/hello")
    finally:
        access.removeHandler(handler)
    assert (["GET /hello 200"], 1) == (
        text.getvalue().splitlines(),
        len(response.headers.getlist("X-Request-ID")),
    )
    with pytest.raises(ConfigError, match="already has a dis_logging RequestContext"):
        RequestContext(app)
