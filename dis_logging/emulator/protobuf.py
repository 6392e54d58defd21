"""Hand-written proto2 wire encoding of the DIS protobuf messages (DIS-API.md section 6).

Only what the emulator needs: decode ``PutRecordsRequest``, encode ``PutRecordsResult`` and
``GetRecordsResult``, plus the inverse directions so tests can build requests and read replies
without generated code. Unknown fields are skipped, as proto2 requires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Final, Iterable, List, Optional, Tuple, Union

VARINT: Final = 0
FIXED64: Final = 1
LENGTH_DELIMITED: Final = 2
FIXED32: Final = 5

_UINT64: Final = 1 << 64
_INT64_SIGN: Final = 1 << 63

FieldValue = Union[int, bytes]


class DecodeError(ValueError):
    """The bytes are not a valid encoding of the expected message."""


def encode_varint(value: int) -> bytes:
    """Encode an integer as a base-128 varint; negative values use 64-bit two's complement."""
    value &= _UINT64 - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> Tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise DecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("varint longer than 10 bytes")


def _key(number: int, wire_type: int) -> bytes:
    return encode_varint(number << 3 | wire_type)


def field_bytes(number: int, value: bytes) -> bytes:
    """Encode a length-delimited field (bytes, string or embedded message)."""
    return _key(number, LENGTH_DELIMITED) + encode_varint(len(value)) + value


def field_string(number: int, value: str) -> bytes:
    """Encode a string field as UTF-8."""
    return field_bytes(number, value.encode("utf-8"))


def field_int(number: int, value: int) -> bytes:
    """Encode an int32/int64/bool varint field."""
    return _key(number, VARINT) + encode_varint(value)


def parse_fields(data: bytes) -> Dict[int, List[FieldValue]]:
    """Split a message into its fields.

    Args:
        data: The encoded message.

    Returns:
        Field number to the values in wire order: ints for varints and fixed-width fields, bytes for
        length-delimited ones.

    Raises:
        DecodeError: On truncated or malformed input.
    """
    fields: Dict[int, List[FieldValue]] = {}
    pos = 0
    size = len(data)
    while pos < size:
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise DecodeError("field number 0")
        value: FieldValue
        if wire_type == VARINT:
            value, pos = _read_varint(data, pos)
        elif wire_type == LENGTH_DELIMITED:
            length, pos = _read_varint(data, pos)
            if pos + length > size:
                raise DecodeError("truncated length-delimited field")
            value = data[pos : pos + length]
            pos += length
        elif wire_type == FIXED64:
            if pos + 8 > size:
                raise DecodeError("truncated fixed64 field")
            value = int.from_bytes(data[pos : pos + 8], "little")
            pos += 8
        elif wire_type == FIXED32:
            if pos + 4 > size:
                raise DecodeError("truncated fixed32 field")
            value = int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
        else:
            raise DecodeError(f"unsupported wire type {wire_type}")
        fields.setdefault(number, []).append(value)
    return fields


def _last(fields: Dict[int, List[FieldValue]], number: int) -> Optional[FieldValue]:
    values = fields.get(number)
    return values[-1] if values else None


def _get_bytes(fields: Dict[int, List[FieldValue]], number: int) -> Optional[bytes]:
    value = _last(fields, number)
    if value is None:
        return None
    if not isinstance(value, bytes):
        raise DecodeError(f"field {number} must be length-delimited")
    return value


def _get_string(fields: Dict[int, List[FieldValue]], number: int) -> Optional[str]:
    value = _get_bytes(fields, number)
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(f"field {number} is not valid UTF-8") from None


def _get_int64(fields: Dict[int, List[FieldValue]], number: int) -> Optional[int]:
    value = _last(fields, number)
    if value is None:
        return None
    if not isinstance(value, int):
        raise DecodeError(f"field {number} must be a varint")
    return value - _UINT64 if value & _INT64_SIGN else value


def _messages(fields: Dict[int, List[FieldValue]], number: int) -> List[bytes]:
    out: List[bytes] = []
    for value in fields.get(number, []):
        if not isinstance(value, bytes):
            raise DecodeError(f"field {number} must be length-delimited")
        out.append(value)
    return out


@dataclass(frozen=True)
class PutEntry:
    """A ``PutRecordsRequestEntry``."""

    data: bytes
    partition_key: Optional[str] = None
    partition_id: Optional[str] = None
    explicit_hash_key: Optional[str] = None
    timestamp: Optional[int] = None


