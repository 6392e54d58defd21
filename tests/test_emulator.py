"""Tests of the DIS emulator through plain HTTP: IAM, streams, records, faults, robustness."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
import time
from typing import Any, Dict, Iterator, List, Optional

import pytest
import requests

from dis_logging.emulator import DISEmulator, RequestLogEntry, StoredRecord
from dis_logging.emulator import protobuf as pb
from dis_logging.emulator.state import MAX_HASH, hash_ranges, key_hash, partition_for_hash

MIB = 1024 * 1024


class FakeClock:
    """A settable wall clock starting at the real time."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def code_of(reply: requests.Response) -> Optional[str]:
    code = json.loads(reply.content).get("error_code")
    return None if code is None else str(code)


def token_body(emu: DISEmulator, **overrides: Any) -> Dict[str, Any]:
    user = {
        "name": overrides.get("name", emu.username),
        "password": overrides.get("password", emu.password),
        "domain": {"name": overrides.get("domain", emu.domain_name)},
    }
    return {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": overrides.get("scope", {"project": {"name": emu.region}}),
        }
    }


class Api:
    """A small token-authenticated DIS caller for the tests."""

    def __init__(self, emu: DISEmulator, session: requests.Session) -> None:
        self.emu = emu
        self.session = session
        self.headers = {"X-Auth-Token": emu.issue_token()}
        self.base = f"{emu.url}/v2/{emu.project_id}"

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        headers = {**self.headers, **kw.pop("headers", {})}
        return self.session.request(method, self.base + path, headers=headers, timeout=10, **kw)

    def put(self, stream: str, records: List[Dict[str, Any]], **body: Any) -> requests.Response:
        return self.call(
            "POST", "/records", json={"stream_name": stream, "records": records, **body}
        )

    def put_data(self, stream: str, *items: bytes, **fields: str) -> requests.Response:
        return self.put(stream, [{"data": b64(item), **fields} for item in items])

    def cursor_reply(
        self, stream: str, partition: str, cursor_type: str, **kw: str
    ) -> requests.Response:
        params = {
            "stream-name": stream,
            "partition-id": partition,
            "cursor-type": cursor_type,
            **kw,
        }
        return self.call("GET", "/cursors", params=params)

    def cursor(
        self, stream: str, partition: str = "0", cursor_type: str = "TRIM_HORIZON", **kw: str
    ) -> str:
        reply = self.cursor_reply(stream, partition, cursor_type, **kw)
        assert 200 == reply.status_code, reply.text
        return str(reply.json()["partition_cursor"])

    def get(self, cursor: str, **params: Any) -> requests.Response:
        return self.call("GET", "/records", params={"partition-cursor": cursor, **params})

    def read(
        self, stream: str, partition: str = "0", cursor_type: str = "TRIM_HORIZON", **kw: str
    ) -> List[bytes]:
        reply = self.get(self.cursor(stream, partition, cursor_type, **kw))
        return [base64.b64decode(r["data"]) for r in reply.json()["records"]]


@pytest.fixture
def http_session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture
def api(emulator: DISEmulator, http_session: requests.Session) -> Api:
    return Api(emulator, http_session)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clocked(clock: FakeClock) -> Iterator[DISEmulator]:
    with DISEmulator(clock=clock) as emu:
        emu.create_stream("test-stream", partitions=2)
        yield emu


class TestLifecycle:
    def test_url_names_the_bound_port(self, emulator):
        """The URL carries the port the OS picked for port 0."""
        assert f"http://127.0.0.1:{emulator.port}" == emulator.url

    def test_stop_refuses_new_connections(self, http_session):
        """After stop() new connections are refused."""
        with DISEmulator() as emu:
            url = emu.url
        with pytest.raises(requests.ConnectionError):
            http_session.get(url + "/v2/x/streams", timeout=5)

    def test_stop_closes_keep_alive_connections(self, emulator, stream, api):
        """stop() also closes pooled keep-alive connections, so a reused session fails."""
        assert 200 == api.put_data(stream, b"x").status_code
        emulator.stop()
        with pytest.raises(requests.ConnectionError):
            api.put_data(stream, b"y")

    def test_start_twice_is_an_error(self, emulator):
        """Starting a running emulator raises RuntimeError."""
        with pytest.raises(RuntimeError):
            emulator.start()

    def test_stop_is_idempotent(self, emulator):
        """stop() may be called more than once."""
        emulator.stop()
        emulator.stop()
        assert not emulator.running

    def test_keep_alive_replies_do_not_stall(self, emulator, stream):
        """Fifty keep-alive requests finish far below the 40 ms-per-request Nagle stall."""
        token = emulator.issue_token()
        conn = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=10)
        body = json.dumps({"stream_name": stream, "records": [{"data": "eA=="}]})
        headers = {"X-Auth-Token": token, "Content-Type": "application/json"}
        try:
            started = time.perf_counter()
            statuses = set()
            for _ in range(50):
                conn.request("POST", f"/v2/{emulator.project_id}/records", body, headers)
                reply = conn.getresponse()
                reply.read()
                statuses.add(reply.status)
            elapsed = time.perf_counter() - started
        finally:
            conn.close()
        assert ({200}, True) == (statuses, elapsed < 1.0)

    def test_repr_has_no_secrets(self, emulator):
        """The emulator's repr names its URL and project but no credential."""
        text = repr(emulator)
        assert (True, False, False) == (
            emulator.url in text,
            emulator.sk in text,
            emulator.password in text,
        )


