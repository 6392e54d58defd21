"""The ``manage.py check`` check for DISHandler entries in ``settings.LOGGING``.

Validation reuses :meth:`dis_logging.config.HandlerConfig.from_kwargs`, so the check reports
exactly what the handler would reject, without building a handler or touching the network.

Messages:

``dis_logging.E001``
    a DISHandler's options are invalid (missing credentials, a bad value, an unknown option).
``dis_logging.W001``
    ``RequestContextMiddleware`` is installed but no DISHandler uses ``RequestContextFilter``,
    so records are shipped without request fields.
``dis_logging.W002``
    a DISHandler uses ``RequestContextFilter`` but the middleware is not installed, so the
    request fields are always empty.
``dis_logging.W003``
    a DISHandler is configured but no logger (nor the root) uses it.
"""

from __future__ import annotations

from typing import Any, Dict, Final, List, Mapping, Optional

from django.conf import settings  # type: ignore[import-untyped]  # no django-stubs
from django.core import checks  # type: ignore[import-untyped]  # no django-stubs
from django.utils.module_loading import import_string  # type: ignore[import-untyped]  # no stubs

from dis_logging.config import HandlerConfig
from dis_logging.errors import ConfigError

__all__ = ["check_logging"]

_MIDDLEWARE = "dis_logging.django.RequestContextMiddleware"
_FILTER_PATHS = (
    "dis_logging.context.RequestContextFilter",
    "dis_logging.django.RequestContextFilter",
    "dis_logging.django._context.RequestContextFilter",
)
# Keys of a handler entry that dictConfig consumes itself; the rest are handler arguments.
_DICTCONFIG_KEYS = frozenset({"class", "level", "formatter", "filters", "()", "."})
_UNKNOWN_HINT: Final = (
    "Correct or remove the option in settings.LOGGING; the message names the closest valid one."
)


def _resolve(path: object) -> Optional[type]:
    """Import a dotted class path from LOGGING; ``None`` when it is not an importable class."""
    if isinstance(path, type):
        return path
    if not isinstance(path, str):
        return None
    try:
        found = import_string(path)
    except ImportError:
        return None
    return found if isinstance(found, type) else None


def _is_dis_handler(spec: Mapping[str, Any]) -> bool:
    from dis_logging import DISHandler

    cls = _resolve(spec.get("class"))
    return cls is not None and issubclass(cls, DISHandler)


def _is_request_filter(spec: object) -> bool:
    from dis_logging.context import RequestContextFilter

    if not isinstance(spec, Mapping):
        return False
    factory = spec.get("()")
    if factory in _FILTER_PATHS or factory is RequestContextFilter:
        return True
    cls = _resolve(factory)
    return cls is not None and issubclass(cls, RequestContextFilter)


def _used_handlers(logging_config: Mapping[str, Any]) -> set[str]:
    """Names of the handlers a logger uses, or another handler wraps (``MemoryHandler`` target)."""
    names: set[str] = set()
    loggers = dict(logging_config.get("loggers") or {})
    if "root" in logging_config:
        loggers[""] = logging_config["root"]
    for logger_spec in loggers.values():
        if isinstance(logger_spec, Mapping):
            names.update(logger_spec.get("handlers") or ())
    for handler_spec in (logging_config.get("handlers") or {}).values():
        if isinstance(handler_spec, Mapping) and isinstance(handler_spec.get("target"), str):
            names.add(handler_spec["target"])
    return names


def check_logging(app_configs: Optional[List[Any]] = None, **kwargs: Any) -> List[Any]:
    """Validate every DISHandler in ``settings.LOGGING``.

    Args:
        app_configs: the apps being checked (unused: ``LOGGING`` is project-wide).
        **kwargs: other arguments Django passes to checks (unused).

    Returns:
        A list of ``django.core.checks`` messages, empty when all is well.
    """
    logging_config = getattr(settings, "LOGGING", None) or {}
    if not isinstance(logging_config, Mapping):
        return []
    handlers: Mapping[str, Any] = logging_config.get("handlers") or {}
    filters: Mapping[str, Any] = logging_config.get("filters") or {}
    request_filters = {name for name, spec in filters.items() if _is_request_filter(spec)}
    used = _used_handlers(logging_config)
    middleware_installed = _MIDDLEWARE in (getattr(settings, "MIDDLEWARE", None) or ())

    messages: List[Any] = []
    dis_handlers: Dict[str, Mapping[str, Any]] = {
        name: spec
        for name, spec in handlers.items()
        if isinstance(spec, Mapping) and _is_dis_handler(spec)
    }
    for name, spec in dis_handlers.items():
        where = f"LOGGING['handlers'][{name!r}]"
        options = {key: value for key, value in spec.items() if key not in _DICTCONFIG_KEYS}
        try:
            HandlerConfig.from_kwargs(**options)
        except ConfigError as exc:
            unknown = f"{exc.field}: unknown setting" in str(exc)  # unknown_keywords_error
            messages.append(
                checks.Error(
                    f"{where}: {exc}",
                    hint=_UNKNOWN_HINT
                    if unknown
                    else "Fix the option in settings.LOGGING or set the matching "
                    "HUAWEICLOUD_SDK_* environment variable.",
                    obj="settings.LOGGING",
                    id="dis_logging.E001",
                )
            )
        except TypeError as exc:
            messages.append(
                checks.Error(
                    f"{where}: {exc}",
                    hint="Remove the option; see the DISHandler documentation for valid ones.",
                    obj="settings.LOGGING",
                    id="dis_logging.E001",
                )
            )
        if name not in used:
            messages.append(
                checks.Warning(
                    f"{where} is not used by any logger, so nothing is shipped through it.",
                    hint="Add it to the 'handlers' of 'root' or of a logger.",
                    obj="settings.LOGGING",
                    id="dis_logging.W003",
                )
            )
    filtered = {
        name
        for name, spec in dis_handlers.items()
        if request_filters.intersection(spec.get("filters") or ())
    }
    if middleware_installed and dis_handlers and not filtered:
        messages.append(
            checks.Warning(
                "RequestContextMiddleware is installed but no DISHandler uses "
                "RequestContextFilter, so records carry no request fields.",
                hint="Add {'()': 'dis_logging.django.RequestContextFilter'} to "
                "LOGGING['filters'] and list it in the handler's 'filters'.",
                obj="settings.LOGGING",
                id="dis_logging.W001",
            )
        )
    if filtered and not middleware_installed:
        messages.append(
            checks.Warning(
                "A DISHandler uses RequestContextFilter but RequestContextMiddleware is not "
                "installed, so the request fields are always empty.",
                hint=f"Add {_MIDDLEWARE!r} at the top of MIDDLEWARE.",
                obj="settings.MIDDLEWARE",
                id="dis_logging.W002",
            )
        )
    return messages
