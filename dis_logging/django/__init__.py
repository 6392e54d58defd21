"""Django integration: request context on log records, and a system check for ``LOGGING``.

Add the app, the middleware and the filter next to a :class:`~dis_logging.DISHandler` in the
settings::

    INSTALLED_APPS = [..., "dis_logging.django"]        # registers the system check
    MIDDLEWARE = ["dis_logging.django.RequestContextMiddleware", ...]   # first, ideally
    LOGGING = {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request": {"()": "dis_logging.django.RequestContextFilter"}},
        "formatters": {"json": {"()": "dis_logging.JSONFormatter"}},
        "handlers": {
            "dis": {
                "class": "dis_logging.DISHandler",
                "stream_name": "app-logs",
                "region": "cn-north-4",
                "filters": ["request"],
                "formatter": "json",
            },
        },
        "root": {"handlers": ["dis"], "level": "INFO"},
    }

Every record logged while a request is handled then carries ``request_id``, ``http_method``,
``http_path``, ``user_id`` and ``status_code`` attributes (``None`` when unknown). Settings, all
optional:

``DIS_LOGGING_REQUEST_ID_HEADER``
    request header that carries an incoming request id (default ``"X-Request-ID"``); a
    missing or malformed value gets a fresh id, ``None`` always generates one.
``DIS_LOGGING_RESPONSE_HEADER``
    response header that returns the request id (default ``"X-Request-ID"``; ``None`` to omit).
``DIS_LOGGING_ACCESS_LOGGER``
    name of a logger that receives one INFO record per request, with the status and
    ``duration_ms`` (default ``None``: no access records).
"""

from __future__ import annotations

from dis_logging.django._context import RequestContext, RequestContextFilter, get_request_context
from dis_logging.django.middleware import RequestContextMiddleware

__all__ = [
    "RequestContext",
    "RequestContextFilter",
    "RequestContextMiddleware",
    "get_request_context",
]
