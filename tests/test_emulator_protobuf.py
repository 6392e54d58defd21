"""Tests of the emulator's hand-written protobuf codec, checked against the protobuf runtime."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from dis_logging.emulator import protobuf as pb

F = descriptor_pb2.FieldDescriptorProto
MESSAGES: Dict[str, List[Tuple[int, str, int, int, str]]] = {
    # name: [(number, field name, type, label, message type name)]
    "PutRecordsRequest": [
        (1, "streamName", F.TYPE_STRING, F.LABEL_REQUIRED, ""),
        (30, "streamId", F.TYPE_STRING, F.LABEL_REQUIRED, ""),
        (2, "records", F.TYPE_MESSAGE, F.LABEL_REPEATED, "PutRecordsRequestEntry"),
    ],
    "PutRecordsRequestEntry": [
        (3, "data", F.TYPE_BYTES, F.LABEL_OPTIONAL, ""),
        (4, "explicitHashKey", F.TYPE_STRING, F.LABEL_OPTIONAL, ""),
        (5, "partitionKey", F.TYPE_STRING, F.LABEL_OPTIONAL, ""),
        (6, "partitionId", F.TYPE_STRING, F.LABEL_OPTIONAL, ""),
        (29, "timestamp", F.TYPE_INT64, F.LABEL_OPTIONAL, ""),
    ],
    "PutRecordsResult": [
        (21, "failedRecordCount", F.TYPE_INT32, F.LABEL_REQUIRED, ""),
        (22, "records", F.TYPE_MESSAGE, F.LABEL_REPEATED, "PutRecordsResultEntry"),
    ],
    "PutRecordsResultEntry": [
        (23, "shardId", F.TYPE_STRING, F.LABEL_OPTIONAL, ""),
        (24, "sequenceNumber", F.TYPE_STRING, F.LABEL_OPTIONAL, ""),
        (25, "errorCode", F.TYPE_STRING, F.LABEL_OPTIONAL, ""),
        (26, "errorMessage", F.TYPE_STRING, F.LABEL_OPTIONAL, ""),
    ],
    "GetRecordsResult": [
        (14, "nextShardIterator", F.TYPE_STRING, F.LABEL_REQUIRED, ""),
        (16, "records", F.TYPE_MESSAGE, F.LABEL_REPEATED, "Record"),
    ],
    "Record": [
        (17, "partitionKey", F.TYPE_STRING, F.LABEL_OPTIONAL, ""),
        (18, "sequenceNumber", F.TYPE_STRING, F.LABEL_REQUIRED, ""),
        (19, "data", F.TYPE_BYTES, F.LABEL_OPTIONAL, ""),
        (27, "timestamp", F.TYPE_INT64, F.LABEL_OPTIONAL, ""),
        (28, "timestampType", F.TYPE_STRING, F.LABEL_OPTIONAL, ""),
    ],
}


@pytest.fixture(scope="module")
def classes() -> Dict[str, Any]:
    """Message classes built at run time from the section 6 field table."""
    file_proto = descriptor_pb2.FileDescriptorProto(name="dis_emulator_test.proto", syntax="proto2")
    for name, fields in MESSAGES.items():
        message = file_proto.message_type.add(name=name)
        for number, field_name, kind, label, type_name in fields:
            field = message.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = "." + type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(name)) for name in MESSAGES
    }


class TestCodec:
    def test_put_request_decodes_runtime_encoding(self, classes):
        """A PutRecordsRequest encoded by the protobuf runtime decodes to the same entries."""
        request = classes["PutRecordsRequest"](streamName="s", streamId="id-1")
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

    def test_put_request_encoding_parses_in_runtime(self, classes):
        """The codec's PutRecordsRequest parses in the protobuf runtime."""
        data = pb.encode_put_records_request(
            "s", [pb.PutEntry(b"abc", partition_key="ключ", timestamp=2**40)], stream_id=""
        )
        parsed = classes["PutRecordsRequest"].FromString(data)
        assert ("s", b"abc", "ключ", 2**40) == (
            parsed.streamName,
            parsed.records[0].data,
            parsed.records[0].partitionKey,
            parsed.records[0].timestamp,
        )

    def test_put_result_matches_runtime_bytes(self, classes):
        """A PutRecordsResult encodes to the same bytes as the protobuf runtime's."""
        expected = classes["PutRecordsResult"](failedRecordCount=1)
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

    def test_get_result_matches_runtime_bytes(self, classes):
        """A GetRecordsResult encodes to the same bytes as the protobuf runtime's."""
        expected = classes["GetRecordsResult"](nextShardIterator="cursor==")
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

    def test_unknown_fields_are_skipped(self, classes):
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
