"""Tests of the emulator's hand-written protobuf codec, checked against the protobuf runtime."""

from __future__ import annotations

import pytest

from dis_logging.emulator import protobuf as pb


class TestCodec:
    def test_put_request_decodes_runtime_encoding(self, proto_classes):
        """A PutRecordsRequest encoded by the protobuf runtime decodes to the same entries."""
        request = proto_classes["PutRecordsRequest"](streamName="s", streamId="id-1")
        request.records.add(data=b"\x00\xff", partitionKey="k1", timestamp=-5)
        request.records.add(data=b"", partitionId="shardId-0000000001", explicitHashKey="42")
        assert (
            "s",
            "id-1",
            [
                pb.PutEntry(b"\x00\xff", partition_key="k1", timestamp=-5),
                pb.PutEntry(b"", partition_id="shardId-0000000001", explicit_hash_key="42"),
            ],
        ) == pb.decode_put_records_request(request.SerializeToString())

    def test_put_request_encoding_parses_in_runtime(self, proto_classes):
        """The codec's PutRecordsRequest parses in the protobuf runtime."""
        data = pb.encode_put_records_request(
            "s", [pb.PutEntry(b"abc", partition_key="ключ", timestamp=2**40)], stream_id=""
        )
        parsed = proto_classes["PutRecordsRequest"].FromString(data)
        assert ("s", b"abc", "ключ", 2**40) == (
            parsed.streamName,
            parsed.records[0].data,
            parsed.records[0].partitionKey,
            parsed.records[0].timestamp,
        )

    def test_put_result_matches_runtime_bytes(self, proto_classes):
        """A PutRecordsResult encodes to the same bytes as the protobuf runtime's."""
        expected = proto_classes["PutRecordsResult"](failedRecordCount=1)
        expected.records.add(shardId="shardId-0000000000", sequenceNumber="7")
        expected.records.add(errorCode="DIS.4303", errorMessage="throttled")
        ours = pb.encode_put_records_result(
            1,
            [
                pb.ResultEntry("shardId-0000000000", "7"),
                pb.ResultEntry(error_code="DIS.4303", error_message="throttled"),
            ],
        )
        assert expected.SerializeToString() == ours

    def test_get_result_matches_runtime_bytes(self, proto_classes):
        """A GetRecordsResult encodes to the same bytes as the protobuf runtime's."""
        expected = proto_classes["GetRecordsResult"](nextShardIterator="cursor==")
        expected.records.add(
            partitionKey="k",
            sequenceNumber="0",
            data=b"\x01",
            timestamp=1700000000000,
            timestampType="CreateTime",
        )
        expected.records.add(sequenceNumber="1", data=b"")
        ours = pb.encode_get_records_result(
            "cursor==",
            [
                pb.ProtoRecord("0", b"\x01", "k", 1700000000000, "CreateTime"),
                pb.ProtoRecord("1", b""),
            ],
        )
        assert expected.SerializeToString() == ours

    def test_results_round_trip(self):
        """Encoded results decode back to the same values."""
        records = [pb.ProtoRecord("3", b"x" * 300, "k", 5, "CreateTime")]
        assert ("c", records) == pb.decode_get_records_result(
            pb.encode_get_records_result("c", records)
        )

    def test_unknown_fields_are_skipped(self, proto_classes):
        """Fields the codec does not know (any wire type) are skipped."""
        data = (
            pb.field_string(1, "s")
            + pb.field_int(99, 7)
            + b"\x95\x06\x01\x02\x03\x04"  # field 98, fixed32
            + b"\x99\x06"
            + bytes(8)  # field 99, fixed64
        )
        assert ("s", "", []) == pb.decode_put_records_request(data)

    @pytest.mark.parametrize(
        "data",
        [
            b"\x0a\x05ab",  # truncated string
            b"\x0a",  # missing length
            b"\x80",  # truncated key varint
            b"\x0b",  # group wire type
            b"\x00\x01",  # field number 0
            b"\x0a\x02\xff\xfe",  # string field not UTF-8
            b"\x12\x03\x1a\x05a",  # truncated nested message
            b"\x08" + b"\xff" * 11,  # varint too long
            b"\x0d\x01",  # truncated fixed32
            b"\x09\x01",  # truncated fixed64
            b"\x08\x01",  # streamName as a varint
        ],
    )
    def test_malformed_input_raises_decode_error(self, data):
        """Malformed bytes raise DecodeError, never another exception."""
        with pytest.raises(pb.DecodeError):
            pb.decode_put_records_request(data)

    @pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**63 - 1, -1, -(2**63)])
    def test_varints_round_trip(self, value):
        """int64 varints round-trip, negatives as 10-byte two's complement."""
        data = pb.field_int(29, value)
        sub = pb.field_bytes(2, data)
        assert [pb.PutEntry(b"", timestamp=value)] == pb.decode_put_records_request(sub)[2]
