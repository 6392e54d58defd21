"""Tests of dis_logging.auth: signer known-answer vectors, credentials, the token cache."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from typing import List, Optional, Tuple

import pytest
import requests

from dis_logging.auth import (
    AKSKAuth,
    AKSKSigner,
    Credentials,
    IssuedToken,
    LegacySigner,
    StaticToken,
    TokenAuth,
    TokenCache,
    iam_token_request,
    parse_iam_token_reply,
)
from dis_logging.errors import ConfigError, TransportError

# The inputs of DIS-API.md section 10.
AK = "EXAMPLEAK0000000001"
SK = "EXAMPLEsecretKEY000000000000000000000001"
PID = "0123456789abcdef0123456789abcdef"
HOST = "dis.cn-north-4.myhuaweicloud.com"
DATE = "20240102T030405Z"
BODY = b'{"stream_name":"demo-stream","records":[{"data":"aGVsbG8=","partition_key":"k1"}]}'
HEADERS = {
    "Content-Type": "application/json",
    "X-Project-Id": PID,
    "X-Sdk-Date": DATE,
    "Host": HOST,
}
FIXED_NOW = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def signature_of(authorization: str) -> str:
    return authorization.rpartition("Signature=")[2]


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class TestAKSKSigner:
    def test_worked_example_canonical_request_matches_the_reference(self):
        """The canonical request of the worked example is the one printed in DIS-API.md."""
        expected = "\n".join(
            [
                "POST",
                f"/v2/{PID}/records/",
                "",
                "content-type:application/json",
                f"host:{HOST}",
                f"x-project-id:{PID}",
                f"x-sdk-date:{DATE}",
                "",
                "content-type;host;x-project-id;x-sdk-date",
                "32c987734b682cbce859cf68d741889f30ae01ac120019e8618db518c852d664",
            ]
        )
        canonical, _ = AKSKSigner(AK, SK).canonical_request(
            "POST", f"https://{HOST}/v2/{PID}/records", HEADERS, BODY
        )
        assert expected == canonical

    def test_worked_example_string_to_sign_matches_the_reference(self):
        """The string to sign of the worked example is the one printed in DIS-API.md."""
        signer = AKSKSigner(AK, SK)
        canonical, _ = signer.canonical_request(
            "POST", f"https://{HOST}/v2/{PID}/records", HEADERS, BODY
        )
        expected = (
            "SDK-HMAC-SHA256\n20240102T030405Z\n"
            "9bfee873ca43092e05f8243d2f6b6075f5f3f8e8991d73e05579225fcd15a9a7"
        )
        assert expected == signer.string_to_sign(canonical, DATE)

    @pytest.mark.parametrize(
        ("method", "url", "headers", "body", "expected"),
        [
            pytest.param(
                "POST",
                f"https://{HOST}/v2/{PID}/records",
                HEADERS,
                BODY,
                "2967f08f2e421a785d314d1656babb4873f6bd4ddc778e5a193f76c34b3064e7",
                id="put-records",
            ),
            pytest.param(
                "GET",
                f"https://{HOST}/v2/{PID}/cursors?stream-name=demo-stream"
                "&partition-id=shardId-0000000000&cursor-type=AT_SEQUENCE_NUMBER"
                "&starting-sequence-number=0",
                HEADERS,
                b"",
                "fddb15f04d8b82f600c13ade33fe8cffa86dbeb0829904e069c5d31d88b5ac5d",
                id="get-cursor",
            ),
            pytest.param(
                "GET",
                f"https://{HOST}/v2/{PID}/records?partition-cursor=ab%2Bc%2Fd%3D%3D"
                "&max_fetch_bytes=1024",
                HEADERS,
                b"",
                "d1bb1f2bc46f0a487c71088ab91fc3dbb204b0f177f3572ce840fb2d917f9e43",
                id="get-records-encoded-cursor",
            ),
            pytest.param(
                "GET",
                f"http://127.0.0.1:8080/v2/{PID}/streams?limit=10",
                {"X-Sdk-Date": DATE},
                None,
                "1581b8705084c95c258c6f54cf3c6ad8f7be01256c2ff9c409f04802636e5a7c",
                id="list-streams-host-with-port",
            ),
        ],
    )
    def test_known_answer_vectors(self, method, url, headers, body, expected):
        """Each signature vector of DIS-API.md section 10 is reproduced exactly."""
        added = AKSKSigner(AK, SK).sign(method, url, headers, body)
        assert expected == signature_of(added["Authorization"])

    def test_canonical_query_of_the_cursor_vector_is_sorted_and_encoded(self):
        """The reference cursor query canonicalises to sorted, fully encoded pairs."""
        pairs = [("partition-cursor", "ab+c/d=="), ("max_fetch_bytes", "1024")]
        expected = "max_fetch_bytes=1024&partition-cursor=ab%2Bc%2Fd%3D%3D"
        assert expected == AKSKSigner.canonical_query(pairs)

    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            ("/v2/p/records", "/v2/p/records/"),
            ("/v2/p/records/", "/v2/p/records/"),
            ("/v2/p/streams/a%20b", "/v2/p/streams/a%20b/"),
            ("/v2/p/streams/a~b.c", "/v2/p/streams/a~b.c/"),
        ],
    )
    def test_canonical_uri_ends_with_a_slash_and_reencodes_segments(self, path, expected):
        """The canonical URI re-encodes each segment and always ends in '/'."""
        assert expected == AKSKSigner.canonical_uri(path)

    def test_authorization_header_has_the_v3_form(self):
        """The Authorization value names the algorithm, AK, signed headers and hex signature."""
        added = AKSKSigner(AK, SK).sign("POST", f"https://{HOST}/v2/{PID}/records", HEADERS, BODY)
        assert (
            "SDK-HMAC-SHA256 Access=EXAMPLEAK0000000001, "
            "SignedHeaders=content-type;host;x-project-id;x-sdk-date, "
            "Signature=2967f08f2e421a785d314d1656babb4873f6bd4ddc778e5a193f76c34b3064e7"
        ) == added["Authorization"]

    def test_missing_date_and_host_are_added_from_the_clock_and_url(self):
        """X-Sdk-Date comes from the injected clock and Host from the URL's netloc."""
        signer = AKSKSigner(AK, SK, now=lambda: FIXED_NOW)
        added = signer.sign("GET", "http://127.0.0.1:8080/v2/x/streams", {})
        assert ("20240102T030405Z", "127.0.0.1:8080") == (added["X-Sdk-Date"], added["Host"])

    def test_non_json_content_type_signs_an_unsigned_payload(self):
        """A protobuf body is signed with X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD."""
        headers = dict(HEADERS, **{"Content-Type": "application/x-protobuf;charset=utf-8"})
        signer = AKSKSigner(AK, SK)
        added = signer.sign("POST", f"https://{HOST}/v2/{PID}/records", headers, b"\x0a\x01x")
        canonical, signed = signer.canonical_request(
            "POST", f"https://{HOST}/v2/{PID}/records", {**headers, **added}, b"\x0a\x01x"
        )
        assert ("UNSIGNED-PAYLOAD", True) == (
            added["X-Sdk-Content-Sha256"],
            canonical.endswith("\nUNSIGNED-PAYLOAD") and "x-sdk-content-sha256" in signed,
        )

    def test_security_token_is_sent_and_signed(self):
        """A temporary credential's security token becomes a signed X-Security-Token header."""
        added = AKSKSigner(AK, SK, security_token="sec-tok").sign(
            "GET", f"https://{HOST}/v2/{PID}/streams", {"X-Sdk-Date": DATE}
        )
        assert ("sec-tok", "host;x-sdk-date;x-security-token") == (
            added["X-Security-Token"],
            added["Authorization"].split("SignedHeaders=")[1].split(",")[0],
        )

    def test_header_names_with_underscores_are_not_signed(self):
        """Headers whose name contains '_' stay out of the signed list."""
        _, signed = AKSKSigner(AK, SK).canonical_request(
            "GET", f"https://{HOST}/", {"X-Sdk-Date": DATE, "Host": HOST, "x_custom": "1"}
        )
        assert "host;x-sdk-date" == signed

    def test_a_different_secret_gives_a_different_signature(self):
        """The signature depends on the SK."""
        url = f"https://{HOST}/v2/{PID}/records"
        one = AKSKSigner(AK, SK).sign("POST", url, HEADERS, BODY)["Authorization"]
        other = AKSKSigner(AK, SK + "x").sign("POST", url, HEADERS, BODY)["Authorization"]
        assert signature_of(one) != signature_of(other)

    def test_repr_hides_the_secret_and_security_token(self):
        """The signer's repr shows the AK but neither the SK nor the security token."""
        text = repr(AKSKSigner(AK, SK, security_token="sec-tok-123"))
        assert (True, False, False) == (AK in text, SK in text, "sec-tok-123" in text)


