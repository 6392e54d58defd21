"""Tests for dis_logging.config: defaults, environment fallbacks, coercion and validation."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Dict, List

import pytest

from dis_logging.client import DISClient
from dis_logging.config import Connection, HandlerConfig, import_object, resolve_connection
from dis_logging.errors import ConfigError

BASE = {
    "stream_name": "app-logs",
    "endpoint": "https://dis.example.com",
    "project_id": "p1",
    "ak": "AK1",
    "sk": "SECRET-SK",
}


def build(env=None, **kwargs):
    settings = {**BASE, **kwargs}
    for name in [k for k, v in settings.items() if v is None]:
        del settings[name]
    return HandlerConfig.from_kwargs(env or {}, **settings)


def key_by_logger(record: logging.LogRecord) -> str:
    return record.name


def sink(line: str) -> None:
    del line


class TestDefaults:
    def test_defaults(self):
        """Tuning settings default to the documented values."""
        config = build()
        assert (1.0, 500, 1_000_000, 100_000, 64 * 2**20, "drop_oldest", "truncate") == (
            config.flush_interval,
            config.max_batch_records,
            config.max_batch_bytes,
            config.max_queue_records,
            config.max_queue_bytes,
            config.overflow,
            config.oversize,
        )
        assert (10.0, 300.0, 5.0, 1, logging.WARNING) == (
            config.request_timeout,
            config.max_retry_time,
            config.close_timeout,
            config.max_in_flight,
            config.priority_level,
        )

    def test_record_budget_follows_smaller_batch_bytes(self):
        """Without max_record_bytes, the record budget shrinks to a smaller batch budget."""
        assert 4096 == build(max_batch_bytes=4096).max_record_bytes

    def test_endpoint_trailing_slash_is_removed(self):
        """The endpoint is kept without a trailing slash."""
        assert "https://dis.example.com" == build(endpoint="https://dis.example.com/").endpoint

    def test_region_derives_endpoint_and_iam(self):
        """A region alone derives the DIS URL, and the IAM URL for password credentials."""
        config = build(
            endpoint=None,
            ak=None,
            sk=None,
            region="cn-north-4",
            username="u",
            password="pw",
            domain_name="d",
        )
        assert (
            "https://dis.cn-north-4.myhuaweicloud.com",
            "https://iam.cn-north-4.myhuaweicloud.com",
        ) == (
            config.endpoint,
            config.iam_endpoint,
        )

    def test_keywords_cover_every_field(self):
        """keywords() lists every dataclass field."""
        assert {f.name for f in dataclasses.fields(HandlerConfig)} == HandlerConfig.keywords()


class TestCoercion:
    @pytest.mark.parametrize(
        ("name", "raw", "expected"),
        [
            ("flush_interval", "1.5", 1.5),
            ("max_batch_records", "100", 100),
            ("max_queue_bytes", "1_048_576", 1_048_576),
            ("max_queue_records", 2e3, 2000),
            ("allow_insecure_http", "true", True),
            ("verify", "false", False),
            ("priority_level", "error", logging.ERROR),
            ("flush_on_level", "40", 40),
            ("flush_on_level", "none", None),
            ("overflow", "DROP_NEWEST", "drop_newest"),
        ],
    )
    def test_strings_are_coerced(self, name, raw, expected):
        """Values arriving as strings from fileConfig/dictConfig are converted."""
        assert expected == getattr(build(**{name: raw}), name)

    def test_partition_key_literal_string(self):
        """A plain string partition_key is a fixed key."""
        assert "tenant-1" == build(partition_key="tenant-1").partition_key

    def test_partition_key_dotted_path(self):
        """An ext:// partition_key is imported as a callable."""
        assert key_by_logger is build(partition_key=f"ext://{__name__}.key_by_logger").partition_key

    def test_diagnostics_dotted_path(self):
        """diagnostics accepts a dotted path with or without ext://."""
        assert sink is build(diagnostics=f"{__name__}.sink").diagnostics
        assert sink is build(diagnostics=f"{__name__}:sink").diagnostics

    def test_import_object_error_names_setting(self):
        """An import failure raises ConfigError naming the setting."""
        with pytest.raises(ConfigError) as info:
            import_object("no_such_module_xyz.func", setting="diagnostics")
        assert "diagnostics" == info.value.field


