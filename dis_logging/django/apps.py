"""Django app config: adding ``"dis_logging.django"`` to ``INSTALLED_APPS`` registers the check."""

from __future__ import annotations

from django.apps import AppConfig  # type: ignore[import-untyped]  # no django-stubs
from django.core import checks  # type: ignore[import-untyped]  # no django-stubs


class DISLoggingConfig(AppConfig):  # type: ignore[misc]  # AppConfig is Any without django-stubs
    """The ``dis_logging`` app: no models, one system check (tag ``dis_logging``)."""

    name = "dis_logging.django"
    label = "dis_logging"
    verbose_name = "dis-logging"

    def ready(self) -> None:
        """Register :func:`dis_logging.django.checks.check_logging`."""
        from dis_logging.django.checks import check_logging

        checks.register(check_logging, "dis_logging")