class TestIAM:
    def test_password_token_is_issued(self, emulator, http_session):
        """A correct password body yields 201 with a long X-Subject-Token and the token body."""
        reply = http_session.post(emulator.url + "/v3/auth/tokens", json=token_body(emulator))
        token = reply.json()["token"]
        assert (201, True) == (reply.status_code, len(reply.headers["X-Subject-Token"]) > 300)
        assert {"expires_at", "issued_at", "methods", "user", "project", "roles", "catalog"} <= set(
            token
        )

    def test_expiry_follows_token_ttl(self, http_session):
        """expires_at is issued_at plus the configured token_ttl."""
        with DISEmulator(token_ttl=60.0) as emu:
            token = http_session.post(emu.url + "/v3/auth/tokens", json=token_body(emu)).json()[
                "token"
            ]
        fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
        issued = time.mktime(time.strptime(token["issued_at"], fmt))
        expires = time.mktime(time.strptime(token["expires_at"], fmt))
        assert 60 == round(expires - issued)

    @pytest.mark.parametrize("ttl", [float("inf"), float("nan"), -1.0, 1e12])
    def test_a_lifetime_no_token_can_have_is_refused(self, ttl):
        """token_ttl must be a number of seconds from 0 to ten years: beyond, the expiry date
        cannot be written and every login was answered 500."""
        with pytest.raises(ValueError, match="token_ttl must be from 0 to 315360000 seconds"):
            DISEmulator(token_ttl=ttl)
        with DISEmulator() as emu:
            with pytest.raises(ValueError, match="token_ttl"):
                emu.token_ttl = ttl
            with pytest.raises(ValueError, match="token_ttl"):
                emu.issue_token(ttl)

    def test_the_longest_lifetime_issues_tokens(self, http_session):
        """The longest accepted lifetime still gives a token a client can log in with."""
        from dis_logging.emulator.server import MAX_TOKEN_TTL

        with DISEmulator(token_ttl=MAX_TOKEN_TTL) as emu:
            reply = http_session.post(emu.url + "/v3/auth/tokens", json=token_body(emu))
        assert 201 == reply.status_code

    def test_nocatalog_drops_the_catalog(self, emulator, http_session):
        """nocatalog=true leaves the catalog out of the token body."""
        url = emulator.url + "/v3/auth/tokens?nocatalog=true"
        assert "catalog" not in http_session.post(url, json=token_body(emulator)).json()["token"]

    def test_project_scope_by_id(self, emulator, http_session):
        """A project scope may name the project by id."""
        body = token_body(emulator, scope={"project": {"id": emulator.project_id}})
        reply = http_session.post(emulator.url + "/v3/auth/tokens", json=body)
        assert (201, emulator.project_id) == (
            reply.status_code,
            reply.json()["token"]["project"]["id"],
        )

    @pytest.mark.parametrize(
        "override",
        [
            {"password": "wrong"},
            {"name": "someone-else"},
            {"domain": "other-account"},
            {"scope": {"project": {"name": "ap-southeast-1"}}},
        ],
    )
    def test_wrong_credentials_are_401(self, emulator, http_session, override):
        """Wrong user, password, account or project yields 401 with the IAM error body."""
        reply = http_session.post(
            emulator.url + "/v3/auth/tokens", json=token_body(emulator, **override)
        )
        assert (401, 401, "Unauthorized") == (
            reply.status_code,
            reply.json()["error"]["code"],
            reply.json()["error"]["title"],
        )

    @pytest.mark.parametrize(
        "body", [b"{", b"[]", b'{"auth": {}}', b'{"auth": {"identity": {"methods": ["token"]}}}']
    )
    def test_malformed_token_request_is_400(self, emulator, http_session, body):
        """A malformed IAM body yields 400, not a crash."""
        reply = http_session.post(emulator.url + "/v3/auth/tokens", data=body)
        assert 400 == reply.status_code

    def test_iam_token_authenticates_dis(self, emulator, stream, http_session):
        """A token obtained from IAM is accepted by DIS."""
        token = http_session.post(
            emulator.url + "/v3/auth/tokens", json=token_body(emulator)
        ).headers["X-Subject-Token"]
        reply = http_session.get(
            f"{emulator.url}/v2/{emulator.project_id}/streams/{stream}",
            headers={"X-Auth-Token": token},
        )
        assert 200 == reply.status_code

    def test_domain_scoped_token_is_refused_by_dis(self, emulator, stream, http_session):
        """A domain-scoped token is not accepted for a project's DIS API (403 DIS.4116)."""
        body = token_body(emulator, scope={"domain": {"name": emulator.domain_name}})
        token = http_session.post(emulator.url + "/v3/auth/tokens", json=body).headers[
            "X-Subject-Token"
        ]
        reply = http_session.get(
            f"{emulator.url}/v2/{emulator.project_id}/streams", headers={"X-Auth-Token": token}
        )
        assert (403, "DIS.4116") == (reply.status_code, code_of(reply))


class TestTokenAuth:
    @pytest.mark.parametrize(
        ("headers", "expected"),
        [
            ({}, "DIS.4113"),
            ({"X-Auth-Token": ""}, "DIS.4113"),
            ({"X-Auth-Token": "MIIbogus"}, "DIS.4114"),
        ],
    )
    def test_missing_or_unknown_token_is_441(self, emulator, http_session, headers, expected):
        """A missing token is DIS.4113 and an unknown one DIS.4114, both with HTTP 441."""
        reply = http_session.get(
            f"{emulator.url}/v2/{emulator.project_id}/streams", headers=headers
        )
        assert (441, expected) == (reply.status_code, code_of(reply))

    def test_token_expires_after_its_ttl(self, clocked, clock, http_session):
        """A token stops working once the clock passes its expiry."""
        headers = {"X-Auth-Token": clocked.issue_token(ttl=30.0)}
        url = f"{clocked.url}/v2/{clocked.project_id}/streams"
        before = http_session.get(url, headers=headers).status_code
        clock.now += 31.0
        after = http_session.get(url, headers=headers)
        assert (200, 441, "DIS.4114") == (before, after.status_code, code_of(after))

    def test_expire_tokens_invalidates_issued_tokens_only(self, emulator, stream, api):
        """expire_tokens() expires every existing token; a new one works."""
        emulator.expire_tokens()
        expired = api.put_data(stream, b"x")
        api.headers["X-Auth-Token"] = emulator.issue_token()
        assert (441, "DIS.4114", 200) == (
            expired.status_code,
            code_of(expired),
            api.put_data(stream, b"x").status_code,
        )

    def test_wrong_project_in_path_is_4117(self, emulator, api):
        """A path naming another project is rejected with DIS.4117."""
        reply = api.session.get(f"{emulator.url}/v2/{'f' * 32}/streams", headers=api.headers)
        assert (400, "DIS.4117") == (reply.status_code, code_of(reply))

    def test_wrong_x_project_id_header_is_4117(self, emulator, api):
        """An X-Project-Id header naming another project is rejected with DIS.4117."""
        reply = api.call("GET", "/streams", headers={"X-Project-Id": "f" * 32})
        assert (400, "DIS.4117") == (reply.status_code, code_of(reply))