class TestValidation:
    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"stream_name": "bad name!"}, "stream_name"),
            ({"stream_name": "x" * 65}, "stream_name"),
            ({"flush_interval": 0}, "flush_interval"),
            ({"flush_interval": "soon"}, "flush_interval"),
            ({"max_batch_records": 0}, "max_batch_records"),
            ({"max_batch_records": 5000}, "max_batch_records"),
            ({"max_batch_records": "1.5"}, "max_batch_records"),
            ({"max_batch_bytes": 6_000_000}, "max_batch_bytes"),
            ({"max_queue_bytes": -1}, "max_queue_bytes"),
            ({"max_record_bytes": 2_000_000}, "max_record_bytes"),
            ({"overflow": "explode"}, "overflow"),
            ({"oversize": "shrink"}, "oversize"),
            ({"serialization": "xml"}, "serialization"),
            ({"spool_mode": "sometimes"}, "spool_mode"),
            ({"priority_level": "LOUD"}, "priority_level"),
            ({"allow_insecure_http": "maybe"}, "allow_insecure_http"),
            ({"max_in_flight": 0}, "max_in_flight"),
            ({"initial_backoff": 5, "max_backoff": 1}, "initial_backoff"),
            ({"close_timeout": float("inf")}, "close_timeout"),
            ({"verify": "/no/such/ca.pem"}, "verify"),
            ({"partition_key": "k", "partition_id": "0"}, "partition_key"),
            ({"partition_key": 5}, "partition_key"),
            ({"partition_id": "abc"}, "partition_id"),
            ({"partition_id": "-1"}, "partition_id"),
            ({"partition_id": "shardid-0000000001"}, "partition_id"),
            ({"endpoint": "ftp://x"}, "endpoint"),
            ({"endpoint": "https://user:pw@dis.example.com"}, "endpoint"),
            ({"endpoint": "https://dis.example.com?x=1"}, "endpoint"),
            ({"endpoint": "http://dis.example.com"}, "endpoint"),
            ({"endpoint": "https://h:notaport"}, "endpoint"),
            ({"endpoint": "http://127.0.\t0.1:8080"}, "endpoint"),
            ({"endpoint": "http://127.0.0.1:8080\n/v2"}, "endpoint"),
            ({"endpoint": "https://dis example.com"}, "endpoint"),
            ({"endpoint": "https://dis.example.com/\x00"}, "endpoint"),
            (
                {
                    "iam_endpoint": "https://iam.example.com/ x",
                    "ak": None,
                    "sk": None,
                    "username": "u",
                    "password": "p",
                    "domain_name": "d",
                },
                "iam_endpoint",
            ),
            ({"region": "CN North"}, "region"),
            ({"colour": "blue"}, "colour"),
            ({"flush_intervall": 1}, "flush_intervall"),
            ({"diagnostics": "os.sep"}, "diagnostics"),
            ({"spool_dir": "/tmp/x", "max_in_flight": 2}, "max_in_flight"),
        ],
    )
    def test_errors_name_the_field(self, kwargs, field):
        """A bad value raises ConfigError whose field names the setting."""
        with pytest.raises(ConfigError) as info:
            build(**kwargs)
        assert field == info.value.field
        assert str(info.value).startswith(f"{field}: ")

    @pytest.mark.parametrize(
        "name",
        [
            "flush_interval",
            "block_timeout",
            "close_timeout",
            "request_timeout",
            "initial_backoff",
            "max_backoff",
        ],
    )
    @pytest.mark.parametrize("value", ["1e300", 1e7])
    def test_a_wait_longer_than_threads_can_wait_is_refused(self, name, value):
        """A finite but huge duration that is waited on is refused at construction: the
        flusher thread ended with OverflowError (flush_interval, the backoffs), close() failed
        (close_timeout), every blocked record was dropped as an error (block_timeout)."""
        kwargs = {name: value, "initial_backoff": 0} if name == "max_backoff" else {name: value}
        with pytest.raises(ConfigError) as info:
            build(**kwargs)
        assert name == info.value.field
        assert "must be <= 1000000 seconds" in str(info.value)

    @pytest.mark.parametrize("value", ["2", "shardId-0000000002", "shardId-2", " 0 "])
    def test_partition_ids_in_both_documented_forms_are_accepted(self, value):
        """A partition id is ``shardId-`` plus the index, or the bare index."""
        assert value.strip() == build(partition_id=value).partition_id

    def test_a_partition_id_given_as_a_number_is_accepted(self):
        """``"partition_id": 2`` from a JSON or YAML configuration is partition 2; a boolean
        is still refused."""
        assert "2" == build(partition_id=2).partition_id
        with pytest.raises(ConfigError, match="partition_id"):
            build(partition_id=True)

    def test_the_longest_wait_is_accepted(self):
        """1,000,000 seconds (about 11.5 days) is still a valid duration."""
        config = build(flush_interval="1e6", close_timeout=1e6, max_backoff=1e6)
        assert (1e6, 1e6, 1e6) == (
            config.flush_interval,
            config.close_timeout,
            config.max_backoff,
        )

    @pytest.mark.parametrize(
        ("env", "field", "variable"),
        [
            ({"DIS_LOGGING_STREAM": "bad name"}, "stream_name", "DIS_LOGGING_STREAM"),
            ({"DIS_LOGGING_REGION": "CN_NORTH"}, "region", "DIS_LOGGING_REGION"),
            ({"DIS_LOGGING_ENDPOINT": "ftp://dis.example.com"}, "endpoint", "DIS_LOGGING_ENDPOINT"),
            (
                {"DIS_LOGGING_REGION": "cn-north-4", "HUAWEICLOUD_SDK_REGION_DIS_CN_NORTH_4": "x"},
                "endpoint",
                "HUAWEICLOUD_SDK_REGION_DIS_CN_NORTH_4",
            ),
            (
                {
                    "HUAWEICLOUD_SDK_IAM_ENDPOINT": "http://iam.example.com",
                    "DIS_LOGGING_ENDPOINT": "https://dis.example.com",
                },
                "iam_endpoint",
                "HUAWEICLOUD_SDK_IAM_ENDPOINT",
            ),
        ],
    )
    def test_a_bad_value_from_the_environment_names_its_variable(self, env, field, variable):
        """A bad value read from the environment says which variable it came from (the keyword
        the message names was never given)."""
        settings: Dict[str, Any] = {"stream_name": None, "endpoint": None}
        if field == "iam_endpoint":
            settings.update(ak=None, sk=None, username="u", password="p", domain_name="d")
        with pytest.raises(ConfigError) as info:
            build(env={"DIS_LOGGING_STREAM": "s", "DIS_LOGGING_ENDPOINT": "", **env}, **settings)
        assert field == info.value.field
        assert str(info.value).endswith(f" (from {variable})")

    def test_a_bad_keyword_value_names_no_variable(self):
        """A bad keyword value is reported without a source, even with the variable set."""
        with pytest.raises(ConfigError) as info:
            build(env={"DIS_LOGGING_REGION": "cn-north-4"}, region="CN", endpoint=None)
        assert "region: must look like 'cn-north-4', got 'CN'" == str(info.value)

    def test_unknown_keyword_suggests_the_close_one(self):
        """An unknown keyword's message suggests the nearest real one."""
        with pytest.raises(ConfigError, match="did you mean 'flush_interval'"):
            build(flush_intervall=1)

    @pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.1.2.3"])
    def test_http_allowed_for_loopback(self, host):
        """http:// is accepted for loopback hosts."""
        assert build(endpoint=f"http://{host}:8080").endpoint == f"http://{host}:8080"

    def test_http_allowed_with_opt_in(self):
        """http:// to another host needs allow_insecure_http."""
        config = build(endpoint="http://dis.internal:80", allow_insecure_http="yes")
        assert "http://dis.internal:80" == config.endpoint

    def test_stream_required(self):
        """A missing stream name raises ConfigError for stream_name."""
        with pytest.raises(ConfigError) as info:
            build(stream_name=None)
        assert "stream_name" == info.value.field

    def test_project_required(self):
        """A missing project id raises ConfigError for project_id."""
        with pytest.raises(ConfigError) as info:
            build(project_id=None)
        assert "project_id" == info.value.field

    def test_endpoint_or_region_required(self):
        """Without endpoint or region the error names endpoint."""
        with pytest.raises(ConfigError) as info:
            build(endpoint=None)
        assert "endpoint" == info.value.field


