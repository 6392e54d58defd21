"""Secrets (token, password, SK, security token; static, from a callable or from IAM) never
surface in output, reprs, exceptions or traceback locals; plain HTTP is refused off-host."""

from __future__ import annotations

import json
import logging
import os
import socket
import string
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterator, List, Optional, Set

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dis_logging._report import MAX_DYNAMIC_SECRETS, SecretSet, redact
from dis_logging.client import DISClient
from dis_logging.config import HandlerConfig, resolve_connection
from dis_logging.emulator import DISEmulator
from dis_logging.errors import AuthError, ConfigError, DISError
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


class _LoopbackServer:
    """A ThreadingHTTPServer on 127.0.0.1 serving in a daemon thread; ``url`` after ``_serve``."""

    def _serve(self, handler: Any) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5.0)


class EchoServer(_LoopbackServer):
    """A loopback server that issues ``iam_token`` from IAM and echoes every credential header
    it receives back in a DIS error body, as a careless gateway might."""

    def __init__(self, iam_token: str, iam_body: bool = True) -> None:
        owner = self
        self.iam_token = iam_token
        self.iam_body = iam_body
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):
                return

            def do_POST(self):
                self._reply()

            def do_GET(self):
                self._reply()

            def _reply(self):
                owner.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {"Content-Type": "application/json", "Connection": "close"}
                if self.path.startswith("/v3/auth/tokens"):
                    status = 201
                    headers["X-Subject-Token"] = owner.iam_token
                    payload: Dict[str, Any] = {
                        "token": {
                            "issued_at": "2024-01-03T03:04:05.000000Z",
                            "expires_at": "2024-01-04T03:04:05.000000Z"
                            if owner.iam_body
                            else "not a time",
                        }
                    }
                else:
                    status = 441
                    echoed = " ".join(
                        str(self.headers.get(name))
                        for name in ("X-Auth-Token", "X-Security-Token", "Authorization")
                    )
                    payload = {
                        "error_code": "DIS.4114",
                        "error_msg": f"rejected {echoed} {body[:200]!r}",
                    }
                data = json.dumps(payload).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = True

        self._serve(Handler)


class BodyEchoIAM(_LoopbackServer):
    """A loopback IAM that refuses every login, quoting the request body in its error text (as
    some gateways do): the password comes back in the form a JSON string holds it."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):
                return

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                text = f"cannot parse {body.decode('utf-8', 'replace')}"
                data = json.dumps({"error": {"code": 400, "message": text}}).encode()
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._serve(Handler)


@pytest.mark.parametrize(
    "password",
    ['quo"ted-pass-123', "back\\slash-pass-123", "pässwörd-mit-umlaut", "tab\tpass-1234"],
)
def test_a_password_quoted_in_json_by_the_server_is_masked(password):
    """A password with a quote, a backslash, a non-ASCII letter or a tab, echoed inside the JSON
    login body a server quotes, is masked in that form too (it was shown escaped)."""
    server = BodyEchoIAM()
    try:
        with DISClient(server.url, "p", username="u", password=password, domain_name="d") as client:
            with pytest.raises(DISError) as info:
                client.put_records("s", [(b"x", None)])
    finally:
        server.close()
    message = str(info.value)
    assert '"password":"<redacted>"' in message  # the body was quoted, its password masked
    forms = {password, json.dumps(password)[1:-1], json.dumps(password, ensure_ascii=False)[1:-1]}
    assert_absent([message, repr(info.value)], *forms)


def closed_port_url() -> str:
    """The URL of a loopback port with nothing listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def traceback_texts(exc: BaseException) -> List[str]:
    """The captured locals of every frame of the package, and every message, of ``exc`` and of
    everything chained to it (cause and context, suppressed or not), as Sentry or rich would
    capture them. Frames of the tests themselves hold the secrets they pass in, so they are
    left out."""
    texts: List[str] = []
    seen: Set[int] = set()
    pending: List[Optional[traceback.TracebackException]] = [
        traceback.TracebackException.from_exception(exc, capture_locals=True)
    ]
    while pending:
        te = pending.pop()
        if te is None or id(te) in seen:
            continue
        seen.add(id(te))
        texts.extend(te.format_exception_only())
        for frame in te.stack:
            if f"{os.sep}dis_logging{os.sep}" in frame.filename:
                texts.extend(f"{name}={value}" for name, value in (frame.locals or {}).items())
        pending += [te.__cause__, te.__context__]
    return texts


