"""A Loguru sink that ships each message to DIS as one JSON record.

Loguru is optional (extra ``loguru``) and only this module's tests import it: the sink reads the
message's ``record`` dict and needs nothing from the package itself::

    from loguru import logger
    from dis_logging.loguru_sink import DISSink

    sink_id = logger.add(DISSink(stream_name="app-logs", region="cn-north-4"), level="INFO")
    logger.bind(order_id=42).info("order {} paid", 42)
    logger.complete()        # waits until what was logged is acknowledged by DIS
    logger.remove(sink_id)   # closes the sink (and the handler it built)

Each message becomes ``{"time", "level", "message", "name", "function", "line", "extra",
"exception"}`` (plus ``trace_id``/``span_id`` inside an OpenTelemetry span). Rendering and queueing
happen on the logging thread; batching and HTTP on the handler's flusher thread.
"""

from __future__ import annotations

import datetime
import functools
import json
import logging
import traceback
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Final,
    Generator,
    Mapping,
    Optional,
    Union,
    cast,
)

from dis_logging import _otel
from dis_logging.config import check_fixed_or_callable
from dis_logging.formatting import _truncate_str, finite_values, safe_str
from dis_logging.handler import DISHandler, handler_or_settings

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from dis_logging.config import HandlerSettings

__all__ = ["TRACEBACK_EXTRA_KEY", "TRACE_EXTRA_KEY", "DISSink", "add_trace_ids", "render_record"]

#: Key of ``record["extra"]`` under which :func:`add_trace_ids` keeps the span's ids.
TRACE_EXTRA_KEY: Final = "_dis_logging_trace"
#: Key of ``record["extra"]`` under which :func:`add_trace_ids` keeps an exception's traceback
#: text: with ``enqueue=True`` Loguru pickles the record, and the traceback does not survive that.
TRACEBACK_EXTRA_KEY: Final = "_dis_logging_traceback"

#: A partition key: a fixed string, or a callable picking one from Loguru's record dict.
PartitionKey = Union[str, Callable[[Mapping[str, Any]], Optional[str]]]

# Attempts at fitting a too-large record; the last one also replaces ``extra``. Texts are cut in
# proportion to how much JSON escaping grows them; each retry keeps this many more bytes free, for
# a cut part that escapes more densely than the whole.
_SHRINK_ATTEMPTS: Final = 4
_SHRINK_SLACK: Final = 256


def _iso_utc(moment: object) -> str:
    """``2024-01-03T03:04:05.123Z`` for an aware datetime (Loguru's), its text otherwise."""
    if isinstance(moment, datetime.datetime):
        if moment.tzinfo is not None:
            moment = moment.astimezone(datetime.timezone.utc)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return safe_str(moment)


def _json_default(value: object) -> object:
    """``json`` fallback: dates as ISO text, bytes decoded, sets as lists, anything else as text."""
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return safe_str(value)


def _exception_text(exception: object) -> Optional[str]:
    """The traceback of Loguru's ``record["exception"]`` (type, value, traceback), or ``None``."""
    if exception is None:
        return None
    kind = getattr(exception, "type", None)
    value = getattr(exception, "value", None)
    if kind is None and value is None:
        return None
    try:
        lines = traceback.format_exception(kind, value, getattr(exception, "traceback", None))
        return "".join(lines).rstrip("\n")
    except Exception:  # noqa: BLE001 - a hostile exception must not lose the record
        return f"{safe_str(kind)}: {safe_str(value)}"


