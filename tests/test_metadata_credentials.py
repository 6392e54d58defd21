"""Temporary credentials from the ECS/CCE metadata service (DIS-API.md section 13).

Every test points the metadata endpoint at the emulator (or uses a fake fetch): nothing here ever
contacts 169.254.169.254.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import urllib.request

import pytest

from dis_logging import cli
from dis_logging._urls import check_metadata_endpoint
from dis_logging.auth import (
    AKSKSigner,
    TemporaryCredentialCache,
    TemporaryCredentials,
    parse_metadata_credentials,
)
from dis_logging.client import DISClient
from dis_logging.config import HandlerConfig
from dis_logging.emulator import DISEmulator
from dis_logging.emulator.auth import BAD_SECURITY_TOKEN
from dis_logging.errors import AuthError, ConfigError, ServerError, TransportError
from dis_logging.handler import DISHandler

NOW = 1_800_000_000.0


class FakeClock:
    def __init__(self, now=NOW):
        self.now = now

    def __call__(self):
        return self.now


def credentials(n, expires_at):
    return TemporaryCredentials(f"AK{n}", f"secret-{n}", f"token-{n}", expires_at)


class Fetcher:
    """Hands out numbered sets valid for ``lifetime`` seconds, or raises what it is told to."""

    def __init__(self, clock, lifetime=1000.0):
        self.clock, self.lifetime = clock, lifetime
        self.calls = 0
        self.error = None

    def __call__(self):
        self.calls += 1
        if self.error is not None:
            raise self.error
        return credentials(self.calls, self.clock() + self.lifetime)


class TestTemporaryCredentialCache:
    def make(self, lifetime=1000.0, **options):
        clock = FakeClock()
        fetch = Fetcher(clock, lifetime)
        reports: list[str] = []
        cache = TemporaryCredentialCache(fetch, clock=clock, report=reports.append, **options)
        return cache, clock, fetch, reports

    def test_fetches_once_and_caches(self):
        """The first get fetches; later ones reuse the set until the refresh point."""
        cache, clock, fetch, _ = self.make()
        first = cache.get()
        clock.now += 799.0  # lifetime 1000 s: refreshed 200 s (20 %) before expiry
        assert (first, first, 1) == (cache.get(), cache.get(), fetch.calls)

    def test_refreshes_before_expiry(self):
        """Once the margin before expires_at is reached, a new set is fetched."""
        cache, clock, fetch, _ = self.make()
        first = cache.get()
        clock.now += 801.0
        second = cache.get()
        assert ("AK1", "AK2", 2) == (first.ak, second.ak, fetch.calls)
        assert second.expires_at > first.expires_at

    def test_long_lifetime_uses_ten_minutes_margin(self):
        """For a day-long set the refresh comes ten minutes before expiry."""
        cache, clock, fetch, _ = self.make(lifetime=86400.0)
        cache.get()
        clock.now += 86400.0 - 601.0
        cache.get()
        clock.now += 2.0
        cache.get()
        assert 2 == fetch.calls

    def test_failed_refresh_keeps_the_set_and_reports_once(self):
        """A failing refresh keeps the current set until it expires and is reported once."""
        cache, clock, fetch, reports = self.make()
        first = cache.get()
        fetch.error = TransportError("metadata credentials to 169.254.169.254 failed: refused")
        clock.now += 780.0
        seen = []
        for _ in range(6):
            clock.now += 30.0  # from 810 s to 960 s: due for refresh, not yet expired
            seen.append(cache.get())
        assert [first] * 6 == seen
        assert 1 == len(reports)
        assert "refresh failed (TransportError" in reports[0]
        assert "expires in" in reports[0]
        assert fetch.calls > 2  # retried, not given up

    def test_a_set_expired_on_arrival_is_not_fetched_for_every_request(self):
        """A set that has expired when it arrives (a clock running ahead) is used, reported
        once, and asked for again only after the retry interval, not for every request."""
        cache, clock, fetch, reports = self.make(lifetime=-3600.0, retry_interval=30.0)
        seen = []
        for _ in range(20):
            seen.append(cache.get().ak)
            clock.now += 1.0
        clock.now += 10.0  # 30 s after the first fetch
        seen.append(cache.get().ak)
        assert (["AK1"] * 20 + ["AK2"], 2) == (seen, fetch.calls)
        assert 1 == len(reports)
        assert "expired 3600 s ago by this machine's clock" in reports[0]

    def test_an_expired_set_rejected_by_dis_is_replaced_at_once(self):
        """invalidate() still fetches at once after a set that arrived expired."""
        cache, _, fetch, _ = self.make(lifetime=-1.0)
        cache.get()
        cache.invalidate("AK1")
        assert ("AK2", 2) == (cache.get().ak, fetch.calls)

    def test_failure_after_expiry_raises(self):
        """Once the kept set has expired, the fetch error reaches the caller."""
        cache, clock, fetch, _ = self.make()
        cache.get()
        fetch.error = ServerError("metadata credentials failed", status=500)
        clock.now += 1000.0
        with pytest.raises(ServerError):
            cache.get()

    def test_first_fetch_failure_raises(self):
        """Without any set yet, a failing fetch raises and nothing is reported."""
        cache, _, fetch, reports = self.make()
        fetch.error = TransportError("refused")
        with pytest.raises(TransportError):
            cache.get()
        assert [] == reports

    def test_success_rearms_the_report(self):
        """After a successful refresh, the next run of failures is reported again."""
        cache, clock, fetch, reports = self.make()
        cache.get()
        clock.now += 810.0
        fetch.error = TransportError("down")
        cache.get()
        fetch.error = None
        clock.now += 100.0
        assert "AK" in cache.get().ak
        clock.now += 810.0
        fetch.error = TransportError("down again")
        cache.get()
        assert 2 == len(reports)

    def test_invalidate_forces_a_refresh_for_the_rejected_key(self):
        """invalidate(ak) of the held set fetches anew; another key's changes nothing."""
        cache, _, _, _ = self.make()
        first = cache.get()
        cache.invalidate("AK-other")
        assert first is cache.get()
        cache.invalidate(first.ak)
        assert "AK2" == cache.get().ak

    def test_other_threads_use_the_current_set_during_a_refresh(self):
        """While one thread refreshes, another with a valid set does not wait for it."""
        clock = FakeClock()
        entered, release = threading.Event(), threading.Event()
        sets = iter([credentials(1, NOW + 1000.0), credentials(2, NOW + 2000.0)])

        def fetch():
            value = next(sets)
            if value.ak == "AK2":
                entered.set()
                assert release.wait(10.0)
            return value

        cache = TemporaryCredentialCache(fetch, clock=clock)
        cache.get()
        clock.now += 900.0
        refresher = threading.Thread(target=cache.get)
        refresher.start()
        try:
            assert entered.wait(10.0)
            assert "AK1" == cache.get().ak  # answered at once, while the fetch is blocked
        finally:
            release.set()
            refresher.join(10.0)
        assert "AK2" == cache.get().ak

    def test_repr_shows_no_secret(self):
        """Neither the cache nor a set shows the secret key or the token."""
        cache, _, _, _ = self.make()
        held = cache.get()
        text = repr(cache) + repr(held)
        assert ("secret-1" not in text, "token-1" not in text, "AK1" in text) == (True,) * 3