@dataclass(frozen=True)
class ResultEntry:
    """A ``PutRecordsResultEntry``: shard and sequence number, or an error code and message."""

    partition_id: Optional[str] = None
    sequence_number: Optional[str] = None
    error_code: Optional[str] = None
    error_message: Optional[str] = None


@dataclass(frozen=True)
class ProtoRecord:
    """A ``Record`` of a ``GetRecordsResult``."""

    sequence_number: str
    data: bytes
    partition_key: Optional[str] = None
    timestamp: Optional[int] = None
    timestamp_type: Optional[str] = None


def encode_put_records_request(
    stream_name: str, entries: Iterable[PutEntry], stream_id: str = ""
) -> bytes:
    """Encode a ``PutRecordsRequest`` (what a producer sends)."""
    out = bytearray(field_string(1, stream_name))
    out += field_string(30, stream_id)
    for entry in entries:
        body = bytearray(field_bytes(3, entry.data))
        if entry.explicit_hash_key is not None:
            body += field_string(4, entry.explicit_hash_key)
        if entry.partition_key is not None:
            body += field_string(5, entry.partition_key)
        if entry.partition_id is not None:
            body += field_string(6, entry.partition_id)
        if entry.timestamp is not None:
            body += field_int(29, entry.timestamp)
        out += field_bytes(2, bytes(body))
    return bytes(out)


def decode_put_records_request(data: bytes) -> Tuple[str, str, List[PutEntry]]:
    """Decode a ``PutRecordsRequest``.

    Returns:
        (stream name, stream id, entries); missing strings come back as ``""``.

    Raises:
        DecodeError: On malformed input.
    """
    fields = parse_fields(data)
    entries = []
    for raw in _messages(fields, 2):
        sub = parse_fields(raw)
        entries.append(
            PutEntry(
                data=_get_bytes(sub, 3) or b"",
                explicit_hash_key=_get_string(sub, 4),
                partition_key=_get_string(sub, 5),
                partition_id=_get_string(sub, 6),
                timestamp=_get_int64(sub, 29),
            )
        )
    return _get_string(fields, 1) or "", _get_string(fields, 30) or "", entries


def encode_put_records_result(failed_record_count: int, entries: Iterable[ResultEntry]) -> bytes:
    """Encode a ``PutRecordsResult``."""
    out = bytearray(field_int(21, failed_record_count))
    for entry in entries:
        body = bytearray()
        for number, value in (
            (23, entry.partition_id),
            (24, entry.sequence_number),
            (25, entry.error_code),
            (26, entry.error_message),
        ):
            if value is not None:
                body += field_string(number, value)
        out += field_bytes(22, bytes(body))
    return bytes(out)


def decode_put_records_result(data: bytes) -> Tuple[int, List[ResultEntry]]:
    """Decode a ``PutRecordsResult`` into (failed record count, entries)."""
    fields = parse_fields(data)
    entries = []
    for raw in _messages(fields, 22):
        sub = parse_fields(raw)
        entries.append(
            ResultEntry(
                partition_id=_get_string(sub, 23),
                sequence_number=_get_string(sub, 24),
                error_code=_get_string(sub, 25),
                error_message=_get_string(sub, 26),
            )
        )
    return _get_int64(fields, 21) or 0, entries


def encode_get_records_result(next_cursor: str, records: Iterable[ProtoRecord]) -> bytes:
    """Encode a ``GetRecordsResult``."""
    out = bytearray(field_string(14, next_cursor))
    for record in records:
        body = bytearray()
        if record.partition_key is not None:
            body += field_string(17, record.partition_key)
        body += field_string(18, record.sequence_number)
        body += field_bytes(19, record.data)
        if record.timestamp is not None:
            body += field_int(27, record.timestamp)
        if record.timestamp_type is not None:
            body += field_string(28, record.timestamp_type)
        out += field_bytes(16, bytes(body))
    return bytes(out)


def decode_get_records_result(data: bytes) -> Tuple[str, List[ProtoRecord]]:
    """Decode a ``GetRecordsResult`` into (next cursor, records)."""
    fields = parse_fields(data)
    records = []
    for raw in _messages(fields, 16):
        sub = parse_fields(raw)
        records.append(
            ProtoRecord(
                sequence_number=_get_string(sub, 18) or "",
                data=_get_bytes(sub, 19) or b"",
                partition_key=_get_string(sub, 17),
                timestamp=_get_int64(sub, 27),
                timestamp_type=_get_string(sub, 28),
            )
        )
    return _get_string(fields, 14) or "", records