class TestPartitioning:
    @pytest.mark.parametrize(
        ("key", "value", "indexes"),
        [
            ("k1", 3906786343346949848, [0, 1, 1]),
            ("0", 5750288053043553775, [1, 1, 2]),
            ("hello", 6719722671305337462, [1, 2, 2]),
        ],
    )
    def test_key_hash_vectors(self, key, value, indexes):
        """Keys hash and map to partitions as the DIS-API section 7 vectors say."""
        assert (value, indexes) == (
            key_hash(key),
            [partition_for_hash(value, n) for n in (2, 3, 4)],
        )

    @pytest.mark.parametrize("partitions", [1, 2, 3, 7, 64])
    def test_hash_ranges_tile_the_space(self, partitions):
        """Hash ranges start at 0, end at 2^63-1 and leave no gaps."""
        ranges = hash_ranges(partitions)
        gaps = [b[0] - a[1] for a, b in zip(ranges, ranges[1:])]
        assert (0, MAX_HASH, [1] * (partitions - 1)) == (ranges[0][0], ranges[-1][1], gaps)

    def test_describe_reports_hash_ranges(self, emulator, api):
        """DescribeStream reports the section 7 hash_range strings."""
        emulator.create_stream("three", partitions=3)
        parts = api.call("GET", "/streams/three").json()["partitions"]
        assert [
            "[0 : 3074457345618258601]",
            "[3074457345618258602 : 6148914691236517203]",
            "[6148914691236517204 : 9223372036854775807]",
        ] == [p["hash_range"] for p in parts]


class TestStreams:
    def test_create_stream_replies_201_empty(self, emulator, api):
        """CreateStream answers 201 with an empty body and the stream exists."""
        reply = api.call("POST", "/streams", json={"stream_name": "made", "partition_count": 2})
        assert (201, b"", ["made"]) == (reply.status_code, reply.content, emulator.stream_names())

    def test_describe_stream_fields(self, emulator, stream, api):
        """DescribeStream reports name, type, status and one entry per partition."""
        api.put_data(stream, b"a", partition_id="shardId-0000000001")
        body = api.call("GET", f"/streams/{stream}").json()
        assert (stream, "RUNNING", "COMMON", "BLOB", 24, False, 2) == (
            body["stream_name"],
            body["status"],
            body["stream_type"],
            body["data_type"],
            body["retention_period"],
            body["has_more_partitions"],
            body["writable_partition_count"],
        )
        assert [("shardId-0000000000", "[0 : 0]"), ("shardId-0000000001", "[0 : 1]")] == [
            (p["partition_id"], p["sequence_number_range"]) for p in body["partitions"]
        ]

    def test_describe_pages_partitions(self, emulator, api):
        """limit_partitions and start_partitionId page through the partitions."""
        emulator.create_stream("five", partitions=5)
        body = api.call(
            "GET",
            "/streams/five",
            params={"limit_partitions": 2, "start_partitionId": "shardId-0000000001"},
        ).json()
        assert (["shardId-0000000002", "shardId-0000000003"], True) == (
            [p["partition_id"] for p in body["partitions"]],
            body["has_more_partitions"],
        )

    def test_create_existing_stream_is_4307(self, emulator, stream, api):
        """Creating a stream twice is rejected with DIS.4307."""
        reply = api.call("POST", "/streams", json={"stream_name": stream, "partition_count": 1})
        assert (400, "DIS.4307") == (reply.status_code, code_of(reply))

    @pytest.mark.parametrize(
        "body",
        [
            {"stream_name": ""},
            {"stream_name": "a" * 65},
            {"stream_name": "bad name"},
            {"stream_name": "ünïcode"},
            {"stream_name": 5},
            {"stream_name": "ok", "partition_count": 0},
            {"stream_name": "ok", "partition_count": "2"},
            {"stream_name": "ok", "partition_count": True},
            {"stream_name": "ok", "stream_type": "FAST"},
            {"stream_name": "ok", "data_type": "XML"},
            {"stream_name": "ok", "data_duration": 12},
        ],
    )
    def test_invalid_create_is_4200(self, emulator, api, body):
        """Invalid CreateStream fields are rejected with DIS.4200 and nothing is created."""
        reply = api.call("POST", "/streams", json=body)
        assert (400, "DIS.4200", []) == (reply.status_code, code_of(reply), emulator.stream_names())

    def test_partition_quota_is_4308(self, http_session):
        """Partitions beyond the account quota are rejected with DIS.4308."""
        with DISEmulator(partition_quota=3) as emu:
            emu.create_stream("a", partitions=2)
            reply = Api(emu, http_session).call(
                "POST", "/streams", json={"stream_name": "b", "partition_count": 2}
            )
        assert (400, "DIS.4308") == (reply.status_code, code_of(reply))

    def test_list_streams_pages_alphabetically(self, emulator, api):
        """ListStreams sorts names, honours limit and start_stream_name, and reports more pages."""
        for name in ("d", "b", "e", "a", "c"):
            emulator.create_stream(name)
        first = api.call("GET", "/streams", params={"limit": 2}).json()
        second = api.call("GET", "/streams", params={"limit": 10, "start_stream_name": "b"}).json()
        assert (5, ["a", "b"], True, ["c", "d", "e"], False) == (
            first["total_number"],
            first["stream_names"],
            first["has_more_streams"],
            second["stream_names"],
            second["has_more_streams"],
        )

    def test_list_streams_reports_stream_info(self, emulator, stream, api):
        """ListStreams includes stream_info_list entries with the partition count."""
        info = api.call("GET", "/streams").json()["stream_info_list"]
        assert [(stream, 2, "COMMON")] == [
            (i["stream_name"], i["partition_count"], i["stream_type"]) for i in info
        ]

    def test_delete_stream(self, emulator, stream, api):
        """DeleteStream answers 204 and the stream is gone."""
        reply = api.call("DELETE", f"/streams/{stream}")
        after = api.call("GET", f"/streams/{stream}")
        assert (204, b"", 400, "DIS.4301") == (
            reply.status_code,
            reply.content,
            after.status_code,
            code_of(after),
        )

    def test_delete_unknown_stream_is_4301(self, emulator, api):
        """Deleting an unknown stream is rejected with DIS.4301."""
        reply = api.call("DELETE", "/streams/nope")
        assert (400, "DIS.4301") == (reply.status_code, code_of(reply))

    @pytest.mark.parametrize("suffix", ["/streams/", "/streams"])
    def test_paths_with_and_without_trailing_slash(self, emulator, stream, api, suffix):
        """Collection paths work with and without a trailing slash."""
        assert 200 == api.call("GET", suffix).status_code

    def test_direct_api_errors(self, emulator, stream):
        """The Python API raises ValueError for bad streams and KeyError for unknown ones."""
        with pytest.raises(ValueError, match="already exists"):
            emulator.create_stream(stream)
        with pytest.raises(KeyError):
            emulator.delete_stream("nope")
        with pytest.raises(KeyError):
            emulator.records("nope")


