"""Django's request context: the shared one of :mod:`dis_logging.context`, reading Django's user."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from django.utils.functional import empty  # type: ignore[import-untyped]  # no django-stubs

from dis_logging.context import (
    CONTEXT_ATTR,
    FIELDS,
    RequestContextFilter,
    UserIdGetter,
    _current,
    get_request_context,
)
from dis_logging.context import RequestContext as _BaseContext

__all__ = [
    "CONTEXT_ATTR",
    "FIELDS",
    "RequestContext",
    "RequestContextFilter",
    "_current",
    "django_user_id",
    "get_request_context",
]


def django_user_id(request: Any) -> Optional[str]:
    """Return the authenticated user's primary key as a string, or ``None``.

    The user is read only when something in the request already loaded it: logging never
    triggers the session or database query behind ``request.user``.

    Args:
        request: the ``HttpRequest`` (or ``None``).

    Returns:
        ``str(user.pk)`` for an authenticated, already loaded user; ``None`` otherwise.
    """
    user = getattr(request, "__dict__", {}).get("user")
    if user is None or getattr(user, "_wrapped", None) is empty:
        return None
    if not user.is_authenticated:
        return None
    return str(user.pk)


@dataclass
class RequestContext(_BaseContext):
    """:class:`dis_logging.context.RequestContext` whose ``user_id`` reads Django's user.

    Args:
        request_id: the incoming request id, or a generated one (32 hex digits).
        method: the HTTP method (``"GET"``).
        path: the request path, without the query string.
        status_code: the response status, once the view has returned; default ``None``.
        request: the ``HttpRequest``, kept to read the user lazily; default ``None``, which
            makes :attr:`user_id` ``None``.
        user_id_getter: default :func:`django_user_id`.
    """

    user_id_getter: Optional[UserIdGetter] = field(
        default=django_user_id, repr=False, compare=False
    )
