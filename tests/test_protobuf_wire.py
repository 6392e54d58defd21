"""Tests of dis_logging._protobuf_wire, the wire primitives the client and the emulator share."""

from __future__ import annotations

import pytest

from dis_logging import _protobuf_wire as wire

INT64_VALUES = [0, 1, 127, 128, 300, 16383, 16384, 2**40, 2**63 - 1, -1, -(2**63)]


class TestEncoding:
    @pytest.mark.parametrize("value", INT64_VALUES)
    def test_int_field_matches_runtime_bytes(self, proto_classes, value):
        """An int64 field encodes to the same bytes as the protobuf runtime's."""
        expected = proto_classes["Record"](sequenceNumber="", timestamp=value)
        assert expected.SerializeToString() == wire.field_string(18, "") + wire.field_int(27, value)

    @pytest.mark.parametrize("size", [0, 127, 128, 16384])
    def test_bytes_field_matches_runtime_bytes(self, proto_classes, size):
        """A bytes field of any length encodes to the same bytes as the protobuf runtime's."""
        expected = proto_classes["PutRecordsRequestEntry"](data=b"x" * size)
        assert expected.SerializeToString() == wire.field_bytes(3, b"x" * size)


class TestDecoding:
    @pytest.mark.parametrize("value", INT64_VALUES)
    def test_varints_round_trip_as_int64(self, value):
        """A varint reads back as the int64 it encodes."""
        data = wire.encode_varint(value)
        decoded, end = wire.read_varint(data, 0)
        assert (value, len(data)) == (wire.to_int64(decoded), end)

    def test_fields_split_in_wire_order(self):
        """Fields of every wire type come back in wire order, fixed-width ones as ints."""
        data = (
            wire.field_string(1, "s")
            + wire.field_int(300, 7)
            + b"\x95\x06\x01\x00\x00\x00"  # field 98, fixed32
            + b"\x99\x06"
            + (2).to_bytes(8, "little")  # field 99, fixed64
            + wire.field_bytes(2, b"x" * 200)
        )
        assert [(1, b"s"), (300, 7), (98, 1), (99, 2), (2, b"x" * 200)] == wire.split_fields(data)

    @pytest.mark.parametrize(
        "data",
        [
            b"\x0a\x05ab",  # truncated string
            b"\x0a",  # missing length
            b"\x80",  # truncated key varint
            b"\x0b",  # group wire type
            b"\x00\x01",  # field number 0
            b"\x08" + b"\xff" * 11,  # varint too long
            b"\x0d\x01",  # truncated fixed32
            b"\x09\x01",  # truncated fixed64
        ],
    )
    def test_malformed_input_raises_decode_error(self, data):
        """Malformed bytes raise a DecodeError that names protobuf."""
        with pytest.raises(wire.DecodeError, match="protobuf"):
            wire.split_fields(data)