class TestPutRecords:
    def test_round_trip_is_byte_exact(self, emulator, stream, api):
        """Every byte value survives put and get unchanged."""
        payload = bytes(range(256)) * 3
        api.put_data(stream, payload, partition_id="shardId-0000000001")
        assert ([payload], [payload]) == (
            [r.data for r in emulator.records(stream)],
            api.read(stream, "shardId-0000000001"),
        )

    def test_reply_lists_results_in_order(self, emulator, stream, api):
        """The reply lists one result per record in order, with per-partition sequence numbers."""
        reply = api.put(
            stream,
            [{"data": b64(b"a"), "partition_id": p} for p in ("0", "1", "shardId-0000000000", "1")],
        )
        assert {
            "failed_record_count": 0,
            "records": [
                {"partition_id": "shardId-0000000000", "sequence_number": "0"},
                {"partition_id": "shardId-0000000001", "sequence_number": "0"},
                {"partition_id": "shardId-0000000000", "sequence_number": "1"},
                {"partition_id": "shardId-0000000001", "sequence_number": "1"},
            ],
        } == reply.json()

    def test_keyed_records_land_on_md5_partition(self, emulator, api):
        """Keys k1, 0 and hello land on partitions 1, 1 and 2 of a 3-partition stream."""
        emulator.create_stream("three", partitions=3)
        api.put(
            "three", [{"data": b64(k.encode()), "partition_key": k} for k in ("k1", "0", "hello")]
        )
        assert [
            ("k1", "shardId-0000000001"),
            ("0", "shardId-0000000001"),
            ("hello", "shardId-0000000002"),
        ] == sorted(
            ((r.partition_key, r.partition_id) for r in emulator.records("three")),
            key=lambda pair: ["k1", "0", "hello"].index(pair[0] or ""),
        )

    def test_partition_id_beats_key(self, emulator, stream, api):
        """partition_id takes priority over partition_key."""
        api.put_data(stream, b"x", partition_key="k1", partition_id="1")
        assert ["shardId-0000000001"] == [r.partition_id for r in emulator.records(stream)]

    def test_explicit_hash_key_beats_key(self, emulator, stream, api):
        """explicit_hash_key replaces the key's hash."""
        api.put_data(stream, b"x", partition_key="k1", explicit_hash_key=str(MAX_HASH))
        assert ["shardId-0000000001"] == [r.partition_id for r in emulator.records(stream)]

    def test_unkeyed_records_spread_over_partitions(self, emulator, api):
        """Records with neither key nor id land on valid partitions, not all on one."""
        emulator.create_stream("wide", partitions=4)
        api.put("wide", [{"data": b64(b"x")}] * 200)
        assert 4 == len({r.partition_id for r in emulator.records("wide")})

    def test_stored_record_fields(self, emulator, stream, api):
        """A stored record carries data, partition, sequence number, key and a ms timestamp."""
        before = int(time.time() * 1000)
        api.put_data(stream, b"payload", partition_key="k1")
        record = emulator.records(stream)[0]
        assert StoredRecord(b"payload", "shardId-0000000000", "0", "k1", record.timestamp) == record
        assert before <= record.timestamp <= int(time.time() * 1000)

    def test_unknown_stream_is_4301(self, emulator, api):
        """Putting to an unknown stream is rejected with DIS.4301."""
        reply = api.put_data("nope", b"x")
        assert (400, "DIS.4301") == (reply.status_code, code_of(reply))

    def test_stream_id_is_used_when_the_name_is_unknown(self, emulator, api):
        """stream_id identifies the stream when stream_name does not match."""
        stream_id = emulator.create_stream("real", partitions=1)
        reply = api.put("someone-elses-name", [{"data": b64(b"x")}], stream_id=stream_id)
        assert (200, [b"x"]) == (reply.status_code, [r.data for r in emulator.records("real")])

    @pytest.mark.parametrize(
        ("stream_type", "size", "status"),
        [("COMMON", MIB, 200), ("COMMON", MIB + 1, 400), ("ADVANCED", 5 * MIB, 200)],
    )
    def test_request_data_limit_per_stream_type(self, emulator, api, stream_type, size, status):
        """A request's total data may reach 1 MB on COMMON and 5 MB on ADVANCED streams."""
        emulator.create_stream("sized", stream_type=stream_type)
        half = size // 2
        reply = api.put_data("sized", b"a" * half, b"b" * (size - half))
        assert status == reply.status_code

    def test_request_data_limit_error_is_clear(self, emulator, stream, api):
        """Exceeding the request data limit names the limit in the error message."""
        reply = api.put_data(stream, b"a" * (MIB + 1))
        assert (400, "DIS.4200", True) == (
            reply.status_code,
            code_of(reply),
            "1048576" in reply.json()["error_msg"],
        )

    @pytest.mark.parametrize(
        ("partition", "expected"), [("shard-x", "DIS.4201"), ("shardId-0000000009", "DIS.4302")]
    )
    def test_bad_partition_id(self, emulator, stream, api, partition, expected):
        """A malformed partition id is DIS.4201; a missing partition DIS.4302; nothing is stored."""
        reply = api.put_data(stream, b"x", partition_id=partition)
        assert (400, expected, []) == (reply.status_code, code_of(reply), emulator.records(stream))

    @pytest.mark.parametrize(
        "body",
        [
            b"not json",
            b"\xff\xfe",
            b"[]",
            b'{"stream_name": "test-stream"}',
            b'{"stream_name": "test-stream", "records": {}}',
            b'{"stream_name": "test-stream", "records": []}',
            b'{"stream_name": "test-stream", "records": [1]}',
            b'{"stream_name": "test-stream", "records": [{"data": "***"}]}',
            b'{"stream_name": "test-stream", "records": [{"data": 5}]}',
            b'{"stream_name": "test-stream", "records": [{}]}',
            b'{"stream_name": "test-stream", "records": [{"data": "eA==", "partition_key": 5}]}',
            b'{"stream_name": "test-stream", "records": [{"data": "", "explicit_hash_key": "-1"}]}',
            b'{"stream_name": 7, "records": [{"data": "eA=="}]}',
            b'{"records": [{"data": "eA=="}]}',
        ],
    )
    def test_malformed_bodies_are_4200(self, emulator, stream, api, body):
        """Malformed PutRecords bodies are rejected with 400 DIS.4200 and nothing is stored."""
        reply = api.call(
            "POST", "/records", data=body, headers={"Content-Type": "application/json"}
        )
        assert (400, "DIS.4200", []) == (
            reply.status_code,
            code_of(reply),
            emulator.records(stream),
        )

    def test_protobuf_put_and_get(self, emulator, stream, api):
        """The protobuf variant stores raw bytes and answers in protobuf."""
        body = pb.encode_put_records_request(
            stream,
            [
                pb.PutEntry(b"\x00proto\xff", partition_key="k1"),
                pb.PutEntry(b"two", partition_id="1"),
            ],
        )
        headers = {"Content-Type": "application/x-protobuf;charset=utf-8"}
        reply = api.call("POST", "/records", data=body, headers=headers)
        cursor = api.cursor(stream, "0")
        fetched = api.call("GET", "/records", params={"partition-cursor": cursor}, headers=headers)
        next_cursor, records = pb.decode_get_records_result(fetched.content)
        assert (
            (
                0,
                [
                    pb.ResultEntry("shardId-0000000000", "0"),
                    pb.ResultEntry("shardId-0000000001", "0"),
                ],
            ),
            [(b"\x00proto\xff", "k1", "0", "CreateTime")],
            True,
        ) == (
            pb.decode_put_records_result(reply.content),
            [(r.data, r.partition_key, r.sequence_number, r.timestamp_type) for r in records],
            bool(next_cursor),
        )

    def test_malformed_protobuf_is_4200(self, emulator, stream, api):
        """A truncated protobuf body is rejected with DIS.4200."""
        headers = {"Content-Type": "application/x-protobuf"}
        reply = api.call("POST", "/records", data=b"\x0a\xff\x01abc", headers=headers)
        assert (400, "DIS.4200") == (reply.status_code, code_of(reply))


