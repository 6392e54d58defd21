"""The flusher's serialize step: buffered payloads to the bytes of DIS records.

The handler's buffer holds each record either as ``bytes`` (a custom formatter ran on the
caller's thread, or the structlog processor handed bytes over) or as a
:data:`~dis_logging.formatting.CapturedRecord` that :class:`~dis_logging.formatting.JSONFormatter`
captured on the caller's thread. :func:`serialize_payloads` turns a list of either into payload
bytes, a batch at a time, on whichever thread sends (or persists) them; it is the one function a
step that needs the final bytes (sending, writing to the spool) calls.

When `orjson <https://pypi.org/project/orjson/>`_ is installed (extra ``fast``),
:func:`orjson_dumps` encodes the fields of a record with it, but only where the result is
byte-identical to the standard library's encoder as :class:`JSONFormatter` configures it:
strings, ints within 64 bits, booleans and ``None`` are encoded natively, floats as their
``repr`` (orjson writes ``1e-05`` as ``0.00001``), values captured as JSON text as that text;
anything else, a lone surrogate, a non-string key or a non-finite float makes it return ``None``
and the caller takes the ``json`` path. Both paths are tested against each other.
"""

from __future__ import annotations

import json
import math
import operator
from typing import TYPE_CHECKING, Any, Dict, Final, List, Optional, Sequence, Union, cast

if TYPE_CHECKING:  # pragma: no cover - typing only; formatting imports this module
    from dis_logging.formatting import CapturedRecord

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised by the tests that hide orjson
    _orjson = None  # type: ignore[assignment]  # the optional dependency is absent

__all__ = ["HAS_ORJSON", "Payload", "loads", "orjson_dumps", "serialize_payloads"]

#: Whether orjson is importable and can splice pre-rendered JSON text (``orjson.Fragment``,
#: orjson 3.9+).
HAS_ORJSON: Final = _orjson is not None and hasattr(_orjson, "Fragment")

#: A buffered record: encoded bytes, or a record captured on the caller's thread.
Payload = Union[bytes, "CapturedRecord"]

# Value types orjson encodes exactly like json.JSONEncoder(ensure_ascii=False, separators=(",",
# ":")) does; checked by exact type, since orjson encodes subclasses (enums, ...) its own way.
_NATIVE: Final = frozenset({str, int, bool, type(None)})


def _set_orjson(enabled: bool) -> bool:
    """Turn the orjson path on or off process-wide (tests compare both); return the old state."""
    global HAS_ORJSON
    old = HAS_ORJSON
    HAS_ORJSON = enabled and _orjson is not None and hasattr(_orjson, "Fragment")  # type: ignore[misc]  # test switch
    return old


def orjson_dumps(fields: Dict[str, Any]) -> Optional[bytes]:
    """Encode ``fields`` with orjson when that gives exactly the ``json`` module's bytes.

    Args:
        fields: the ordered fields of one record, as ``JSONFormatter.captured_fields`` builds them.

    Returns:
        The UTF-8 JSON bytes, or ``None`` when orjson is unavailable or could differ (the caller
        then encodes with ``json``).
    """
    if not HAS_ORJSON:
        return None
    types = set(map(type, fields.values()))
    if not types <= _NATIVE:
        converted = _convert(fields, types)
        if converted is None:
            return None
        fields = converted
    try:
        data = _orjson.dumps(fields)
    except (TypeError, ValueError):  # lone surrogates, ints beyond 64 bits, non-str keys
        return None
    # orjson returns a bytes object with spare capacity from the system allocator; kept in a
    # batch for a while, hundreds of those cost about 1.5 us each in fresh pages. An exact-size
    # copy comes from Python's small-object allocator and the original is freed at once.
    return bytes(memoryview(data))