class TestCredentials:
    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"token": "t"}, "token"),
            ({"username": "u", "password": "p", "domain_name": "d"}, "username"),
        ],
    )
    def test_two_kinds_conflict(self, kwargs, field):
        """Giving two credential kinds raises ConfigError naming the second."""
        with pytest.raises(ConfigError) as info:
            build(**kwargs)
        assert field == info.value.field

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"ak": "a", "sk": None}, "sk"),
            ({"ak": None, "sk": "s"}, "ak"),
            ({"ak": None, "sk": None, "username": "u"}, "password"),
            ({"ak": None, "sk": None, "username": "u", "password": "p"}, "domain_name"),
            ({"ak": None, "sk": None, "security_token": "st"}, "security_token"),
            ({"ak": None, "sk": None}, "credentials"),
        ],
    )
    def test_incomplete_sets(self, kwargs, field):
        """An incomplete credential set names the missing part."""
        with pytest.raises(ConfigError) as info:
            build(**kwargs)
        assert field == info.value.field

    def test_token_callable(self):
        """A callable token is kept as is."""

        def supply() -> str:
            return "tok"

        config = build(ak=None, sk=None, token=supply)
        assert ("token", supply) == (config.connection.credential_kind, config.token)

    def test_aksk_from_environment(self):
        """HUAWEICLOUD_SDK_AK/SK/SECURITY_TOKEN/PROJECT_ID fill missing settings."""
        env = {
            "HUAWEICLOUD_SDK_AK": "EAK",
            "HUAWEICLOUD_SDK_SK": "ESK",
            "HUAWEICLOUD_SDK_SECURITY_TOKEN": "EST",
            "HUAWEICLOUD_SDK_PROJECT_ID": "EPID",
        }
        config = build(env, ak=None, sk=None, project_id=None)
        assert ("EAK", "ESK", "EST", "EPID") == (
            config.ak,
            config.sk,
            config.security_token,
            config.project_id,
        )

    def test_password_from_environment_takes_precedence(self):
        """DIS_LOGGING_USERNAME/PASSWORD/DOMAIN_NAME win over the SDK's AK/SK variables."""
        env = {
            "DIS_LOGGING_USERNAME": "u",
            "DIS_LOGGING_PASSWORD": "pw",
            "DIS_LOGGING_DOMAIN_NAME": "dom",
            "HUAWEICLOUD_SDK_AK": "EAK",
            "HUAWEICLOUD_SDK_SK": "ESK",
        }
        config = build(env, ak=None, sk=None)
        assert ("password", "u", None) == (
            config.connection.credential_kind,
            config.username,
            config.ak,
        )

    def test_explicit_credentials_ignore_environment(self):
        """Keyword credentials are used even when environment credentials exist."""
        env = {"DIS_LOGGING_USERNAME": "u", "DIS_LOGGING_PASSWORD": "pw"}
        assert "aksk" == build(env).connection.credential_kind

    def test_stream_endpoint_region_from_environment(self):
        """DIS_LOGGING_STREAM, DIS_LOGGING_ENDPOINT and DIS_LOGGING_REGION fill missing settings."""
        env = {
            "DIS_LOGGING_STREAM": "env-stream",
            "DIS_LOGGING_ENDPOINT": "http://127.0.0.1:9",
            "DIS_LOGGING_REGION": "cn-east-3",
        }
        config = build(env, stream_name=None, endpoint=None)
        assert ("env-stream", "http://127.0.0.1:9", "cn-east-3") == (
            config.stream_name,
            config.endpoint,
            config.region,
        )

    def test_region_endpoint_override_takes_first_url(self):
        """HUAWEICLOUD_SDK_REGION_DIS_<REGION> overrides the derived URL; the first entry counts."""
        env = {
            "HUAWEICLOUD_SDK_REGION_DIS_CN_NORTH_4": " https://a.example.com , https://b.example.com"
        }
        assert "https://a.example.com" == build(env, endpoint=None, region="cn-north-4").endpoint

    def test_a_single_region_override_names_the_region(self):
        """With one HUAWEICLOUD_SDK_REGION_DIS_<REGION> set and no region, that region is used."""
        env = {"HUAWEICLOUD_SDK_REGION_DIS_CN_NORTH_4": "http://127.0.0.1:8080"}
        config = build(env, endpoint=None)
        assert ("http://127.0.0.1:8080", "cn-north-4") == (config.endpoint, config.region)

    def test_several_region_overrides_still_need_a_region(self):
        """With two region overrides and no region, the error names endpoint."""
        env = {
            "HUAWEICLOUD_SDK_REGION_DIS_CN_NORTH_4": "https://a.example.com",
            "HUAWEICLOUD_SDK_REGION_DIS_CN_EAST_3": "https://b.example.com",
        }
        with pytest.raises(ConfigError) as info:
            build(env, endpoint=None)
        assert "endpoint" == info.value.field

    def test_several_region_overrides_are_named_in_the_error(self):
        """The error says which variables leave the region open."""
        env = {
            "HUAWEICLOUD_SDK_REGION_DIS_CN_NORTH_4": "https://a.example.com",
            "HUAWEICLOUD_SDK_REGION_DIS_CN_EAST_3": "https://b.example.com",
        }
        with pytest.raises(ConfigError) as info:
            build(env, endpoint=None)
        names = "HUAWEICLOUD_SDK_REGION_DIS_CN_EAST_3, HUAWEICLOUD_SDK_REGION_DIS_CN_NORTH_4"
        assert f"({names} are all set: the region says which one counts)" in str(info.value)

    def test_a_region_override_in_lower_case_is_not_half_read(self):
        """The SDKs read HUAWEICLOUD_SDK_REGION_DIS_<REGION> in upper case only. A lower-case
        one gave its region (from its name) but not its URL, so records went to the public
        endpoint of that region instead of the URL it holds; now it is an error naming it."""
        env = {"HUAWEICLOUD_SDK_REGION_DIS_cn_north_4": "http://127.0.0.1:8080"}
        with pytest.raises(ConfigError) as info:
            build(env, endpoint=None)
        assert (
            "HUAWEICLOUD_SDK_REGION_DIS_cn_north_4 is not read: the region in a variable's name is "
            "upper case (HUAWEICLOUD_SDK_REGION_DIS_CN_NORTH_4)"
        ) in str(info.value)
        given = build(env, endpoint=None, region="cn-north-4")  # the explicit region still works
        assert "https://dis.cn-north-4.myhuaweicloud.com" == given.endpoint

    def test_credentials_file(self, tmp_path):
        """The [basic] section of the credentials file supplies keys, project and IAM URL."""
        path = tmp_path / "credentials"
        path.write_text(
            "[basic]\nak = FAK\nsk = FSK\nproject_id = FPID\niam_endpoint = https://iam.example.com\n",
            encoding="utf-8",
        )
        env = {"HUAWEICLOUD_SDK_CREDENTIALS_FILE": str(path)}
        config = build(env, ak=None, sk=None, project_id=None)
        assert ("FAK", "FSK", "FPID", "https://iam.example.com") == (
            config.ak,
            config.sk,
            config.project_id,
            config.iam_endpoint,
        )

    def test_credentials_file_with_a_byte_order_mark(self, tmp_path):
        """A credentials file saved with a UTF-8 byte order mark (Windows editors) is read; it
        failed with MissingSectionHeaderError."""
        path = tmp_path / "credentials"
        path.write_bytes(b"\xef\xbb\xbf[basic]\nak = FAK\nsk = FSK\nproject_id = FPID\n")
        env = {"HUAWEICLOUD_SDK_CREDENTIALS_FILE": str(path)}
        config = build(env, ak=None, sk=None, project_id=None)
        assert ("FAK", "FSK", "FPID") == (config.ak, config.sk, config.project_id)

    def test_missing_credentials_file_is_an_error(self, tmp_path):
        """A credentials file named in the environment but missing raises ConfigError."""
        env = {"HUAWEICLOUD_SDK_CREDENTIALS_FILE": str(tmp_path / "nope")}
        with pytest.raises(ConfigError) as info:
            build(env, ak=None, sk=None)
        assert "HUAWEICLOUD_SDK_CREDENTIALS_FILE" == info.value.field

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            (
                "[default]\nak = FAK\nsk = FSK-SECRET\n",
                "has no [basic] section (sections: [default])",
            ),
            (
                "[basic]\naccess_key = FAK\nsecret = FSK-SECRET\n",
                "has no ak or sk (keys: access_key, secret)",
            ),
            ("[basic]\nak =\nsk =\n", "has no ak or sk (keys: none with a value)"),
        ],
    )
    def test_a_credentials_file_without_keys_is_named_in_the_error(self, tmp_path, text, reason):
        """A credentials file that exists but gives no access key (another section name, other
        key names) is named with the reason in the "none found" error, which otherwise pointed
        only to settings that were all absent; key names are shown, never values."""
        path = tmp_path / "credentials"
        path.write_text(text, encoding="utf-8")
        env = {"HUAWEICLOUD_SDK_CREDENTIALS_FILE": str(path), "HUAWEICLOUD_SDK_PROJECT_ID": "p"}
        with pytest.raises(ConfigError) as info:
            build(env, ak=None, sk=None)
        assert "credentials" == info.value.field
        assert reason in str(info.value)
        assert str(path) in str(info.value)
        assert "FSK-SECRET" not in str(info.value)

    def test_repr_hides_secrets(self):
        """The repr of config and connection never shows sk, password, token or security token."""
        config = build(security_token="SEC-TOKEN")
        other = build(ak=None, sk=None, username="u", password="PASS-WORD", domain_name="d")
        text = repr(config) + repr(config.connection) + repr(other) + repr(other.connection)
        for secret in ("SECRET-SK", "SEC-TOKEN", "PASS-WORD"):
            assert secret not in text

    def test_config_error_messages_hide_secrets(self):
        """Validation messages do not echo secret values."""
        with pytest.raises(ConfigError) as info:
            build(sk="TOPSECRET", endpoint="ftp://x")
        assert "TOPSECRET" not in str(info.value)

    @pytest.mark.parametrize(
        "endpoint",
        ["ftp://user:HIDDEN-PW@host", "https://user:HIDDEN-PW@host?x=1", "u:HIDDEN-PW@host"],
    )
    def test_endpoint_errors_do_not_echo_a_password(self, endpoint):
        """A malformed endpoint carrying user:password is rejected without showing the password."""
        with pytest.raises(ConfigError) as info:
            build(endpoint=endpoint)
        assert ("endpoint", False) == (info.value.field, "HIDDEN-PW" in str(info.value))

    @pytest.mark.parametrize("endpoint", ["https://admin:HIDDEN-PW", "https://host:HIDDEN-PW/x"])
    def test_a_password_where_the_port_goes_is_not_echoed(self, endpoint):
        """A URL like "https://admin:pw" (user information, the host forgotten) reads as a
        host and a malformed port; the error says what is wrong without repeating the value."""
        for make in (
            lambda: build(endpoint=endpoint),
            lambda: DISClient(endpoint, "p", token="t"),
        ):
            with pytest.raises(ConfigError) as info:
                make()
            assert ("endpoint", False) == (info.value.field, "HIDDEN-PW" in str(info.value))
            assert "port" in str(info.value)

    @pytest.mark.parametrize(
        "endpoint",
        [
            "https://dis.cn-north-4.myhuaweicloud.com\\.evil.example",
            "https://dis.example.com,x",
            "http://127.0.0.1'",
        ],
    )
    def test_a_character_no_host_name_holds_is_refused(self, endpoint):
        """A backslash in the host ("...myhuaweicloud.com\\.evil.example": one host name here,
        a host and a path for a browser) passed, and every request failed at the look-up."""
        for make in (
            lambda: build(endpoint=endpoint),
            lambda: DISClient(endpoint, "p", token="t"),
        ):
            with pytest.raises(ConfigError, match="in its host name"):
                make()

    @pytest.mark.parametrize(
        "endpoint", ["https://d\u00eds.example.com", "https://[::1]:8443", "http://my_host.local:1"]
    )
    def test_international_ipv6_and_underscore_hosts_pass(self, endpoint):
        """The host check leaves IDN names, IPv6 addresses and underscores alone."""
        DISClient(endpoint, "p", token="t", allow_insecure_http=True).close()

    @pytest.mark.parametrize(
        "endpoint", ["http://127.0.0.1:8080#", "http://127.0.0.1:8080?", "http://127.0.0.1/a?#"]
    )
    def test_an_empty_query_or_fragment_is_refused(self, endpoint):
        """An empty "?" or "#" parsed as nothing and passed, yet every request URL then had the
        API path after it ("http://host#/v2/..."), so each call went to "/"."""
        for make in (
            lambda: build(endpoint=endpoint),
            lambda: DISClient(endpoint, "p", token="t"),
        ):
            with pytest.raises(ConfigError, match="must not have a query or fragment"):
                make()

    @pytest.mark.parametrize(
        ("field", "url", "base"),
        [
            ("endpoint", "https://dis.cn-north-4.myhuaweicloud.com/v2/p1/records", "dis"),
            ("endpoint", "http://127.0.0.1:8080/v2/", "local"),
            ("iam_endpoint", "https://iam.cn-north-4.myhuaweicloud.com/v3", "iam"),
            ("iam_endpoint", "https://iam.cn-north-4.myhuaweicloud.com/v3/auth/tokens", "iam"),
        ],
    )
    def test_an_api_path_copied_into_a_base_url_is_refused(self, field, url, base):
        """A URL copied from the API reference (".../v2/{project_id}/records") was accepted and
        every request then went to ".../v2/p1/records/v2/p1/..." (404 APIG.0101 at run time);
        the error now gives the base URL to use. A gateway prefix (/dis) still passes."""
        bases = {
            "dis": "https://dis.cn-north-4.myhuaweicloud.com",
            "local": "http://127.0.0.1:8080",
            "iam": "https://iam.cn-north-4.myhuaweicloud.com",
        }
        with pytest.raises(ConfigError) as info:
            build(**{field: url})
        assert (field, True) == (
            info.value.field,
            f"without the API path: use '{bases[base]}'" in str(info.value),
        )
        with pytest.raises(ConfigError, match="without the API path"):
            DISClient(url, "p1", token="t") if field == "endpoint" else DISClient(
                "http://127.0.0.1:8080", "p1", token="t", iam_endpoint=url
            )
        assert (
            "https://gw.example.com/dis" == build(endpoint="https://gw.example.com/dis/").endpoint
        )


