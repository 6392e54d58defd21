"""The request context shared by every web integration, and the filter that puts it on records.

Framework integrations (:mod:`dis_logging.django`, :mod:`dis_logging.asgi`,
:mod:`dis_logging.flask`) build a :class:`RequestContext` when a request starts and make it current
with :func:`use_request_context`; :class:`RequestContextFilter`, attached to a handler, copies its
fields onto every record logged while the request runs. The context lives in a
:class:`contextvars.ContextVar`, so it follows the request across threads started with a copied
context, ``asyncio`` tasks and ``await`` points, and never leaks into another request.

Any framework without a ready integration can use the same pieces::

    from dis_logging.context import RequestContext, use_request_context

    with use_request_context(RequestContext(request_id=rid, method="GET", path="/jobs")):
        handle_the_job()
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Final, Iterator, Optional

from dis_logging.errors import ConfigError

__all__ = [
    "CONTEXT_ATTR",
    "FIELDS",
    "RequestContext",
    "RequestContextFilter",
    "get_request_context",
    "new_request_id",
    "use_request_context",
    "valid_request_id",
]

#: The record attributes :class:`RequestContextFilter` sets.
FIELDS: Final = ("request_id", "http_method", "http_path", "user_id", "status_code")

#: Attribute under which an integration may leave the context on its request object, so a record
#: logged after the request's scope ended, with ``extra={"request": request}``, still finds it
#: (Django's ``django.request`` logger logs 4xx/5xx responses that way).
CONTEXT_ATTR: Final = "_dis_logging_context"

#: The header read for an incoming request id, and written back on the response, by default.
DEFAULT_REQUEST_ID_HEADER: Final = "X-Request-ID"

# A request id taken from a client must be safe to put into logs and headers unchanged:
# short, and without spaces, quotes or control characters.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")

UserIdGetter = Callable[[Any], Optional[object]]

# An HTTP header name: an RFC 9110 section 5.1 token.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _header_name_setting(name: str, value: object) -> Optional[str]:
    """Check the header name an integration reads or writes the request id with.

    Args:
        name: the setting's name, used in the error.
        value: a header name, or ``None`` / ``""`` for none.

    Returns:
        The header name, or ``None``.

    Raises:
        ConfigError: not a string, or not a header name (spaces, a newline, ``:``): found here
            rather than as a failure of every request.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _HEADER_NAME.fullmatch(value):
        raise ConfigError(
            name, f"must be an HTTP header name such as 'X-Request-ID', or None; got {value!r}"
        )
    return value


def _user_id_setting(name: str, value: object) -> Optional[UserIdGetter]:
    """Check the callable an integration reads the user id with.

    Raises:
        ConfigError: neither a callable nor ``None`` (``user_id="sub"`` gave every record
            ``user_id`` ``None``, silently).
    """
    if value is not None and not callable(value):
        raise ConfigError(
            name,
            f"must be a callable taking the request and returning the id, or None; "
            f"got {type(value).__name__}",
        )
    return value


def _access_logger_setting(name: str, value: object) -> Optional[logging.Logger]:
    """The logger an integration writes access records to.

    Args:
        name: the setting's name, used in the error.
        value: a logger name, a :class:`logging.Logger`, or ``None`` / ``""`` for none.

    Returns:
        The logger, or ``None``.

    Raises:
        ConfigError: anything else.
    """
    if value is None or value == "":
        return None
    if isinstance(value, logging.Logger):
        return value
    if isinstance(value, str):
        return logging.getLogger(value)
    raise ConfigError(
        name, f"must be a logger name, a logging.Logger or None; got {type(value).__name__}"
    )


_current: contextvars.ContextVar[Optional[RequestContext]] = contextvars.ContextVar(
    "dis_logging_request_context", default=None
)


def valid_request_id(value: Optional[str]) -> Optional[str]:
    """Return ``value`` when it is safe to use as a request id, else ``None``.

    Args:
        value: an incoming header value, or ``None`` when the header is absent.

    Returns:
        ``value`` unchanged when it has 1 to 128 characters of ``A-Z a-z 0-9 . _ : @ / + = -``;
        ``None`` otherwise (a client-supplied id goes into logs and headers as is).
    """
    if value and _VALID_REQUEST_ID.fullmatch(value):
        return value
    return None


def new_request_id() -> str:
    """Return a fresh request id: 32 lowercase hex digits (a random UUID)."""
    return uuid.uuid4().hex


