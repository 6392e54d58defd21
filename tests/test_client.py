"""Tests of dis_logging.client against the emulator, and a scripted HTTP server for odd replies."""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import pytest

import dis_logging.client as client_module
from dis_logging import __version__
from dis_logging.client import (
    DISClient,
    FetchedRecord,
    PutResult,
    RecordResult,
    decode_put_records_result,
    encode_put_records,
)
from dis_logging.emulator import DISEmulator
from dis_logging.errors import (
    AuthError,
    ConfigError,
    DISError,
    RequestError,
    ServerError,
    ThrottledError,
    TokenExpiredError,
    TransportError,
)

PROTOBUF_TYPE = "application/x-protobuf;charset=utf-8"


class ScriptedServer:
    """A real loopback HTTP server that replays scripted replies and records what it received."""

    def __init__(self) -> None:
        self.replies: List[Tuple[int, Dict[str, str], bytes]] = []
        self.received: List[Tuple[str, str, Dict[str, str], bytes]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):
                return

            def _reply(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                owner.received.append((self.command, self.path, dict(self.headers), body))
                status, headers, payload = owner.replies.pop(0)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload)
                self.close_connection = True

            do_GET = do_POST = do_DELETE = _reply

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def reply(self, status: int, body: object = b"", headers: Optional[Dict[str, str]] = None):
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.replies.append((status, headers or {"Content-Type": "application/json"}, payload))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5.0)


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def make_client(emulator: DISEmulator):
    """Factory of clients on the emulator (AK/SK unless told otherwise), closed after the test."""
    clients: List[DISClient] = []

    def make(auth: str = "aksk", endpoint: Optional[str] = None, **kwargs) -> DISClient:
        credentials = {
            "aksk": {"ak": emulator.ak, "sk": emulator.sk},
            "password": {
                "username": emulator.username,
                "password": emulator.password,
                "domain_name": emulator.domain_name,
            },
            "token": {"token": emulator.issue_token()},
        }[auth]
        client = DISClient(
            endpoint or emulator.url, emulator.project_id, **{**credentials, **kwargs}
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def operations(emulator: DISEmulator, name: str) -> List[int]:
    """Statuses of the logged requests of one operation, in order."""
    return [entry.status for entry in emulator.requests if entry.operation == name]


ENTRIES = [
    (b"plain text", "k1"),
    (bytes(range(256)), None),
    ('{"msg": "caf\u00e9 \u2603"}'.encode(), 'key "quoted" \\ \u2603'),
    (b"", "empty"),
]


def _documented_records(
    entries: Sequence[Tuple[bytes, Optional[str]]], partition_id: Optional[str] = None
) -> List[Dict[str, str]]:
    """The ``records`` of a PutRecords JSON body as DIS-API.md describes them."""
    records = []
    for data, key in entries:
        record = {"data": base64.b64encode(data).decode()}
        if key is not None:
            record["partition_key"] = key
        if partition_id is not None:
            record["partition_id"] = partition_id
        records.append(record)
    return records


class TestEncoding:
    def test_json_body_decodes_to_the_documented_request(self):
        """The JSON body holds stream_name, base64 data and the keys, as DIS-API.md describes."""
        assert {"stream_name": "s", "records": _documented_records(ENTRIES)} == json.loads(
            encode_put_records("s", ENTRIES)
        )

    @pytest.mark.parametrize("partition_id", [None, "shardId-0000000001"])
    @pytest.mark.parametrize("stream_id", [None, "sid"])
    @pytest.mark.parametrize("count", [0, 1, 3])
    def test_json_body_without_keys(self, partition_id, stream_id, count):
        """Records without partition keys (built with one join) decode to the documented body."""
        entries = [(bytes([i]) * (i + 1), None) for i in range(count)]
        expected: Dict[str, Any] = {"stream_name": "s"}
        if stream_id is not None:
            expected["stream_id"] = stream_id
        expected["records"] = _documented_records(entries, partition_id)
        body = encode_put_records("s", entries, stream_id=stream_id, partition_id=partition_id)
        assert expected == json.loads(body)

    def test_json_body_is_ascii(self):
        """Non-ASCII keys are escaped, so the body is plain ASCII JSON."""
        assert encode_put_records("s", ENTRIES).isascii()

    def test_json_body_carries_stream_id_and_partition_id(self):
        """stream_id goes on the request and partition_id on every record."""
        body = json.loads(
            encode_put_records("s", [(b"a", "k"), (b"b", None)], stream_id="sid", partition_id="1")
        )
        assert {
            "stream_name": "s",
            "stream_id": "sid",
            "records": [
                {"data": "YQ==", "partition_key": "k", "partition_id": "1"},
                {"data": "Yg==", "partition_id": "1"},
            ],
        } == body

    def test_protobuf_body_parses_with_the_protobuf_library(self, proto_classes):
        """The hand-encoded PutRecordsRequest is what the protobuf library reads."""
        message = proto_classes["PutRecordsRequest"]()
        message.ParseFromString(
            encode_put_records("s", ENTRIES, serialization="protobuf", partition_id="shardId-1")
        )
        assert ("s", "", [(d, k or "", "shardId-1") for d, k in ENTRIES]) == (
            message.streamName,
            message.streamId,
            [(r.data, r.partitionKey, r.partitionId) for r in message.records],
        )

    def test_protobuf_body_of_large_records_uses_multibyte_lengths(self, proto_classes):
        """Records above 127 and 16383 bytes round-trip through the protobuf library."""
        entries = [(b"x" * 200, None), (b"y" * 20000, "k")]
        message = proto_classes["PutRecordsRequest"]()
        message.ParseFromString(encode_put_records("s", entries, serialization="protobuf"))
        assert [(d, k or "") for d, k in entries] == [
            (r.data, r.partitionKey) for r in message.records
        ]

    def test_protobuf_result_from_the_library_is_decoded(self, proto_classes):
        """A PutRecordsResult serialized by the protobuf library decodes entry by entry."""
        message = proto_classes["PutRecordsResult"](failedRecordCount=1)
        message.records.add(shardId="shardId-0000000001", sequenceNumber="7")
        message.records.add(errorCode="DIS.4303", errorMessage="slow down \u2603")
        assert (
            1,
            (
                RecordResult("shardId-0000000001", "7"),
                RecordResult(None, None, "DIS.4303", "slow down \u2603"),
            ),
        ) == decode_put_records_result(message.SerializeToString(), "protobuf")

    def test_protobuf_result_entries_of_any_shape_are_decoded(self, proto_classes):
        """Long messages, reordered and unknown fields in a result entry still decode."""
        message = proto_classes["PutRecordsResult"](failedRecordCount=1)
        message.records.add(errorMessage="m" * 300, errorCode="DIS.5250")
        entry = message.records.add(sequenceNumber="9", shardId="shardId-0000000000")
        body = message.SerializeToString()
        extra = b"\x08\x01"  # field 1, varint: unknown to PutRecordsResultEntry
        size = len(entry.SerializeToString())
        body = body.replace(bytes([0xB2, 0x01, size]), bytes([0xB2, 0x01, size + 2]) + extra, 1)
        assert (
            RecordResult(None, None, "DIS.5250", "m" * 300),
            RecordResult("shardId-0000000000", "9"),
        ) == decode_put_records_result(body, "protobuf")[1]

    @pytest.mark.parametrize(
        "body",
        [b"\x0a\x05ab", b"\xb2\x01\x05\x1a", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"],
    )
    def test_truncated_protobuf_raises_value_error(self, body):
        """Malformed protobuf replies raise ValueError rather than returning garbage."""
        with pytest.raises(ValueError, match="protobuf"):
            decode_put_records_result(body, "protobuf")

    def test_unknown_serialization_is_rejected(self):
        """Only json and protobuf are accepted."""
        with pytest.raises(ValueError, match="serialization"):
            encode_put_records("s", [], serialization="xml")


class TestRecordResults:
    @pytest.mark.parametrize(
        ("record", "ok", "retryable"),
        [
            (RecordResult("shardId-0000000000", "1"), True, False),
            (RecordResult(None, None, "DIS.4303", "throttled"), False, True),
            (RecordResult(None, None, "DIS.5250", "busy"), False, True),
            (RecordResult(None, None, "DIS.4302", "bad partition"), False, False),
        ],
    )
    def test_ok_and_retryable_follow_the_error_code(self, record, ok, retryable):
        """DIS.4303 and DIS.5xxx per-record failures are retryable, others are not."""
        assert (ok, retryable) == (record.ok, record.retryable)

    def test_put_result_lists_retryable_and_rejected_positions(self):
        """PutResult splits failures into positions to resend and positions to give up."""
        result = PutResult(
            2,
            (
                RecordResult("p", "1"),
                RecordResult(None, None, "DIS.4303"),
                RecordResult(None, None, "DIS.4302"),
            ),
        )
        assert ([1], [2], False) == (
            result.retryable_indexes(),
            result.rejected_indexes(),
            result.ok,
        )


class TestConstruction:
    @pytest.mark.parametrize(
        "endpoint",
        [
            "",
            "dis.cn-north-4.myhuaweicloud.com",
            "ftp://dis.example.com",
            "http://",
            "http://host:notaport",
            "https://user:pw@host",
            "https://host/?q=1",
            None,
        ],
    )
    def test_malformed_endpoints_raise_config_error(self, endpoint):
        """Garbage endpoints fail at construction with ConfigError naming endpoint."""
        with pytest.raises(ConfigError) as info:
            DISClient(endpoint, "pid", token="t")
        assert "endpoint" == info.value.field

    @pytest.mark.parametrize(
        "endpoint",
        ["ftp://user:HIDDEN-PW@host", "https://user:HIDDEN-PW@host:notaport", "u:HIDDEN-PW@host"],
    )
    def test_endpoint_errors_do_not_echo_a_password(self, endpoint):
        """A malformed endpoint carrying user:password is rejected without showing the password."""
        with pytest.raises(ConfigError) as info:
            DISClient(endpoint, "pid", token="t")
        assert ("endpoint", False) == (info.value.field, "HIDDEN-PW" in str(info.value))

    @pytest.mark.parametrize(
        ("endpoint", "iam_endpoint", "field"),
        [
            ("http://dis.example.com", None, "endpoint"),
            ("https://dis.example.com", "http://iam.example.com", "iam_endpoint"),
        ],
    )
    def test_plain_http_to_a_remote_host_is_refused(self, endpoint, iam_endpoint, field):
        """http:// to a host other than loopback needs allow_insecure_http=True."""
        with pytest.raises(ConfigError) as info:
            DISClient(endpoint, "pid", token="t", iam_endpoint=iam_endpoint)
        assert field == info.value.field

    @pytest.mark.parametrize(
        ("endpoint", "allow"),
        [("http://127.0.0.1:8080", False), ("http://[::1]:8080", False), ("http://dis.lan", True)],
    )
    def test_plain_http_to_loopback_or_with_opt_in_is_accepted(self, endpoint, allow):
        """http:// is accepted for loopback hosts, and for any host with allow_insecure_http."""
        with DISClient(endpoint, "pid", token="t", allow_insecure_http=allow) as client:
            assert endpoint == client.endpoint

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"project_id": ""}, "project_id"),
            ({"project_id": "a/b"}, "project_id"),
            ({"token": None}, "ak"),
            ({"token": None, "ak": "a"}, "sk"),
            ({"token": None, "username": "u", "password": "p"}, "domain_name"),
            ({"request_timeout": 0}, "request_timeout"),
            ({"request_timeout": "10"}, "request_timeout"),
            ({"serialization": "xml"}, "serialization"),
            ({"pool_maxsize": 0}, "pool_maxsize"),
            ({"verify": "/nonexistent/ca.pem"}, "verify"),
            ({"iam_endpoint": "iam"}, "iam_endpoint"),
        ],
    )
    def test_bad_settings_raise_config_error_naming_the_field(self, kwargs, field):
        """Each bad setting raises ConfigError whose field names it."""
        settings = {"project_id": "pid", "token": "t", **kwargs}
        with pytest.raises(ConfigError) as info:
            DISClient("https://dis.cn-north-4.myhuaweicloud.com", **settings)
        assert field == info.value.field

    def test_region_and_iam_endpoint_are_derived_from_a_huawei_endpoint(self):
        """A dis.<region>.myhuaweicloud.com endpoint gives the region and that region's IAM URL."""
        with DISClient("https://dis.cn-east-3.myhuaweicloud.com/", "pid", token="t") as client:
            assert (
                "https://dis.cn-east-3.myhuaweicloud.com",
                "cn-east-3",
                "https://iam.cn-east-3.myhuaweicloud.com",
            ) == (client.endpoint, client.region, client.iam_endpoint)

    def test_custom_endpoint_serves_iam_too(self, emulator):
        """Without iam_endpoint a non-Huawei endpoint is also used for IAM (as the emulator is)."""
        with DISClient(emulator.url, "pid", token="t") as client:
            assert emulator.url == client.iam_endpoint

    def test_constructor_does_not_touch_the_network(self, emulator):
        """Building a password client sends nothing, not even the IAM request."""
        with DISClient(
            emulator.url, emulator.project_id, username="u", password="p", domain_name="d"
        ):
            assert [] == emulator.requests

    def test_repr_shows_endpoint_and_auth_kind_but_no_secret(self, emulator):
        """The client's repr names the endpoint, project and auth kind, never a secret."""
        with DISClient(emulator.url, emulator.project_id, ak=emulator.ak, sk=emulator.sk) as client:
            assert (
                f"DISClient(endpoint={emulator.url!r}, project_id={emulator.project_id!r}, "
                "auth='aksk', serialization='json')"
            ) == repr(client)