class TestResolveConnection:
    def test_cli_style_call(self):
        """resolve_connection returns a Connection whose client_kwargs omit unset values."""
        conn = resolve_connection(
            endpoint="http://127.0.0.1:1", project_id="p", token="tok", env={}
        )
        assert isinstance(conn, Connection)
        assert {"token": "tok"} == conn.client_kwargs()

    def test_credentials_optional_when_not_required(self):
        """require_credentials=False allows a connection without credentials."""
        conn = resolve_connection(
            endpoint="http://127.0.0.1:1", project_id="p", require_credentials=False, env={}
        )
        assert conn.credential_kind is None

    def test_missing_credentials_when_required(self):
        """Without any credentials the error names 'credentials'."""
        with pytest.raises(ConfigError) as info:
            resolve_connection(endpoint="http://127.0.0.1:1", project_id="p", env={})
        assert "credentials" == info.value.field


class TestSourcesPerField:
    def test_flag_sk_completes_the_environment_ak(self):
        """An sk keyword (the CLI's --sk) with HUAWEICLOUD_SDK_AK set uses both."""
        env = {"HUAWEICLOUD_SDK_AK": "EAK", "HUAWEICLOUD_SDK_SK": "ESK"}
        config = build(env, ak=None, sk="FLAG-SK")
        assert ("EAK", "FLAG-SK") == (config.ak, config.sk)

    def test_project_from_file_with_keys_from_environment(self, tmp_path):
        """The file's project_id and iam_endpoint apply with keys from the environment."""
        path = tmp_path / "credentials"
        path.write_text(
            "[basic]\nproject_id = FPID\niam_endpoint = https://iam.example.com\n", encoding="utf-8"
        )
        env = {
            "HUAWEICLOUD_SDK_CREDENTIALS_FILE": str(path),
            "HUAWEICLOUD_SDK_AK": "EAK",
            "HUAWEICLOUD_SDK_SK": "ESK",
        }
        config = build(env, ak=None, sk=None, project_id=None)
        assert ("EAK", "ESK", "FPID", "https://iam.example.com") == (
            config.ak,
            config.sk,
            config.project_id,
            config.iam_endpoint,
        )

    def test_project_from_file_with_keyword_keys(self, tmp_path):
        """Keyword keys and a project id from the credentials file work together."""
        path = tmp_path / "credentials"
        path.write_text("[basic]\nproject_id = FPID\n", encoding="utf-8")
        env = {"HUAWEICLOUD_SDK_CREDENTIALS_FILE": str(path)}
        assert "FPID" == build(env, project_id=None).project_id

    def test_security_token_comes_from_where_sk_came_from(self):
        """An environment security token is not paired with a keyword secret key."""
        env = {
            "HUAWEICLOUD_SDK_AK": "EAK",
            "HUAWEICLOUD_SDK_SK": "ESK",
            "HUAWEICLOUD_SDK_SECURITY_TOKEN": "ETOKEN",
        }
        from_env = build(env, ak=None, sk=None)
        from_keywords = build(env)
        assert ("ETOKEN", None) == (from_env.security_token, from_keywords.security_token)

    def test_domain_name_keyword_completes_the_environment_user(self):
        """A domain_name keyword joins the IAM user and password from the environment."""
        env = {"DIS_LOGGING_USERNAME": "u", "DIS_LOGGING_PASSWORD": "pw"}
        config = build(env, ak=None, sk=None, domain_name="dom")
        assert ("u", "pw", "dom") == (config.username, config.password, config.domain_name)

    def test_missing_half_names_the_flag_and_variable(self):
        """sk without any ak says where an ak can come from."""
        with pytest.raises(ConfigError) as info:
            build(ak=None, sk="S")
        assert ("ak", "is required with sk: pass ak= (--ak) or set HUAWEICLOUD_SDK_AK") == (
            info.value.field,
            str(info.value).split(": ", 1)[1],
        )

    def test_unused_credentials_file_may_be_missing(self, tmp_path):
        """A credentials file named but not needed (everything given otherwise) is not an error."""
        env = {"HUAWEICLOUD_SDK_CREDENTIALS_FILE": str(tmp_path / "nope")}
        assert "AK1" == build(env).ak