PLAIN_SIGNATURE = "549fd4dd3262d9f95b13a126e6d8d7fada2188cfdc1853f79a5251afe729247d"
DERIVED_SIGNATURE = "673997c2fbbefa0038a436c689adcf39832ea1ed6b6b1d96ae80e93b709e8f88"


class TestLegacySigner:
    URL = f"https://{HOST}/v2/{PID}/records/"

    @pytest.mark.parametrize(
        ("derived", "algorithm", "expected"),
        [
            (False, "SDK-HMAC-SHA256", PLAIN_SIGNATURE),
            (True, "V11-HMAC-SHA256", DERIVED_SIGNATURE),
        ],
    )
    def test_known_answer_vectors(self, derived, algorithm, expected):
        """The plain and derived vectors of DIS-API.md section 11 are reproduced exactly."""
        added = LegacySigner(AK, SK, "cn-north-4", derived=derived).sign(
            "POST", self.URL, BODY, sdk_date=DATE
        )
        assert (
            f"{algorithm} Credential={AK}/20240102/cn-north-4/dis/sdk_request, "
            f"SignedHeaders=host;x-sdk-date, Signature={expected}"
        ) == added["Authorization"]

    def test_derived_secret_matches_the_reference(self):
        """The derived form's secret for the example day is the one in DIS-API.md."""
        secret = LegacySigner(AK, SK, "cn-north-4").derived_secret("20240102")
        assert "5122cb1a3cb28fb98d582804ff258eb2accfe63be98e32629ab27f10aaea7ccf" == secret

    def test_host_is_signed_without_the_port(self):
        """A port in the URL does not change the signature (the legacy SDK strips it)."""
        signer = LegacySigner(AK, SK, "cn-north-4")
        with_port = signer.sign(
            "POST", f"https://{HOST}:443/v2/{PID}/records/", BODY, sdk_date=DATE
        )
        assert signer.sign("POST", self.URL, BODY, sdk_date=DATE) == with_port

    def test_empty_path_segments_are_dropped(self):
        """The legacy canonical path drops empty and '.' segments and applies '..'."""
        assert "/v2/p/records/" == LegacySigner.canonical_uri("//v2/./p/x/../records")

    def test_empty_query_value_is_written_as_the_bare_name(self):
        """A query parameter without a value canonicalises to its name alone."""
        assert "a&b=1" == LegacySigner.canonical_query([("b", "1"), ("a", "")])

    def test_date_comes_from_the_clock_when_not_given(self):
        """Without sdk_date the injected clock sets X-Sdk-Date."""
        signer = LegacySigner(AK, SK, "cn-north-4", now=lambda: FIXED_NOW)
        assert DATE == signer.sign("GET", self.URL)["X-Sdk-Date"]

    def test_repr_hides_the_secret(self):
        """The legacy signer's repr does not show the SK."""
        assert SK not in repr(LegacySigner(AK, SK, "cn-north-4"))