class TestParse:
    def test_reads_the_documented_reply(self):
        """The reply of DIS-API.md section 13 gives the three values and the expiry."""
        body = {
            "credential": {
                "access": "AK",
                "secret": "SK",
                "securitytoken": "TOKEN",
                "expires_at": "2026-12-06T02:45:24.131000Z",
            }
        }
        assert TemporaryCredentials("AK", "SK", "TOKEN", 1796525124.131) == (
            parse_metadata_credentials(body)
        )

    @pytest.mark.parametrize("missing", ["access", "secret", "securitytoken", "expires_at"])
    def test_missing_value(self, missing):
        """A reply without one of the values is refused, naming the field but no value."""
        credential = {"access": "A", "secret": "S-VALUE", "securitytoken": "T", "expires_at": "x"}
        credential[missing] = ""
        with pytest.raises(ValueError, match=f"credential.{missing}") as info:
            parse_metadata_credentials({"credential": credential})
        assert "S-VALUE" not in str(info.value)

    @pytest.mark.parametrize("body", [None, [], {"credential": "x"}, {"other": {}}])
    def test_malformed_body(self, body):
        """A body without a credential object is refused."""
        with pytest.raises(ValueError, match="no credential"):
            parse_metadata_credentials(body)


class TestEndpointCheck:
    @pytest.mark.parametrize(
        "url",
        [
            "http://169.254.169.254",
            "http://169.254.169.254/",
            "http://127.0.0.1:8080",
            "http://[::1]:9",
            "https://metadata.example",
        ],
    )
    def test_accepted(self, url):
        """The documented address and loopback over http, anything over https, are accepted."""
        assert url.rstrip("/") == check_metadata_endpoint(url)

    @pytest.mark.parametrize(
        "url", ["http://10.0.0.1", "http://169.254.169.253", "ftp://169.254.169.254", "", 5]
    )
    def test_refused(self, url):
        """Plain http to any other host, other schemes and non-URLs are refused."""
        with pytest.raises(ConfigError) as info:
            check_metadata_endpoint(url)
        assert "metadata_endpoint" == info.value.field

    @pytest.mark.parametrize(
        "url",
        [
            "http://169.254.169.254/openstack/latest/securitykey",
            "http://127.0.0.1:8080/openstack/latest/securitykey/",
            "https://metadata.example/openstack/latest/securitykey",
        ],
    )
    def test_full_credentials_url_is_cut_to_the_base(self, url):
        """The URL of the credentials themselves, as the docs print it, gives its base URL."""
        base = url.rstrip("/")[: -len("/openstack/latest/securitykey")]
        assert base == check_metadata_endpoint(url)

    def test_plain_http_message_does_not_suggest_an_opt_in_that_does_not_apply(self):
        """The refusal names the hosts http:// is allowed for, not allow_insecure_http."""
        with pytest.raises(ConfigError) as info:
            HandlerConfig.from_kwargs(
                {},
                stream_name="s",
                endpoint="https://dis.example",
                project_id="p",
                metadata_credentials=True,
                metadata_endpoint="http://10.1.2.3",
                allow_insecure_http=True,
            )
        assert "metadata_endpoint" == info.value.field
        assert "169.254.169.254 and loopback" in str(info.value)
        assert "allow_insecure_http" not in str(info.value)


