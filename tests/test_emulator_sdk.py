"""Tests of the emulator against the official SDKs, used unchanged: huaweicloudsdkdis (v3) and the
legacy huaweicloud-sdk-python-dis package (JSON in-process; protobuf in a subprocess because its
generated code needs the pure-Python protobuf runtime)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import textwrap
from typing import Any, Iterator

import pytest
from dis_sdk_python import disclient
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkdis.v2 import DisClient
from huaweicloudsdkdis.v2.model import (
    ConsumeRecordsRequest,
    CreateStreamReq,
    CreateStreamRequest,
    DeleteStreamRequest,
    ListStreamsRequest,
    PutRecordsRequest,
    PutRecordsRequestEntry,
    SendRecordsRequest,
    ShowCursorRequest,
    ShowStreamRequest,
)

from dis_logging.emulator import DISEmulator


def v3_client(emu: DISEmulator, sk: str = "") -> DisClient:
    credentials = BasicCredentials(emu.ak, sk or emu.sk, emu.project_id)
    return DisClient.new_builder().with_credentials(credentials).with_endpoint(emu.url).build()


@pytest.fixture
def sdk(emulator: DISEmulator) -> Iterator[DisClient]:
    client = v3_client(emulator)
    try:
        yield client
    finally:
        client.close()


def send(client: DisClient, stream: str, *entries: PutRecordsRequestEntry) -> Any:
    body = PutRecordsRequest(stream_name=stream, records=list(entries))
    return client.send_records(SendRecordsRequest(body=body))


def entry(data: bytes, **kw: str) -> PutRecordsRequestEntry:
    return PutRecordsRequestEntry(data=base64.b64encode(data).decode("ascii"), **kw)


class TestOfficialV3SDK:
    def test_stream_lifecycle(self, emulator, sdk):
        """The v3 SDK creates, describes, lists and deletes a stream."""
        body = CreateStreamReq(stream_name="sdk-stream", partition_count=3, stream_type="ADVANCED")
        sdk.create_stream(CreateStreamRequest(body=body))
        shown = sdk.show_stream(ShowStreamRequest(stream_name="sdk-stream"))
        listed = sdk.list_streams(ListStreamsRequest(limit=10))
        sdk.delete_stream(DeleteStreamRequest(stream_name="sdk-stream"))
        assert ("ADVANCED", 3, ["sdk-stream"], []) == (
            shown.stream_type,
            len(shown.partitions),
            listed.stream_names,
            emulator.stream_names(),
        )

    def test_put_and_get_round_trip(self, emulator, stream, sdk):
        """Records put by the v3 SDK come back byte-exact through its cursor and get calls."""
        payload = "héllo wörld ✓".encode() + bytes(range(256))
        put = send(sdk, stream, entry(payload, partition_id="shardId-0000000001"))
        cursor = sdk.show_cursor(
            ShowCursorRequest(
                stream_name=stream, partition_id="shardId-0000000001", cursor_type="TRIM_HORIZON"
            )
        )
        got = sdk.consume_records(ConsumeRecordsRequest(partition_cursor=cursor.partition_cursor))
        assert (0, [payload], [payload]) == (
            put.failed_record_count,
            [base64.b64decode(r.data) for r in got.records],
            [r.data for r in emulator.records(stream)],
        )

    def test_keyed_records_land_on_md5_partition(self, emulator, sdk):
        """Keyed records sent by the v3 SDK land on the partition of the MD5 rule."""
        emulator.create_stream("four", partitions=4)
        result = send(
            sdk, "four", *(entry(k.encode(), partition_key=k) for k in ("k1", "0", "hello"))
        )
        assert ["shardId-0000000001", "shardId-0000000002", "shardId-0000000002"] == [
            r.partition_id for r in result.records
        ]

    def test_requests_are_signed_with_aksk(self, emulator, stream, sdk):
        """The v3 SDK's requests authenticate with its AK/SK signature."""
        send(sdk, stream, entry(b"x"))
        assert [("PutRecords", "aksk", 200)] == [
            (e.operation, e.auth, e.status) for e in emulator.requests
        ]

    def test_service_errors_reach_the_sdk(self, emulator, sdk):
        """A DIS error reply surfaces in the SDK with its status and error code."""
        with pytest.raises(ClientRequestException) as caught:
            send(sdk, "missing", entry(b"x"))
        assert (400, "DIS.4301") == (caught.value.status_code, caught.value.error_code)

    def test_wrong_secret_is_rejected(self, emulator, stream):
        """A v3 SDK with the wrong SK gets 441 DIS.4112."""
        client = v3_client(emulator, sk="not-the-secret")
        try:
            with pytest.raises(ClientRequestException) as caught:
                send(client, stream, entry(b"x"))
        finally:
            client.close()
        assert (441, "DIS.4112") == (caught.value.status_code, caught.value.error_code)

    def test_per_record_failures_reach_the_sdk(self, emulator, stream, sdk):
        """Per-record failures appear in the SDK's result entries."""
        emulator.fail_records(every=2)
        result = send(sdk, stream, entry(b"a"), entry(b"b"))
        assert (1, [None, "DIS.4303"]) == (
            result.failed_record_count,
            [r.error_code for r in result.records],
        )