class TestCredentials:
    @pytest.mark.parametrize(
        ("kwargs", "kind"),
        [
            ({"token": "t"}, "token"),
            ({"token": lambda: "t", "ak": AK, "sk": SK}, "token"),
            ({"ak": AK, "sk": SK}, "aksk"),
            ({"ak": AK, "sk": SK, "security_token": "s"}, "aksk"),
            ({"username": "u", "password": "p", "domain_name": "d"}, "password"),
            ({}, "none"),
        ],
    )
    def test_kind_follows_the_precedence(self, kwargs, kind):
        """token wins over AK/SK, which wins over a password."""
        assert kind == Credentials(**kwargs).kind

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"ak": AK}, "sk"),
            ({"sk": SK}, "ak"),
            ({"security_token": "s"}, "security_token"),
            ({"username": "u", "password": "p"}, "domain_name"),
            ({"username": "u", "domain_name": "d"}, "password"),
            ({"password": "p", "domain_name": "d"}, "username"),
            ({"ak": "", "sk": SK}, "ak"),
            ({"token": ""}, "token"),
        ],
    )
    def test_incomplete_sets_raise_config_error_naming_the_field(self, kwargs, field):
        """Half of a credential pair raises ConfigError naming the missing setting."""
        with pytest.raises(ConfigError) as info:
            Credentials(**kwargs)
        assert field == info.value.field

    @pytest.mark.parametrize(
        ("kwargs", "field", "message"),
        [
            ({"ak": AK, "sk": 98765432}, "sk", "must be a string, got int"),
            ({"ak": AK, "sk": b"98765432"}, "sk", "must be a string, got bytes"),
            ({"ak": AK, "sk": SK, "security_token": 98765432}, "security_token", "got int"),
            ({"username": "u", "password": 98765432, "domain_name": "d"}, "password", "got int"),
            ({"token": 98765432}, "token", "must be a string or a callable, got int"),
            ({"ak": AK, "sk": SK, "token": 98765432}, "token", "got int"),
        ],
    )
    def test_a_value_of_another_type_is_a_config_error_without_the_value(
        self, kwargs, field, message
    ):
        """DISClient passes its credentials here: an SK or token of another type (a number from
        a YAML file) raised AttributeError at construction or, for a token, at the first
        request; now a ConfigError naming the setting and the type, never the value."""
        with pytest.raises(ConfigError) as info:
            Credentials(**kwargs)
        assert (field, True, False) == (
            info.value.field,
            message in str(info.value),
            "98765432" in str(info.value),
        )

    def test_repr_shows_no_secret(self):
        """The repr shows the AK, user and domain but no SK, password, token or security token."""
        creds = Credentials(
            ak=AK,
            sk=SK,
            security_token="sec-tok-123",
            username="user1",
            password="pw-456",
            domain_name="acct",
            token="tok-789",
        )
        text = repr(creds)
        assert [] == [s for s in (SK, "sec-tok-123", "pw-456", "tok-789") if s in text]
        assert [] == [s for s in (AK, "user1", "acct") if s not in text]

    def test_secrets_lists_every_secret_string(self):
        """secrets() returns the values to redact from messages."""
        creds = Credentials(ak=AK, sk=SK, security_token="st", token="tk")
        assert {SK, "st", "tk"} == set(creds.secrets())


