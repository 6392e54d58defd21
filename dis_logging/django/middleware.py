"""Middleware that sets the request context for the records logged while a request runs."""

from __future__ import annotations

import logging
import time
from typing import (
    Any,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Optional,
)

from django.conf import settings  # type: ignore[import-untyped]  # no django-stubs

from dis_logging.context import (
    DEFAULT_REQUEST_ID_HEADER,
    _choose_request_id,
    _header_name_setting,
)
from dis_logging.django._context import CONTEXT_ATTR, RequestContext, _current
from dis_logging.errors import ConfigError

try:
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction
except ImportError:  # pragma: no cover - asgiref < 3.6 (Django 3.2/4.0): serve sync only
    iscoroutinefunction = None  # type: ignore[assignment]  # checked before each use
    markcoroutinefunction = None  # type: ignore[assignment]  # checked before each use

__all__ = ["DEFAULT_REQUEST_ID_HEADER", "RequestContextMiddleware"]


def _name_setting(name: str, default: Optional[str]) -> Optional[str]:
    """A Django setting holding a header or logger name, or ``None``.

    Raises:
        ConfigError: the setting is neither a string nor ``None`` (a header name of another
            type failed every request with a 500, inside Django's header lookup).
    """
    value = getattr(settings, name, default)
    if value is not None and not isinstance(value, str):
        raise ConfigError(name, f"must be a name (a string) or None, got {value!r}")
    return value


class RequestContextMiddleware:
    """Give each request an id and expose it, with method, path, user and status, to logging.

    Works under WSGI and ASGI. Place it first in ``MIDDLEWARE`` so the context covers the
    other middleware too. The request id also becomes ``request.request_id``.

    Settings read once, at start-up (see :mod:`dis_logging.django`):

    - ``DIS_LOGGING_REQUEST_ID_HEADER``: the header an incoming id is taken from; default
      :data:`DEFAULT_REQUEST_ID_HEADER`. ``None`` or ``""`` always generates a new id. An
      incoming id longer than 128 characters, or with characters outside
      ``A-Z a-z 0-9 . _ : @ / + = -``, is replaced by a generated one.
    - ``DIS_LOGGING_RESPONSE_HEADER``: the response header the id is written to, unless the
      response already has it; default :data:`DEFAULT_REQUEST_ID_HEADER`. ``None`` or ``""``
      writes no header.
    - ``DIS_LOGGING_ACCESS_LOGGER``: the name of a logger that gets one INFO record per request
      (``"METHOD path status"`` with ``duration_ms`` in milliseconds); default ``None``, no
      access records.

    Args:
        get_response: the next middleware or the view, as Django passes it; when it is a
            coroutine function (and asgiref 3.6 or later is installed) the middleware runs
            asynchronously.
    """

    sync_capable = True
    async_capable = markcoroutinefunction is not None

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.request_id_header = _header_name_setting(
            "DIS_LOGGING_REQUEST_ID_HEADER",
            _name_setting("DIS_LOGGING_REQUEST_ID_HEADER", DEFAULT_REQUEST_ID_HEADER),
        )
        self.response_header = _header_name_setting(
            "DIS_LOGGING_RESPONSE_HEADER",
            _name_setting("DIS_LOGGING_RESPONSE_HEADER", DEFAULT_REQUEST_ID_HEADER),
        )
        access_logger = _name_setting("DIS_LOGGING_ACCESS_LOGGER", None)
        self.access_logger = logging.getLogger(access_logger) if access_logger else None
        self._is_async = iscoroutinefunction is not None and iscoroutinefunction(get_response)
        if self._is_async and markcoroutinefunction is not None:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        """Handle one request with its context set.

        Args:
            request: the ``HttpRequest``.

        Returns:
            The response (a coroutine under ASGI).

        Raises:
            Exception: whatever ``get_response`` raises, after the context has been reset.
        """
        if self._is_async:
            return self._acall(request)
        context, started = self._begin(request)
        token = _current.set(context)
        try:
            response = self.get_response(request)
            self._finish(context, response, started)
        finally:
            _current.reset(token)
        return response

    async def _acall(self, request: Any) -> Any:
        context, started = self._begin(request)
        token = _current.set(context)
        try:
            get_response: Callable[[Any], Awaitable[Any]] = self.get_response
            response = await get_response(request)
            self._finish(context, response, started)
        finally:
            _current.reset(token)
        return response

    def _begin(self, request: Any) -> tuple[RequestContext, float]:
        """Build the context, attach it and the id to ``request``; return it with a start time."""
        incoming = None
        if self.request_id_header:
            incoming = request.headers.get(self.request_id_header)
        context = RequestContext(
            request_id=_choose_request_id(incoming, _current.get()),
            method=request.method,
            path=request.path,
            request=request,
        )
        setattr(request, CONTEXT_ATTR, context)
        request.request_id = context.request_id
        return context, time.monotonic()

    def _finish(self, context: RequestContext, response: Any, started: float) -> None:
        """Record the status, set the response header, and write the access record if enabled."""
        context.status_code = response.status_code
        if self.response_header and not response.has_header(self.response_header):
            response[self.response_header] = context.request_id
        if (
            getattr(response, "streaming", False)
            and getattr(response, "file_to_stream", None) is None
        ):
            # A streamed body runs while the server sends it, after this middleware returned:
            # its records get the context there. (A FileResponse logs nothing, and its file
            # stays where the server can send it directly.)
            content = response.streaming_content
            if getattr(response, "is_async", False):
                response.streaming_content = _async_chunks(content, context)
            else:
                response.streaming_content = _chunks(content, context)
        if self.access_logger is not None:
            duration_ms = round((time.monotonic() - started) * 1000.0, 3)
            self.access_logger.info(
                "%s %s %s",
                context.method,
                context.path,
                context.status_code,
                extra={"duration_ms": duration_ms},
            )


def _chunks(content: Iterable[Any], context: RequestContext) -> Iterator[Any]:
    """``content``'s chunks, each made with the request's context current."""
    iterator = iter(content)
    while True:
        token = _current.set(context)
        try:
            chunk = next(iterator)
        except StopIteration:
            return
        finally:
            _current.reset(token)
        yield chunk


async def _async_chunks(content: AsyncIterable[Any], context: RequestContext) -> AsyncIterator[Any]:
    """``content``'s chunks, each made with the request's context current (ASGI)."""
    iterator = content.__aiter__()
    while True:
        token = _current.set(context)
        try:
            chunk = await iterator.__anext__()
        except StopAsyncIteration:
            return
        finally:
            _current.reset(token)
        yield chunk