class TestIamDefault:
    @pytest.mark.parametrize(
        ("endpoint", "region", "expected"),
        [
            (
                "https://dis.cn-north-4.myhuaweicloud.com",
                None,
                "https://iam.cn-north-4.myhuaweicloud.com",
            ),
            (
                "https://dis.cn-north-4.myhuaweicloud.com",
                "cn-east-3",
                "https://iam.cn-east-3.myhuaweicloud.com",
            ),
            ("https://dis-gw.myhuaweicloud.com", None, "https://iam.myhuaweicloud.com"),
            ("http://127.0.0.1:8080", "cn-north-4", None),
        ],
    )
    def test_one_derivation(self, endpoint, region, expected):
        """default_iam_endpoint: regional IAM next to Huawei DIS, the endpoint itself elsewhere."""
        from dis_logging.config import default_iam_endpoint

        assert expected == default_iam_endpoint(endpoint, region)

    def test_handler_and_client_agree(self):
        """The handler's config and DISClient derive the same IAM endpoint for a region."""
        from dis_logging.client import DISClient

        config = build(
            endpoint=None,
            region="cn-north-4",
            ak=None,
            sk=None,
            username="u",
            password="pw",
            domain_name="d",
        )
        with DISClient(
            config.endpoint, "p1", username="u", password="pw", domain_name="d"
        ) as client:
            assert (
                config.iam_endpoint
                == client.iam_endpoint
                == "https://iam.cn-north-4.myhuaweicloud.com"
            )