class TestIAMRequest:
    def test_body_scopes_the_token_to_a_project_id(self):
        """The password body names user, password, domain and the project id."""
        body = json.loads(iam_token_request("u", "p", "d", project_id="pid"))
        assert {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {"user": {"name": "u", "password": "p", "domain": {"name": "d"}}},
                },
                "scope": {"project": {"id": "pid"}},
            }
        } == body

    def test_body_may_scope_by_project_name(self):
        """With project_name the scope names the project (the region id)."""
        body = json.loads(iam_token_request("u", "p", "d", project_name="cn-north-4"))
        assert {"name": "cn-north-4"} == body["auth"]["scope"]["project"]

    @pytest.mark.parametrize("scope", [{}, {"project_id": "a", "project_name": "b"}])
    def test_exactly_one_scope_is_required(self, scope):
        """Neither or both scopes raise ValueError."""
        with pytest.raises(ValueError, match="exactly one"):
            iam_token_request("u", "p", "d", **scope)

    def test_reply_lifetime_is_expiry_minus_issue_time(self):
        """The lifetime comes from the server's issued_at and expires_at."""
        body = {
            "token": {
                "issued_at": "2024-01-03T03:04:05.000000Z",
                "expires_at": "2024-01-04T03:04:05.000000Z",
            }
        }
        assert IssuedToken("tok", 86400.0) == parse_iam_token_reply("tok", body)

    @pytest.mark.parametrize(
        "expires", ["2024-01-02T04:04:05+00:00", "2024-01-02T04:04:05", "2024-01-02T04:04:05.5Z"]
    )
    def test_other_iso_forms_of_the_expiry_are_read_as_utc(self, expires):
        """Offsets, naive times and short fractions in expires_at are read as UTC."""
        lifetime = parse_iam_token_reply("tok", {"token": {"expires_at": expires}}, now=FIXED_NOW)
        assert 3600.0 == pytest.approx(lifetime.lifetime, abs=0.5)

    def test_reply_without_issue_time_counts_from_now(self):
        """Without issued_at the lifetime runs from the given current time."""
        body = {"token": {"expires_at": "2024-01-02T04:04:05Z"}}
        assert 3600.0 == parse_iam_token_reply("tok", body, now=FIXED_NOW).lifetime

    @pytest.mark.parametrize(
        ("header", "body"),
        [
            (None, {"token": {"expires_at": "2024-01-02T04:04:05Z"}}),
            ("tok", {"token": {}}),
            ("tok", {"token": {"expires_at": "tomorrow"}}),
            ("tok", ["not", "an", "object"]),
        ],
    )
    def test_unusable_replies_raise_value_error(self, header, body):
        """A reply without the header or a readable expiry raises ValueError."""
        with pytest.raises(ValueError, match="IAM reply"):
            parse_iam_token_reply(header, body)

    def test_a_repeated_token_header_is_refused(self):
        """Two X-Subject-Token headers (joined as "a, b" by the HTTP stack) are not one token:
        sending "a, b" as X-Auth-Token failed, and the single tokens were not masked."""
        body = {"token": {"expires_at": "2024-01-02T04:04:05Z"}}
        with pytest.raises(ValueError, match="more than one X-Subject-Token header"):
            parse_iam_token_reply("MIIfirst, MIIsecond", body)

    def test_issued_token_repr_hides_the_value(self):
        """An IssuedToken's repr shows its lifetime but not the token."""
        assert "secret-token" not in repr(IssuedToken("secret-token", 10.0))