class TestCursorsAndGetRecords:
    @pytest.fixture
    def filled(self, emulator, stream, api):
        api.put(stream, [{"data": b64(b"r%d" % i), "partition_id": "0"} for i in range(5)])
        return stream

    @pytest.mark.parametrize(
        ("cursor_type", "extra", "expected"),
        [
            ("TRIM_HORIZON", {}, [b"r0", b"r1", b"r2", b"r3", b"r4"]),
            ("AT_SEQUENCE_NUMBER", {"starting-sequence-number": "3"}, [b"r3", b"r4"]),
            ("AFTER_SEQUENCE_NUMBER", {"starting-sequence-number": "3"}, [b"r4"]),
            ("LATEST", {}, []),
            ("AT_TIMESTAMP", {"timestamp": "0"}, [b"r0", b"r1", b"r2", b"r3", b"r4"]),
            ("AT_TIMESTAMP", {"timestamp": str(2**50)}, []),
        ],
    )
    def test_cursor_types(self, api, filled, cursor_type, extra, expected):
        """Each cursor type starts reading where DIS-API section 5 says."""
        assert expected == api.read(filled, "0", cursor_type, **extra)

    def test_default_cursor_type_is_at_sequence_number(self, api, filled):
        """Without cursor-type the cursor starts at starting-sequence-number."""
        reply = api.call(
            "GET",
            "/cursors",
            params={"stream-name": filled, "partition-id": "0", "starting-sequence-number": "4"},
        )
        records = api.get(reply.json()["partition_cursor"]).json()["records"]
        assert ["r4"] == [base64.b64decode(r["data"]).decode() for r in records]

    def test_at_timestamp_uses_write_time(self, clocked, clock, http_session):
        """AT_TIMESTAMP starts at the first record written at or after the timestamp."""
        api = Api(clocked, http_session)
        api.put_data("test-stream", b"old", partition_id="0")
        clock.now += 10.0
        api.put_data("test-stream", b"new", partition_id="0")
        stamp = str(int((clock.now - 5.0) * 1000))
        assert [b"new"] == api.read("test-stream", "0", "AT_TIMESTAMP", timestamp=stamp)

    def test_latest_sees_later_records(self, api, filled):
        """A LATEST cursor returns the records written after it was issued."""
        cursor = api.cursor(filled, "0", "LATEST")
        api.put_data(filled, b"later", partition_id="0")
        assert ["bGF0ZXI="] == [r["data"] for r in api.get(cursor).json()["records"]]

    def test_record_fields(self, api, stream):
        """GetRecords entries carry sequence_number, data, timestamp, timestamp_type and the key."""
        api.put_data(stream, b"k", partition_key="k1")
        api.put_data(stream, b"n", partition_id="0")
        records = api.get(api.cursor(stream, "0")).json()["records"]
        assert [
            {"sequence_number", "data", "timestamp", "timestamp_type", "partition_key"},
            {"sequence_number", "data", "timestamp", "timestamp_type"},
        ] == [set(r) for r in records]

    def test_next_cursor_continues_and_is_always_present(self, api, filled):
        """next_partition_cursor continues after the records, and is present when none return."""
        first = api.get(api.cursor(filled, "0"), limit=2).json()
        second = api.get(first["next_partition_cursor"], limit=10).json()
        third = api.get(second["next_partition_cursor"]).json()
        assert (["0", "1"], ["2", "3", "4"], [], True) == (
            [r["sequence_number"] for r in first["records"]],
            [r["sequence_number"] for r in second["records"]],
            third["records"],
            bool(third["next_partition_cursor"]),
        )

    @pytest.mark.parametrize(("max_bytes", "count"), [(1, 0), (2, 1), (5, 2), (1000, 5)])
    def test_max_fetch_bytes(self, api, filled, max_bytes, count):
        """max_fetch_bytes caps the returned data; below one record's size nothing is returned."""
        reply = api.get(api.cursor(filled, "0"), max_fetch_bytes=max_bytes).json()
        assert count == len(reply["records"])

    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ({"cursor-type": "SOMEWHERE"}, "DIS.4215"),
            ({"cursor-type": "AT_SEQUENCE_NUMBER"}, "DIS.4216"),
            ({"cursor-type": "AT_SEQUENCE_NUMBER", "starting-sequence-number": "x"}, "DIS.4216"),
            ({"cursor-type": "AT_SEQUENCE_NUMBER", "starting-sequence-number": "6"}, "DIS.4224"),
            ({"cursor-type": "AFTER_SEQUENCE_NUMBER", "starting-sequence-number": "5"}, "DIS.4224"),
            ({"cursor-type": "TRIM_HORIZON", "partition-id": "9"}, "DIS.4302"),
            ({"cursor-type": "TRIM_HORIZON", "partition-id": "p"}, "DIS.4201"),
            ({"cursor-type": "TRIM_HORIZON", "stream-name": "nope"}, "DIS.4301"),
            ({"cursor-type": "AT_TIMESTAMP"}, "DIS.4200"),
        ],
    )
    def test_get_cursor_errors(self, api, filled, params, expected):
        """GetCursor rejects bad types, sequence numbers, partitions and streams by code."""
        query = {"stream-name": filled, "partition-id": "0", **params}
        reply = api.call("GET", "/cursors", params=query)
        assert (400, expected) == (reply.status_code, code_of(reply))

    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ({}, "DIS.4217"),
            ({"partition-cursor": "garbage!"}, "DIS.4217"),
            ({"partition-cursor": b64(b'{"stream": 1}')}, "DIS.4217"),
        ],
    )
    def test_bad_cursor_is_4217(self, api, filled, params, expected):
        """A missing or undecodable cursor is rejected with DIS.4217."""
        reply = api.call("GET", "/records", params=params)
        assert (400, expected) == (reply.status_code, code_of(reply))

    @pytest.mark.parametrize("limit", ["0", "10001", "ten"])
    def test_bad_limit_is_4200(self, api, filled, limit):
        """A GetRecords limit outside 1-10000 is rejected with DIS.4200."""
        reply = api.get(api.cursor(filled, "0"), limit=limit)
        assert (400, "DIS.4200") == (reply.status_code, code_of(reply))

    def test_cursor_expires_after_five_minutes(self, clocked, clock, http_session):
        """A cursor older than five minutes is rejected with DIS.4225."""
        api = Api(clocked, http_session)
        cursor = api.cursor("test-stream", "0")
        clock.now += 301.0
        reply = api.get(cursor)
        assert (400, "DIS.4225") == (reply.status_code, code_of(reply))

    def test_cursor_of_a_recreated_stream_is_invalid(self, emulator, api, filled):
        """A cursor of a deleted and recreated stream is rejected with DIS.4217."""
        cursor = api.cursor(filled, "0")
        emulator.delete_stream(filled)
        emulator.create_stream(filled, partitions=2)
        assert "DIS.4217" == code_of(api.get(cursor))