class TestPutRecords:
    @pytest.mark.parametrize("serialization", ["json", "protobuf"])
    @pytest.mark.parametrize("auth", ["aksk", "password", "token"])
    def test_records_are_stored_byte_exact(
        self, make_client, emulator, stream, serialization, auth
    ):
        """Each entry arrives with its exact bytes and key, in order, for each encoding and auth."""
        client = make_client(auth, serialization=serialization)
        result = client.put_records(stream, ENTRIES)
        stored = {
            (r.partition_id, r.sequence_number): (r.data, r.partition_key)
            for r in emulator.records(stream)
        }
        assert (0, ENTRIES) == (
            result.failed_record_count,
            [stored[(r.partition_id, r.sequence_number)] for r in result.records],
        )

    @pytest.mark.parametrize("serialization", ["json", "protobuf"])
    def test_records_read_back_byte_exact(self, make_client, stream, serialization):
        """GetRecords returns the written bytes, keys and sequence numbers of one partition."""
        client = make_client(serialization=serialization)
        entries = [(bytes([i]) * i + b"\x00\xff", None) for i in range(5)]
        result = client.put_records(stream, entries, partition_id="shardId-0000000001")
        cursor = client.get_cursor(stream, "shardId-0000000001")
        page = client.get_records(cursor)
        assert [(d, r.sequence_number) for (d, _), r in zip(entries, result.records)] == [
            (r.data, r.sequence_number) for r in page.records
        ]

    def test_partition_key_selects_the_partition_like_the_server_hash(self, make_client, stream):
        """Keys "k1" and "hello" land in partitions 0 and 1 of two (DIS-API.md 7 vectors)."""
        result = make_client().put_records(stream, [(b"a", "k1"), (b"b", "hello")])
        assert ["shardId-0000000000", "shardId-0000000001"] == [
            r.partition_id for r in result.records
        ]

    def test_per_record_failures_are_reported_in_order(self, make_client, emulator, stream):
        """A 200 reply with failed entries yields RecordResults carrying their codes."""
        emulator.fail_records("DIS.4303", every=2)
        result = make_client().put_records(stream, [(b"%d" % i, None) for i in range(4)])
        assert (2, [True, False, True, False], [1, 3]) == (
            result.failed_record_count,
            [r.ok for r in result.records],
            result.retryable_indexes(),
        )

    def test_permanent_per_record_failures_are_not_retryable(self, make_client, emulator, stream):
        """A per-record code outside DIS.4303/DIS.5xxx is a rejected, not retryable, entry."""
        emulator.fail_records("DIS.4302", every=1)
        result = make_client().put_records(stream, [(b"x", None)])
        assert ([], [0], "DIS.4302") == (
            result.retryable_indexes(),
            result.rejected_indexes(),
            result.records[0].error_code,
        )

    def test_result_carries_the_request_id(self, make_client, stream):
        """The PutResult holds the X-Request-Id of the reply."""
        assert make_client().put_records(stream, [(b"x", None)]).request_id

    def test_empty_batch_sends_nothing(self, make_client, emulator, stream):
        """An empty entry list returns an empty result without a request."""
        assert (PutResult(0, ()), []) == (make_client().put_records(stream, []), emulator.requests)

    def test_stream_id_is_accepted(self, make_client, emulator):
        """A put naming the stream by id as well as by name is stored."""
        stream_id = emulator.create_stream("by-id")
        make_client().put_records("by-id", [(b"x", None)], stream_id=stream_id)
        assert [b"x"] == [r.data for r in emulator.records("by-id")]