def secret_token_callable(value: str) -> Callable[[], str]:
    def token() -> str:
        return value

    return token


@pytest.fixture
def echo_server_factory() -> Iterator[Callable[[str], EchoServer]]:
    servers: List[EchoServer] = []

    def make(iam_token: str) -> EchoServer:
        server = EchoServer(iam_token)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def echo_credentials(kind: str, secret: str, other: str) -> Dict[str, Any]:
    """Credentials whose secrets an EchoServer will see (and echo back) in some form."""
    kinds: Dict[str, Dict[str, Any]] = {
        "callable token": {"token": secret_token_callable(secret + "\n")},
        "IAM token": {"username": "u", "password": other, "domain_name": "d"},
        "security token": {"ak": "AK0123456789", "sk": other, "security_token": secret},
    }
    return kinds[kind]


ECHO_KINDS = ["callable token", "IAM token", "security token"]


@pytest.mark.usefixtures("debug_logging_to_stderr")
class TestRuntimeSecretsNeverSurface:
    @pytest.mark.parametrize("kind", ECHO_KINDS)
    @SECRET_SETTINGS
    @given(secret=secrets, other=secrets)
    def test_echoed_secrets_are_redacted_in_client_errors(
        self, echo_server_factory, capfd, kind, secret, other
    ):
        """Tokens from a callable, from IAM, and security tokens echoed by a server stay hidden."""
        server = echo_server_factory(secret)
        creds = echo_credentials(kind, secret, other)
        with DISClient(server.url, "p", **creds) as client:
            with pytest.raises(DISError) as info:
                client.put_records("s", [(b"x", None)])
        texts = [str(info.value), repr(info.value), *traceback_texts(info.value)]
        captured = capfd.readouterr()
        assert server.requests >= 1
        assert_absent([*texts, captured.out, captured.err], secret, other)

    @pytest.mark.parametrize("kind", ECHO_KINDS)
    @SECRET_SETTINGS
    @given(secret=secrets, other=secrets)
    def test_echoed_secrets_are_redacted_in_handler_output(
        self, echo_server_factory, capfd, kind, secret, other
    ):
        """The handler's stats and diagnostics mask tokens obtained at run time."""
        server = echo_server_factory(secret)
        diagnostics: List[str] = []
        handler = DISHandler(
            stream_name="s",
            endpoint=server.url,
            project_id="p",
            flush_interval=0.05,
            diagnostics=diagnostics.append,
            report_interval=0,
            **echo_credentials(kind, secret, other),
        )
        logger = logging.getLogger("tests.secrets.echo")
        logger.addHandler(handler)
        try:
            logger.warning("a record that is refused")
            handler.flush(timeout=2.0)
            texts = [repr(handler), str(handler.stats), str(handler.stats.last_error)]
        finally:
            logger.removeHandler(handler)
            handler.close()
        captured = capfd.readouterr()
        assert diagnostics
        assert_absent([*texts, *diagnostics, captured.out, captured.err], secret, other)