class TestWaiting:
    def test_wait_for_returns_records(self, emulator, stream, api):
        """wait_for returns every record once enough are stored."""
        api.put(stream, [{"data": b64(b"x")}] * 3)
        assert 3 == len(emulator.wait_for(stream, 3, timeout=1.0))

    def test_wait_for_wakes_on_arrival(self, emulator, stream, api):
        """wait_for wakes when records arrive from another thread."""
        sender = threading.Thread(target=api.put_data, args=(stream, b"late"))
        timer_started = time.perf_counter()
        sender.start()
        records = emulator.wait_for(stream, 1, timeout=5.0)
        sender.join()
        assert ([b"late"], True) == (
            [r.data for r in records],
            time.perf_counter() - timer_started < 5.0,
        )

    def test_wait_for_times_out(self, emulator, stream):
        """wait_for raises TimeoutError when too few records arrive."""
        with pytest.raises(TimeoutError, match="holds 0 records"):
            emulator.wait_for(stream, 1, timeout=0.05)

    def test_wait_for_a_stream_created_later(self, emulator, api):
        """wait_for also waits for a stream that does not exist yet."""

        def create_and_put() -> None:
            emulator.create_stream("later")
            api.put_data("later", b"x")

        worker = threading.Thread(target=create_and_put)
        worker.start()
        records = emulator.wait_for("later", 1, timeout=5.0)
        worker.join()
        assert [b"x"] == [r.data for r in records]

    def test_records_ordered_by_partition_then_sequence(self, emulator, stream, api):
        """records() lists partition 0 first, each partition by sequence number."""
        api.put(stream, [{"data": b64(b"%d" % i), "partition_id": str(i % 2)} for i in range(4)])
        assert [
            ("shardId-0000000000", "0"),
            ("shardId-0000000000", "1"),
            ("shardId-0000000001", "0"),
            ("shardId-0000000001", "1"),
        ] == [(r.partition_id, r.sequence_number) for r in emulator.records(stream)]