class TestReading:
    def test_latest_cursor_sees_only_later_records(self, make_client, stream):
        """A LATEST cursor skips what was written before it was issued."""
        client = make_client()
        client.put_records(stream, [(b"old", None)], partition_id="0")
        cursor = client.get_cursor(stream, 0, cursor_type="LATEST")
        client.put_records(stream, [(b"new", None)], partition_id="0")
        assert [b"new"] == [r.data for r in client.get_records(cursor).records]

    def test_sequence_number_cursor_and_limit(self, make_client, stream):
        """AFTER_SEQUENCE_NUMBER starts after that record; limit caps the page."""
        client = make_client()
        client.put_records(stream, [(b"%d" % i, "k") for i in range(5)], partition_id="1")
        cursor = client.get_cursor(stream, "1", "AFTER_SEQUENCE_NUMBER", "1")
        page = client.get_records(cursor, limit=2)
        assert [FetchedRecord(b"2", "2", "k"), FetchedRecord(b"3", "3", "k")] == [
            r._replace(timestamp=None) for r in page.records
        ]

    def test_next_cursor_continues_reading(self, make_client, stream):
        """The next cursor of a page resumes where it ended, even after an empty page."""
        client = make_client()
        first = client.get_records(client.get_cursor(stream, 0))
        client.put_records(stream, [(b"later", None)], partition_id="0")
        assert ((), [b"later"]) == (
            first.records,
            [r.data for r in client.get_records(first.next_cursor).records],
        )

    def test_expired_or_bad_cursor_is_a_request_error(self, make_client, stream):
        """A garbage cursor is a RequestError with a DIS.42xx code."""
        with pytest.raises(RequestError) as info:
            make_client().get_records("bm90LWEtY3Vyc29y")
        assert (info.value.code or "").startswith("DIS.42")


