"""Proto2 wire-format primitives shared by the client and the emulator (DIS-API.md section 6).

Only the encoding rules live here: varints, field keys, length-delimited fields and a splitter
that cuts a message into its fields. No DIS message layout does: the client and the emulator each
map field numbers on their own, so the emulator still judges what the client sends, and the
emulator's tests cross-check both sides against the protobuf runtime.
"""

from __future__ import annotations

from typing import Final, List, Tuple, Union

__all__ = [
    "FIXED32",
    "FIXED64",
    "LENGTH_DELIMITED",
    "VARINT",
    "DecodeError",
    "FieldValue",
    "encode_varint",
    "field_bytes",
    "field_int",
    "field_key",
    "field_string",
    "read_varint",
    "split_fields",
    "to_int64",
]

# Wire types, from https://protobuf.dev/programming-guides/encoding/ ("Message Structure").
VARINT: Final = 0
FIXED64: Final = 1
LENGTH_DELIMITED: Final = 2
FIXED32: Final = 5

# A varint carries at most 64 bits in 10 bytes of 7 bits each.
_MAX_VARINT_SHIFT: Final = 70
_UINT64: Final = 1 << 64
_INT64_SIGN: Final = 1 << 63
_SMALL_VARINTS: Final = [bytes((i,)) for i in range(0x80)]

FieldValue = Union[int, bytes]
"""A decoded field: an int for varint and fixed-width fields, bytes for length-delimited ones."""


class DecodeError(ValueError):
    """The bytes are not a valid protobuf encoding; the message always contains ``protobuf``."""


def encode_varint(value: int) -> bytes:
    """Encode an integer as a base-128 varint.

    Args:
        value: the integer; a negative one is encoded as its 64-bit two's complement (10 bytes),
            as int32 and int64 fields are.

    Returns:
        The varint, 1 to 10 bytes.
    """
    if 0 <= value < 0x80:
        return _SMALL_VARINTS[value]
    value &= _UINT64 - 1
    if value < 0x4000:
        return bytes((value & 0x7F | 0x80, value >> 7))
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(data: bytes, pos: int) -> Tuple[int, int]:
    """Read the varint that starts at ``data[pos]``.

    Args:
        data: the encoded message.
        pos: the index of the varint's first byte.

    Returns:
        ``(value, position after the varint)``; the value is unsigned (see :func:`to_int64`).

    Raises:
        DecodeError: the varint runs past the end of ``data`` or is longer than 10 bytes.
    """
    result = shift = 0
    end = len(data)
    while pos < end and shift < _MAX_VARINT_SHIFT:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    raise DecodeError("truncated or overlong protobuf varint")


def to_int64(value: int) -> int:
    """Return the signed int64 that an unsigned 64-bit varint value stands for.

    Args:
        value: a value from :func:`read_varint`, 0 to 2**64 - 1.

    Returns:
        The value, with bit 63 read as the sign.
    """
    return value - _UINT64 if value & _INT64_SIGN else value


def field_key(number: int, wire_type: int) -> bytes:
    """Encode the key of a field: ``number << 3 | wire_type`` as a varint.

    Args:
        number: the field number, 1 or more.
        wire_type: one of :data:`VARINT`, :data:`FIXED64`, :data:`LENGTH_DELIMITED`,
            :data:`FIXED32`.

    Returns:
        The key bytes.
    """
    return encode_varint(number << 3 | wire_type)


def field_bytes(number: int, value: bytes) -> bytes:
    """Encode a length-delimited field (bytes, string or embedded message).

    Args:
        number: the field number.
        value: the field's bytes.

    Returns:
        Key, length and ``value``.
    """
    return field_key(number, LENGTH_DELIMITED) + encode_varint(len(value)) + value


def field_string(number: int, value: str) -> bytes:
    """Encode a string field as UTF-8.

    Args:
        number: the field number.
        value: the text.

    Returns:
        Key, length and the UTF-8 bytes.
    """
    return field_bytes(number, value.encode("utf-8"))


def field_int(number: int, value: int) -> bytes:
    """Encode an int32, int64 or bool field as a varint.

    Args:
        number: the field number.
        value: the integer; negative ones take 10 bytes.

    Returns:
        Key and varint.
    """
    return field_key(number, VARINT) + encode_varint(value)


def split_fields(data: bytes) -> List[Tuple[int, FieldValue]]:
    """Cut a message into its fields, in wire order.

    One- and two-byte keys and one-byte lengths, the common cases, skip the general varint reader:
    this runs once per record of every PutRecords and GetRecords reply.

    Args:
        data: the encoded message.

    Returns:
        ``(field number, value)`` pairs: ints for varint and fixed-width fields (unsigned, little
        endian), bytes for length-delimited ones.

    Raises:
        DecodeError: a truncated field, field number 0, or a group or unknown wire type.
    """
    fields: List[Tuple[int, FieldValue]] = []
    append = fields.append
    pos, end = 0, len(data)
    while pos < end:
        key = data[pos]
        pos += 1
        if key >= 0x80:
            # Field numbers 16-2047 (most of section 6) have two-byte keys.
            if pos < end and data[pos] < 0x80:
                key = (key & 0x7F) | data[pos] << 7
                pos += 1
            else:
                key, pos = read_varint(data, pos - 1)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise DecodeError("protobuf field number 0")
        if wire_type == LENGTH_DELIMITED:
            if pos >= end:
                raise DecodeError("truncated protobuf field")
            length = data[pos]
            pos += 1
            if length >= 0x80:
                length, pos = read_varint(data, pos - 1)
            stop = pos + length
            if stop > end:
                raise DecodeError("truncated protobuf field")
            append((number, data[pos:stop]))
            pos = stop
        elif wire_type == VARINT:
            value, pos = read_varint(data, pos)
            append((number, value))
        elif wire_type == FIXED64 or wire_type == FIXED32:
            stop = pos + (8 if wire_type == FIXED64 else 4)
            if stop > end:
                raise DecodeError("truncated protobuf field")
            append((number, int.from_bytes(data[pos:stop], "little")))
            pos = stop
        else:
            raise DecodeError(f"unsupported protobuf wire type {wire_type}")
    return fields