class TestFaults:
    def test_fail_next_queue(self, emulator, stream, api):
        """Queued failures are replied in order with their status, code and Retry-After."""
        emulator.fail_next(1, status=503, error_code="DIS.5001", retry_after=2)
        emulator.fail_next(1, status=429, error_code="APIG.0308", retry_after=0.5)
        replies = [api.put_data(stream, b"x") for _ in range(3)]
        assert [(503, "DIS.5001", "2"), (429, "APIG.0308", "0.5"), (200, None, None)] == [
            (
                r.status_code,
                code_of(r) if r.status_code != 200 else None,
                r.headers.get("Retry-After"),
            )
            for r in replies
        ]

    def test_failed_requests_store_nothing(self, emulator, stream, api):
        """A request answered by an injected failure stores no record."""
        emulator.fail_next(2)
        [api.put_data(stream, b"x") for _ in range(2)]
        assert [] == emulator.records(stream)

    def test_fail_next_targets_one_operation(self, emulator, stream, api):
        """Failures scripted for GetCursor leave PutRecords alone."""
        emulator.fail_next(operation="GetCursor")
        put = api.put_data(stream, b"x")
        cursor = api.cursor_reply(stream, "0", "TRIM_HORIZON")
        assert (200, 500) == (put.status_code, cursor.status_code)

    def test_fail_next_any_operation_includes_iam(self, emulator, http_session):
        """operation=None fails the next request of any kind, IAM included."""
        emulator.fail_next(operation=None, status=503, error_code="IAM.0001")
        reply = http_session.post(emulator.url + "/v3/auth/tokens", json=token_body(emulator))
        again = http_session.post(emulator.url + "/v3/auth/tokens", json=token_body(emulator))
        assert (503, 201) == (reply.status_code, again.status_code)

    def test_fail_rate_is_seeded(self, stream, http_session):
        """fail_rate fails a seeded random share of requests, the same share for the same seed."""
        outcomes = []
        for _ in range(2):
            with DISEmulator() as emu:
                emu.create_stream(stream)
                emu.fail_rate(0.5, seed=3)
                api = Api(emu, http_session)
                outcomes.append([api.put_data(stream, b"x").status_code for _ in range(20)])
        assert (outcomes[0], True) == (outcomes[1], 0 < outcomes[0].count(500) < 20)

    def test_fail_records_every_nth(self, emulator, stream, api):
        """every=2 fails every second record with DIS.4303 inside a 200 reply, unstored."""
        emulator.fail_records(every=2)
        reply = api.put_data(stream, b"1", b"2", b"3", b"4", partition_id="0")
        body = reply.json()
        assert (200, 2, [None, "DIS.4303", None, "DIS.4303"], [b"1", b"3"]) == (
            reply.status_code,
            body["failed_record_count"],
            [r.get("error_code") for r in body["records"]],
            [r.data for r in emulator.records(stream)],
        )

    def test_failed_entries_carry_a_message_and_no_sequence(self, emulator, stream, api):
        """A failed entry has error_code and error_message and no partition or sequence number."""
        emulator.fail_records(error_code="DIS.5250")
        entry = api.put_data(stream, b"x").json()["records"][0]
        assert (["error_code", "error_message"], "DIS.5250") == (sorted(entry), entry["error_code"])

    def test_fail_records_fraction_is_seeded_and_limited(self, stream, http_session):
        """fraction fails a seeded random share of records, stopping after limit failures."""
        patterns = []
        for _ in range(2):
            with DISEmulator() as emu:
                emu.create_stream(stream)
                emu.fail_records(fraction=0.5, seed=7, limit=5)
                body = Api(emu, http_session).put_data(stream, *[b"x"] * 40).json()
                patterns.append([r.get("error_code") for r in body["records"]])
        assert (patterns[0], 5) == (patterns[1], patterns[0].count("DIS.4303"))

    def test_expire_tokens(self, emulator, stream, api):
        """expire_tokens() turns existing tokens into 441 DIS.4114."""
        emulator.expire_tokens()
        reply = api.put_data(stream, b"x")
        assert (441, "DIS.4114") == (reply.status_code, code_of(reply))

    def test_delay_slows_the_reply(self, emulator, stream, api):
        """set_delay delays replies of the chosen operation by at least the delay."""
        emulator.set_delay(0.2, "PutRecords")
        started = time.perf_counter()
        api.put_data(stream, b"x")
        delayed = time.perf_counter() - started
        started = time.perf_counter()
        api.call("GET", "/streams")
        assert (True, True) == (delayed >= 0.2, time.perf_counter() - started < 0.2)

    def test_delayed_requests_overlap(self, emulator, stream):
        """Delayed requests on separate connections are served concurrently."""
        emulator.set_delay(0.3)
        token = emulator.issue_token()

        def call() -> None:
            with requests.Session() as session:
                session.get(
                    f"{emulator.url}/v2/{emulator.project_id}/streams",
                    headers={"X-Auth-Token": token},
                )

        workers = [threading.Thread(target=call) for _ in range(4)]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert time.perf_counter() - started < 1.0

    def test_delay_longer_than_the_timeout(self, emulator, stream, api):
        """A reply slower than the client timeout makes the client time out."""
        emulator.set_delay(0.5)
        with pytest.raises(requests.Timeout):
            api.session.get(f"{api.base}/streams", headers=api.headers, timeout=0.1)

    def test_drop_connections(self, emulator, stream, api):
        """A dropped request gets no reply, stores nothing and is logged with status 0."""
        emulator.drop_connections(1)
        with pytest.raises(requests.ConnectionError):
            api.put_data(stream, b"x")
        after = api.put_data(stream, b"y")
        assert ([0, 200], 200, [b"y"]) == (
            [e.status for e in emulator.requests],
            after.status_code,
            [r.data for r in emulator.records(stream)],
        )

    def test_rate_limits_throttle_records(self, emulator, stream, api):
        """With rate limits on, records beyond 1000/s on one COMMON partition fail with DIS.4303."""
        emulator.enforce_rate_limits()
        body = api.put(stream, [{"data": "eA==", "partition_id": "0"}] * 1001).json()
        assert (1, "DIS.4303") == (body["failed_record_count"], body["records"][-1]["error_code"])

    def test_rate_limits_count_bytes(self, emulator, stream, api):
        """With rate limits on, more than 1 MB/s on one COMMON partition fails with DIS.4303."""
        emulator.enforce_rate_limits()
        first = api.put_data(stream, b"a" * 600_000, partition_id="0").json()
        second = api.put_data(stream, b"b" * 600_000, partition_id="0").json()
        assert (0, 1) == (first["failed_record_count"], second["failed_record_count"])

    def test_clear_faults(self, emulator, stream, api):
        """clear_faults removes queued failures, record failures, delays, drops and rate limits."""
        emulator.fail_next(3)
        emulator.fail_rate(1.0)
        emulator.fail_records()
        emulator.set_delay(5.0)
        emulator.drop_connections(3)
        emulator.enforce_rate_limits()
        emulator.clear_faults()
        body = api.put(stream, [{"data": "eA==", "partition_id": "0"}] * 1001).json()
        assert 0 == body["failed_record_count"]

    @pytest.mark.parametrize(
        "script",
        [
            lambda emu: emu.fail_next(operation="Nope"),
            lambda emu: emu.fail_next(status=99),
            lambda emu: emu.fail_rate(1.5),
            lambda emu: emu.fail_records(every=0),
            lambda emu: emu.fail_records(fraction=-0.1),
            lambda emu: emu.set_delay(-1.0),
            lambda emu: emu.drop_connections(operation="Nope"),
        ],
    )
    def test_bad_fault_arguments_raise(self, emulator, script):
        """Invalid fault arguments raise ValueError."""
        with pytest.raises(ValueError, match=r"must|unknown"):
            script(emulator)