def loads(data: bytes) -> Any:
    """Decode JSON reply bytes: with orjson when installed, else (or when it refuses) ``json``.

    Both give equal objects, with one difference: orjson decodes an integer beyond 64 bits as a
    float. Callers only read strings, small counts and the shape of a reply (PutRecords). What
    orjson refuses (``NaN`` literals, lone surrogate escapes, invalid UTF-8) is left to
    :func:`json.loads`, which accepts it or raises its own :class:`ValueError`.

    Args:
        data: the bytes.

    Returns:
        The decoded object.

    Raises:
        ValueError: the bytes are not JSON (including ``json.JSONDecodeError``), or JSON nested
            deeper than the parser follows.
    """
    if HAS_ORJSON:
        try:
            return _orjson.loads(data)
        except _orjson.JSONDecodeError:
            pass
    try:
        return json.loads(data)
    except RecursionError:  # nested deeper than the parser follows: not a reply we can read
        raise ValueError("the reply is nested too deep") from None


def orjson_dumps_native(fields: Dict[str, Any]) -> Optional[bytes]:
    """:func:`orjson_dumps` for the common record: only str, int, bool and ``None`` values.

    Args:
        fields: the ordered fields of one record.

    Returns:
        The bytes, or ``None`` when some value is of another type (use :func:`orjson_dumps`).

    Raises:
        TypeError: orjson refused a value (a lone surrogate, an int beyond 64 bits).
    """
    if set(map(type, fields.values())) <= _NATIVE:
        return bytes(memoryview(_orjson.dumps(fields)))  # an exact-size copy: see orjson_dumps
    return None


def _convert(fields: Dict[str, Any], types: set[type]) -> Optional[Dict[str, Any]]:
    """Replace floats and rendered values by fragments of their exact JSON text, or ``None``."""
    from dis_logging.formatting import _Rendered  # a cycle at import time otherwise

    if not types <= _NATIVE | {float, _Rendered}:
        return None
    fragment = _orjson.Fragment
    out: Dict[str, Any] = {}
    for key, value in fields.items():
        cls = value.__class__
        if cls is float:
            if not math.isfinite(value):
                return None  # json refuses it and the formatter writes its text instead
            value = fragment(float.__repr__(value))
        elif cls is _Rendered:
            value = fragment(value.text)
        out[key] = value
    return out


_first = operator.itemgetter(0)


def serialize_payloads(
    payloads: Sequence[Payload], budget: Optional[int] = None
) -> List[Optional[bytes]]:
    """Turn buffered payloads into record bytes, in order (the serialize step of a batch).

    ``bytes`` pass through unchanged; a captured record is encoded by the
    :class:`~dis_logging.formatting.DeferredEncoder` it names, with that formatter's fields,
    renames and size limit. Never raises.

    Args:
        payloads: what the buffer holds for each record (``Item[1]`` of
            :class:`~dis_logging.buffer.RecordBuffer`).
        budget: stop after the payload that takes the bytes made past this many; default
            ``None``, no limit. The flusher passes its batch limit, so that records whose text
            outgrew their capture's size estimate are not all made at once.

    Returns:
        One entry per payload, or per leading payload when ``budget`` stopped the work: the bytes
        to ship, or ``None`` for a record over ``max_record_bytes`` with ``oversize="drop"``
        (count it as dropped, reason ``oversize``).
    """
    from dis_logging.formatting import encoder_for  # a cycle at import time otherwise

    if payloads and set(map(type, payloads)) == {tuple}:
        keys = set(map(_first, payloads))
        if len(keys) == 1:  # the common batch: every record captured by one formatter
            return encoder_for(keys.pop()).many(cast("List[CapturedRecord]", payloads), budget)
    out: List[Optional[bytes]] = []
    remaining = budget
    index, count = 0, len(payloads)
    while index < count:
        payload = payloads[index]
        if isinstance(payload, bytes):
            out.append(payload)
            index += 1
            if remaining is not None:
                remaining -= len(payload)
                if remaining < 0:
                    break
            continue
        # A run of consecutive records captured by one formatter, encoded in one call.
        key = payload[0]
        end = index + 1
        while end < count and payloads[end].__class__ is tuple and payloads[end][0] == key:
            end += 1
        run = encoder_for(key).many(
            cast("List[CapturedRecord]", list(payloads[index:end])), remaining
        )
        out.extend(run)
        if remaining is not None:
            remaining -= sum(len(data) for data in run if data is not None)
            if remaining < 0 or len(run) < end - index:
                break
        index = end
    return out
