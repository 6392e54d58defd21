"""The per-request context and the logging filter that copies it onto records."""

from __future__ import annotations

import contextvars
import logging
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from django.utils.functional import empty  # type: ignore[import-untyped]  # no django-stubs

__all__ = ["FIELDS", "RequestContext", "RequestContextFilter", "get_request_context"]

#: The record attributes :class:`RequestContextFilter` sets.
FIELDS = ("request_id", "http_method", "http_path", "user_id", "status_code")

#: Attribute under which the middleware leaves the context on the request object, so records
#: logged after the middleware returned (``django.request`` logs 4xx/5xx responses there) with
#: ``extra={"request": request}`` still find it.
CONTEXT_ATTR = "_dis_logging_context"

_current: contextvars.ContextVar[Optional[RequestContext]] = contextvars.ContextVar(
    "dis_logging_request_context", default=None
)


@dataclass
class RequestContext:
    """What is known about the request being handled.

    Args:
        request_id: the incoming request id, or a generated one (32 hex digits).
        method: the HTTP method (``"GET"``).
        path: the request path, without the query string.
        status_code: the response status, once the view has returned; default ``None``, which
            means no response yet.
        request: the request object, kept to read the user lazily; default ``None``, which
            makes :attr:`user_id` ``None``. Left out of ``repr`` and comparisons.
    """

    request_id: str
    method: str
    path: str
    status_code: Optional[int] = None
    request: Any = field(default=None, repr=False, compare=False)

    @property
    def user_id(self) -> Optional[str]:
        """The authenticated user's primary key as a string, or ``None``.

        The user is read only when something in the request already loaded it: logging never
        triggers the session or database query behind ``request.user``.
        """
        user = getattr(self.request, "__dict__", {}).get("user")
        if user is None or getattr(user, "_wrapped", None) is empty:
            return None
        try:
            if not user.is_authenticated:
                return None
            return str(user.pk)
        except Exception:  # noqa: BLE001 - custom user models may raise anything; a filter must not
            return None

    def as_fields(self) -> Dict[str, Any]:
        """Return the record attributes, keyed by the names in :data:`FIELDS`.

        Returns:
            A new dict; ``user_id`` and ``status_code`` may be ``None``.
        """
        return {
            "request_id": self.request_id,
            "http_method": self.method,
            "http_path": self.path,
            "user_id": self.user_id,
            "status_code": self.status_code,
        }


def get_request_context() -> Optional[RequestContext]:
    """Return the context of the request being handled, or ``None`` outside a request.

    Returns:
        The :class:`RequestContext` set by :class:`RequestContextMiddleware` for the current
        thread or task, or ``None`` when no request is being handled there.
    """
    return _current.get()


class RequestContextFilter(logging.Filter):
    """Add the request's fields to every record; never rejects one.

    Sets ``request_id``, ``http_method``, ``http_path``, ``user_id`` and ``status_code`` on
    the record, each ``None`` outside a request, and leaves alone any of them the record
    already carries (for example ``status_code`` from ``django.request``). Attach it to the
    handler, not to a logger, so records propagated from child loggers get the fields too.

    Outside the middleware's scope it falls back to the context left on a ``request`` passed in
    the record's ``extra``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Set the request fields on ``record``.

        Args:
            record: the record being handled.

        Returns:
            Always ``True``.
        """
        context = _current.get()
        if context is None:
            candidate = getattr(record.__dict__.get("request"), CONTEXT_ATTR, None)
            context = candidate if isinstance(candidate, RequestContext) else None
        values = context.as_fields() if context is not None else dict.fromkeys(FIELDS)
        for name, value in values.items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True
