"""OpenTelemetry trace correlation: the current span's ids as ``trace_id`` and ``span_id``.

``opentelemetry-api`` is optional (extra ``otel``): without it, only the ``otelTraceID`` and
``otelSpanID`` record attributes are read, and nothing is imported. The span lives in a
context variable, so these functions must run on the thread that logged the record; the JSON
formatter and the structlog processor call them there.

Ids follow the W3C Trace Context text form: 32 and 16 lowercase hex digits
(https://www.w3.org/TR/trace-context/#trace-id), the same as OpenTelemetry's logging
instrumentation writes into ``otelTraceID``/``otelSpanID``.
"""

from __future__ import annotations

import logging
from types import MappingProxyType
from typing import Any, Callable, Final, Mapping, Optional, Tuple

__all__ = ["HAS_OPENTELEMETRY", "current_trace_fields", "trace_fields"]

#: Field names written for the ids.
TRACE_ID_FIELD: Final = "trace_id"
SPAN_ID_FIELD: Final = "span_id"
# Record attributes set by opentelemetry-instrumentation-logging's record factory ("0" outside a
# span).
_RECORD_TRACE_ID: Final = "otelTraceID"
_RECORD_SPAN_ID: Final = "otelSpanID"
#: Every attribute that record factory sets (opentelemetry-instrumentation-logging,
#: ``LoggingInstrumentor._instrument``): not shipped as ``extra`` fields, since the ids become
#: ``trace_id``/``span_id`` and outside a span they are placeholders ("0", False).
INSTRUMENTATION_ATTRIBUTES: Final = frozenset(
    {_RECORD_TRACE_ID, _RECORD_SPAN_ID, "otelTraceSampled", "otelServiceName"}
)
_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")

_get_current_span: Optional[Callable[[], Any]]
try:
    from opentelemetry.trace import get_current_span as _get_current_span
except ImportError:  # the extra is not installed: only record attributes are read
    _get_current_span = None

#: Whether ``opentelemetry-api`` could be imported.
HAS_OPENTELEMETRY: Final = _get_current_span is not None


def _context_lookup() -> Optional[Tuple[Callable[[], Any], object]]:
    """Return the default runtime context's getter and the span's key in a context, or ``None``.

    The public ``get_current_span()`` takes about 200 ns through four calls; reading the
    context variable of the default runtime context takes about 40 ns. That reaches into the API's
    internals, so it is used only when they look exactly as expected (``opentelemetry-api`` 1.x
    with the default ``contextvars`` runtime context); otherwise this returns ``None`` and the
    public API is used. Only the "no span" answer is taken from the shortcut: a span found is
    still checked through its public ``get_span_context()``.
    """
    if _get_current_span is None:
        return None
    try:
        import contextvars

        from opentelemetry import context as otel_context
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
        from opentelemetry.trace.propagation import _SPAN_KEY
    except ImportError:
        return None
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    if type(runtime) is not ContextVarsRuntimeContext or not isinstance(
        variable, contextvars.ContextVar
    ):
        return None
    return variable.get, _SPAN_KEY


def _span_lookup() -> Optional[Callable[[], Any]]:
    """Return a function giving the current span object or ``None``, faster than the public API.

    See :func:`_context_lookup`; ``None`` without ``opentelemetry-api``.
    """
    if _get_current_span is None:
        return None
    if _context_lookup_result is None:
        return _get_current_span
    get_context, span_key = _context_lookup_result

    def current_span() -> Any:
        return get_context().get(span_key)

    return current_span


_context_lookup_result = _context_lookup()
_current_span = _span_lookup()
# The shortcut's pieces as plain globals, for trace_fields' "no span" answer without a call.
_get_context: Optional[Callable[[], Any]] = None
_span_key: object = None
if _context_lookup_result is not None:
    _get_context, _span_key = _context_lookup_result

# The last span context seen and its fields. A span usually logs several records, and formatting a
# 128-bit id as hex costs more than the rest of the lookup; the tuple is replaced in one
# assignment, so threads reading it see an old or a new pair, never half of one. Holding the
# context keeps its id() from being reused by another object while it is cached.
_last: Tuple[object, Mapping[str, str]] = (None, MappingProxyType({}))
# The same for the last valid otelTraceID/otelSpanID pair read from a record.
_last_attributes: Tuple[str, str, Mapping[str, str]] = ("", "", MappingProxyType({}))


def _is_id(value: str, length: int) -> bool:
    """Whether ``value`` is ``length`` hex digits, not all zero (an all-zero id is invalid)."""
    return len(value) == length and _HEX_DIGITS.issuperset(value) and value.strip("0") != ""


def current_trace_fields() -> Optional[Mapping[str, str]]:
    """Return the ids of the span current on this thread or task, or ``None``.

    Returns:
        A read-only ``{"trace_id": <32 hex>, "span_id": <16 hex>}`` when ``opentelemetry-api``
        is installed and a valid span is current; ``None`` otherwise (no span, an invalid span
        context, or no OpenTelemetry). Never raises.
    """
    global _last
    if _current_span is None:
        return None
    try:
        span = _current_span()
        if span is None:
            return None
        context = span.get_span_context()
        last = _last
        if context is last[0]:
            return last[1]
        if not context.is_valid:
            return None
        fields = MappingProxyType(
            {
                TRACE_ID_FIELD: format(context.trace_id, "032x"),
                SPAN_ID_FIELD: format(context.span_id, "016x"),
            }
        )
        _last = (context, fields)
        return fields
    except Exception:  # noqa: BLE001 - a broken SDK or propagator must not fail a log record
        return None


def trace_fields(record: logging.LogRecord) -> Optional[Mapping[str, str]]:
    """Return the trace ids for ``record``, or ``None`` outside a span.

    The ``otelTraceID``/``otelSpanID`` attributes win when they hold valid ids: they were taken when
    the record was created, which matters when another thread handles it (a ``QueueListener``).
    Otherwise the span current on the calling thread is used.

    Args:
        record: the record being formatted, on the thread that logged it.

    Returns:
        ``{"trace_id": ..., "span_id": ...}`` in lowercase hex, or ``None``. Never raises.
    """
    global _last_attributes
    attributes = record.__dict__
    trace_id = attributes.get(_RECORD_TRACE_ID)
    if trace_id is not None:
        span_id = attributes.get(_RECORD_SPAN_ID)
        last = _last_attributes
        if trace_id == last[0] and span_id == last[1]:
            return last[2]
        if (
            isinstance(trace_id, str)
            and isinstance(span_id, str)
            and _is_id(trace_id, 32)
            and _is_id(span_id, 16)
        ):
            fields = MappingProxyType(
                {TRACE_ID_FIELD: trace_id.lower(), SPAN_ID_FIELD: span_id.lower()}
            )
            _last_attributes = (trace_id, span_id, fields)
            return fields
    # What current_trace_fields() answers, with the common "no span" case inlined: this runs for
    # every record a JSONFormatter captures, and each call saved is tens of nanoseconds.
    if _current_span is None:
        return None
    get_context = _get_context
    if get_context is not None and get_context().get(_span_key) is None:
        return None
    return current_trace_fields()
