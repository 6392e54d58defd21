"""Flask extension that gives each request an id and exposes the request to logging.

Register it like any Flask extension and attach
:class:`~dis_logging.context.RequestContextFilter` to the handler::

    import logging
    from flask import Flask
    from dis_logging import DISHandler
    from dis_logging.context import RequestContextFilter
    from dis_logging.flask import RequestContext

    app = Flask(__name__)
    RequestContext(app, access_logger="app.access")   # or RequestContext().init_app(app)

    handler = DISHandler(stream_name="app-logs", region="cn-north-4")
    handler.addFilter(RequestContextFilter())
    logging.getLogger().addHandler(handler)

Every record logged while a request is handled then carries ``request_id``, ``http_method``,
``http_path``, ``user_id`` and ``status_code``. Flask is imported only in this module (extra
``flask``).
"""

from __future__ import annotations

import contextvars
import logging
import time
import types
from typing import Any, Iterator, Optional, Union

try:
    import flask
except ImportError as exc:  # pragma: no cover - exercised only without the extra installed
    raise ImportError("dis_logging.flask needs Flask: pip install 'dis-logging[flask]'") from exc

from dis_logging.config import check_keywords
from dis_logging.context import (
    CONTEXT_ATTR,
    DEFAULT_REQUEST_ID_HEADER,
    UserIdGetter,
    _access_logger_setting,
    _choose_request_id,
    _current,
    _header_name_setting,
    _user_id_setting,
)
from dis_logging.context import RequestContext as _Context
from dis_logging.errors import ConfigError

__all__ = ["DEFAULT_REQUEST_ID_HEADER", "RequestContext", "flask_login_user_id"]

# Keys of flask.g used by the extension; the request id itself is public as ``g.request_id``.
_G_TOKEN = "_dis_logging_token"
_G_STARTED = "_dis_logging_started"
_G_BODY = "_dis_logging_body"
_G_LOGGED = "_dis_logging_logged"