def add_trace_ids(record: Any) -> None:  # Any: loguru.Record, without importing loguru
    """Loguru patcher: keep the current OpenTelemetry span's ids, and an exception's traceback,
    with the message.

    The sink reads the current span when it writes a message, which is on the thread that logged
    it, unless the sink was added with ``enqueue=True``: then Loguru's own thread writes, where no
    span is current, and the record it gets went through ``pickle``, which keeps an exception's
    type and value but not its traceback. Patchers run on the logging thread first, so with this
    one the ids and the traceback survive the queue::

        logger.configure(patcher=add_trace_ids)   # or: logger = logger.patch(add_trace_ids)
        logger.add(DISSink(...), enqueue=True)

    The ids are kept under ``extra[TRACE_EXTRA_KEY]`` (a plain dict, so the record can be
    pickled) and written as the record's ``trace_id``/``span_id``, not inside ``extra``; the
    traceback text under ``extra[TRACEBACK_EXTRA_KEY]``, written as ``exception``. Outside a span,
    or without ``opentelemetry-api``, no ids are added. Never raises.

    Args:
        record: the Loguru record dict being patched (``loguru.Record``).
    """
    fields = _otel.current_trace_fields()
    extra = record.get("extra")
    if not isinstance(extra, dict):
        return
    if fields is not None:
        extra[TRACE_EXTRA_KEY] = dict(fields)
    exception = record.get("exception")
    if exception is not None and getattr(exception, "traceback", None) is not None:
        text = _exception_text(exception)
        if text is not None:
            extra[TRACEBACK_EXTRA_KEY] = text


def _carried_trace(value: object) -> Optional[Mapping[str, str]]:
    """The ids :func:`add_trace_ids` stored, or ``None`` when ``value`` is not such a pair."""
    if not isinstance(value, dict):
        return None
    trace_id, span_id = value.get(_otel.TRACE_ID_FIELD), value.get(_otel.SPAN_ID_FIELD)
    if isinstance(trace_id, str) and isinstance(span_id, str):
        return {_otel.TRACE_ID_FIELD: trace_id, _otel.SPAN_ID_FIELD: span_id}
    return None


def render_record(record: Mapping[str, Any], max_bytes: Optional[int] = None) -> bytes:
    """Render a Loguru record dict as one UTF-8 JSON object; never raises.

    Args:
        record: ``message.record`` as Loguru passes it to a sink.
        max_bytes: when the result would be larger, the message and the traceback are cut (each
            ending with ``...[truncated N bytes]``) so that the JSON stays valid; default
            ``None``, no limit.

    Returns:
        ``{"time", "level", "message", "name", "function", "line", "extra", "exception"}``:
        ``time`` in ISO 8601 UTC with milliseconds, ``level`` the level name, ``exception`` the
        formatted traceback or ``null``, ``extra`` the bound values (unencodable ones as text),
        plus ``trace_id`` and ``span_id`` when an OpenTelemetry span is current, or when
        :func:`add_trace_ids` kept them with the record.
    """
    try:
        level = record.get("level")
        fields: Dict[str, Any] = {
            "time": _iso_utc(record.get("time")),
            "level": getattr(level, "name", None) or safe_str(level),
            "message": safe_str(record.get("message", "")),
            "name": record.get("name"),
            "function": record.get("function"),
            "line": record.get("line"),
            "extra": dict(record.get("extra") or {}),
            "exception": _exception_text(record.get("exception")),
        }
        # Ids taken by add_trace_ids when the message was logged win over the span current here
        # (none, on Loguru's own thread with enqueue=True).
        carried = fields["extra"].pop(TRACEBACK_EXTRA_KEY, None)
        if isinstance(carried, str) and fields["exception"] is not None:
            fields["exception"] = carried  # taken before the queue dropped the traceback
        trace = _carried_trace(fields["extra"].pop(TRACE_EXTRA_KEY, None))
        if trace is None:
            trace = _otel.current_trace_fields()
        if trace is not None:
            fields.update(trace)
        data = _encode(fields)
        if max_bytes is not None and len(data) > max_bytes:
            data = _shrink(fields, max_bytes)
        return data
    except Exception as exc:  # noqa: BLE001 - the last line of defence: a minimal record
        fallback = {
            "message": safe_str(record.get("message", "")),
            "format_error": f"{type(exc).__name__}: {safe_str(exc)}",
        }
        return json.dumps(fallback, ensure_ascii=True).encode("ascii")


