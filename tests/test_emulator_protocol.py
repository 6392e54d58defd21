"""Protocol edge cases of the emulator (review session 5): numbers, cursors, framing, required
fields and keys that are not valid UTF-8, each answered as DIS documents it, never with a 500."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import requests

from dis_logging.client import DISClient
from dis_logging.emulator import DISEmulator

SURROGATE_KEY = "\ud800x"
"""A partition key holding a lone surrogate: valid in a Python str and in a JSON escape, but not
UTF-8 (a WSGI path or a file name decoded with ``surrogateescape`` gives such strings)."""


class Api:
    """Token-authenticated raw calls, returning (status, error code) or the reply."""

    def __init__(self, emu: DISEmulator, session: requests.Session) -> None:
        self.emu = emu
        self.session = session
        self.base = f"{emu.url}/v2/{emu.project_id}"
        self.headers = {"X-Auth-Token": emu.issue_token()}

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        return self.session.request(
            method, self.base + path, headers=self.headers, timeout=10, **kw
        )

    def outcome(self, method: str, path: str, **kw: Any) -> tuple[int, Optional[str]]:
        reply = self.call(method, path, **kw)
        body = json.loads(reply.content) if reply.content else {}
        return reply.status_code, body.get("error_code")


@pytest.fixture
def api(emulator: DISEmulator) -> Iterator[Api]:
    with requests.Session() as session:
        yield Api(emulator, session)


def cursor_query(stream: str, **extra: str) -> Dict[str, str]:
    return {"stream-name": stream, "partition-id": "0", **extra}


class TestNumbersAreAsciiDecimals:
    """Decimal parameters take ASCII digits only, up to 2^63-1: other scripts' digits, signs,
    underscores and numbers ``int`` refuses to convert are the documented 400s, not a 500."""

    @pytest.mark.parametrize("number", ["\u00b2", "\u0661", "9" * 5000, "1_0", "+1"])
    def test_starting_sequence_number(self, api, stream, number):
        """A starting sequence number that is not an ASCII decimal up to 2^63-1 is DIS.4216."""
        api.call("POST", "/records", json={"stream_name": stream, "records": [{"data": "eA=="}]})
        query = cursor_query(
            stream, **{"cursor-type": "AT_SEQUENCE_NUMBER", "starting-sequence-number": number}
        )
        assert (400, "DIS.4216") == api.outcome("GET", "/cursors", params=query)

    @pytest.mark.parametrize("number", ["\u00b2", "\u0661", "9" * 5000])
    def test_at_timestamp(self, api, stream, number):
        """An AT_TIMESTAMP timestamp that is not an ASCII decimal up to 2^63-1 is DIS.4200."""
        query = cursor_query(stream, **{"cursor-type": "AT_TIMESTAMP", "timestamp": number})
        assert (400, "DIS.4200") == api.outcome("GET", "/cursors", params=query)

    @pytest.mark.parametrize("number", ["\u00b2", "\u0661", "9" * 5000])
    def test_explicit_hash_key(self, api, emulator, stream, number):
        """An explicit_hash_key that is not an ASCII decimal up to 2^63-1 is DIS.4200."""
        record = {"data": "eA==", "explicit_hash_key": number}
        body = {"stream_name": stream, "records": [record]}
        assert (400, "DIS.4200") == api.outcome("POST", "/records", json=body)
        assert [] == emulator.records(stream)

    def test_partition_id(self, api, stream):
        """A partition id takes ASCII digits only after ``shardId-``."""
        query = cursor_query(stream, **{"cursor-type": "LATEST", "partition-id": "shardId-\u0661"})
        assert (400, "DIS.4201") == api.outcome("GET", "/cursors", params=query)

    def test_get_records_limit(self, api, stream):
        """A GetRecords limit in other scripts' digits is DIS.4200."""
        cursor = api.call(
            "GET", "/cursors", params=cursor_query(stream, **{"cursor-type": "TRIM_HORIZON"})
        ).json()["partition_cursor"]
        params = {"partition-cursor": cursor, "limit": "\u0661"}
        assert (400, "DIS.4200") == api.outcome("GET", "/records", params=params)


def forged(payload: object) -> str:
    return base64.b64encode(json.dumps(payload).encode()).decode()