class TestStreams:
    def test_create_describe_list_delete(self, make_client, emulator):
        """A stream created through the client is described, listed, and deleted."""
        client = make_client()
        client.create_stream("made", partition_count=3)
        described = client.describe_stream("made")
        listed = client.list_streams()
        client.delete_stream("made")
        assert ("made", 3, ["made"], []) == (
            described["stream_name"],
            len(described["partitions"]),
            listed,
            emulator.stream_names(),
        )

    def test_list_streams_follows_every_page(self):
        """More streams than one ListStreams page are all returned, sorted."""
        names = sorted(f"s-{i:03d}" for i in range(105))
        with DISEmulator(partition_quota=len(names)) as emu:
            for name in names:
                emu.create_stream(name)
            with DISClient(emu.url, emu.project_id, ak=emu.ak, sk=emu.sk) as client:
                assert names == client.list_streams()

    def test_existing_stream_is_a_request_error(self, make_client, stream):
        """Creating a stream that exists raises RequestError DIS.4307."""
        with pytest.raises(RequestError) as info:
            make_client().create_stream(stream)
        assert "DIS.4307" == info.value.code

    def test_unknown_stream_is_a_request_error(self, make_client, emulator):
        """Writing to a missing stream raises a non-retryable RequestError DIS.4301."""
        with pytest.raises(RequestError) as info:
            make_client().put_records("missing", [(b"x", None)])
        assert ("DIS.4301", 400, False) == (
            info.value.code,
            info.value.status,
            info.value.retryable,
        )


class TestErrorTranslation:
    @pytest.mark.parametrize(
        ("status", "code", "error_type", "retryable"),
        [
            (500, "DIS.5000", ServerError, True),
            (503, "DIS.5250", ServerError, True),
            (429, "APIG.0308", ThrottledError, True),
            (400, "DIS.4303", ThrottledError, True),
            (400, "DIS.4305", ThrottledError, True),
            (400, "DIS.4205", RequestError, True),
            (400, "DIS.4200", RequestError, False),
            (413, "APIG.0201", RequestError, False),
            (403, "DIS.4116", AuthError, False),
            (441, "DIS.4106", AuthError, False),
            (401, "APIG.0301", AuthError, False),
        ],
    )
    def test_status_classes_map_to_error_types(
        self, make_client, emulator, stream, status, code, error_type, retryable
    ):
        """Each documented status/code raises its error type with status, code and request id."""
        emulator.fail_next(status=status, error_code=code)
        with pytest.raises(DISError) as info:
            make_client().put_records(stream, [(b"x", None)])
        error = info.value
        assert (error_type, status, code, retryable, True) == (
            type(error),
            error.status,
            error.code,
            error.retryable,
            bool(error.request_id),
        )

    def test_retry_after_header_is_parsed_into_seconds(self, make_client, emulator, stream):
        """A Retry-After on a throttled reply shows up as retry_after seconds."""
        emulator.fail_next(status=429, error_code="APIG.0308", retry_after=3)
        with pytest.raises(ThrottledError) as info:
            make_client().put_records(stream, [(b"x", None)])
        assert 3.0 == info.value.retry_after

    def test_errors_of_other_operations_are_translated_too(self, make_client, emulator, stream):
        """GetCursor failures raise the same error types as PutRecords."""
        emulator.fail_next(status=502, error_code="DIS.5002", operation="GetCursor")
        with pytest.raises(ServerError):
            make_client().get_cursor(stream, 0)


class TestTransport:
    def test_refused_connection_is_a_transport_error(self, make_client, emulator, stream):
        """A stopped server gives a retryable TransportError without status."""
        client = make_client()
        emulator.stop()
        with pytest.raises(TransportError) as info:
            client.put_records(stream, [(b"x", None)])
        assert (None, True) == (info.value.status, info.value.retryable)

    def test_dropped_connection_is_a_transport_error(self, make_client, emulator, stream):
        """A connection closed without a reply raises TransportError, and the next call works."""
        client = make_client()
        emulator.drop_connections(1)
        with pytest.raises(TransportError):
            client.put_records(stream, [(b"x", None)])
        assert client.put_records(stream, [(b"y", None)]).ok

    def test_reply_slower_than_the_timeout_is_a_transport_error(
        self, make_client, emulator, stream
    ):
        """A reply delayed past the read timeout raises TransportError."""
        client = make_client(request_timeout=0.2)
        emulator.set_delay(2.0, "PutRecords")
        with pytest.raises(TransportError, match="PutRecords"):
            client.put_records(stream, [(b"x", None)])

    def test_per_call_timeout_overrides_the_client_timeout(self, make_client, emulator, stream):
        """put_records(timeout=...) gives up sooner than the client's own timeout."""
        client = make_client(request_timeout=30.0)
        emulator.set_delay(2.0, "PutRecords")
        started = time.monotonic()
        with pytest.raises(TransportError):
            client.put_records(stream, [(b"x", None)], timeout=0.2)
        assert time.monotonic() - started < 1.5

    def test_per_call_timeout_leaves_later_calls_alone(self, make_client, emulator, stream):
        """A short per-call timeout does not change the timeout of the next call."""
        client = make_client(request_timeout=5.0)
        emulator.set_delay(0.3, "PutRecords")
        with pytest.raises(TransportError):
            client.put_records(stream, [(b"x", None)], timeout=0.05)
        assert client.put_records(stream, [(b"y", None)]).ok

    @pytest.mark.parametrize("timeout", [0, -1.0, float("nan")])
    def test_non_positive_per_call_timeout_is_rejected(self, make_client, stream, timeout):
        """A per-call timeout that is not a positive number raises ValueError."""
        with pytest.raises(ValueError, match="timeout"):
            make_client().put_records(stream, [(b"x", None)], timeout=timeout)

    def test_closed_client_refuses_calls(self, make_client, stream):
        """After close() calls raise a non-retryable DISError; close is idempotent."""
        client = make_client()
        client.close()
        client.close()
        with pytest.raises(DISError, match="closed") as info:
            client.put_records(stream, [(b"x", None)])
        assert False is info.value.retryable


