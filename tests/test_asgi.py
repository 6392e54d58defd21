"""Tests for dis_logging.asgi: the FastAPI example under uvicorn, and Starlette in process."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import queue
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute

from dis_logging.asgi import RequestContextMiddleware, scope_user_id
from dis_logging.context import FIELDS, RequestContextFilter, get_request_context
from dis_logging.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HEX32 = re.compile(r"[0-9a-f]{32}")
view_logger = logging.getLogger("test.asgi.view")


#: ASGI servers the FastAPI example runs under: command line after ``python -m``.
SERVERS = {
    "uvicorn": ["uvicorn", "fastapi_app:app", "--host", "127.0.0.1", "--port", "0"],
    "hypercorn": ["hypercorn", "fastapi_app:app", "--bind", "127.0.0.1:0"],
}


@contextmanager
def asgi_serving(server, env):
    """Run examples/fastapi_app.py under an ASGI server process on 127.0.0.1 and a free port."""
    process = subprocess.Popen(
        [sys.executable, "-m", *SERVERS[server]],
        cwd=EXAMPLES,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def read():
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            lines.put(line)
        lines.put("")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        url = None
        while url is None:
            try:
                line = lines.get(timeout=30.0)
            except queue.Empty:
                pytest.fail(f"{server} did not start in 30 s:\n" + "".join(output))
            if not line:
                pytest.fail(f"{server} exited:\n" + "".join(output))
            found = re.search(r"(?i)running on (http://127\.0\.0\.1:\d+)", line)
            url = found.group(1) if found else None
        yield url, output
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # graceful: runs the lifespan shutdown
        try:
            process.wait(timeout=30.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10.0)
        reader.join(10.0)
        assert process.stdout is not None
        process.stdout.close()


def get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10.0) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def events(emulator, stream, count):
    return [json.loads(r.data) for r in emulator.wait_for(stream, count, timeout=15.0)]


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_fastapi_example_under_a_server(emulator, stream, server, service_env):
    """The FastAPI example, served by a real ASGI server, ships records with request fields."""
    env = service_env(DIS_LOGGING_STREAM=stream, PYTHONUNBUFFERED="1")
    with asgi_serving(server, env) as (url, output):
        given = get(url + "/items/42", {"X-Request-ID": "req-fastapi-1"})
        generated = get(url + "/items/7", {"X-Request-ID": "not a valid id"})
        failed = get(url + "/boom", {"X-Request-ID": "req-boom"})
        # startup, 2 x (item + access), boom access
        events(emulator, stream, 6)
    assert (200, "req-fastapi-1") == (given[0], given[1]["x-request-id"])
    assert {"item_id": 42, "request_id": "req-fastapi-1"} == json.loads(given[2])
    assert HEX32.fullmatch(generated[1]["x-request-id"]), generated
    assert (500, "req-boom") == (failed[0], failed[1]["x-request-id"])
    # after the SIGINT the lifespan shutdown logged "service stopping" and closed the handler
    stored = events(emulator, stream, 7)
    by_message = {e["message"]: e for e in stored}
    assert {"service started", "service stopping"} <= set(by_message), output
    assert (None,) * 5 == tuple(by_message["service started"][f] for f in FIELDS)
    item = by_message["item 42 looked up"]
    assert ("req-fastapi-1", "GET", "/items/42", None, None, 42, "fastapi-example") == (
        *(item[f] for f in FIELDS),
        item["item_id"],
        item["service"],
    )
    assert generated[1]["x-request-id"] == by_message["item 7 looked up"]["request_id"]
    access = by_message["GET /items/42 200"]
    assert ("example.access", "INFO", "req-fastapi-1", 200) == (
        access["logger"],
        access["level"],
        access["request_id"],
        access["status_code"],
    )
    assert isinstance(access["duration_ms"], float)
    boom = by_message["GET /boom 500"]
    assert ("ERROR", "req-boom", 500) == (boom["level"], boom["request_id"], boom["status_code"])


class TokenBackend(AuthenticationBackend):
    async def authenticate(self, conn):
        name = conn.headers.get("X-User")
        return (AuthCredentials(["authenticated"]), SimpleUser(name)) if name else None


async def hello(request):
    view_logger.info("hello", extra={"state_id": request.state.request_id})
    return PlainTextResponse("hello")


async def own_header(request):
    return PlainTextResponse("own", headers={"X-Request-ID": "set-by-app"})


async def fail(request):
    raise RuntimeError("failed before any response")


async def cut_short(request):
    async def body():
        yield b"first part"
        raise RuntimeError("failed in the middle of the body")

    return StreamingResponse(body())


async def echo_context(websocket):
    await websocket.accept()
    context = get_request_context()
    await websocket.send_text(context.request_id if context else "")
    await websocket.close()


ROUTES = [
    Route("/hello", hello),
    Route("/own", own_header),
    Route("/fail", fail),
    Route("/cut", cut_short),
    WebSocketRoute("/ws", echo_context),
]


@pytest.fixture
def dis_handler(make_context_handler):
    return make_context_handler("test.asgi.view", "test.asgi.access")


def starlette_app(**options):
    return Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(RequestContextMiddleware, **options),
            Middleware(AuthenticationMiddleware, backend=TokenBackend()),
        ],
    )


def call(app, path, headers=None):
    """GET ``path`` from an ASGI app in process, through httpx's ASGI transport."""

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path, headers=headers or {})

    return asyncio.run(main())