def flask_login_user_id(request: Any) -> Optional[str]:
    """Return Flask-Login's current user id, or ``None``.

    Reads ``g._login_user``, which Flask-Login sets once something in the request loaded the user:
    logging never triggers the user loader (and its database query) itself.

    Args:
        request: the Flask request (unused; the user lives on ``flask.g``).

    Returns:
        ``str(user.get_id())`` for an authenticated, already loaded user; ``None`` otherwise,
        and outside an application context.
    """
    del request
    if not flask.has_app_context():
        return None
    user = flask.g.get("_login_user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return str(user.get_id())


class RequestContext:
    """Set the request context for every request of a Flask application.

    The request id is taken from ``request_id_header`` when it is present and valid (1 to 128
    characters of ``A-Z a-z 0-9 . _ : @ / + = -``), otherwise a new 32-hex-digit id is generated.
    It is also available as ``flask.g.request_id`` and is written to ``response_header`` unless
    the response already has it. The context is set by the first ``before_request`` function and
    reset by the last ``teardown_request`` function, so other extensions' hooks and error
    handlers are covered.

    Args:
        app: the Flask application; default ``None``, call :meth:`init_app` later (application
            factory pattern).
        request_id_header: request header an incoming id is taken from; default
            ``"X-Request-ID"``. ``None`` or ``""`` always generates a new id.
        response_header: response header the id is written to; default ``"X-Request-ID"``.
            ``None`` or ``""`` writes no header.
        access_logger: name of a logger (or the logger) that gets one INFO record per request,
            ``"METHOD path status"`` with ``duration_ms`` (milliseconds, float); default ``None``,
            no access records. A request that ended with an unhandled exception is logged at
            ERROR (with status 500 when there was no response), as the ASGI middleware does.
            A streamed body (a generator) is made with the context current, and its end writes
            the access record instead (ERROR if it raised).
        user_id: called with the Flask request when a record reads ``user_id``; returns the id or
            ``None``. Default :func:`flask_login_user_id`.
    """

    @check_keywords
    def __init__(
        self,
        app: Optional[flask.Flask] = None,
        *,
        request_id_header: Optional[str] = DEFAULT_REQUEST_ID_HEADER,
        response_header: Optional[str] = DEFAULT_REQUEST_ID_HEADER,
        access_logger: Union[str, logging.Logger, None] = None,
        user_id: Optional[UserIdGetter] = flask_login_user_id,
    ) -> None:
        self.request_id_header = _header_name_setting("request_id_header", request_id_header)
        self.response_header = _header_name_setting("response_header", response_header)
        self.access_logger = _access_logger_setting("access_logger", access_logger)
        self.user_id = _user_id_setting("user_id", user_id)
        if app is not None:
            self.init_app(app)

    def __repr__(self) -> str:
        return (
            f"RequestContext(request_id_header={self.request_id_header!r}, "
            f"response_header={self.response_header!r})"
        )

    def init_app(self, app: flask.Flask) -> None:
        """Register the request hooks on ``app``; registering on several apps is fine.

        Registering on the same app again does nothing (its hooks would run twice: two access
        records per request, and a second request id).

        Args:
            app: the Flask application.

        Raises:
            ConfigError: another :class:`RequestContext` is already registered on ``app``.
        """
        registered = app.extensions.get("dis_logging")
        if registered is self:
            return
        if registered is not None:
            raise ConfigError(
                "app",
                f"already has a dis_logging RequestContext ({registered!r}); "
                "register one per application",
            )
        # First among the before_request functions, so that records from the others (and the
        # response of one that short-circuits the request) have the context too.
        app.before_request_funcs.setdefault(None, []).insert(0, self._begin)
        app.after_request(self._finish)
        # Flask runs teardown functions in reverse order: first in the list, this one runs last,
        # so that every other teardown_request function (of extensions set up before this one
        # too) logs inside the context. When one of them raises, Flask runs no more of them; the
        # app context's teardown then ends the request instead.
        app.teardown_request_funcs.setdefault(None, []).insert(0, self._teardown)
        app.teardown_appcontext_funcs.insert(0, self._teardown_appcontext)
        app.extensions["dis_logging"] = self

    def _begin(self) -> None:
        # The request itself, not the context-local proxy: a record may read the user after the
        # request context is gone (the proxy would raise, the getter's error becomes None).
        proxy: Any = flask.request
        request: flask.Request = proxy._get_current_object()
        incoming = None
        if self.request_id_header:
            incoming = request.headers.get(self.request_id_header)
        enclosing = _current.get()
        if enclosing is not None and isinstance(enclosing.request, flask.Request):
            # Left behind by these hooks for an earlier request (a teardown function that raised
            # before ours ran): not a request this one is part of.
            enclosing = None
        context = _Context(
            request_id=_choose_request_id(incoming, enclosing),
            method=request.method,
            path=request.path,
            request=request,
            user_id_getter=self.user_id,
        )
        flask.g.request_id = context.request_id
        setattr(flask.g, CONTEXT_ATTR, context)
        setattr(flask.g, _G_STARTED, time.monotonic())
        # flask.g outlives the request when the app context was pushed before it (a test's
        # ``with app.app_context():`` around several requests): start this request's state afresh.
        flask.g.pop(_G_LOGGED, None)
        flask.g.pop(_G_BODY, None)
        setattr(flask.g, _G_TOKEN, _current.set(context))

    def _finish(self, response: flask.Response) -> flask.Response:
        context = flask.g.get(CONTEXT_ATTR)
        flask.g.pop(_G_BODY, None)  # an earlier response of this request (an error replaced it)
        if isinstance(context, _Context):
            context.status_code = response.status_code
            if self.response_header and self.response_header not in response.headers:
                response.headers[self.response_header] = context.request_id
            if isinstance(response.response, types.GeneratorType):
                # The body is produced while the server sends it, after the view returned (and,
                # for stream_with_context in Flask 3.1, after a first teardown): its records get
                # the context there, and its end writes the access record.
                body = _StreamedBody(response.response, self, context)
                response.response = body
                setattr(flask.g, _G_BODY, body)
        return response

    def _teardown(self, error: Optional[BaseException]) -> None:
        self._end_request(error)

    def _teardown_appcontext(self, error: Optional[BaseException]) -> None:
        # Only when a teardown_request function raised and Flask skipped ours: the app context
        # the request pushed ends next, and with it the request.
        if flask.g.get(_G_TOKEN) is not None:
            self._end_request(error)

    def _end_request(self, error: Optional[BaseException]) -> None:
        token = flask.g.pop(_G_TOKEN, None)
        context = flask.g.get(CONTEXT_ATTR)
        try:
            self._log_request(error)
        finally:
            if token is not None:
                try:
                    _current.reset(token)
                except ValueError:
                    # The hooks ran in different contexts (a server or extension that copies the
                    # context per hook); clear ours where it is still visible.
                    if _current.get() is context:
                        _current.set(None)

    def _log_request(self, error: Optional[BaseException]) -> None:
        """Write the request's access record once, unless a streamed body writes it when it ends
        (a stream_with_context body also runs the teardown functions then, a second time, in
        Flask 3.1)."""
        context = flask.g.get(CONTEXT_ATTR)
        if not isinstance(context, _Context) or flask.g.get(_G_BODY) is not None:
            return
        if flask.g.get(_G_LOGGED):
            return
        setattr(flask.g, _G_LOGGED, True)
        if error is not None and context.status_code is None:
            context.status_code = 500  # what Flask answers for an unhandled exception
        # As in the ASGI middleware: ERROR when the application raised.
        self._log_access(context, flask.g.get(_G_STARTED), failed=error is not None)

    def _log_access(self, context: _Context, started: Optional[float], *, failed: bool) -> None:
        """Write the access record of the request ``context`` describes, if there is a logger."""
        if self.access_logger is None:
            return
        now = time.monotonic()
        self.access_logger.log(
            logging.ERROR if failed else logging.INFO,
            "%s %s %s",
            context.method,
            context.path,
            context.status_code,
            extra={"duration_ms": round((now - (started or now)) * 1000.0, 3)},
        )


class _StreamedBody:
    """The body of a streamed response, produced with the request's context current.

    Each chunk is made with the context set (records logged by the body carry it), and the
    request's access record is written once, when the body ends: exhausted, failed (ERROR, with
    the status sent) or closed by the server (a HEAD request, a client gone).

    Args:
        body: the response's generator.
        extension: the extension that writes the access record.
        context: the request's context.
    """

    def __init__(self, body: Iterator[Any], extension: RequestContext, context: _Context) -> None:
        self._body = body
        self._extension = extension
        self._context = context
        self._started: Optional[float] = flask.g.get(_G_STARTED)
        self._ended = False

    def __iter__(self) -> _StreamedBody:
        return self

    def __next__(self) -> Any:
        token = _current.set(self._context)
        try:
            return next(self._body)
        except StopIteration:
            self._end(failed=False)
            raise
        except BaseException:
            self._end(failed=True)
            raise
        finally:
            self._leave(token)

    def close(self) -> None:
        """Close the body (the WSGI server calls it when done); writes the access record if the
        body did not end before."""
        token = _current.set(self._context)
        try:
            self._body.close()  # type: ignore[attr-defined]  # checked when wrapped: a generator
        finally:
            try:
                self._end(failed=False)
            finally:
                self._leave(token)

    def _end(self, *, failed: bool) -> None:
        if not self._ended:
            self._ended = True
            # Set again: the request's teardown may have just reset it, inside the last chunk
            # (stream_with_context before Flask 3.1).
            token = _current.set(self._context)
            try:
                self._extension._log_access(self._context, self._started, failed=failed)
            finally:
                _current.reset(token)

    def _leave(self, token: contextvars.Token[Optional[_Context]]) -> None:
        """Restore the context as it was before the chunk, unless the request's own teardown,
        run inside it (stream_with_context before Flask 3.1), reset the context meanwhile."""
        inner = _current.get()
        _current.reset(token)
        if inner is not self._context:
            _current.set(inner)
