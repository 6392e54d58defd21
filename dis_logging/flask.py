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

import logging
import time
from typing import Any, Optional

try:
    import flask
except ImportError as exc:  # pragma: no cover - exercised only without the extra installed
    raise ImportError("dis_logging.flask needs Flask: pip install 'dis-logging[flask]'") from exc

from dis_logging.config import check_keywords
from dis_logging.context import (
    CONTEXT_ATTR,
    DEFAULT_REQUEST_ID_HEADER,
    UserIdGetter,
    _choose_request_id,
    _current,
)
from dis_logging.context import RequestContext as _Context
from dis_logging.errors import ConfigError

__all__ = ["DEFAULT_REQUEST_ID_HEADER", "RequestContext", "flask_login_user_id"]

# Keys of flask.g used by the extension; the request id itself is public as ``g.request_id``.
_G_TOKEN = "_dis_logging_token"
_G_STARTED = "_dis_logging_started"


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
    reset in ``teardown_request``, so other extensions' hooks and error handlers are covered.

    Args:
        app: the Flask application; default ``None``, call :meth:`init_app` later (application
            factory pattern).
        request_id_header: request header an incoming id is taken from; default
            ``"X-Request-ID"``. ``None`` or ``""`` always generates a new id.
        response_header: response header the id is written to; default ``"X-Request-ID"``.
            ``None`` or ``""`` writes no header.
        access_logger: name of a logger that gets one INFO record per request at teardown,
            ``"METHOD path status"`` with ``duration_ms`` (milliseconds, float); default ``None``,
            no access records. A request that ended with an unhandled exception is logged at
            ERROR (with status 500 when there was no response), as the ASGI middleware does.
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
        access_logger: Optional[str] = None,
        user_id: Optional[UserIdGetter] = flask_login_user_id,
    ) -> None:
        self.request_id_header = request_id_header or None
        self.response_header = response_header or None
        self.access_logger = logging.getLogger(access_logger) if access_logger else None
        self.user_id = user_id
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
        app.teardown_request(self._teardown)
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
        setattr(flask.g, _G_TOKEN, _current.set(context))

    def _finish(self, response: flask.Response) -> flask.Response:
        context = flask.g.get(CONTEXT_ATTR)
        if isinstance(context, _Context):
            context.status_code = response.status_code
            if self.response_header and self.response_header not in response.headers:
                response.headers[self.response_header] = context.request_id
        return response

    def _teardown(self, error: Optional[BaseException]) -> None:
        token = flask.g.pop(_G_TOKEN, None)
        context = flask.g.get(CONTEXT_ATTR)
        try:
            if self.access_logger is not None and isinstance(context, _Context):
                if error is not None and context.status_code is None:
                    context.status_code = 500  # what Flask answers for an unhandled exception
                failed = error is not None  # as in the ASGI middleware: the application raised
                started = flask.g.get(_G_STARTED, time.monotonic())
                self.access_logger.log(
                    logging.ERROR if failed else logging.INFO,
                    "%s %s %s",
                    context.method,
                    context.path,
                    context.status_code,
                    extra={"duration_ms": round((time.monotonic() - started) * 1000.0, 3)},
                )
        finally:
            if token is not None:
                try:
                    _current.reset(token)
                except ValueError:
                    # The hooks ran in different contexts (a server or extension that copies the
                    # context per hook); clear ours where it is still visible.
                    if _current.get() is context:
                        _current.set(None)
