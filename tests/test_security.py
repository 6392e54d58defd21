"""Transport security and service fidelity: TLS verification, proxies, empty error codes.

Every server here is a real one on loopback: a TLS server with a certificate generated at test time
by the ``openssl`` command, a plain HTTP server that plays a forward proxy, and one that answers
PutRecords as scripted.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Type, Union

import pytest

from dis_logging import cli
from dis_logging._protobuf_wire import (
    LENGTH_DELIMITED,
    VARINT,
    encode_varint,
    field_key,
    field_string,
)
from dis_logging._report import Reporter
from dis_logging.buffer import RecordBuffer
from dis_logging.client import DISClient, Entry
from dis_logging.config import HandlerConfig
from dis_logging.emulator import DISEmulator
from dis_logging.errors import AuthError, ConfigError, RequestError, TransportError
from dis_logging.flusher import Flusher
from dis_logging.handler import DISHandler

PROTOBUF_TYPE = "application/x-protobuf;charset=utf-8"
PUT_OK = {"failed_record_count": 0, "records": [{"partition_id": "shardId-0000000000"}]}


class LoopbackServer:
    """The start and stop of the loopback HTTP servers below: one thread serving ``handler``."""

    def _serve(
        self, handler: Type[BaseHTTPRequestHandler], context: Optional[ssl.SSLContext] = None
    ) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        if context is not None:
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5.0)


class QuietJSONHandler(BaseHTTPRequestHandler):
    """A request handler for the servers below: HTTP/1.1, no access log, JSON replies."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        return

    def reply_json(self, status: int, reply: Dict[str, Any], headers: Dict[str, str]) -> None:
        data = json.dumps(reply).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ReplyServer(LoopbackServer):
    """A loopback HTTP(S) server that answers every request with one JSON reply and records
    the request lines and headers it saw."""

    def __init__(
        self, reply: Union[Dict[str, Any], bytes], context: Optional[ssl.SSLContext] = None
    ) -> None:
        owner = self
        self.reply = reply
        self.seen: List[Tuple[str, Dict[str, str]]] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):
                return

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                owner.seen.append((self.requestline, dict(self.headers)))
                reply = owner.reply
                data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                self.send_response(200)
                self.send_header(
                    "Content-Type",
                    PROTOBUF_TYPE if isinstance(reply, bytes) else "application/json",
                )
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = True

            def do_CONNECT(self):
                owner.seen.append((self.requestline, dict(self.headers)))
                self.send_response(403)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True

            do_GET = do_POST = _answer

        self._serve(Handler, context)


def make_certificate(directory: Path, name: str) -> Tuple[Path, Path]:
    """Generate a self-signed certificate for 127.0.0.1 with the openssl command."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={name}",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """The server's certificate and key, and an unrelated CA certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to generate a test certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = make_certificate(directory, "server")
    other, _ = make_certificate(directory, "other-ca")
    return {"cert": cert, "key": key, "other": other}


@pytest.fixture
def tls_server(certificates: Dict[str, Path]) -> Iterator[ReplyServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certificates["cert"]), str(certificates["key"]))
    server = ReplyServer(PUT_OK, context)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def reply_server() -> Iterator[ReplyServer]:
    server = ReplyServer(PUT_OK)
    try:
        yield server
    finally:
        server.close()


