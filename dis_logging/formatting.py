"""Turn a :class:`logging.LogRecord` into the bytes of one DIS record.

:class:`JSONFormatter` writes one compact JSON object per record, in two steps that may run on
different threads:

* :meth:`JSONFormatter.capture` runs on the application's thread and takes only what must be read
  at call time: the message (``%`` arguments resolved now), the exception and stack text, the fixed
  record fields and the ``extra`` fields. Immutable values (``str``, ``int``, ``float``, ``bool``,
  ``None``) are kept by reference; anything else is rendered to JSON text at once, so a later
  change to a mutable object cannot change what is shipped. The result is a
  :data:`CapturedRecord`, a plain tuple.
* :meth:`JSONFormatter.serialize` turns a captured record into the payload bytes, with the
  formatter's ``rename_fields``, ``static_fields`` and the size limit; :class:`DISHandler
  <dis_logging.handler.DISHandler>` runs it on its flusher thread, a batch at a time
  (:func:`dis_logging.serializer.serialize_payloads`).

:meth:`JSONFormatter.format` and :meth:`JSONFormatter.format_bytes` run both steps at once, so the
deferred path and the caller-thread path produce the same bytes by construction (a property test
checks it). :func:`encode_record` applies any formatter, encodes the text as UTF-8 and enforces the
size limit; nothing here raises, whatever the record holds (lone surrogates, bad ``%`` arguments,
objects whose ``str()`` raises, megabytes of text).
"""

from __future__ import annotations

import datetime as _dt
import itertools
import json
import logging
import math
import time
import weakref
from typing import Any, Callable, Dict, Final, List, Mapping, Optional, Sequence, Tuple, Union

from dis_logging import _otel
from dis_logging import serializer as _serializer
from dis_logging.config import check_flag, check_keywords
from dis_logging.errors import ConfigError

__all__ = [
    "TRUNCATION_MARKER",
    "CapturedRecord",
    "DeferredEncoder",
    "JSONFormatter",
    "add_caller_fields_hook",
    "encode_record",
    "encode_text",
    "fallback_payload",
    "fit_json",
    "safe_str",
    "truncate_bytes",
]

#: appended to a truncated value or payload; ``{}`` receives the number of bytes cut.
TRUNCATION_MARKER = "...[truncated {} bytes]"
#: the smallest record budget the truncation logic is designed for (config enforces it).
MIN_RECORD_BYTES = 256

# Attributes every LogRecord has, plus those Formatter.format adds, plus OpenTelemetry's logging
# instrumentation's (read as trace_id/span_id); the rest came from ``extra``.
_PLAIN_RECORD_SIZE = len(vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None)))
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None)).keys()
    | {"message", "asctime", "taskName"}
    | _otel.INSTRUMENTATION_ATTRIBUTES
)
# json.dumps escapes a character into at most 6 bytes (\uXXXX); used to size hard cuts.
_MAX_ESCAPED_CHAR_BYTES = 6
# Key under which fields renamed to None are written, then popped: keeps the hot path branch-free.
_OMIT = "\x00omit"

_Fields = Dict[str, Any]

#: What :meth:`JSONFormatter.capture` returns: a tuple whose layout is private to this module,
#: except that item 0 is the :attr:`DeferredEncoder.key` of the encoder that will serialize it (0
#: for none) and item 1 is the record's estimated size in bytes (see
#: :data:`CAPTURED_RECORD_OVERHEAD`). Payloads in the buffer are either ``bytes`` or such a tuple.
#: It holds only strings, numbers, ``None``, dicts and tuples of those, so the garbage collector
#: stops tracking it (a queue of 100,000 tracked records would make every full collection walk it).
#: %-arguments kept for the flusher follow the 17 fixed items in the same tuple, never as a tuple
#: of their own: the collector stops tracking a tuple only once every tuple inside it is
#: untracked, one nesting level per collection, so each level more lets queued records reach the
#: oldest generation, which every full collection walks (about 0.08 s of CPU per 100k records).
CapturedRecord = Tuple[Any, ...]
# Positions in a CapturedRecord.
_C_ENCODER = 0
_C_SIZE = 1
# The number of fixed items; kept %-arguments come after them.
_C_FIXED = 17
#: Bytes counted for a captured record on top of its text: the capture tuple (17 slots), the
#: message's string header, the float and int objects it owns, and the buffer's own item tuple and
#: sequence number, rounded up from what ``tracemalloc`` measures (``benchmarks/memory.py``, M1:
#: 466 bytes for a whole short record with two kept arguments, its text included, on CPython 3.11,
#: 64-bit). Batches are cut by this estimate too, and re-cut by the real serialized sizes on the
#: flusher.
CAPTURED_RECORD_OVERHEAD = 660
#: Bytes counted for a %-argument other than a str that a capture keeps for the flusher to format
#: (an int below 2**64, a float, a bool or None): what it holds in memory, its object (at most 36
#: bytes, ``sys.getsizeof``) and its slot in the capture tuple. The text is made and cut to
#: ``max_record_bytes`` on the flusher, as it would have been on the caller.
DEFERRED_ARG_BYTES = 48
# Ints kept for the flusher lie strictly between these (a bigger int's object and text grow
# with it, and its conversion to text is limited by sys.set_int_max_str_digits).
_INT_MIN = -(2**64)
_INT_MAX = 2**64
#: Bytes counted per ``extra`` field on top of its text (a dict slot, the key, a value object).
EXTRA_FIELD_OVERHEAD = 100
#: Bytes counted for the dict that holds a record's ``extra`` fields.
EXTRA_FIELDS_OVERHEAD = 240
# ".000Z" ... ".999Z": the end of every timestamp, concatenated rather than formatted per record.
_MS_SUFFIXES = tuple(f".{ms:03d}Z" for ms in range(1000))

#: Call sites (level, logger, module, function, line, process, thread) whose JSON text a
#: formatter keeps for its plain records, about 300 bytes each; later ones are written in full.
MAX_CALL_SITES: Final = 2048

# module name -> the same string: LogRecord makes a new one per record, the capture keeps one.
_MODULE_NAMES: Dict[str, str] = {}
# Bound once: capture() compares every record's class with it.
_LogRecord = logging.LogRecord
# Exact types kept by reference in a capture: their values cannot change after the call.
_IMMUTABLE_TYPES = frozenset({str, int, float, bool, type(None)})
# Caller-thread hooks adding context-bound fields (see add_caller_fields_hook).
_CALLER_FIELDS_HOOKS: List[Callable[[logging.LogRecord], Optional[Mapping[str, object]]]] = []


