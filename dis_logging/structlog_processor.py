"""A structlog processor that ships each event dict to DIS as one JSON record.

structlog is optional: it is imported here and nowhere else in the package. Put the processor
last in the chain to send events only to DIS, or before a renderer with ``passthrough=True``
to keep console output as well::

    import structlog
    from dis_logging.structlog_processor import DISProcessor

    dis = DISProcessor(stream_name="app-logs", region="cn-north-4", passthrough=True)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            dis,
            structlog.dev.ConsoleRenderer(),
        ]
    )

The processor renders on the caller's thread and hands the bytes to a
:class:`~dis_logging.DISHandler`, whose flusher thread does the batching and the HTTP work.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
import traceback
from typing import TYPE_CHECKING, Any, Callable, Dict, Mapping, Optional, Union, cast

try:
    import structlog
except ImportError as exc:  # pragma: no cover - exercised only without the extra installed
    raise ImportError(
        "dis_logging.structlog_processor needs structlog: pip install 'dis-logging[structlog]'"
    ) from exc

from dis_logging import _otel
from dis_logging.config import check_fixed_or_callable, check_flag
from dis_logging.errors import ConfigError
from dis_logging.formatting import finite_values
from dis_logging.handler import DISHandler, handler_or_settings

if TYPE_CHECKING:
    from structlog.typing import EventDict, WrappedLogger
    from typing_extensions import Unpack

    from dis_logging.config import HandlerSettings

__all__ = ["DISProcessor", "render_json"]

#: A partition key: a fixed string, or a callable that picks one from the event dict.
PartitionKey = Union[str, Callable[[Mapping[str, Any]], Optional[str]]]

#: Level names structlog uses as method names or in the ``level`` key, mapped to logging levels.
_LEVELS: Dict[str, int] = {
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
    "exception": logging.ERROR,
    "error": logging.ERROR,
    "err": logging.ERROR,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "msg": logging.INFO,
    "debug": logging.DEBUG,
    "notset": logging.NOTSET,
}


def _levelno(method_name: str, event_dict: EventDict) -> int:
    """Return the logging level of an event: its ``level`` key first, else the method name."""
    level = event_dict.get("level")
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    if isinstance(level, str) and level.lower() in _LEVELS:
        return _LEVELS[level.lower()]
    return _LEVELS.get(method_name, logging.INFO)


def _safe_str(value: object) -> str:
    """Return ``str(value)``, or a placeholder naming the type when ``__str__`` raises."""
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - arbitrary user objects may raise anything from __str__
        return f"<unprintable {type(value).__qualname__}>"


def _json_default(value: object) -> object:
    """Turn a value :mod:`json` cannot encode into one it can; never raises."""
    try:
        hook = getattr(value, "__structlog__", None)
        if callable(hook):
            return hook()
        if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
            return value.isoformat()
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value).decode("utf-8", errors="backslashreplace")
        if isinstance(value, (set, frozenset)):
            return [_safe_str(item) for item in value]
        return repr(value)
    except Exception:  # noqa: BLE001 - user __repr__/__structlog__ may raise anything
        return f"<unrepresentable {type(value).__qualname__}>"


def _render_exception(exc_info: object) -> Optional[str]:
    """Format an ``exc_info`` value (True, an exception or a 3-tuple) as traceback text."""
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and exc_info[0] is not None:
        return "".join(traceback.format_exception(*exc_info)).rstrip("\n")
    return None


def _dumps_strict(event: Mapping[str, Any]) -> str:
    return json.dumps(
        event, default=_json_default, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )


def render_json(
    event_dict: Mapping[str, Any],
    serializer: Optional[Callable[..., Union[str, bytes]]] = None,
) -> bytes:
    """Render an event dict as UTF-8 JSON bytes, whatever it contains.

    Values :mod:`json` cannot encode go through their ``__structlog__`` method, ``isoformat``
    or ``repr``; NaN and infinities are written as text (``"nan"``, ``"inf"``), as strict JSON
    has no spelling for them; an ``exc_info`` entry becomes an ``exception`` string with the
    traceback.
    If that still fails (circular references, keys that are not strings, a serializer that
    raises), every key and value is turned into a string instead. Lone surrogates are written
    as ``\\udXXX`` escapes, so the result is always valid UTF-8.

    Args:
        event_dict: the event to render; it is not modified.
        serializer: a :func:`json.dumps`-compatible callable (for example ``orjson.dumps``)
            returning ``str`` or ``bytes``; ``None`` (the default) uses compact
            :func:`json.dumps` without ASCII escaping. It is called with ``default=``.

    Returns:
        The encoded record, never empty.
    """
    event = dict(event_dict)
    if event.get("exc_info"):
        rendered = _render_exception(event.pop("exc_info"))
        if rendered is not None and "exception" not in event:
            event["exception"] = rendered
    else:
        event.pop("exc_info", None)
    try:
        if serializer is None:
            try:
                text: Union[str, bytes] = _dumps_strict(event)
            except ValueError:  # NaN or infinity somewhere: strict JSON has no spelling for them
                text = _dumps_strict({key: finite_values(value) for key, value in event.items()})
        else:
            text = serializer(event, default=_json_default)
    except (TypeError, ValueError, OverflowError, RecursionError):
        # Circular references, non-string keys, or a third-party serializer's own errors.
        flat = {_safe_str(key): _safe_str(value) for key, value in event.items()}
        text = json.dumps(flat, ensure_ascii=False, separators=(",", ":"))
    if isinstance(text, bytes):
        return text
    if isinstance(text, str):
        return text.encode("utf-8", errors="backslashreplace")
    try:
        return bytes(memoryview(text))  # a bytearray or another buffer from a serializer
    except TypeError:  # not text at all: render the event's text as the last resort does
        flat = {_safe_str(key): _safe_str(value) for key, value in event.items()}
        return json.dumps(flat, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8", errors="backslashreplace"
        )


class DISProcessor:
    """Ship structlog events to a DIS stream through a :class:`~dis_logging.DISHandler`.

    Use an existing handler (shared with :mod:`logging`), or let the processor build and own
    one from handler keyword arguments::

        DISProcessor(handler=existing_handler)
        DISProcessor(stream_name="app-logs", region="cn-north-4", flush_interval=2.0)

    Events below the handler's level are not shipped. The processor never raises into the
    application other than :class:`structlog.DropEvent` when ``passthrough`` is false.

    Args:
        handler: the handler that queues and sends the records; ``None`` (the default) builds
            a :class:`~dis_logging.DISHandler` from ``handler_kwargs``, owned by the processor
            and closed by :meth:`close`.
        passthrough: ``False`` (the default) ends the chain with :class:`structlog.DropEvent`
            after queueing the event; ``True`` returns the event dict unchanged so later
            processors (a console renderer) still see it. The words ``"true"``/``"false"``
            are accepted too.
        partition_key: a fixed partition key, or a callable taking the event dict and
            returning a key or ``None``; ``None`` (the default) leaves the choice to DIS.
            A callable that raises is treated as returning ``None``.
        serializer: a :func:`json.dumps`-compatible callable; ``None`` (the default) uses
            :func:`json.dumps`. Its errors fall back to a plain rendering, see
            :func:`render_json`.
        **handler_settings: the keyword arguments of :class:`~dis_logging.DISHandler`
            (``stream_name``, ``region``, credentials, tuning, ``enabled``, ``on_failure``;
            typed by :class:`~dis_logging.config.HandlerSettings`, so a type checker flags a
            misspelled one), used only when ``handler`` is ``None``.

    Raises:
        ConfigError: both ``handler`` and handler settings were given, a setting is unknown
            (all of them are named), the handler settings are invalid, or ``passthrough``,
            ``partition_key`` or ``serializer`` has the wrong type.
    """

    def __init__(
        self,
        handler: Optional[DISHandler] = None,
        *,
        passthrough: Union[bool, str] = False,
        partition_key: Optional[PartitionKey] = None,
        serializer: Optional[Callable[..., Union[str, bytes]]] = None,
        **handler_settings: Unpack[HandlerSettings],
    ) -> None:
        # Checked before a handler is built, so that a bad value leaves no handler behind.
        passthrough = check_flag("passthrough", passthrough)
        check_fixed_or_callable("partition_key", partition_key)
        if serializer is not None and not callable(serializer):
            # A string here made every event fall back to the all-text rendering, silently.
            raise ConfigError(
                "serializer", f"must be a json.dumps-like callable, got {type(serializer).__name__}"
            )
        self._owns_handler = handler is None
        self._handler = handler_or_settings(
            handler,
            cast(Dict[str, Any], handler_settings),
            ("handler", "passthrough", "partition_key", "serializer"),
        )
        self._passthrough = passthrough
        self._partition_key = partition_key
        self._serializer = serializer

    @property
    def handler(self) -> DISHandler:
        """The handler events are queued on."""
        return self._handler

    def __repr__(self) -> str:
        # getattr: a traceback may show a processor whose __init__ failed half-way.
        handler = getattr(self, "_handler", None)
        passthrough = getattr(self, "_passthrough", None)
        return f"{type(self).__name__}(handler={handler!r}, passthrough={passthrough!r})"

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        """Queue the event on the handler, then drop it or pass it on.

        Args:
            logger: the wrapped logger (unused).
            method_name: the name of the logging method called (``"info"``), used for the
                level when the event has no ``level`` key.
            event_dict: the event; it is not modified. Rendered and queued only when its level
                is at least the handler's level. Inside an OpenTelemetry span, ``trace_id`` and
                ``span_id`` are added to what is shipped (unless the event has them).

        Returns:
            ``event_dict`` itself, when ``passthrough`` is true.

        Raises:
            structlog.DropEvent: when ``passthrough`` is false, after queueing the event.
        """
        levelno = _levelno(method_name, event_dict)
        if levelno >= self._handler.level:
            event: Mapping[str, Any] = event_dict
            # Read on the logging thread: the current span is bound to its context.
            trace = _otel.current_trace_fields()
            if trace is not None:
                event = {**trace, **event_dict}  # ids the event already has win
            data = render_json(event, self._serializer)
            self._handler.enqueue(data, partition_key=self._key_for(event_dict), levelno=levelno)
        if self._passthrough:
            return event_dict
        raise structlog.DropEvent

    def _key_for(self, event_dict: EventDict) -> Optional[str]:
        """Resolve ``partition_key`` for one event; a number (any value but ``None``) is written
        as text, as :class:`DISHandler` does; a callable that raises leaves the key to DIS."""
        key = self._partition_key
        if key is None or isinstance(key, str):
            return key
        try:
            chosen = key(event_dict)
            # str() of a foreign object runs user code too, so it stays inside the guard.
            return chosen if chosen is None or chosen.__class__ is str else str(chosen)
        except Exception:  # noqa: BLE001 - a user callable must not break logging; DIS picks instead
            return None

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until the events queued so far are acknowledged by DIS.

        Args:
            timeout: the longest wait in seconds; ``None`` (the default) uses the handler's
                ``close_timeout``. ``0`` only reports whether anything is still pending.

        Returns:
            ``True`` when everything queued before the call was acknowledged; ``False`` when
            something is still pending, was dropped or failed. Never raises.
        """
        return self._handler.flush(timeout)

    def close(self) -> None:
        """Close the handler if the processor built it; a shared handler is left open.

        Safe to call more than once.
        """
        if self._owns_handler:
            self._handler.close()