class TestVerify:
    @pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
    def test_explicit_ca_path_beats_the_environment(
        self, tls_server, certificates, monkeypatch, variable
    ):
        """An explicit CA bundle path is used even when the environment names another one."""
        monkeypatch.setenv(variable, str(certificates["other"]))
        with DISClient(tls_server.url, "p", token="t", verify=str(certificates["cert"])) as client:
            result = client.put_records("s", [(b"x", None)])
        assert (True, 1) == (result.ok, len(tls_server.seen))

    def test_default_verification_refuses_an_unknown_certificate(self, tls_server):
        """With verify=True, a certificate from an unknown CA fails the request."""
        with DISClient(tls_server.url, "p", token="t") as client:
            with pytest.raises(TransportError):
                client.put_records("s", [(b"x", None)])
        assert [] == tls_server.seen

    def test_wrong_explicit_ca_refuses_the_server(self, tls_server, certificates):
        """An explicit CA bundle that did not sign the certificate fails the request."""
        with DISClient(tls_server.url, "p", token="t", verify=str(certificates["other"])) as client:
            with pytest.raises(TransportError):
                client.put_records("s", [(b"x", None)])

    def test_verify_false_reports_once_and_sends(self, tls_server):
        """verify=False sends without checks and says so in exactly one diagnostic at start."""
        diagnostics: List[str] = []
        handler = DISHandler(
            stream_name="s",
            endpoint=tls_server.url,
            project_id="p",
            token="t",
            verify="false",
            diagnostics=diagnostics.append,
        )
        try:
            logger = logging.getLogger("tests.security.verify")
            logger.addHandler(handler)
            try:
                for _ in range(3):
                    logger.warning("through unverified TLS")
                    assert handler.flush(timeout=5.0)
            finally:
                logger.removeHandler(handler)
        finally:
            handler.close()
        warnings = [line for line in diagnostics if "verify=False" in line]
        assert (1, 3) == (len(warnings), handler.stats.sent)

    @pytest.mark.parametrize("value", ["f", "n", "0", "no", "off", "Fals", "yes", "1", "t"])
    def test_abbreviations_are_not_booleans(self, value):
        """Only true/false spelled out are booleans; any other word is a missing CA path."""
        with pytest.raises(ConfigError) as info:
            HandlerConfig.from_kwargs(
                stream_name="s",
                endpoint="https://dis.example.com",
                project_id="p",
                token="t",
                verify=value,
            )
        assert "verify" == info.value.field

    @pytest.mark.parametrize("value", ["f", "no", "0", "off"])
    def test_client_refuses_abbreviations(self, value):
        """DISClient takes the same values: a bool, true/false spelled out, or an existing path."""
        with pytest.raises(ConfigError) as info:
            DISClient("https://dis.example.com", "p", token="t", verify=value)
        assert "verify" == info.value.field

    @pytest.mark.parametrize(("value", "expected"), [("false", False), ("TRUE", True)])
    def test_spelled_out_words_are_booleans(self, value, expected):
        """The words true and false (any case) are the booleans."""
        config = HandlerConfig.from_kwargs(
            stream_name="s",
            endpoint="https://dis.example.com",
            project_id="p",
            token="t",
            verify=value,
        )
        assert expected is config.verify