class TestEnabled:
    @pytest.mark.parametrize(
        ("keyword", "env", "expected"),
        [
            (None, {}, True),
            (False, {}, False),
            ("false", {}, False),
            (None, {"DIS_LOGGING_ENABLED": "false"}, False),
            (True, {"DIS_LOGGING_ENABLED": "0"}, True),
            (None, {"DIS_LOGGING_ENABLED": "yes"}, True),
        ],
    )
    def test_keyword_then_environment(self, keyword, env, expected):
        """enabled= wins over DIS_LOGGING_ENABLED, which wins over the default (on)."""
        assert expected == build(env, enabled=keyword).enabled

    def test_disabled_needs_no_stream_endpoint_or_credentials(self):
        """Switched off, a config needs neither stream, endpoint, project nor credentials."""
        config = HandlerConfig.from_kwargs({"DIS_LOGGING_ENABLED": "off"}, flush_interval="2")
        assert (False, "", 2.0) == (config.enabled, config.stream_name, config.flush_interval)

    def test_disabled_still_rejects_bad_settings(self):
        """Switched off, a malformed tuning setting or an unknown keyword still raises."""
        with pytest.raises(ConfigError) as info:
            HandlerConfig.from_kwargs({}, enabled=False, overflow="sometimes")
        assert "overflow" == info.value.field

    def test_bad_environment_value_names_the_variable(self):
        """DIS_LOGGING_ENABLED=maybe is an error naming the variable."""
        with pytest.raises(ConfigError) as info:
            build({"DIS_LOGGING_ENABLED": "maybe"})
        assert "DIS_LOGGING_ENABLED" == info.value.field