class TestTokenCache:
    def make(
        self, lifetime: float = 86400.0, clock: Optional[FakeClock] = None
    ) -> Tuple[TokenCache, List[int]]:
        calls: List[int] = []

        def fetch() -> IssuedToken:
            calls.append(1)
            return IssuedToken(f"tok-{len(calls)}", lifetime)

        return TokenCache(fetch, clock=clock or FakeClock()), calls

    def test_a_waiter_gives_up_at_its_wait_limit(self):
        """A thread waiting for another thread's fetch raises TransportError at its wait limit."""
        release = threading.Event()
        fetching = threading.Event()

        def slow_fetch() -> IssuedToken:
            fetching.set()
            release.wait(10.0)
            return IssuedToken("tok", 60.0)

        cache = TokenCache(slow_fetch, clock=FakeClock(), wait_limit=lambda: 0.05)
        leader = threading.Thread(target=cache.get_token)
        leader.start()
        try:
            assert fetching.wait(5.0)
            with pytest.raises(TransportError) as info:
                cache.get_token()
        finally:
            release.set()
            leader.join(5.0)
        assert (True, "tok") == (info.value.retryable, cache.get_token())

    def test_token_is_fetched_once_and_reused(self):
        """Repeated calls within the TTL return the cached token without fetching."""
        cache, calls = self.make()
        assert (["tok-1"] * 3, 1) == ([cache.get_token() for _ in range(3)], len(calls))

    @pytest.mark.parametrize(("lifetime", "ttl"), [(86400.0, 82800.0), (60.0, 54.0), (0.0, 0.0)])
    def test_ttl_keeps_a_margin_of_an_hour_or_a_tenth(self, lifetime, ttl):
        """A 24 h token is replaced an hour early; a short one a tenth of its lifetime early."""
        cache, _ = self.make()
        assert ttl == pytest.approx(cache.ttl_for(lifetime))

    def test_token_is_refreshed_ahead_of_expiry(self):
        """Once the clock passes the TTL a new token is fetched, before the old one expires."""
        clock = FakeClock()
        cache, _ = self.make(lifetime=60.0, clock=clock)
        first = cache.get_token()
        clock.now += 53.9
        still = cache.get_token()
        clock.now += 0.2
        assert ("tok-1", "tok-1", "tok-2") == (first, still, cache.get_token())

    @pytest.mark.parametrize("lifetime", [0.0, -3600.0])
    def test_a_token_without_lifetime_is_kept_for_the_retry_interval(self, lifetime):
        """A token that arrives expired is used and reported once; IAM is asked again after the
        retry interval, not for every call; invalidate() (DIS refused it) still fetches at once,
        and a good token later clears the report."""
        clock = FakeClock()
        reports: List[str] = []
        lifetimes = [lifetime, lifetime, lifetime, 3600.0, lifetime]
        calls: List[int] = []

        def fetch() -> IssuedToken:
            calls.append(1)
            return IssuedToken(f"tok-{len(calls)}", lifetimes[len(calls) - 1])

        cache = TokenCache(fetch, clock=clock, report=reports.append, retry_interval=30.0)
        seen = []
        for _ in range(10):
            seen.append(cache.get_token())
            clock.now += 2.9
        clock.now += 1.0  # 30 s after the first fetch
        seen.append(cache.get_token())
        cache.invalidate("tok-2")
        seen.append(cache.get_token())
        assert (["tok-1"] * 10 + ["tok-2", "tok-3"], 1) == (seen, len(reports))
        cache.invalidate()
        cache.get_token()  # a token with a lifetime: the next stale one is reported again
        cache.invalidate()
        cache.get_token()
        assert 2 == len(reports)
        assert "expired on arrival" in reports[0]

    def test_invalidate_forgets_the_rejected_token(self):
        """invalidate(token) with the cached token makes the next call fetch."""
        cache, _ = self.make()
        cache.invalidate(cache.get_token())
        assert "tok-2" == cache.get_token()

    def test_invalidate_of_a_stale_token_keeps_the_newer_one(self):
        """A rejection of an already replaced token does not cause another fetch."""
        cache, _ = self.make()
        old = cache.get_token()
        cache.invalidate(old)
        cache.get_token()
        cache.invalidate(old)
        assert ("tok-2", 2) == (cache.get_token(), cache.fetch_count)

    def test_invalidate_without_a_token_forgets_anything(self):
        """invalidate() with no argument drops whatever is cached."""
        cache, _ = self.make()
        cache.get_token()
        cache.invalidate()
        assert "tok-2" == cache.get_token()

    def test_concurrent_callers_share_one_fetch(self):
        """Threads asking while a fetch is running wait for it instead of fetching too."""
        started, release = threading.Event(), threading.Event()
        calls = []

        def fetch():
            calls.append(1)
            started.set()
            assert release.wait(5.0)
            return IssuedToken(f"tok-{len(calls)}", 3600.0)

        cache = TokenCache(fetch, clock=FakeClock())
        results = []
        threads = [
            threading.Thread(target=lambda: results.append(cache.get_token())) for _ in range(8)
        ]
        threads[0].start()
        assert started.wait(5.0)
        for thread in threads[1:]:
            thread.start()
        release.set()
        for thread in threads:
            thread.join(5.0)
        assert (["tok-1"] * 8, 1) == (results, len(calls))

    def test_a_failed_fetch_reaches_every_waiter_and_is_retried_next_time(self):
        """A fetch's exception reaches every waiting thread, and the next call fetches again."""
        started, release = threading.Event(), threading.Event()
        outcomes: List[str] = []

        def fetch():
            started.set()
            assert release.wait(5.0)
            if len(outcomes) < 3:
                raise RuntimeError("iam down")
            return IssuedToken("tok", 3600.0)

        cache = TokenCache(fetch, clock=FakeClock())

        def call():
            try:
                cache.get_token()
            except RuntimeError as exc:
                outcomes.append(str(exc))

        threads = [threading.Thread(target=call) for _ in range(3)]
        threads[0].start()
        assert started.wait(5.0)
        for thread in threads[1:]:
            thread.start()
        release.set()
        for thread in threads:
            thread.join(5.0)
        assert (["iam down"] * 3, "tok") == (outcomes, cache.get_token())

    def test_repr_hides_the_token(self):
        """The cache's repr tells whether a token is cached, not what it is."""
        cache, _ = self.make()
        cache.get_token()
        assert "tok-1" not in repr(cache)