def websocket_text(app, path, headers):
    """Open a WebSocket to an ASGI app in process and return the first text it sends."""
    sent = []

    async def main():
        inbox = [{"type": "websocket.connect"}]

        async def receive():
            if inbox:
                return inbox.pop()
            return {"type": "websocket.disconnect", "code": 1000}

        async def send(message):
            sent.append(message)

        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "ws",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "server": ("test", 80),
            "client": ("127.0.0.1", 1),
            "subprotocols": [],
        }
        await app(scope, receive, send)

    asyncio.run(main())
    accept = next(m for m in sent if m["type"] == "websocket.accept")
    text = next(m["text"] for m in sent if m["type"] == "websocket.send")
    return accept, text


class TestStarlette:
    def test_user_from_authentication_middleware(self, emulator, stream, dis_handler):
        """user_id comes from scope['user'] set by an inner AuthenticationMiddleware."""
        response = call(
            starlette_app(access_logger="test.asgi.access"),
            "/hello",
            {"X-User": "alice", "X-Request-ID": "r-1"},
        )
        assert ("hello", "r-1") == (response.text, response.headers["X-Request-ID"])
        stored = {e["logger"]: e for e in events(emulator, stream, 2)}
        assert ("r-1", "alice", "r-1") == (
            stored["test.asgi.view"]["request_id"],
            stored["test.asgi.view"]["user_id"],
            stored["test.asgi.view"]["state_id"],
        )
        assert ("GET /hello 200", "alice") == (
            stored["test.asgi.access"]["message"],
            stored["test.asgi.access"]["user_id"],
        )

    def test_custom_header_names(self, emulator, stream, dis_handler):
        """Custom request and response header names are read and written."""
        app = starlette_app(request_id_header="X-Correlation-ID", response_header="X-Trace-Ref")
        response = call(app, "/hello", {"X-Correlation-ID": "corr-9"})
        assert ("corr-9", None) == (
            response.headers.get("X-Trace-Ref"),
            response.headers.get("X-Request-ID"),
        )
        assert "corr-9" == events(emulator, stream, 1)[0]["request_id"]

    def test_no_request_header_always_generates(self, emulator, stream, dis_handler):
        """With request_id_header=None an incoming id is ignored and a new one generated."""
        response = call(starlette_app(request_id_header=None), "/hello", {"X-Request-ID": "x"})
        assert HEX32.fullmatch(response.headers["X-Request-ID"])

    def test_no_response_header(self):
        """With response_header=None the response carries no id header."""
        response = call(starlette_app(response_header=None), "/hello", {"X-Request-ID": "r-2"})
        assert None is response.headers.get("X-Request-ID")

    def test_header_set_by_the_app_is_kept(self):
        """A response that already has the header keeps the app's value, once."""
        response = call(starlette_app(), "/own", {"X-Request-ID": "r-3"})
        assert ["set-by-app"] == response.headers.get_list("X-Request-ID")

    def test_failure_before_response_logs_500(self, emulator, stream, dis_handler):
        """An app that raises before responding gets an ERROR access record with status 500."""
        app = starlette_app(access_logger="test.asgi.access")
        with pytest.raises(RuntimeError, match="failed before any response"):
            call(app, "/fail", {"X-Request-ID": "r-4"})
        (access,) = events(emulator, stream, 1)
        assert ("GET /fail 500", "ERROR", "r-4", 500) == (
            access["message"],
            access["level"],
            access["request_id"],
            access["status_code"],
        )
        assert get_request_context() is None

    def test_failure_after_the_response_started_is_an_error(self, emulator, stream, dis_handler):
        """A body that raises half way keeps the status sent, and the access record is ERROR."""
        app = starlette_app(access_logger="test.asgi.access")
        with pytest.raises(RuntimeError, match="middle of the body"):
            call(app, "/cut", {"X-Request-ID": "r-5"})
        (access,) = events(emulator, stream, 1)
        assert ("GET /cut 200", "ERROR", "r-5", 200) == (
            access["message"],
            access["level"],
            access["request_id"],
            access["status_code"],
        )

    def test_cancelled_after_the_response_started_stays_info(self):
        """A request the server cancels mid-body (client gone) is not logged as an error."""
        records: list[logging.LogRecord] = []

        class Capture(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                records.append(record)

        capture = Capture()
        access = logging.getLogger("test.asgi.cancelled")
        access.addHandler(capture)
        access.setLevel(logging.INFO)
        events: list[asyncio.Event] = []  # made inside the loop (Python 3.9 binds them to it)

        async def endless(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
            events[0].set()
            await asyncio.Event().wait()  # until cancelled

        async def main():
            events.append(asyncio.Event())
            body_started = events[0]

            async def receive():
                return {"type": "http.request", "body": b""}

            async def send(message):
                pass

            app = RequestContextMiddleware(endless, access_logger="test.asgi.cancelled")
            scope = {"type": "http", "method": "GET", "path": "/stream", "headers": []}
            task = asyncio.ensure_future(app(scope, receive, send))
            await body_started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        try:
            asyncio.run(main())
        finally:
            access.removeHandler(capture)
        assert [("GET /stream 200", "INFO")] == [(r.getMessage(), r.levelname) for r in records]

    @pytest.mark.parametrize(
        ("client_gone", "expected"),
        [(False, ("GET /quiet 500", "ERROR")), (True, ("GET /quiet None", "INFO"))],
        ids=["no_response", "client_gone_first"],
    )
    def test_an_app_that_returns_without_responding(self, client_gone, expected):
        """An app that returns without starting a response gets a 500 from the server (uvicorn,
        hypercorn): its access record says so, at ERROR. When the client went away first, no
        answer is due, and the record stays INFO with no status."""
        records: list[logging.LogRecord] = []

        class Capture(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                records.append(record)

        capture = Capture()
        access = logging.getLogger("test.asgi.quiet")
        access.addHandler(capture)
        access.setLevel(logging.INFO)

        async def quiet(scope, receive, send):
            await receive()  # the body, or the client's disconnect

        async def main():
            async def receive():
                if client_gone:
                    return {"type": "http.disconnect"}
                return {"type": "http.request", "body": b""}

            async def send(message):
                pass

            app = RequestContextMiddleware(quiet, access_logger="test.asgi.quiet")
            scope = {"type": "http", "method": "GET", "path": "/quiet", "headers": []}
            await app(scope, receive, send)

        try:
            asyncio.run(main())
        finally:
            access.removeHandler(capture)
        assert [expected] == [(r.getMessage(), r.levelname) for r in records]

    def test_a_decoded_newline_in_the_path_cannot_forge_a_log_line(self):
        """A path whose %0A/%1B the server decoded is written with them encoded again, in the
        access record's message and in http_path, so a text log gets one line per request."""
        text = io.StringIO()
        handler = logging.StreamHandler(text)
        handler.setFormatter(logging.Formatter("%(message)s | %(http_path)s"))
        handler.addFilter(RequestContextFilter())
        access = logging.getLogger("test.asgi.forged")
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        try:
            call(starlette_app(access_logger="test.asgi.forged"), "/a%0ACRITICAL%20forged%1B[2J")
        finally:
            access.removeHandler(handler)
        assert [
            "GET /a%0ACRITICAL forged%1B[2J 404 | /a%0ACRITICAL forged%1B[2J"
        ] == text.getvalue().splitlines()

    def test_websocket_has_the_context(self):
        """A WebSocket connection runs with a request context and gets the id on its accept."""
        accept, text = websocket_text(starlette_app(), "/ws", {"X-Request-ID": "ws-1"})
        assert ("ws-1", [(b"x-request-id", b"ws-1")]) == (text, accept["headers"])


def test_concurrent_requests_keep_their_own_ids(emulator, stream, dis_handler):
    """Interleaved requests on one event loop each log with their own request id."""
    both_inside = asyncio.Barrier(2) if hasattr(asyncio, "Barrier") else None

    async def slow(request):
        if both_inside is not None:
            await both_inside.wait()
        else:
            await asyncio.sleep(0.01)
        view_logger.info("in %s", request.headers["X-Request-ID"])
        return PlainTextResponse("ok")

    app = RequestContextMiddleware(Starlette(routes=[Route("/slow", slow)]))

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(
                *(client.get("/slow", headers={"X-Request-ID": f"c-{i}"}) for i in range(2))
            )

    responses = asyncio.run(main())
    assert [200, 200] == [r.status_code for r in responses]
    stored = sorted((e["message"], e["request_id"]) for e in events(emulator, stream, 2))
    assert [("in c-0", "c-0"), ("in c-1", "c-1")] == stored


@pytest.mark.parametrize("given", [None, "given-9"])
def test_nested_middlewares_give_one_request_one_id(given):
    """An app mounted with its own middleware inside a wrapped app: one request has one id, on
    the response, on the view's records and on both access records."""
    from starlette.routing import Mount

    from dis_logging.context import RequestContextFilter

    async def view(request):
        view_logger.info("in the mounted app")
        return PlainTextResponse("ok")

    inner = RequestContextMiddleware(
        Starlette(routes=[Route("/x", view)]), access_logger="test.asgi.inner"
    )
    app = RequestContextMiddleware(
        Starlette(routes=[Mount("/sub", inner)]), access_logger="test.asgi.outer"
    )
    seen = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append((record.name, getattr(record, "request_id", None)))

    collect = Collect()
    collect.addFilter(RequestContextFilter())
    names = ("test.asgi.view", "test.asgi.inner", "test.asgi.outer")
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addHandler(collect)
        logger.setLevel(logging.INFO)
    try:
        response = call(app, "/sub/x", {"X-Request-ID": given} if given else None)
    finally:
        for logger in loggers:
            logger.removeHandler(collect)
            logger.setLevel(logging.NOTSET)
    request_id = response.headers["X-Request-ID"]
    assert given in (None, request_id)
    assert [
        ("test.asgi.view", request_id),
        ("test.asgi.inner", request_id),
        ("test.asgi.outer", request_id),
    ] == seen
    assert [request_id] == response.headers.get_list("X-Request-ID")


def test_lifespan_passes_through():
    """Lifespan events reach the app untouched, outside any request context."""
    seen = []

    async def app(scope, receive, send):
        seen.append((scope["type"], get_request_context()))
        message = await receive()
        await send({"type": message["type"] + ".complete"})

    async def main():
        sent = []

        async def receive():
            return {"type": "lifespan.startup"}

        async def send(message):
            sent.append(message)

        await RequestContextMiddleware(app)({"type": "lifespan"}, receive, send)
        return sent

    assert [{"type": "lifespan.startup.complete"}] == asyncio.run(main())
    assert [("lifespan", None)] == seen


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ({}, None),
        ({"user": SimpleUser("bob")}, "bob"),
        ({"user": type("U", (), {"is_authenticated": False, "id": 3})()}, None),
        ({"user": type("U", (), {"is_authenticated": True, "id": 3})()}, "3"),
    ],
)
def test_scope_user_id(scope, expected):
    """scope_user_id reads an authenticated scope['user'] and ignores anonymous ones."""
    assert expected == scope_user_id(scope)


def test_quart_app(emulator, stream, dis_handler):
    """Under Quart (wrapping app.asgi_app) views log with the request fields and get the header."""
    import quart

    app = quart.Quart("test_quart_app")

    @app.route("/q/<int:n>")
    async def view(n):
        view_logger.info("quart view %d", n)
        return {"n": n}

    # Quart types its scopes as TypedDicts; the middleware takes any mapping (Starlette's typing).
    app.asgi_app = RequestContextMiddleware(  # type: ignore[method-assign, assignment]
        app.asgi_app, access_logger="test.asgi.access"
    )

    async def main():
        client = app.test_client()
        return await client.get("/q/5", headers={"X-Request-ID": "quart-1"})

    response = asyncio.run(main())
    assert (200, "quart-1") == (response.status_code, response.headers["X-Request-ID"])
    by_message = {e["message"]: e for e in events(emulator, stream, 2)}
    assert ("quart-1", "/q/5", None) == (
        by_message["quart view 5"]["request_id"],
        by_message["quart view 5"]["http_path"],
        by_message["quart view 5"]["status_code"],
    )
    assert ("quart-1", 200) == (
        by_message["GET /q/5 200"]["request_id"],
        by_message["GET /q/5 200"]["status_code"],
    )


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"request_id_header": 5}, "request_id_header"),
        ({"response_header": "X-Request-ID\n"}, "response_header"),
        ({"response_header": "Request ID"}, "response_header"),
        ({"access_logger": 5}, "access_logger"),
        ({"user_id": "sub"}, "user_id"),
    ],
)
def test_a_header_or_logger_of_the_wrong_kind_is_refused_at_start(options, field):
    """A header name that is no header name (it failed every request: 'int' object has no
    attribute 'lower', or wrote a broken header) is a ConfigError naming the setting."""
    with pytest.raises(ConfigError) as info:
        RequestContextMiddleware(starlette_app(), **options)
    assert field == info.value.field


def test_the_access_logger_may_be_a_logger():
    """access_logger=logging.getLogger(...) is that logger (a TypeError before)."""
    access = logging.getLogger("test.asgi.given")
    assert access is RequestContextMiddleware(starlette_app(), access_logger=access).access_logger


def test_a_misspelt_keyword_names_the_setting_it_meant():
    """A misspelt keyword is a ConfigError suggesting the right name, not a bare TypeError."""
    with pytest.raises(ConfigError, match=r"'acces_logger' \(did you mean 'access_logger'\?\)"):
        RequestContextMiddleware(starlette_app(), acces_logger="app.access")  # type: ignore[call-arg]