def _choose_request_id(incoming: Optional[str], enclosing: Optional[RequestContext]) -> str:
    """Return the id for a request an integration starts handling.

    When a request context is already current, an integration further out handles the same
    request (the ASGI middleware around an app mounted with its own, or around a Flask or Django
    app), and its id is kept: one request, one id, on every record and on the response.
    Otherwise ``incoming`` when it is a valid id, else a new one.

    Args:
        incoming: the request header's value, or ``None``.
        enclosing: the context current when the request reached the integration (what
            ``_current.get()`` returned), or ``None``.

    Returns:
        The request id.
    """
    if enclosing is not None:
        return enclosing.request_id
    return valid_request_id(incoming) or new_request_id()


def _loggable(text: str) -> str:
    """Return ``text`` with each character :meth:`str.isprintable` refuses percent-encoded.

    Servers decode a path's ``%0A`` into a newline: written as it is into an access record
    (``"GET /a\\n... CRITICAL forged 200"``) or ``%(http_path)s``, it would start a forged line in
    a text log. Encoded again (``%0A``, ``%1B``, ``%E2%80%AE``), it reads as the client sent it.

    Args:
        text: a request path, method or user id.

    Returns:
        The text, unchanged when every character is printable.
    """
    if text.isprintable():
        return text
    return "".join(
        char
        if char.isprintable()
        else "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
        for char in text
    )


@dataclass
class RequestContext:
    """What is known about the request being handled.

    ``method`` and ``path`` (and the user id read later) are kept with control characters and
    other unprintable ones percent-encoded (see :func:`_loggable`), so that they cannot forge a
    line in a text log.

    Args:
        request_id: the incoming request id, or a generated one (32 hex digits).
        method: the HTTP method (``"GET"``).
        path: the request path, without the query string.
        status_code: the response status, once the response has started; default ``None``, which
            means no response yet.
        request: the framework's request object (an ASGI scope, a Flask request, a Django
            ``HttpRequest``), kept so that the user can be read lazily; default ``None``. Left out
            of ``repr`` and comparisons.
        user_id_getter: called with ``request`` when a record asks for :attr:`user_id`; returns the
            user's id or ``None``. Default ``None``: :attr:`user_id` is always ``None``. Left out
            of ``repr`` and comparisons.
    """

    request_id: str
    method: str
    path: str
    status_code: Optional[int] = None
    request: Any = field(default=None, repr=False, compare=False)
    user_id_getter: Optional[UserIdGetter] = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Only text is rewritten: a job runner's context may leave method or path None.
        if isinstance(self.method, str):
            self.method = _loggable(self.method)
        if isinstance(self.path, str):
            self.path = _loggable(self.path)

    @property
    def user_id(self) -> Optional[str]:
        """The authenticated user's id as a string, or ``None``.

        A getter that raises counts as ``None``: a log record must never fail because of it.
        """
        getter = self.user_id_getter
        if getter is None:
            return None
        try:
            value = getter(self.request)
            return None if value is None else _loggable(str(value))
        except Exception:  # noqa: BLE001 - user models and getters may raise anything; a filter must not
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
        The :class:`RequestContext` an integration made current for this thread or task, or
        ``None`` when no request is being handled there.
    """
    return _current.get()


def set_request_context(context: Optional[RequestContext]) -> contextvars.Token[Any]:
    """Make ``context`` current; pass the returned token to :func:`reset_request_context`.

    Args:
        context: the request's context, or ``None`` to hide an outer one.

    Returns:
        The token that restores the previous context.
    """
    return _current.set(context)


def reset_request_context(token: contextvars.Token[Any]) -> None:
    """Restore the context that was current before the :func:`set_request_context` call.

    Args:
        token: what :func:`set_request_context` returned, in the same thread or task.

    Raises:
        ValueError: the token was already used, or was created in another context.
    """
    _current.reset(token)


@contextlib.contextmanager
def use_request_context(context: Optional[RequestContext]) -> Iterator[Optional[RequestContext]]:
    """Make ``context`` current for the ``with`` block, and restore the previous one after it.

    Args:
        context: the request's context, or ``None`` to hide an outer one inside the block.

    Yields:
        ``context``.
    """
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


class RequestContextFilter(logging.Filter):
    """Add the request's fields to every record; never rejects one.

    Sets ``request_id``, ``http_method``, ``http_path``, ``user_id`` and ``status_code`` on the
    record, each ``None`` outside a request, and leaves alone any of them the record already
    carries (for example ``status_code`` from ``django.request``). Attach it to the handler, not to
    a logger, so that records propagated from child loggers get the fields too. Works with every
    integration: Django, ASGI (FastAPI, Starlette, Quart) and Flask share one context.

    Outside a request's scope it falls back to the context an integration left on a ``request``
    passed in the record's ``extra``.

    Args:
        name: as for :class:`logging.Filter`; ignored in effect, since no record is rejected.
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