class TestRegionAgainstEndpoint:
    def test_a_region_contradicting_the_endpoint_is_refused(self):
        """region= naming another region than a dis.<region>.myhuaweicloud.com endpoint is a
        ConfigError naming both, for the handler and for DISClient."""
        from dis_logging.client import DISClient

        endpoint = "https://dis.ap-southeast-1.myhuaweicloud.com"
        with pytest.raises(ConfigError, match="'cn-north-4' contradicts the endpoint") as info:
            build(endpoint=endpoint, region="cn-north-4")
        with pytest.raises(ConfigError, match="which is in region 'ap-southeast-1'") as client:
            DISClient(endpoint, "p1", region="cn-north-4", ak="AK1", sk="SECRET-SK")
        assert ("region", "region") == (info.value.field, client.value.field)

    def test_the_sources_are_named(self):
        """A contradiction between variables names both variables."""
        env = {
            "DIS_LOGGING_REGION": "cn-north-4",
            "DIS_LOGGING_ENDPOINT": "https://dis.cn-east-3.myhuaweicloud.com",
        }
        with pytest.raises(ConfigError) as info:
            build(env, endpoint=None)
        assert "(from DIS_LOGGING_REGION)" in str(info.value)
        assert "(from DIS_LOGGING_ENDPOINT)" in str(info.value)

    def test_a_region_taken_from_an_override_variable_names_it(self):
        """The only HUAWEICLOUD_SDK_REGION_DIS_<REGION> variable gives the region; a URL of
        another region in it is refused, and the message says where the region came from."""
        env = {
            "HUAWEICLOUD_SDK_REGION_DIS_AP_SOUTHEAST_1": "https://dis.cn-north-4.myhuaweicloud.com"
        }
        with pytest.raises(ConfigError) as info:
            build(env, endpoint=None)
        assert "(from the name of HUAWEICLOUD_SDK_REGION_DIS_AP_SOUTHEAST_1)" in str(info.value)
        assert "DIS_LOGGING_REGION" not in str(info.value)

    @pytest.mark.parametrize(
        "endpoint",
        [
            "https://dis.cn-north-4.myhuaweicloud.com",
            "https://DIS.CN-NORTH-4.myhuaweicloud.com",
            "https://dis-gw.example.com",
            "http://127.0.0.1:8080",
        ],
    )
    def test_an_agreeing_or_neutral_endpoint_passes(self, endpoint):
        """The same region, or a host that names none (a gateway, the emulator), passes."""
        assert "cn-north-4" == build(endpoint=endpoint, region="cn-north-4").region