class TestRequestLog:
    def test_entries_describe_requests(self, emulator, stream, api):
        """The request log records operation, status, code, counts, sizes and the auth kind."""
        api.put_data(stream, b"abc", b"de")
        api.put_data("nope", b"x")
        entries = emulator.requests
        assert [
            ("POST", "PutRecords", 200, None, 2, 5, "token"),
            ("POST", "PutRecords", 400, "DIS.4301", 1, 1, "token"),
        ] == [
            (e.method, e.operation, e.status, e.error_code, e.record_count, e.data_bytes, e.auth)
            for e in entries
        ]
        assert entries[0].body_bytes > 0

    def test_get_records_counts_returned_records(self, emulator, stream, api):
        """A GetRecords entry counts the records it returned."""
        api.put_data(stream, b"abc", partition_id="0")
        api.get(api.cursor(stream, "0"))
        entry = emulator.requests[-1]
        assert ("GetRecords", 1, 3) == (entry.operation, entry.record_count, entry.data_bytes)

    def test_unauthenticated_entry(self, emulator, http_session):
        """A request without credentials is logged with auth "none"."""
        http_session.get(f"{emulator.url}/v2/{emulator.project_id}/streams")
        assert [("none", "DIS.4113")] == [(e.auth, e.error_code) for e in emulator.requests]

    def test_clear_requests(self, emulator, stream, api):
        """clear_requests empties the log."""
        api.put_data(stream, b"x")
        emulator.clear_requests()
        assert [] == emulator.requests

    def test_log_holds_no_secrets(self, emulator, stream, http_session):
        """Neither the log nor its entries contain tokens, passwords or secret keys."""
        reply = http_session.post(emulator.url + "/v3/auth/tokens", json=token_body(emulator))
        token = reply.headers["X-Subject-Token"]
        http_session.get(
            f"{emulator.url}/v2/{emulator.project_id}/streams", headers={"X-Auth-Token": token}
        )
        text = repr(emulator.requests)
        assert (False, False, False) == (
            token in text,
            emulator.password in text,
            emulator.sk in text,
        )

    def test_entry_type(self, emulator, stream, api):
        """Entries are RequestLogEntry values with a wall-clock time."""
        api.put_data(stream, b"x")
        entry = emulator.requests[0]
        assert (True, True) == (
            isinstance(entry, RequestLogEntry),
            abs(entry.time - time.time()) < 60,
        )


class TestRobustness:
    def test_unknown_path_is_404(self, emulator, api):
        """An unknown path yields 404 with a DIS-style body."""
        reply = api.session.get(emulator.url + "/nothing/here")
        assert (404, "APIG.0101") == (reply.status_code, code_of(reply))

    def test_wrong_method_is_405(self, emulator, api):
        """A known path with an unsupported method yields 405 with a DIS-style body."""
        reply = api.call("PUT", "/records")
        assert (405, "APIG.0101") == (reply.status_code, code_of(reply))

    def test_body_over_12_mb_is_413(self, emulator, stream, api):
        """A body over 12 MB is refused with 413 APIG.0201 and the server keeps serving."""
        reply = api.call(
            "POST",
            "/records",
            data=b"x" * (12 * MIB + 1),
            headers={"Content-Type": "application/json"},
        )
        assert (413, "APIG.0201", 200) == (
            reply.status_code,
            code_of(reply),
            api.put_data(stream, b"x").status_code,
        )

    def test_chunked_body_is_accepted(self, emulator, stream, api):
        """A chunked request body is read like a sized one."""
        body = json.dumps({"stream_name": stream, "records": [{"data": "eA=="}]}).encode()
        reply = api.call(
            "POST",
            "/records",
            data=iter([body[:10], body[10:]]),
            headers={"Content-Type": "application/json"},
        )
        assert (200, [b"x"]) == (reply.status_code, [r.data for r in emulator.records(stream)])

    @pytest.mark.parametrize(
        "raw",
        [
            b"GARBAGE\r\n\r\n",
            b"GET / HTTP/9.9\r\n\r\n",
            b"BREW /v2/x/records HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /v2/x/records HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
            b"POST /v2/x/records HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ],
    )
    def test_garbage_requests_get_an_error_and_the_server_survives(
        self, emulator, stream, api, raw, capfd
    ):
        """Unparsable requests get an error reply, print nothing, and the server keeps serving."""
        with socket.create_connection(("127.0.0.1", emulator.port), timeout=5) as sock:
            sock.sendall(raw)
            reply = sock.recv(65536)
        status = int(reply.split(b" ", 2)[1])
        assert (True, 200, "") == (
            400 <= status < 600,
            api.put_data(stream, b"x").status_code,
            capfd.readouterr().err,
        )

    def test_client_disconnecting_mid_body_is_harmless(self, emulator, stream, api, capfd):
        """A client that closes before sending its announced body does not disturb the server."""
        with socket.create_connection(("127.0.0.1", emulator.port), timeout=5) as sock:
            sock.sendall(
                b"POST /v2/x/records HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc"
            )
        assert (200, "") == (api.put_data(stream, b"x").status_code, capfd.readouterr().err)

    def test_concurrent_puts_keep_sequences_dense(self, emulator, stream):
        """Concurrent producers get unique, gap-free sequence numbers per partition."""
        token = emulator.issue_token()

        def produce() -> None:
            with requests.Session() as session:
                body = {
                    "stream_name": stream,
                    "records": [{"data": "eA==", "partition_id": "0"}] * 50,
                }
                for _ in range(5):
                    session.post(
                        f"{emulator.url}/v2/{emulator.project_id}/records",
                        json=body,
                        headers={"X-Auth-Token": token},
                    )

        workers = [threading.Thread(target=produce) for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert [str(i) for i in range(1000)] == [
            r.sequence_number for r in emulator.records(stream)
        ]
