"""Secrets (token, password, SK, security token) never surface; plain HTTP is refused off-host."""

from __future__ import annotations

import logging
import string
from typing import Any, Dict, Iterator, List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dis_logging.client import DISClient
from dis_logging.config import HandlerConfig, resolve_connection
from dis_logging.emulator import DISEmulator
from dis_logging.errors import ConfigError, DISError
from dis_logging.handler import DISHandler

SECRET_SETTINGS = settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# A recognisable prefix keeps a short random secret from matching unrelated text by chance.
secrets = st.text(alphabet=string.ascii_letters + string.digits, min_size=12, max_size=40).map(
    lambda s: "Zq9" + s
)


@pytest.fixture
def debug_logging_to_stderr() -> Iterator[None]:
    """Send every library's debug records (requests, urllib3, ...) to stderr for capfd to search."""
    root = logging.getLogger()
    stream_handler = logging.StreamHandler()
    stream_handler.setLevel(logging.DEBUG)
    root.addHandler(stream_handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(stream_handler)


def credential_sets(emu: DISEmulator, secret: str, other: str) -> Dict[str, Dict[str, Any]]:
    """Credential keywords per kind, each containing wrong secret values."""
    return {
        "aksk": {"ak": emu.ak, "sk": secret},
        "aksk+security_token": {"ak": emu.ak, "sk": secret, "security_token": other},
        "password": {
            "username": emu.username,
            "password": secret,
            "domain_name": emu.domain_name,
            "iam_endpoint": emu.url,
        },
        "token": {"token": secret},
    }


def assert_absent(texts: List[str], *needles: str) -> None:
    for text in texts:
        for needle in needles:
            assert needle not in text, f"secret leaked into: {text[:200]!r}"


@pytest.mark.usefixtures("debug_logging_to_stderr")
class TestSecretsNeverSurface:
    @pytest.mark.parametrize("kind", ["aksk", "aksk+security_token", "password", "token"])
    @SECRET_SETTINGS
    @given(secret=secrets, other=secrets)
    def test_handler_output(self, emulator, stream, capfd, kind, secret, other):
        """Failed sends keep the secrets out of stats, diagnostics, reprs and all output."""
        diagnostics: List[str] = []
        creds = credential_sets(emulator, secret, other)[kind]
        handler = DISHandler(
            stream_name=stream,
            endpoint=emulator.url,
            project_id=emulator.project_id,
            flush_interval=0.05,
            diagnostics=diagnostics.append,
            **creds,
        )
        logger = logging.getLogger("tests.secrets")
        logger.addHandler(handler)
        try:
            logger.warning("a record that cannot be delivered")
            handler.flush(timeout=2.0)
            texts = [repr(handler), str(handler.stats), repr(handler.stats)]
            texts.append(str(handler.stats.last_error))
        finally:
            logger.removeHandler(handler)
            handler.close()
        captured = capfd.readouterr()
        texts += [*diagnostics, captured.out, captured.err]
        assert handler.stats.sent == 0
        assert_absent(texts, secret, other)

    @pytest.mark.parametrize("kind", ["aksk", "aksk+security_token", "password", "token"])
    @SECRET_SETTINGS
    @given(secret=secrets, other=secrets)
    def test_client_errors_and_repr(self, emulator, stream, capfd, kind, secret, other):
        """The client's repr and the exceptions it raises never contain the secrets."""
        creds = credential_sets(emulator, secret, other)[kind]
        with DISClient(emulator.url, emulator.project_id, **creds) as client:
            texts = [repr(client)]
            with pytest.raises(DISError) as info:
                client.put_records(stream, [(b"x", None)])
        texts += [str(info.value), repr(info.value), *map(str, info.value.args)]
        captured = capfd.readouterr()
        assert_absent([*texts, captured.out, captured.err], secret, other)

    @SECRET_SETTINGS
    @given(secret=secrets, other=secrets, password=secrets)
    def test_config_repr(self, secret, other, password):
        """The configuration's repr leaves out SK, security token, token and password."""
        for creds in (
            {"ak": "AK", "sk": secret, "security_token": other},
            {"username": "u", "password": password, "domain_name": "d"},
            {"token": secret},
        ):
            config = HandlerConfig.from_kwargs(
                stream_name="s", endpoint="https://dis.example.com", project_id="p", **creds
            )
            assert_absent([repr(config), str(config)], secret, other, password)

    @SECRET_SETTINGS
    @given(secret=secrets)
    def test_config_errors(self, secret):
        """A ConfigError about a bad setting never quotes a secret given alongside it."""
        with pytest.raises(ConfigError) as info:
            HandlerConfig.from_kwargs(
                stream_name="bad name!", endpoint="https://x", project_id="p", sk=secret, ak="a"
            )
        assert_absent([str(info.value), repr(info.value)], secret)


class TestInsecureHTTP:
    @pytest.mark.parametrize("field", ["endpoint", "iam_endpoint"])
    @pytest.mark.parametrize("host", ["dis.example.com", "10.0.0.8", "[2001:db8::1]"])
    def test_plain_http_to_remote_host_is_refused(self, field, host):
        """http:// to a remote host raises a ConfigError that names the field and suggests https."""
        kwargs: Dict[str, Any] = {
            "stream_name": "s",
            "endpoint": "https://dis.example.com",
            "project_id": "p",
            "username": "u",
            "password": "pw",
            "domain_name": "d",
            "iam_endpoint": "https://iam.example.com",
        }
        kwargs[field] = f"http://{host}"
        with pytest.raises(ConfigError) as info:
            DISHandler(**kwargs)
        assert field == info.value.field
        assert "https" in str(info.value)

    @pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
    def test_plain_http_to_loopback_is_allowed(self, host):
        """http:// to a loopback host (the emulator) is accepted."""
        handler = DISHandler(
            stream_name="s", endpoint=f"http://{host}:8080", project_id="p", token="t"
        )
        handler.close()
        assert f"http://{host}:8080" == handler.config.endpoint

    def test_cli_connection_refuses_plain_http(self):
        """The connection resolver the CLI uses refuses http:// to a remote host as well."""
        with pytest.raises(ConfigError) as info:
            resolve_connection(endpoint="http://dis.example.com", project_id="p", token="t")
        assert "endpoint" == info.value.field
