"""Exceptions raised by dis-logging.

Every error the library raises derives from :class:`DISLoggingError`::

    DISLoggingError
    ├── ConfigError (also a ValueError)    bad settings, raised at construction time
    └── DISError                           a DIS or IAM call did not succeed
        ├── TransportError                 no HTTP reply: connect failure, timeout, reset
        └── DISHTTPError                   an HTTP reply with an error status
            ├── AuthError                  401 / 441 / 403: signature, token or permission problems
            │   └── TokenExpiredError      missing, invalid or expired token (refresh, retry)
            ├── ThrottledError             429, DIS.4303, DIS.4305: slow down and retry
            ├── ServerError                5xx: retry with backoff
            └── RequestError               any other 4xx: the request itself is wrong, do not retry
                                           (except DIS.4205, stream not running yet: retryable)

Only :mod:`dis_logging.client` translates ``requests``/``urllib3``/``socket`` exceptions; everything
above that layer sees these types. Messages never contain tokens, passwords or secret keys.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "AuthError",
    "ConfigError",
    "DISError",
    "DISHTTPError",
    "DISLoggingError",
    "RequestError",
    "ServerError",
    "ThrottledError",
    "TokenExpiredError",
    "TransportError",
]


class DISLoggingError(Exception):
    """Base class of every exception raised by dis-logging."""


class ConfigError(DISLoggingError, ValueError):
    """A setting is missing, malformed or contradicts another one.

    Args:
        field: the name of the offending setting (for example ``"stream_name"``).
        message: what is wrong with it, in plain words.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class DISError(DISLoggingError):
    """A call to DIS or IAM failed.

    Args:
        message: a description without secrets.
        status: the HTTP status, or ``None`` when no reply arrived.
        code: the DIS/APIG error code (``"DIS.4303"``), or ``None``.
        request_id: the server's request id header, when it sent one.
        retry_after: seconds from a ``Retry-After`` header, or ``None``.
        retryable: overrides the class's :attr:`retryable` for this instance (for example a 400
            ``DIS.4205``, stream not yet running, is a :class:`RequestError` worth retrying);
            ``None`` keeps the class default.

    ``str()`` joins the message, status, code and request id on one line, with control
    characters from a server written as escapes (see :func:`_escape_unprintable`).
    """

    #: whether repeating the same request later may succeed.
    retryable: bool = False
    #: ``True`` when the client refused the call without a request because the same failure
    #: happened just before (an authentication failure it waits out); already reported once.
    repeat: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        code: Optional[str] = None,
        request_id: Optional[str] = None,
        retry_after: Optional[float] = None,
        retryable: Optional[bool] = None,
    ) -> None:
        if retryable is not None:
            self.retryable = retryable
        self.status = status
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(message)

    def __str__(self) -> str:
        parts = [str(self.args[0]) if self.args else type(self).__name__]
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.code:
            parts.append(f"code={self.code}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return _escape_unprintable(" ".join(parts))


def _escape_unprintable(text: str) -> str:
    """Return ``text`` with each character :meth:`str.isprintable` refuses written as its escape.

    A server's error code, message or request id must not start a new line (a forged log line
    in whatever log the error is written to) or a terminal sequence: ``"\n"`` becomes ``"\\n"``,
    ``"\x1b"`` ``"\\x1b"``, U+202E ``"\\u202e"``.

    Args:
        text: the text to write.

    Returns:
        The text, unchanged when every character is printable.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


class TransportError(DISError):
    """No HTTP reply arrived: connection refused or reset, DNS failure, timeout."""

    retryable = True


class DISHTTPError(DISError):
    """The server replied with an error status."""


class AuthError(DISHTTPError):
    """The request was not authenticated or not permitted (401, 441, 403)."""


class TokenExpiredError(AuthError):
    """The IAM token is missing, invalid or expired; a fresh token may succeed."""

    retryable = True


class ThrottledError(DISHTTPError):
    """The service asked the client to slow down (429, DIS.4303, DIS.4305)."""

    retryable = True


class ServerError(DISHTTPError):
    """The service failed (5xx, DIS.5xxx)."""

    retryable = True


class RequestError(DISHTTPError):
    """The request is wrong and will keep failing (unknown stream, bad project, malformed body)."""

    #: ``True`` when the request's record data exceeded the stream's per-request limit (1 MB on
    #: COMMON streams, 5 MB on ADVANCED; DIS-API.md 8): smaller requests will succeed.
    too_large: bool = False
    #: The per-request record-data limit the client believes applies, in bytes, or ``None``.
    data_limit: Optional[int] = None