class TestProxies:
    @pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"])
    def test_loopback_endpoint_never_goes_through_a_proxy(
        self, reply_server, emulator, stream, monkeypatch, variable
    ):
        """A loopback endpoint is reached directly whatever the proxy variables say."""
        monkeypatch.setenv(variable, reply_server.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with DISClient(emulator.url, emulator.project_id, token=emulator.issue_token()) as client:
            result = client.put_records(stream, [(b"x", None)])
            client.list_streams()
        assert (True, []) == (result.ok, reply_server.seen)

    def test_password_login_to_loopback_iam_skips_the_proxy(
        self, reply_server, emulator, stream, monkeypatch
    ):
        """The IAM login (password in the body) to a loopback IAM endpoint goes direct too."""
        monkeypatch.setenv("HTTP_PROXY", reply_server.url)
        with DISClient(
            emulator.url,
            emulator.project_id,
            username=emulator.username,
            password=emulator.password,
            domain_name=emulator.domain_name,
        ) as client:
            assert client.put_records(stream, [(b"x", None)]).ok
        assert [] == reply_server.seen

    def test_remote_http_endpoint_uses_the_proxy_variable(self, reply_server, monkeypatch):
        """A remote http:// endpoint (allowed explicitly) goes through HTTP_PROXY."""
        monkeypatch.setenv("HTTP_PROXY", reply_server.url)
        with DISClient(
            "http://dis.example.com", "p", token="t", allow_insecure_http=True
        ) as client:
            assert client.put_records("s", [(b"x", None)]).ok
        assert ["POST http://dis.example.com/v2/p/records HTTP/1.1"] == [
            line for line, _ in reply_server.seen
        ]

    def test_remote_https_endpoint_tunnels_through_the_proxy(self, reply_server, monkeypatch):
        """An https:// endpoint behind HTTPS_PROXY is tunnelled: the proxy sees only CONNECT,
        never the token."""
        monkeypatch.setenv("HTTPS_PROXY", reply_server.url)
        with DISClient("https://dis.example.com", "p", token="proxy-must-not-see") as client:
            with pytest.raises(TransportError):
                client.put_records("s", [(b"x", None)])
        assert ["CONNECT dis.example.com:443"] == [
            line.rsplit(" ", 1)[0] for line, _ in reply_server.seen
        ]
        assert "proxy-must-not-see" not in json.dumps(reply_server.seen)

    def test_a_proxy_refusing_the_tunnel_is_named_as_the_cause(self, reply_server, monkeypatch):
        """A proxy answering CONNECT with an error is reported as the proxy's failure."""
        monkeypatch.setenv("HTTPS_PROXY", reply_server.url)
        with DISClient("https://dis.example.com", "p", token="proxy-test-token") as client:
            with pytest.raises(TransportError) as info:
                client.put_records("s", [(b"x", None)])
        message = str(info.value)
        assert message.startswith("PutRecords: the proxy for dis.example.com could not be used: ")
        assert "403" in message
        assert "check HTTPS_PROXY or ALL_PROXY" in message

    def test_a_proxy_that_refuses_connections_is_not_blamed_on_the_endpoint(self, monkeypatch):
        """Nothing listening at the proxy's port reads as the proxy refusing, not the endpoint."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
        with DISClient("https://dis.example.com", "p", token="proxy-test-token") as client:
            with pytest.raises(TransportError) as info:
                client.put_records("s", [(b"x", None)])
        message = str(info.value)
        assert "the proxy for dis.example.com could not be used: it refused the connection" in (
            message
        )
        assert "check the endpoint's host and port" not in message

    def test_proxy_password_is_not_in_the_package_frames(
        self, reply_server, monkeypatch, package_frames
    ):
        """A proxy URL with a user and password (HTTPS_PROXY=http://user:pw@host) is not shown
        by a traceback that captures the locals of the package's frames."""
        password = "PROXY-PASSWORD-0123456789"
        host = reply_server.url.split("://", 1)[1]
        monkeypatch.setenv("HTTPS_PROXY", f"http://user:{password}@{host}")
        with DISClient("https://dis.example.com", "p", token="proxy-test-token") as client:
            with pytest.raises(TransportError) as info:
                client.put_records("s", [(b"x", None)])
        text = package_frames(info.value)
        assert password not in text
        assert f"http://<redacted>@{host}" in text  # the settings are shown, without user info

    @pytest.mark.parametrize(
        "proxy",
        ["http://user:{pw}@127.0.0.1:99999", "socks5h://user:{pw}@127.0.0.1:99999"],
    )
    def test_a_proxy_url_the_http_stack_cannot_parse_is_quoted_without_its_password(
        self, monkeypatch, proxy
    ):
        """urllib3 quotes a proxy URL with a port out of range whole ("Failed to parse: ...");
        the error, the handler's diagnostic and stats.last_error show it without the password.
        Nothing is contacted: the URL fails before any connection."""
        password = "PROXY-PASSWORD-0123456789"
        monkeypatch.setenv("HTTPS_PROXY", proxy.format(pw=password))
        with DISClient("https://dis.example.com", "p", token="proxy-test-token") as client:
            with pytest.raises(TransportError) as info:
                client.put_records("s", [(b"x", None)])
        lines: List[str] = []
        handler = DISHandler(
            stream_name="s",
            endpoint="https://dis.example.com",
            project_id="p",
            token="proxy-test-token",
            diagnostics=lines.append,
            close_timeout=1.0,
        )
        try:
            handler.handle(logging.makeLogRecord({"name": "app", "msg": "x"}))
            assert not handler.flush(timeout=1.0)
        finally:
            handler.close()
        shown = [str(info.value), str(handler.stats.last_error), *lines]
        assert [] == [text for text in shown if password in text]
        assert "Failed to parse" in str(info.value)
        assert "://<redacted>@127.0.0.1:99999" in str(info.value)


class TestEmptyErrorCode:
    @pytest.mark.parametrize("serialization", ["json"])
    def test_empty_error_code_is_success(self, serialization):
        """A PutRecords entry whose error_code is "" counts as stored, as in Huawei's SDKs."""
        reply = {
            "failed_record_count": 0,
            "records": [
                {"partition_id": "shardId-0000000000", "sequence_number": "1", "error_code": ""},
                {"partition_id": "shardId-0000000000", "sequence_number": "2", "error_code": None},
                {"error_code": "DIS.4301", "error_message": "no stream"},
            ],
        }
        server = ReplyServer(reply)
        try:
            with DISClient(server.url, "p", token="t", serialization=serialization) as client:
                result = client.put_records("s", [(b"a", None), (b"b", None), (b"c", None)])
        finally:
            server.close()
        assert (1, [2], [True, True, False]) == (
            result.failed_record_count,
            result.rejected_indexes(),
            [record.ok for record in result.records],
        )

    def test_empty_error_code_is_success_in_protobuf_replies(self):
        """A protobuf PutRecordsResultEntry with an empty errorCode counts as stored."""
        ok = field_string(23, "shardId-0000000000") + field_string(24, "1") + field_string(25, "")
        bad = field_string(25, "DIS.4301") + field_string(26, "no stream")
        reply = field_key(21, VARINT) + encode_varint(1)
        for entry in (ok, bad):
            reply += field_key(22, LENGTH_DELIMITED) + encode_varint(len(entry)) + entry
        server = ReplyServer(reply)
        try:
            with DISClient(server.url, "p", token="t", serialization="protobuf") as client:
                result = client.put_records("s", [(b"a", None), (b"b", None)])
        finally:
            server.close()
        assert (1, [True, False]) == (
            result.failed_record_count,
            [record.ok for record in result.records],
        )

    def test_handler_counts_empty_error_code_as_sent(self):
        """The handler counts records acknowledged with an empty error_code as sent."""
        reply = {"failed_record_count": 0, "records": [{"error_code": "", "error_message": ""}]}
        server = ReplyServer(reply)
        handler = DISHandler(stream_name="s", endpoint=server.url, project_id="p", token="t")
        try:
            logger = logging.getLogger("tests.security.empty_code")
            logger.addHandler(handler)
            try:
                logger.warning("one")
                assert handler.flush(timeout=5.0)
            finally:
                logger.removeHandler(handler)
        finally:
            handler.close()
            server.close()
        assert (1, 0) == (handler.stats.sent, handler.stats.failed)


class TestRateLimitHolds:
    @pytest.mark.parametrize(
        ("settings", "count", "size"),
        [
            ({"max_records_per_second": 50}, 120, 10),
            ({"max_bytes_per_second": 20000, "max_record_bytes": 2000}, 45, 1000),
        ],
    )
    def test_no_request_exceeds_the_per_second_budget(
        self, emulator, stream, settings, count, size
    ):
        """With limits below the batch size, batches are cut to the budget: no request is
        larger than one second's allowance, and everything arrives."""
        handler = DISHandler(
            stream_name=stream,
            endpoint=emulator.url,
            project_id=emulator.project_id,
            ak=emulator.ak,
            sk=emulator.sk,
            max_batch_records=500,
            flush_interval=0.05,
            **settings,
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger = logging.getLogger("tests.security.rate")
        logger.addHandler(handler)
        try:
            for i in range(count):
                logger.warning("%s", f"{i:06d}".ljust(size, "x"))
            assert handler.flush(timeout=15.0)
        finally:
            logger.removeHandler(handler)
            handler.close()
        puts = [e for e in emulator.requests if e.operation == "PutRecords"]
        assert (count, True, True) == (
            sum(e.record_count for e in puts),
            all(e.record_count <= settings.get("max_records_per_second", 10**9) for e in puts),
            all(e.data_bytes <= settings.get("max_bytes_per_second", 10**12) for e in puts),
        )


def operations(emu: DISEmulator, name: str) -> List[Tuple[int, Optional[str]]]:
    return [(e.status, e.error_code) for e in emu.requests if e.operation == name]


def run_handler(emu: DISEmulator, stream: str, messages: List[str], **settings: Any):
    """Log ``messages`` one flush at a time through a handler; return it (closed) and its
    diagnostics."""
    diagnostics: List[str] = []
    base: Dict[str, Any] = {"ak": emu.ak, "sk": emu.sk}
    if {"username", "token", "ak"} & set(settings):
        base = {}
    handler = DISHandler(
        stream_name=stream,
        endpoint=emu.url,
        project_id=emu.project_id,
        flush_interval=0.05,
        diagnostics=diagnostics.append,
        **{**base, **settings},
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("tests.security.handler")
    logger.addHandler(handler)
    try:
        for message in messages:
            logger.warning("%s", message)
            handler.flush(timeout=5.0)
    finally:
        logger.removeHandler(handler)
        handler.close()
    return handler, diagnostics


class TestRequestDataLimit:
    def test_rejection_flags_the_request_and_teaches_the_limit(self, emulator, stream):
        """A 400 to a request over 1 MB is flagged too_large with the COMMON limit."""
        entries: List[Entry] = [(b"x" * 300_000, None)] * 4
        with DISClient(emulator.url, emulator.project_id, ak=emulator.ak, sk=emulator.sk) as c:
            with pytest.raises(RequestError) as info:
                c.put_records(stream, entries)
            learned = c.request_data_limit(stream)
        assert (True, 1_000_000, 1_000_000, []) == (
            info.value.too_large,
            info.value.data_limit,
            learned,
            operations(emulator, "DescribeStream"),
        )

    @pytest.mark.parametrize(
        ("stream_type", "limit"), [("COMMON", 1_000_000), ("ADVANCED", 5_000_000)]
    )
    def test_limit_follows_the_stream_type_read_once(self, emulator, stream_type, limit):
        """request_data_limit reads the stream type once with DescribeStream."""
        emulator.create_stream("typed", partitions=1, stream_type=stream_type)
        with DISClient(emulator.url, emulator.project_id, ak=emulator.ak, sk=emulator.sk) as c:
            limits = [c.request_data_limit("typed") for _ in range(3)]
        assert ([limit] * 3, 1) == (limits, len(operations(emulator, "DescribeStream")))

    def test_too_large_batch_is_split_and_resent_never_failed(self, emulator, stream):
        """A 3 MB batch to a COMMON stream is refused once, then split and stored in full."""
        buffer = RecordBuffer(1000, 10**8, batch_records=500, batch_bytes=3_000_000)
        for i in range(10):
            buffer.put(b"%d" % i + b"x" * 299_999, None, logging.INFO)
        with DISClient(emulator.url, emulator.project_id, ak=emulator.ak, sk=emulator.sk) as c:
            flusher = Flusher(
                buffer,
                c,
                stream_name=stream,
                batch_records=500,
                batch_bytes=3_000_000,
                reporter=Reporter(lambda line: None),
                sending_threads=set(),
            )
            assert flusher.flush_on_caller(time.monotonic() + 20, may_wait=True)
        counts = buffer.snapshot()
        puts = [e for e in emulator.requests if e.operation == "PutRecords"]
        assert (10, 0, 10, [400], True) == (
            counts.sent,
            counts.failed,
            len(emulator.records(stream)),
            [e.status for e in puts if e.status != 200],
            all(e.data_bytes <= 1_000_000 for e in puts if e.status == 200),
        )

    def test_flusher_thread_learns_the_limit_before_sending(self, emulator):
        """The flusher thread asks DescribeStream once, so no request is ever refused."""
        emulator.create_stream("big", partitions=1)
        handler = DISHandler(
            stream_name="big",
            endpoint=emulator.url,
            project_id=emulator.project_id,
            ak=emulator.ak,
            sk=emulator.sk,
            max_batch_bytes=3_000_000,
            max_record_bytes=400_000,
            flush_interval=0.05,
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger = logging.getLogger("tests.security.limit")
        logger.addHandler(handler)
        try:
            for i in range(8):
                logger.warning("%s", f"{i}".ljust(300_000, "y"))
            emulator.wait_for("big", 8, timeout=20)
        finally:
            logger.removeHandler(handler)
            handler.close()
        puts = operations(emulator, "PutRecords")
        assert (1, [], 0) == (
            len(operations(emulator, "DescribeStream")),
            [p for p in puts if p[0] != 200],
            handler.stats.failed,
        )


class TestAuthenticationFailures:
    def test_fresh_token_refused_is_permanent_without_a_login_loop(self, emulator, stream):
        """APIG.0307 for a fresh token too: one refresh, then permanent, reported once, and no
        further IAM logins for the following records."""
        emulator.fail_next(50, status=401, error_code="APIG.0307")
        handler, diagnostics = run_handler(
            emulator,
            stream,
            [f"m{i}" for i in range(6)],
            username=emulator.username,
            password=emulator.password,
            domain_name=emulator.domain_name,
        )
        logins = operations(emulator, "CreateToken")
        puts = operations(emulator, "PutRecords")
        reported = [line for line in diagnostics if "APIG.0307" in line]
        assert (2, 2, 1, 6, 0) == (
            len(logins),
            len(puts),
            len(reported),
            handler.stats.failed,
            handler.stats.sent,
        )

    def test_signature_failure_backs_off_past_the_lockout(self, emulator, stream):
        """A refused AK/SK signature is not tried again within the gateway's lockout window:
        later calls fail at once, without a request."""
        with DISClient(emulator.url, emulator.project_id, ak=emulator.ak, sk="wrong") as client:
            with pytest.raises(AuthError) as first:
                client.put_records(stream, [(b"a", None)])
            with pytest.raises(AuthError) as later:
                client.put_records(stream, [(b"b", None)])
        assert (1, "DIS.4112", False, True, True) == (
            len(operations(emulator, "PutRecords")),
            first.value.code,
            first.value.repeat,
            later.value.repeat,
            later.value.retry_after is not None and later.value.retry_after > 300,
        )

    def test_handler_with_a_bad_signature_sends_once_and_reports_once(self, emulator, stream):
        """Through the handler: one request, one diagnostic, every record counted as failed."""
        handler, diagnostics = run_handler(
            emulator, stream, [f"s{i}" for i in range(5)], ak=emulator.ak, sk="wrong"
        )
        assert (1, 1, 5) == (
            len(operations(emulator, "PutRecords")),
            len([line for line in diagnostics if "DIS.4112" in line]),
            handler.stats.failed,
        )

    def test_success_after_the_block_resets_it(self, emulator, stream):
        """A transient refusal blocks sends; once the block ends, a success clears the count."""
        emulator.fail_next(1, status=441, error_code="DIS.4112")
        with DISClient(emulator.url, emulator.project_id, ak=emulator.ak, sk=emulator.sk) as c:
            with pytest.raises(AuthError):
                c.put_records(stream, [(b"a", None)])
            block = c._auth_block
            assert block is not None
            c._auth_block = (time.monotonic(), block[1])  # as if the wait were over
            assert c.put_records(stream, [(b"b", None)]).ok
            assert (0, 2) == (c._auth_strikes, len(operations(emulator, "PutRecords")))


class StaleTokenIAM(LoopbackServer):
    """A loopback IAM + DIS that issues tokens whose ``expires_at`` is their ``issued_at`` (no
    lifetime at all) and stores every PutRecords; counts the logins."""

    def __init__(self) -> None:
        owner = self
        self.logins = 0
        self.puts = 0

        class Handler(QuietJSONHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {}
                if self.path.startswith("/v3/auth/tokens"):
                    owner.logins += 1
                    moment = "2026-12-06T10:00:00.000000Z"
                    reply: Dict[str, Any] = {"token": {"expires_at": moment, "issued_at": moment}}
                    headers["X-Subject-Token"] = f"STALE-IAM-TOKEN-{owner.logins:04d}"
                    status = 201
                else:
                    owner.puts += 1
                    reply, status = PUT_OK, 200
                self.reply_json(status, reply, headers)

        self._serve(Handler)


class TestTokenWithoutLifetime:
    def test_a_token_expired_on_arrival_is_not_fetched_for_every_request(self):
        """An IAM reply whose expires_at is not after its issued_at gave a token cached for no
        time: one IAM login per request, with no word (20 logins for 20 PutRecords). It is now
        used (DIS decides), reported once, and asked for again only after 30 s."""
        iam = StaleTokenIAM()
        reports: List[str] = []
        try:
            with DISClient(
                iam.url,
                "p",
                username="u",
                password="pw-0123456789",
                domain_name="d",
                report=reports.append,
            ) as client:
                for index in range(20):
                    assert client.put_records("s", [(b"%d" % index, None)]).ok
        finally:
            iam.close()
        assert (1, 20, 1) == (iam.logins, iam.puts, len(reports))
        assert "expired on arrival" in reports[0]
        assert "STALE-IAM-TOKEN" not in reports[0]


class EchoingGateway(LoopbackServer):
    """A loopback server that refuses every request with 400, echoing the X-Auth-Token it got
    as the error code, the body's request id and the X-Request-Id header."""

    def __init__(self, padding: str = "") -> None:
        class Handler(QuietJSONHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                echoed = (self.headers.get("X-Auth-Token") or "") + padding
                reply = {"error_code": echoed, "error_msg": "refused", "request_id": echoed}
                self.reply_json(400, reply, {"X-Request-Id": echoed})

        self._serve(Handler)


class TestServerFields:
    def test_a_token_echoed_as_error_code_or_request_id_is_masked(self):
        """The error code and request id of a refusal were kept as sent, so str() of the
        DISError a DISClient user logs showed a token a gateway echoed there (the handler's
        diagnostics masked it). They are masked like the message now."""
        token = "ECHOED-TOKEN-0123456789abcdef"
        gateway = EchoingGateway()
        try:
            with DISClient(gateway.url, "p", token=token) as client:
                with pytest.raises(RequestError) as info:
                    client.put_records("s", [(b"x", None)])
        finally:
            gateway.close()
        error = info.value
        shown = [str(error), repr(error), error.code or "", error.request_id or ""]
        assert [] == [text for text in shown if token in text]
        assert ("<redacted>", "<redacted>") == (error.code, error.request_id)

    def test_an_error_code_or_request_id_tens_of_kilobytes_long_is_cut(self):
        """A reply's code and request id of 30 KB each made every report line 90 KB long."""
        gateway = EchoingGateway(padding="C" * 30_000)
        try:
            with DISClient(gateway.url, "p", token="a-token-of-some-length") as client:
                with pytest.raises(RequestError) as info:
                    client.put_records("s", [(b"x", None)])
        finally:
            gateway.close()
        assert (True, True, True) == (
            len(info.value.code or "") <= 100,
            len(info.value.request_id or "") <= 100,
            len(str(info.value)) < 1000,
        )


class TestCommandLineSecrets:
    def connection(self, emu: DISEmulator) -> List[str]:
        return ["--endpoint", emu.url, "--project-id", emu.project_id]

    def run(self, capsys, *argv: str) -> Tuple[int, str, str]:
        code = cli.main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    def test_password_from_stdin(self, capsys, emulator, stream, monkeypatch):
        """--password-file - reads the password's line from stdin, with no warning."""
        monkeypatch.setattr(sys, "stdin", io.StringIO(emulator.password + "\n"))
        code, out, err = self.run(
            capsys,
            "check",
            stream,
            "--no-put",
            *self.connection(emulator),
            "--username",
            emulator.username,
            "--domain-name",
            emulator.domain_name,
            "--password-file",
            "-",
        )
        assert (0, "", True) == (code, err, "credentials    accepted" in out)

    @pytest.mark.parametrize("source", ["file", "stdin"])
    def test_a_secret_with_a_byte_order_mark_is_read(
        self, capsys, emulator, stream, monkeypatch, tmp_path, source
    ):
        """A secret file (or stdin) starting with a UTF-8 byte order mark, as Windows tools
        write it, gives the secret without it (the mark was refused as a non-ASCII character)."""
        path = tmp_path / "password"
        path.write_bytes(b"\xef\xbb\xbf" + emulator.password.encode() + b"\r\n")
        if source == "stdin":
            monkeypatch.setattr(sys, "stdin", io.StringIO("\ufeff" + emulator.password + "\n"))
        code, out, err = self.run(
            capsys,
            "check",
            stream,
            "--no-put",
            *self.connection(emulator),
            "--username",
            emulator.username,
            "--domain-name",
            emulator.domain_name,
            "--password-file",
            str(path) if source == "file" else "-",
        )
        assert (0, "", True) == (code, err, "credentials    accepted" in out)

    @pytest.mark.parametrize("flag", ["--sk", "--token", "--password", "--security-token"])
    def test_secret_flags_warn_and_the_help_says_why(self, capsys, flag):
        """Each secret flag's help points to the process list and to its --*-file sibling."""
        with pytest.raises(SystemExit):
            cli.build_parser().parse_args(["check", "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert f"{flag}-file PATH" in text
        entry = text.rsplit(f"{flag} {flag[2:].upper().replace('-', '_')}", 1)[1][:200]
        assert "process list" in entry

    def test_secret_flag_still_works_with_a_warning(self, capsys, emulator, stream):
        """--sk on the command line works, and stderr warns once that others can see it."""
        code, _, err = self.run(
            capsys,
            "check",
            stream,
            "--no-put",
            *self.connection(emulator),
            "--ak",
            emulator.ak,
            "--sk",
            emulator.sk,
        )
        assert (0, 1) == (code, err.count("warning: --sk on the command line is visible"))
        assert emulator.sk not in err

    def test_flag_and_file_together_are_a_usage_error(self, capsys, emulator, stream, tmp_path):
        """--token and --token-file together exit 2 with one line."""
        token_file = tmp_path / "token"
        token_file.write_text("t\n")
        code, _, err = self.run(
            capsys,
            "check",
            stream,
            *self.connection(emulator),
            "--token",
            "t",
            "--token-file",
            str(token_file),
        )
        assert (2, 1) == (code, len(err.splitlines()))

    def test_wrapped_security_token_in_credentials_file(
        self, capsys, emulator, stream, tmp_path, monkeypatch
    ):
        """A security token wrapped over two lines in the credentials file is a one-line
        configuration error: no traceback, and neither half of the token is shown."""
        halves = ("FirstHalfOfTheSecurityToken0001", "SecondHalfOfTheSecurityToken002")
        credentials = tmp_path / "credentials"
        credentials.write_text(
            f"[basic]\nak = {emulator.ak}\nsk = {emulator.sk}\n"
            f"security_token = {halves[0]}\n    {halves[1]}\n"
        )
        monkeypatch.setenv("HUAWEICLOUD_SDK_CREDENTIALS_FILE", str(credentials))
        code, out, err = self.run(capsys, "check", stream, *self.connection(emulator))
        assert (2, 1, False) == (code, len(err.splitlines()), "Traceback" in out + err)
        assert "security_token" in err
        assert halves[0] not in out + err
        assert halves[1] not in out + err

    def test_token_file_with_a_control_character(self, capsys, emulator, stream, tmp_path):
        """A token with a control character fails with one line that does not show it."""
        secret = "TokenWithAControlChar\x01Inside0001"
        token_file = tmp_path / "token"
        token_file.write_text(secret + "\n")
        code, out, err = self.run(
            capsys, "check", stream, *self.connection(emulator), "--token-file", str(token_file)
        )
        assert (2, 1, False) == (code, len(err.splitlines()), "Traceback" in out + err)
        assert "TokenWithAControlChar" not in out + err

    def test_a_secret_file_without_an_end_of_line_in_sight(
        self, capsys, emulator, stream, tmp_path
    ):
        """The first line of a --*-file was read however long it was: `--sk-file /dev/zero`
        took all memory (MemoryError traceback under a 2 GB limit). Past 65,536 characters it
        is a usage error now, read no further, and nothing of the file is shown."""
        sk_file = tmp_path / "sk"
        sk_file.write_text("K" * 70_000)
        code, out, err = self.run(
            capsys,
            "check",
            stream,
            "--endpoint",
            emulator.url,
            "--project-id",
            emulator.project_id,
            "--ak",
            emulator.ak,
            "--sk-file",
            str(sk_file),
        )
        assert (2, 1, False) == (code, len(err.splitlines()), "KKKK" in out + err)
        assert "longer than 65536 characters" in err


class TestDiagnosticsText:
    def test_control_characters_from_a_server_are_escaped(self):
        """What a server sends (an error message, a status line) reaches the diagnostics with
        its escape sequences and bidirectional overrides written as escapes."""
        lines: List[str] = []
        reporter = Reporter(lines.append, interval=0)
        reporter.report(("server", 500), "failed: boom \x1b[2J\x1b[31mred\x07 \u202eevil\x85")
        reporter.report_now("plain text, unchanged: caf\u00e9 \u2713")
        assert lines == [
            "dis-logging: failed: boom \\x1b[2J\\x1b[31mred\\x07 \\u202eevil\\x85",
            "dis-logging: plain text, unchanged: caf\u00e9 \u2713",
        ]


class TestShortSecrets:
    def test_a_short_secret_is_masked_where_it_stands_alone(self):
        """A secret of 1 to 3 characters (a test token) is masked where it stands alone, not
        inside longer words; a longer one is masked everywhere."""
        from dis_logging._report import redact

        text = "TokenExpiredError: token=x; header 'x' refused; ax1 0x1b"
        assert "TokenExpiredError: token=***; header '***' refused; ax1 0x1b" == redact(text, ["x"])
        assert "pass *** in x***x and ***" == redact("pass abcd in xabcdx and abcd", ["abcd"])

    def test_a_one_letter_token_leaves_the_diagnostics_readable(self, emulator, stream):
        """token="x" (refused) gives readable diagnostics and last_error, still masked where
        the token is quoted by itself."""
        lines: List[str] = []
        handler = DISHandler(
            stream,
            endpoint=emulator.url,
            project_id=emulator.project_id,
            token="x",
            diagnostics=lines.append,
            max_retry_time=0,
        )
        try:
            log = logging.getLogger("test.short.secret")
            log.addHandler(handler)
            log.propagate = False
            log.error("x")
            assert handler.flush(timeout=5.0) is False
            last_error = handler.stats.last_error or ""
        finally:
            handler.close()
        assert "TokenExpiredError" in last_error
        assert all("E***" not in line for line in [last_error, *lines])
        assert any("failed permanently" in line for line in lines)


class TestHeaderValues:
    def test_callable_token_with_a_trailing_newline_is_stripped(self, emulator, stream):
        """A token callable that returns the file's text, newline included, works."""
        token = emulator.issue_token()
        with DISClient(emulator.url, emulator.project_id, token=lambda: f"  {token}\r\n") as c:
            assert c.put_records(stream, [(b"x", None)]).ok
        assert 1 == len(emulator.records(stream))

    def test_a_secret_key_read_with_its_newline_signs(self, emulator, stream):
        """DISClient(sk=open(path).read()) signs with the key, not the key and its newline (the
        signature did not match; the handler's settings were stripped already)."""
        with DISClient(
            emulator.url, emulator.project_id, ak=emulator.ak, sk=emulator.sk + "\n"
        ) as c:
            assert c.put_records(stream, [(b"x", None)]).ok
        with pytest.raises(ConfigError, match="sk: is empty"):
            DISClient(emulator.url, emulator.project_id, ak=emulator.ak, sk=" \n")

    def test_static_values_are_stripped(self, emulator, stream):
        """A static token read with its newline is stripped at construction."""
        token = emulator.issue_token()
        with DISClient(emulator.url, emulator.project_id, token=token + "\n") as client:
            assert client.put_records(stream, [(b"x", None)]).ok


SK_SECRET = "CONSTRUCT-SK-0123456789abcdef"
PASSWORD_SECRET = "CONSTRUCT-PASSWORD-0123456789"
BAD_TOKEN = "CONSTRUCT-TOKEN\x02" + SK_SECRET


def _construct_handler(**settings: Any) -> None:
    DISHandler(stream_name="s", endpoint="http://127.0.0.1:9", project_id="p" * 32, **settings)


def _construct_client(**settings: Any) -> None:
    DISClient("http://127.0.0.1:9", "p" * 32, **settings)


def _construct_processor(**settings: Any) -> None:
    from dis_logging.structlog_processor import DISProcessor

    DISProcessor(stream_name="s", endpoint="http://127.0.0.1:9", project_id="p" * 32, **settings)


class TestConstructionErrors:
    @pytest.mark.parametrize(
        "construct", [_construct_handler, _construct_client, _construct_processor]
    )
    @pytest.mark.parametrize(
        "settings",
        [
            {"ak": "AK", "sk": SK_SECRET, "security_token": "TOKEN\x01" + SK_SECRET},
            {"token": BAD_TOKEN},
            {"username": "u", "password": PASSWORD_SECRET},
            {"sk": SK_SECRET, "password": PASSWORD_SECRET},
        ],
        ids=["bad-security-token", "bad-token", "no-domain", "sk-without-ak"],
    )
    def test_no_secret_in_the_locals_of_any_package_frame(
        self, construct, settings, package_frames
    ):
        """A credential set refused at construction leaves no secret in the traceback's locals."""
        with pytest.raises(ConfigError) as info:
            construct(**settings)
        # The package's frames only: this test and its helper hold what they passed on purpose.
        text = package_frames(info.value, skip=2)
        assert [] == [s for s in (SK_SECRET, PASSWORD_SECRET) if s in text]