def _dumps(fields: Mapping[str, Any]) -> str:
    return json.dumps(
        fields,
        default=_json_default,
        ensure_ascii=False,
        separators=(",", ":"),
        allow_nan=False,  # NaN/Infinity are not JSON; a strict reader would reject the record
    )


def _encode(fields: Mapping[str, Any]) -> bytes:
    try:
        text = _dumps(fields)
    except (TypeError, ValueError, RecursionError, OverflowError):
        try:
            text = _dumps({name: finite_values(value) for name, value in fields.items()})
        except (TypeError, ValueError, RecursionError, OverflowError):
            # Circular or non-string keys inside ``extra``: keep its values as text.
            safe = dict(fields)
            safe["extra"] = {safe_str(k): safe_str(v) for k, v in dict(fields["extra"]).items()}
            text = _dumps(safe)
    return text.encode("utf-8", "backslashreplace")


def _shrink(fields: Dict[str, Any], max_bytes: int) -> bytes:
    """Cut the message and traceback (and drop ``extra`` if need be) to fit ``max_bytes``.

    The room left by the other fields is shared by the texts present, the shorter one first, so
    that a message without a traceback keeps as much as fits.
    """
    texts = {n: v for n in ("exception", "message") if isinstance(v := fields.get(n), str)}
    for attempt in range(_SHRINK_ATTEMPTS):
        if attempt == _SHRINK_ATTEMPTS - 1:
            fields["extra"] = {"truncated": True}
        envelope = len(_encode({**fields, **dict.fromkeys(texts, "")}))
        budget = max_bytes - envelope - _SHRINK_SLACK * attempt
        cut = dict(fields)
        left = max(budget, 0)
        for index, name in enumerate(sorted(texts, key=lambda n: len(texts[n]))):
            share = left // (len(texts) - index)
            text = texts[name]
            raw = len(text.encode("utf-8", "backslashreplace"))
            escaped = len(_dumps({"": text}).encode("utf-8", "backslashreplace")) - 7  # {"":""}
            cut[name] = _truncate_str(text, share * raw // max(escaped, 1))
            left -= min(escaped, share)
        data = _encode(cut)
        if len(data) <= max_bytes:
            return data
    return data


class _Finished:
    """An awaitable that is already done: what :meth:`DISSink.complete` returns."""

    def __await__(self) -> Generator[None, None, None]:
        return iter(())  # type: ignore[return-value]  # an empty iterator finishes at once


async def _complete_marker(sink: DISSink) -> None:
    """Never runs; gives :class:`_Completer` the coroutine-function look Loguru checks for."""
    del sink  # pragma: no cover


class _Completer(functools.partial):  # type: ignore[type-arg]  # partial of _complete_marker
    """``DISSink.complete``: flushes at once when called, yet looks like a coroutine function.

    Loguru's ``logger.complete()`` calls a sink's ``complete`` only when
    :func:`inspect.iscoroutinefunction` says it is one, and collects the result to be awaited
    (by ``await logger.complete()``) or dropped (by a plain ``logger.complete()``). That function
    looks through :class:`functools.partial` to the wrapped function (documented since Python
    3.8), so a partial of an ``async def`` passes; calling this subclass runs the flush right
    away and returns an awaitable that is already done, so both forms wait for DIS and neither
    leaves a coroutine that is never awaited.
    """

    def __call__(self, /, *args: object, **kwargs: object) -> _Finished:
        sink: DISSink = self.args[0]
        sink.handler.flush()  # bounded by the handler's close_timeout
        return _Finished()


class DISSink:
    """A Loguru sink that ships each message as one JSON record through a DISHandler.

    Add it with ``logger.add(DISSink(...))``; Loguru's own ``level``, ``filter`` and
    ``enqueue`` options apply as usual (its ``format``/``serialize`` do not: the record dict is
    rendered, see :func:`render_record`). ``logger.complete()`` (or ``await logger.complete()``)
    waits until everything logged so far is acknowledged, at most ``close_timeout``;
    ``logger.remove()`` closes the sink, sending what is left. For a wait with another bound,
    use ``sink.handler.flush(timeout)``. The sink has no ``flush`` method on purpose: Loguru
    would call it after every message.

    Args:
        handler: an existing :class:`~dis_logging.DISHandler` to queue on (shared with
            :mod:`logging`, left open by :meth:`stop`); default ``None`` builds one from
            ``handler_settings``, owned and closed by the sink.
        partition_key: a fixed key, or a callable taking Loguru's record dict and returning a
            key or ``None``; default ``None`` uses the handler's own setting. A callable that
            raises counts as ``None``.
        **handler_settings: the keyword arguments of :class:`~dis_logging.DISHandler`
            (``stream_name``, ``region``, credentials, tuning), typed by
            :class:`~dis_logging.config.HandlerSettings`; only when ``handler`` is ``None``.

    Raises:
        ConfigError: both ``handler`` and handler settings were given, the settings are
            invalid (the error names the setting), or ``partition_key`` is neither a string nor
            a callable. Nothing touches the network here.
    """

    def __init__(
        self,
        handler: Optional[DISHandler] = None,
        *,
        partition_key: Optional[PartitionKey] = None,
        **handler_settings: Unpack[HandlerSettings],
    ) -> None:
        check_fixed_or_callable("partition_key", partition_key)  # before building a handler
        self._owns_handler = handler is None
        self._handler = handler_or_settings(
            handler, cast(Dict[str, Any], handler_settings), ("handler", "partition_key")
        )
        self._partition_key = partition_key
        self._max_bytes = self._handler.config.max_record_bytes
        #: Called by ``logger.complete()``; see :class:`_Completer`.
        self.complete: Callable[[], _Finished] = _Completer(_complete_marker, self)

    @property
    def handler(self) -> DISHandler:
        """The handler messages are queued on."""
        return self._handler

    @property
    def name(self) -> str:
        """What Loguru shows for this sink in its handler list."""
        return f"DISSink(stream={self._handler.config.stream_name!r})"

    def __repr__(self) -> str:
        # getattr: a traceback may show a sink whose __init__ failed half-way.
        return f"DISSink(handler={getattr(self, '_handler', None)!r})"

    def write(self, message: object) -> None:
        """Queue one Loguru message; never raises.

        Args:
            message: the ``loguru.Message`` (a ``str`` with a ``record`` dict); a plain string
                without ``record`` is shipped as ``{"message": ...}``.
        """
        try:
            record = getattr(message, "record", None)
            if not isinstance(record, Mapping):
                text = safe_str(message).rstrip("\n")
                self._handler.enqueue(json.dumps({"message": text}).encode("utf-8"))
                return
            level = record.get("level")
            levelno = getattr(level, "no", logging.INFO)
            if not isinstance(levelno, int) or levelno < self._handler.level:
                return
            data = render_record(record, self._max_bytes)
            self._handler.enqueue(data, partition_key=self._key_for(record), levelno=levelno)
        except Exception as exc:  # noqa: BLE001 - a sink must never raise into the application
            self._handler.handleError(
                logging.makeLogRecord({"msg": f"DISSink.write failed: {exc!r}"})
            )

    def _key_for(self, record: Mapping[str, Any]) -> Optional[str]:
        key = self._partition_key
        if key is None or isinstance(key, str):
            return key
        try:
            chosen = key(record)
            # As DISHandler does: a number (any value but None) is written as text; str() of a
            # foreign object runs user code too, so it stays inside the guard.
            return chosen if chosen is None or chosen.__class__ is str else str(chosen)
        except Exception:  # noqa: BLE001 - a user callable must not break logging; DIS picks
            return None

    def stop(self) -> None:
        """Close the handler if the sink built it (``logger.remove()`` calls this); idempotent."""
        if self._owns_handler:
            self._handler.close()