class TestConfig:
    def test_default_endpoint_is_the_link_local_address(self):
        """metadata_credentials=True alone uses http://169.254.169.254 (nothing is contacted)."""
        config = HandlerConfig.from_kwargs(
            {},
            stream_name="s",
            endpoint="https://dis.example",
            project_id="p",
            metadata_credentials=True,
        )
        assert ("http://169.254.169.254", "metadata") == (
            config.metadata_endpoint,
            config.connection.credential_kind,
        )

    def test_environment_switch(self):
        """DIS_LOGGING_METADATA_CREDENTIALS=true and _ENDPOINT enable it without keywords."""
        env = {
            "DIS_LOGGING_METADATA_CREDENTIALS": "true",
            "DIS_LOGGING_METADATA_ENDPOINT": "http://127.0.0.1:8999",
            "HUAWEICLOUD_SDK_AK": "ignored-ak",
            "HUAWEICLOUD_SDK_SK": "ignored-sk",
        }
        config = HandlerConfig.from_kwargs(
            env, stream_name="s", endpoint="https://dis.example", project_id="p"
        )
        assert (True, "http://127.0.0.1:8999", None) == (
            config.metadata_credentials,
            config.metadata_endpoint,
            config.ak,
        )

    def test_keyword_false_wins_over_environment(self):
        """metadata_credentials=False ignores the environment switch."""
        env = {
            "DIS_LOGGING_METADATA_CREDENTIALS": "true",
            "HUAWEICLOUD_SDK_AK": "a",
            "HUAWEICLOUD_SDK_SK": "b",
        }
        config = HandlerConfig.from_kwargs(
            env,
            stream_name="s",
            endpoint="https://dis.example",
            project_id="p",
            metadata_credentials="false",
        )
        assert (False, None, "a") == (
            config.metadata_credentials,
            config.metadata_endpoint,
            config.ak,
        )

    @pytest.mark.parametrize(
        ("options", "field"),
        [
            ({"metadata_credentials": True, "ak": "a", "sk": "b"}, "ak"),
            ({"metadata_credentials": True, "token": "t"}, "token"),
            (
                {"metadata_credentials": True, "metadata_endpoint": "http://10.1.2.3"},
                "metadata_endpoint",
            ),
            (
                {"metadata_endpoint": "http://127.0.0.1:1", "ak": "a", "sk": "b"},
                "metadata_endpoint",
            ),
            ({"metadata_credentials": "maybe"}, "metadata_credentials"),
        ],
    )
    def test_refused(self, options, field):
        """Other credentials, an unsafe endpoint, or an endpoint without the switch are refused."""
        with pytest.raises(ConfigError) as info:
            HandlerConfig.from_kwargs(
                {}, stream_name="s", endpoint="https://dis.example", project_id="p", **options
            )
        assert field == info.value.field