class TestTracebackLocals:
    @SECRET_SETTINGS
    @given(token=secrets, password=secrets)
    def test_malformed_iam_reply_keeps_the_token_out_of_locals(self, token, password):
        """An IAM reply with a token but an unreadable body fails without the token anywhere
        in the traceback, its locals or its context."""
        server = EchoServer(token, iam_body=False)
        try:
            with DISClient(
                server.url, "p", username="u", password=password, domain_name="d"
            ) as client:
                with pytest.raises(DISError) as info:
                    client.put_records("s", [(b"x", None)])
        finally:
            server.close()
        assert_absent(traceback_texts(info.value), token, password)

    @pytest.mark.parametrize(
        ("token", "iam_body", "problem"),
        [
            ("", True, "the IAM reply has no X-Subject-Token header"),
            ("Zq9-iam-token-0123456789", False, "unreadable token.expires_at or issued_at"),
        ],
    )
    def test_a_malformed_iam_reply_says_what_is_missing(self, token, iam_body, problem):
        """An IAM reply without the token header, or with an unreadable expiry, says which (it
        said "the reply body is not what IAM sends" for both), and never shows the token."""
        server = EchoServer(token, iam_body=iam_body)
        try:
            with DISClient(server.url, "p", username="u", password="pw", domain_name="d") as c:
                with pytest.raises(DISError) as info:
                    c.put_records("s", [(b"x", None)])
        finally:
            server.close()
        assert str(info.value).startswith("IAM token: ")
        assert problem in str(info.value)
        if token:
            assert_absent(traceback_texts(info.value), token)

    @SECRET_SETTINGS
    @given(password=secrets)
    def test_iam_fetch_failure_keeps_the_password_out_of_locals(self, password):
        """A failed IAM login's traceback, locals and chain included, never shows the password."""
        with DISClient(
            closed_port_url(), "p", username="u", password=password, domain_name="d"
        ) as client:
            with pytest.raises(DISError) as info:
                client.put_records("s", [(b"x", None)])
        assert_absent(traceback_texts(info.value), password)

    @pytest.mark.parametrize("bad", ["\x00", "\r\nX-Injected: 1", "\x7f", "\u00e9"])
    @SECRET_SETTINGS
    @given(secret=secrets)
    def test_invalid_callable_token_is_a_clear_error_without_the_value(self, emulator, bad, secret):
        """A callable token with a control character fails with an AuthError that hides it."""
        with DISClient(
            emulator.url, emulator.project_id, token=secret_token_callable(secret + bad + secret)
        ) as client:
            with pytest.raises(AuthError) as info:
                client.put_records("s", [(b"x", None)])
        assert "token" in str(info.value)
        assert_absent(traceback_texts(info.value), secret)

    @SECRET_SETTINGS
    @given(secret=secrets, other=secrets)
    def test_construction_errors_keep_secrets_out_of_locals(self, secret, other):
        """A ConfigError raised while building a client does not carry its secrets in locals."""
        with pytest.raises(ConfigError) as info:
            DISClient(
                "http://127.0.0.1:1",
                "p",
                ak="AK",
                sk=secret,
                security_token=other,
                request_timeout=-1,
            )
        assert_absent(traceback_texts(info.value), secret, other)

    @pytest.mark.parametrize("field", ["token", "security_token"])
    @SECRET_SETTINGS
    @given(secret=secrets)
    def test_wrapped_static_value_is_refused_without_showing_it(self, field, secret):
        """A static token or security token wrapped over two lines is a ConfigError naming the
        field, and neither half of the value appears in it."""
        wrapped = secret[:10] + "\n" + secret[10:] + "xyzxyzxyz"
        creds: Dict[str, Any] = {"ak": "AK", "sk": "SK"} if field == "security_token" else {}
        creds[field] = wrapped
        with pytest.raises(ConfigError) as info:
            DISClient("http://127.0.0.1:1", "p", **creds)
        assert field == info.value.field
        assert_absent(traceback_texts(info.value), secret[10:] + "xyzxyzxyz", wrapped)


class TestSecretSet:
    def test_wrapped_secret_is_masked_line_by_line_and_escaped(self):
        """Each line of a wrapped token, and its escaped form, is masked."""
        wrapped = "FirstLineOfToken\nSecondLineOfToken"
        masked = SecretSet([wrapped])
        text = f"a FirstLineOfToken b SecondLineOfToken c {wrapped!r}"
        assert "a *** b *** c '***'" == redact(text, masked)

    def test_words_of_a_one_line_secret_are_not_masked_alone(self):
        """A one-line password is masked whole; its words are not masked on their own."""
        masked = SecretSet(["correct horse password staple"])
        assert "password authentication failed; ***" == redact(
            "password authentication failed; correct horse password staple", masked
        )

    def test_only_the_most_recent_runtime_tokens_are_kept(self):
        """Tokens added at run time are bounded; configured secrets always stay."""
        masked = SecretSet(["configured-secret"])
        for i in range(MAX_DYNAMIC_SECRETS + 5):
            masked.add(f"runtime-token-{i:04d}")
        assert (True, False, True, MAX_DYNAMIC_SECRETS + 1) == (
            "configured-secret" in masked,
            "runtime-token-0000" in masked,
            f"runtime-token-{MAX_DYNAMIC_SECRETS + 4:04d}" in masked,
            len(masked),
        )
        assert f"SecretSet({MAX_DYNAMIC_SECRETS + 1} secrets)" == repr(masked)