def _unwritable_parent(tmp_path) -> str:
    """A directory this user cannot create entries in (as root: one of /proc's)."""
    import os

    if os.geteuid() != 0:
        parent = tmp_path / "read-only"
        parent.mkdir(mode=0o500)
        return str(parent)
    if os.path.isdir("/proc/1") and not os.access("/proc/1", os.W_OK):
        return "/proc/1"
    pytest.skip("no directory this user cannot write")


class TestSpoolDirUsable:
    def test_a_spool_dir_that_cannot_be_created_is_refused(self, tmp_path):
        """A missing spool_dir whose parent this user cannot write is a ConfigError at once,
        naming the parent, instead of a spool that fails to open at run time."""
        parent = _unwritable_parent(tmp_path)
        with pytest.raises(ConfigError, match=r"cannot be created.*not writable") as info:
            build(spool_dir=f"{parent}/missing/spool")
        assert ("spool_dir", True) == (info.value.field, repr(parent) in str(info.value))

    def test_an_existing_spool_dir_that_cannot_be_written_is_refused(self, tmp_path):
        """An existing spool_dir this user cannot write is refused."""
        directory = _unwritable_parent(tmp_path)
        with pytest.raises(ConfigError, match="is not writable by this user"):
            build(spool_dir=directory)

    def test_the_variable_is_named(self, tmp_path):
        """A DIS_LOGGING_SPOOL_DIR that cannot be used is reported with the variable's name."""
        parent = _unwritable_parent(tmp_path)
        with pytest.raises(ConfigError, match=r"\(from DIS_LOGGING_SPOOL_DIR\)"):
            build({"DIS_LOGGING_SPOOL_DIR": f"{parent}/spool"})

    def test_missing_parents_that_can_be_created_pass(self, tmp_path):
        """A spool_dir several levels below a writable directory passes (created later)."""
        assert (
            str(tmp_path / "a" / "b" / "spool")
            == build(spool_dir=str(tmp_path / "a" / "b" / "spool")).spool_dir
        )

    def test_a_disabled_handler_does_not_need_it(self, tmp_path):
        """Switched off, a handler never opens its spool, so an unusable directory passes."""
        parent = _unwritable_parent(tmp_path)
        assert not build(enabled=False, spool_dir=f"{parent}/spool").enabled


class TestUnknownVariables:
    def test_unread_variables_are_named_with_the_closest_known_one(self):
        """DIS_LOGGING_* variables the package does not read are named, each with the variable
        meant; the keys point to the SDK's HUAWEICLOUD_SDK_* names."""
        from dis_logging.config import unknown_variables

        env = {
            "DIS_LOGGING_SPOOLDIR": "/tmp/x",
            "DIS_LOGGING_ENABLE": "false",
            "DIS_LOGGING_AK": "AK",
            "DIS_LOGGING_FOO": "1",
            "DIS_LOGGING_STREAM": "s",
            "HUAWEICLOUD_SDK_DOMAIN_ID": "d",
        }
        assert [
            "DIS_LOGGING_AK (did you mean HUAWEICLOUD_SDK_AK?)",
            "DIS_LOGGING_ENABLE (did you mean DIS_LOGGING_ENABLED?)",
            "DIS_LOGGING_FOO",
            "DIS_LOGGING_SPOOLDIR (did you mean DIS_LOGGING_SPOOL_DIR?)",
        ] == unknown_variables(env)

    def test_a_handler_reports_them_once_per_process(self, monkeypatch):
        """The first handler reports an unread variable on its diagnostics channel; later ones
        do not repeat it."""
        from dis_logging import handler as handler_module
        from dis_logging.handler import DISHandler

        monkeypatch.setenv("DIS_LOGGING_SPOOLDIR", "/tmp/x")
        monkeypatch.setattr(handler_module, "_REPORTED_VARIABLES", set())
        lines: List[str] = []
        for _ in range(2):
            DISHandler(
                "s",
                endpoint="http://127.0.0.1:9",
                project_id="p",
                token="t0ken",
                diagnostics=lines.append,
            ).close()
        assert [
            "dis-logging: environment variable(s) DIS_LOGGING_SPOOLDIR (did you mean "
            "DIS_LOGGING_SPOOL_DIR?) set but not read by dis-logging; they have no effect"
        ] == lines