def fetch_securitykey(emulator):
    url = emulator.metadata_endpoint + emulator.metadata_path
    with urllib.request.urlopen(url, timeout=10.0) as reply:
        return json.loads(reply.read())


def put(emulator, stream, headers_signer, body=None):
    """PutRecords signed by ``headers_signer``; returns (status, error_code)."""
    body = (
        body
        or json.dumps(
            {"stream_name": stream, "records": [{"data": "aGk=", "partition_key": "k"}]}
        ).encode()
    )
    url = f"{emulator.url}/v2/{emulator.project_id}/records"
    headers = {"Content-Type": "application/json", "X-Project-Id": emulator.project_id}
    headers.update(headers_signer("POST", url, headers, body))
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10.0) as reply:
            return reply.status, None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()).get("error_code")


class TestEmulatorRoute:
    def test_serves_a_set_that_dis_accepts(self, emulator, stream):
        """The route's set, signed with its security token, is accepted by PutRecords."""
        emulator.token_ttl = 120.0
        credential = fetch_securitykey(emulator)["credential"]
        expires = parse_metadata_credentials({"credential": credential}).expires_at
        assert 110.0 < expires - time.time() <= 120.0
        signer = AKSKSigner(
            credential["access"], credential["secret"], security_token=credential["securitytoken"]
        )
        assert (200, None) == put(emulator, stream, signer.sign)
        assert "/openstack/latest/securitykey" == DISEmulator.metadata_path

    def test_refuses_the_set_without_its_token(self, emulator, stream):
        """Signing with the temporary AK/SK but without the security token is refused."""
        credential = fetch_securitykey(emulator)["credential"]
        signer = AKSKSigner(credential["access"], credential["secret"])
        assert (441, BAD_SECURITY_TOKEN) == put(emulator, stream, signer.sign)

    def test_refuses_an_expired_set(self, emulator, stream):
        """After expiry (here forced) the set is refused (441)."""
        credential = fetch_securitykey(emulator)["credential"]
        signer = AKSKSigner(
            credential["access"], credential["secret"], security_token=credential["securitytoken"]
        )
        emulator.expire_temporary_credentials()
        assert (441, BAD_SECURITY_TOKEN) == put(emulator, stream, signer.sign)

    def test_each_call_issues_a_new_set(self, emulator):
        """Consecutive calls give different keys (earlier sets stay valid until they expire)."""
        first = fetch_securitykey(emulator)["credential"]["access"]
        second = fetch_securitykey(emulator)["credential"]["access"]
        assert first != second


def metadata_requests(emulator):
    return [r for r in emulator.requests if r.operation == "MetadataSecurityKey"]


def handler_for(emulator, stream, **options):
    options.setdefault("metadata_endpoint", emulator.metadata_endpoint)
    return DISHandler(
        stream_name=stream,
        endpoint=emulator.url,
        project_id=emulator.project_id,
        metadata_credentials=True,
        flush_interval=0.05,
        **options,
    )