class TestTokenAuth:
    def test_token_is_fetched_once_across_calls(self, make_client, emulator, stream):
        """Several calls with password auth cost a single IAM request."""
        client = make_client("password")
        for _ in range(3):
            client.put_records(stream, [(b"x", None)])
        client.list_streams()
        assert [201] == operations(emulator, "CreateToken")

    def test_expired_token_is_refreshed_once_and_the_call_succeeds(
        self, make_client, emulator, stream
    ):
        """After expiry one 441 is followed by one IAM request and a successful retry."""
        client = make_client("password")
        client.put_records(stream, [(b"a", None)])
        emulator.expire_tokens()
        result = client.put_records(stream, [(b"b", None)])
        assert (True, [201, 201], [200, 441, 200]) == (
            result.ok,
            operations(emulator, "CreateToken"),
            operations(emulator, "PutRecords"),
        )

    @pytest.mark.parametrize("call", ["get_cursor", "list_streams"])
    def test_other_calls_refresh_an_expired_token_too(self, make_client, emulator, stream, call):
        """Reads and admin calls also retry once after a token refresh."""
        client = make_client("password")
        client.list_streams()
        emulator.expire_tokens()
        getattr(client, call)(*((stream, 0) if call == "get_cursor" else ()))
        assert [201, 201] == operations(emulator, "CreateToken")

    def test_concurrent_threads_share_a_single_refresh(self, make_client, emulator, stream):
        """Eight threads hitting an expired token cause exactly one new IAM request."""
        client = make_client("password", pool_maxsize=8)
        client.put_records(stream, [(b"warm", None)])
        emulator.expire_tokens()
        barrier = threading.Barrier(8, timeout=5.0)
        results: List[bool] = []

        def send(i: int) -> None:
            barrier.wait()
            results.append(client.put_records(stream, [(b"%d" % i, None)]).ok)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10.0)
        assert ([True] * 8, [201, 201]) == (results, operations(emulator, "CreateToken"))

    def test_fixed_token_that_expired_raises_without_retry(self, make_client, emulator, stream):
        """A fixed token cannot be renewed: TokenExpiredError after a single attempt."""
        client = make_client("token")
        emulator.expire_tokens()
        with pytest.raises(TokenExpiredError) as info:
            client.put_records(stream, [(b"x", None)])
        assert ((441, "DIS.4114", False), [441]) == (
            (info.value.status, info.value.code, info.value.retryable),
            operations(emulator, "PutRecords"),
        )

    def test_callable_token_is_asked_again_after_a_rejection(self, make_client, emulator, stream):
        """A token callable is called again after DIS.4114 and the retry succeeds."""
        client = make_client("token", token=emulator.issue_token)
        client.put_records(stream, [(b"a", None)])
        emulator.expire_tokens()
        assert client.put_records(stream, [(b"b", None)]).ok

    def test_wrong_password_is_an_auth_error_without_the_password(
        self, make_client, emulator, stream
    ):
        """IAM's 401 for a wrong password raises AuthError, and no message shows the password."""
        client = make_client("password", password="wrong-pw-1234")
        with pytest.raises(AuthError) as info:
            client.put_records(stream, [(b"x", None)])
        assert (AuthError, 401, "IAM.0002", False) == (
            type(info.value),
            info.value.status,
            info.value.code,
            "wrong-pw-1234" in f"{info.value} {info.value!r}",
        )

    def test_a_slow_iam_stays_within_the_call_timeout(self, make_client, emulator, stream):
        """The token fetch inside put_records(timeout=...) gives up when the call's time is up."""
        client = make_client("password")
        emulator.set_delay(2.0, "CreateToken")
        start = time.monotonic()
        with pytest.raises(TransportError):
            client.put_records(stream, [(b"x", None)], timeout=0.3)
        assert time.monotonic() - start < 1.5

    def test_iam_outage_is_a_server_error(self, make_client, emulator, stream):
        """A 5xx from IAM surfaces as a retryable ServerError from the DIS call."""
        emulator.fail_next(status=503, error_code="IAM.0000", operation="CreateToken")
        with pytest.raises(ServerError):
            make_client("password").put_records(stream, [(b"x", None)])


class TestAKSKAuth:
    def test_signed_requests_are_accepted(self, make_client, emulator, stream):
        """Every operation signed with AK/SK is accepted by the emulator's verifier."""
        client = make_client("aksk")
        client.put_records(stream, [(b"x", "k")])
        client.get_records(client.get_cursor(stream, 0))
        client.describe_stream(stream)
        assert {"aksk"} == {entry.auth for entry in emulator.requests}

    def test_wrong_secret_is_an_auth_error_without_the_secret(self, make_client, stream):
        """A bad SK is rejected with AuthError 441, and no message shows the SK."""
        client = make_client("aksk", sk="not-the-real-secret-key")
        with pytest.raises(AuthError) as info:
            client.put_records(stream, [(b"x", None)])
        assert (441, True, False) == (
            info.value.status,
            (info.value.code or "").startswith("DIS.41"),
            "not-the-real-secret-key" in f"{info.value} {info.value!r}",
        )

    def test_security_token_is_checked(self):
        """Temporary credentials work with the right security token and fail with a wrong one."""
        with DISEmulator(security_token="sts-token") as emu:
            emu.create_stream("s")
            ak, sk = emu.ak, emu.sk
            with DISClient(emu.url, emu.project_id, ak=ak, sk=sk, security_token="sts-token") as ok:
                ok.put_records("s", [(b"x", None)])
            with DISClient(emu.url, emu.project_id, ak=ak, sk=sk, security_token="wrong") as bad:
                with pytest.raises(AuthError):
                    bad.put_records("s", [(b"x", None)])