class TestStaticToken:
    def test_string_token_is_returned_as_is(self):
        """A fixed token string is handed out unchanged and cannot be refreshed."""
        source = StaticToken("fixed")
        source.invalidate("fixed")
        assert ("fixed", False) == (source.get_token(), source.is_refreshable)

    def test_callable_is_asked_for_every_token(self):
        """A callable token source is called on each get_token."""
        values = iter(["a", "b"])
        source = StaticToken(lambda: next(values))
        assert (["a", "b"], True) == (
            [source.get_token(), source.get_token()],
            source.is_refreshable,
        )

    def test_repr_hides_the_token(self):
        """The repr names the kind of source only."""
        assert "StaticToken(str)" == repr(StaticToken("hidden-value"))


class TestRequestsAuth:
    def prepared(self) -> requests.PreparedRequest:
        return requests.Request(
            "POST",
            f"http://127.0.0.1:8080/v2/{PID}/records",
            data=BODY,
            headers={"Content-Type": "application/json", "X-Project-Id": PID},
        ).prepare()

    def test_token_auth_sets_x_auth_token(self):
        """TokenAuth puts the source's token into X-Auth-Token."""
        request = TokenAuth(StaticToken("tok-1"))(self.prepared())
        assert "tok-1" == request.headers["X-Auth-Token"]

    def test_aksk_auth_signs_the_prepared_request(self):
        """AKSKAuth adds Host, X-Sdk-Date and an Authorization matching the pure signer's."""
        signer = AKSKSigner(AK, SK, now=lambda: FIXED_NOW)
        request = AKSKAuth(signer)(self.prepared())
        expected = signer.sign(
            "POST",
            f"http://127.0.0.1:8080/v2/{PID}/records",
            {"Content-Type": "application/json", "X-Project-Id": PID},
            BODY,
        )
        assert expected == {name: request.headers[name] for name in expected}

    def test_aksk_auth_leaves_user_agent_unsigned(self):
        """Headers the HTTP stack may rewrite, such as User-Agent, are not signed."""
        request = AKSKAuth(AKSKSigner(AK, SK))(self.prepared())
        signed = request.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0]
        assert "content-type;host;x-project-id;x-sdk-date" == signed

    def test_auth_reprs_hide_secrets(self):
        """The auth objects' reprs show no SK or token."""
        text = repr(AKSKAuth(AKSKSigner(AK, SK))) + repr(TokenAuth(StaticToken("tok-secret")))
        assert (False, False) == (SK in text, "tok-secret" in text)