class TestHandler:
    def test_ships_with_temporary_credentials(self, emulator, stream):
        """The handler fetches one set, signs with it and its token, and DIS stores the records."""
        handler = handler_for(emulator, stream)
        logger = logging.getLogger("test.metadata")
        logger.addHandler(handler)
        try:
            for i in range(3):
                logger.warning("record %d", i)
                assert handler.flush(10.0)
        finally:
            logger.removeHandler(handler)
            handler.close()
        assert 3 == len(emulator.records(stream))
        assert 1 == len(metadata_requests(emulator))
        puts = [r for r in emulator.requests if r.operation == "PutRecords"]
        assert [(200, "aksk")] * 3 == [(r.status, r.auth) for r in puts]

    def test_full_credentials_url_as_endpoint_ships(self, emulator, stream):
        """metadata_endpoint given as the full securitykey URL fetches from the right path."""
        handler = handler_for(
            emulator,
            stream,
            metadata_endpoint=emulator.metadata_endpoint + emulator.metadata_path,
        )
        logger = logging.getLogger("test.metadata")
        logger.addHandler(handler)
        try:
            logger.warning("via the full URL")
            assert handler.flush(10.0)
        finally:
            logger.removeHandler(handler)
            handler.close()
        assert 1 == len(emulator.records(stream))
        assert [200] == [r.status for r in metadata_requests(emulator)]

    def test_environment_configures_the_handler(self, emulator, stream, monkeypatch):
        """DIS_LOGGING_METADATA_CREDENTIALS and _ENDPOINT alone make the handler use the route."""
        monkeypatch.setenv("DIS_LOGGING_METADATA_CREDENTIALS", "true")
        monkeypatch.setenv("DIS_LOGGING_METADATA_ENDPOINT", emulator.metadata_endpoint)
        handler = DISHandler(
            stream_name=stream, endpoint=emulator.url, project_id=emulator.project_id
        )
        try:
            handler.emit(logging.LogRecord("t", logging.INFO, __file__, 1, "via env", (), None))
            assert handler.flush(10.0)
        finally:
            handler.close()
        assert (1, 1) == (len(emulator.records(stream)), len(metadata_requests(emulator)))

    def test_refreshes_before_expiry(self, emulator, stream):
        """With 2 s sets, new sets keep coming and every record is delivered.

        That the refresh comes ahead of expiry is checked on a fake clock in
        TestTemporaryCredentialCache; here real time decides, so only the outcome is asserted.
        """
        emulator.token_ttl = 2.0
        handler = handler_for(emulator, stream)
        record = logging.LogRecord("t", logging.INFO, __file__, 1, "tick", (), None)
        sent = 0
        deadline = time.monotonic() + 15.0
        try:
            while len(metadata_requests(emulator)) < 2 and time.monotonic() < deadline:
                handler.emit(record)
                sent += 1
                assert handler.flush(10.0)
                threading.Event().wait(0.05)  # pace the loop; the assertion is on the log
        finally:
            handler.close()
        assert 2 <= len(metadata_requests(emulator))
        assert (sent, 0, 0) == (
            len(emulator.records(stream)),
            handler.stats.failed,
            handler.stats.dropped,
        )

    def test_failed_refresh_keeps_sending_and_reports_once(self, emulator, stream):
        """While refreshes fail, the current set keeps working and one line is reported."""
        emulator.token_ttl = 6.0  # refresh due at 4.8 s, retries every ~0.3 s: 0.9 s to spare
        lines: list[str] = []
        handler = handler_for(emulator, stream, diagnostics=lines.append)
        record = logging.LogRecord("t", logging.INFO, __file__, 1, "tick", (), None)
        try:
            handler.emit(record)
            assert handler.flush(10.0)  # first set fetched
            emulator.fail_next(1000, status=500, operation="MetadataSecurityKey")
            deadline = time.monotonic() + 15.0
            while len(metadata_requests(emulator)) < 3 and time.monotonic() < deadline:
                handler.emit(record)
                assert handler.flush(10.0)
                threading.Event().wait(0.05)
        finally:
            emulator.clear_faults()
            handler.close()
        statuses = [r.status for r in metadata_requests(emulator)]
        assert [200, 500, 500] == statuses[:3]
        refresh_lines = [line for line in lines if "temporary credentials" in line]
        assert 1 == len(refresh_lines), lines
        assert "keeping the current set" in refresh_lines[0]
        puts = [r for r in emulator.requests if r.operation == "PutRecords"]
        assert all(r.status == 200 for r in puts)

    def test_rejected_set_is_replaced_at_once(self, emulator, stream):
        """When DIS rejects the set (revoked early), a new one is fetched and the send succeeds."""
        handler = handler_for(emulator, stream)
        record = logging.LogRecord("t", logging.INFO, __file__, 1, "tick", (), None)
        try:
            handler.emit(record)
            assert handler.flush(10.0)
            emulator.expire_temporary_credentials()
            handler.emit(record)
            assert handler.flush(10.0)
        finally:
            handler.close()
        assert 2 == len(emulator.records(stream))
        assert 2 == len(metadata_requests(emulator))