def add_caller_fields_hook(
    hook: Callable[[logging.LogRecord], Optional[Mapping[str, object]]],
) -> None:
    """Register a function whose fields are read on the caller's thread for every record.

    Use it for values bound to the calling context that a later thread cannot see, such as the
    current OpenTelemetry span. The fields are written after ``stack_info``/``format_error`` and
    before the record's ``extra`` fields (an ``extra`` field of the same name wins), by every
    :class:`JSONFormatter`, on the caller-thread path and the deferred path alike. Values are
    captured like ``extra`` values (immutable ones by reference, others rendered at once).

    Args:
        hook: called with the record; returns a mapping of fields, or ``None`` for none. It must
            be cheap and must not raise (an exception makes the record fall back to
            :func:`fallback_payload`).
    """
    if hook not in _CALLER_FIELDS_HOOKS:
        _CALLER_FIELDS_HOOKS.append(hook)


class _Rendered:
    """A value captured as JSON text; it encodes back to the same text.

    In a :data:`CapturedRecord` such a value is kept as the 1-tuple ``(text,)`` (no captured value
    is a tuple otherwise: tuples are rendered), and :meth:`JSONFormatter.captured_fields` turns it
    into this class.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"_Rendered({self.text!r})"


def _freeze(value: object) -> object:
    """Return ``value`` itself when immutable, else what it will encode to, taken now.

    Rendered values are returned as ``(json_text,)``; see :class:`_Rendered`.
    """
    cls = value.__class__
    if cls in _IMMUTABLE_TYPES:
        return value
    if isinstance(value, str):
        # A str subclass encodes as its text; a plain copy encodes and truncates the same way.
        return str.__str__(value)
    try:
        return (_render_json(value),)
    except Exception:  # noqa: BLE001 - what the encoder's sanitizing fallback does: use its text
        return safe_str(value)


def _thaw(value: object) -> object:
    """The field value of a frozen value: a rendered ``(text,)`` becomes :class:`_Rendered`."""
    return _Rendered(value[0]) if isinstance(value, tuple) else value


def _render_json(value: object) -> str:
    return json.dumps(
        value,
        ensure_ascii=False,
        allow_nan=False,
        separators=(",", ":"),
        default=_json_default,
    )


class DeferredEncoder:
    """Serializes captured records with one formatter and one size limit (the flusher's step).

    The handler creates one per formatter and puts its :attr:`key` into every record it
    captures, so that a buffered record names everything needed to encode it
    (:func:`encoder_for`).

    Args:
        formatter: the formatter that captured the records.
        max_bytes: the payload size limit in bytes.
        truncate: ``True`` cuts an oversized payload; ``False`` yields ``None`` for it.

    Attributes:
        key: a positive int unique in the process, registered for :func:`encoder_for` while the
            encoder is alive.
    """

    __slots__ = ("__weakref__", "formatter", "key", "max_bytes", "truncate")

    def __init__(self, formatter: JSONFormatter, max_bytes: int, truncate: bool) -> None:
        self.formatter = formatter
        self.max_bytes = max_bytes
        self.truncate = truncate
        self.key = next(_encoder_keys)
        _ENCODERS[self.key] = self

    def __call__(self, captured: CapturedRecord) -> Optional[bytes]:
        """Return the payload of ``captured``, or ``None`` when oversize and not truncated."""
        return self.formatter.serialize(captured, self.max_bytes, self.truncate)

    def many(
        self, captured: Sequence[CapturedRecord], budget: Optional[int] = None
    ) -> List[Optional[bytes]]:
        """Return the payloads of several captured records, in order (a batch at a time).

        Args:
            captured: the records.
            budget: stop once the payloads made exceed this many bytes (the list is then
                shorter); default ``None``, no limit.
        """
        return self.formatter.serialize_many(captured, self.max_bytes, self.truncate, budget)

    def __repr__(self) -> str:
        return f"DeferredEncoder({self.formatter!r}, max_bytes={self.max_bytes})"


_encoder_keys = itertools.count(1)
_ENCODERS: weakref.WeakValueDictionary[int, DeferredEncoder] = weakref.WeakValueDictionary()
_fallback_encoder: List[DeferredEncoder] = []


def encoder_for(key: int) -> DeferredEncoder:
    """Return the encoder a captured record names (item 0 of a :data:`CapturedRecord`).

    Args:
        key: the :attr:`DeferredEncoder.key`.

    Returns:
        That encoder; one of a default :class:`JSONFormatter` with the default size limit if it
        is gone (its handler was garbage-collected with records still referenced elsewhere).
    """
    encoder = _ENCODERS.get(key)
    if encoder is None:
        if not _fallback_encoder:
            _fallback_encoder.append(DeferredEncoder(JSONFormatter(), 1_000_000, True))
        encoder = _fallback_encoder[0]
    return encoder


#: Nesting followed by :func:`finite_values`; deeper values are left as they are.
_FINITE_MAX_DEPTH: Final = 32


def finite_values(value: object, depth: int = 0) -> object:
    """``value`` with each NaN or infinity, also inside dicts, lists, tuples and sets, as text.

    Strict JSON has no NaN or infinity; :func:`json.dumps` would write ``NaN``, which strict
    consumers reject. The text is what :class:`JSONFormatter` writes: ``"nan"``, ``"inf"``.

    Args:
        value: any value; containers are copied (sets and tuples become lists), not changed.
        depth: nesting level of ``value``; containers deeper than 32 levels are left as they are.

    Returns:
        The value, or a copy with the non-finite floats replaced.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return safe_str(value)
    if depth < _FINITE_MAX_DEPTH:
        if isinstance(value, dict):
            return {key: finite_values(item, depth + 1) for key, item in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [finite_values(item, depth + 1) for item in value]
    return value


def safe_str(value: object) -> str:
    """Return ``str(value)``, or a placeholder naming the type when ``str()`` and ``repr()`` fail.

    Args:
        value: any object.

    Returns:
        A string; never raises.
    """
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - hostile __str__: any exception type is possible
        try:
            return repr(value)
        except Exception:  # noqa: BLE001 - hostile __repr__ as well
            return f"<unprintable {type(value).__qualname__} object>"


def _json_default(value: object) -> object:
    """``json`` fallback for values it cannot encode itself; never raises."""
    if isinstance(value, _Rendered):
        return json.loads(value.text)
    try:
        if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
            return value.isoformat()
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value).decode("utf-8", "backslashreplace")
        if isinstance(value, (set, frozenset, tuple)):
            return list(value)
    except Exception:  # noqa: BLE001 - a broken isoformat or iterator; fall back to its text
        return safe_str(value)
    return safe_str(value)


def encode_text(text: str) -> bytes:
    """Encode ``text`` as UTF-8, escaping lone surrogates as ``\\udcxx`` instead of failing.

    Inside a JSON string the escape is valid JSON for the same code point, so JSON output stays
    parseable.

    Args:
        text: any string, including one with lone surrogates.

    Returns:
        UTF-8 bytes.
    """
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace")


def _cut_utf8(data: bytes, limit: int) -> bytes:
    """Return at most ``limit`` bytes of ``data`` without splitting a UTF-8 sequence."""
    if len(data) <= limit:
        return data
    cut = max(limit, 0)
    # step back over continuation bytes (10xxxxxx) so the cut lands on a character boundary
    while cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return data[:cut]


def truncate_bytes(data: bytes, max_bytes: int) -> bytes:
    """Cut ``data`` to ``max_bytes`` on a UTF-8 boundary, ending with a visible marker.

    Args:
        data: the encoded payload.
        max_bytes: the budget, at least :data:`MIN_RECORD_BYTES` (smaller budgets get a bare cut).

    Returns:
        ``data`` itself when it fits, else a prefix plus ``...[truncated N bytes]``, at most
        ``max_bytes`` long.
    """
    if len(data) <= max_bytes:
        return data
    marker = TRUNCATION_MARKER.format(len(data)).encode("ascii")
    if len(marker) >= max_bytes:
        return _cut_utf8(data, max_bytes)
    head = _cut_utf8(data, max_bytes - len(marker))
    marker = TRUNCATION_MARKER.format(len(data) - len(head)).encode("ascii")
    return head + marker


def _truncate_str(value: str, max_bytes: int) -> str:
    """Shorten ``value`` to about ``max_bytes`` UTF-8 bytes, ending with the marker."""
    raw = encode_text(value)
    if len(raw) <= max_bytes:
        return value
    marker = TRUNCATION_MARKER.format(len(raw))
    head = _cut_utf8(raw, max(max_bytes - len(marker), 0))
    return head.decode("utf-8", "ignore") + TRUNCATION_MARKER.format(len(raw) - len(head))


#: Rounds of cutting the largest value before an oversized object is reduced to its ``event``.
_SHRINK_ROUNDS: Final = 32
#: Room kept for the truncation marker and the JSON quoting around a cut value.
_SHRINK_SLACK: Final = 64


def _compact(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", errors="backslashreplace"
    )


def fit_json(data: bytes, max_bytes: int) -> bytes:
    """Cut an encoded payload to ``max_bytes``; a JSON object stays one valid JSON object.

    What the handler does with an oversized payload that is not a captured record (a custom
    formatter's output, the structlog processor's events), when ``oversize="truncate"``.

    The largest value is cut (a value that is not a string becomes its JSON text, cut), by at most
    half per round, each cut ending with ``...[truncated N bytes]``; if 32 rounds are not enough,
    only the message is kept (``event``, ``message`` or ``msg``, else the first value), cut,
    with ``"truncated": true``. Bytes that are not a JSON object are cut as bytes.

    Args:
        data: the encoded payload.
        max_bytes: the record budget (``max_record_bytes``, at least 256).

    Returns:
        ``data`` when it fits, else a JSON object of at most ``max_bytes`` bytes.
    """
    if len(data) <= max_bytes:
        return data
    event: object = None
    if data[:1] == b"{":
        try:
            event = json.loads(data)
        except (ValueError, RecursionError):  # not JSON, or nested too deep: cut it as bytes
            event = None
    if not isinstance(event, dict) or not event:
        return truncate_bytes(data, max_bytes)
    try:
        return _shrink_object(event, max_bytes)
    except RecursionError:  # parsed just below the limit, re-encoded just above it
        return truncate_bytes(data, max_bytes)


def _shrink_object(event: Dict[str, Any], max_bytes: int) -> bytes:
    """The rounds of :func:`fit_json` on a parsed object; may raise ``RecursionError``."""
    originals: Dict[str, str] = {}  # each cut value's full text: markers count from it
    kept: Dict[str, int] = {}
    for _ in range(_SHRINK_ROUNDS):
        encoded = _compact(event)
        excess = len(encoded) - max_bytes
        if excess <= 0:
            return encoded
        sizes = {key: len(_compact(value)) for key, value in event.items()}
        key = max(sizes, key=lambda name: sizes[name])
        if key not in originals:
            value = event[key]
            originals[key] = value if isinstance(value, str) else _compact(value).decode("utf-8")
            kept[key] = len(originals[key].encode("utf-8", errors="backslashreplace"))
        # Cut to fit, but by at most half per round, so that the room is shared between the
        # large values rather than taken all from the largest.
        size = kept[key]
        kept[key] = max(max(size - excess, size // 2) - _SHRINK_SLACK, 0)
        event[key] = _truncate_str(originals[key], kept[key])
    # Still too large (many small values): keep the message alone.
    name = next((n for n in ("event", "message", "msg") if n in event), next(iter(event)))
    first = originals.get(name, event[name])
    text = first if isinstance(first, str) else _compact(first).decode("utf-8")
    # Six bytes per character at worst (\u0000 escapes), plus the rest of the object.
    minimal = {name: _truncate_str(text, max((max_bytes - 100) // 6, 0)), "truncated": True}
    return _compact(minimal)


def _field_map(setting: str, value: object) -> Dict[str, Any]:
    """A :class:`JSONFormatter` mapping setting as a dict with string keys (``None`` is empty).

    Raises:
        ConfigError: ``value`` is not a mapping, or one of its keys is not a string.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(setting, f"must be a mapping of field names, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(setting, f"field names must be strings, got {key!r}")
    return dict(value)


#: Former names of :class:`JSONFormatter`'s built-in fields, still accepted in ``rename_fields``.
FORMER_FIELD_NAMES: Final = {"exc_info": "exception"}


class JSONFormatter(logging.Formatter):
    """Format each record as one JSON object on one line.

    Fields, in order: ``timestamp`` (ISO-8601 UTC with milliseconds, ``2024-01-03T03:04:05.123Z``),
    ``level``, ``logger``, ``message``, the ``static_fields``, ``module``, ``funcName``, ``lineno``,
    ``process``, ``processName``, ``threadName``, ``exception`` (formatted traceback, when present;
    the structlog processor writes the same name),
    ``stack_info`` (when present), ``trace_id`` and ``span_id`` (when an OpenTelemetry span is
    current, or the record has valid ``otelTraceID``/``otelSpanID`` attributes; see
    :mod:`dis_logging._otel`), then every ``extra`` field of the record. Values JSON cannot
    hold (datetimes, bytes, sets, arbitrary objects) are written as text; an object whose ``str()``
    raises becomes ``<unprintable T object>``. A message whose ``%`` arguments do not match is kept
    as the template plus the arguments, with a ``format_error`` field.

    Usable from ``dictConfig``::

        {"()": "dis_logging.JSONFormatter", "static_fields": {"service": "api"}}

    Args:
        fmt: accepted for ``fileConfig`` compatibility and ignored (the layout is JSON).
        datefmt: accepted for compatibility; the timestamp is always ISO-8601 UTC.
        style: accepted for compatibility and ignored.
        validate: accepted for compatibility and ignored.
        defaults: like ``logging.Formatter``'s: extra constant fields (merged into
            ``static_fields``). Default: none.
        rename_fields: maps a built-in field name to the name to write instead, e.g.
            ``{"timestamp": "@timestamp", "message": "msg", "trace_id": "trace.id"}``; mapping a
            field to ``None`` or ``""`` leaves it out. ``trace_id`` and ``span_id`` count as
            built-in fields here (an ``extra`` field of that name is renamed with them).
            Default: no renaming. ``"exc_info"`` is accepted as the former name of
            ``"exception"``; ``{"exception": "exc_info"}`` writes the traceback under that former
            name (kept for one release, for consumers that still read it).
        static_fields: constant fields added to every object (service name, environment); ``extra``
            fields of the same name win. Default: none. Kept as the ``static_fields`` dict, read
            when a record is written: a change to it reaches records a handler still holds too
            (to change them for later records only, ``setFormatter()`` a new formatter).
        ensure_ascii: escape every non-ASCII character (bigger, 7-bit safe); default ``False``.
            The words ``"true"``/``"false"`` are accepted too.

    Raises:
        ConfigError: an unknown keyword (every one named, each with the closest setting), a
            mapping setting that is not a mapping with string keys, an unknown field in
            ``rename_fields``, two fields renamed onto one name, or an ``ensure_ascii`` that is
            not a boolean.
    """

    _BUILTIN_FIELDS = (
        "timestamp",
        "level",
        "logger",
        "message",
        "module",
        "funcName",
        "lineno",
        "process",
        "processName",
        "threadName",
        "exception",
        "stack_info",
    )
    #: Written among the extra fields, inside an OpenTelemetry span; renamable all the same.
    _TRACE_FIELDS = (_otel.TRACE_ID_FIELD, _otel.SPAN_ID_FIELD)

    @check_keywords
    def __init__(
        self,
        fmt: Optional[str] = None,
        datefmt: Optional[str] = None,
        style: str = "%",
        validate: bool = True,
        *,
        defaults: Optional[Mapping[str, object]] = None,
        rename_fields: Optional[Mapping[str, Optional[str]]] = None,
        static_fields: Optional[Mapping[str, object]] = None,
        ensure_ascii: Union[bool, str] = False,
    ) -> None:
        # fileConfig and dictConfig's "class" form call Formatter(fmt, datefmt, style[, validate],
        # defaults=...); accept that shape. The layout is JSON, so fmt/style are not used.
        del fmt, style, validate
        super().__init__(datefmt=datefmt)
        defaults = _field_map("defaults", defaults)
        static_fields = _field_map("static_fields", static_fields)
        ensure_ascii = check_flag("ensure_ascii", ensure_ascii)
        if defaults:
            static_fields = {**defaults, **static_fields}
        rename = {
            FORMER_FIELD_NAMES.get(name, name): value
            for name, value in _field_map("rename_fields", rename_fields).items()
        }
        unknown = set(rename) - set(self._BUILTIN_FIELDS) - set(self._TRACE_FIELDS)
        if unknown:
            raise ConfigError(
                "rename_fields",
                f"unknown field(s) {sorted(unknown)}; known: "
                f"{[*self._BUILTIN_FIELDS, *self._TRACE_FIELDS]}",
            )
        written: Dict[str, str] = {}
        for name in (*self._BUILTIN_FIELDS, *self._TRACE_FIELDS):
            value = rename.get(name, name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(
                    "rename_fields", f"{name!r} must map to a name or None, got {value!r}"
                )
            if value and value in written:
                # Two fields under one key: the JSON object would keep only the last one.
                raise ConfigError(
                    "rename_fields",
                    f"{written[value]!r} and {name!r} would both be written as {value!r}",
                )
            if value:
                written[value] = name
        self.rename_fields: Dict[str, Optional[str]] = rename
        self.static_fields: Dict[str, object] = dict(static_fields or {})
        names = {name: rename.get(name, name) or _OMIT for name in self._BUILTIN_FIELDS}
        self._names: Dict[str, str] = names
        self._keys = tuple(names[name] for name in self._BUILTIN_FIELDS)
        self._fixed_keys = self._keys[1:10]
        self._k_message = names["message"]
        self._omits = _OMIT in names.values()
        # trace_id/span_id come with the extra fields (caller hooks); renamed there when asked.
        trace_names = {name: rename[name] or _OMIT for name in self._TRACE_FIELDS if name in rename}
        self._extra_names: Optional[Dict[str, str]] = trace_names or None
        self._encoder = json.JSONEncoder(
            ensure_ascii=ensure_ascii,
            allow_nan=False,
            separators=(",", ":"),
            default=_json_default,
        )
        self._fast_encode = _make_fast_encoder(ensure_ascii)
        # orjson has no ensure_ascii switch; serializer.orjson_dumps guards everything else.
        self._use_orjson = not ensure_ascii and _serializer.HAS_ORJSON
        self._ts_cache: Tuple[int, str] = (-1, "")
        self._quote = (
            json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring
        )
        cls = type(self)
        # A subclass that writes records its own way (captured_fields adds a field, say) gets
        # every record through those methods: the shortcuts below would bypass them.
        self._own_serialize = (
            cls.serialize is not JSONFormatter.serialize
            or cls.captured_fields is not JSONFormatter.captured_fields
        )
        # Plain records (see _plain_parts) are written from text kept per call site.
        self._plain = self._plain_parts()
        self._sites: Dict[Tuple[Any, ...], Tuple[str, str]] = {}
        # The static fields that text was made from: a batch made after the application changed
        # ``static_fields`` remakes it (see serialize_many), as format() reads them anew.
        self._plain_static: Dict[str, object] = dict(self.static_fields)

    def _plain_parts(self) -> Optional[Tuple[str, Tuple[str, ...], str]]:
        """What the JSON text of every plain record shares, or ``None`` when the setup rules it
        out (omitted or clashing keys, static values other than str, int, bool or None).

        A plain record has no traceback, stack, ``format_error`` or ``extra`` fields, str names
        and an int line number and process id: what most records are. Its JSON text is the same
        as that of :meth:`captured_fields` encoded either way (orjson or the ``json`` module).

        Returns:
            The text before the timestamp, the ten quoted keys, and the static fields' text.
        """
        keys = self._keys[:10]
        static = self.static_fields
        if self._own_serialize:
            return None
        if _OMIT in keys or len(set(keys)) != len(keys) or set(keys) & set(static):
            return None
        if not all(v is None or v.__class__ in (str, int, bool) for v in static.values()):
            return None
        quote = self._quote
        quoted = tuple(quote(key) for key in keys)
        extra = "".join(f",{quote(k)}:{self._encoder.encode(v)}" for k, v in static.items())
        return "{" + quoted[0] + ':"', quoted, extra

    def _site_parts(self, site: Tuple[Any, ...]) -> Tuple[str, str]:
        """The text around the message of a plain record from one call site (the first
        :data:`MAX_CALL_SITES` are remembered).

        Args:
            site: level name, logger name and items 7-12 of the capture (module, function, line,
                process, process name, thread name).

        Returns:
            The text from the end of the timestamp to the message, and after the message.

        Raises:
            TypeError: a name is not a string.
        """
        assert self._plain is not None
        k = self._plain[1]
        quote = self._quote
        level, logger, (module, function, line, process, pname, tname) = site
        middle = f'",{k[1]}:{quote(level)},{k[2]}:{quote(logger)},{k[3]}:'
        tail = (
            f",{k[4]}:{quote(module)},{k[5]}:{quote(function)},{k[6]}:{int.__repr__(line)},"
            f"{k[7]}:{int.__repr__(process)},{k[8]}:{quote(pname)},{k[9]}:{quote(tname)}"
            f"{self._plain[2]}}}"
        )
        if len(self._sites) < MAX_CALL_SITES:
            self._sites[site] = (middle, tail)
        return middle, tail

    def __repr__(self) -> str:
        return (
            f"JSONFormatter(rename_fields={self.rename_fields!r}, "
            f"static_fields={sorted(self.static_fields)!r})"
        )

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON.

        Args:
            record: the record to format; only ``exc_text`` is written back (the stdlib cache).

        Returns:
            The JSON text; it may contain lone surrogates copied from the record (see
            :func:`encode_text`).
        """
        fields = self.fields(record)
        if self._use_orjson:
            data = _serializer.orjson_dumps(fields)
            if data is not None:
                return data.decode("utf-8")
        return self._encode(fields)

    def format_bytes(
        self, record: logging.LogRecord, max_bytes: int, truncate: bool = True
    ) -> Optional[bytes]:
        """Return the record as UTF-8 JSON of at most ``max_bytes``, keeping the JSON valid.

        An oversized record has its longest text fields (usually the message or the traceback)
        cut, each ending with ``...[truncated N bytes]``; if that is not enough, only the timestamp,
        level, logger and a cut message are kept. The same as :meth:`capture` followed by
        :meth:`serialize` (unless a subclass overrides :meth:`fields`).

        Args:
            record: the record to format.
            max_bytes: the size budget in bytes.
            truncate: ``False`` returns ``None`` for an oversized record instead of cutting it.

        Returns:
            The payload, or ``None`` when it is too large and ``truncate`` is false. Never raises.
        """
        if self.is_deferrable:
            try:
                captured = self.capture(record)
            except Exception as exc:  # noqa: BLE001 - the last line of defence must hold for any record
                return self._fit(None, fallback_payload(record, exc), max_bytes, truncate)
            return self.serialize(captured, max_bytes, truncate)
        try:
            fields: Optional[_Fields] = self.fields(record)
            assert fields is not None
            data = self._encode_bytes(fields)
        except Exception as exc:  # noqa: BLE001 - a subclass's fields() may raise anything
            data = fallback_payload(record, exc)
            fields = None
        return self._fit(fields, data, max_bytes, truncate)

    @property
    def is_deferrable(self) -> bool:
        """Whether :meth:`capture` plus :meth:`serialize` is this formatter's whole output.

        ``False`` for a subclass that overrides :meth:`fields`, :meth:`format` or
        :meth:`format_bytes`: the handler then formats such records on the caller's thread.
        """
        cls = type(self)
        return (
            cls.fields is JSONFormatter.fields
            and cls.format is JSONFormatter.format
            and cls.format_bytes is JSONFormatter.format_bytes
        )

    def fields(self, record: logging.LogRecord) -> Dict[str, Any]:
        """Return the ordered dict that :meth:`format` encodes (subclasses may add fields).

        Args:
            record: the record to read.

        Returns:
            A new dict; values are not yet made JSON-safe.
        """
        return self.captured_fields(self.capture(record))

    def capture(
        self, record: logging.LogRecord, encoder: Optional[DeferredEncoder] = None
    ) -> CapturedRecord:
        """Take what must be read on the caller's thread; the rest waits for :meth:`serialize`.

        The message is resolved (``getMessage()``), the traceback and stack formatted (the
        traceback is cached in ``record.exc_text``, as :class:`logging.Formatter` does), and the
        ``extra`` fields and :func:`add_caller_fields_hook` fields frozen: immutable values by
        reference, anything else rendered to JSON text now. %-arguments are treated alike: when
        every one is immutable (a str, an int below 2**64, a float, a bool or None), the format
        string and the arguments are kept and the flusher formats them, with the same result.

        Args:
            record: the record.
            encoder: its key is stored in the capture so that whoever holds the capture can
                serialize it; default ``None`` (key 0).

        Returns:
            The captured record. It holds no reference to ``record`` or its traceback, and none
            to its arguments unless they are immutable.

        Raises:
            Exception: whatever a hostile record raises while its fixed attributes are read;
                :meth:`format_bytes` and the handler turn that into :func:`fallback_payload`.
        """
        # Every attribute is read before ``record.__dict__`` below: on CPython 3.11+ a record's
        # attributes live inline until something asks for its ``__dict__``, which then builds a
        # dict (about 60 ns) and makes each later attribute read slower.
        msg = record.msg
        args = record.args
        created = record.created
        msecs = record.msecs
        levelname = record.levelname
        name = record.name
        module_name = record.module
        func_name = record.funcName
        lineno = record.lineno
        process = record.process
        process_name = record.processName
        thread_name = record.threadName
        format_error = None
        size = CAPTURED_RECORD_OVERHEAD
        message: object = None
        kept: Tuple[Any, ...] = ()
        if (
            args
            and msg.__class__ is str
            and args.__class__ is tuple
            and record.__class__ is _LogRecord
        ):
            # %-arguments that cannot change after the call are kept as they are and formatted
            # by the flusher (_resolve_message): the same text, without the work on this thread.
            text_size = len(msg)
            arg: Any
            for arg in args:
                cls = arg.__class__
                if cls is str:
                    text_size += len(arg)
                elif cls is int:
                    if not _INT_MIN < arg < _INT_MAX:
                        break  # a big int's text can be long, and the int conversion is limited
                    text_size += DEFERRED_ARG_BYTES
                elif cls is float or cls is bool or arg is None:
                    text_size += DEFERRED_ARG_BYTES
                else:
                    break  # a value that may change (or render differently) later: format now
            else:
                message = msg
                kept = args
                size += text_size
        if message is None:
            if args or msg.__class__ is not str:
                try:
                    if msg.__class__ is str and record.__class__ is _LogRecord:
                        msg = msg % args  # what LogRecord.getMessage does, without two calls
                    else:
                        msg = record.getMessage()
                except Exception as exc:  # noqa: BLE001 - bad %-args or a msg whose __str__ raises
                    msg = f"{safe_str(record.msg)} % {safe_str(args)}"
                    format_error = f"{type(exc).__name__}: {safe_str(exc)}"
            message = msg
            size += len(msg)
        exc_text = None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self._format_exception(record)
            exc_text = _freeze(record.exc_text)
        elif record.exc_text:
            exc_text = _freeze(record.exc_text)
        if exc_text is not None:
            size += _estimate(exc_text)
        stack = None
        if record.stack_info:
            stack = safe_str(record.stack_info)
            size += len(stack)
        attributes = record.__dict__
        extras: Optional[_Fields] = None
        for hook in _CALLER_FIELDS_HOOKS:
            if hook is _trace_fields and _otel._RECORD_TRACE_ID not in attributes:
                # The built-in OpenTelemetry lookup's usual answer, "no span", taken here without
                # calling it, as _otel.trace_fields would take it: two Python calls per record
                # are several percent of a capture.
                get_context = _otel._get_context
                if _otel._current_span is None or (
                    get_context is not None and get_context().get(_otel._span_key) is None
                ):
                    continue
            added = hook(record)
            if added:
                if extras is None:
                    extras = {}  # only once a hook has fields: most records have none
                for key, value in added.items():
                    extras[key] = _freeze(value)
        # A plain record has a fixed attribute count; only a longer one can carry ``extra`` fields
        # (or ``message``/``asctime`` left by another formatter), so the set difference is rare.
        if len(attributes) > _PLAIN_RECORD_SIZE and attributes.keys() - _RECORD_ATTRIBUTES:
            if extras is None:
                extras = {}
            for key, value in attributes.items():
                if key not in _RECORD_ATTRIBUTES:
                    extras[key] = _freeze(value)
        try:
            module: object = _MODULE_NAMES[module_name]
        except KeyError:
            module = _shared_module_name(module_name)
        if extras:
            size += EXTRA_FIELDS_OVERHEAD
            for key, value in extras.items():
                size += EXTRA_FIELD_OVERHEAD + len(key) + _estimate(value)
        else:
            extras = None
        captured = (
            0 if encoder is None else encoder.key,
            size,
            created,
            msecs,
            levelname,
            name,
            message,
            module,
            func_name,
            lineno,
            process,
            process_name,
            thread_name,
            exc_text,
            stack,
            format_error,
            extras,
        )
        return captured + kept if kept else captured

    def captured_fields(self, captured: CapturedRecord) -> Dict[str, Any]:
        """Return the ordered dict of a captured record (what :meth:`fields` returns).

        Args:
            captured: a record from :meth:`capture`.

        Returns:
            A new dict: the fixed fields, ``static_fields``, traceback, stack, ``format_error``,
            then the caller-hook and ``extra`` fields.
        """
        if len(captured) > _C_FIXED:
            captured = _resolve_message(captured)
        second = int(captured[2])
        cache = self._ts_cache
        if cache[0] != second:
            cache = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._ts_cache = cache
        k = self._keys
        msecs = int(captured[3])
        suffix = _MS_SUFFIXES[msecs] if 0 <= msecs < 1000 else f".{msecs:03d}Z"
        fields: _Fields = {k[0]: cache[1] + suffix}
        # level, logger, message, module, funcName, lineno, process, processName, threadName
        fields.update(zip(self._fixed_keys, captured[4:13]))
        exc_text, stack, format_error, extras = captured[13:_C_FIXED]
        if self.static_fields:
            fields.update(self.static_fields)
        if exc_text is not None:
            fields[k[10]] = _thaw(exc_text)
        if stack is not None:
            fields[k[11]] = stack
        if format_error is not None:
            fields["format_error"] = format_error
        if self._omits:
            fields.pop(_OMIT, None)
        if extras is not None:
            names = self._extra_names
            for key, value in extras.items():
                if names is not None:
                    key = names.get(key, key)
                    if key is _OMIT:
                        continue
                fields[key] = _Rendered(value[0]) if value.__class__ is tuple else value
        return fields

    def serialize(
        self, captured: CapturedRecord, max_bytes: int, truncate: bool = True
    ) -> Optional[bytes]:
        """Return the payload of a captured record, within ``max_bytes`` (any thread).

        Args:
            captured: a record from :meth:`capture`.
            max_bytes: the size budget in bytes.
            truncate: ``False`` returns ``None`` for an oversized record instead of cutting it.

        Returns:
            The bytes :meth:`format_bytes` would have returned for the record at capture time, or
            ``None`` when too large and ``truncate`` is false. Never raises.
        """
        try:
            fields: Optional[_Fields] = self.captured_fields(captured)
            assert fields is not None
            data = self._encode_bytes(fields)
        except Exception as exc:  # noqa: BLE001 - the last line of defence must hold for any record
            data = _captured_fallback(captured, exc)
            fields = None
        return self._fit(fields, data, max_bytes, truncate)

    def serialize_many(
        self,
        captured: Sequence[CapturedRecord],
        max_bytes: int,
        truncate: bool = True,
        budget: Optional[int] = None,
    ) -> List[Optional[bytes]]:
        """Return :meth:`serialize` of each captured record, in order, with less per-record work.

        Records whose fields orjson encodes natively and that fit ``max_bytes`` take a flat
        path; every other record goes through :meth:`serialize`. The bytes are the same.

        Args:
            captured: records from :meth:`capture`.
            max_bytes: the size budget of one record in bytes.
            truncate: ``False`` gives ``None`` for an oversized record instead of cutting it.
            budget: stop after the record that takes the payloads made past this many bytes;
                default ``None``, no limit. A capture's size estimate cannot foresee the text a
                kept ``%``-argument's width makes (``"%-900000s"``), so this keeps a batch's
                bytes in memory near the batch limit rather than records times widths.

        Returns:
            One payload (or ``None``) per record, or fewer when ``budget`` stopped the work: the
            payloads of the leading records.
        """
        left = -1 if budget is None else budget  # bytes still allowed; -1: no limit
        out: List[Optional[bytes]] = []
        append = out.append
        if self.static_fields != self._plain_static:
            # The application changed static_fields (once per batch: not per record).
            self._plain_static = dict(self.static_fields)
            self._sites = {}
            self._plain = self._plain_parts()
        plain = self._plain
        head = "" if plain is None else plain[0]
        dumps = _serializer.orjson_dumps_native if self._use_orjson else None
        if type(self).serialize is not JSONFormatter.serialize:
            dumps = None  # a subclass's serialize() writes every record (plain is None too)
        fields_of = self.captured_fields
        quote = self._quote
        sites = self._sites.get
        site_parts = self._site_parts
        suffixes = _MS_SUFFIXES
        # The previous record's call site: a batch mostly comes from a few lines of code, often
        # one line many times over, and comparing is cheaper than hashing the site.
        last_rest: object = None
        last_level: object = None
        last_name: object = None
        last_parts: Tuple[str, str] = ("", "")
        for record in captured:
            data = None
            if (
                plain is not None
                and record[13] is None
                and record[14] is None
                and record[15] is None
                and record[16] is None
            ):
                # The common record, straight into its JSON text: no dict, no type scan.
                try:
                    message = record[6]
                    if len(record) > _C_FIXED:  # %-arguments kept for this step (see capture)
                        message = message % record[_C_FIXED:]
                    msecs = int(record[3])
                    if (
                        record[9].__class__ is int
                        and record[10].__class__ is int
                        and 0 <= msecs < 1000
                    ):
                        rest = record[7:13]
                        if rest == last_rest and record[4] == last_level and record[5] == last_name:
                            middle, tail = last_parts
                        else:
                            site = (record[4], record[5], rest)
                            middle, tail = last_parts = sites(site) or site_parts(site)
                            last_rest, last_level, last_name = rest, record[4], record[5]
                        second = int(record[2])
                        cache = self._ts_cache
                        if cache[0] != second:
                            cache = (
                                second,
                                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)),
                            )
                            self._ts_cache = cache
                        # One string built from its six parts (each "+" would copy it again).
                        text = f"{head}{cache[1]}{suffixes[msecs]}{middle}{quote(message)}{tail}"
                        data = text.encode("utf-8")
                except Exception:  # noqa: BLE001 - the general path below decides what to ship
                    data = None
                if data is not None and len(data) <= max_bytes:
                    append(data)
                    if left >= 0:
                        left -= len(data)
                        if left < 0:
                            break
                    continue
                data = None
            if dumps is not None:
                try:
                    data = dumps(fields_of(record))
                except Exception:  # noqa: BLE001 - serialize() below decides what to ship
                    data = None
            if data is None or len(data) > max_bytes:
                data = self.serialize(record, max_bytes, truncate)
            append(data)
            if left >= 0 and data is not None:
                left -= len(data)
                if left < 0:
                    break
        return out

    def _fit(
        self, fields: Optional[_Fields], data: bytes, max_bytes: int, truncate: bool
    ) -> Optional[bytes]:
        if len(data) <= max_bytes:
            return data
        if not truncate:
            return None
        if fields is not None:
            shrunk = self._shrink(fields, max_bytes)
            if shrunk is not None:
                return shrunk
        return truncate_bytes(data, max_bytes)

    def _encode_bytes(self, fields: _Fields) -> bytes:
        """Encode to UTF-8 JSON: with orjson when it gives the same bytes, else the ``json`` way."""
        if self._use_orjson:
            data = _serializer.orjson_dumps(fields)
            if data is not None:
                return data
        return encode_text(self._encode(fields))

    def _format_exception(self, record: logging.LogRecord) -> str:
        try:
            return self.formatException(record.exc_info)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - an unrenderable traceback must not lose the record
            return f"<exception could not be formatted: {type(exc).__name__}>"

    def _encode(self, fields: _Fields) -> str:
        try:
            if self._fast_encode is not None:
                return "".join(self._fast_encode(fields, 0))
            return self._encoder.encode(fields)
        except (TypeError, ValueError, RecursionError, OverflowError):
            return self._encoder.encode(_sanitize(fields))

    def _shrink(self, fields: _Fields, max_bytes: int) -> Optional[bytes]:
        """Cut the longest string fields until the encoded object fits, or return ``None``."""
        fields = _sanitize(fields) if not _is_plain(fields) else dict(fields)
        for _ in range(8):
            data = encode_text(self._encode(fields))
            excess = len(data) - max_bytes
            if excess <= 0:
                return data
            key, value = _longest_string(fields)
            if key is None or len(value) < 64:
                break
            # Keep the value's UTF-8 size minus the excess and some room for the marker; if JSON
            # escaping makes the value longer than its UTF-8 size, the next round cuts again.
            keep = len(encode_text(value)) - excess - 64
            fields[key] = _truncate_str(value, max(keep, 0))
        budget = max((max_bytes - 200) // _MAX_ESCAPED_CHAR_BYTES, 0)
        minimal: _Fields = {}
        for name in ("timestamp", "level", "logger"):
            key = self._names[name]
            if key in fields:
                minimal[key] = fields[key]
        message_key = self._k_message if self._k_message != _OMIT else "message"
        minimal[message_key] = _truncate_str(safe_str(fields.get(message_key, "")), budget)
        data = encode_text(self._encode(minimal))
        return data if len(data) <= max_bytes else None


def _make_fast_encoder(ensure_ascii: bool) -> Optional[Callable[[object, int], Sequence[str]]]:
    """Return CPython's C encoder configured like our JSONEncoder, or ``None`` where it is missing.

    ``JSONEncoder.encode`` builds this object on every call; building it once saves about a third of
    the encoding time. No circular-reference bookkeeping: a shared ``markers`` dict would make
    concurrent threads see each other's objects, and a real cycle ends in ``RecursionError``, which
    :meth:`JSONFormatter._encode` handles.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - PyPy and builds without _json
        return None
    quote = json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring
    encoder: Callable[[object, int], Sequence[str]] = make(
        None, _json_default, quote, None, ":", ",", False, False, False
    )
    return encoder


def _is_plain(fields: _Fields) -> bool:
    return all(isinstance(v, (str, int, float, bool)) or v is None for v in fields.values())


def _sanitize(fields: _Fields) -> _Fields:
    """Return a copy in which every key is a string and every value encodes on its own."""
    clean: _Fields = {}
    for key, value in fields.items():
        name = key if isinstance(key, str) else safe_str(key)
        if isinstance(value, (str, bool)) or value is None:
            clean[name] = value
            continue
        # An int too is tried: one beyond sys.get_int_max_str_digits() has no text at all.
        try:
            json.dumps(value, allow_nan=False, default=_json_default)
        except Exception:  # noqa: BLE001 - circular, NaN, non-string keys, hostile iterators...
            clean[name] = safe_str(value)
        else:
            clean[name] = value
    return clean


def _longest_string(fields: _Fields) -> Tuple[Optional[str], str]:
    best_key: Optional[str] = None
    best = ""
    for key, value in fields.items():
        if isinstance(value, str) and len(value) > len(best):
            best_key, best = key, value
    return best_key, best


def _shared_module_name(module: object) -> object:
    """Remember ``module`` (a str) so that later captures share one object; at most 4096 names."""
    if isinstance(module, str) and len(_MODULE_NAMES) < 4096:
        return _MODULE_NAMES.setdefault(module, module)
    return module


def _estimate(value: object) -> int:
    """Bytes a captured value adds to the record's size estimate."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, tuple):
        return len(value[0])  # a rendered value
    return 16


def _resolve_message(captured: CapturedRecord) -> CapturedRecord:
    """Return ``captured`` with its message formatted, when :meth:`JSONFormatter.capture` left
    that to the flusher.

    The capture then holds the format string in place of the message and the arguments after
    its fixed items, every argument immutable (a str, an int below 2**64, a float, a bool or
    None), so formatting now gives the text that formatting at call time gave; a failure too (the
    message reads ``msg % args`` and ``format_error`` says why, as
    :meth:`JSONFormatter.capture` writes them).
    """
    if len(captured) <= _C_FIXED:
        return captured
    msg = captured[6]
    args = captured[_C_FIXED:]
    format_error = None
    try:
        text = msg % args
    except Exception as exc:  # noqa: BLE001 - a bad format string: shipped with the error
        text = f"{safe_str(msg)} % {safe_str(args)}"
        format_error = f"{type(exc).__name__}: {safe_str(exc)}"
    return (*captured[:6], text, *captured[7:15], format_error, captured[16])


def _captured_fallback(captured: CapturedRecord, error: BaseException) -> bytes:
    """:func:`fallback_payload` for a captured record whose fields could not be encoded."""
    try:
        captured = _resolve_message(captured)
        fields = {
            "timestamp": safe_str(captured[2]),
            "level": safe_str(captured[4]),
            "logger": safe_str(captured[5]),
            "message": safe_str(captured[6]),
            "format_error": f"{type(error).__name__}: {safe_str(error)}",
        }
        return json.dumps(fields, separators=(",", ":")).encode("ascii")
    except Exception:  # noqa: BLE001 - even safe_str output can be a hostile str subclass
        return b'{"message":"<unformattable record>","format_error":"fallback failed"}'


def _fallback_timestamp(created: object) -> str:
    """``created`` as ``JSONFormatter`` writes timestamps, or its text if it is no usable time."""
    try:
        if isinstance(created, (int, float)) and not isinstance(created, bool):
            seconds = int(created)
            millis = int((created - seconds) * 1000)
            return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"
    except (OverflowError, ValueError, OSError):
        pass  # out of the platform's range: the raw number below
    return safe_str(created)


def fallback_payload(record: logging.LogRecord, error: BaseException) -> bytes:
    """Return a minimal JSON payload for a record that its formatter could not format.

    Args:
        record: the record; only attributes that cannot fail are read, through :func:`safe_str`.
        error: what the formatter raised; its type and text go to ``format_error``.

    Returns:
        UTF-8 JSON with ``timestamp`` (ISO-8601 UTC with milliseconds, as :class:`JSONFormatter`
        writes it; epoch seconds as text when ``created`` is not a usable time), ``level``,
        ``logger``, ``message`` and ``format_error``.
    """
    try:
        fields = {
            "timestamp": _fallback_timestamp(getattr(record, "created", "")),
            "level": safe_str(getattr(record, "levelname", "")),
            "logger": safe_str(getattr(record, "name", "")),
            "message": safe_str(getattr(record, "msg", ""))
            + " % "
            + safe_str(getattr(record, "args", "")),
            "format_error": f"{type(error).__name__}: {safe_str(error)}",
        }
        return json.dumps(fields, separators=(",", ":")).encode("ascii")
    except Exception:  # noqa: BLE001 - even safe_str output can be a hostile str subclass
        return b'{"message":"<unformattable record>","format_error":"fallback failed"}'


def encode_record(
    formatter: logging.Formatter, record: logging.LogRecord, max_bytes: int, truncate: bool = True
) -> Optional[bytes]:
    """Format ``record`` with ``formatter`` and return the bytes to ship, within ``max_bytes``.

    Args:
        formatter: any :class:`logging.Formatter`; a :class:`JSONFormatter` keeps its JSON valid
            when cut.
        record: the record.
        max_bytes: the size budget in bytes.
        truncate: ``True`` cuts an oversized payload with a marker; ``False`` returns ``None``.

    Returns:
        The payload, or ``None`` when it was too large and ``truncate`` is false. Never raises: a
        formatter that fails yields :func:`fallback_payload`.
    """
    if isinstance(formatter, JSONFormatter):
        return formatter.format_bytes(record, max_bytes, truncate)
    try:
        data = encode_text(formatter.format(record))
    except Exception as exc:  # noqa: BLE001 - a user's formatter may raise anything
        data = fallback_payload(record, exc)
    if len(data) <= max_bytes:
        return data
    return fit_json(data, max_bytes) if truncate else None


# The current OpenTelemetry span is bound to the logging thread's context, so its ids are read in
# the capture step, on that thread (no-op cost when opentelemetry-api is absent: see _otel).
_trace_fields = _otel.trace_fields
add_caller_fields_hook(_trace_fields)
