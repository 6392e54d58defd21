"""Hand-written proto2 wire encoding of the DIS protobuf messages (DIS-API.md section 6).

Only what the emulator needs: decode ``PutRecordsRequest``, encode ``PutRecordsResult`` and
``GetRecordsResult``, plus the inverse directions so tests can build requests and read replies
without generated code. Unknown fields are skipped, as proto2 requires. The wire primitives
(varints, keys, the field splitter) come from ``dis_logging._protobuf_wire``, which holds no DIS
message layout: the field numbers here are the emulator's own reading of section 6.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

from dis_logging._protobuf_wire import (
    DecodeError,
    FieldValue,
    encode_varint,
    field_bytes,
    field_int,
    field_string,
    split_fields,
    to_int64,
)

__all__ = [
    "DecodeError",
    "FieldValue",
    "ProtoRecord",
    "PutEntry",
    "ResultEntry",
    "decode_get_records_result",
    "decode_put_records_request",
    "decode_put_records_result",
    "encode_get_records_result",
    "encode_put_records_request",
    "encode_put_records_result",
    "encode_varint",
    "field_bytes",
    "field_int",
    "field_string",
    "parse_fields",
]


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
    for number, value in split_fields(data):
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
        raise DecodeError(f"protobuf field {number} must be length-delimited")
    return value


def _get_string(fields: Dict[int, List[FieldValue]], number: int) -> Optional[str]:
    value = _get_bytes(fields, number)
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(f"protobuf field {number} is not valid UTF-8") from None


def _get_int64(fields: Dict[int, List[FieldValue]], number: int) -> Optional[int]:
    value = _last(fields, number)
    if value is None:
        return None
    if not isinstance(value, int):
        raise DecodeError(f"protobuf field {number} must be a varint")
    return to_int64(value)


def _messages(
    fields: Dict[int, List[FieldValue]], number: int
) -> List[Dict[int, List[FieldValue]]]:
    """Return the embedded messages of repeated field ``number``, each split into its fields."""
    out: List[Dict[int, List[FieldValue]]] = []
    for value in fields.get(number, []):
        if not isinstance(value, bytes):
            raise DecodeError(f"protobuf field {number} must be length-delimited")
        out.append(parse_fields(value))
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
    """Encode a ``PutRecordsRequest`` (what a producer sends).

    Args:
        stream_name: The stream to write to.
        entries: The records, in order.
        stream_id: The stream id; default ``""`` (the field is required, so it is always sent).

    Returns:
        The message bytes.
    """
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

    Args:
        data: The message bytes.

    Returns:
        (stream name, stream id, entries); missing strings come back as ``""``.

    Raises:
        DecodeError: On malformed input.
    """
    fields = parse_fields(data)
    entries = [
        PutEntry(
            data=_get_bytes(sub, 3) or b"",
            explicit_hash_key=_get_string(sub, 4),
            partition_key=_get_string(sub, 5),
            partition_id=_get_string(sub, 6),
            timestamp=_get_int64(sub, 29),
        )
        for sub in _messages(fields, 2)
    ]
    return _get_string(fields, 1) or "", _get_string(fields, 30) or "", entries


def encode_put_records_result(failed_record_count: int, entries: Iterable[ResultEntry]) -> bytes:
    """Encode a ``PutRecordsResult``.

    Args:
        failed_record_count: How many entries carry an error code.
        entries: One result per record of the request, in order.

    Returns:
        The message bytes.
    """
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
    """Decode a ``PutRecordsResult``.

    Args:
        data: The message bytes.

    Returns:
        (failed record count, entries); a missing count comes back as 0.

    Raises:
        DecodeError: On malformed input.
    """
    fields = parse_fields(data)
    entries = [
        ResultEntry(
            partition_id=_get_string(sub, 23),
            sequence_number=_get_string(sub, 24),
            error_code=_get_string(sub, 25),
            error_message=_get_string(sub, 26),
        )
        for sub in _messages(fields, 22)
    ]
    return _get_int64(fields, 21) or 0, entries


def encode_get_records_result(next_cursor: str, records: Iterable[ProtoRecord]) -> bytes:
    """Encode a ``GetRecordsResult``.

    Args:
        next_cursor: The cursor for the next GetRecords call.
        records: The records read, oldest first.

    Returns:
        The message bytes.
    """
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
    """Decode a ``GetRecordsResult``.

    Args:
        data: The message bytes.

    Returns:
        (next cursor, records); a missing cursor comes back as ``""``.

    Raises:
        DecodeError: On malformed input.
    """
    fields = parse_fields(data)
    records = [
        ProtoRecord(
            sequence_number=_get_string(sub, 18) or "",
            data=_get_bytes(sub, 19) or b"",
            partition_key=_get_string(sub, 17),
            timestamp=_get_int64(sub, 27),
            timestamp_type=_get_string(sub, 28),
        )
        for sub in _messages(fields, 16)
    ]
    return _get_string(fields, 14) or "", records