def legacy(emu: DISEmulator, derived: bool = True) -> disclient:
    return disclient(
        endpoint=emu.url,
        ak=emu.ak,
        sk=emu.sk,
        projectid=emu.project_id,
        region=emu.region,
        derivationKeySwitch=derived,
    )


class TestLegacySDK:
    @pytest.mark.parametrize("derived", [True, False])
    def test_full_cycle(self, emulator, derived):
        """The legacy SDK (derived and plain signatures) runs create, describe, put, cursor, get,
        list and delete."""
        client = legacy(emulator, derived)
        created = client.createStream("legacy", 2, "BLOB", "COMMON")
        described = client.describeStream("legacy")
        put = client.put_records(
            "legacy", "", [{"data": "hello legacy", "partition_key": "k1"}, {"data": "two"}]
        )
        cursor = client.getCursor("legacy", "shardId-0000000000", "AT_SEQUENCE_NUMBER", "0")
        got = client.getRecords(cursor.cursor)
        listed = client.listStream()
        deleted = client.deleteStream("legacy")
        assert (201, 2, 0, "hello legacy", ["legacy"], 204, []) == (
            created.statusCode,
            len(described.partitions),
            put.failedRecordCount,
            got.recordResult[0]["data"],
            listed.stream_names,
            deleted.statusCode,
            emulator.stream_names(),
        )

    def test_keyed_record_partition(self, emulator, stream):
        """A keyed record sent by the legacy SDK lands on the MD5-rule partition."""
        legacy(emulator).put_records(stream, "", [{"data": "x", "partition_key": "0"}])
        assert ["shardId-0000000001"] == [r.partition_id for r in emulator.records(stream)]

    def test_protobuf_round_trip(self, emulator, stream):
        """The legacy SDK's protobuf mode puts and gets records through the emulator."""
        script = textwrap.dedent(
            """
            import sys
            from dis_sdk_python import disclient
            url, ak, sk, project, region, stream = sys.argv[1:]
            client = disclient(endpoint=url, ak=ak, sk=sk, projectid=project, region=region,
                               bodySerializeType="protobuf")
            put = client.put_records(stream, "", [{"data": "proto data", "partition_id": "1"}])
            cursor = client.getCursor(stream, "shardId-0000000001", "TRIM_HORIZON")
            got = client.getRecords(cursor.cursor)
            print(put.failedRecordCount, got.recordResult[0]["data"].decode())
            """
        )
        env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
        args = [
            emulator.url,
            emulator.ak,
            emulator.sk,
            emulator.project_id,
            emulator.region,
            stream,
        ]
        done = subprocess.run(
            [sys.executable, "-c", script, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ("0 proto data", [b"proto data"]) == (
            done.stdout.strip(),
            [r.data for r in emulator.records(stream)],
        ), done.stderr