class TestScriptedReplies:
    def client(self, server: ScriptedServer, **kwargs: Any) -> DISClient:
        kwargs.setdefault("token", "tok-secret-1")
        return DISClient(server.url, "pid", **kwargs)

    def test_default_headers_identify_the_library_and_project(self, scripted):
        """Requests carry User-Agent dis-logging/<version>, X-Project-Id, token and JSON type."""
        scripted.reply(200, {"failed_record_count": 0, "records": [{"sequence_number": "1"}]})
        with self.client(scripted) as client:
            client.put_records("s", [(b"x", None)])
        method, path, headers, _ = scripted.received[0]
        assert (
            "POST",
            "/v2/pid/records",
            f"dis-logging/{__version__}",
            "pid",
            "tok-secret-1",
            "application/json",
        ) == (
            method,
            path,
            headers["User-Agent"],
            headers["X-Project-Id"],
            headers["X-Auth-Token"],
            headers["Content-Type"],
        )

    @pytest.mark.parametrize("operation", ["put_records", "describe_stream", "list_streams"])
    def test_a_reply_nested_too_deep_is_a_server_error(self, scripted, operation):
        """JSON nested deeper than the parser follows (a broken or hostile server) fails as a
        malformed reply, a ServerError; RecursionError escaped every DISClient method, the
        command line printed it as a traceback."""
        depth = 100_000
        deep = b'{"failed_record_count":0,"records":[' + b"[" * depth + b"]" * depth + b"]}"
        scripted.reply(200, deep)
        calls = {
            "put_records": lambda c: c.put_records("s", [(b"x", None)]),
            "describe_stream": lambda c: c.describe_stream("s"),
            "list_streams": lambda c: c.list_streams(),
        }
        with self.client(scripted) as client:
            with pytest.raises(ServerError, match="the reply body is not what DIS sends"):
                calls[operation](client)

    def test_protobuf_requests_say_so_in_content_type(self, scripted, proto_classes):
        """The protobuf variant is selected by its Content-Type."""
        reply = proto_classes["PutRecordsResult"](failedRecordCount=0)
        reply.records.add(shardId="shardId-0000000000", sequenceNumber="0")
        scripted.reply(200, reply.SerializeToString(), {"Content-Type": PROTOBUF_TYPE})
        with self.client(scripted, serialization="protobuf") as client:
            result = client.put_records("s", [(b"x", None)])
        assert (PROTOBUF_TYPE, True) == (scripted.received[0][2]["Content-Type"], result.ok)

    def test_apig_body_request_id_is_used_without_header(self, scripted):
        """An APIG error body's request_id is kept when no request id header came."""
        scripted.reply(401, {"error_code": "APIG.0301", "error_msg": "x", "request_id": "r-1"})
        with self.client(scripted, token=None, ak="a", sk="s") as client:
            with pytest.raises(AuthError) as info:
                client.list_streams()
        assert ("APIG.0301", "r-1") == (info.value.code, info.value.request_id)

    def test_iam_nested_error_form_gives_the_code(self, scripted):
        """IAM's {"error": {"code", "message"}} form yields its code and message."""
        scripted.reply(401, {"error": {"code": 401, "message": "bad creds", "title": "x"}})
        with self.client(scripted, token=None, username="u", password="p", domain_name="d") as c:
            with pytest.raises(AuthError, match="bad creds") as info:
                c.list_streams()
        assert "401" == info.value.code

    def test_http_date_retry_after_is_converted_to_seconds(self, scripted):
        """A Retry-After given as an HTTP date becomes seconds from now."""
        date = formatdate(timeval=time.time() + 60, usegmt=True)
        scripted.reply(503, {"error_code": "DIS.5000"}, {"Retry-After": date})
        with self.client(scripted) as client:
            with pytest.raises(ServerError) as info:
                client.list_streams()
        assert 55.0 <= (info.value.retry_after or 0.0) <= 61.0

    @pytest.mark.parametrize("form", ["asctime", "minus_zero"])
    def test_an_http_date_without_a_zone_is_utc(self, scripted, monkeypatch, form):
        """The asctime form and a "-0000" zone are UTC as HTTP says, not the machine's local time
        (in UTC+8 they were read as 8 hours ago: retry at once)."""
        moment = time.gmtime(time.time() + 60)
        if form == "asctime":
            date = time.strftime("%a %b %d %H:%M:%S %Y", moment)
        else:
            date = time.strftime("%a, %d %b %Y %H:%M:%S -0000", moment)
        scripted.reply(503, {"error_code": "DIS.5000"}, {"Retry-After": date})
        monkeypatch.setenv("TZ", "CST-8")  # UTC+8, POSIX form: no tz database needed
        time.tzset()
        try:
            with self.client(scripted) as client:
                with pytest.raises(ServerError) as info:
                    client.list_streams()
        finally:
            monkeypatch.undo()
            time.tzset()
        assert 55.0 <= (info.value.retry_after or 0.0) <= 61.0, info.value.retry_after

    @pytest.mark.parametrize(
        "body", [b"<html>oops</html>", b'{"records": "nope"}', b'{"records": [1, 2]}']
    )
    def test_malformed_success_body_is_a_server_error(self, scripted, body):
        """A 200 whose body is not a PutRecords reply raises ServerError."""
        scripted.reply(200, body)
        with self.client(scripted) as client:
            with pytest.raises(ServerError, match="reply"):
                client.put_records("s", [(b"x", None), (b"y", None)])

    def test_reply_with_the_wrong_number_of_results_is_a_server_error(self, scripted):
        """A reply whose records do not match the request one to one raises ServerError."""
        scripted.reply(200, {"failed_record_count": 0, "records": [{"sequence_number": "1"}]})
        with self.client(scripted) as client:
            with pytest.raises(ServerError, match="1 results for 2 records"):
                client.put_records("s", [(b"x", None), (b"y", None)])

    def test_reply_without_failures_equals_its_eager_decoding(self, scripted):
        """A reply without failures gives the same result as decoding every record at once."""
        rows = [
            {"partition_id": "shardId-0000000001", "sequence_number": "7"},
            {"partition_id": "shardId-0000000000", "sequence_number": "8", "extra": 1},
        ]
        body = json.dumps({"failed_record_count": 0, "records": rows}).encode()
        scripted.reply(200, body, {"Content-Type": "application/json", "X-Request-Id": "r-9"})
        with self.client(scripted) as client:
            result = client.put_records("s", [(b"x", None), (b"y", "k")])
        eager = PutResult(0, decode_put_records_result(body)[1], "r-9")
        assert (2, eager, hash(eager), repr(eager), [], []) == (
            result.record_count,
            result,
            hash(result),
            repr(result),
            result.retryable_indexes(),
            result.rejected_indexes(),
        )

    def test_result_without_failures_is_immutable(self, scripted):
        """Assigning to a field of a reply without failures raises FrozenInstanceError."""
        scripted.reply(200, {"failed_record_count": 0, "records": [{"sequence_number": "1"}]})
        with self.client(scripted) as client:
            result = client.put_records("s", [(b"x", None)])
        with pytest.raises(dataclasses.FrozenInstanceError):
            result.failed_record_count = 1  # type: ignore[misc]

    def test_escaped_error_code_key_is_still_a_failure(self, scripted):
        """A per-record error_code spelled with JSON escapes is counted as a failure."""
        body = b'{"failed_record_count": 0, "records": [{"error\\u005fcode": "DIS.4303"}]}'
        scripted.reply(200, body)
        with self.client(scripted) as client:
            result = client.put_records("s", [(b"x", None)])
        assert (1, [0], "DIS.4303") == (
            result.failed_record_count,
            result.retryable_indexes(),
            result.records[0].error_code,
        )

    def test_cookies_set_by_the_server_are_sent_back(self, scripted):
        """A cookie set on a PutRecords reply goes out with the next one, as requests sends it."""
        ok = {"failed_record_count": 0, "records": [{"sequence_number": "1"}]}
        scripted.reply(200, ok, {"Content-Type": "application/json", "Set-Cookie": "lb=a1; Path=/"})
        scripted.reply(200, ok)
        with self.client(scripted) as client:
            client.put_records("s", [(b"x", None)])
            client.put_records("s", [(b"y", None)])
        assert [None, "lb=a1"] == [headers.get("Cookie") for _, _, headers, _ in scripted.received]

    def test_cookies_kept_from_servers_are_bounded(self, scripted):
        """A server adding a cookie to every reply made the session's jar, and every request's
        Cookie header, grow for ever (27,000 cookies, a 1.3 MB header and 447 MB after 300
        replies of 90). At most 50 are kept, none over 4096 bytes (RFC 6265 section 6.1)."""
        ok = {"failed_record_count": 0, "records": [{"sequence_number": "1"}]}
        for index in range(60):
            cookie = f"c{index:02d}=v; Path=/"
            scripted.reply(200, ok, {"Content-Type": "application/json", "Set-Cookie": cookie})
        big = "big=" + "x" * 5000 + "; Path=/"
        scripted.reply(200, ok, {"Content-Type": "application/json", "Set-Cookie": big})
        scripted.reply(200, ok)
        with self.client(scripted) as client:
            for index in range(62):
                client.put_records("s", [(b"%d" % index, None)])
            kept = len(client._session.cookies)
        sent = scripted.received[-1][2].get("Cookie", "").split("; ")
        assert (50, 50, ["c00=v", "c49=v"]) == (kept, len(sent), [sent[0], sent[-1]])

    def test_put_records_uses_the_proxy_from_the_environment(self, scripted, monkeypatch):
        """PutRecords goes through the HTTP_PROXY set in the environment, as requests does."""
        for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("http_proxy", scripted.url)
        scripted.reply(200, {"failed_record_count": 0, "records": [{"sequence_number": "1"}]})
        with DISClient(
            "http://dis.example.invalid", "pid", token="tok", allow_insecure_http=True
        ) as client:
            client.put_records("s", [(b"x", None)])
        assert [("POST", "http://dis.example.invalid/v2/pid/records")] == [
            (method, path) for method, path, _, _ in scripted.received
        ]

    def test_netrc_credentials_are_not_added_to_put_records(self, scripted, monkeypatch, tmp_path):
        """PutRecords carries only the client's own auth, never a ~/.netrc Authorization."""
        netrc = tmp_path / "netrc"
        netrc.write_text("machine 127.0.0.1 login someone password other\n")
        netrc.chmod(0o600)
        monkeypatch.setenv("NETRC", str(netrc))
        scripted.reply(200, {"failed_record_count": 0, "records": [{"sequence_number": "1"}]})
        with self.client(scripted) as client:
            client.put_records("s", [(b"x", None)])
        assert [(None, "tok-secret-1")] == [
            (headers.get("Authorization"), headers.get("X-Auth-Token"))
            for _, _, headers, _ in scripted.received
        ]

    def test_netrc_credentials_go_nowhere(self, scripted, monkeypatch, tmp_path):
        """A ~/.netrc "default" entry (it matches every host) was sent as Basic auth with the
        requests that carry no auth of their own: the IAM login, and the request to the
        metadata service, in clear. No request carries it now."""
        netrc = tmp_path / "netrc"
        netrc.write_text("default login someone password NETRC-PASSWORD\n")
        netrc.chmod(0o600)
        monkeypatch.setenv("NETRC", str(netrc))
        later = "2999-01-01T00:00:00.000000Z"
        put_ok = {"failed_record_count": 0, "records": [{"sequence_number": "1"}]}
        scripted.reply(
            201,
            {"token": {"expires_at": later, "issued_at": "2026-01-01T00:00:00.000000Z"}},
            {"Content-Type": "application/json", "X-Subject-Token": "iam-token-0123"},
        )
        scripted.reply(200, put_ok)
        credential = {"access": "TMPAK", "secret": "tmp-sk-0123", "securitytoken": "tmp-st-0123"}
        scripted.reply(200, {"credential": {**credential, "expires_at": later}})
        scripted.reply(200, put_ok)
        with DISClient(
            scripted.url, "pid", username="u", password="pw-0123", domain_name="d"
        ) as client:
            client.put_records("s", [(b"x", None)])
        with DISClient(scripted.url, "pid", metadata_endpoint=scripted.url) as client:
            client.put_records("s", [(b"y", None)])
        sent = [(path.split("?")[0], h.get("Authorization")) for _, path, h, _ in scripted.received]
        assert [
            "/v3/auth/tokens",
            "/v2/pid/records",
            "/openstack/latest/securitykey",
            "/v2/pid/records",
        ] == [path for path, _ in sent]
        assert [] == [auth for _, auth in sent if auth and auth.startswith("Basic")]

    def test_plain_text_error_body_becomes_the_message(self, scripted):
        """A non-JSON error body (a proxy page) is quoted, shortened, in the message."""
        scripted.reply(404, b"no such route " + b"x" * 1000, {"Content-Type": "text/plain"})
        with self.client(scripted) as client:
            with pytest.raises(RequestError, match="no such route") as info:
                client.list_streams()
        assert (404, None, True) == (
            info.value.status,
            info.value.code,
            len(str(info.value)) < 400,
        )

    def test_secrets_echoed_by_the_server_are_redacted(self, scripted):
        """A server message that quotes the SK or the token is redacted before it is raised."""
        scripted.reply(400, {"error_code": "DIS.4200", "error_msg": "got sk=SK-123 tok=tok-1"})
        with self.client(scripted, token="tok-1", ak="AK", sk="SK-123") as client:
            with pytest.raises(RequestError) as info:
                client.list_streams()
        text = f"{info.value} {info.value!r}"
        assert (False, False, True) == ("SK-123" in text, "tok-1" in text, "<redacted>" in text)

    def test_redirects_are_not_followed(self, scripted):
        """A 3xx reply is an error, not a silent hop to another host."""
        scripted.reply(302, b"", {"Location": "http://example.invalid/"})
        with self.client(scripted) as client:
            with pytest.raises(RequestError) as info:
                client.list_streams()
        assert 1 == len(scripted.received)
        # It said only "ListStreams failed status=302".
        assert "redirected to http://example.invalid/, which is not followed" in str(info.value)

    def test_describe_stream_merges_partition_pages(self, scripted):
        """DescribeStream pages are followed and their partitions merged."""
        page = {"stream_name": "s", "has_more_partitions": True, "partitions": []}
        scripted.reply(200, {**page, "partitions": [{"partition_id": "shardId-0000000000"}]})
        scripted.reply(
            200,
            {**page, "has_more_partitions": False, "partitions": [{"partition_id": "shardId-1"}]},
        )
        with self.client(scripted) as client:
            described: Any = client.describe_stream("s")
        assert (["shardId-0000000000", "shardId-1"], "start_partitionId=shardId-0000000000") == (
            [p["partition_id"] for p in described["partitions"]],
            scripted.received[1][1].split("&")[-1],
        )

    def test_a_page_that_does_not_move_on_ends_the_paging(self, scripted):
        """A server answering the same DescribeStream/ListStreams page again while saying there
        is more was asked for ever, the list growing (`dis-logging check` reached 2 GB in 10 s;
        the flusher asks DescribeStream too). Paging ends at the first page with nothing new."""
        page = {"stream_name": "s", "has_more_partitions": True}
        ids = ["shardId-0000000000", "shardId-0000000001"]
        for _ in range(30):
            scripted.reply(200, {**page, "partitions": [{"partition_id": i} for i in ids]})
        names = {"stream_names": ["a", "b"], "has_more_streams": True}
        with self.client(scripted) as client:
            described: Any = client.describe_stream("s")
            asked = len(scripted.received)
            scripted.replies.clear()
            for _ in range(30):
                scripted.reply(200, names)
            listed = client.list_streams()
        assert (ids, 2, ["a", "b"], 4) == (
            [p["partition_id"] for p in described["partitions"]],
            asked,
            listed,
            len(scripted.received),
        )

    def test_paging_stops_at_a_bound_however_many_pages_are_announced(self, scripted, monkeypatch):
        """Fresh partitions on every page, for ever: collected up to MAX_PAGED_ITEMS only."""
        monkeypatch.setattr(client_module, "MAX_PAGED_ITEMS", 5)
        for index in range(10):
            rows = [{"partition_id": f"shardId-{2 * index + k:010d}"} for k in (0, 1)]
            scripted.reply(
                200, {"stream_name": "s", "has_more_partitions": True, "partitions": rows}
            )
        with self.client(scripted) as client:
            described: Any = client.describe_stream("s")
        assert (6, 3) == (len(described["partitions"]), len(scripted.received))


