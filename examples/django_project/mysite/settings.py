"""Settings of the example project: logging to DIS with request context.

Credentials and the endpoint come from the environment (``HUAWEICLOUD_SDK_AK``,
``HUAWEICLOUD_SDK_SK``, ``HUAWEICLOUD_SDK_PROJECT_ID``; for the emulator also
``HUAWEICLOUD_SDK_REGION_DIS_CN_NORTH_4`` and ``HUAWEICLOUD_SDK_IAM_ENDPOINT``); the stream
name from ``DIS_LOGGING_STREAM``.
"""

from __future__ import annotations

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "dis_logging.django",  # registers the LOGGING system check (manage.py check)
]

MIDDLEWARE = [
    "dis_logging.django.RequestContextMiddleware",  # first: covers the other middleware
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

# Request id header read from clients and echoed on responses, and one access record per request.
DIS_LOGGING_REQUEST_ID_HEADER = "X-Request-ID"
DIS_LOGGING_ACCESS_LOGGER = "mysite.access"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request": {"()": "dis_logging.django.RequestContextFilter"},
    },
    "formatters": {
        "json": {"()": "dis_logging.JSONFormatter", "static_fields": {"service": "mysite"}},
        "console": {"format": "%(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request"],
            "formatter": "console",
        },
        "dis": {
            "class": "dis_logging.DISHandler",
            "filters": ["request"],
            "formatter": "json",
            "stream_name": os.environ.get("DIS_LOGGING_STREAM", "app-logs"),
            "region": "cn-north-4",
            "flush_interval": 0.5,
        },
    },
    "root": {"handlers": ["console", "dis"], "level": "INFO"},
}