class TestForgedCursors:
    @pytest.mark.parametrize(
        "payload",
        [
            {"stream": ["a"], "stream_id": "x"},
            {"stream": {}, "stream_id": "x"},
            {"stream": "test-stream", "stream_id": 5},
            {"stream": "test-stream", "stream_id": "x", "partition": True},
        ],
    )
    def test_fields_of_the_wrong_type_are_an_invalid_cursor(self, api, stream, payload):
        """A cursor whose fields have the wrong types is DIS.4217, whatever the types."""
        # Issued in 2039, so it has not expired and every field is looked at.
        fields = {"partition": 0, "next_seq": 0, "issued_ms": 2**41, **payload}
        params = {"partition-cursor": forged(fields)}
        assert (400, "DIS.4217") == api.outcome("GET", "/records", params=params)


class TestRequiredFields:
    def test_create_stream_needs_a_partition_count(self, api, emulator):
        """CreateStream without partition_count (mandatory in the API) is DIS.4200."""
        body = {"stream_name": "no-count", "stream_type": "COMMON"}
        assert (400, "DIS.4200") == api.outcome("POST", "/streams", json=body)
        assert [] == emulator.stream_names()

    def test_get_cursor_needs_a_stream_name(self, api, stream):
        """GetCursor without stream-name is a malformed request, DIS.4200."""
        query = {"partition-id": "0", "cursor-type": "LATEST"}
        assert (400, "DIS.4200") == api.outcome("GET", "/cursors", params=query)

    @pytest.mark.parametrize(
        ("content_type", "status"),
        [
            ("application/json", 200),
            ("Application/JSON; charset=UTF-8", 200),
            ("text/plain", 400),
            ("application/x-www-form-urlencoded", 400),
            (None, 400),
        ],
    )
    def test_json_bodies_need_the_json_content_type(self, emulator, stream, content_type, status):
        """A JSON body is taken only with Content-Type application/json (DIS-API.md section 3)."""
        headers = {"X-Auth-Token": emulator.issue_token()}
        if content_type is not None:
            headers["Content-Type"] = content_type
        body = json.dumps({"stream_name": stream, "records": [{"data": "eA=="}]}).encode()
        reply = requests.post(
            f"{emulator.url}/v2/{emulator.project_id}/records",
            data=body,
            headers=headers,
            timeout=10,
        )
        assert status == reply.status_code