class TestClient:
    def test_secrets_are_masked_and_not_in_repr(self, emulator, stream):
        """The fetched SK and security token join the client's secrets and stay out of its repr."""
        with DISClient(
            emulator.url, emulator.project_id, metadata_endpoint=emulator.metadata_endpoint
        ) as client:
            client.put_records(stream, [(b"x", "k")])
            held = client._credential_cache.get()  # type: ignore[union-attr]
            assert (True, True) == (
                held.sk in client.secrets,
                held.security_token in client.secrets,
            )
            assert held.sk not in repr(client)
            assert "auth='metadata'" in repr(client)

    def test_unreachable_metadata_service_is_a_transport_error(self, emulator, stream):
        """With the metadata service down, a call fails with a retryable TransportError."""
        down = DISEmulator()
        down.start()
        url = down.metadata_endpoint
        down.stop()
        with DISClient(
            emulator.url, emulator.project_id, metadata_endpoint=url, request_timeout=2.0
        ) as client:
            with pytest.raises(TransportError, match="metadata credentials"):
                client.put_records(stream, [(b"x", "k")])

    def test_malformed_metadata_reply_names_the_metadata_service(self, emulator, stream):
        """A 200 reply that is not a credential set is blamed on the metadata service, not DIS."""
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class NotCredentials(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b"<html>captive portal</html>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), NotCredentials)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with DISClient(
                emulator.url,
                emulator.project_id,
                metadata_endpoint=f"http://127.0.0.1:{server.server_address[1]}",
            ) as client:
                with pytest.raises(ServerError) as info:
                    client.put_records(stream, [(b"x", "k")])
        finally:
            server.shutdown()
            server.server_close()
        assert "metadata credentials: the reply body is not what the ECS/CCE metadata service" in (
            str(info.value)
        )

    def test_metadata_error_status(self, emulator, stream):
        """A 404 from the metadata service (no agency) is an error naming the step."""
        emulator.fail_next(1, status=404, error_code="APIG.0101", operation="MetadataSecurityKey")
        with DISClient(
            emulator.url, emulator.project_id, metadata_endpoint=emulator.metadata_endpoint
        ) as client:
            with pytest.raises(Exception, match="metadata credentials") as info:
                client.put_records(stream, [(b"x", "k")])
        assert 404 == info.value.status  # type: ignore[attr-defined]

    def test_conflicts_with_given_credentials(self, emulator):
        """metadata_endpoint with ak/sk is refused at construction."""
        with pytest.raises(ConfigError, match="metadata_endpoint"):
            DISClient(
                emulator.url,
                emulator.project_id,
                ak=emulator.ak,
                sk=emulator.sk,
                metadata_endpoint=emulator.metadata_endpoint,
            )

    def test_auth_error_type_on_persistent_rejection(self, emulator, stream):
        """If every set is rejected, the second rejection is raised as an AuthError."""
        emulator.token_ttl = 0.0  # every set is already expired
        with DISClient(
            emulator.url, emulator.project_id, metadata_endpoint=emulator.metadata_endpoint
        ) as client:
            with pytest.raises(AuthError):
                client.put_records(stream, [(b"x", "k")])
        assert 2 == len(metadata_requests(emulator))


def test_cli_send_with_metadata_credentials(capsys, emulator, stream, monkeypatch):
    """The command line uses the metadata service when the environment switches it on."""
    monkeypatch.setenv("DIS_LOGGING_METADATA_CREDENTIALS", "true")
    monkeypatch.setenv("DIS_LOGGING_METADATA_ENDPOINT", emulator.metadata_endpoint)
    source_args = ["--endpoint", emulator.url, "--project-id", emulator.project_id]
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"a\n")))
    code = cli.main(["send", stream, *source_args])
    captured = capsys.readouterr()
    assert (0, "") == (code, captured.err)
    assert [b"a"] == [r.data for r in emulator.records(stream)]