class TestKeywords:
    def test_timeout_is_the_deprecated_name_of_request_timeout(self):
        """DISClient(timeout=...) still works, with a DeprecationWarning pointing at the caller."""
        with pytest.deprecated_call(match="request_timeout") as warned:
            client = DISClient("http://127.0.0.1:9", "pid", token="t", timeout=3.0)  # the old name
        client.close()
        assert (3.0, 3.0, __file__) == (
            client.request_timeout,
            client.timeout,
            warned.list[0].filename,
        )

    def test_unknown_keywords_are_all_named(self):
        """Misspelled client keywords raise one ConfigError naming each with a suggestion."""
        with pytest.raises(ConfigError) as info:
            DISClient("http://127.0.0.1:9", "pid", token="t", request_timout=3, verfy=False)  # type: ignore[call-arg]
        assert "request_timout, verfy" == info.value.field
        assert "did you mean 'request_timeout'?" in str(info.value)
        assert "did you mean 'verify'?" in str(info.value)


def _closed_port_url() -> str:
    """The URL of a loopback port with nothing listening."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


class TestTransportMessages:
    """Each kind of transport failure reads as one line with the cause and the next step."""

    def _fail(self, client, stream="s"):
        with pytest.raises(TransportError) as info:
            client.put_records(stream, [(b"x", None)])
        return str(info.value)

    def test_refused_connection(self):
        """A closed port says the connection was refused and where."""
        url = _closed_port_url()
        with DISClient(url, "pid", token="static-test-token", request_timeout=2.0) as client:
            message = self._fail(client)
        netloc = url.split("//", 1)[1]
        assert message.startswith(
            f"PutRecords: {netloc} refused the connection (nothing listens on that port)"
        )
        assert "dis-logging check" in message

    def test_tls_failure(self, emulator):
        """https:// to a plain-HTTP server names a TLS failure and the CA bundle option."""
        url = emulator.url.replace("http://", "https://")
        with DISClient(url, "pid", token="static-test-token", request_timeout=5.0) as client:
            message = self._fail(client)
        assert message.startswith("PutRecords: TLS with 127.0.0.1 failed (")
        assert "verify='/path/ca.pem'" in message

    def test_read_timeout(self, emulator, stream):
        """A reply slower than request_timeout says so with the timeout value."""
        emulator.set_delay(1.0, operation="PutRecords")
        with DISClient(
            emulator.url, emulator.project_id, ak=emulator.ak, sk=emulator.sk, request_timeout=0.2
        ) as client:
            message = self._fail(client, stream)
        assert message.startswith(
            f"PutRecords: no reply from {emulator.url.split('//', 1)[1]} within 0.2 s "
            "(request_timeout)"
        )

    def test_connection_closed_without_reply(self, emulator, stream):
        """A connection dropped before the reply is named as such."""
        emulator.drop_connections(1)
        with DISClient(emulator.url, emulator.project_id, ak=emulator.ak, sk=emulator.sk) as client:
            message = self._fail(client, stream)
        assert "closed the connection without a reply" in message

    def test_unresolvable_host_names_the_region(self):
        """A Huawei Cloud host that does not resolve names the region it was derived from."""
        import socket

        import urllib3

        from dis_logging.client import describe_transport_failure

        host = "dis.cn-nowhere-9.myhuaweicloud.com"
        reason = socket.gaierror(-2, "Name or service not known")
        error = urllib3.exceptions.NameResolutionError(host, None, reason)  # type: ignore[arg-type]
        message = describe_transport_failure("PutRecords", f"https://{host}/v2/p/records", error)
        assert message.startswith(
            f"PutRecords: the host {host} does not resolve; is the region 'cn-nowhere-9' right"
        )

    def test_gaierror_in_the_chain_is_a_resolution_failure(self):
        """A socket.gaierror anywhere in the chain (urllib3 1.26's shape) reads as DNS failure."""
        import socket

        import requests

        from dis_logging.client import describe_transport_failure

        try:
            try:
                raise socket.gaierror(-2, "Name or service not known")
            except socket.gaierror as inner:
                raise requests.exceptions.ConnectionError("Max retries exceeded") from inner
        except requests.exceptions.ConnectionError as outer:
            error = outer
        message = describe_transport_failure("GetCursor", "https://dis.example.internal/v2", error)
        assert message.startswith(
            "GetCursor: the host dis.example.internal does not resolve; check the endpoint"
        )

    @pytest.mark.parametrize("limit", [20, 37, 60])
    def test_shorten_never_cuts_a_word(self, limit):
        """shorten() keeps whole words and marks the cut."""
        from dis_logging.client import shorten

        text = "HTTPSConnectionPool host dis.cn-north-4.myhuaweicloud.com port 443 max retries"
        short = shorten(text, limit)
        words = text.split()
        assert short.endswith("…")
        assert len(short) <= limit
        assert all(word in words for word in short[:-1].split())
