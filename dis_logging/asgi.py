"""ASGI 3 middleware that gives each request an id and exposes the request to logging.

Pure ASGI: nothing from a web framework is imported, so it works under FastAPI, Starlette, Quart,
Django's ASGI handler or a bare ASGI callable, served by any ASGI server (uvicorn, hypercorn,
daphne, granian). Wrap the application and attach :class:`~dis_logging.context.RequestContextFilter`
to the handler::

    import logging
    from fastapi import FastAPI
    from dis_logging import DISHandler
    from dis_logging.asgi import RequestContextMiddleware
    from dis_logging.context import RequestContextFilter

    app = FastAPI()
    app.add_middleware(RequestContextMiddleware, access_logger="app.access")

    handler = DISHandler(stream_name="app-logs", region="cn-north-4")
    handler.addFilter(RequestContextFilter())
    logging.getLogger().addHandler(handler)

Every record logged while a request is handled (in the endpoint, in dependencies, in background
tasks started from it) then carries ``request_id``, ``http_method``, ``http_path``, ``user_id``
and ``status_code``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Iterable, MutableMapping, Optional, Tuple, Union

from dis_logging.config import check_keywords
from dis_logging.context import (
    CONTEXT_ATTR,
    DEFAULT_REQUEST_ID_HEADER,
    RequestContext,
    UserIdGetter,
    _access_logger_setting,
    _choose_request_id,
    _current,
    _header_name_setting,
    _user_id_setting,
)

__all__ = ["DEFAULT_REQUEST_ID_HEADER", "RequestContextMiddleware", "scope_user_id"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# Any ASGI 3 callable: frameworks type their scopes differently (TypedDicts, MutableMapping).
ASGIApp = Callable[..., Awaitable[None]]

# Attributes tried, in order, for the id of an authenticated ``scope["user"]``: Starlette's
# BaseUser has ``identity`` (which may raise NotImplementedError) and ``display_name``.
_USER_ID_ATTRIBUTES = ("identity", "id", "pk", "username", "display_name")


def scope_user_id(scope: Any) -> Optional[str]:
    """Return the id of the authenticated user in ``scope["user"]``, or ``None``.

    ``scope["user"]`` is what Starlette's ``AuthenticationMiddleware`` (and FastAPI with it) sets;
    it is read when a record is logged, so a user authenticated by an inner middleware counts.

    Args:
        scope: the ASGI connection scope.

    Returns:
        The first of ``identity``, ``id``, ``pk``, ``username``, ``display_name`` that the user
        has and that is not empty, as a string; ``None`` without an authenticated user.
    """
    user = scope.get("user") if isinstance(scope, MutableMapping) else None
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    for name in _USER_ID_ATTRIBUTES:
        try:
            value = getattr(user, name, None)
        except NotImplementedError:
            continue
        if value not in (None, ""):
            return str(value)
    return None


def _header(headers: Iterable[Tuple[bytes, bytes]], name: bytes) -> Optional[str]:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class RequestContextMiddleware:
    """Set the request context for every HTTP request and WebSocket connection of an ASGI app.

    The request id is taken from ``request_id_header`` when it is present and valid (1 to 128
    characters of ``A-Z a-z 0-9 . _ : @ / + = -``), otherwise a new 32-hex-digit id is generated.
    It is also left in ``scope["state"]["request_id"]`` (``request.state.request_id`` in
    Starlette and FastAPI) and written to ``response_header`` unless the response already has it.
    Lifespan and unknown scope types pass through untouched.

    Args:
        app: the ASGI 3 application to wrap.
        request_id_header: request header an incoming id is taken from; default
            ``"X-Request-ID"``. ``None`` or ``""`` always generates a new id.
        response_header: response header the id is written to; default ``"X-Request-ID"``.
            ``None`` or ``""`` writes no header.
        access_logger: name of a logger (or the logger) that gets one INFO record per HTTP
            request after the
            response ends, ``"METHOD path status"`` with ``duration_ms`` (milliseconds, float);
            default ``None``, no access records. A request whose application raised is logged at
            ERROR: with status 500 when no response had started, otherwise with the status sent
            (a streamed body cut short); so is one whose application returned without starting a
            response (the server answers 500), unless the client had gone away first. A request
            the server cancelled (the client went away) after its response started stays at INFO
            with that status.
        user_id: called with the scope when a record reads ``user_id``; returns the id or
            ``None``. Default :func:`scope_user_id` (``scope["user"]`` as Starlette sets it).
    """

    @check_keywords
    def __init__(
        self,
        app: ASGIApp,
        request_id_header: Optional[str] = DEFAULT_REQUEST_ID_HEADER,
        response_header: Optional[str] = DEFAULT_REQUEST_ID_HEADER,
        *,
        access_logger: Union[str, logging.Logger, None] = None,
        user_id: Optional[UserIdGetter] = scope_user_id,
    ) -> None:
        self.app = app
        self.request_id_header = _header_name_setting("request_id_header", request_id_header)
        self.response_header = _header_name_setting("response_header", response_header)
        self._request_header = (self.request_id_header or "").lower().encode("latin-1")
        self._response_header = (self.response_header or "").lower().encode("latin-1")
        self.access_logger = _access_logger_setting("access_logger", access_logger)
        self.user_id = _user_id_setting("user_id", user_id)

    def __repr__(self) -> str:
        return (
            f"RequestContextMiddleware(app={self.app!r}, "
            f"request_id_header={self.request_id_header!r}, "
            f"response_header={self.response_header!r})"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection with its request context current.

        Args:
            scope: the connection scope.
            receive: the ASGI receive callable, passed through.
            send: the ASGI send callable; ``http.response.start`` messages get the status
                recorded and the response header added.

        Raises:
            BaseException: whatever the application raised, after the context has been reset.
        """
        kind = scope.get("type")
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        headers = scope.get("headers") or ()
        incoming = _header(headers, self._request_header) if self._request_header else None
        context = RequestContext(
            request_id=_choose_request_id(incoming, _current.get()),
            method=str(scope.get("method") or "GET"),
            path=str(scope.get("path") or "/"),
            request=scope,
            user_id_getter=self.user_id,
        )
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        if isinstance(state, MutableMapping):
            state["request_id"] = context.request_id
            state[CONTEXT_ATTR] = context

        async def send_with_context(message: Message) -> None:
            if message.get("type") in ("http.response.start", "websocket.accept"):
                if "status" in message:
                    context.status_code = int(message["status"])
                elif message["type"] == "websocket.accept":
                    context.status_code = 101
                if self._response_header:
                    message = self._with_header(message, context.request_id)
            await send(message)

        client_gone = False

        async def receive_watching() -> Message:
            nonlocal client_gone
            message = await receive()
            if message.get("type") == "http.disconnect":
                client_gone = True
            return message

        token = _current.set(context)
        failed = False
        try:
            await self.app(
                scope, receive_watching if kind == "http" else receive, send_with_context
            )
            # Returned without starting a response: the server answers 500 for it (uvicorn,
            # hypercorn), unless the client went away first and no answer is due.
            failed = kind == "http" and context.status_code is None and not client_gone
        except asyncio.CancelledError:
            # The server gave up on the request (the client went away): an error only if nothing
            # was answered, as before any response the server has to close the connection.
            failed = context.status_code is None
            raise
        except BaseException:
            failed = True
            raise
        finally:
            try:
                if self.access_logger is not None and kind == "http":
                    self._log_access(context, started, failed)
            finally:
                _current.reset(token)

    def _with_header(self, message: Message, request_id: str) -> Message:
        """Return ``message`` with the response header added, unless the app already set it."""
        headers = list(message.get("headers") or ())
        if any(key.lower() == self._response_header for key, _ in headers):
            return message
        headers.append((self._response_header, request_id.encode("latin-1")))
        updated = dict(message)
        updated["headers"] = headers
        return updated

    def _log_access(self, context: RequestContext, started: float, failed: bool) -> None:
        assert self.access_logger is not None
        if context.status_code is None and failed:
            context.status_code = 500  # what the server answers for an app that raised
        status = context.status_code
        duration_ms = round((time.monotonic() - started) * 1000.0, 3)
        level = logging.ERROR if failed else logging.INFO  # the application raised
        self.access_logger.log(
            level,
            "%s %s %s",
            context.method,
            context.path,
            status,
            extra={"duration_ms": duration_ms},
        )