class TestIamLogin:
    def test_a_password_that_is_not_utf8_is_a_wrong_password(self, emulator):
        """A login whose password holds a lone surrogate is refused as a wrong password."""
        login = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": emulator.username,
                            "password": "PASSWORD",
                            "domain": {"name": emulator.domain_name},
                        }
                    },
                },
                "scope": {"project": {"name": emulator.region}},
            }
        }
        body = json.dumps(login).replace("PASSWORD", "\\ud800")
        reply = requests.post(
            emulator.url + "/v3/auth/tokens",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert (401, "IAM.0002") == (reply.status_code, reply.json()["error_code"])


def exchange(emu: DISEmulator, request: bytes) -> bytes:
    """Send raw bytes, end the sending side and return everything the server answers."""
    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
        reply = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return reply
            reply += chunk


class TestBodyFraming:
    """A body whose length is not plainly given is refused and the connection closed: reading it
    one way when a proxy in front read it another is how requests get smuggled."""

    def request(self, emu: DISEmulator, stream: str, *headers: str) -> bytes:
        body = json.dumps({"stream_name": stream, "records": [{"data": "eA=="}]}).encode()
        lines = [
            f"POST /v2/{emu.project_id}/records HTTP/1.1",
            "Host: x",
            f"X-Auth-Token: {emu.issue_token()}",
            "Content-Type: application/json",
            *(h.format(n=len(body), n_=f"{len(body) // 10}_{len(body) % 10}") for h in headers),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    @pytest.mark.parametrize(
        "headers",
        [
            ("Content-Length: +{n}",),
            ("Content-Length: {n_}",),
            ("Content-Length: {n}", "Content-Length: 5"),
            ("Transfer-Encoding: identity", "Content-Length: {n}"),
        ],
        ids=["sign", "underscore", "two-lengths", "unknown-coding"],
    )
    def test_ambiguous_lengths_get_400(self, emulator, stream, headers):
        """A body whose length is given ambiguously gets 400 and a closed connection."""
        reply = exchange(emulator, self.request(emulator, stream, *headers))
        assert (b"HTTP/1.1 400", True, []) == (
            reply[:12],
            b"\r\nConnection: close\r\n" in reply,
            emulator.records(stream),
        )

    def test_chunked_with_a_length_is_read_chunked_and_the_connection_closed(
        self, emulator, stream
    ):
        """A chunked body that also names a length is read chunked, then the connection closes."""
        body = json.dumps({"stream_name": stream, "records": [{"data": "eA=="}]}).encode()
        request = (
            (
                f"POST /v2/{emulator.project_id}/records HTTP/1.1\r\nHost: x\r\n"
                f"X-Auth-Token: {emulator.issue_token()}\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
            ).encode()
            + f"{len(body):x}\r\n".encode()
            + body
            + b"\r\n0\r\n\r\n"
        )
        reply = exchange(emulator, request)
        assert (b"HTTP/1.1 200", True, 1) == (
            reply[:12],
            b"\r\nConnection: close\r\n" in reply,
            len(emulator.records(stream)),
        )

    def test_an_oversized_body_announced_with_expect_is_refused_before_upload(self, emulator):
        """A body over 12 MB announced with Expect: 100-continue gets 413 before it is sent."""
        request = (
            f"POST /v2/{emulator.project_id}/records HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {13 * 1024 * 1024}\r\nExpect: 100-continue\r\n\r\n"
        ).encode()
        assert b"HTTP/1.1 413" == exchange(emulator, request)[:12]

    def test_repeated_equal_lengths_are_one_length(self, emulator, stream):
        """The same Content-Length twice is one length (RFC 9110 section 8.6)."""
        reply = exchange(
            emulator,
            self.request(emulator, stream, "Content-Length: {n}", "Content-Length: {n}"),
        )
        assert (b"HTTP/1.1 200", 1) == (reply[:12], len(emulator.records(stream)))


class TestKeysThatAreNotUtf8:
    """A partition key with a lone surrogate is kept as DIS keeps it, with ``?`` in its place,
    and lands on the partition the hash of that text picks, whichever encoding carried it."""

    def test_protobuf_read_of_a_json_written_key(self, emulator, stream):
        """A key with a lone surrogate written with JSON reads back over protobuf as ``?``."""
        writer = DISClient(emulator.url, emulator.project_id, ak=emulator.ak, sk=emulator.sk)
        reader = DISClient(
            emulator.url,
            emulator.project_id,
            ak=emulator.ak,
            sk=emulator.sk,
            serialization="protobuf",
        )
        try:
            placed = writer.put_records(stream, [(b"j", SURROGATE_KEY)]).records[0]
            cursor = reader.get_cursor(stream, str(placed.partition_id), "TRIM_HORIZON")
            got = reader.get_records(cursor).records
        finally:
            writer.close()
            reader.close()
        assert [(b"j", "?x")] == [(r.data, r.partition_key) for r in got]

    def test_protobuf_client_sends_it(self, emulator, stream):
        """The protobuf client sends a key with a lone surrogate to the partition JSON picks."""
        clients = [
            DISClient(
                emulator.url,
                emulator.project_id,
                ak=emulator.ak,
                sk=emulator.sk,
                serialization=serialization,
            )
            for serialization in ("json", "protobuf")
        ]
        try:
            placed = [
                c.put_records(stream, [(b"d", SURROGATE_KEY), (b"e", "k1")]).records
                for c in clients
            ]
        finally:
            for c in clients:
                c.close()
        json_ids, proto_ids = ([r.partition_id for r in p] for p in placed)
        assert (json_ids, {"?x", "k1"}) == (
            proto_ids,
            {r.partition_key for r in emulator.records(stream)},
        )


class TestListProjects:
    """IAM's KeystoneListProjects (``GET /v3/projects``), which the v3 SDK calls to find the
    project id of its region when ``BasicCredentials`` is given none."""

    def test_the_v3_sdk_finds_the_project_id(self, monkeypatch):
        """The v3 SDK given no project id finds the emulator's through IAM and makes its call."""
        from huaweicloudsdkcore.auth.credentials import BasicCredentials
        from huaweicloudsdkdis.v2 import DisClient
        from huaweicloudsdkdis.v2.model import ListStreamsRequest
        from huaweicloudsdkdis.v2.region.dis_region import DisRegion

        # An access key of its own: the SDK caches project ids per access key and region.
        with DISEmulator(ak="AKPROJECTLOOKUP0001") as emu:
            emu.create_stream("found", 1)
            monkeypatch.setenv("HUAWEICLOUD_SDK_IAM_ENDPOINT", emu.url)
            monkeypatch.setenv("HUAWEICLOUD_SDK_REGION_DIS_CN_NORTH_4", emu.url)
            client = (
                DisClient.new_builder()
                .with_credentials(BasicCredentials(emu.ak, emu.sk))
                .with_region(DisRegion.value_of(emu.region))
                .build()
            )
            try:
                names = client.list_streams(ListStreamsRequest()).stream_names
            finally:
                client.close()
            operations = [(e.operation, e.auth, e.status) for e in emu.requests]
        assert (["found"], [("ListProjects", "aksk", 200), ("ListStreams", "aksk", 200)]) == (
            names,
            operations,
        )

    def test_filters_and_authentication(self, emulator):
        """GET /v3/projects lists the region's project to an authenticated caller only."""
        url = emulator.url + "/v3/projects"
        with requests.Session() as session:
            session.headers["X-Auth-Token"] = emulator.issue_token()
            mine = session.get(url, params={"name": emulator.region}, timeout=10).json()
            other = session.get(url, params={"name": "eu-west-0"}, timeout=10).json()
            anonymous = requests.get(url, timeout=10)
        assert (
            [(emulator.project_id, emulator.region)],
            [],
            (401, "APIG.0301"),
        ) == (
            [(p["id"], p["name"]) for p in mine["projects"]],
            other["projects"],
            (anonymous.status_code, anonymous.json()["error_code"]),
        )


class TestFaultDetails:
    @pytest.mark.parametrize(
        ("seconds", "header"), [(2, "2"), (1.5, "1.5"), (1234567.5, "1234567.5"), (0.0001, "0")]
    )
    def test_retry_after_is_written_in_plain_decimals(self, api, stream, seconds, header):
        """A scripted Retry-After is written in whole seconds or plain decimals, never exponents."""
        api.emu.fail_next(1, 503, "DIS.5000", retry_after=seconds, operation="ListStreams")
        assert header == api.call("GET", "/streams").headers["Retry-After"]

    @pytest.mark.parametrize("seconds", [-1.0, float("inf"), float("nan")])
    def test_a_retry_after_no_header_can_carry_is_refused(self, emulator, seconds):
        """A negative, infinite or NaN retry_after is a ValueError when scripted."""
        with pytest.raises(ValueError, match="retry_after"):
            emulator.fail_next(retry_after=seconds)
        with pytest.raises(ValueError, match="retry_after"):
            emulator.fail_rate(0.5, retry_after=seconds)

    def test_requests_refused_before_the_service_are_logged(self, emulator, stream):
        """A request refused for its framing appears in ``emu.requests``."""
        request = (
            f"POST /v2/{emulator.project_id}/records?x=1 HTTP/1.1\r\nHost: x\r\n"
            "Content-Length: +5\r\n\r\nhello"
        ).encode()
        exchange(emulator, request)
        assert [("POST", f"/v2/{emulator.project_id}/records", 400, "DIS.4200")] == [
            (e.method, e.path, e.status, e.error_code) for e in emulator.requests
        ]


class TestPathDecoding:
    def test_each_segment_is_decoded_once(self, api, stream):
        """Each path segment is percent-decoded once: ``%2574est-stream`` is not ``test-stream``."""
        assert (400, "DIS.4301") == api.outcome("GET", "/streams/%2574est-stream")

    def test_an_encoded_slash_stays_in_its_segment(self, api, stream):
        """An encoded slash stays inside its path segment (one stream name, DIS.4301)."""
        assert (400, "DIS.4301") == api.outcome("GET", "/streams/a%2Fb")


class TestLongRuns:
    def test_expired_tokens_are_forgotten(self, emulator):
        """Expired tokens are forgotten, so many short-lived logins keep the store small."""
        live = emulator.issue_token(ttl=3600)
        for _ in range(5000):
            emulator.issue_token(ttl=0)
        with requests.Session() as session:
            reply = session.get(
                f"{emulator.url}/v2/{emulator.project_id}/streams",
                headers={"X-Auth-Token": live},
                timeout=10,
            )
        assert (True, 200) == (len(emulator._service.tokens) < 2100, reply.status_code)

    def test_expired_temporary_sets_are_forgotten_after_a_day(self):
        """Temporary AK/SK sets are forgotten a day after they expire."""
        clock = [1_000_000.0]
        with DISEmulator(token_ttl=0, clock=lambda: clock[0]) as emu:
            store = emu._service.temporary
            for _ in range(1500):
                store.issue(0.0)
            kept = len(store)
            clock[0] += 2 * 86400
            for _ in range(1500):
                store.issue(0.0)
            assert (1500, True) == (kept, len(store) < 2100)


class TestRetention:
    """Records expire after the stream's ``data_duration`` (24 h by default), as in DIS: every
    record used to be kept for ever, so TRIM_HORIZON was always sequence number 0 and DIS.4226
    (records expired) could not be met."""

    @pytest.fixture
    def aged(self) -> Iterator[Tuple[DISEmulator, List[float], Api]]:
        clock = [1_800_000_000.0]
        with DISEmulator(clock=lambda: clock[0]) as emu, requests.Session() as session:
            emu.create_stream("aged", 1)
            api = Api(emu, session)
            api.headers["X-Auth-Token"] = emu.issue_token(ttl=10 * 86400)
            yield emu, clock, api

    def put(self, api: Api, *data: bytes) -> List[str]:
        records = [{"data": base64.b64encode(d).decode()} for d in data]
        reply = api.call("POST", "/records", json={"stream_name": "aged", "records": records})
        return [r["sequence_number"] for r in reply.json()["records"]]

    def cursor(self, api: Api, cursor_type: str, **extra: str) -> requests.Response:
        query = cursor_query("aged", **{"cursor-type": cursor_type, **extra})
        return api.call("GET", "/cursors", params=query)

    def test_expired_records_are_gone_and_numbers_go_on(self, aged):
        """Records past the retention are gone while sequence numbers go on from where they were."""
        emu, clock, api = aged
        self.put(api, b"old-1", b"old-2")
        clock[0] += 24 * 3600 + 1
        sequence = self.put(api, b"new")
        horizon = self.cursor(api, "TRIM_HORIZON").json()["partition_cursor"]
        read = api.call("GET", "/records", params={"partition-cursor": horizon}).json()
        described = api.call("GET", "/streams/aged").json()["partitions"][0]
        assert (
            ["2"],
            [("2", "bmV3")],
            "[2 : 3]",
            (400, "DIS.4224"),
            [b"new"],
        ) == (
            sequence,
            [(r["sequence_number"], r["data"]) for r in read["records"]],
            described["sequence_number_range"],
            api.outcome(
                "GET",
                "/cursors",
                params=cursor_query(
                    "aged",
                    **{"cursor-type": "AT_SEQUENCE_NUMBER", "starting-sequence-number": "0"},
                ),
            ),
            [r.data for r in emu.records("aged")],
        )

    def test_describe_stream_shows_the_range_kept(self, aged):
        """DescribeStream's sequence_number_range starts at the oldest record kept, read or not."""
        _, clock, api = aged
        self.put(api, b"a", b"b")
        clock[0] += 25 * 3600
        described = api.call("GET", "/streams/aged").json()["partitions"][0]
        assert "[2 : 2]" == described["sequence_number_range"]

    def test_a_cursor_whose_records_expired_meanwhile_is_4226(self, aged):
        """A cursor still valid whose records expired meanwhile gets DIS.4226."""
        _, clock, api = aged
        self.put(api, b"soon gone")
        clock[0] += 24 * 3600 - 60
        cursor = self.cursor(api, "TRIM_HORIZON").json()["partition_cursor"]
        clock[0] += 120  # the cursor is still valid (5 minutes), its record is not
        params = {"partition-cursor": cursor}
        assert (400, "DIS.4226") == api.outcome("GET", "/records", params=params)

    def test_a_longer_data_duration_keeps_them(self, aged):
        """A stream created with a 72 h data_duration keeps its records for 48 h."""
        emu, clock, api = aged
        body = {"stream_name": "kept", "partition_count": 1, "data_duration": 72}
        api.call("POST", "/streams", json=body)
        api.call("POST", "/records", json={"stream_name": "kept", "records": [{"data": "eA=="}]})
        clock[0] += 48 * 3600
        assert 1 == len(emu.records("kept"))


def _somaxconn() -> int:
    try:
        with open("/proc/sys/net/core/somaxconn") as limit:
            return int(limit.read())
    except (OSError, ValueError):
        return 0


class TestManyClients:
    @pytest.mark.skipif(_somaxconn() < 1024, reason="the kernel caps the listen backlog below 1024")
    def test_a_burst_of_simultaneous_connections_is_served(self, emulator, stream):
        """Four hundred clients connecting at the same moment are all answered."""
        token = emulator.issue_token()
        body = json.dumps({"stream_name": stream, "records": [{"data": "eA=="}]}).encode()
        request = (
            f"POST /v2/{emulator.project_id}/records HTTP/1.1\r\nHost: x\r\n"
            f"X-Auth-Token: {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode() + body
        go = threading.Event()
        statuses: List[bytes] = []
        lock = threading.Lock()

        def client() -> None:
            go.wait(10)
            try:
                reply = exchange(emulator, request)[:12]
            except OSError as exc:
                reply = type(exc).__name__.encode()
            with lock:
                statuses.append(reply)

        threads = [threading.Thread(target=client) for _ in range(400)]
        for thread in threads:
            thread.start()
        go.set()
        for thread in threads:
            thread.join(60)
        assert ({b"HTTP/1.1 200"}, 400) == (set(statuses), len(emulator.records(stream)))
